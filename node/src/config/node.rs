//! `[node]`: this node's identity and liveness in the cluster.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// This node's identity and liveness in the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Node id written into session rows. Default: the host name and a random suffix,
    /// so two processes on one host never share an id.
    pub id: Option<String>,
    /// How often the node records its heartbeat and sweeps dead nodes. Default `5s`.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// Silence after which a node counts as dead and another node removes its session
    /// rows and lobby memberships. Default `30s`; at least twice the interval.
    #[serde(with = "humantime_serde")]
    pub dead_after: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: None,
            heartbeat_interval: Duration::from_secs(5),
            dead_after: Duration::from_secs(30),
        }
    }
}

impl NodeConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(id) = &self.id {
            let ok = !id.is_empty()
                && id.len() <= 64
                && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                return Err(invalid("node.id", "1-64 characters of [A-Za-z0-9._-]"));
            }
        }
        if self.heartbeat_interval.is_zero() {
            return Err(invalid("node.heartbeat_interval", "must be longer than zero"));
        }
        if self.dead_after < self.heartbeat_interval * 2 {
            return Err(invalid(
                "node.dead_after",
                "must be at least twice node.heartbeat_interval",
            ));
        }
        Ok(())
    }

    /// The configured id, or one made from the host name and a random suffix.
    pub(super) fn id_or_generated(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "node".into());
            let host: String =
                host.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(48).collect();
            format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
        })
    }
}
