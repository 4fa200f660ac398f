//! The sharded protocol: socket.io-adapter 2.5's `ClusterAdapter` messages
//! as `@socket.io/redis-adapter` 8.3's `createShardedAdapter` publishes them
//! with SPUBLISH.
//!
//! One envelope `{type, data, uid, nsp}` for everything, JSON unless the
//! type may carry binary (3, 8, 9, 10, 12) and `data` does, then msgpack;
//! a receiver picks by the first byte (`{` is JSON).

use std::fmt;

use rmpv::Value as Mp;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{
    DecodeError, EncodeError, EventPacket, Flags, Request, ResponseBody, ResponseMsg, Target,
    WireOpts, mp_field, mp_rooms, payload, read_frame,
};

const BROADCAST: i64 = 3;
const SOCKETS_JOIN: i64 = 4;
const SOCKETS_LEAVE: i64 = 5;
const DISCONNECT_SOCKETS: i64 = 6;
const FETCH_SOCKETS: i64 = 7;
const FETCH_SOCKETS_RESPONSE: i64 = 8;
const SERVER_SIDE_EMIT: i64 = 9;
const SERVER_SIDE_EMIT_RESPONSE: i64 = 10;
const BROADCAST_CLIENT_COUNT: i64 = 11;
const BROADCAST_ACK: i64 = 12;

/// socket.io-parser's EVENT packet type.
const EVENT: i64 = 2;

/// Node's `looksLikeASocketId`: a JS string of 20 UTF-16 units.
const NODE_SID_LEN: usize = 20;

/// Which channels a sharded server listens to: Node's `subscriptionMode`.
/// In configuration (serde, [`Display`](fmt::Display)) it is spelt as in
/// Node: `static`, `dynamic`, `dynamic-private`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubscriptionMode {
    /// Only the namespace's main channel (and the server's own response
    /// channel): every broadcast reaches every server.
    Static,
    /// Plus one channel per room present on the server; a broadcast to
    /// exactly one room (without ack) goes only to the servers that have
    /// it, unless the room looks like a Node socket id (20 characters).
    #[default]
    Dynamic,
    /// As `Dynamic`, and socket-id rooms get their own channel too.
    DynamicPrivate,
}

impl SubscriptionMode {
    /// The name in configuration, as serde reads and writes it.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Dynamic => "dynamic",
            Self::DynamicPrivate => "dynamic-private",
        }
    }
}

impl fmt::Display for SubscriptionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The channels of one namespace in sharded mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardedChannels {
    /// `prefix#nsp#`: every message not routed elsewhere; its SHARDNUMSUB
    /// is the server count.
    pub main: String,
}

impl ShardedChannels {
    /// The channels of namespace `nsp` (slash included) under `prefix`.
    pub fn new(prefix: &str, nsp: &str) -> Self {
        Self { main: format!("{prefix}#{nsp}#") }
    }

    /// `prefix#nsp#uid#`: the responses to the server `uid`.
    pub fn response_for(&self, uid: &str) -> String {
        format!("{}{uid}#", self.main)
    }

    /// `prefix#nsp#room#`: the broadcasts to `room` alone (dynamic modes).
    pub fn room(&self, room: &str) -> String {
        format!("{}{room}#", self.main)
    }

    /// Where Node publishes `body`: a broadcast without ack to exactly one
    /// room goes to the room channel (in `Dynamic` mode unless the room is
    /// 20 characters long), everything else to the main channel.
    pub fn publish_channel(&self, body: &ShardedBody, mode: SubscriptionMode) -> String {
        if let ShardedBody::Broadcast { opts, request_id: None, .. } = body
            && let [room] = opts.rooms.as_slice()
        {
            let dynamic = match mode {
                SubscriptionMode::Static => false,
                SubscriptionMode::Dynamic => room.encode_utf16().count() != NODE_SID_LEN,
                SubscriptionMode::DynamicPrivate => true,
            };
            if dynamic {
                return self.room(room);
            }
        }
        self.main.clone()
    }
}

