//! Requests (`key-request#nsp#`) and responses (`key-response#nsp#[uid#]`).
//!
//! Node writes them as JSON, except BROADCAST (7) and BROADCAST_ACK (9)
//! which may carry binary and are msgpack; a receiver tells them apart by
//! the first byte (`{` is JSON).

use rmpv::Value as Mp;
use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::{
    DecodeError, EncodeError, EventPacket, Frame, WireOpts, json_room, json_rooms, mp_field,
    read_frame,
};

const SOCKETS: i64 = 0;
const ALL_ROOMS: i64 = 1;
const REMOTE_JOIN: i64 = 2;
const REMOTE_LEAVE: i64 = 3;
const REMOTE_DISCONNECT: i64 = 4;
const REMOTE_FETCH: i64 = 5;
const SERVER_SIDE_EMIT: i64 = 6;
const BROADCAST: i64 = 7;
const BROADCAST_CLIENT_COUNT: i64 = 8;
const BROADCAST_ACK: i64 = 9;

/// The sockets a request applies to (`opts` without flags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Sockets in any of these rooms; every socket when empty.
    pub rooms: Vec<String>,
    /// Minus the sockets in any of these rooms.
    pub except: Vec<String>,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// SOCKETS (0): the ids of the sockets in `rooms` (legacy, still answered).
    Sockets {
        /// Rooms to look in; all sockets when empty.
        rooms: Vec<String>,
    },
    /// ALL_ROOMS (1): every room of the server.
    AllRooms,
    /// REMOTE_JOIN (2): the selected sockets join `rooms`.
    Join {
        /// Selected sockets.
        target: Target,
        /// Rooms to join.
        rooms: Vec<String>,
    },
    /// REMOTE_JOIN (2), legacy form: socket `sid` joins `room`; answered.
    JoinSocket {
        /// Socket id.
        sid: String,
        /// Room to join.
        room: String,
    },
    /// REMOTE_LEAVE (3): the selected sockets leave `rooms`.
    Leave {
        /// Selected sockets.
        target: Target,
        /// Rooms to leave.
        rooms: Vec<String>,
    },
    /// REMOTE_LEAVE (3), legacy form; answered.
    LeaveSocket {
        /// Socket id.
        sid: String,
        /// Room to leave.
        room: String,
    },
    /// REMOTE_DISCONNECT (4): the selected sockets are disconnected.
    Disconnect {
        /// Selected sockets.
        target: Target,
        /// Also close the underlying connection.
        close: bool,
    },
    /// REMOTE_DISCONNECT (4), legacy form; answered.
    DisconnectSocket {
        /// Socket id.
        sid: String,
        /// Also close the underlying connection.
        close: bool,
    },
    /// REMOTE_FETCH (5): details of the selected sockets.
    Fetch {
        /// Selected sockets.
        target: Target,
    },
    /// SERVER_SIDE_EMIT (6): `[event, ...args]` for the other servers;
    /// acknowledged when the message has a request id.
    ServerSideEmit {
        /// `[event, ...args]`, the first item a string.
        data: Vec<Json>,
    },
    /// BROADCAST (7): a broadcast whose client acks travel back.
    Broadcast {
        /// The event.
        packet: EventPacket,
        /// Its targets (`flags.timeout` is the ack timeout).
        opts: WireOpts,
    },
}

/// A request with its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMsg {
    /// The sender's uid; the emitter sends none.
    pub uid: Option<String>,
    /// Set when the sender waits for responses.
    pub request_id: Option<String>,
    /// The request.
    pub request: Request,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(rename = "type")]
    kind: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    opts: Option<&'a Target>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rooms: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    close: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a [Json]>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BroadcastOut<'a> {
    uid: Option<&'a str>,
    request_id: Option<&'a str>,
    #[serde(rename = "type")]
    kind: i64,
    packet: super::message::PacketOut<'a>,
    opts: super::message::OptsOut<'a>,
}

