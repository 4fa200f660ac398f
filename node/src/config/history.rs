//! `[history]`: what rooms on `/` keep of what was sent to them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid, string_or_list};

/// Room history on `/`: what is kept of the messages and invalidations sent to rooms.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Whether rooms keep a history and messages carry `offset` and `epoch`. Off, a
    /// reconnecting client gets its rooms back but no missed message. Default true.
    pub enabled: bool,
    /// Messages and invalidations kept per room; older ones are dropped. Default 500.
    pub size: usize,
    /// How long one is kept, and how long a silent room's history lives. Default `10m`.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Rooms whose name starts with one of these keep no history. Accepts a list or a
    /// comma-separated string. Default: empty.
    #[serde(deserialize_with = "string_or_list")]
    pub skip_prefixes: Vec<String>,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self { enabled: true, size: 500, ttl: Duration::from_secs(600), skip_prefixes: Vec::new() }
    }
}

impl HistoryConfig {
    /// Whether `room` keeps a history.
    pub fn keeps(&self, room: &str) -> bool {
        self.enabled && !self.skip_prefixes.iter().any(|p| room.starts_with(p.as_str()))
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && !(1..=100_000).contains(&self.size) {
            return Err(invalid("history.size", "must be 1 to 100000"));
        }
        if self.enabled && self.ttl < Duration::from_secs(1) {
            return Err(invalid("history.ttl", "must be at least 1s"));
        }
        if self.skip_prefixes.iter().any(String::is_empty) {
            return Err(invalid("history.skip_prefixes", "an empty prefix would skip every room"));
        }
        Ok(())
    }
}
