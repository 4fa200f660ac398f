//! Who may open a socket.
//!
//! [`Credentials::from_handshake`] finds what the client offered — the handshake `auth`
//! payload, then the query string (Engine.IO 3 clients have no `auth`), then the
//! express-session cookie — and [`Authenticator::authenticate`] checks it. The first
//! source carrying any credential decides, so a bad token is never rescued by a cookie.

pub mod cookie;
pub mod jwt;
pub mod limiter;
pub mod password;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;

use crate::config::{AuthConfig, Secret};
use crate::core::db::{Db, DbError};
use crate::protocol::names::Login;
use jwt::{JwtVerifier, TokenError};

/// How a user proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Login and password.
    Password,
    /// A JSON Web Token.
    Token,
    /// An express-session cookie.
    Cookie,
}

impl AuthMethod {
    /// Name used in session rows and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Token => "token",
            AuthMethod::Cookie => "cookie",
        }
    }
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The login, the only name other users ever see.
    pub user: String,
    /// How it was proven.
    pub via: AuthMethod,
}

/// What a client offered.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `{login, password}`.
    Password {
        /// The login.
        login: String,
        /// The password.
        password: String,
    },
    /// `{token}`.
    Token(String),
    /// The raw (percent-encoded) value of the session cookie.
    Cookie(String),
}

// Never print secrets, not even in debug logs.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Password { login, .. } => write!(f, "Password({login:?})"),
            Credentials::Token(_) => f.write_str("Token(..)"),
            Credentials::Cookie(_) => f.write_str("Cookie(..)"),
        }
    }
}

impl Credentials {
    /// The method these credentials belong to.
    pub fn method(&self) -> AuthMethod {
        match self {
            Credentials::Password { .. } => AuthMethod::Password,
            Credentials::Token(_) => AuthMethod::Token,
            Credentials::Cookie(_) => AuthMethod::Cookie,
        }
    }

    /// The login claimed, for password credentials (a token or cookie names its user
    /// only once verified).
    pub fn login(&self) -> Option<&str> {
        match self {
            Credentials::Password { login, .. } => Some(login),
            Credentials::Token(_) | Credentials::Cookie(_) => None,
        }
    }

    /// Finds the credentials of a handshake. `Err` when a source carries a credential
    /// of the wrong shape (a number as a token, a login without a password).
    pub fn from_handshake(
        auth: Option<&Value>,
        query: Option<&str>,
        cookie_header: Option<&str>,
        cookie_name: &str,
    ) -> Result<Option<Self>, AuthError> {
        if let Some(Value::Object(fields)) = auth
            && let Some(creds) = Self::from_pairs(|key| match fields.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(AuthError::Malformed),
            })?
        {
            return Ok(Some(creds));
        }
        if let Some(query) = query {
            let pairs: Vec<(String, String)> = form_pairs(query);
            let creds = Self::from_pairs(|key| {
                Ok(pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
            })?;
            if creds.is_some() {
                return Ok(creds);
            }
        }
        Ok(cookie_header
            .and_then(|header| cookie::find_cookie(header, cookie_name))
            .map(|value| Credentials::Cookie(value.to_owned())))
    }

    fn from_pairs(
        get: impl Fn(&str) -> Result<Option<String>, AuthError>,
    ) -> Result<Option<Self>, AuthError> {
        if let Some(token) = get("token")? {
            return Ok(Some(Credentials::Token(token)));
        }
        match (get("login")?, get("password")?) {
            (Some(login), Some(password)) => Ok(Some(Credentials::Password { login, password })),
            (None, None) => Ok(None),
            _ => Err(AuthError::BadLogin),
        }
    }
}