/// What a sharded message carries (`type` and `data`).
#[derive(Debug, Clone, PartialEq)]
pub enum ShardedBody {
    /// BROADCAST (3): `{packet: {type: 2, data}, requestId?, opts}`; with a
    /// request id the receivers answer with a client count, then acks.
    Broadcast {
        /// `[event, ...args]`.
        data: Vec<Mp>,
        /// Present when the sender collects acks.
        request_id: Option<String>,
        /// Targets and flags.
        opts: WireOpts,
    },
    /// SOCKETS_JOIN (4): `{opts, rooms}`.
    SocketsJoin {
        /// The sockets.
        opts: WireOpts,
        /// The rooms they join.
        rooms: Vec<String>,
    },
    /// SOCKETS_LEAVE (5): `{opts, rooms}`.
    SocketsLeave {
        /// The sockets.
        opts: WireOpts,
        /// The rooms they leave.
        rooms: Vec<String>,
    },
    /// DISCONNECT_SOCKETS (6): `{opts, close}`.
    DisconnectSockets {
        /// The sockets.
        opts: WireOpts,
        /// Close the underlying connection too.
        close: bool,
    },
    /// FETCH_SOCKETS (7): `{opts, requestId}`.
    FetchSockets {
        /// The sockets.
        opts: WireOpts,
        /// Where the answers go.
        request_id: String,
    },
    /// FETCH_SOCKETS_RESPONSE (8): `{requestId, sockets}`.
    FetchSocketsResponse {
        /// The request answered.
        request_id: String,
        /// `{id, handshake, rooms, data}` per socket.
        sockets: Vec<Json>,
    },
    /// SERVER_SIDE_EMIT (9): `{requestId?, packet: [event, ...args]}`.
    ServerSideEmit {
        /// Present when the sender waits for one answer per server.
        request_id: Option<String>,
        /// `[event, ...args]`.
        packet: Vec<Json>,
    },
    /// SERVER_SIDE_EMIT_RESPONSE (10): `{requestId, packet}`.
    ServerSideEmitResponse {
        /// The request answered.
        request_id: String,
        /// The handler's answer (`null` when it gave none).
        packet: Json,
    },
    /// BROADCAST_CLIENT_COUNT (11): `{requestId, clientCount}`.
    BroadcastClientCount {
        /// The broadcast answered.
        request_id: String,
        /// How many local clients were asked for an ack.
        client_count: u64,
    },
    /// BROADCAST_ACK (12): `{requestId, packet?}`.
    BroadcastAck {
        /// The broadcast answered.
        request_id: String,
        /// The client's first ack argument, absent when it gave none.
        packet: Option<Mp>,
    },
}

/// A message of the sharded protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardedMessage {
    /// The sender's uid (Node: 16 hex characters). Absent is accepted.
    pub uid: Option<String>,
    /// The namespace. Node drops messages without it (except responses on
    /// a server's own response channel).
    pub nsp: Option<String>,
    /// Type and data.
    pub body: ShardedBody,
}

/// A received message, as the adapter's shared handlers take it.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// An operation to apply locally (a broadcast without ack is a
    /// [`Request::Broadcast`] without request id).
    Request {
        /// Where to answer, when an answer is expected.
        request_id: Option<String>,
        /// The operation.
        request: Request,
    },
    /// An answer to one of our requests.
    Response(ResponseMsg),
}

fn s(text: &str) -> Mp {
    Mp::from(text)
}

fn rooms_mp(rooms: &[String]) -> Mp {
    Mp::Array(rooms.iter().map(|r| s(r)).collect())
}

fn flags_mp(flags: &Flags) -> Mp {
    let mut map = Vec::new();
    if let Some(v) = flags.volatile {
        map.push((s("volatile"), Mp::Boolean(v)));
    }
    if let Some(v) = flags.compress {
        map.push((s("compress"), Mp::Boolean(v)));
    }
    if let Some(v) = flags.timeout {
        map.push((s("timeout"), Mp::from(v)));
    }
    if let Some(v) = flags.expect_single_response {
        map.push((s("expectSingleResponse"), Mp::Boolean(v)));
    }
    if let Some(v) = flags.from_history {
        map.push((s("fromHistory"), Mp::Boolean(v)));
    }
    Mp::Map(map)
}

fn opts_mp(opts: &WireOpts) -> Mp {
    Mp::Map(vec![
        (s("rooms"), rooms_mp(&opts.rooms)),
        (s("except"), rooms_mp(&opts.except)),
        (s("flags"), flags_mp(&opts.flags)),
    ])
}

fn json_mp(value: &Json) -> Result<Mp, EncodeError> {
    payload::json_value_to_mp(value).map_err(|_| EncodeError::InvalidPayload)
}

fn wire_opts(target: Target) -> WireOpts {
    WireOpts { rooms: target.rooms, except: target.except, flags: Flags::default() }
}

fn target(opts: WireOpts) -> Target {
    Target { rooms: opts.rooms, except: opts.except }
}

