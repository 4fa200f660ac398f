//! The socketioxide adapter: every operation runs on the local sockets, then
//! (unless it is local-only) goes to the other servers in one message.

use std::{
    borrow::Cow,
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::{Arc, Weak},
    task::{Context, Poll},
    time::Duration,
};

use futures::StreamExt;
use serde_json::{Value as Json, json};
use socketioxide_core::{
    Sid, Str, Uid, Value,
    adapter::{
        BroadcastFlags, BroadcastOptions, CoreAdapter, CoreLocalAdapter, DefinedAdapter,
        RemoteSocketData, Room, RoomParam, SocketEmitter, Spawnable,
        errors::{BroadcastError, SocketError},
    },
    packet::{Packet, PacketData},
};
use tokio::sync::mpsc;

use crate::{
    Cluster,
    ack::{AckStream, RemoteAcks},
    driver::{Driver, FredDriver, Message, MessageSink, Subscription},
    error::{InitError, RequestError},
    metrics::incr,
    mode::Inbound,
    namespace::NsCore,
    proto::{
        DecodeError, EncodeError, EventPacket, FetchedSocket, Flags, Incoming, Request,
        ResponseBody, ResponseMsg, Target, WireOpts, json_to_msgpack, msgpack_to_json,
    },
    room_sync::{RoomSync, room_sync_task},
};

/// The cluster adapter of one namespace. Use it as
/// `SocketIo::builder().with_adapter::<ClusterAdapter<Emitter>>(cluster)`.
pub struct ClusterAdapter<E, D: Driver = FredDriver> {
    pub(crate) core: Arc<NsCore<D>>,
    pub(crate) local: CoreLocalAdapter<E>,
    /// Room channels of the dynamic sharded modes.
    pub(crate) rooms: Arc<RoomSync>,
}

impl<E, D: Driver> DefinedAdapter for ClusterAdapter<E, D> {}

/// Subscribes the namespace; resolves once its subscriptions were sent.
/// socketioxide's namespace exists only after this ran (awaited, or
/// [`Spawnable::spawn`]ed).
pub struct InitRes(Pin<Box<dyn Future<Output = Result<(), InitError>> + Send>>);

impl Future for InitRes {
    type Output = Result<(), InitError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl Spawnable for InitRes {
    fn spawn(self) {
        tokio::spawn(async move {
            if let Err(e) = self.await {
                tracing::error!(error = %e, "adapter init");
            }
        });
    }
}

/// The local sockets an operation selects. socketioxide sockets are not in
/// a room named after their id (Node sockets are), so a room or except
/// entry naming a local socket is resolved to that socket by hand.
enum Selection {
    /// No socket-id room involved: socketioxide's own selection applies.
    Opts(Box<BroadcastOptions>),
    /// The exact sockets.
    Sids(Vec<Sid>),
}

/// Options for sockets selected by a peer: rooms/except as given, every
/// socket when `rooms` is empty (Node's `apply`).
fn peer_opts(rooms: Vec<String>, except: Vec<String>, volatile: bool) -> BroadcastOptions {
    let mut opts = BroadcastOptions::default();
    opts.add_flag(BroadcastFlags::Broadcast);
    if volatile {
        opts.add_flag(BroadcastFlags::Volatile);
    }
    opts.rooms = rooms.into_iter().map(Cow::Owned).collect();
    opts.except = except.into_iter().map(Cow::Owned).collect();
    opts
}

/// Node's view of `opts`: a single socket is its own room, `broadcast`
/// from a socket excludes it. `None` when nothing is selected.
fn wire_target(opts: &BroadcastOptions) -> Option<Target> {
    let broadcast = opts.has_flag(BroadcastFlags::Broadcast);
    let mut rooms = unique(opts.rooms.iter().map(|r| r.to_string()));
    if rooms.is_empty() && !broadcast {
        rooms.push(opts.sid?.to_string());
    }
    let sender = opts.sid.filter(|_| broadcast).map(|s| s.to_string());
    let except = unique(opts.except.iter().map(|r| r.to_string()).chain(sender));
    Some(Target { rooms, except })
}

/// Deduplicates, keeping the first occurrence (JS `new Set`).
fn unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(i.clone())).collect()
}

