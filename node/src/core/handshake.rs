//! How a Roomcast socket looks to a Node.js peer's `fetchSockets()`: `handshake` and
//! `data` shaped as socket.io 4.8 fills them for its own sockets, without secrets.
//!
//! Node copies the request's headers, URL and `auth` payload as they came, tokens and
//! passwords included. Roomcast shows the same fields but drops every credential: the
//! `cookie` and `authorization` headers, and any `auth` or query field whose name says
//! it holds a secret (`token`, `password`, `secret`, ...), at any depth.

use std::sync::Arc;

use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use roomcast_adapter::SocketDetails;
use serde_json::{Map, Value, json};
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;

use crate::core::session::Member;

/// Headers never shown to peers.
const SECRET_HEADERS: &[&str] = &["cookie", "authorization", "proxy-authorization"];

/// A field whose name contains one of these (case, `-` and `_` ignored) holds a secret.
const SECRET_WORDS: &[&str] =
    &["token", "password", "passwd", "secret", "credential", "cookie", "authorization", "apikey"];

/// What only the connect middleware knows: when the handshake happened and its `auth`
/// payload, already without secrets. Kept in the socket's extensions.
#[derive(Debug, Clone)]
pub struct Captured {
    issued: DateTime<Utc>,
    auth: Value,
}

impl Captured {
    /// Records a handshake happening now with `auth` as the client sent it.
    pub fn now(auth: Option<&Value>) -> Self {
        let auth = match auth {
            Some(Value::Object(fields)) => Value::Object(redact(fields)),
            _ => json!({}),
        };
        Self { issued: Utc::now(), auth }
    }
}

/// Whether a field named `name` holds a credential.
fn is_secret(name: &str) -> bool {
    let folded: String =
        name.chars().filter(|c| *c != '-' && *c != '_').flat_map(char::to_lowercase).collect();
    SECRET_WORDS.iter().any(|word| folded.contains(word))
}

/// `fields` without the secret ones, at any depth.
fn redact(fields: &Map<String, Value>) -> Map<String, Value> {
    fields
        .iter()
        .filter(|(name, _)| !is_secret(name))
        .map(|(name, value)| (name.clone(), redact_value(value)))
        .collect()
}

fn redact_value(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(redact(fields)),
        Value::Array(items) => Value::Array(items.iter().map(redact_value).collect()),
        other => other.clone(),
    }
}

/// Headers as Node shows them: lower-case names, repeated values joined by `, `.
fn headers(parts: &Parts) -> Map<String, Value> {
    let mut out = Map::new();
    for name in parts.headers.keys() {
        if SECRET_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let values: Vec<&str> =
            parts.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        out.insert(name.as_str().to_owned(), Value::String(values.join(", ")));
    }
    out
}

/// The query's non-secret pairs, decoded; a repeated name gives an array, as Node's
/// `querystring` does.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .filter(|(name, _)| !is_secret(&decode(name)))
        .map(|(name, value)| (decode(name), decode(value)))
        .collect()
}

fn query_object(pairs: &[(String, String)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in pairs {
        let value = Value::String(value.clone());
        match out.get_mut(name) {
            Some(Value::Array(items)) => items.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                out.insert(name.clone(), value);
            }
        }
    }
    out
}

/// The request URL with the secret query pairs left out (the raw text otherwise).
fn url(parts: &Parts) -> String {
    let path = parts.uri.path();
    match parts.uri.query() {
        None => path.to_owned(),
        Some(query) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| {
                    let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
                    !is_secret(&percent_encoding::percent_decode_str(name).decode_utf8_lossy())
                })
                .collect();
            format!("{path}?{}", kept.join("&"))
        }
    }
}

/// JavaScript's `Date.prototype.toString()` in UTC.
fn js_date(at: DateTime<Utc>) -> String {
    at.format("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)").to_string()
}

/// Node's `socket.handshake`, key order included.
fn handshake(parts: &Parts, captured: &Captured, trusted_proxies: &[IpNet]) -> Value {
    let address =
        crate::core::guard::client_address(&parts.headers, &parts.extensions, trusted_proxies);
    // Roomcast does not terminate TLS; a trusted balancer says whether it did.
    let secure = crate::core::guard::from_trusted_proxy(&parts.extensions, trusted_proxies)
        && parts.headers.get("x-forwarded-proto").is_some_and(|proto| proto == "https");
    let query = parts.uri.query().map(query_pairs).unwrap_or_default();
    json!({
        "headers": headers(parts),
        "time": js_date(captured.issued),
        "address": address.map(|a| a.to_string()).unwrap_or_default(),
        "xdomain": parts.headers.contains_key("origin"),
        "secure": secure,
        "issued": captured.issued.timestamp_millis(),
        "url": url(parts),
        "query": query_object(&query),
        "auth": captured.auth,
    })
}

