//! The Socket.IO engine on whichever adapter the configuration picked: in-process on one
//! node, the Redis adapter in a cluster. Everything an adapter-generic step needs is
//! done once, in [`Engine::start`]; the rest of the server sees [`Engine`] only.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use roomcast_adapter::{AdapterConfig, Cluster, ClusterAdapter};
use socketioxide::adapter::{Adapter, Emitter, LocalAdapter};
use socketioxide::{SocketIo, SocketIoBuilder};
use socketioxide_core::adapter::DefinedAdapter;

use super::StartError;
use crate::apps;
use crate::core::db::DbError;
use crate::core::metrics::{LoadSource, NamespaceLoad};
use crate::core::session::{Member, persist_rooms, socket_rooms};
use crate::core::state::AppState;

/// The Socket.IO server of a node, on whichever adapter the configuration picked.
#[derive(Clone)]
pub(super) enum Engine {
    /// One node: rooms and broadcasts stay in this process.
    Local(SocketIo<LocalAdapter>),
    /// A cluster member: the Redis adapter carries rooms and broadcasts to the others.
    Cluster(SocketIo<ClusterAdapter<Emitter>>, Cluster),
}

/// What a started engine hands the HTTP side.
pub(super) struct Started {
    /// The engine.
    pub(super) engine: Engine,
    /// The main routes, wrapped by the Socket.IO layer.
    pub(super) app: Router,
    /// The ops routes, when they have a listener of their own.
    pub(super) ops: Option<Router>,
}

impl Engine {
    /// Builds the engine on the configured adapter, then starts and mounts every app. The
    /// admin routes join the ops routes (on the main routes when those have no listener
    /// of their own), and the main routes come back wrapped by the Socket.IO layer.
    pub(super) async fn start(
        state: &AppState,
        routes: Router,
        ops: Option<Router>,
    ) -> Result<Started, StartError> {
        let builder = builder(state);
        let Some(url) = &state.config.redis.url else {
            let (layer, io) = builder.build_layer();
            for init in prepare(state, &io).await? {
                // The in-process adapter has nothing to initialise.
                let () = init;
            }
            // Nothing to lose touch with: the in-process adapter is always there.
            state.metrics.watch_adapter_link(|| true);
            let (routes, ops) = with_admin(routes, ops, super::admin::routes(state, io.clone()));
            return Ok(Started { engine: Engine::Local(io), app: routes.layer(layer), ops });
        };
        let redis = &state.config.redis;
        let cluster = Cluster::connect(AdapterConfig {
            redis_url: url.expose().to_owned(),
            cluster: redis.cluster,
            mode: redis.mode.with_subscription_mode(redis.subscription_mode),
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
        follow_remote_rooms(&cluster, &io, state);
        answer_server_events(&cluster, state);
        // Node peers' fetchSockets() see our sockets' handshake and data.
        let (sockets, node_id) = (io.clone(), state.node_id.clone());
        let trusted = state.config.server.trusted_proxies.clone();
        cluster.on_socket_details(move |ns, sid| {
            let socket = sockets.of(ns)?.get_socket(sid)?;
            Some(crate::core::handshake::details(&socket, &node_id, &trusted))
        });
        for init in prepare(state, &io).await? {
            // Subscribes the namespace's channels; until then it would miss broadcasts
            // from other nodes.
            init.await?;
        }
        let (routes, ops) = with_admin(routes, ops, super::admin::routes(state, io.clone()));
        Ok(Started { engine: Engine::Cluster(io, cluster), app: routes.layer(layer), ops })
    }

    /// Lets every app clean up after a node swept as dead.
    pub(super) async fn node_swept(&self, app: &AppState, node: &str) -> Result<(), DbError> {
        match self {
            Engine::Local(io) => apps::node_swept(io, app, node).await,
            Engine::Cluster(io, _) => apps::node_swept(io, app, node).await,
        }
    }

    /// The members of this node's sockets, every namespace, with their rooms.
    pub(super) fn members(&self) -> Vec<(Arc<Member>, Vec<String>)> {
        match self {
            Engine::Local(io) => members(io),
            Engine::Cluster(io, _) => members(io),
        }
    }

    /// Closes every connection, then the adapter's Redis connections.
    pub(super) async fn close(self) {
        match self {
            Engine::Local(io) => io.close().await,
            Engine::Cluster(io, cluster) => {
                io.close().await;
                cluster.close().await;
            }
        }
    }
}

/// Puts the admin routes with the other ops routes: on the ops listener's routes, or on
/// the main routes (before the Socket.IO layer wraps them) when there is none.
fn with_admin(routes: Router, ops: Option<Router>, admin: Router) -> (Router, Option<Router>) {
    match ops {
        Some(ops) => (routes, Some(ops.merge(admin))),
        None => (routes.merge(admin), None),
    }
}

/// The engine's settings, from `server.*`.
fn builder(state: &AppState) -> SocketIoBuilder {
    let server = &state.config.server;
    let max_payload = usize::try_from(server.max_payload).unwrap_or(usize::MAX);
    SocketIo::builder()
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
        .with_state(state.clone())
}

/// What every adapter needs before it serves: load metrics, and the apps started and
/// mounted. The adapter's init results are handed back for the caller to complete.
async fn prepare<A: Adapter + DefinedAdapter>(
    state: &AppState,
    io: &SocketIo<A>,
) -> Result<Vec<A::InitRes>, StartError> {
    state.metrics.watch_load(load_source(io.clone()));
    apps::start_all(io, state).await?;
    Ok(apps::mount_all(io, state))
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