/// The event of a socketioxide packet, ready for the wire. Only the common
/// parser's JSON text can be re-encoded.
fn wire_packet(nsp: &str, packet: &Packet) -> Result<EventPacket, EncodeError> {
    match &packet.inner {
        PacketData::Event(Value::Str(text, bins), _)
        | PacketData::BinaryEvent(Value::Str(text, bins), _) => {
            let bins: Vec<_> = bins.iter().flatten().cloned().collect();
            let data = json_to_msgpack(text, &bins)?;
            let packet = EventPacket { nsp: nsp.to_owned(), data };
            Ok(packet)
        }
        _ => Err(EncodeError::UnsupportedPacket),
    }
}

/// A wire event as a socketioxide packet.
fn socket_packet(packet: &EventPacket) -> Result<Packet, DecodeError> {
    let (text, bins) = msgpack_to_json(&packet.data)?;
    let value = Value::Str(Str::from(text), (!bins.is_empty()).then_some(bins));
    Ok(Packet::event(packet.nsp.clone(), value))
}

/// The first argument of a local client's ack, as BROADCAST_ACK carries it.
fn ack_packet(value: &Value) -> Result<Option<rmpv::Value>, EncodeError> {
    match value {
        Value::Str(text, bins) => {
            let bins: Vec<_> = bins.iter().flatten().cloned().collect();
            Ok(json_to_msgpack(text, &bins)?.into_iter().next())
        }
        Value::Bytes(_) => Err(EncodeError::UnsupportedPacket),
    }
}

fn flags(opts: &BroadcastOptions, timeout: Option<Duration>) -> Flags {
    Flags {
        volatile: opts.has_flag(BroadcastFlags::Volatile).then_some(true),
        timeout: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        ..Flags::default()
    }
}

fn rooms_of(names: Vec<String>) -> Vec<Room> {
    names.into_iter().map(Cow::Owned).collect()
}

fn adapter_error(e: impl Into<RequestError>) -> BroadcastError {
    BroadcastError::Adapter(e.into().into())
}

impl<E: SocketEmitter, D: Driver> ClusterAdapter<E, D> {
    fn subscriptions(&self) -> Vec<Subscription> {
        self.core.mode.base_subscriptions(&self.core.uid)
    }

    /// The part of `opts` other servers must apply; `None` if local only.
    fn remote_target(&self, opts: &BroadcastOptions) -> Option<Target> {
        if opts.is_local(self.local.server_id()) { None } else { wire_target(opts) }
    }

    /// `id` if it names a socket connected to this server.
    fn local_socket(&self, id: &str) -> Option<Sid> {
        let sid = id.parse::<Sid>().ok()?;
        // `fetch_sockets` of a single sid only returns it if it exists.
        (!self.local.fetch_sockets(BroadcastOptions::new(sid)).is_empty()).then_some(sid)
    }

    fn select(&self, opts: &BroadcastOptions) -> Selection {
        let names_socket = |r: &Room| self.local_socket(r).is_some();
        if !opts.rooms.iter().chain(&opts.except).any(names_socket) {
            return Selection::Opts(Box::new(opts.clone()));
        }
        let (sid_rooms, named_rooms): (Vec<Room>, Vec<Room>) =
            opts.rooms.iter().cloned().partition(names_socket);
        let (sid_except, named_except): (Vec<Room>, Vec<Room>) =
            opts.except.iter().cloned().partition(names_socket);

        let mut base = opts.clone();
        base.rooms = named_rooms.into_iter().collect();
        base.except = named_except.iter().cloned().collect();
        // Rooms were all socket ids: the named part selects nothing.
        let mut sids = if opts.rooms.is_empty() || !base.rooms.is_empty() {
            self.local.sockets(base)
        } else {
            Vec::new()
        };
        if !sid_rooms.is_empty() {
            let excluded: HashSet<Sid> = if named_except.is_empty() {
                HashSet::new()
            } else {
                let mut except = BroadcastOptions::default();
                except.rooms = named_except.into_iter().collect();
                self.local.sockets(except).into_iter().collect()
            };
            sids.extend(
                sid_rooms
                    .iter()
                    .filter_map(|r| self.local_socket(r))
                    .filter(|s| !excluded.contains(s)),
            );
        }
        let mut skip: HashSet<Sid> =
            sid_except.iter().filter_map(|r| self.local_socket(r)).collect();
        if opts.has_flag(BroadcastFlags::Broadcast)
            && let Some(sender) = opts.sid
        {
            skip.insert(sender);
        }
        sids.retain(|s| skip.insert(*s));
        Selection::Sids(sids)
    }

