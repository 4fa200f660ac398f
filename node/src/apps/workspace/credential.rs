//! Recovery credentials and what a reconnecting client asks for.
//!
//! A socket on `/` gets a credential `<socket id>.<secret>` at connect. Only the hash of
//! the secret is stored (in the socket's session row, then in its resume ticket), so the
//! database alone cannot be used to recover someone's socket. A credential names the
//! socket it continues, is checked against the same login, and is used once.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use socketioxide::socket::Sid;

/// Longest credential accepted: a socket id, a dot and the secret, with room to spare.
const MAX_TOKEN: usize = 128;
/// Longest epoch accepted from a client; ours are 16 hex digits.
const MAX_EPOCH: usize = 64;

/// A credential just issued: the token for the client, the hash for the store.
#[derive(Debug, Clone)]
pub struct Issued {
    /// `<socket id>.<secret>`, sent to the client in the `recovery` event.
    pub token: String,
    /// The secret's SHA-256, hex.
    pub hash: String,
}

/// Issues the credential of socket `sid`: 32 random bytes as the secret.
pub fn issue(sid: &str) -> Issued {
    let secret: [u8; 32] = rand::random();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    Issued { token: format!("{sid}.{secret}"), hash: hash_secret(&secret) }
}

fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Why no recovery was attempted, though the client asked for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `auth.recover` is not `{token, rooms}` of the right types and sizes.
    BadRequest,
    /// More rooms than a socket may be in.
    TooManyRooms,
    /// The credential is forged, used, expired or another user's.
    InvalidCredential,
    /// The database could not be asked.
    Unavailable,
}

impl Refusal {
    /// The `reason` clients see.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::BadRequest => "bad_request",
            Refusal::TooManyRooms => "too_many_rooms",
            Refusal::InvalidCredential => "invalid_credential",
            Refusal::Unavailable => "unavailable",
        }
    }
}

/// Why one room was not recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomReason {
    /// The room's history was lost since the client's epoch.
    EpochChanged,
    /// The history no longer holds everything after the client's offset.
    GapTooLarge,
    /// The offset is negative, not an integer, or past the room's last one.
    BadOffset,
    /// The client gave no position for the room.
    NoOffset,
    /// The previous socket was not in the room; it is not joined.
    NotMember,
    /// The room may no longer be joined.
    RoomForbidden,
    /// The history store could not be read.
    HistoryUnavailable,
    /// The room keeps no history.
    NoHistory,
}

impl RoomReason {
    /// The `reason` clients see.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomReason::EpochChanged => "epoch_changed",
            RoomReason::GapTooLarge => "gap_too_large",
            RoomReason::BadOffset => "bad_offset",
            RoomReason::NoOffset => "no_offset",
            RoomReason::NotMember => "not_member",
            RoomReason::RoomForbidden => "room_forbidden",
            RoomReason::HistoryUnavailable => "history_unavailable",
            RoomReason::NoHistory => "no_history",
        }
    }
}

/// Where the client says it stopped in one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The last offset it has, and its epoch.
    At {
        /// The offset.
        offset: u64,
        /// The epoch.
        epoch: String,
    },
    /// Something that is not a position.
    Bad,
}

/// A readable `auth.recover`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// The socket the credential names.
    pub sid: String,
    /// The hash of the secret it carries.
    pub hash: String,
    /// The client's position per room.
    pub rooms: BTreeMap<String, Claim>,
}

/// Reads `auth.recover`: `{token, rooms: {<room>: {offset, epoch}}}`. A token that is not
/// `<socket id>.<secret>` is refused like a wrong one; other shapes are bad requests.
pub fn parse(recover: &Value, max_rooms: usize) -> Result<Ask, Refusal> {
    let recover = recover.as_object().ok_or(Refusal::BadRequest)?;
    let token = recover.get("token").and_then(Value::as_str).ok_or(Refusal::BadRequest)?;
    if token.len() > MAX_TOKEN {
        return Err(Refusal::BadRequest);
    }
    let rooms = match recover.get("rooms") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(rooms)) => rooms.clone(),
        Some(_) => return Err(Refusal::BadRequest),
    };
    if rooms.len() > max_rooms {
        return Err(Refusal::TooManyRooms);
    }
    let (sid, secret) = token.split_once('.').ok_or(Refusal::InvalidCredential)?;
    if sid.parse::<Sid>().is_err() || secret.is_empty() {
        return Err(Refusal::InvalidCredential);
    }
    let rooms = rooms.into_iter().map(|(room, claim)| (room, claim_of(&claim))).collect();
    Ok(Ask { sid: sid.to_owned(), hash: hash_secret(secret), rooms })
}

fn claim_of(value: &Value) -> Claim {
    let offset = value.get("offset").and_then(Value::as_u64);
    let epoch = value.get("epoch").and_then(Value::as_str).filter(|e| e.len() <= MAX_EPOCH);
    match (offset, epoch) {
        (Some(offset), Some(epoch)) => Claim::At { offset, epoch: epoch.to_owned() },
        _ => Claim::Bad,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SID: &str = "AAAAAAAAAAAAAAAA";

    #[test]
    fn an_issued_token_reads_back_to_its_socket_and_hash() {
        let issued = issue(SID);
        let ask = parse(&json!({"token": issued.token, "rooms": {}}), 10).expect("readable");
        assert_eq!(ask.sid, SID);
        assert_eq!(ask.hash, issued.hash);
        assert_ne!(issue(SID).hash, issued.hash, "each credential has its own secret");
    }

    #[test]
    fn positions_are_read_per_room() {
        let token = issue(SID).token;
        let ask = parse(
            &json!({"token": token, "rooms": {
                "a": {"offset": 3, "epoch": "e"},
                "b": {"offset": -1, "epoch": "e"},
                "c": {"offset": 1.5, "epoch": "e"},
                "d": {"offset": 2},
                "e": "nope",
            }}),
            10,
        )
        .expect("readable");
        assert_eq!(ask.rooms["a"], Claim::At { offset: 3, epoch: "e".into() });
        for room in ["b", "c", "d", "e"] {
            assert_eq!(ask.rooms[room], Claim::Bad, "{room}");
        }
    }

    #[test]
    fn malformed_requests_are_refused_with_a_reason() {
        let token = issue(SID).token;
        let cases = [
            (json!("token"), Refusal::BadRequest),
            (json!([token]), Refusal::BadRequest),
            (json!({"rooms": {}}), Refusal::BadRequest),
            (json!({"token": "x".repeat(4096)}), Refusal::BadRequest),
            (json!({"token": token, "rooms": []}), Refusal::BadRequest),
            (json!({"token": "no-dot"}), Refusal::InvalidCredential),
            (json!({"token": "bad id.secret"}), Refusal::InvalidCredential),
        ];
        for (value, refusal) in cases {
            assert_eq!(parse(&value, 10), Err(refusal), "{value}");
        }
        let many: serde_json::Map<String, Value> =
            (0..11).map(|i| (format!("r{i}"), json!({"offset": 0, "epoch": "e"}))).collect();
        assert_eq!(parse(&json!({"token": token, "rooms": many}), 10), Err(Refusal::TooManyRooms));
    }
}
