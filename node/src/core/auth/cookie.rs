//! express-session cookies: `s:<sid>.<signature>`, signed as the `cookie-signature`
//! package does (HMAC-SHA256 of the sid, base64 without `=` padding).

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, Mac};
use percent_encoding::percent_decode_str;
use sha2::Sha256;

/// Finds the cookie `name` in a `Cookie` header value.
pub fn find_cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value.trim_matches('"'))
    })
}

fn mac(secret: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key")
}

/// The sid of a correctly signed cookie value (still percent-encoded, as sent).
/// The signature is compared in constant time.
pub fn unsign(raw_value: &str, secret: &str) -> Option<String> {
    let value = percent_decode_str(raw_value).decode_utf8().ok()?;
    let signed = value.strip_prefix("s:")?;
    let (sid, signature) = signed.rsplit_once('.')?;
    let signature = STANDARD_NO_PAD.decode(signature).ok()?;
    let mut mac = mac(secret);
    mac.update(sid.as_bytes());
    mac.verify_slice(&signature).ok()?;
    Some(sid.to_owned())
}

/// Signs a sid the way express-session does; the result is what goes into the cookie
/// before percent-encoding.
pub fn sign(sid: &str, secret: &str) -> String {
    let mut mac = mac(secret);
    mac.update(sid.as_bytes());
    format!("s:{sid}.{}", STANDARD_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// The login of an express-session `sess`: `user` (a string, or an object's `login`,
/// `username`, `name` or `id`), else passport's `passport.user`.
pub fn session_user(sess: &serde_json::Value) -> Option<String> {
    let user = sess.get("user").or_else(|| sess.pointer("/passport/user"))?;
    let user = match user {
        serde_json::Value::Object(fields) => ["login", "username", "name", "id"]
            .iter()
            .find_map(|key| fields.get(*key).filter(|v| !v.is_null()))?,
        other => other,
    };
    match user {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // `'s:' + require('cookie-signature').sign('abc123', 'keyboard cat')`, as
    // express-session builds its cookie value.
    const NODE_SIGNED: &str = "s:abc123.L3URH8qEUlRhbJErOXuJ/R5i21GJUY02kERb2c2p5w0";

    #[test]
    fn signs_like_cookie_signature() {
        assert_eq!(sign("abc123", "keyboard cat"), NODE_SIGNED);
    }

    #[test]
    fn unsigns_encoded_values_and_refuses_forgeries() {
        let encoded = NODE_SIGNED.replace(':', "%3A").replace('/', "%2F");
        assert_eq!(unsign(&encoded, "keyboard cat").as_deref(), Some("abc123"));
        assert_eq!(unsign(NODE_SIGNED, "another secret"), None);
        assert_eq!(unsign(&NODE_SIGNED.replace("abc123", "abc124"), "keyboard cat"), None);
        assert_eq!(unsign("abc123", "keyboard cat"), None);
        assert_eq!(unsign("s:abc123", "keyboard cat"), None);
        assert_eq!(unsign("s:abc123.!!!", "keyboard cat"), None);
    }

    #[test]
    fn finds_cookies() {
        let header = "a=1; connect.sid=s%3Ax.y; b=2";
        assert_eq!(find_cookie(header, "connect.sid"), Some("s%3Ax.y"));
        assert_eq!(find_cookie(header, "c"), None);
    }

    #[test]
    fn session_users() {
        assert_eq!(session_user(&json!({"user": "alice"})).as_deref(), Some("alice"));
        assert_eq!(session_user(&json!({"user": {"login": "bob"}})).as_deref(), Some("bob"));
        assert_eq!(session_user(&json!({"passport": {"user": 42}})).as_deref(), Some("42"));
        assert_eq!(session_user(&json!({"cookie": {}})), None);
        assert_eq!(session_user(&json!({"user": [1]})), None);
    }
}