    /// Options selecting exactly `sid`, keeping the delivery flags.
    fn single(sid: Sid, opts: &BroadcastOptions) -> BroadcastOptions {
        let mut one = BroadcastOptions::new(sid);
        if opts.has_flag(BroadcastFlags::Volatile) {
            one.add_flag(BroadcastFlags::Volatile);
        }
        one
    }

    fn local_broadcast(
        &self,
        packet: Packet,
        opts: &BroadcastOptions,
    ) -> Result<(), Vec<SocketError>> {
        match self.select(opts) {
            Selection::Opts(opts) => self.local.broadcast(packet, *opts),
            Selection::Sids(sids) => {
                let errors: Vec<SocketError> = sids
                    .into_iter()
                    .filter_map(|sid| {
                        self.local.broadcast(packet.clone(), Self::single(sid, opts)).err()
                    })
                    .flatten()
                    .collect();
                if errors.is_empty() { Ok(()) } else { Err(errors) }
            }
        }
    }

    fn local_broadcast_with_ack(
        &self,
        packet: Packet,
        opts: &BroadcastOptions,
        timeout: Option<Duration>,
    ) -> (Vec<E::AckStream>, u32) {
        match self.select(opts) {
            Selection::Opts(opts) => {
                let (stream, count) = self.local.broadcast_with_ack(packet, *opts, timeout);
                (vec![stream], count)
            }
            Selection::Sids(sids) => {
                sids.into_iter().fold((Vec::new(), 0), |(mut streams, total), sid| {
                    let (stream, count) = self.local.broadcast_with_ack(
                        packet.clone(),
                        Self::single(sid, opts),
                        timeout,
                    );
                    streams.push(stream);
                    (streams, total + count)
                })
            }
        }
    }

    /// The local sockets `opts` selects, by id.
    fn selected_sids(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        match self.select(opts) {
            Selection::Opts(opts) => self.local.sockets(*opts),
            Selection::Sids(sids) => sids,
        }
    }

    /// Adds the selected sockets to `rooms`; returns them.
    fn local_add(&self, opts: &BroadcastOptions, rooms: &[Room]) -> Vec<Sid> {
        let sids = self.selected_sids(opts);
        sids.iter().for_each(|sid| self.local.add_all(*sid, rooms.to_vec()));
        sids
    }

    /// Removes the selected sockets from `rooms`; returns them.
    fn local_del(&self, opts: &BroadcastOptions, rooms: &[Room]) -> Vec<Sid> {
        let sids = self.selected_sids(opts);
        sids.iter().for_each(|sid| self.local.del(*sid, rooms.to_vec()));
        sids
    }

    fn local_disconnect(&self, opts: &BroadcastOptions) -> Result<(), Vec<SocketError>> {
        match self.select(opts) {
            Selection::Opts(opts) => self.local.disconnect_socket(*opts),
            Selection::Sids(sids) => {
                let errors: Vec<SocketError> = sids
                    .into_iter()
                    .filter_map(|sid| {
                        self.local.disconnect_socket(BroadcastOptions::new(sid)).err()
                    })
                    .flatten()
                    .collect();
                if errors.is_empty() { Ok(()) } else { Err(errors) }
            }
        }
    }

