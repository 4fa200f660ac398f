//! What every handler shares.

use std::sync::{Arc, OnceLock};

use roomcast_adapter::Cluster;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::Authenticator;
use crate::config::Config;
use crate::db::Db;
use crate::guard::SessionOwners;
use crate::metrics::Metrics;
use crate::reaper::RowReaper;
use crate::requests::Dispatcher;

/// Shared, cheaply cloned state of a node.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The fields behind [`AppState`].
pub struct Inner {
    /// The validated configuration.
    pub config: Config,
    /// This node's id, written into session rows.
    pub node_id: String,
    /// The SQL store.
    pub db: Db,
    /// Credential checks.
    pub auth: Authenticator,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Where `request` events go.
    pub requests: Dispatcher,
    /// Which address each Engine.IO session belongs to.
    pub owners: SessionOwners,
    /// Deletes the rows of departed sockets, in batches.
    pub reaper: RowReaper,
    ready: AtomicBool,
    /// The Redis adapter, set once connected (cluster nodes only).
    pub cluster: OnceLock<Cluster>,
}

impl AppState {
    /// Bundles the parts; the node starts not ready.
    pub fn new(
        config: Config,
        node_id: String,
        db: Db,
        auth: Authenticator,
        metrics: Metrics,
        requests: Dispatcher,
        reaper: RowReaper,
    ) -> Self {
        Self(Arc::new(Inner {
            config,
            node_id,
            db,
            auth,
            metrics,
            requests,
            owners: SessionOwners::default(),
            reaper,
            ready: AtomicBool::new(false),
            cluster: OnceLock::new(),
        }))
    }

    /// Whether the node takes new sockets (readiness, and the connect middleware).
    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Acquire)
    }

    /// Turns readiness on (after start-up) or off (at shutdown).
    pub fn set_ready(&self, ready: bool) {
        self.0.ready.store(ready, Ordering::Release);
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
