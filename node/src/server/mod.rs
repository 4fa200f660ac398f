//! Wiring a node, top to bottom: store, credentials, Socket.IO, HTTP, and a shutdown
//! that drains before it exits.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method};
use roomcast_adapter::{AdapterConfig, AdapterMode, Cluster, ClusterAdapter, SubscriptionMode};
use socketioxide::SocketIo;
use socketioxide::adapter::{Adapter, Emitter, LocalAdapter};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

pub mod accept;
pub mod admin;
pub mod http;

use crate::apps::{self, App};
use crate::config::{Config, RedisConfig, RedisMode, SubscriptionModeConfig};
use crate::core::auth::AuthMethod;
use crate::core::auth::Authenticator;
use crate::core::build::BuildInfo;
use crate::core::db::resume::Ticket;
use crate::core::db::{Db, DbError};
use crate::core::history::History;
use crate::core::history::memory::MemoryStore;
use crate::core::history::redis::{RedisSettings, RedisStore};
use crate::core::metrics::{LoadSource, Metrics, NamespaceLoad};
use crate::core::reaper::RowReaper;
use crate::core::requests::Dispatcher;
use crate::core::session::{Member, persist_rooms, socket_rooms};
use crate::core::state::AppState;
use accept::ConnectionLimits;

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
    /// The room history store could not connect.
    #[error(transparent)]
    History(#[from] crate::core::history::HistoryError),
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
    /// Lets every app clean up after a node swept as dead.
    async fn node_swept(&self, app: &AppState, node: &str) -> Result<(), DbError> {
        match self {
            Engine::Local(io) => apps::node_swept(io, app, node).await,
            Engine::Cluster(io, _) => apps::node_swept(io, app, node).await,
        }
    }

    /// The rooms of this node's sockets on `/`, for their clients to resume elsewhere.
    fn tickets(&self) -> Vec<Ticket> {
        match self {
            Engine::Local(io) => tickets(io),
            Engine::Cluster(io, _) => tickets(io),
        }
    }

    /// The members of this node's sockets, every namespace, with their rooms.
    fn members(&self) -> Vec<(Arc<Member>, Vec<String>)> {
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

fn members<A: Adapter>(io: &SocketIo<A>) -> Vec<(Arc<Member>, Vec<String>)> {
    apps::paths()
        .into_iter()
        .filter_map(|ns| io.of(ns))
        .flat_map(|ns| ns.sockets())
        .filter_map(|s| Some((s.extensions.get::<Arc<Member>>()?, socket_rooms(&s))))
        .collect()
}

/// Counts, at each scrape, the users and rooms of this node's sockets per namespace.
fn load_source<A: Adapter>(io: SocketIo<A>) -> LoadSource {
    Box::new(move || {
        apps::paths()
            .into_iter()
            .map(|ns| {
                let sockets = io.of(ns).map(|ns| ns.sockets()).unwrap_or_default();
                let users: HashSet<String> = sockets
                    .iter()
                    .filter_map(|s| s.extensions.get::<Arc<Member>>())
                    .map(|m| m.identity.user.clone())
                    .collect();
                let rooms: HashSet<_> = sockets.iter().flat_map(|s| s.rooms()).collect();
                (ns, NamespaceLoad { users: users.len(), rooms: rooms.len() })
            })
            .collect()
    })
}

fn tickets<A: Adapter>(io: &SocketIo<A>) -> Vec<Ticket> {
    let Some(ns) = io.of(apps::workspace::Workspace::PATH) else { return Vec::new() };
    ns.sockets()
        .into_iter()
        .filter_map(|s| {
            let member = s.extensions.get::<Arc<Member>>()?;
            let rooms = socket_rooms(&s);
            let sid = s.id.to_string();
            let secret_hash = member.recovery_hash().map(str::to_owned);
            (!rooms.is_empty()).then(|| Ticket {
                sid,
                login: member.identity.user.clone(),
                rooms,
                secret_hash,
            })
        })
        .collect()
}

/// Opens the room history store (in-process on one node, Redis in a cluster) and starts
/// the task that delivers its feed to this node's sockets.
async fn start_history<A: Adapter>(state: &AppState, io: &SocketIo<A>) -> Result<(), StartError> {
    let config = &state.config;
    if !config.history.enabled {
        return Ok(());
    }
    let (feed, deliveries) = tokio::sync::mpsc::unbounded_channel();
    let history = match &config.redis.url {
        None => History::Memory(MemoryStore::new(config.history.clone(), feed)),
        Some(url) => {
            let settings = RedisSettings {
                url,
                cluster: config.redis.cluster,
                key: &config.redis.key,
                timeout: config.redis.request_timeout,
            };
            let store =
                RedisStore::connect(settings, config.history.clone(), feed, state.metrics.clone())
                    .await?;
            History::Redis(store)
        }
    };
    tokio::spawn(crate::core::history::feed::run(
        io.clone(),
        history.clone(),
        deliveries,
        state.metrics.clone(),
    ));
    state.set_history(history);
    Ok(())
}

/// Puts the admin routes with the other ops routes: on the ops listener, or on the
/// main routes (before the Socket.IO layer wraps them) when there is none.
fn with_admin(
    routes: Router,
    ops: Option<(Router, TcpListener)>,
    admin: Router,
) -> (Router, Option<(Router, TcpListener)>) {
    match ops {
        Some((router, listener)) => (routes, Some((router.merge(admin), listener))),
        None => (routes.merge(admin), None),
    }
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
    /// Connects and migrates the store, loads keys and binds the listeners.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let node_id = config.node_id();
        let db = Db::connect(&config.database).await?;
        db.migrate().await?;
        let auth = Authenticator::new(&config.auth, db.clone())?;
        let metrics = Metrics::new();
        let requests = Dispatcher::start(&config, &node_id, db.clone(), metrics.clone()).await?;
        let reaper = RowReaper::start(db.clone(), metrics.clone(), config.rooms.resume_ttl);
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
            // The session guard expires bindings of sessions that never connect on the
            // same clock.
            .connect_timeout(crate::core::guard::CONNECT_TIMEOUT)
            .with_state(state.clone());
        let methods = [AuthMethod::Password, AuthMethod::Token, AuthMethod::Cookie];
        state.metrics.preset(&apps::paths(), &methods.map(AuthMethod::as_str));
        for ns in apps::paths() {
            state
                .metrics
                .show_delivery_series(ns, &crate::core::reply::Packet::ALL.map(|k| k.as_str()));
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
        let (engine, app, ops) = match &state.config.redis.url {
            None => {
                let (layer, io) = builder.build_layer();
                let (routes, ops) =
                    with_admin(routes, ops, crate::server::admin::routes(&state, io.clone()));
                state.metrics.watch_load(load_source(io.clone()));
                start_history(&state, &io).await?;
                for init in apps::mount_all(&io, &state) {
                    // The in-process adapter has nothing to initialise.
                    let () = init;
                }
                // Nothing to lose touch with: the in-process adapter is always there.
                state.metrics.watch_adapter_link(|| true);
                (Engine::Local(io), routes.layer(layer), ops)
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
                state.set_cluster(cluster.clone());
                let link = cluster.clone();
                state.metrics.watch_adapter_link(move || link.is_connected());
                let (layer, io) =
                    builder.with_adapter::<ClusterAdapter<Emitter>>(cluster.clone()).build_layer();
                follow_remote_rooms(&cluster, &io, &state);
                answer_server_events(&cluster, &state);
                // Node peers' fetchSockets() see our sockets' handshake and data.
                let (sockets, node_id) = (io.clone(), state.node_id.clone());
                let trusted = state.config.server.trusted_proxies.clone();
                cluster.on_socket_details(move |ns, sid| {
                    let socket = sockets.of(ns)?.get_socket(sid)?;
                    Some(crate::core::handshake::details(&socket, &node_id, &trusted))
                });
                let (routes, ops) =
                    with_admin(routes, ops, crate::server::admin::routes(&state, io.clone()));
                state.metrics.watch_load(load_source(io.clone()));
                start_history(&state, &io).await?;
                for init in apps::mount_all(&io, &state) {
                    // Subscribes the namespace's channels; until then it would miss
                    // broadcasts from other nodes.
                    init.await?;
                }
                (Engine::Cluster(io, cluster), routes.layer(layer), ops)
            }
        };
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

    /// Serves until `shutdown` is cancelled, then drains: readiness off and no new
    /// sockets at once; after `server.drain_delay` (the load balancer's turn to notice),
    /// requests in flight answered, each socket's rooms left as a resume ticket, every
    /// client told to reconnect elsewhere, this node's session rows removed, and an exit
    /// within `server.shutdown_timeout` whatever happens.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let Node { state, engine, app, listener, ops } = self;
        let addr = listener.local_addr()?;

        let stop_http = CancellationToken::new();
        let server_cfg = &state.config.server;
        let limits = ConnectionLimits {
            header_read_timeout: server_cfg.header_read_timeout,
            max_pending_per_address: server_cfg.max_pending_per_address,
            trusted_proxies: server_cfg.trusted_proxies.clone(),
            // A peer whose TCP window stays shut is given up after the Engine.IO
            // liveness budget, ping interval + timeout.
            tcp_user_timeout: server_cfg.ping_interval + server_cfg.ping_timeout,
        };
        let serve = |router: Router, listener: TcpListener| {
            let (limits, metrics, stop) =
                (limits.clone(), state.metrics.clone(), stop_http.clone());
            tokio::spawn(accept::serve(listener, router, limits, metrics, stop))
        };
        let mut servers = vec![serve(app, listener)];
        let ops_addr = ops.as_ref().map(|(_, l)| l.local_addr()).transpose()?;
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
        // Logged once ready: tools wait for this line before connecting. It also says
        // what runs, for whoever reads the log first.
        let build = BuildInfo::CURRENT;
        let config = &state.config;
        tracing::info!(
            %addr,
            ops = %ops_addr.unwrap_or(addr),
            node = %state.node_id,
            version = %build.version,
            commit = %build.commit,
            store = %store_kind(&config.database.url),
            adapter = %adapter_kind(&config.redis),
            auth = %auth_methods(config).join(","),
            guests = %config.auth.guest_namespaces.join(","),
            "listening"
        );

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
                if let Err(e) = server.await {
                    tracing::warn!(error = %e, "server task failed");
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
            let keep_ms =
                i64::try_from(state.config.rooms.resume_ttl.as_millis()).unwrap_or(i64::MAX);
            let rows = state.db.delete_node_sessions(&state.node_id, keep_ms).await?;
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
        if let Some(History::Redis(store)) = state.history() {
            store.close().await;
        }
        state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The store's kind, never its URL (which may hold a password).
fn store_kind(url: &str) -> &'static str {
    if url.starts_with("sqlite:") { "sqlite" } else { "postgres" }
}

/// `local` (one node) or the Redis adapter's mode.
fn adapter_kind(redis: &RedisConfig) -> &'static str {
    match (&redis.url, redis.mode) {
        (None, _) => "local",
        (Some(_), RedisMode::Classic) => "redis-classic",
        (Some(_), RedisMode::Sharded) => "redis-sharded",
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

/// Records this node's heartbeat and sweeps nodes that stopped beating, until `stop`.
/// A database outage only delays both: the loop logs, counts and tries again.
///
/// A node sweeps others only once its own beats have run unbroken (no failure, no gap
/// of two intervals) for `dead_after`: after an outage every node's heartbeat is old,
/// and the first one back would otherwise take its live peers for dead before they
/// had a chance to beat. A node that finds its own row gone (swept while it could not
/// beat) registers again and rewrites its sockets' rows.
async fn heartbeat(state: AppState, engine: Engine, stop: CancellationToken) {
    let node = &state.config.node;
    let mut tick = tokio::time::interval(node.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let dead_after = i64::try_from(node.dead_after.as_millis()).unwrap_or(i64::MAX);
    let mut beats = BeatRun::new(node.heartbeat_interval * 2);
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
            let registered = state.db.heartbeat(&state.node_id).await?;
            let beating_for = beats.beat(tokio::time::Instant::now());
            if !registered {
                tracing::warn!(
                    "this node's heartbeat row was gone (swept as dead); registering again"
                );
            }
            if std::mem::take(&mut store_was_away) || !registered {
                reconcile(&state, &engine).await?;
            }
            if last_refresh.elapsed() >= ttl / 4 {
                state.db.refresh_node_sessions(&state.node_id, ttl_secs).await?;
                last_refresh = tokio::time::Instant::now();
            }
            state.db.delete_expired_tickets().await?;
            if beating_for < state.config.node.dead_after {
                return Ok::<_, DbError>(());
            }
            let keep_ms =
                i64::try_from(state.config.rooms.resume_ttl.as_millis()).unwrap_or(i64::MAX);
            for node in state.db.sweep_dead_nodes(dead_after, keep_ms).await? {
                tracing::warn!(node = %node.node, sessions = node.sessions, "swept a dead node");
                state.metrics.swept_nodes.inc();
                engine.node_swept(&state, &node.node).await?;
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {}
            Err(e) => {
                store_was_away = true;
                beats.break_off();
                state.metrics.error(crate::core::metrics::ErrorKind::Database).inc();
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
    }
}

/// This node's unbroken run of successful heartbeats.
struct BeatRun {
    max_gap: Duration,
    since: Option<tokio::time::Instant>,
    last: Option<tokio::time::Instant>,
}

impl BeatRun {
    /// A run that a gap longer than `max_gap` between two beats breaks.
    fn new(max_gap: Duration) -> Self {
        Self { max_gap, since: None, last: None }
    }

    /// Records a successful beat at `now`; returns how long the run has lasted.
    fn beat(&mut self, now: tokio::time::Instant) -> Duration {
        let unbroken = self.last.is_some_and(|last| now.duration_since(last) <= self.max_gap);
        let since = match self.since {
            Some(since) if unbroken => since,
            _ => now,
        };
        self.since = Some(since);
        self.last = Some(now);
        now.duration_since(since)
    }

    /// A beat failed: the run starts again at the next success.
    fn break_off(&mut self) {
        self.since = None;
        self.last = None;
    }
}

/// After the store was away, or this node was swept: rewrites the row of every live
/// socket (joins made during the outage, or rows another node swept).
async fn reconcile(state: &AppState, engine: &Engine) -> Result<(), DbError> {
    let members = engine.members();
    for (member, rooms) in &members {
        member.insert_row(&state.db, state.config.database.session_ttl, || rooms.clone()).await?;
    }
    tracing::info!(live = members.len(), "session rows reconciled");
    Ok(())
}

/// Rewrites the session rows of this node's sockets whose rooms a peer changed
/// (`socketsJoin` / `socketsLeave` from a Node server, the emitter or another node), so
/// rows and presence follow the one record of membership.
fn follow_remote_rooms(
    cluster: &Cluster,
    io: &SocketIo<ClusterAdapter<Emitter>>,
    state: &AppState,
) {
    let (io, state) = (io.clone(), state.clone());
    cluster.on_rooms_changed(move |ns, sids| {
        let Some(ns) = io.of(ns) else { return };
        let sockets: Vec<_> = sids
            .into_iter()
            .filter_map(|sid| ns.get_socket(sid))
            .filter_map(|s| Some((s.extensions.get::<Arc<Member>>()?, s)))
            .collect();
        let state = state.clone();
        tokio::spawn(async move {
            for (member, s) in sockets {
                persist_rooms(&state, &s, &member).await;
            }
        });
    });
}

/// Answers the inter-server events listed in `requests.server_events` (another server's
/// `serverSideEmit`) on every namespace; others get no answer, as in Node.
fn answer_server_events(cluster: &Cluster, state: &AppState) {
    for ns in apps::paths() {
        let state = state.clone();
        cluster.on_server_event(ns, move |event| {
            if !state.config.requests.server_events.contains(&event.event) {
                tracing::debug!(event = %event.event, "inter-server event without handler");
                return;
            }
            let state = state.clone();
            tokio::spawn(async move {
                let answer = state.requests.answer_server_event(&event.event, event.args).await;
                if let Some(ack) = event.ack {
                    ack.send(answer);
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn a_beat_run_grows_until_a_failure_or_a_gap() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut run = BeatRun::new(Duration::from_millis(200));
        assert_eq!(run.beat(at(0)), Duration::ZERO, "the first beat starts a run");
        assert_eq!(run.beat(at(100)), Duration::from_millis(100));
        assert_eq!(run.beat(at(300)), Duration::from_millis(300));
        // A beat after a long silence (a stalled store) starts again.
        assert_eq!(run.beat(at(1000)), Duration::ZERO);
        assert_eq!(run.beat(at(1100)), Duration::from_millis(100));
        run.break_off();
        assert_eq!(run.beat(at(1200)), Duration::ZERO, "a failure starts again");
    }
}