    /// The connected local sockets `opts` selects.
    fn local_fetch(&self, opts: &BroadcastOptions) -> Vec<RemoteSocketData> {
        match self.select(opts) {
            Selection::Opts(opts) => self.local.fetch_sockets(*opts),
            Selection::Sids(sids) => sids
                .into_iter()
                .flat_map(|sid| self.local.fetch_sockets(BroadcastOptions::new(sid)))
                .collect(),
        }
    }

    /// A socket's rooms as Node lists them: its own id first.
    fn rooms_with_id(&self, sid: Sid) -> Vec<String> {
        let mut rooms = vec![sid.to_string()];
        rooms.extend(self.local.socket_rooms(sid).into_iter().map(|r| r.into_owned()));
        rooms
    }

    fn local_rooms(&self, opts: &BroadcastOptions) -> HashSet<String> {
        self.local_fetch(opts).into_iter().flat_map(|s| self.rooms_with_id(s.id)).collect()
    }

    fn local_details(&self, opts: &BroadcastOptions) -> Vec<Json> {
        let cluster = &self.core.cluster;
        self.local_fetch(opts)
            .into_iter()
            .filter_map(|s| {
                let details = cluster.socket_details(&self.core.nsp, s.id);
                let (handshake, data) = match details {
                    Some(d) => (d.handshake, d.data),
                    None => (empty_handshake(), json!({})),
                };
                let socket = FetchedSocket {
                    id: s.id.to_string(),
                    handshake,
                    rooms: self.rooms_with_id(s.id),
                    data,
                };
                serde_json::to_value(socket).ok()
            })
            .collect()
    }

    /// Asks every other server; only complete answers make a result.
    async fn ask(&self, request: Request) -> Result<Vec<ResponseBody>, RequestError> {
        self.core.request_all(request).await.map_err(|(e, _)| e)
    }

    async fn on_message(self: Arc<Self>, msg: Message) {
        if let Err(error) = self.on_bytes(&msg).await {
            incr(&self.core.cluster.metrics().decode_errors);
            tracing::debug!(nsp = %self.core.nsp, channel = %msg.channel, %error, "malformed message dropped");
        }
    }

    /// Reads a message as the mode says and acts on it.
    async fn on_bytes(&self, msg: &Message) -> Result<(), DecodeError> {
        let core = &self.core;
        let Some(Inbound { from, incoming }) =
            core.mode.decode(&core.uid, &core.nsp, &msg.channel, &msg.payload)?
        else {
            return Ok(());
        };
        match incoming {
            Incoming::Response(response) => core.on_response(response),
            Incoming::Request { request_id, request } => {
                self.handle_request(from, request_id, request).await?
            }
        }
        Ok(())
    }