impl RequestMsg {
    /// Encodes the request: msgpack for BROADCAST, JSON otherwise.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let uid = self.uid.as_deref();
        let request_id = self.request_id.as_deref();
        let mut out = JsonOut {
            uid,
            request_id,
            kind: 0,
            opts: None,
            rooms: None,
            sid: None,
            room: None,
            close: None,
            data: None,
        };
        match &self.request {
            Request::Sockets { rooms } => {
                out.kind = SOCKETS;
                out.rooms = Some(rooms);
            }
            Request::AllRooms => out.kind = ALL_ROOMS,
            Request::Join { target, rooms } | Request::Leave { target, rooms } => {
                let join = matches!(self.request, Request::Join { .. });
                out.kind = if join { REMOTE_JOIN } else { REMOTE_LEAVE };
                out.opts = Some(target);
                out.rooms = Some(rooms);
            }
            Request::JoinSocket { sid, room } | Request::LeaveSocket { sid, room } => {
                let join = matches!(self.request, Request::JoinSocket { .. });
                out.kind = if join { REMOTE_JOIN } else { REMOTE_LEAVE };
                out.sid = Some(sid);
                out.room = Some(room);
            }
            Request::Disconnect { target, close } => {
                out.kind = REMOTE_DISCONNECT;
                out.opts = Some(target);
                out.close = Some(*close);
            }
            Request::DisconnectSocket { sid, close } => {
                out.kind = REMOTE_DISCONNECT;
                out.sid = Some(sid);
                out.close = Some(*close);
            }
            Request::Fetch { target } => {
                out.kind = REMOTE_FETCH;
                out.opts = Some(target);
            }
            Request::ServerSideEmit { data } => {
                match data.first() {
                    Some(Json::String(_)) => {}
                    _ => return Err(EncodeError::InvalidPayload),
                }
                out.kind = SERVER_SIDE_EMIT;
                out.data = Some(data);
            }
            Request::Broadcast { packet, opts } => {
                packet.validate()?;
                let msg = BroadcastOut {
                    uid,
                    request_id,
                    kind: BROADCAST,
                    packet: packet.out(),
                    opts: opts.out(),
                };
                return rmp_serde::to_vec_named(&msg)
                    .map_err(|e| EncodeError::Serialize(e.to_string()));
            }
        }
        serde_json::to_vec(&out).map_err(|e| EncodeError::Serialize(e.to_string()))
    }

    /// Decodes a message received on the request channel.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let value = match read_frame(bytes)? {
            Frame::Json(map) => return Self::from_json(&map),
            Frame::Msgpack(value) => value,
        };
        let map = value.as_map().ok_or(DecodeError::Field("request"))?;
        if mp_field(map, "type").and_then(Mp::as_i64) == Some(BROADCAST) {
            return Ok(Self {
                uid: mp_field(map, "uid").and_then(Mp::as_str).map(str::to_owned),
                request_id: mp_field(map, "requestId").and_then(mp_id),
                request: Request::Broadcast {
                    packet: EventPacket::decode(
                        mp_field(map, "packet").ok_or(DecodeError::Field("packet"))?,
                    )?,
                    opts: WireOpts::decode(
                        mp_field(map, "opts").ok_or(DecodeError::Field("opts"))?,
                    )?,
                },
            });
        }
        // Any other type in msgpack carries no binary: read it as JSON.
        let (json, _) = super::msgpack_to_json(std::slice::from_ref(&value))?;
        match serde_json::from_str::<Json>(&json) {
            Ok(Json::Array(mut items)) => match items.pop() {
                Some(Json::Object(map)) => Self::from_json(&map),
                _ => Err(DecodeError::Field("request")),
            },
            _ => Err(DecodeError::Field("request")),
        }
    }

    fn from_json(map: &Map<String, Json>) -> Result<Self, DecodeError> {
        let get = |key: &str| map.get(key).filter(|v| !v.is_null());
        let kind = get("type").and_then(Json::as_i64).ok_or(DecodeError::Field("type"))?;
        let target = || -> Result<Option<Target>, DecodeError> {
            match get("opts") {
                None => Ok(None),
                Some(Json::Object(opts)) => Ok(Some(Target {
                    rooms: json_rooms(opts.get("rooms"), "opts.rooms")?,
                    except: json_rooms(opts.get("except"), "opts.except")?,
                })),
                Some(_) => Err(DecodeError::Field("opts")),
            }
        };
        let sid_room = || -> Result<(String, String), DecodeError> {
            let sid = get("sid").and_then(Json::as_str).ok_or(DecodeError::Field("sid"))?;
            let room = get("room").and_then(json_room).ok_or(DecodeError::Field("room"))?;
            Ok((sid.to_owned(), room))
        };
        let close = get("close").and_then(Json::as_bool).unwrap_or(false);
        let request = match kind {
            SOCKETS => Request::Sockets { rooms: json_rooms(get("rooms"), "rooms")? },
            ALL_ROOMS => Request::AllRooms,
            REMOTE_JOIN | REMOTE_LEAVE => {
                let join = kind == REMOTE_JOIN;
                match target()? {
                    Some(target) => {
                        let rooms = json_rooms(get("rooms"), "rooms")?;
                        if join {
                            Request::Join { target, rooms }
                        } else {
                            Request::Leave { target, rooms }
                        }
                    }
                    None => {
                        let (sid, room) = sid_room()?;
                        if join {
                            Request::JoinSocket { sid, room }
                        } else {
                            Request::LeaveSocket { sid, room }
                        }
                    }
                }
            }
            REMOTE_DISCONNECT => match target()? {
                Some(target) => Request::Disconnect { target, close },
                None => {
                    let sid = get("sid").and_then(Json::as_str).ok_or(DecodeError::Field("sid"))?;
                    Request::DisconnectSocket { sid: sid.to_owned(), close }
                }
            },
            REMOTE_FETCH => Request::Fetch { target: target()?.ok_or(DecodeError::Field("opts"))? },
            SERVER_SIDE_EMIT => match get("data") {
                Some(Json::Array(data)) if matches!(data.first(), Some(Json::String(_))) => {
                    Request::ServerSideEmit { data: data.clone() }
                }
                _ => return Err(DecodeError::Field("data")),
            },
            BROADCAST => {
                // Never sent as JSON by Node, but nothing stops reading it.
                let packet = get("packet").ok_or(DecodeError::Field("packet"))?;
                let opts = get("opts").ok_or(DecodeError::Field("opts"))?;
                let packet = super::payload::json_value_to_mp(packet)?;
                let opts = super::payload::json_value_to_mp(opts)?;
                Request::Broadcast {
                    packet: EventPacket::decode(&packet)?,
                    opts: WireOpts::decode(&opts)?,
                }
            }
            other => return Err(DecodeError::UnsupportedType(other)),
        };
        Ok(Self {
            uid: get("uid").and_then(Json::as_str).map(str::to_owned),
            request_id: get("requestId").and_then(json_id),
            request,
        })
    }
}

