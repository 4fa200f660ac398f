//! A configured value that must never reach a log line, an error or debug output.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret (a key, a token, a URL that may hold a password). `Debug` and `Display`
/// print [`Secret::PLACEHOLDER`]; only [`Secret::expose`] gives the value, so every
/// place that reads it says so.
///
/// Serialised as the plain value: figment takes the defaults through serde, and
/// `roomcast check-config` replaces the secrets it hides before it prints.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// What `Debug` and `Display` print instead of the value.
    pub const PLACEHOLDER: &'static str = "<hidden>";

    /// The value itself, for the code that needs it (a key, a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::PLACEHOLDER)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::PLACEHOLDER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_only_the_placeholder() {
        let secret = Secret::from("hunter2-hunter2");
        assert_eq!(format!("{secret:?}"), "<hidden>");
        assert_eq!(secret.to_string(), "<hidden>");
        assert_eq!(secret.expose(), "hunter2-hunter2");
    }

    #[test]
    fn loads_and_serialises_as_the_plain_value() {
        let secret: Secret = serde_json::from_str("\"s3cret\"").expect("a string");
        assert_eq!(secret.expose(), "s3cret");
        assert_eq!(serde_json::to_string(&secret).expect("serialisable"), "\"s3cret\"");
    }
}
