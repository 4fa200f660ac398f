//! Wiring a node, top to bottom: store, credentials, the engine with its apps, HTTP,
//! and a `Supervisor` (`lifecycle.rs`) that drains before it exits.

use std::net::SocketAddr;

use axum::Router;
use axum::http::{HeaderValue, Method};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

pub mod accept;
pub mod admin;
mod engine;
pub mod http;
mod lifecycle;

use crate::apps;
use roomcast_adapter::AdapterMode;

use crate::config::{Config, RedisConfig};
use crate::core::auth::{AuthMethod, Authenticator};
use crate::core::build::BuildInfo;
use crate::core::db::{Db, DbError};
use crate::core::metrics::Metrics;
use crate::core::reaper::RowReaper;
use crate::core::reply::Packet;
use crate::core::requests::Dispatcher;
use crate::core::state::AppState;
use engine::{Engine, Started};
use lifecycle::Supervisor;

/// A node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store failed to connect or migrate.
    #[error(transparent)]
    Database(#[from] DbError),
    /// A configured key could not be loaded.
    #[error(transparent)]
    Keys(#[from] crate::core::auth::jwt::KeyError),
    /// Redis could not be reached at start-up.
    #[error("redis: {0}")]
    Redis(#[from] roomcast_adapter::driver::DriverError),
    /// The request handlers could not start (the worker queue's Redis).
    #[error(transparent)]
    Requests(#[from] crate::core::requests::RequestsStartError),
    /// An app could not start what it keeps (the workspace's room history store).
    #[error(transparent)]
    Apps(#[from] apps::StartError),
    /// The adapter could not subscribe a namespace's channels.
    #[error("redis adapter: {0}")]
    AdapterInit(#[from] roomcast_adapter::InitError),
    /// An address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A node bound to its ports, ready to run.
pub struct Node {
    state: AppState,
    engine: Engine,
    app: Router,
    listener: TcpListener,
    ops: Option<(Router, TcpListener)>,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })
}

/// `*` lets any page in without its cookies (`Access-Control-Allow-Origin: *`, no
/// credentials: browsers refuse the two together); a list of origins lets those pages
/// in with their cookies. A preflight is answered with the headers it asked for.
fn cors(origins: &[String]) -> CorsLayer {
    let any = origins.iter().any(|o| o == "*");
    let allow = if any {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_credentials(!any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
}

impl Node {
    /// Connects and migrates the store, loads keys, starts the engine with every app
    /// and binds the listeners.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let state = shared_state(config).await?;
        let server = &state.config.server;
        // The ops routes go on their own listener, or with the main routes.
        let (routes, ops_routes, ops_listener) = match server.ops_listen {
            Some(addr) => (
                http::demo_routes(),
                Some(http::ops_routes(state.clone())),
                Some(bind(addr).await?),
            ),
            None => (http::demo_routes().merge(http::ops_routes(state.clone())), None, None),
        };
        let Started { engine, app, ops } = Engine::start(&state, routes, ops_routes).await?;
        let ops = ops.zip(ops_listener);
        let app = app
            .layer(axum::middleware::from_fn_with_state(state.clone(), http::gate_engine))
            .layer(axum::middleware::from_fn_with_state(state.clone(), http::serve_client))
            .layer(cors(&server.cors_origins));
        let listener = bind(server.listen).await?;
        Ok(Self { state, engine, app, listener, ops })
    }

    /// The address Socket.IO listens on.
    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address.
        self.listener.local_addr().unwrap_or_else(|_| self.state.config.server.listen)
    }

    /// The address the ops endpoints listen on.
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops
            .as_ref()
            .and_then(|(_, l)| l.local_addr().ok())
            .unwrap_or_else(|| self.local_addr())
    }

    /// Shared state, for tests and the CLI.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled, then drains (see
    /// `Supervisor::shut_down`).
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let Node { state, engine, app, listener, ops } = self;
        let addr = listener.local_addr()?;
        let ops_addr = ops.as_ref().map(|(_, l)| l.local_addr()).transpose()?;
        let supervisor = Supervisor::new(state.clone(), engine);
        supervisor.serve(app, listener);
        if let Some((router, listener)) = ops {
            tracing::info!(addr = %listener.local_addr()?, "ops listening");
            supervisor.serve(router, listener);
        }
        supervisor.beat().await.map_err(std::io::Error::other)?;
        state.set_ready(true);
        log_listening(&state, addr, ops_addr.unwrap_or(addr));
        shutdown.cancelled().await;
        supervisor.shut_down().await;
        Ok(())
    }
}

/// The store migrated, the credential checks, metrics, the request dispatcher and the
/// row reaper, bundled as the state every handler shares.
async fn shared_state(config: Config) -> Result<AppState, StartError> {
    let node_id = config.node_id();
    let db = Db::connect(&config.database).await?;
    db.migrate().await?;
    let auth = Authenticator::new(&config.auth, db.clone())?;
    let metrics = Metrics::new();
    let methods = [AuthMethod::Password, AuthMethod::Token, AuthMethod::Cookie];
    metrics.preset(&apps::paths(), &methods.map(AuthMethod::as_str));
    for ns in apps::paths() {
        metrics.show_delivery_series(ns, &Packet::ALL.map(Packet::as_str));
    }
    let requests = Dispatcher::start(&config, &node_id, db.clone(), metrics.clone()).await?;
    let reaper = RowReaper::start(db.clone(), metrics.clone(), config.rooms.resume_ttl);
    Ok(AppState::new(config, node_id, db, auth, metrics, requests, reaper))
}

/// Logged once ready: tools wait for this line before connecting. It also says what
/// runs, for whoever reads the log first.
fn log_listening(state: &AppState, addr: SocketAddr, ops: SocketAddr) {
    let build = BuildInfo::CURRENT;
    let config = &state.config;
    tracing::info!(
        %addr,
        %ops,
        node = %state.node_id,
        version = %build.version,
        commit = %build.commit,
        store = %store_kind(config.database.url.expose()),
        adapter = %adapter_kind(&config.redis),
        auth = %auth_methods(config).join(","),
        guests = %config.auth.guest_namespaces.join(","),
        "listening"
    );
}

/// The store's kind, never its URL (which may hold a password).
fn store_kind(url: &str) -> &'static str {
    if url.starts_with("sqlite:") { "sqlite" } else { "postgres" }
}

/// `local` (one node) or the Redis adapter's mode.
fn adapter_kind(redis: &RedisConfig) -> &'static str {
    match (&redis.url, redis.mode) {
        (None, _) => "local",
        (Some(_), AdapterMode::Classic) => "redis-classic",
        (Some(_), AdapterMode::Sharded { .. }) => "redis-sharded",
    }
}

/// The credentials the node accepts: passwords always, tokens and cookies once keyed.
fn auth_methods(config: &Config) -> Vec<&'static str> {
    let jwt = &config.auth.jwt;
    let methods = [
        (AuthMethod::Password, true),
        (AuthMethod::Token, jwt.secret.is_some() || jwt.public_key_file.is_some()),
        (AuthMethod::Cookie, config.auth.session.secret.is_some()),
    ];
    methods.into_iter().filter(|(_, on)| *on).map(|(m, _)| m.as_str()).collect()
}
