//! Adapter settings.

use std::time::Duration;

use crate::proto::SubscriptionMode;

/// Which wire protocol the adapter speaks. Every server of a cluster must
/// use the same mode (and, in sharded mode, the same subscription mode).
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