impl ShardedBody {
    fn kind(&self) -> i64 {
        match self {
            Self::Broadcast { .. } => BROADCAST,
            Self::SocketsJoin { .. } => SOCKETS_JOIN,
            Self::SocketsLeave { .. } => SOCKETS_LEAVE,
            Self::DisconnectSockets { .. } => DISCONNECT_SOCKETS,
            Self::FetchSockets { .. } => FETCH_SOCKETS,
            Self::FetchSocketsResponse { .. } => FETCH_SOCKETS_RESPONSE,
            Self::ServerSideEmit { .. } => SERVER_SIDE_EMIT,
            Self::ServerSideEmitResponse { .. } => SERVER_SIDE_EMIT_RESPONSE,
            Self::BroadcastClientCount { .. } => BROADCAST_CLIENT_COUNT,
            Self::BroadcastAck { .. } => BROADCAST_ACK,
        }
    }

    /// `data`, keys in Node's order.
    fn data_mp(&self) -> Result<Mp, EncodeError> {
        let id = |id: &str| (s("requestId"), s(id));
        let map = match self {
            Self::Broadcast { data, request_id, opts } => {
                if !matches!(data.first(), Some(Mp::String(e)) if e.is_str()) {
                    return Err(EncodeError::InvalidPayload);
                }
                let packet = Mp::Map(vec![
                    (s("type"), Mp::from(EVENT)),
                    (s("data"), Mp::Array(data.clone())),
                ]);
                let mut map = vec![(s("packet"), packet)];
                map.extend(request_id.as_deref().map(id));
                map.push((s("opts"), opts_mp(opts)));
                map
            }
            Self::SocketsJoin { opts, rooms } | Self::SocketsLeave { opts, rooms } => {
                vec![(s("opts"), opts_mp(opts)), (s("rooms"), rooms_mp(rooms))]
            }
            Self::DisconnectSockets { opts, close } => {
                vec![(s("opts"), opts_mp(opts)), (s("close"), Mp::Boolean(*close))]
            }
            Self::FetchSockets { opts, request_id } => {
                vec![(s("opts"), opts_mp(opts)), id(request_id)]
            }
            Self::FetchSocketsResponse { request_id, sockets } => vec![
                id(request_id),
                (s("sockets"), Mp::Array(sockets.iter().map(json_mp).collect::<Result<_, _>>()?)),
            ],
            Self::ServerSideEmit { request_id, packet } => {
                if !matches!(packet.first(), Some(Json::String(_))) {
                    return Err(EncodeError::InvalidPayload);
                }
                let mut map: Vec<_> = request_id.as_deref().map(id).into_iter().collect();
                map.push((
                    s("packet"),
                    Mp::Array(packet.iter().map(json_mp).collect::<Result<_, _>>()?),
                ));
                map
            }
            Self::ServerSideEmitResponse { request_id, packet } => {
                vec![id(request_id), (s("packet"), json_mp(packet)?)]
            }
            Self::BroadcastClientCount { request_id, client_count } => {
                vec![id(request_id), (s("clientCount"), Mp::from(*client_count))]
            }
            Self::BroadcastAck { request_id, packet } => {
                let mut map = vec![id(request_id)];
                map.extend(packet.clone().map(|p| (s("packet"), p)));
                map
            }
        };
        Ok(Mp::Map(map))
    }

    /// The sharded form of a request of the shared adapter code. ALL_ROOMS,
    /// SOCKETS and the single-socket forms do not exist in this protocol.
    pub fn from_request(request: Request, request_id: Option<String>) -> Result<Self, EncodeError> {
        Ok(match request {
            Request::Broadcast { packet, opts } => {
                Self::Broadcast { data: packet.data, request_id, opts }
            }
            Request::Join { target: t, rooms } => Self::SocketsJoin { opts: wire_opts(t), rooms },
            Request::Leave { target: t, rooms } => Self::SocketsLeave { opts: wire_opts(t), rooms },
            Request::Disconnect { target: t, close } => {
                Self::DisconnectSockets { opts: wire_opts(t), close }
            }
            Request::Fetch { target: t } => Self::FetchSockets {
                opts: wire_opts(t),
                request_id: request_id.ok_or(EncodeError::UnsupportedRequest)?,
            },
            Request::ServerSideEmit { data } => Self::ServerSideEmit { request_id, packet: data },
            Request::Sockets { .. }
            | Request::AllRooms
            | Request::JoinSocket { .. }
            | Request::LeaveSocket { .. }
            | Request::DisconnectSocket { .. } => return Err(EncodeError::UnsupportedRequest),
        })
    }

