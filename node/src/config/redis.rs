//! `[redis]`: the cluster adapter.

use std::time::Duration;

use roomcast_adapter::{AdapterMode, SubscriptionMode};
use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, invalid, longer_than_zero};

/// The cluster adapter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://…` switches the Redis cluster adapter on. Default: unset, the
    /// in-process adapter (one node). A secret: it may hold a password.
    pub url: Option<Secret>,
    /// Channel prefix, the `key` option of Node's adapter and emitter; every node of a
    /// cluster, Roomcast or Node, must use the same. Default `socket.io`.
    pub key: String,
    /// How long a cluster-wide request (fetch sockets, rooms, server-side emit with
    /// acks) waits for every node. Default `5s`, as Node's `requestsTimeout`. In the
    /// sharded dynamic modes, also the longest a `join room` ack or a CONNECT waits for
    /// Redis to confirm the room channels.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// `classic` (Node's `createAdapter`: PUBLISH) or `sharded` (its
    /// `createShardedAdapter`: Redis 7 SPUBLISH, one shard per channel in a Redis
    /// Cluster). Every node of a cluster must use the same. Default `classic`.
    pub mode: AdapterMode,
    /// Sharded mode: `static`, `dynamic` or `dynamic-private`, as Node's
    /// `subscriptionMode`. Default `dynamic`. The adapter's own types, read with the
    /// adapter's spellings.
    pub subscription_mode: SubscriptionMode,
    /// Treat a `redis://` URL as a seed node of a Redis Cluster (a
    /// `redis-cluster://` URL always is). Default false.
    pub cluster: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            key: "socket.io".into(),
            request_timeout: Duration::from_secs(5),
            mode: AdapterMode::Classic,
            subscription_mode: SubscriptionMode::Dynamic,
            cluster: false,
        }
    }
}

impl RedisConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        longer_than_zero("redis.request_timeout", self.request_timeout)?;
        if let Some(url) = &self.url
            && !["redis://", "rediss://", "redis-cluster://", "rediss-cluster://"]
                .iter()
                .any(|scheme| url.expose().starts_with(scheme))
        {
            return Err(invalid(
                "redis.url",
                "must start with redis://, rediss:// or redis-cluster://",
            ));
        }
        if self.key.is_empty() || self.key.contains('#') {
            return Err(invalid("redis.key", "must be non-empty and without '#'"));
        }
        Ok(())
    }
}