    /// Applies a peer's operation locally and answers it when asked to.
    async fn handle_request(
        &self,
        uid: Option<String>,
        request_id: Option<String>,
        request: Request,
    ) -> Result<(), DecodeError> {
        let reply = |body| async {
            if let Some(request_id) = request_id.clone() {
                self.core.reply(uid.as_deref(), ResponseMsg { request_id, body }).await;
            }
        };
        match request {
            Request::Sockets { rooms } => {
                let opts = peer_opts(rooms, Vec::new(), false);
                let ids =
                    self.local_fetch(&opts).into_iter().map(|s| Json::String(s.id.to_string()));
                reply(ResponseBody::Sockets(ids.collect())).await;
            }
            Request::AllRooms => {
                let rooms = self.local_rooms(&peer_opts(Vec::new(), Vec::new(), false));
                reply(ResponseBody::Rooms(rooms.into_iter().collect())).await;
            }
            Request::Join { target, rooms } => {
                let opts = peer_opts(target.rooms, target.except, false);
                let sids = self.local_add(&opts, &rooms_of(rooms));
                self.rooms.wake();
                self.core.cluster.rooms_changed(&self.core.nsp, sids);
            }
            Request::Leave { target, rooms } => {
                let opts = peer_opts(target.rooms, target.except, false);
                let sids = self.local_del(&opts, &rooms_of(rooms));
                self.rooms.wake();
                self.core.cluster.rooms_changed(&self.core.nsp, sids);
            }
            Request::Disconnect { target, close: _ } => {
                // socketioxide has no "disconnect without closing the
                // transport"; `close` cannot be honoured finer than this.
                if let Err(errors) =
                    self.local_disconnect(&peer_opts(target.rooms, target.except, false))
                {
                    tracing::debug!(nsp = %self.core.nsp, ?errors, "remote disconnect failed for some sockets");
                }
            }
            Request::JoinSocket { sid, room } => {
                if let Some(sid) = self.local_socket(&sid) {
                    self.local.add_all(sid, room);
                    self.core.cluster.rooms_changed(&self.core.nsp, vec![sid]);
                    reply(ResponseBody::Done).await;
                }
            }
            Request::LeaveSocket { sid, room } => {
                if let Some(sid) = self.local_socket(&sid) {
                    self.local.del(sid, room);
                    self.core.cluster.rooms_changed(&self.core.nsp, vec![sid]);
                    reply(ResponseBody::Done).await;
                }
            }
            Request::DisconnectSocket { sid, close: _ } => {
                if let Some(sid) = self.local_socket(&sid) {
                    let _ = self.local.disconnect_socket(BroadcastOptions::new(sid));
                    reply(ResponseBody::Done).await;
                }
            }
            Request::Fetch { target } => {
                let sockets = self.local_details(&peer_opts(target.rooms, target.except, false));
                reply(ResponseBody::Sockets(sockets)).await;
            }
            Request::ServerSideEmit { data } => {
                self.core.cluster.dispatch_event(&self.core, data, request_id.clone(), uid.clone());
            }
            Request::Broadcast { packet, opts } => {
                self.on_broadcast_request(packet, opts, request_id.clone(), uid.clone()).await?
            }
        }
        Ok(())
    }

    /// A broadcast from a peer. With acks, the client count goes back at
    /// once (even 0: the asker waits for one count per server), then each
    /// ack.
    async fn on_broadcast_request(
        &self,
        packet: EventPacket,
        opts: WireOpts,
        request_id: Option<String>,
        uid: Option<String>,
    ) -> Result<(), DecodeError> {
        if packet.nsp != self.core.nsp || opts.flags.from_history == Some(true) {
            return Ok(());
        }
        let packet = socket_packet(&packet)?;
        let local_opts = peer_opts(opts.rooms, opts.except, opts.flags.volatile == Some(true));
        let Some(request_id) = request_id else {
            if let Err(errors) = self.local_broadcast(packet, &local_opts) {
                tracing::debug!(nsp = %self.core.nsp, ?errors, "remote broadcast missed some sockets");
            }
            return Ok(());
        };
        let timeout = opts.flags.timeout.map(Duration::from_millis);
        let (streams, count) = self.local_broadcast_with_ack(packet, &local_opts, timeout);
        let msg = ResponseMsg {
            request_id: request_id.clone(),
            body: ResponseBody::ClientCount(count.into()),
        };
        self.core.reply(uid.as_deref(), msg).await;
        let core = self.core.clone();
        // Bounded by the local streams' own ack timeout.
        tokio::spawn(async move {
            let mut acks = futures::stream::select_all(streams.into_iter().map(Box::pin));
            while let Some((_, result)) = acks.next().await {
                // A client that timed out or left sends nothing, as in Node.
                let Ok(value) = result else { continue };
                match ack_packet(&value) {
                    Ok(packet) => {
                        let body = ResponseBody::BroadcastAck(packet);
                        core.reply(
                            uid.as_deref(),
                            ResponseMsg { request_id: request_id.clone(), body },
                        )
                        .await;
                    }
                    Err(e) => tracing::debug!(error = %e, "client ack not forwarded"),
                }
            }
        });
        Ok(())
    }
}

fn empty_handshake() -> Json {
    json!({
        "headers": {}, "time": "", "address": "", "xdomain": false, "secure": false,
        "issued": 0, "url": "", "query": {}, "auth": {}
    })
}

