//! The seam between the adapter and the message bus.
//!
//! The adapter only needs a few things from Redis: (S)PUBLISH,
//! (P/S)SUBSCRIBE with messages routed back to it, (S)UNSUBSCRIBE and
//! PUBSUB (SHARD)NUMSUB. Two
//! drivers implement them: [`FredDriver`] on a real server and
//! [`MemoryBus`]/[`MemoryDriver`], which lets N-node clusters run in one
//! test process.

mod fred;
mod memory;

use std::{future::Future, sync::Arc};

use bytes::Bytes;
use tokio::sync::mpsc;

pub use self::fred::FredDriver;
pub use memory::{MemoryBus, MemoryDriver};

use crate::{
    metrics::{AdapterMetrics, incr},
    proto::glob_match,
};

/// A message received from the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The channel it was published on.
    pub channel: String,
    /// The raw payload.
    pub payload: Bytes,
}

/// A channel or a glob pattern to listen to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subscription {
    /// SUBSCRIBE to one channel.
    Channel(String),
    /// PSUBSCRIBE to a pattern.
    Pattern(String),
    /// SSUBSCRIBE to a shard channel (Redis 7+). Shard channels are apart
    /// from classic ones: only SPUBLISH reaches them.
    Shard(String),
}

impl Subscription {
    /// Whether a message on `channel` is delivered through this subscription.
    pub fn matches(&self, channel: &str) -> bool {
        match self {
            Self::Channel(c) | Self::Shard(c) => c == channel,
            Self::Pattern(p) => glob_match(p, channel),
        }
    }
}

/// Where a driver hands received messages: a bounded queue that drops (and
/// counts) when full, so a slow namespace never makes the bus buffer grow.
#[derive(Debug, Clone)]
pub struct MessageSink {
    tx: mpsc::Sender<Message>,
    metrics: Arc<AdapterMetrics>,
}

impl MessageSink {
    /// A sink into `tx`, counting into `metrics`.
    pub fn new(tx: mpsc::Sender<Message>, metrics: Arc<AdapterMetrics>) -> Self {
        Self { tx, metrics }
    }

    /// Queues `msg`. Returns `false` once the receiving side is gone.
    pub fn deliver(&self, msg: Message) -> bool {
        incr(&self.metrics.received);
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(msg)) => {
                incr(&self.metrics.dropped);
                tracing::warn!(channel = %msg.channel, "adapter inbound queue full, message dropped");
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// A bus failure.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The Redis client failed (disconnected, timed out, refused).
    #[error("redis: {0}")]
    Redis(#[from] ::fred::error::Error),
    /// The bus is down (Redis lost and not yet reconnected, or the in-memory bus
    /// marked down): nothing was sent.
    #[error("bus unavailable")]
    Unavailable,
}

/// A publish/subscribe bus with Redis semantics: at-most-once delivery to
/// the subscribers present at publish time.
pub trait Driver: Send + Sync + 'static {
    /// PUBLISH `payload` on `channel`.
    fn publish(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// Routes messages matching `subs` to `sink`, then tells the server.
    /// The routes stay in place even when the server cannot be reached now:
    /// the driver subscribes again after every reconnection.
    fn subscribe(
        &self,
        subs: Vec<Subscription>,
        sink: MessageSink,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// SPUBLISH `payload` on the shard channel `channel`.
    fn spublish(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// Drops the routes of `subs` and tells the server.
    fn unsubscribe(
        &self,
        subs: Vec<Subscription>,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// PUBSUB NUMSUB: how many connections subscribe to `channel`.
    fn numsub(&self, channel: String) -> impl Future<Output = Result<u64, DriverError>> + Send;

    /// PUBSUB SHARDNUMSUB: how many connections subscribe to the shard
    /// channel `channel`.
    fn shard_numsub(
        &self,
        channel: String,
    ) -> impl Future<Output = Result<u64, DriverError>> + Send;

    /// Leaves the bus: every subscription ends at once.
    fn close(&self) -> impl Future<Output = ()> + Send;

    /// Whether the bus is usable now: publishes go out and subscriptions are in place.
    /// While it is not, publishes fail at once with [`DriverError::Unavailable`].
    fn is_connected(&self) -> bool;
}
