//! Wiring a node, top to bottom: store, credentials, Socket.IO, HTTP, and a shutdown
//! that drains before it exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method};
use axum::serve::ListenerExt;
use roomcast_adapter::{AdapterConfig, AdapterMode, Cluster, ClusterAdapter, SubscriptionMode};
use socketioxide::SocketIo;
use socketioxide::adapter::{Adapter, Emitter, LocalAdapter};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::Authenticator;
use crate::config::{Config, RedisMode, SubscriptionModeConfig};
use crate::db::lobby::Membership;
use crate::db::resume::Ticket;
use crate::db::{Db, DbError};
use crate::metrics::Metrics;
use crate::reaper::RowReaper;
use crate::requests::Dispatcher;
use crate::session::Member;
use crate::state::AppState;
use crate::{handlers, http};

/// A node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store failed to connect or migrate.
    #[error(transparent)]
    Database(#[from] DbError),
    /// A configured key could not be loaded.
    #[error(transparent)]
    Keys(#[from] crate::auth::jwt::KeyError),
    /// Redis could not be reached at start-up.
    #[error("redis: {0}")]
    Redis(#[from] roomcast_adapter::driver::DriverError),
    /// The request handlers could not start (the worker queue's Redis).
    #[error(transparent)]
    Requests(#[from] crate::requests::RequestsStartError),
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

/// The Socket.IO server of a node, on whichever adapter the configuration picked.
#[derive(Clone)]
enum Engine {
    /// One node: rooms and broadcasts stay in this process.
    Local(SocketIo<LocalAdapter>),
    /// A cluster member: the Redis adapter carries rooms and broadcasts to the others.
    Cluster(SocketIo<ClusterAdapter<Emitter>>, Cluster),
}

impl Engine {
    /// Tells lobby members what a dead node's sweep removed.
    async fn announce_departures(&self, app: &AppState, left: &[Membership]) {
        match self {
            Engine::Local(io) => handlers::lobby::announce_departures(io, app, left).await,
            Engine::Cluster(io, _) => handlers::lobby::announce_departures(io, app, left).await,
        }
    }

    /// The rooms of this node's sockets on `/`, for their clients to resume elsewhere.
    fn tickets(&self) -> Vec<Ticket> {
        match self {
            Engine::Local(io) => tickets(io),
            Engine::Cluster(io, _) => tickets(io),
        }
    }

    /// The members of this node's sockets, every namespace.
    fn members(&self) -> Vec<Arc<Member>> {
        match self {
            Engine::Local(io) => members(io),
            Engine::Cluster(io, _) => members(io),
        }
    }

    /// Closes every connection, then the adapter's Redis connections.
    async fn close(self) {
        match self {
            Engine::Local(io) => io.close().await,
            Engine::Cluster(io, cluster) => {
                io.close().await;
                cluster.close().await;
            }
        }
    }
}

fn members<A: Adapter>(io: &SocketIo<A>) -> Vec<Arc<Member>> {
    handlers::NAMESPACES
        .iter()
        .filter_map(|ns| io.of(*ns))
        .flat_map(|ns| ns.sockets())
        .filter_map(|s| s.extensions.get::<Arc<Member>>())
        .collect()
}

fn tickets<A: Adapter>(io: &SocketIo<A>) -> Vec<Ticket> {
    let Some(ns) = io.of(handlers::workspace::NAMESPACE) else { return Vec::new() };
    ns.sockets()
        .into_iter()
        .filter_map(|s| {
            let member = s.extensions.get::<Arc<Member>>()?;
            let rooms = member.room_list();
            let sid = s.id.to_string();
            (!rooms.is_empty()).then(|| Ticket { sid, login: member.identity.user.clone(), rooms })
        })
        .collect()
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

fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        // Mirroring the request's origin (not `*`) keeps credentialed requests working.
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([axum::http::header::CONTENT_TYPE, axum::http::header::AUTHORIZATION])
}

impl Node {
    /// Connects and migrates the store, loads keys and binds the listeners.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let node_id = config.node_id();
        let db = Db::connect(&config.database).await?;
        db.migrate().await?;
        let auth = Authenticator::new(&config.auth, db.clone())?;
        let metrics = Metrics::new();
        let requests = Dispatcher::start(&config, &node_id, db.clone(), metrics.clone()).await?;
        let reaper = RowReaper::start(db.clone(), metrics.clone());
        let state = AppState::new(config, node_id, db, auth, metrics, requests, reaper);
        let server = &state.config.server;
        let max_payload = usize::try_from(server.max_payload).unwrap_or(usize::MAX);

        let builder = SocketIo::builder()
            .req_path(server.path.clone())
            .ping_interval(server.ping_interval)
            .ping_timeout(server.ping_timeout)
            .max_payload(server.max_payload)
            // engineioxide applies max_payload to polling bodies only; WebSocket messages
            // have their own limits (64 MiB by default), held to the same bound here.
            .ws_max_message_size(max_payload)
            .ws_max_frame_size(max_payload)
            // Packets queued per connection; a client that stops reading fills it and
            // further emits to it are dropped until its heartbeat times out.
            .max_buffer_size(server.max_buffer)
            .ws_read_buffer_size(server.ws_read_buffer)
            .with_state(state.clone());
        for ns in handlers::NAMESPACES {
            // Present the gauge from the start, so dashboards see 0 rather than nothing.
            state.metrics.connections.with_label_values(&[ns]).set(0);
        }

        let ops_routes = http::ops_routes(state.clone());
        let mut routes = http::demo_routes();
        let ops = match server.ops_listen {
            Some(addr) => Some((ops_routes, bind(addr).await?)),
            None => {
                routes = routes.merge(ops_routes);
                None
            }
        };
        let (engine, app) = match &state.config.redis.url {
            None => {
                let (layer, io) = builder.build_layer();
                for init in handlers::register(&io, &state) {
                    // The in-process adapter has nothing to initialise.
                    let () = init;
                }
                (Engine::Local(io), routes.layer(layer))
            }
            Some(url) => {
                let redis = &state.config.redis;
                let mode = match redis.mode {
                    RedisMode::Classic => AdapterMode::Classic,
                    RedisMode::Sharded => AdapterMode::Sharded {
                        subscription_mode: match redis.subscription_mode {
                            SubscriptionModeConfig::Static => SubscriptionMode::Static,
                            SubscriptionModeConfig::Dynamic => SubscriptionMode::Dynamic,
                            SubscriptionModeConfig::DynamicPrivate => {
                                SubscriptionMode::DynamicPrivate
                            }
                        },
                    },
                };
                let cluster = Cluster::connect(AdapterConfig {
                    redis_url: url.clone(),
                    cluster: redis.cluster,
                    mode,
                    key: redis.key.clone(),
                    request_timeout: redis.request_timeout,
                    ..AdapterConfig::default()
                })
                .await?;
                state.metrics.watch_adapter(cluster.metrics().clone());
                // The handlers wait on it for room channels (sharded dynamic modes).
                let _ = state.cluster.set(cluster.clone());
                let (layer, io) =
                    builder.with_adapter::<ClusterAdapter<Emitter>>(cluster.clone()).build_layer();
                // Node peers' fetchSockets() see our sockets' handshake and data.
                let (sockets, node_id) = (io.clone(), state.node_id.clone());
                let trust = state.config.auth.rate_limit.trust_forwarded_for;
                cluster.on_socket_details(move |ns, sid| {
                    let socket = sockets.of(ns)?.get_socket(sid)?;
                    Some(crate::handshake::details(&socket, &node_id, trust))
                });
                for init in handlers::register(&io, &state) {
                    // Subscribes the namespace's channels; until then it would miss
                    // broadcasts from other nodes.
                    init.await?;
                }
                (Engine::Cluster(io, cluster), routes.layer(layer))
            }
        };
        let app = app
            .layer(axum::middleware::from_fn_with_state(state.clone(), http::gate_engine))
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

    /// Serves until `shutdown` is cancelled, then drains: readiness off and no new
    /// sockets at once; after `server.drain_delay` (the load balancer's turn to notice),
    /// requests in flight answered, each socket's rooms left as a resume ticket, every
    /// client told to reconnect elsewhere, this node's session rows removed, and an exit
    /// within `server.shutdown_timeout` whatever happens.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let Node { state, engine, app, listener, ops } = self;
        let addr = listener.local_addr()?;

        let stop_http = CancellationToken::new();
        // A client that stops reading while data is queued for it keeps its TCP window
        // shut; engineioxide's writer then waits on the socket forever and neither the
        // heartbeat nor a close can finish. The kernel gives up on such a peer after
        // TCP_USER_TIMEOUT: the Engine.IO liveness budget, ping interval + timeout.
        let server_cfg = &state.config.server;
        let stuck_after = server_cfg.ping_interval + server_cfg.ping_timeout;
        let serve = |router: Router, listener: TcpListener| {
            let stop = stop_http.clone();
            tokio::spawn(async move {
                let listener = listener.tap_io(move |tcp| {
                    if let Err(e) =
                        socket2::SockRef::from(&*tcp).set_tcp_user_timeout(Some(stuck_after))
                    {
                        tracing::debug!(error = %e, "TCP_USER_TIMEOUT not set");
                    }
                });
                // The peer address reaches the handshake (login rate limits per address).
                let service = router.into_make_service_with_connect_info::<SocketAddr>();
                axum::serve(listener, service).with_graceful_shutdown(stop.cancelled_owned()).await
            })
        };
        let mut servers = vec![serve(app, listener)];
        if let Some((router, listener)) = ops {
            tracing::info!(addr = %listener.local_addr()?, "ops listening");
            servers.push(serve(router, listener));
        }
        state.db.heartbeat(&state.node_id).await.map_err(std::io::Error::other)?;
        // The node beats through its drain too: silent, it would be swept as dead and
        // its sockets' rows (which reconnecting clients resume from) deleted early.
        let beating = CancellationToken::new();
        let heartbeat = tokio::spawn(heartbeat(state.clone(), engine.clone(), beating.clone()));
        state.set_ready(true);
        // Logged once ready: tools wait for this line before connecting.
        tracing::info!(%addr, node = %state.node_id, "listening");

        shutdown.cancelled().await;
        let deadline = state.config.server.shutdown_timeout;
        tracing::info!(?deadline, "shutting down");
        state.set_ready(false);
        let delay = state.config.server.drain_delay;
        let drain = async {
            // Sockets keep working while the load balancer takes the node out.
            tokio::time::sleep(delay).await;
            // Requests in flight are answered before their sockets go, within half of
            // what is left, so the rest of the drain still fits.
            if !state.requests.drain((deadline - delay) / 2).await {
                tracing::warn!("requests still in flight at the drain's half-time");
            }
            let tickets = engine.tickets();
            let ttl = i64::try_from(state.config.rooms.resume_ttl.as_millis()).unwrap_or(i64::MAX);
            match state.db.save_tickets(&tickets, ttl).await {
                Ok(()) => tracing::info!(sockets = tickets.len(), "resume tickets written"),
                Err(e) => tracing::warn!(error = %e, "resume tickets not written"),
            }
            // Closing the engine ends each transport without a Socket.IO disconnect
            // packet, so official clients reconnect (to another node behind the LB).
            engine.close().await;
            stop_http.cancel();
            for server in servers {
                match server.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "server stopped with an error"),
                    Err(e) => tracing::warn!(error = %e, "server task failed"),
                }
            }
        };
        if tokio::time::timeout(deadline, drain).await.is_err() {
            tracing::warn!("drain deadline passed; exiting with connections open");
        }
        beating.cancel();
        let _ = heartbeat.await;
        state.reaper.close();
        // Disconnect handlers may still be running when the deadline hits; rows of
        // this node's sockets must not outlive it.
        let sweep = async {
            let rows = state.db.delete_node_sessions(&state.node_id).await?;
            state.db.forget_node(&state.node_id).await?;
            Ok::<_, DbError>(rows)
        };
        match tokio::time::timeout(Duration::from_secs(2), sweep).await {
            Ok(Ok(rows)) if rows > 0 => tracing::info!(rows, "removed remaining session rows"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "session rows not removed"),
            Err(_) => tracing::warn!("session row sweep timed out"),
        }
        state.requests.close().await;
        state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Records this node's heartbeat and sweeps nodes that stopped beating, until `stop`.
/// A database outage only delays both: the loop logs, counts and tries again.
async fn heartbeat(state: AppState, engine: Engine, stop: CancellationToken) {
    let mut tick = tokio::time::interval(state.config.node.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let dead_after = i64::try_from(state.config.node.dead_after.as_millis()).unwrap_or(i64::MAX);
    // Rows are written with `session_ttl` to live; a quarter of it before they would
    // expire, the live ones are pushed forward again.
    let ttl = state.config.database.session_ttl;
    let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    let mut last_refresh = tokio::time::Instant::now();
    let mut store_was_away = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let result = async {
            state.db.heartbeat(&state.node_id).await?;
            if std::mem::take(&mut store_was_away) {
                reconcile(&state, &engine).await?;
            }
            if last_refresh.elapsed() >= ttl / 4 {
                state.db.refresh_node_sessions(&state.node_id, ttl_secs).await?;
                last_refresh = tokio::time::Instant::now();
            }
            state.db.delete_expired_tickets().await?;
            state.db.sweep_dead_nodes(dead_after).await
        }
        .await;
        match result {
            Ok(swept) => {
                for node in swept {
                    tracing::warn!(node = %node.node, sessions = node.sessions, "swept a dead node");
                    state.metrics.swept_nodes.inc();
                    engine.announce_departures(&state, &node.lobby).await;
                }
            }
            Err(e) => {
                store_was_away = true;
                state.metrics.errors.with_label_values(&["database"]).inc();
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
    }
}

/// After the store was away: rewrites the row of every live socket (joins made during
/// the outage, or rows another node swept while this one could not beat).
async fn reconcile(state: &AppState, engine: &Engine) -> Result<(), DbError> {
    let members = engine.members();
    for member in &members {
        member.insert_row(&state.db, state.config.database.session_ttl).await?;
    }
    tracing::info!(live = members.len(), "session rows reconciled");
    Ok(())
}