async fn inbound<E: SocketEmitter, D: Driver>(
    adapter: Weak<ClusterAdapter<E, D>>,
    mut rx: mpsc::Receiver<Message>,
) {
    while let Some(msg) = rx.recv().await {
        // The namespace is gone: stop.
        let Some(adapter) = adapter.upgrade() else {
            return;
        };
        adapter.on_message(msg).await;
    }
}

impl<E: SocketEmitter, D: Driver> CoreAdapter<E> for ClusterAdapter<E, D> {
    type Error = RequestError;
    type State = Cluster<D>;
    type AckStream = AckStream<E::AckStream>;
    type InitRes = InitRes;

    fn new(state: &Cluster<D>, local: CoreLocalAdapter<E>) -> Self {
        let core = Arc::new(NsCore::new(state.clone(), local.path().to_string()));
        state.register(&core);
        let rooms = core.rooms.clone();
        Self { core, local, rooms }
    }

    fn init(self: Arc<Self>, on_success: impl FnOnce() + Send + 'static) -> InitRes {
        let cluster = self.core.cluster.clone();
        let (tx, rx) = mpsc::channel(cluster.config().queue_capacity.max(1));
        let sink = MessageSink::new(tx, cluster.metrics().clone());
        let subs = self.subscriptions();
        let nsp = self.core.nsp.clone();
        let adapter = Arc::downgrade(&self);
        if self.core.mode.room_channels().is_some() {
            let interval = cluster.config().room_sync_interval;
            let rooms = self.rooms.clone();
            tokio::spawn(room_sync_task(adapter.clone(), rooms, sink.clone(), interval));
        }
        InitRes(Box::pin(async move {
            tokio::spawn(inbound(adapter, rx));
            let result = cluster.driver().subscribe(subs, sink).await;
            // Served either way: local delivery works, the driver subscribes
            // again once Redis is back.
            on_success();
            result.map_err(|source| InitError { nsp, source })
        }))
    }

    async fn close(&self) -> Result<(), RequestError> {
        self.core.close();
        self.core.cluster.deregister(&self.core);
        let mut subs = self.subscriptions();
        if let Some(channels) = self.core.mode.room_channels() {
            subs.extend(self.rooms.take(channels));
        }
        self.core.cluster.driver().unsubscribe(subs).await?;
        Ok(())
    }

    async fn server_count(&self) -> Result<u16, RequestError> {
        let count = self.core.server_count().await?;
        Ok(u16::try_from(count).unwrap_or(u16::MAX))
    }

    async fn broadcast(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), BroadcastError> {
        // Encoded before anything is sent: a message Node peers could not
        // read is never published.
        let remote = self.remote_target(&opts).map(|target| {
            let data = wire_packet(&self.core.nsp, &packet)?.data;
            let wire =
                WireOpts { rooms: target.rooms, except: target.except, flags: flags(&opts, None) };
            self.core.encode_broadcast(data, wire)
        });
        let local = self.local_broadcast(packet, &opts);
        if let Some(remote) = remote {
            let (channel, payload) = remote.map_err(adapter_error)?;
            self.core.publish(channel, payload).await.map_err(adapter_error)?;
        }
        local.map_err(BroadcastError::from)
    }

