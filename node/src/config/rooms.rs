//! `[rooms]`: rules for user-named rooms.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, at_least_one, longer_than_zero};

/// Rules for user-named rooms.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// Rooms one socket may be in at once. Default 100.
    pub max_per_socket: usize,
    /// How long a gone socket's rooms wait for its client to come back with its
    /// recovery credential (or `resume`): after a disconnect, a drain, or the sweep of
    /// a dead node. Default `60s`.
    #[serde(with = "humantime_serde")]
    pub resume_ttl: Duration,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self { max_per_socket: 100, resume_ttl: Duration::from_secs(60) }
    }
}

impl RoomsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        longer_than_zero("rooms.resume_ttl", self.resume_ttl)?;
        at_least_one("rooms.max_per_socket", self.max_per_socket)
    }
}
