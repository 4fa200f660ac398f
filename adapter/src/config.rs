//! Adapter settings.

use std::time::Duration;

/// How the adapter talks to Redis and to its peers. Every field has a
/// documented default; the node builds this from its own config tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterConfig {
    /// Redis URL (`redis://[user:pass@]host:port[/db]`).
    /// Default `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// Channel prefix, the `key` option of the Node adapter and emitter.
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
}

impl Default for AdapterConfig {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".into(),
            key: "socket.io".into(),
            request_timeout: Duration::from_secs(5),
            reply_on_own_channel: true,
            queue_capacity: 4096,
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(5),
        }
    }
}
