//! Adapter settings.

use std::{fmt, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::proto::SubscriptionMode;

/// Which wire protocol the adapter speaks. Every server of a cluster must
/// use the same mode (and, in sharded mode, the same subscription mode).
///
/// In configuration (serde, [`Display`](fmt::Display)) it is spelt
/// `classic` or `sharded`, without the subscription mode, which Node also
/// takes as an option apart: `sharded` reads as the default
/// [`SubscriptionMode::Dynamic`], and
/// [`with_subscription_mode`](Self::with_subscription_mode) sets another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdapterMode {
    /// Node's `createAdapter`: PUBLISH/(P)SUBSCRIBE, `key-request#`/
    /// `key-response#` channels. Works on a single Redis and on a Redis
    /// Cluster (where every PUBLISH is copied to every node).
    #[default]
    Classic,
    /// Node's `createShardedAdapter` (Redis 7+): SPUBLISH/SSUBSCRIBE on
    /// `key#nsp#` channels, so a Redis Cluster routes each message to the
    /// one shard that owns its channel.
    Sharded {
        /// Which channels a server listens to (Node's `subscriptionMode`).
        subscription_mode: SubscriptionMode,
    },
}

/// [`AdapterMode`] as configuration spells it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ModeName {
    Classic,
    Sharded,
}

impl AdapterMode {
    /// The name in configuration, as serde reads and writes it.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Sharded { .. } => "sharded",
        }
    }

    /// This mode with `subscription_mode` in sharded mode; classic mode has
    /// none and is returned as it is.
    #[must_use]
    pub const fn with_subscription_mode(self, subscription_mode: SubscriptionMode) -> Self {
        match self {
            Self::Classic => Self::Classic,
            Self::Sharded { .. } => Self::Sharded { subscription_mode },
        }
    }
}

impl fmt::Display for AdapterMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AdapterMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Classic => ModeName::Classic,
            Self::Sharded { .. } => ModeName::Sharded,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AdapterMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match ModeName::deserialize(deserializer)? {
            ModeName::Classic => Self::Classic,
            ModeName::Sharded => Self::Sharded { subscription_mode: SubscriptionMode::default() },
        })
    }
}

/// How the adapter talks to Redis and to its peers. Every field has a
/// documented default; the node builds this from its own config tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterConfig {
    /// Redis URL: `redis://[user:pass@]host:port[/db]` for one server,
    /// `redis-cluster://[user:pass@]host:port[?node=host:port&...]` for a
    /// Redis Cluster (any reachable nodes; the rest are discovered).
    /// Default `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// Treat a `redis://` URL as the seed node of a Redis Cluster, as a
    /// `redis-cluster://` URL is. Default `false`.
    pub cluster: bool,
    /// Classic or sharded pub/sub. Default [`AdapterMode::Classic`].
    pub mode: AdapterMode,
    /// Channel prefix: the `key` option of Node's classic adapter and
    /// emitter, the `channelPrefix` option of its sharded adapter.
    /// Default `socket.io`.
    pub key: String,
    /// How long a cluster request (fetch sockets, rooms, server-side emit
    /// with acks) waits for every server. Also bounds one Redis command.
    /// Default 5 s, as Node's `requestsTimeout`.
    pub request_timeout: Duration,
    /// Answer requests on the asker's own channel (`key-response#nsp#uid#`),
    /// which every `@socket.io/redis-adapter` 8.x subscribes to; `false`
    /// answers on the shared `key-response#nsp#`, as Node does by default
    /// (needed only for peers older than 7.2). Default `true`.
    pub reply_on_own_channel: bool,
    /// Bound of every inbound queue (per namespace, per pending request) and
    /// of the Redis client's message fan-out; a full queue drops (and
    /// counts) messages instead of growing. Default 4096.
    pub queue_capacity: usize,
    /// First delay between reconnection attempts; doubles up to
    /// `reconnect_max_delay`. Default 100 ms.
    pub reconnect_min_delay: Duration,
    /// Longest delay between reconnection attempts. Default 5 s.
    pub reconnect_max_delay: Duration,
    /// Sharded mode with a dynamic subscription mode: how often the rooms
    /// and sockets of each namespace are compared with its room-channel
    /// subscriptions (socketioxide reports no room creation or deletion).
    /// A room joined on this server is reachable through its room channel
    /// at most this long (plus one Redis round trip) later. The adapter's
    /// own join/leave operations sync at once. Default 50 ms.
    pub room_sync_interval: Duration,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".into(),
            cluster: false,
            mode: AdapterMode::Classic,
            key: "socket.io".into(),
            request_timeout: Duration::from_secs(5),
            reply_on_own_channel: true,
            queue_capacity: 4096,
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(5),
            room_sync_interval: Duration::from_millis(50),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBSCRIPTION_MODES: [SubscriptionMode; 3] =
        [SubscriptionMode::Static, SubscriptionMode::Dynamic, SubscriptionMode::DynamicPrivate];

    fn modes() -> Vec<AdapterMode> {
        let sharded =
            SUBSCRIPTION_MODES.map(|subscription_mode| AdapterMode::Sharded { subscription_mode });
        [AdapterMode::Classic].into_iter().chain(sharded).collect()
    }

    #[test]
    fn adapter_modes_are_spelt_as_the_node_config_spells_them() {
        let spelt: Vec<String> =
            modes().iter().map(|m| serde_json::to_string(m).unwrap()).collect();
        assert_eq!(spelt, [r#""classic""#, r#""sharded""#, r#""sharded""#, r#""sharded""#]);
        for mode in modes() {
            assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{mode}\""));
        }
        let classic: AdapterMode = serde_json::from_str(r#""classic""#).unwrap();
        assert_eq!(classic, AdapterMode::Classic);
        // Node's default subscription mode, until the config says another.
        let sharded: AdapterMode = serde_json::from_str(r#""sharded""#).unwrap();
        assert_eq!(sharded, AdapterMode::Sharded { subscription_mode: SubscriptionMode::Dynamic });
    }

    #[test]
    fn an_unknown_adapter_mode_is_refused_with_the_accepted_names() {
        for bad in ["Sharded", "cluster", ""] {
            let error =
                serde_json::from_str::<AdapterMode>(&format!("\"{bad}\"")).unwrap_err().to_string();
            let expected = format!("unknown variant `{bad}`, expected `classic` or `sharded`");
            assert!(error.starts_with(&expected), "{error}");
        }
    }

    #[test]
    fn subscription_modes_are_spelt_as_in_node() {
        for (mode, name) in
            SUBSCRIPTION_MODES.into_iter().zip(["static", "dynamic", "dynamic-private"])
        {
            assert_eq!(mode.as_str(), name);
            assert_eq!(mode.to_string(), name);
            assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<SubscriptionMode>(&format!("\"{name}\"")).unwrap(),
                mode
            );
        }
        assert!(serde_json::from_str::<SubscriptionMode>(r#""dynamic_private""#).is_err());
    }

    #[test]
    fn the_subscription_mode_is_set_in_sharded_mode_only() {
        let sharded = AdapterMode::Sharded { subscription_mode: SubscriptionMode::Dynamic };
        for subscription_mode in SUBSCRIPTION_MODES {
            assert_eq!(
                sharded.with_subscription_mode(subscription_mode),
                AdapterMode::Sharded { subscription_mode }
            );
            assert_eq!(
                AdapterMode::Classic.with_subscription_mode(subscription_mode),
                AdapterMode::Classic
            );
        }
    }
}
