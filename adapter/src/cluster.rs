//! The process-wide handle: one bus connection shared by every namespace,
//! the server-side event API and the metrics.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak},
    time::Duration,
};

use serde_json::Value as Json;
use socketioxide_core::Sid;

use crate::{
    AdapterConfig, AdapterMetrics, MetricsSnapshot,
    driver::{Driver, DriverError, FredDriver},
    error::{RequestError, RoomsReadyError, ServerSideEmitError},
    namespace::NsCore,
    proto::{
        FetchedSocket, Flags, Request, ResponseBody, ResponseMsg, Target, WireOpts, json_to_msgpack,
    },
};

/// An event another server sent with `serverSideEmit`.
pub struct ServerEvent {
    /// The namespace it was emitted on.
    pub nsp: String,
    /// The event name.
    pub event: String,
    /// Its arguments.
    pub args: Vec<Json>,
    /// Present when the sender waits for an answer.
    pub ack: Option<ServerAck>,
}

impl fmt::Debug for ServerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerEvent")
            .field("nsp", &self.nsp)
            .field("event", &self.event)
            .field("args", &self.args)
            .field("wants_ack", &self.ack.is_some())
            .finish()
    }
}

/// Answers a server-side event. Node's acks take one argument; so does this.
pub struct ServerAck(Box<dyn FnOnce(Json) + Send>);

impl ServerAck {
    /// Sends the answer (in the background; must run inside a Tokio runtime).
    pub fn send(self, value: Json) {
        (self.0)(value);
    }
}

/// What a REMOTE_FETCH answer says about a local socket beyond its id and
/// rooms (which the adapter knows).
#[derive(Debug, Clone, PartialEq)]
pub struct SocketDetails {
    /// Node's `socket.handshake` (`headers`, `query`, `auth`, `address`, ...).
    pub handshake: Json,
    /// Node's `socket.data`.
    pub data: Json,
}

type EventHandler = Arc<dyn Fn(ServerEvent) + Send + Sync>;
type DetailsFn = Arc<dyn Fn(&str, Sid) -> Option<SocketDetails> + Send + Sync>;
type RoomsChangedFn = Arc<dyn Fn(&str, Vec<Sid>) + Send + Sync>;

/// The adapter state handed to `SocketIo::builder().with_adapter(..)`: the
/// bus connection, the configuration and what every namespace shares.
/// Cheap to clone.
pub struct Cluster<D: Driver = FredDriver> {
    inner: Arc<Inner<D>>,
}

struct Inner<D: Driver> {
    driver: D,
    config: AdapterConfig,
    metrics: Arc<AdapterMetrics>,
    namespaces: Mutex<HashMap<String, Weak<NsCore<D>>>>,
    handlers: RwLock<HashMap<String, EventHandler>>,
    details: RwLock<Option<DetailsFn>>,
    rooms_changed: RwLock<Option<RoomsChangedFn>>,
}

impl<D: Driver> Clone for Cluster<D> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<D: Driver> fmt::Debug for Cluster<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl Cluster<FredDriver> {
    /// Connects to Redis. Fails if it cannot be reached now; outages after
    /// this are survived (local delivery goes on, the client reconnects).
    pub async fn connect(config: AdapterConfig) -> Result<Self, DriverError> {
        let metrics = Arc::new(AdapterMetrics::default());
        let driver = FredDriver::connect(&config, metrics.clone()).await?;
        Ok(Self::from_parts(driver, config, metrics))
    }
}

impl<D: Driver> Cluster<D> {
    /// A cluster on any driver (the in-memory one in tests).
    pub fn with_driver(driver: D, config: AdapterConfig) -> Self {
        Self::from_parts(driver, config, Arc::default())
    }

