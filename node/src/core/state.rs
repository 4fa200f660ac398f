//! What every handler shares.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::http::Extensions;
use roomcast_adapter::Cluster;

use crate::config::Config;
use crate::core::auth::Authenticator;
use crate::core::db::Db;
use crate::core::guard::SessionOwners;
use crate::core::metrics::Metrics;
use crate::core::reaper::RowReaper;
use crate::core::requests::Dispatcher;

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
    /// The Redis adapter's handle, set once it is connected; unset on a single node.
    cluster: OnceLock<Cluster>,
    /// What the apps started for the node's life (their own stores), by type; set
    /// once at start-up, before the first socket.
    services: OnceLock<Extensions>,
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
        let owners = SessionOwners::new(config.server.max_unconnected_per_address);
        Self(Arc::new(Inner {
            config,
            node_id,
            db,
            auth,
            metrics,
            requests,
            owners,
            reaper,
            ready: AtomicBool::new(false),
            cluster: OnceLock::new(),
            services: OnceLock::new(),
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

impl AppState {
    /// Records the Redis adapter's handle (once, at start-up).
    pub fn set_cluster(&self, cluster: Cluster) {
        let _ = self.0.cluster.set(cluster);
    }

    /// The Redis adapter's handle, when the node is part of a cluster.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.0.cluster.get()
    }

    /// Records what the apps started (once, at start-up).
    pub fn set_services(&self, services: Extensions) {
        let _ = self.0.services.set(services);
    }

    /// The service of type `T` an app started, if it started one.
    pub fn service<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0.services.get()?.get::<T>()
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
