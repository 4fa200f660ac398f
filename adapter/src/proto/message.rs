//! Broadcast messages: msgpack `[uid, packet, opts]` on `key#nsp#[room#]`.

use rmpv::Value as Mp;
use serde::Serialize;

use super::{DecodeError, EncodeError, mp_field, mp_rooms, read_msgpack};

/// socket.io-parser's EVENT; BINARY_EVENT (5) is accepted on input, since the
/// binary split only happens when a packet is written to a client.
const EVENT: u8 = 2;
const BINARY_EVENT: i64 = 5;

/// An event packet: `{type: 2, data: [event, ...args], nsp}`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPacket {
    /// The namespace, with its leading slash.
    pub nsp: String,
    /// `[event, ...args]`; the first item is always a string.
    pub data: Vec<Mp>,
}

/// Broadcast flags. Each is kept only when present, as Node writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Flags {
    /// Drop the packet for clients that are not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volatile: Option<bool>,
    /// Per-message compression wish (not applied by socketioxide).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
    /// Ack timeout in milliseconds (broadcasts with acks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Set by Node's `RemoteSocket`, which expects one ack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_single_response: Option<bool>,
    /// Roomcast's own: a room event that Roomcast servers deliver from their room
    /// history, in order, so they skip this copy, which is for Node.js servers (they
    /// ignore flags they do not know).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_history: Option<bool>,
}

/// Which sockets a broadcast or request selects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WireOpts {
    /// Sockets in any of these rooms; every socket when empty.
    pub rooms: Vec<String>,
    /// Minus the sockets in any of these rooms.
    pub except: Vec<String>,
    /// Delivery flags.
    pub flags: Flags,
}

/// A broadcast from the adapter (or emitter) `uid`.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    /// The sender's uid (`"emitter"` for `@socket.io/redis-emitter`).
    pub uid: String,
    /// The event.
    pub packet: EventPacket,
    /// Its targets.
    pub opts: WireOpts,
}

#[derive(Serialize)]
pub(super) struct PacketOut<'a> {
    #[serde(rename = "type")]
    kind: u8,
    data: &'a [Mp],
    nsp: &'a str,
}

#[derive(Serialize)]
pub(super) struct OptsOut<'a> {
    rooms: &'a [String],
    except: &'a [String],
    flags: &'a Flags,
}

impl EventPacket {
    /// Checks the invariant: data starts with the event name.
    pub(super) fn validate(&self) -> Result<(), EncodeError> {
        match self.data.first() {
            Some(Mp::String(s)) if s.is_str() => Ok(()),
            _ => Err(EncodeError::InvalidPayload),
        }
    }

    pub(super) fn out(&self) -> PacketOut<'_> {
        PacketOut { kind: EVENT, data: &self.data, nsp: &self.nsp }
    }

    pub(super) fn decode(value: &Mp) -> Result<Self, DecodeError> {
        let map = value.as_map().ok_or(DecodeError::Field("packet"))?;
        let kind = mp_field(map, "type").and_then(Mp::as_i64);
        match kind {
            Some(k) if k == i64::from(EVENT) || k == BINARY_EVENT => {}
            Some(k) => return Err(DecodeError::UnsupportedType(k)),
            None => return Err(DecodeError::Field("packet.type")),
        }
        // Node defaults a missing nsp to "/".
        let nsp = match mp_field(map, "nsp") {
            None => "/".to_owned(),
            Some(v) => v.as_str().ok_or(DecodeError::Field("packet.nsp"))?.to_owned(),
        };
        let data = match mp_field(map, "data") {
            Some(Mp::Array(items)) => items.clone(),
            _ => return Err(DecodeError::Field("packet.data")),
        };
        let packet = Self { nsp, data };
        packet.validate().map_err(|_| DecodeError::Field("packet.data"))?;
        Ok(packet)
    }
}

impl WireOpts {
    pub(super) fn out(&self) -> OptsOut<'_> {
        OptsOut { rooms: &self.rooms, except: &self.except, flags: &self.flags }
    }

    pub(super) fn decode(value: &Mp) -> Result<Self, DecodeError> {
        let map = value.as_map().ok_or(DecodeError::Field("opts"))?;
        let flags = match mp_field(map, "flags") {
            Some(Mp::Map(flags)) => Flags::decode(flags),
            // Node reads `opts.flags || {}`.
            _ => Flags::default(),
        };
        Ok(Self {
            rooms: mp_rooms(mp_field(map, "rooms"), "opts.rooms")?,
            except: mp_rooms(mp_field(map, "except"), "opts.except")?,
            flags,
        })
    }
}

impl Flags {
    /// Unknown flags and ill-typed values are ignored, as Node does.
    fn decode(map: &[(Mp, Mp)]) -> Self {
        let flag = |key| mp_field(map, key).and_then(Mp::as_bool);
        let timeout = mp_field(map, "timeout").and_then(|v| {
            v.as_u64().or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    // Saturating float to int conversion is the intent.
                    .map(|f| f as u64)
            })
        });
        Self {
            volatile: flag("volatile"),
            compress: flag("compress"),
            timeout,
            expect_single_response: flag("expectSingleResponse"),
            from_history: flag("fromHistory"),
        }
    }
}

impl Broadcast {
    /// Encodes the message; refuses a packet Node peers could not handle.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.packet.validate()?;
        rmp_serde::to_vec_named(&(&self.uid, self.packet.out(), self.opts.out()))
            .map_err(|e| EncodeError::Serialize(e.to_string()))
    }

    /// Decodes a message received on a broadcast channel.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let value = read_msgpack(bytes)?;
        let items = value.as_array().ok_or(DecodeError::Field("message"))?;
        let [uid, packet, opts, ..] = items.as_slice() else {
            return Err(DecodeError::Field("message"));
        };
        Ok(Self {
            uid: uid.as_str().ok_or(DecodeError::Field("uid"))?.to_owned(),
            packet: EventPacket::decode(packet)?,
            opts: WireOpts::decode(opts)?,
        })
    }
}
