//! Password hashing with argon2id and the login name rules.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// A login is 1-64 characters of `[A-Za-z0-9_.@-]`: safe in logs, URLs and JSON.
pub fn valid_login(login: &str) -> bool {
    (1..=64).contains(&login.len())
        && login.chars().all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c))
}

/// Hashing failed (it only does on absurd parameters or a broken RNG).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// An argon2id PHC string for `password`, with a fresh random salt.
pub fn hash(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Checks `password` against a stored PHC string. `None` (unknown user) still spends
/// the time of a real check, so response times do not tell which logins exist.
/// CPU-bound: call it off the async runtime.
pub fn verify(stored: Option<&str>, password: &str) -> bool {
    static DECOY: OnceLock<String> = OnceLock::new();
    let decoy = DECOY.get_or_init(|| hash("decoy password").unwrap_or_default());
    let (phc, known) = match stored {
        Some(phc) => (phc, true),
        None => (decoy.as_str(), false),
    };
    let matches = PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
    });
    known && matches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let phc = hash("s3cret!").expect("hash");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify(Some(&phc), "s3cret!"));
        assert!(!verify(Some(&phc), "s3cret"));
        assert!(!verify(None, "s3cret!"));
        assert!(!verify(Some("not a hash"), "s3cret!"));
    }

    #[test]
    fn login_rules() {
        assert!(valid_login("alice.b@x-y_z"));
        assert!(!valid_login(""));
        assert!(!valid_login("a b"));
        assert!(!valid_login(&"a".repeat(65)));
    }
}
