//! A socketioxide cluster adapter on Redis that speaks the wire protocols of
//! Node's `@socket.io/redis-adapter` 8.3, classic pub/sub (`createAdapter`)
//! and sharded pub/sub (`createShardedAdapter`), so Roomcast nodes, Node.js
//! socket.io 4.8 servers and `@socket.io/redis-emitter` share one cluster,
//! on one Redis or on a Redis Cluster.
//!
//! # Use
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use roomcast_adapter::{AdapterConfig, Cluster, ClusterAdapter};
//! use socketioxide::{SocketIo, adapter::Emitter};
//!
//! let cluster = Cluster::connect(AdapterConfig {
//!     redis_url: "redis://127.0.0.1:6379".into(),
//!     ..AdapterConfig::default()
//! })
//! .await?;
//! let (_layer, io) = SocketIo::builder()
//!     .with_adapter::<ClusterAdapter<Emitter>>(cluster.clone())
//!     .build_layer();
//! // The namespace exists once its init ran: await it (or `.spawn()` it).
//! io.ns("/", async || {}).await?;
//!
//! cluster.on_server_event("/", |ev| {
//!     if let Some(ack) = ev.ack {
//!         ack.send(serde_json::json!("pong"));
//!     }
//! });
//! let answers = cluster.server_side_emit_with_ack("/", "ping", vec![]).await?;
//! let counters = cluster.metrics_snapshot();
//! # let _ = (answers, counters);
//! # Ok(())
//! # }
//! ```
//!
//! Sharded mode on a Redis Cluster is chosen by configuration alone:
//!
//! ```
//! use roomcast_adapter::{AdapterConfig, AdapterMode, SubscriptionMode};
//!
//! let config = AdapterConfig {
//!     redis_url: "redis-cluster://10.0.0.1:7000?node=10.0.0.2:7000".into(),
//!     mode: AdapterMode::Sharded { subscription_mode: SubscriptionMode::Dynamic },
//!     ..AdapterConfig::default()
//! };
//! # let _ = config;
//! ```
//!
//! # Layers
//!
//! - [`proto`]: the wire formats, pure (no I/O): channel names, broadcast
//!   messages, requests and responses, payload conversion, and the sharded
//!   envelope ([`proto::ShardedMessage`]).
//! - [`driver`]: the bus seam ([`driver::Driver`]: (s)publish, (p/s)subscribe
//!   to a bounded message sink, unsubscribe, PUBSUB (SHARD)NUMSUB) with a
//!   Redis implementation on `fred` (single server or Redis Cluster) and an
//!   in-memory one for N-node tests.
//! - The namespace's mode (private): one type per protocol, classic or
//!   sharded, built from [`AdapterMode`]. It owns everything the two
//!   protocols do differently (the channels subscribed, where a broadcast,
//!   request or response is published and as which bytes, PUBLISH or
//!   SPUBLISH, how servers are counted, whether ALL_ROOMS exists, how a
//!   received message is read, and whether rooms have channels of their
//!   own), so the layers above never test which mode they are in.
//! - Per namespace (private): its identity, publishing and requests in
//!   flight, and in the dynamic sharded modes the reconciliation of its room
//!   channels.
//! - [`Cluster`]: the adapter state shared by every namespace of a process
//!   (the bus, the config, the counters, server-side event handlers).
//! - [`ClusterAdapter`]: socketioxide's `CoreAdapter` for one namespace.
//!
//! [`AdapterMode`] and [`SubscriptionMode`] read and write themselves with
//! serde as a configuration spells them (`classic`, `sharded`; `static`,
//! `dynamic`, `dynamic-private`), so an application's typed config can hold
//! them directly.
//!
//! # Channels (classic mode)
//!
//! With prefix `key` (default `socket.io`) and namespace `nsp` (slash
//! included): broadcasts on `key#nsp#`, or `key#nsp#room#` when exactly one
//! room is targeted, received with PSUBSCRIBE `key#nsp#*` (glob characters
//! of the prefix and namespace escaped); requests on `key-request#nsp#`;
//! responses on `key-response#nsp#` and `key-response#nsp#uid#`. Each
//! process subscribes on exactly one connection, so NUMSUB of the request
//! channel is the number of servers serving the namespace (an emitter
//! subscribes to nothing and is not counted).
//!
//! # Messages (classic mode)
//!
//! A broadcast is msgpack `[uid, {type: 2, data: [event, ...args], nsp},
//! {rooms, except, flags}]`; flags kept are `volatile`, `compress`,
//! `timeout`, `expectSingleResponse`. Requests are JSON (first byte `{`),
//! except BROADCAST (7) and BROADCAST_ACK (9), which are msgpack: SOCKETS
//! (0), ALL_ROOMS (1), REMOTE_JOIN (2), REMOTE_LEAVE (3), REMOTE_DISCONNECT
//! (4), REMOTE_FETCH (5), SERVER_SIDE_EMIT (6), BROADCAST (7) answered by one
//! BROADCAST_CLIENT_COUNT (8, always, even 0) then one BROADCAST_ACK per
//! client ack. Binary payloads are msgpack `bin`; a msgpack timestamp (Node
//! `Date`, ext -1) becomes its ISO string; numeric rooms become their text.
//! Every operation is one publish, never one per node. Messages carrying
//! this adapter's uid are ignored; a request's local part runs before it is
//! published, so its echo is skipped.
//!
//! socketioxide sockets have 16-character ids and, unlike Node's, are not in
//! a room named after their id: a room or `except` entry equal to a local
//! socket's id selects that socket, and socket-id rooms are listed in
//! ALL_ROOMS and REMOTE_FETCH answers (a socket's own id first, as in Node).
//!
//! # Sharded mode
//!
//! [`AdapterMode::Sharded`] speaks the protocol of Node's
//! `createShardedAdapter` (Redis 7+): SSUBSCRIBE, SPUBLISH and PUBSUB
//! SHARDNUMSUB only. On a Redis Cluster a shard channel lives on the master
//! owning its hash slot, so each message is handled by one shard instead of
//! being copied to every node, as a classic PUBLISH is.
//!
//! With prefix `key` (Node's `channelPrefix`, default `socket.io`) and
//! namespace `nsp`: every server listens to the main channel `key#nsp#`
//! (its SHARDNUMSUB, summed over the masters, is the server count) and to
//! its own response channel `key#nsp#uid#` (uid: 16 hex characters). Every
//! message is the envelope `{type, data, uid, nsp}` of socket.io-adapter's
//! `ClusterAdapter`: BROADCAST (3), SOCKETS_JOIN (4), SOCKETS_LEAVE (5),
//! DISCONNECT_SOCKETS (6), FETCH_SOCKETS (7) and its response (8),
//! SERVER_SIDE_EMIT (9) and its response (10), BROADCAST_CLIENT_COUNT (11),
//! BROADCAST_ACK (12). It is JSON, or msgpack when the type may carry binary
//! (3, 8, 9, 10, 12) and its data does; receivers read `{` as JSON.
//! Requests go to the main channel, responses to the asker's own channel.
//! Every operation is applied locally, then published once; a server
//! ignores its own messages by uid, and messages of other namespaces.
//!
//! The subscription mode ([`SubscriptionMode`], Node's `subscriptionMode`)
//! decides who hears a broadcast to exactly one room without ack:
//!
//! - `Static`: it goes to the main channel, every server gets it.
//! - `Dynamic` (Node's default): it goes to the room channel `key#nsp#room#`,
//!   which only the servers with that room subscribe to; except when the
//!   room is 20 UTF-16 units long (Node's socket-id test), then the main
//!   channel. Roomcast socket ids are 16 characters, so Node publishes to a
//!   Roomcast socket on its own room channel: in this mode a Roomcast
//!   server also subscribes one channel per local socket.
//! - `DynamicPrivate`: the room channel always, socket ids included.
//!
//! Broadcasts with acks, to several rooms or to everyone, and every other
//! message use the main channel. socketioxide reports no room creation or
//! deletion, so in the dynamic modes each namespace compares its rooms and
//! sockets with its room-channel subscriptions every
//! [`AdapterConfig::room_sync_interval`] (and at once after the adapter's
//! own join and leave operations) and sends the difference as one
//! subscribe and one unsubscribe call. All servers of a cluster must use
//! the same mode and subscription mode.
//!
//! # Redis Cluster
//!
//! A `redis-cluster://` URL, or [`AdapterConfig::cluster`], connects fred's
//! cluster client: one connection per master for publishing, one per master
//! for subscribing. Both modes work on it. Classic SUBSCRIBEs land on one
//! master per server, so PUBSUB NUMSUB is summed over every master (as Node
//! does); so is SHARDNUMSUB. SSUBSCRIBE takes several channels only within
//! one hash slot: shard subscriptions go out as one command per slot
//! (one for all on a single server), concurrently. After a reconnection
//! the driver subscribes again to every classic route and to the shard
//! routes the reconnected master owns, batched the same way; masters that
//! stayed up get nothing (see [`driver::FredDriver`] for what fred does).
//!
//! # Delivery guarantee
//!
//! At most once, like Redis pub/sub: a server that is disconnected, or
//! subscribes late, misses what was published meanwhile. Nothing is
//! retried or replayed. In the dynamic sharded modes a room that appears
//! on a server is subscribed at most `room_sync_interval` plus one round
//! trip later: a single-room broadcast published meanwhile by another
//! server misses it (Node has the same window, shorter).
//! [`Cluster::rooms_ready`] closes that window for a caller that can wait:
//! it asks for a pass at once and returns when Redis confirmed the rooms'
//! channels, so a server that answers a join (or completes a connection)
//! only after it knows its socket hears everything sent from then on. A
//! failover that
//! moves a slot to another master unsubscribes its shard channels on the
//! Redis side; they come back when fred reconnects.
//!
//! # Failure modes
//!
//! - Redis unreachable at start: [`Cluster::connect`] fails.
//! - Redis lost later: commands fail at once (no queueing), local delivery
//!   goes on. `broadcast` delivers locally then returns the publish error;
//!   a broadcast with acks yields the local acks only; cluster queries
//!   (fetch sockets, rooms, server count, server-side emit) fail. The client
//!   reconnects with exponential backoff (`reconnect_min_delay` to
//!   `reconnect_max_delay`) and the driver subscribes again. Each step is
//!   logged (`tracing`) and counted ([`AdapterMetrics`]).
//! - A slow namespace: inbound queues are bounded (`queue_capacity`); a
//!   full queue drops and counts messages rather than grow.
//! - Malformed input, on any channel: a Node peer crashes on a malformed
//!   broadcast, so nothing is published before it was built from typed
//!   values and checked; what arrives is validated whole (depth, trailing
//!   bytes, every field) and a message that does not fit is logged at debug
//!   level, counted (`decode_errors`) and dropped. A broadcast whose rooms
//!   cannot be read is refused, never widened to everyone.
//! - A server that does not answer a request: the request fails after
//!   `request_timeout` (default 5 s), as in Node. Its response handler
//!   goes with it, as it does when a caller drops an ack stream early
//!   ([`Cluster::pending_requests`] counts those still waiting).
//! - One namespace that stops reading (a blocking server-side event
//!   handler) fills only its own queue: the others are served.
//!
//! # Decisions where Node is ambiguous or differs
//!
//! Checked against the published sources of @socket.io/redis-adapter 8.3.0,
//! socket.io-adapter 2.5.8, socket.io 4.8, @socket.io/redis-emitter 5.1.0
//! and notepack.io 3.0.1.
//!
//! - Sharded BROADCAST data is `{packet, requestId?, opts}` in that order,
//!   and its packet is `{type: 2, data}` with neither `nsp` nor `id` (Node
//!   encodes before its local adapter fills them): the receiver's namespace
//!   is used. Responses reach Node's `onResponse` on its own channel
//!   whatever their `nsp`; on any other channel a message without the
//!   right `nsp` is dropped. This adapter does the same.
//! - Node's sharded `serverSideEmitWithAck` waits a fixed 5 s and its
//!   `fetchSockets` `flags.timeout` or 5 s; this adapter waits
//!   `request_timeout`.
//! - The sharded protocol has no ALL_ROOMS: `rooms()` fetches the sockets
//!   and reads their rooms, in every case.
//! - Responses: Node answers on the shared `key-response#nsp#` unless its
//!   `publishOnSpecificResponseChannel` option is set, but every 8.x adapter
//!   also listens on its own `key-response#nsp#uid#`. This adapter answers
//!   every request that carries a uid (server-side emit acks included, which
//!   Node always sends on the shared channel) on the asker's own channel;
//!   [`AdapterConfig::reply_on_own_channel`] `= false` restores Node's
//!   default for peers older than 7.2.
//! - The emitter's join/leave/disconnect/server-side-emit requests carry no
//!   uid, and its options have another key order (`rooms, flags, except`):
//!   both are accepted.
//! - Node's receivers of BROADCAST (7) drop the flags; this adapter honours
//!   `volatile` and takes the ack timeout from `flags.timeout`: the
//!   caller's timeout, not the receiving server's default.
//! - Object keys keep their order in every path (payloads, acks, fetched
//!   sockets, server-side events), as in JavaScript: JSON is read with
//!   serde_json's `preserve_order`. A socket in several targeted rooms, or
//!   named both by a room and by its id, gets a broadcast once.
//! - BROADCAST_ACK carries only the client's first ack argument and no
//!   socket id: remote acks are yielded with `Sid::ZERO`. A cluster ack
//!   stream ends when every other server sent its client count and every
//!   counted client answered, or at the timeout.
//! - REMOTE_FETCH answers hold 20-character ids for Node sockets, which
//!   socketioxide's `RemoteSocketData` cannot represent: `fetch_sockets`
//!   skips them (they still count in `rooms`); [`Cluster::remote_sockets`]
//!   and [`Cluster::has_socket`] return every socket with its raw id. Fetched remote sockets get
//!   server id `Uid::ZERO`, so operations on them go through the cluster.
//!   The handshake and data reported for local sockets come from
//!   [`Cluster::on_socket_details`], else an empty handshake and `{}`.
//! - REMOTE_DISCONNECT's `close` cannot be honoured: socketioxide
//!   disconnects the socket the same way either way.
//! - The legacy single-socket forms (`{sid, room}` joins/leaves, `{sid}`
//!   disconnects) are applied and answered; SOCKETS (0), which 8.3 no longer
//!   sends, is still answered.
//! - A filtered `rooms()` query (socketioxide's `io.to(r).rooms()`) is sent
//!   as REMOTE_FETCH and reads the fetched sockets' rooms, since ALL_ROOMS
//!   cannot be filtered.
//! - A server-side event without a handler gets no answer, as in Node (the
//!   asker times out).
//! - socketioxide tells an application nothing when a peer's `socketsJoin` /
//!   `socketsLeave` changes its sockets' rooms: [`Cluster::on_rooms_changed`]
//!   names the local sockets each such change touched.
//! - Only socketioxide's default (common) parser is supported: its JSON
//!   payloads are converted to msgpack; the msgpack parser's opaque bytes
//!   are refused with [`proto::EncodeError::UnsupportedPacket`].
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod ack;
mod adapter;
mod cluster;
mod config;
pub mod driver;
mod error;
mod metrics;
mod mode;
mod namespace;
pub mod proto;
mod room_sync;

pub use ack::AckStream;
pub use adapter::{ClusterAdapter, InitRes};
pub use cluster::{Cluster, ServerAck, ServerEvent, SocketDetails};
pub use config::{AdapterConfig, AdapterMode};
pub use error::{InitError, RequestError, RoomsReadyError, ServerSideEmitError};
pub use metrics::{AdapterMetrics, MetricsSnapshot};
pub use proto::SubscriptionMode;