/// Request ids are strings (`uid2(6)`); a number is accepted as its text.
fn json_id(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn mp_id(value: &Mp) -> Option<String> {
    match value {
        Mp::String(s) => s.as_str().map(str::to_owned),
        Mp::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// One socket of a REMOTE_FETCH response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FetchedSocket {
    /// Socket id (20 characters from Node, 16 from socketioxide).
    pub id: String,
    /// The handshake object (headers, query, auth, ...).
    pub handshake: Json,
    /// The socket's rooms, including its own id.
    pub rooms: Vec<String>,
    /// `socket.data`.
    pub data: Json,
}

impl FetchedSocket {
    /// Reads one item of a `sockets` array; `None` if it is not a socket.
    pub fn from_json(value: &Json) -> Option<Self> {
        let map = value.as_object()?;
        Some(Self {
            id: map.get("id")?.as_str()?.to_owned(),
            handshake: map.get("handshake").cloned().unwrap_or(Json::Null),
            rooms: json_rooms(map.get("rooms"), "rooms").ok()?,
            data: map.get("data").cloned().unwrap_or(Json::Null),
        })
    }
}

/// What a response carries.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseBody {
    /// `sockets`: ids (SOCKETS) or socket objects (REMOTE_FETCH); the
    /// requester knows which it asked for.
    Sockets(Vec<Json>),
    /// `rooms` (ALL_ROOMS).
    Rooms(Vec<String>),
    /// A bare acknowledgement (legacy REMOTE_JOIN/LEAVE/DISCONNECT).
    Done,
    /// SERVER_SIDE_EMIT (6): the first argument the handler acked with.
    ServerSideEmitAck(Json),
    /// BROADCAST_CLIENT_COUNT (8): how many clients a server sent to.
    ClientCount(u64),
    /// BROADCAST_ACK (9): the first argument a client acked with
    /// (absent when it acked with none).
    BroadcastAck(Option<Mp>),
}

/// A response to the request `request_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseMsg {
    /// The request answered.
    pub request_id: String,
    /// The answer.
    pub body: ResponseBody,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AckOut<'a> {
    #[serde(rename = "type")]
    kind: i64,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    packet: Option<&'a Mp>,
}

