//! `[auth]`: the credentials a node accepts (JWTs, express-session cookies,
//! passwords) and the brakes on password guessing; `[admin]`: the operators' token.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, invalid, longer_than_zero, string_or_list};

/// Accepted credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Namespaces that admit clients without credentials. Default `/lobby` and
    /// `/chat`, open in the Flask lobby and the Socket.IO chat example they come from.
    /// `/` always requires authentication.
    #[serde(deserialize_with = "string_or_list")]
    pub guest_namespaces: Vec<String>,
    /// JSON Web Tokens.
    pub jwt: JwtConfig,
    /// express-session cookies.
    pub session: SessionCookieConfig,
    /// Brakes on password guessing.
    pub rate_limit: RateLimitConfig,
}

/// Failed password logins allowed per window, per login and client address and per
/// client address; a login failing from many addresses is slowed down, never locked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The counting window. Default `60s`.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Failures of one login from one address per window before that login is refused
    /// from that address. Other addresses keep trying that login. Default 5.
    pub failures_per_login: u32,
    /// Failures from one address per window before it is refused. Default 20.
    pub failures_per_address: u32,
    /// Wait added before each password check of a login that failed
    /// `failures_per_login` times in the window from all addresses together. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub login_delay: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            failures_per_login: 5,
            failures_per_address: 20,
            login_delay: Duration::from_secs(1),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            guest_namespaces: vec!["/lobby".into(), "/chat".into()],
            jwt: JwtConfig::default(),
            session: SessionCookieConfig::default(),
            rate_limit: RateLimitConfig::default(),
        }
    }
}

/// JSON Web Tokens. Token authentication is off until a secret or a public key is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// The one accepted algorithm: `HS256`, `RS256` or `ES256`. Default `HS256`.
    /// Accepting exactly one closes the door on algorithm confusion.
    pub algorithm: JwtAlgorithm,
    /// HS256 shared secret, at least 32 bytes. Default: unset.
    pub secret: Option<Secret>,
    /// PEM public key for RS256/ES256 verification. Default: unset.
    pub public_key_file: Option<PathBuf>,
    /// PEM private key for RS256/ES256, used only by `roomcast token`. Default: unset.
    pub private_key_file: Option<PathBuf>,
    /// Required `iss`. Default: unset, not checked.
    pub issuer: Option<String>,
    /// Required `aud`. Default: unset, not checked.
    pub audience: Option<String>,
    /// Lifetime of tokens minted by `roomcast token`. Default `1h`.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Clock skew tolerated on `exp` and `nbf`. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            algorithm: JwtAlgorithm::Hs256,
            secret: None,
            public_key_file: None,
            private_key_file: None,
            issuer: None,
            audience: None,
            ttl: Duration::from_secs(3600),
            leeway: Duration::from_secs(30),
        }
    }
}

/// The JWT signature algorithms a node can be configured with, spelled as in a
/// token's `alg` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 and a shared secret.
    #[serde(rename = "HS256")]
    Hs256,
    /// RSA PKCS#1 v1.5 with SHA-256 and a key pair.
    #[serde(rename = "RS256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256 and a key pair.
    #[serde(rename = "ES256")]
    Es256,
}

/// express-session cookies. Cookie authentication is off until a secret is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionCookieConfig {
    /// The Express application's session secret. Default: unset.
    pub secret: Option<Secret>,
    /// Cookie name. Default `connect.sid`, express-session's.
    pub cookie: String,
}

impl Default for SessionCookieConfig {
    fn default() -> Self {
        Self { secret: None, cookie: "connect.sid".into() }
    }
}

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.jwt.validate()?;
        let limit = &self.rate_limit;
        longer_than_zero("auth.rate_limit.window", limit.window)?;
        if limit.failures_per_login == 0 || limit.failures_per_address == 0 {
            return Err(invalid("auth.rate_limit", "failure limits must be at least 1"));
        }
        let session = &self.session;
        if session.secret.as_ref().is_some_and(|s| s.expose().is_empty()) {
            return Err(invalid("auth.session.secret", "must not be empty"));
        }
        if session.cookie.is_empty() || !session.cookie.chars().all(|c| c.is_ascii_graphic()) {
            return Err(invalid("auth.session.cookie", "must be a cookie name"));
        }
        Ok(())
    }
}

impl JwtConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        longer_than_zero("auth.jwt.ttl", self.ttl)?;
        match self.algorithm {
            JwtAlgorithm::Hs256 => {
                if self.public_key_file.is_some() || self.private_key_file.is_some() {
                    return Err(invalid(
                        "auth.jwt.public_key_file",
                        "key files need RS256 or ES256",
                    ));
                }
                if self.secret.as_ref().is_some_and(|s| s.expose().len() < 32) {
                    return Err(invalid("auth.jwt.secret", "must be at least 32 bytes"));
                }
            }
            JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 => {
                if self.secret.is_some() {
                    return Err(invalid("auth.jwt.secret", "a shared secret needs HS256"));
                }
                if self.public_key_file.is_none() {
                    return Err(invalid("auth.jwt.public_key_file", "required with RS256/ES256"));
                }
            }
        }
        Ok(())
    }
}

/// The operators' admin API on the ops port (`/admin/...`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token the admin API requires, at least 16 characters. Default: unset,
    /// the admin API is off and its routes answer 404.
    pub token: Option<Secret>,
}

/// Shortest admin token accepted: shorter ones are guessable.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

impl AdminConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.token.as_ref().is_some_and(|t| t.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS) {
            return Err(invalid("admin.token", "must be at least 16 characters"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_env, load_error_with};

    #[test]
    fn algorithms_are_spelled_as_in_tokens() {
        let key = ("ROOMCAST_JWT_PUBLIC_KEY_FILE", "/nonexistent.pem");
        for (name, algorithm, vars) in [
            ("HS256", JwtAlgorithm::Hs256, &[][..]),
            ("RS256", JwtAlgorithm::Rs256, &[key][..]),
            ("ES256", JwtAlgorithm::Es256, &[key][..]),
        ] {
            let vars = [&[("ROOMCAST_JWT_ALGORITHM", name)][..], vars].concat();
            let config = load_env(&vars).expect(name);
            assert_eq!(config.auth.jwt.algorithm, algorithm);
            let shown = toml::to_string(&config.auth.jwt).expect("serialisable");
            assert!(shown.contains(&format!("algorithm = \"{name}\"")), "{shown}");
        }
        let err =
            load_error_with(&[("ROOMCAST_JWT_ALGORITHM", "hs256")], "spelled in capitals only");
        assert!(err.contains("auth.jwt.algorithm"), "{err}");
    }
}