    async fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Option<Duration>,
    ) -> Result<Self::AckStream, RequestError> {
        let remote = match self.remote_target(&opts) {
            Some(target) => {
                // Node's requester sets `flags.timeout` for its own bookkeeping.
                let timeout = timeout.unwrap_or_else(|| self.local.ack_timeout());
                let packet = wire_packet(&self.core.nsp, &packet)?;
                let opts = WireOpts {
                    rooms: target.rooms,
                    except: target.except,
                    flags: flags(&opts, Some(timeout)),
                };
                Some((Request::Broadcast { packet, opts }, timeout))
            }
            None => None,
        };
        let (streams, _) = self.local_broadcast_with_ack(packet, &opts, timeout);
        let remote = match remote {
            Some((request, timeout)) => {
                let (request_id, rx, guard) = self.core.open_request();
                match self.core.send_request(request, Some(request_id)).await {
                    // Local acks still count when the bus is down.
                    Err(_) => None,
                    Ok(()) => {
                        let servers = match self.core.server_count().await {
                            Ok(n) => n.saturating_sub(1),
                            Err(e) => {
                                tracing::warn!(nsp = %self.core.nsp, error = %e, "server count unknown, remote acks ignored");
                                0
                            }
                        };
                        Some(RemoteAcks::new(rx, guard, servers, timeout))
                    }
                }
            }
            None => None,
        };
        Ok(AckStream::new(streams, remote))
    }

    async fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: impl RoomParam,
    ) -> Result<(), RequestError> {
        let rooms: Vec<Room> = rooms.into_room_iter().collect();
        let sids = self.local_add(&opts, &rooms);
        self.rooms.wake();
        self.core.cluster.rooms_changed(&self.core.nsp, sids);
        if let Some(target) = self.remote_target(&opts) {
            let rooms = rooms.iter().map(|r| r.to_string()).collect();
            self.core.send_request(Request::Join { target, rooms }, None).await?;
        }
        Ok(())
    }

    async fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: impl RoomParam,
    ) -> Result<(), RequestError> {
        let rooms: Vec<Room> = rooms.into_room_iter().collect();
        let sids = self.local_del(&opts, &rooms);
        self.rooms.wake();
        self.core.cluster.rooms_changed(&self.core.nsp, sids);
        if let Some(target) = self.remote_target(&opts) {
            let rooms = rooms.iter().map(|r| r.to_string()).collect();
            self.core.send_request(Request::Leave { target, rooms }, None).await?;
        }
        Ok(())
    }

    async fn disconnect_socket(&self, opts: BroadcastOptions) -> Result<(), BroadcastError> {
        let local = self.local_disconnect(&opts);
        if let Some(target) = self.remote_target(&opts) {
            let request = Request::Disconnect { target, close: false };
            self.core.send_request(request, None).await.map_err(adapter_error)?;
        }
        local.map_err(BroadcastError::Socket)
    }

    async fn rooms(&self, opts: BroadcastOptions) -> Result<Vec<Room>, RequestError> {
        let mut rooms = self.local_rooms(&opts);
        if let Some(target) = self.remote_target(&opts) {
            for body in self.ask(self.core.mode.rooms_request(target)).await? {
                match body {
                    ResponseBody::Rooms(names) => rooms.extend(names),
                    ResponseBody::Sockets(sockets) => {
                        rooms.extend(
                            sockets
                                .iter()
                                .filter_map(FetchedSocket::from_json)
                                .flat_map(|s| s.rooms),
                        );
                    }
                    _ => {}
                }
            }
        }
        Ok(rooms.into_iter().map(Cow::Owned).collect())
    }

    async fn fetch_sockets(
        &self,
        opts: BroadcastOptions,
    ) -> Result<Vec<RemoteSocketData>, RequestError> {
        let mut sockets = self.local_fetch(&opts);
        if let Some(target) = self.remote_target(&opts) {
            for body in self.ask(Request::Fetch { target }).await? {
                let ResponseBody::Sockets(items) = body else {
                    continue;
                };
                for socket in items.iter().filter_map(FetchedSocket::from_json) {
                    match socket.id.parse::<Sid>() {
                        // The origin server is unknown on the wire: ZERO makes
                        // every operation on the socket go through the cluster.
                        Ok(id) => sockets.push(RemoteSocketData {
                            id,
                            server_id: Uid::ZERO,
                            ns: self.local.path().clone(),
                        }),
                        Err(_) => {
                            tracing::debug!(id = %socket.id, "remote socket id is not a socketioxide id, skipped")
                        }
                    }
                }
            }
        }
        Ok(sockets)
    }

    fn get_local(&self) -> &CoreLocalAdapter<E> {
        &self.local
    }
}