impl ResponseMsg {
    /// Encodes the response: msgpack for BROADCAST_ACK, JSON otherwise.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let id = Json::String(self.request_id.clone());
        let json = match &self.body {
            ResponseBody::Sockets(sockets) => {
                serde_json::json!({ "requestId": id, "sockets": sockets })
            }
            ResponseBody::Rooms(rooms) => serde_json::json!({ "requestId": id, "rooms": rooms }),
            ResponseBody::Done => serde_json::json!({ "requestId": id }),
            ResponseBody::ServerSideEmitAck(data) => {
                serde_json::json!({ "type": SERVER_SIDE_EMIT, "requestId": id, "data": data })
            }
            ResponseBody::ClientCount(count) => serde_json::json!({
                "type": BROADCAST_CLIENT_COUNT, "requestId": id, "clientCount": count
            }),
            ResponseBody::BroadcastAck(packet) => {
                let out = AckOut {
                    kind: BROADCAST_ACK,
                    request_id: &self.request_id,
                    packet: packet.as_ref(),
                };
                return rmp_serde::to_vec_named(&out)
                    .map_err(|e| EncodeError::Serialize(e.to_string()));
            }
        };
        serde_json::to_vec(&json).map_err(|e| EncodeError::Serialize(e.to_string()))
    }

    /// Decodes a message received on a response channel.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let value = match read_frame(bytes)? {
            Frame::Json(map) => return Self::from_json(&map),
            Frame::Msgpack(value) => value,
        };
        let map = value.as_map().ok_or(DecodeError::Field("response"))?;
        let request_id =
            mp_field(map, "requestId").and_then(mp_id).ok_or(DecodeError::Field("requestId"))?;
        match mp_field(map, "type").and_then(Mp::as_i64) {
            Some(BROADCAST_ACK) => Ok(Self {
                request_id,
                body: ResponseBody::BroadcastAck(mp_field(map, "packet").cloned()),
            }),
            _ => {
                let (json, _) = super::msgpack_to_json(std::slice::from_ref(&value))?;
                match serde_json::from_str::<Json>(&json) {
                    Ok(Json::Array(mut items)) => match items.pop() {
                        Some(Json::Object(map)) => Self::from_json(&map),
                        _ => Err(DecodeError::Field("response")),
                    },
                    _ => Err(DecodeError::Field("response")),
                }
            }
        }
    }

    fn from_json(map: &Map<String, Json>) -> Result<Self, DecodeError> {
        let get = |key: &str| map.get(key).filter(|v| !v.is_null());
        let request_id =
            get("requestId").and_then(json_id).ok_or(DecodeError::Field("requestId"))?;
        let body = match get("type").and_then(Json::as_i64) {
            Some(SERVER_SIDE_EMIT) => {
                ResponseBody::ServerSideEmitAck(get("data").cloned().unwrap_or(Json::Null))
            }
            Some(BROADCAST_CLIENT_COUNT) => ResponseBody::ClientCount(
                get("clientCount")
                    .and_then(Json::as_u64)
                    .ok_or(DecodeError::Field("clientCount"))?,
            ),
            Some(BROADCAST_ACK) => ResponseBody::BroadcastAck(
                get("packet").map(super::payload::json_value_to_mp).transpose()?,
            ),
            _ => match (get("sockets"), get("rooms")) {
                (Some(Json::Array(sockets)), _) => ResponseBody::Sockets(sockets.clone()),
                (Some(_), _) => return Err(DecodeError::Field("sockets")),
                (None, Some(rooms)) => ResponseBody::Rooms(json_rooms(Some(rooms), "rooms")?),
                (None, None) => ResponseBody::Done,
            },
        };
        Ok(Self { request_id, body })
    }
}
