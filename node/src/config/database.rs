//! `[database]`: where session rows and users live.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, at_least_one, invalid, longer_than_zero};

/// Where session rows and users live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://<path>` (created with its schema on first run) or `postgres://…`.
    /// Default `sqlite://roomcast.db`, in the working directory. A secret: it may hold
    /// a password.
    pub url: Secret,
    /// Largest number of pooled connections. Default 10.
    pub max_connections: u32,
    /// How long to wait for a pooled connection before failing. Default `5s`.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Lifetime of a socket's session row unless refreshed. Default `24h`.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://roomcast.db".into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            session_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

impl DatabaseConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        longer_than_zero("database.acquire_timeout", self.acquire_timeout)?;
        longer_than_zero("database.session_ttl", self.session_ttl)?;
        let url = self.url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid("database.url", "must start with sqlite: or postgres://"));
        }
        at_least_one("database.max_connections", self.max_connections)
    }
}