    fn from_parts(driver: D, config: AdapterConfig, metrics: Arc<AdapterMetrics>) -> Self {
        Self {
            inner: Arc::new(Inner {
                driver,
                config,
                metrics,
                namespaces: Mutex::default(),
                handlers: RwLock::default(),
                details: RwLock::default(),
                rooms_changed: RwLock::default(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AdapterConfig {
        &self.inner.config
    }

    /// The live counters, shared by every namespace.
    pub fn metrics(&self) -> &Arc<AdapterMetrics> {
        &self.inner.metrics
    }

    /// A copy of the counters.
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// Whether the bus is usable now (see [`Driver::is_connected`]); while it is not,
    /// broadcasts reach this server's sockets only and fail with an adapter error.
    pub fn is_connected(&self) -> bool {
        self.inner.driver.is_connected()
    }

    pub(crate) fn driver(&self) -> &D {
        &self.inner.driver
    }

    /// Handles the server-side events of namespace `nsp` (`"/workspace"`),
    /// replacing any previous handler. Called on the adapter's task: a
    /// handler that needs to wait should spawn.
    pub fn on_server_event(
        &self,
        nsp: &str,
        handler: impl Fn(ServerEvent) + Send + Sync + 'static,
    ) {
        let mut handlers = self.inner.handlers.write().unwrap_or_else(PoisonError::into_inner);
        handlers.insert(nsp.to_owned(), Arc::new(handler));
    }

    /// Supplies the handshake and data reported for local sockets when a
    /// peer fetches sockets (Node's `fetchSockets()`). Without it they are
    /// an empty handshake and `{}`.
    pub fn on_socket_details(
        &self,
        f: impl Fn(&str, Sid) -> Option<SocketDetails> + Send + Sync + 'static,
    ) {
        *self.inner.details.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(f));
    }

    pub(crate) fn socket_details(&self, nsp: &str, sid: Sid) -> Option<SocketDetails> {
        let details = self.inner.details.read().unwrap_or_else(PoisonError::into_inner).clone();
        details.and_then(|f| f(nsp, sid))
    }

    /// Tells the application which local sockets of a namespace a peer (a
    /// Node server, the emitter, another Roomcast node) just moved in or out
    /// of rooms with `socketsJoin` / `socketsLeave`: socketioxide's room
    /// table changed under the application's feet. Called on the adapter's
    /// task, after the change: a hook that needs to wait should spawn.
    pub fn on_rooms_changed(&self, f: impl Fn(&str, Vec<Sid>) + Send + Sync + 'static) {
        *self.inner.rooms_changed.write().unwrap_or_else(PoisonError::into_inner) =
            Some(Arc::new(f));
    }

    pub(crate) fn rooms_changed(&self, nsp: &str, sids: Vec<Sid>) {
        if sids.is_empty() {
            return;
        }
        let hook = self.inner.rooms_changed.read().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(f) = hook {
            f(nsp, sids);
        }
    }

    /// The sockets the other servers of `nsp` hold in any of `rooms` (every
    /// socket when empty), as they report them: raw ids, so Node's
    /// 20-character ids are kept (socketioxide's `fetch_sockets` cannot hold
    /// them). Fails unless every server answered within the request timeout.
    pub async fn remote_sockets(
        &self,
        nsp: &str,
        rooms: Vec<String>,
    ) -> Result<Vec<FetchedSocket>, RequestError> {
        let core = self.namespace(nsp)?;
        let request = Request::Fetch { target: Target { rooms, except: Vec::new() } };
        let bodies = core.request_all(request).await.map_err(|(e, _)| e)?;
        Ok(bodies
            .iter()
            .filter_map(|body| match body {
                ResponseBody::Sockets(items) => Some(items),
                _ => None,
            })
            .flatten()
            .filter_map(FetchedSocket::from_json)
            .collect())
    }

    /// Whether another server of `nsp` holds a socket with this id, whatever
    /// its implementation: its private room is asked for, and Node sockets
    /// are in theirs, as socketioxide sockets are through this adapter.
    pub async fn has_socket(&self, nsp: &str, id: &str) -> Result<bool, RequestError> {
        let sockets = self.remote_sockets(nsp, vec![id.to_owned()]).await?;
        Ok(sockets.iter().any(|s| s.id == id))
    }

    fn namespaces(&self) -> MutexGuard<'_, HashMap<String, Weak<NsCore<D>>>> {
        self.inner.namespaces.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn register(&self, core: &Arc<NsCore<D>>) {
        self.namespaces().insert(core.nsp.clone(), Arc::downgrade(core));
    }

    pub(crate) fn deregister(&self, core: &Arc<NsCore<D>>) {
        let mut namespaces = self.namespaces();
        if namespaces.get(&core.nsp).is_some_and(|w| w.as_ptr() == Arc::as_ptr(core)) {
            namespaces.remove(&core.nsp);
        }
    }

    fn namespace(&self, nsp: &str) -> Result<Arc<NsCore<D>>, RequestError> {
        self.namespaces()
            .get(nsp)
            .and_then(Weak::upgrade)
            .ok_or_else(|| RequestError::UnknownNamespace(nsp.to_owned()))
    }

    /// The servers serving `nsp`, this one included (PUBSUB NUMSUB).
    pub async fn server_count(&self, nsp: &str) -> Result<u64, RequestError> {
        Ok(self.namespace(nsp)?.server_count().await?)
    }

    /// Sends `event` to the sockets of Node.js servers in `rooms` of `nsp`, marked
    /// `fromHistory` so Roomcast servers skip it: they deliver the same event from their
    /// room history, in order and with its offset.
    pub async fn broadcast_to_peers(
        &self,
        nsp: &str,
        rooms: Vec<String>,
        event: &str,
        args: Vec<Json>,
    ) -> Result<(), RequestError> {
        let core = self.namespace(nsp)?;
        let text = serde_json::to_string(&event_data(event, args))
            .map_err(|e| crate::proto::EncodeError::Serialize(e.to_string()))?;
        let data = json_to_msgpack(&text, &[])?;
        let flags = Flags { from_history: Some(true), ..Flags::default() };
        let opts = WireOpts { rooms, except: Vec::new(), flags };
        let (channel, payload) = core.encode_broadcast(data, opts)?;
        core.publish(channel, payload).await?;
        Ok(())
    }

    /// Node's `io.of(nsp).serverSideEmit(event, ...args)`: every other
    /// server's handlers receive the event.
    pub async fn server_side_emit(
        &self,
        nsp: &str,
        event: &str,
        args: Vec<Json>,
    ) -> Result<(), RequestError> {
        let core = self.namespace(nsp)?;
        core.send_request(Request::ServerSideEmit { data: event_data(event, args) }, None).await
    }

    /// `serverSideEmitWithAck`: waits for one answer from every other
    /// server, for at most the request timeout.
    pub async fn server_side_emit_with_ack(
        &self,
        nsp: &str,
        event: &str,
        args: Vec<Json>,
    ) -> Result<Vec<Json>, ServerSideEmitError> {
        let core = self.namespace(nsp)?;
        let answers = |bodies: Vec<ResponseBody>| -> Vec<Json> {
            bodies
                .into_iter()
                .filter_map(|b| match b {
                    ResponseBody::ServerSideEmitAck(v) => Some(v),
                    _ => None,
                })
                .collect()
        };
        match core.request_all(Request::ServerSideEmit { data: event_data(event, args) }).await {
            Ok(bodies) => Ok(answers(bodies)),
            Err((RequestError::Timeout { expected, .. }, bodies)) => {
                Err(ServerSideEmitError::Timeout { expected, responses: answers(bodies) })
            }
            Err((e, _)) => Err(e.into()),
        }
    }

    /// Runs the handler of a server-side event received by `core`.
    pub(crate) fn dispatch_event(
        &self,
        core: &Arc<NsCore<D>>,
        data: Vec<Json>,
        request_id: Option<String>,
        reply_to: Option<String>,
    ) {
        let handler = self
            .inner
            .handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&core.nsp)
            .cloned();
        let Some(handler) = handler else {
            // As in Node: no listener, no answer (the sender times out).
            tracing::debug!(nsp = %core.nsp, "server-side event without handler");
            return;
        };
        let mut data = data.into_iter();
        let Some(Json::String(event)) = data.next() else {
            return;
        };
        let ack = request_id.map(|request_id| {
            let core = core.clone();
            ServerAck(Box::new(move |value| {
                tokio::spawn(async move {
                    let msg =
                        ResponseMsg { request_id, body: ResponseBody::ServerSideEmitAck(value) };
                    core.reply(reply_to.as_deref(), msg).await;
                });
            }))
        });
        handler(ServerEvent { nsp: core.nsp.clone(), event, args: data.collect(), ack });
    }

    /// Cluster requests of this server still waiting for answers, every
    /// namespace: fetches, server-side emits and broadcasts with acks. Each
    /// leaves when it completes, times out or its caller drops it, so a
    /// steady value above the traffic's is a leak.
    pub fn pending_requests(&self) -> usize {
        let namespaces: Vec<_> = self.namespaces().values().filter_map(Weak::upgrade).collect();
        namespaces.iter().map(|core| core.pending_requests()).sum()
    }

    /// Waits until this server hears what is published to each of `rooms`
    /// of namespace `nsp`, at most `timeout`. In the dynamic sharded modes a
    /// room's channel is subscribed only while a local socket is in it: a
    /// caller that awaits this after a socket joined (or before a socket
    /// with these rooms or this id completes its connection) knows that
    /// a message published from now on reaches it. The rooms stay
    /// subscribed for `timeout` even without a local socket in them. In the
    /// other modes every server hears everything: it returns at once.
    pub async fn rooms_ready(
        &self,
        nsp: &str,
        rooms: &[String],
        timeout: Duration,
    ) -> Result<(), RoomsReadyError> {
        let core = self
            .namespaces()
            .get(nsp)
            .and_then(Weak::upgrade)
            .ok_or_else(|| RoomsReadyError::UnknownNamespace(nsp.to_owned()))?;
        if core.rooms_ready(rooms, timeout).await {
            Ok(())
        } else {
            Err(RoomsReadyError::Timeout(timeout))
        }
    }

    /// Leaves the bus: subscriptions end (the other servers stop counting
    /// this one) and the connections close. For graceful shutdown.
    pub async fn close(&self) {
        self.inner.driver.close().await;
    }
}

fn event_data(event: &str, args: Vec<Json>) -> Vec<Json> {
    let mut data = Vec::with_capacity(args.len() + 1);
    data.push(Json::String(event.to_owned()));
    data.extend(args);
    data
}