/// Node's `socket.data` for a Roomcast socket: who it is, how it logged in (guests:
/// neither), and which node holds it.
fn data(member: Option<&Member>, node_id: &str) -> Value {
    let mut data = Map::new();
    if let Some(member) = member {
        data.insert("user".into(), Value::String(member.identity.user.clone()));
        data.insert("via".into(), Value::String(member.identity.via.as_str().into()));
    }
    data.insert("node".into(), Value::String(node_id.to_owned()));
    Value::Object(data)
}

/// What a peer's `fetchSockets()` shows of `socket`.
pub fn details<A: Adapter>(
    socket: &SocketRef<A>,
    node_id: &str,
    trusted_proxies: &[IpNet],
) -> SocketDetails {
    let captured = socket.extensions.get::<Captured>().unwrap_or_else(|| Captured::now(None));
    let member = socket.extensions.get::<Arc<Member>>();
    SocketDetails {
        handshake: handshake(socket.req_parts(), &captured, trusted_proxies),
        data: data(member.as_deref(), node_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::auth::{AuthMethod, Identity};

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = axum::http::Request::builder().uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut parts = request.body(()).expect("request").into_parts().0;
        let peer: std::net::SocketAddr = "127.0.0.1:40000".parse().expect("address");
        parts.extensions.insert(axum::extract::ConnectInfo(peer));
        parts
    }

    #[test]
    fn auth_keeps_everything_but_credentials_at_any_depth() {
        let auth = json!({
            "login": "alice", "password": "pw", "token": "jwt", "resume": "abc",
            "accessToken": "x", "api_key": "k", "nested": {"clientSecret": "s", "room": "r"},
            "list": [{"refresh-token": "t", "n": 1}],
        });
        let captured = Captured::now(Some(&auth));
        assert_eq!(
            captured.auth,
            json!({"login": "alice", "resume": "abc", "nested": {"room": "r"}, "list": [{"n": 1}]})
        );
        assert_eq!(Captured::now(Some(&json!("token"))).auth, json!({}));
        assert_eq!(Captured::now(None).auth, json!({}));
    }

    #[test]
    fn handshake_has_nodes_fields_in_order_without_secret_headers_or_query() {
        let request = parts(
            "/socket.io/?EIO=4&transport=websocket&token=abc&t=1&t=2&password=x",
            &[
                ("cookie", "connect.sid=s%3Asecret"),
                ("authorization", "Bearer abc"),
                ("user-agent", "test"),
                ("origin", "http://example.test"),
                ("accept", "a"),
                ("accept", "b"),
            ],
        );
        let captured = Captured::now(Some(&json!({"login": "alice", "password": "pw"})));
        let hs = handshake(&request, &captured, &[]);
        let keys: Vec<&str> = hs.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["headers", "time", "address", "xdomain", "secure", "issued", "url", "query", "auth"]
        );
        assert_eq!(
            hs["headers"],
            json!({"user-agent": "test", "origin": "http://example.test", "accept": "a, b"})
        );
        assert_eq!(hs["url"], "/socket.io/?EIO=4&transport=websocket&t=1&t=2");
        assert_eq!(hs["query"], json!({"EIO": "4", "transport": "websocket", "t": ["1", "2"]}));
        assert_eq!(hs["auth"], json!({"login": "alice"}));
        assert_eq!(hs["xdomain"], true);
        assert_eq!(hs["secure"], false);
        assert_eq!(hs["issued"], captured.issued.timestamp_millis());
        let text = hs.to_string();
        for secret in ["secret", "Bearer", "abc", "pw\""] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }

    #[test]
    fn time_reads_like_a_javascript_date() {
        let at = DateTime::parse_from_rfc3339("2026-12-03T09:05:07Z").expect("date").to_utc();
        assert_eq!(js_date(at), "Thu Dec 03 2026 09:05:07 GMT+0000 (Coordinated Universal Time)");
    }

    #[test]
    fn a_trusted_balancer_tells_address_and_tls() {
        let request = parts(
            "/socket.io/",
            &[("x-forwarded-for", "10.0.0.9"), ("x-forwarded-proto", "https")],
        );
        let captured = Captured::now(None);
        let loopback: IpNet = "127.0.0.0/8".parse().expect("network");
        let trusted = handshake(&request, &captured, &[loopback]);
        assert_eq!(trusted["address"], "10.0.0.9");
        assert_eq!(trusted["secure"], true);
        let untrusted = handshake(&request, &captured, &[]);
        assert_eq!(untrusted["address"], "127.0.0.1");
        assert_eq!(untrusted["secure"], false);
    }

    #[test]
    fn data_names_user_login_method_and_node() {
        let identity = Identity { user: "alice".into(), via: AuthMethod::Token };
        let member = Member::new(identity, "s1".into(), "node-a".into(), "/");
        assert_eq!(
            data(Some(&member), "node-a"),
            json!({"user": "alice", "via": "token", "node": "node-a"})
        );
        assert_eq!(data(None, "node-a"), json!({"node": "node-a"}));
    }
}
