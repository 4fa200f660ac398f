//! Counters the node exports; plain atomics, no metrics library.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the adapter did since start. Cheap to update, read with
/// [`AdapterMetrics::snapshot`]. Shared by every namespace of a [`Cluster`](crate::Cluster).
#[derive(Debug, Default)]
pub struct AdapterMetrics {
    pub(crate) published: AtomicU64,
    pub(crate) publish_errors: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) redis_errors: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) request_timeouts: AtomicU64,
}

/// A point-in-time copy of [`AdapterMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Messages published (broadcasts, requests, responses).
    pub published: u64,
    /// Publishes that failed (Redis down or slow); the remote part was lost.
    pub publish_errors: u64,
    /// Messages received on any channel.
    pub received: u64,
    /// Received messages refused as malformed (logged, then dropped).
    pub decode_errors: u64,
    /// Received messages dropped because a bounded queue was full.
    pub dropped: u64,
    /// Connection and protocol errors reported by the Redis client.
    pub redis_errors: u64,
    /// Reconnections to Redis after a lost connection.
    pub reconnects: u64,
    /// Cluster requests that ended before every server answered.
    pub request_timeouts: u64,
}

impl AdapterMetrics {
    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            published: get(&self.published),
            publish_errors: get(&self.publish_errors),
            received: get(&self.received),
            decode_errors: get(&self.decode_errors),
            dropped: get(&self.dropped),
            redis_errors: get(&self.redis_errors),
            reconnects: get(&self.reconnects),
            request_timeouts: get(&self.request_timeouts),
        }
    }
}

/// Adds one to a counter.
pub(crate) fn incr(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