    /// The sharded form of a response.
    pub fn from_response(msg: ResponseMsg) -> Result<Self, EncodeError> {
        let request_id = msg.request_id;
        Ok(match msg.body {
            ResponseBody::Sockets(sockets) => Self::FetchSocketsResponse { request_id, sockets },
            ResponseBody::ServerSideEmitAck(packet) => {
                Self::ServerSideEmitResponse { request_id, packet }
            }
            ResponseBody::ClientCount(client_count) => {
                Self::BroadcastClientCount { request_id, client_count }
            }
            ResponseBody::BroadcastAck(packet) => Self::BroadcastAck { request_id, packet },
            ResponseBody::Rooms(_) | ResponseBody::Done => {
                return Err(EncodeError::UnsupportedRequest);
            }
        })
    }

    /// Whether this is an answer to a request.
    pub fn is_response(&self) -> bool {
        matches!(
            self,
            Self::FetchSocketsResponse { .. }
                | Self::ServerSideEmitResponse { .. }
                | Self::BroadcastClientCount { .. }
                | Self::BroadcastAck { .. }
        )
    }

    /// In the shape the shared handlers take; `nsp` fills the packet's.
    pub fn into_incoming(self, nsp: &str) -> Incoming {
        let request = |request_id, request| Incoming::Request { request_id, request };
        let response = |request_id, body| Incoming::Response(ResponseMsg { request_id, body });
        match self {
            Self::Broadcast { data, request_id, opts } => request(
                request_id,
                Request::Broadcast { packet: EventPacket { nsp: nsp.to_owned(), data }, opts },
            ),
            Self::SocketsJoin { opts, rooms } => {
                request(None, Request::Join { target: target(opts), rooms })
            }
            Self::SocketsLeave { opts, rooms } => {
                request(None, Request::Leave { target: target(opts), rooms })
            }
            Self::DisconnectSockets { opts, close } => {
                request(None, Request::Disconnect { target: target(opts), close })
            }
            Self::FetchSockets { opts, request_id } => {
                request(Some(request_id), Request::Fetch { target: target(opts) })
            }
            Self::ServerSideEmit { request_id, packet } => {
                request(request_id, Request::ServerSideEmit { data: packet })
            }
            Self::FetchSocketsResponse { request_id, sockets } => {
                response(request_id, ResponseBody::Sockets(sockets))
            }
            Self::ServerSideEmitResponse { request_id, packet } => {
                response(request_id, ResponseBody::ServerSideEmitAck(packet))
            }
            Self::BroadcastClientCount { request_id, client_count } => {
                response(request_id, ResponseBody::ClientCount(client_count))
            }
            Self::BroadcastAck { request_id, packet } => {
                response(request_id, ResponseBody::BroadcastAck(packet))
            }
        }
    }
}

impl ShardedMessage {
    /// Encodes as Node does: msgpack only when the type may carry binary
    /// and its data does, JSON otherwise. Refuses what Node could not read.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let data = self.body.data_mp()?;
        let uid = self.uid.as_deref().ok_or(EncodeError::InvalidPayload)?;
        let nsp = self.nsp.as_deref().ok_or(EncodeError::InvalidPayload)?;
        let binary_capable = matches!(
            self.body.kind(),
            BROADCAST
                | FETCH_SOCKETS_RESPONSE
                | SERVER_SIDE_EMIT
                | SERVER_SIDE_EMIT_RESPONSE
                | BROADCAST_ACK
        );
        let msgpack = binary_capable && payload::has_binary(&data);
        let envelope = Mp::Map(vec![
            (s("type"), Mp::from(self.body.kind())),
            (s("data"), data),
            (s("uid"), s(uid)),
            (s("nsp"), s(nsp)),
        ]);
        if msgpack {
            let mut out = Vec::new();
            rmpv::encode::write_value(&mut out, &envelope)
                .map_err(|e| EncodeError::Serialize(e.to_string()))?;
            Ok(out)
        } else {
            // Maps serialize in insertion order: Node's key order.
            serde_json::to_vec(&payload::JsonText(&envelope))
                .map_err(|e| EncodeError::Serialize(e.to_string()))
        }
    }

    /// Decodes a message from any sharded channel. Every field is checked;
    /// rooms that cannot be read refuse the message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let value = match read_frame(bytes)? {
            super::Frame::Json(map) => payload::json_value_to_mp(&Json::Object(map))?,
            super::Frame::Msgpack(value) => value,
        };
        let map = value.as_map().ok_or(DecodeError::Field("message"))?;
        let text = |key: &'static str| -> Result<Option<String>, DecodeError> {
            match mp_field(map, key) {
                None => Ok(None),
                Some(Mp::String(v)) => {
                    v.as_str().map(|v| Some(v.to_owned())).ok_or(DecodeError::Field(key))
                }
                Some(_) => Err(DecodeError::Field(key)),
            }
        };
        let uid = text("uid")?;
        let nsp = text("nsp")?;
        let kind = mp_field(map, "type").and_then(Mp::as_i64).ok_or(DecodeError::Field("type"))?;
        let data = mp_field(map, "data").and_then(Mp::as_map).ok_or(DecodeError::Field("data"))?;
        Ok(Self { uid, nsp, body: decode_body(kind, data)? })
    }
}