/// Decodes `a=1&b=%20x` into pairs (the `+` as space, as forms do).
fn form_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
    };
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// Why a handshake was refused. The text is what the client's `connect_error` says.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Nothing offered.
    #[error("unauthorized: no credentials")]
    NoCredentials,
    /// Credentials of the wrong shape.
    #[error("unauthorized: malformed credentials")]
    Malformed,
    /// Unknown login or wrong password, deliberately not told apart.
    #[error("unauthorized: invalid login or password")]
    BadLogin,
    /// A refused token.
    #[error("unauthorized: {0}")]
    Token(#[from] TokenError),
    /// A token was offered but token authentication is not configured.
    #[error("unauthorized: token authentication is not enabled")]
    TokenDisabled,
    /// A forged, unknown, expired or userless session cookie.
    #[error("unauthorized: invalid session cookie")]
    BadCookie,
    /// Too many failed password logins for this login from this address, or from this
    /// address for any login; the client may retry after `auth.rate_limit.window`.
    #[error("unauthorized: too many failed attempts, retry later")]
    TooManyAttempts,
    /// More password checks are waiting than the node queues; the client may retry.
    #[error("service unavailable: too many logins at once")]
    Busy,
    /// The database did not answer; the client may retry.
    #[error("service unavailable: session store")]
    Unavailable(#[source] DbError),
}

/// Checks credentials against the configured keys and the users table.
#[derive(Clone)]
pub struct Authenticator {
    db: Db,
    jwt: Option<JwtVerifier>,
    session_secret: Option<Secret>,
    limiter: Arc<limiter::FailureLimiter>,
    /// Where password checks run (bounded threads and queue).
    hashing: Arc<password::VerifyPool>,
}

impl Authenticator {
    /// Loads the keys the configuration names.
    pub fn new(config: &AuthConfig, db: Db) -> Result<Self, jwt::KeyError> {
        Ok(Self {
            db,
            jwt: JwtVerifier::from_config(&config.jwt)?,
            session_secret: config.session.secret.clone(),
            limiter: Arc::new(limiter::FailureLimiter::new(&config.rate_limit)),
            hashing: Arc::new(password::VerifyPool::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
                256,
            )),
        })
    }

    /// The identity behind `credentials`.
    pub async fn authenticate(
        &self,
        credentials: Credentials,
        address: Option<IpAddr>,
    ) -> Result<Identity, AuthError> {
        let via = credentials.method();
        let user = match credentials {
            Credentials::Password { login, password } => {
                let wait =
                    self.limiter.check(&login, address).map_err(|_| AuthError::TooManyAttempts)?;
                // A login others are guessing at is slowed down, never locked.
                tokio::time::sleep(wait).await;
                match self.check_password(login.clone(), password).await {
                    Ok(user) => {
                        self.limiter.succeeded(&user, address);
                        user
                    }
                    Err(e) => {
                        if matches!(e, AuthError::BadLogin) {
                            self.limiter.failed(&login, address);
                        }
                        return Err(e);
                    }
                }
            }
            Credentials::Token(token) => {
                self.jwt.as_ref().ok_or(AuthError::TokenDisabled)?.verify(&token)?
            }
            Credentials::Cookie(value) => self.check_cookie(&value).await?,
        };
        if via != AuthMethod::Password {
            // A token or an Express session naming a user Roomcast cannot represent, or
            // one deleted since it was issued, is refused as a bad credential.
            let known = Login::parse(user.as_str()).is_ok()
                && self.db.user_exists(&user).await.map_err(AuthError::Unavailable)?;
            if !known {
                return Err(match via {
                    AuthMethod::Cookie => AuthError::BadCookie,
                    _ => AuthError::Token(TokenError::Invalid),
                });
            }
        }
        Ok(Identity { user, via })
    }

    async fn check_password(&self, login: String, password: String) -> Result<String, AuthError> {
        if Login::parse(login.as_str()).is_err() || password.len() > 1024 {
            return Err(AuthError::BadLogin);
        }
        let stored = self.db.password_hash(&login).await.map_err(AuthError::Unavailable)?;
        let ok = self.hashing.verify(stored, password).await.map_err(|_| AuthError::Busy)?;
        if ok { Ok(login) } else { Err(AuthError::BadLogin) }
    }

    async fn check_cookie(&self, value: &str) -> Result<String, AuthError> {
        let secret = self.session_secret.as_ref().ok_or(AuthError::BadCookie)?.expose();
        let sid = cookie::unsign(value, secret).ok_or(AuthError::BadCookie)?;
        let sess = self.db.live_session(&sid).await.map_err(AuthError::Unavailable)?;
        sess.as_ref().and_then(cookie::session_user).ok_or(AuthError::BadCookie)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn find(
        auth: Option<Value>,
        query: Option<&str>,
        cookie: Option<&str>,
    ) -> Result<Option<Credentials>, AuthError> {
        Credentials::from_handshake(auth.as_ref(), query, cookie, "connect.sid")
    }

    #[test]
    fn sources_in_order() {
        let token = Credentials::Token("t".into());
        assert_eq!(
            find(Some(json!({"token": "t"})), Some("token=q"), None).ok().flatten(),
            Some(token)
        );
        assert_eq!(
            find(Some(json!({})), Some("EIO=3&login=a%40b&password=p+q"), None).ok().flatten(),
            Some(Credentials::Password { login: "a@b".into(), password: "p q".into() })
        );
        assert_eq!(
            find(None, Some("EIO=4&transport=polling"), Some("x=1; connect.sid=s%3Aa.b"))
                .ok()
                .flatten(),
            Some(Credentials::Cookie("s%3Aa.b".into()))
        );
        assert_eq!(find(None, Some("EIO=4"), None).ok().flatten(), None);
    }

    #[test]
    fn malformed_credentials() {
        assert!(matches!(find(Some(json!({"token": 5})), None, None), Err(AuthError::Malformed)));
        assert!(matches!(find(Some(json!({"login": "a"})), None, None), Err(AuthError::BadLogin)));
    }

    #[test]
    fn debug_hides_secrets() {
        let creds = Credentials::Password { login: "a".into(), password: "hunter2".into() };
        assert!(!format!("{creds:?}").contains("hunter2"));
    }
}
