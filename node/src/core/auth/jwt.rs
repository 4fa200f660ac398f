//! JSON Web Tokens: verification for the connect middleware, minting for the CLI.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{JwtAlgorithm, JwtConfig};

/// Claims Roomcast reads and writes. Other claims are ignored.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user's login.
    pub sub: String,
    /// Expiry, seconds since the epoch (required).
    pub exp: u64,
    /// Issue time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// Anything else: signature, algorithm, issuer, audience, shape.
    #[error("invalid token")]
    Invalid,
}

/// The configured keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read.
    #[error("auth.jwt: cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A key is not a PEM key of the configured algorithm.
    #[error("auth.jwt: {field}: {source}")]
    Parse {
        /// The config field holding the key.
        field: &'static str,
        /// Why.
        source: jsonwebtoken::errors::Error,
    },
    /// Minting needs a signing key that is not configured.
    #[error("auth.jwt: no signing key configured (secret or private_key_file)")]
    NoSigningKey,
    /// Signing failed.
    #[error("auth.jwt: signing failed: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

fn algorithm(config: &JwtConfig) -> Algorithm {
    match config.algorithm {
        JwtAlgorithm::Hs256 => Algorithm::HS256,
        JwtAlgorithm::Rs256 => Algorithm::RS256,
        JwtAlgorithm::Es256 => Algorithm::ES256,
    }
}

fn read_pem(path: &std::path::Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path)
        .map_err(|source| KeyError::Read { path: path.display().to_string(), source })
}

/// Verifies tokens against exactly one algorithm and key.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl JwtVerifier {
    /// `None` when token authentication is not configured.
    pub fn from_config(config: &JwtConfig) -> Result<Option<Self>, KeyError> {
        let alg = algorithm(config);
        let key = match (alg, &config.secret, &config.public_key_file) {
            (Algorithm::HS256, Some(secret), _) => {
                DecodingKey::from_secret(secret.expose().as_bytes())
            }
            (Algorithm::RS256, _, Some(path)) => DecodingKey::from_rsa_pem(&read_pem(path)?)
                .map_err(|source| KeyError::Parse { field: "public_key_file", source })?,
            (Algorithm::ES256, _, Some(path)) => DecodingKey::from_ec_pem(&read_pem(path)?)
                .map_err(|source| KeyError::Parse { field: "public_key_file", source })?,
            _ => return Ok(None),
        };
        let mut validation = Validation::new(alg);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &config.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.required_spec_claims.insert("aud".into());
            }
            // Without a configured audience a token's `aud` cannot be checked against
            // anything; it is ignored rather than refused.
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".into());
        }
        Ok(Some(Self { key, validation }))
    }

    /// The login a valid token names.
    pub fn verify(&self, token: &str) -> Result<String, TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) if !data.claims.sub.is_empty() => Ok(data.claims.sub),
            Ok(_) => Err(TokenError::Invalid),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Invalid,
            }),
        }
    }
}

/// Mints a token for `login` with the configured key, issuer, audience and lifetime.
pub fn mint(config: &JwtConfig, login: &str) -> Result<String, KeyError> {
    let alg = algorithm(config);
    let key = match (alg, &config.secret, &config.private_key_file) {
        (Algorithm::HS256, Some(secret), _) => EncodingKey::from_secret(secret.expose().as_bytes()),
        (Algorithm::RS256, _, Some(path)) => EncodingKey::from_rsa_pem(&read_pem(path)?)
            .map_err(|source| KeyError::Parse { field: "private_key_file", source })?,
        (Algorithm::ES256, _, Some(path)) => EncodingKey::from_ec_pem(&read_pem(path)?)
            .map_err(|source| KeyError::Parse { field: "private_key_file", source })?,
        _ => return Err(KeyError::NoSigningKey),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let claims = Claims {
        sub: login.to_owned(),
        exp: now + config.ttl.as_secs(),
        iat: Some(now),
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
    };
    jsonwebtoken::encode(&Header::new(alg), &claims, &key).map_err(KeyError::Sign)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config() -> JwtConfig {
        JwtConfig {
            secret: Some(SECRET.into()),
            issuer: Some("roomcast".into()),
            audience: Some("workspace".into()),
            leeway: std::time::Duration::from_secs(0),
            ..JwtConfig::default()
        }
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
    }

    fn signed(claims: serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encode")
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::from_config(&config()).expect("keys").expect("configured")
    }

    #[test]
    fn minted_tokens_verify() {
        let token = mint(&config(), "alice").expect("mint");
        assert_eq!(verifier().verify(&token), Ok("alice".into()));
    }

    #[test]
    fn refuses_bad_claims() {
        let v = verifier();
        let base =
            json!({"sub": "alice", "iss": "roomcast", "aud": "workspace", "exp": now() + 60});
        let with = |key: &str, value: serde_json::Value| {
            let mut claims = base.clone();
            claims[key] = value;
            signed(claims, SECRET)
        };
        assert_eq!(v.verify(&with("exp", json!(now() - 10))), Err(TokenError::Expired));
        assert_eq!(v.verify(&with("nbf", json!(now() + 600))), Err(TokenError::NotYetValid));
        assert_eq!(v.verify(&with("iss", json!("someone"))), Err(TokenError::Invalid));
        assert_eq!(v.verify(&with("aud", json!("other"))), Err(TokenError::Invalid));
        assert_eq!(v.verify(&with("sub", json!(""))), Err(TokenError::Invalid));
        assert_eq!(
            v.verify(&signed(base.clone(), "another secret of enough length!")),
            Err(TokenError::Invalid)
        );
        let mut no_exp = base.clone();
        no_exp.as_object_mut().expect("object").remove("exp");
        assert_eq!(v.verify(&signed(no_exp, SECRET)), Err(TokenError::Invalid));
        assert_eq!(v.verify("not.a.token"), Err(TokenError::Invalid));
    }

    #[test]
    fn refuses_alg_none_and_confusion() {
        let v = verifier();
        let claims =
            json!({"sub": "alice", "iss": "roomcast", "aud": "workspace", "exp": now() + 60});
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        for header in [json!({"alg": "none", "typ": "JWT"}), json!({"alg": "HS512", "typ": "JWT"})]
        {
            let head = URL_SAFE_NO_PAD.encode(header.to_string());
            assert_eq!(v.verify(&format!("{head}.{body}.")), Err(TokenError::Invalid));
        }
        // An RS256 header over an HMAC signature: the verifier only knows HS256.
        let head = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string());
        let hs = signed(claims, SECRET);
        let sig = hs.rsplit('.').next().expect("signature");
        assert_eq!(v.verify(&format!("{head}.{body}.{sig}")), Err(TokenError::Invalid));
    }
}