fn decode_body(kind: i64, data: &[(Mp, Mp)]) -> Result<ShardedBody, DecodeError> {
    let request_id = || mp_field(data, "requestId").and_then(id);
    let required_id = || request_id().ok_or(DecodeError::Field("requestId"));
    let opts = || WireOpts::decode(mp_field(data, "opts").ok_or(DecodeError::Field("opts"))?);
    let rooms = || match mp_field(data, "rooms") {
        // Node passes a single room through as is.
        Some(v @ (Mp::String(_) | Mp::Integer(_))) => {
            mp_rooms(Some(&Mp::Array(vec![v.clone()])), "rooms")
        }
        other => mp_rooms(other, "rooms"),
    };
    let json_list = |key: &'static str| match mp_field(data, key) {
        Some(Mp::Array(items)) => {
            Ok(items.iter().map(payload::mp_to_json_value).collect::<Vec<_>>())
        }
        _ => Err(DecodeError::Field(key)),
    };
    Ok(match kind {
        BROADCAST => {
            let packet = mp_field(data, "packet")
                .and_then(Mp::as_map)
                .ok_or(DecodeError::Field("packet"))?;
            match mp_field(packet, "type").and_then(Mp::as_i64) {
                Some(EVENT) => {}
                Some(other) => return Err(DecodeError::UnsupportedType(other)),
                None => return Err(DecodeError::Field("packet.type")),
            }
            let data_items = match mp_field(packet, "data") {
                Some(Mp::Array(items)) if matches!(items.first(), Some(Mp::String(e)) if e.is_str()) => {
                    items.clone()
                }
                _ => return Err(DecodeError::Field("packet.data")),
            };
            ShardedBody::Broadcast { data: data_items, request_id: request_id(), opts: opts()? }
        }
        SOCKETS_JOIN => ShardedBody::SocketsJoin { opts: opts()?, rooms: rooms()? },
        SOCKETS_LEAVE => ShardedBody::SocketsLeave { opts: opts()?, rooms: rooms()? },
        DISCONNECT_SOCKETS => ShardedBody::DisconnectSockets {
            opts: opts()?,
            close: mp_field(data, "close").and_then(Mp::as_bool).unwrap_or(false),
        },
        FETCH_SOCKETS => ShardedBody::FetchSockets { opts: opts()?, request_id: required_id()? },
        FETCH_SOCKETS_RESPONSE => ShardedBody::FetchSocketsResponse {
            request_id: required_id()?,
            sockets: json_list("sockets")?,
        },
        SERVER_SIDE_EMIT => {
            let packet = json_list("packet")?;
            if !matches!(packet.first(), Some(Json::String(_))) {
                return Err(DecodeError::Field("packet"));
            }
            ShardedBody::ServerSideEmit { request_id: request_id(), packet }
        }
        SERVER_SIDE_EMIT_RESPONSE => ShardedBody::ServerSideEmitResponse {
            request_id: required_id()?,
            packet: mp_field(data, "packet").map_or(Json::Null, payload::mp_to_json_value),
        },
        BROADCAST_CLIENT_COUNT => ShardedBody::BroadcastClientCount {
            request_id: required_id()?,
            client_count: mp_field(data, "clientCount")
                .and_then(Mp::as_u64)
                .ok_or(DecodeError::Field("clientCount"))?,
        },
        BROADCAST_ACK => ShardedBody::BroadcastAck {
            request_id: required_id()?,
            packet: mp_field(data, "packet").cloned(),
        },
        other => return Err(DecodeError::UnsupportedType(other)),
    })
}

/// Request ids are strings (`randomId()`, 16 hex characters); a number is
/// accepted as its text.
fn id(value: &Mp) -> Option<String> {
    match value {
        Mp::String(s) => s.as_str().map(str::to_owned),
        Mp::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

#[cfg(test)]
#[path = "sharded_tests.rs"]
mod tests;
