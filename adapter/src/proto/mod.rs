//! The wire protocols of `@socket.io/redis-adapter` 8.3 (classic and
//! sharded), without I/O.
//!
//! Everything here turns bytes into typed messages and back. Decoding never
//! trusts its input: depth and trailing bytes are checked, every field is
//! validated, and a message that does not fit is refused as a whole (a
//! broadcast with an unreadable room must not turn into a broadcast to all).

mod channels;
mod message;
mod payload;
mod request;
mod sharded;

pub use channels::{Channels, glob_match};
pub use message::{Broadcast, EventPacket, Flags, WireOpts};
pub use payload::{json_to_msgpack, msgpack_to_json};
pub use request::{FetchedSocket, Request, RequestMsg, ResponseBody, ResponseMsg, Target};
pub use sharded::{Incoming, ShardedBody, ShardedChannels, ShardedMessage, SubscriptionMode};

use rmpv::Value as Mp;
use serde_json::Value as Json;

/// Nesting limit for msgpack input; each array or map level costs two.
const MAX_DEPTH: usize = 256;

/// Why received bytes were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Not msgpack, too deep, or bytes left over after the value.
    #[error("malformed msgpack")]
    Msgpack,
    /// Not JSON.
    #[error("malformed json")]
    Json,
    /// A required field is missing or has the wrong type.
    #[error("invalid field `{0}`")]
    Field(&'static str),
    /// The request or packet type is not one we handle.
    #[error("unsupported type {0}")]
    UnsupportedType(i64),
    /// The payload could not be turned into JSON for the socket.io parser.
    #[error("invalid payload")]
    InvalidPayload,
}

/// Why a message could not be built; nothing is published then.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// The payload is not a JSON array (or `[event, ...]` for events).
    #[error("invalid payload")]
    InvalidPayload,
    /// A binary placeholder points past the attachments.
    #[error("binary placeholder {0} has no attachment")]
    MissingAttachment(usize),
    /// Only event packets encoded by socketioxide's common parser can be
    /// forwarded (the msgpack parser's opaque bytes cannot be re-encoded).
    #[error("unsupported packet")]
    UnsupportedPacket,
    /// The serializer failed.
    #[error("serialization failed: {0}")]
    Serialize(String),
    /// The operation has no message in the protocol in use (the sharded
    /// protocol has no ALL_ROOMS nor single-socket requests).
    #[error("request not supported by this protocol")]
    UnsupportedRequest,
}

/// Reads exactly one msgpack value from `bytes`.
fn read_msgpack(bytes: &[u8]) -> Result<Mp, DecodeError> {
    let mut rd = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut rd, MAX_DEPTH)
        .map_err(|_| DecodeError::Msgpack)?;
    // notepack throws on trailing bytes; so do we.
    if rd.is_empty() { Ok(value) } else { Err(DecodeError::Msgpack) }
}

/// A request-channel or response-channel message, in whichever encoding it came.
enum Frame {
    /// JSON, which always starts with `{`.
    Json(serde_json::Map<String, Json>),
    /// msgpack (broadcast requests and broadcast acks).
    Msgpack(Mp),
}

/// Reads a message whose first byte picks its encoding, as Node's receivers do.
fn read_frame(bytes: &[u8]) -> Result<Frame, DecodeError> {
    if bytes.first() == Some(&b'{') {
        match serde_json::from_slice(bytes).map_err(|_| DecodeError::Json)? {
            Json::Object(map) => Ok(Frame::Json(map)),
            _ => Err(DecodeError::Json),
        }
    } else {
        read_msgpack(bytes).map(Frame::Msgpack)
    }
}

/// Field `key` of a msgpack map; `nil` counts as absent, as `undefined` does in JS.
fn mp_field<'a>(map: &'a [(Mp, Mp)], key: &str) -> Option<&'a Mp> {
    map.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v).filter(|v| !v.is_nil())
}

/// A room name: Node rooms are usually strings but may be numbers.
fn mp_room(value: &Mp) -> Option<String> {
    match value {
        Mp::String(s) => s.as_str().map(str::to_owned),
        Mp::Integer(i) => Some(i.to_string()),
        Mp::F32(f) => Some(payload::js_number(f64::from(*f))),
        Mp::F64(f) => Some(payload::js_number(*f)),
        _ => None,
    }
}

fn json_room(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(match n.as_f64() {
            Some(f) if n.is_f64() => payload::js_number(f),
            _ => n.to_string(),
        }),
        _ => None,
    }
}

/// A list of rooms; absent means empty (JS `new Set(undefined)`), anything
/// unreadable refuses the message.
fn mp_rooms(value: Option<&Mp>, field: &'static str) -> Result<Vec<String>, DecodeError> {
    match value {
        None => Ok(Vec::new()),
        Some(Mp::Array(items)) => {
            items.iter().map(|v| mp_room(v).ok_or(DecodeError::Field(field))).collect()
        }
        Some(_) => Err(DecodeError::Field(field)),
    }
}

fn json_rooms(value: Option<&Json>, field: &'static str) -> Result<Vec<String>, DecodeError> {
    match value {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => {
            items.iter().map(|v| json_room(v).ok_or(DecodeError::Field(field))).collect()
        }
        Some(_) => Err(DecodeError::Field(field)),
    }
}

#[cfg(test)]
mod tests;
