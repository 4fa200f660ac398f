//! The payloads of the workspace's events, each read from the client's JSON in one
//! place, with the error the protocol gives for each bad input (`docs/protocol.md`).
//! Checks that need the socket (is it a member of the room?) stay with the handlers,
//! and run after these.

use serde_json::{Map, Value};

use super::history::Range;
use crate::protocol::error::{ClientError, Code};
use crate::protocol::room::RoomName;

/// Largest `message` of a chat message, in bytes of its JSON.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Most events one `history` request returns.
pub const HISTORY_PAGE_MAX: usize = 100;

/// Events one `history` request returns when it gives no `limit`.
const HISTORY_PAGE_DEFAULT: usize = 50;

fn bad(message: impl Into<String>) -> ClientError {
    ClientError::new(Code::BadPayload, message)
}

/// An object payload, or `refusal` for anything else (or an undecodable packet).
fn object(data: Option<Value>, refusal: &str) -> Result<Map<String, Value>, ClientError> {
    match data {
        Some(Value::Object(fields)) => Ok(fields),
        _ => Err(bad(refusal)),
    }
}

/// A room name where one is expected: a string that follows the naming rules.
fn room_name(value: Option<Value>) -> Result<RoomName, ClientError> {
    match value {
        Some(Value::String(name)) => Ok(RoomName::parse(name)?),
        _ => Err(bad("a room name (string) is required")),
    }
}

/// `join room` and `leave room`: the payload is the room name. `None` is a packet
/// whose data could not be decoded.
pub fn room_event(data: Option<Value>) -> Result<RoomName, ClientError> {
    room_name(Some(data.ok_or_else(|| bad("unreadable payload"))?))
}

/// `invalidate {room, ...}`: relayed to the room as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalidate {
    /// The room to tell.
    pub room: RoomName,
    /// The whole payload, its keys in the client's order, unknown ones kept.
    pub data: Value,
}

impl Invalidate {
    /// Reads the payload.
    pub fn parse(data: Option<Value>) -> Result<Self, ClientError> {
        let fields = object(data, "an object with a room is required")?;
        let room = room_name(fields.get("room").cloned())?;
        Ok(Self { room, data: Value::Object(fields) })
    }
}

/// `sendMessage {room, message}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SendMessage {
    /// The room to send to.
    pub room: RoomName,
    /// A non-empty string or an object, relayed as sent (an object keeps its keys in
    /// the client's order).
    pub message: Value,
}

impl SendMessage {
    /// Reads the payload; the message is checked before the room.
    pub fn parse(data: Option<Value>) -> Result<Self, ClientError> {
        let mut fields = object(data, "an object {room, message} is required")?;
        let message = match fields.remove("message") {
            Some(Value::String(text)) if !text.is_empty() => Value::String(text),
            Some(Value::Object(object)) => Value::Object(object),
            _ => return Err(bad("message must be a non-empty string or an object")),
        };
        if message.to_string().len() > MAX_MESSAGE_BYTES {
            return Err(bad("message is too large"));
        }
        let room = room_name(fields.remove("room"))?;
        Ok(Self { room, message })
    }
}

/// `history {room, limit?, before?, after?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryQuery {
    /// The room to read.
    pub room: RoomName,
    /// The page asked for, or why it cannot be read: reported only once the room
    /// passed the socket's checks (member, keeps history), as the protocol orders them.
    pub range: Result<Range, ClientError>,
}

impl HistoryQuery {
    /// Reads the payload.
    pub fn parse(data: Option<Value>) -> Result<Self, ClientError> {
        let mut fields = object(data, "an object {room, limit?, before?, after?} is required")?;
        let room = room_name(fields.remove("room"))?;
        Ok(Self { room, range: page(&fields) })
    }
}

/// The range of a `history` request: the latest page, or one before or after an
/// offset; `limit` events (1 to [`HISTORY_PAGE_MAX`]) at most.
fn page(fields: &Map<String, Value>) -> Result<Range, ClientError> {
    let number = |key: &str| -> Result<Option<u64>, ClientError> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad(format!("{key} must be a non-negative integer"))),
        }
    };
    let limit = match number("limit")? {
        None => HISTORY_PAGE_DEFAULT,
        Some(n) if (1..=HISTORY_PAGE_MAX as u64).contains(&n) => n as usize,
        Some(_) => return Err(bad(format!("limit must be 1 to {HISTORY_PAGE_MAX}"))),
    };
    Ok(match (number("before")?, number("after")?) {
        (Some(_), Some(_)) => return Err(bad("give before or after, not both")),
        (Some(before), None) => Range::Before(before, limit),
        (None, Some(after)) => Range::After(after, limit),
        (None, None) => Range::Latest(limit),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(code: Code, message: &str) -> ClientError {
        ClientError::new(code, message)
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).expect("room")
    }

    const INVALID_ROOM: &str =
        "room names are 1-100 printable characters without surrounding spaces";

    #[test]
    fn room_events() {
        assert_eq!(room_event(Some(json!("general"))), Ok(room("general")));
        let cases = [
            (None, refused(Code::BadPayload, "unreadable payload")),
            (Some(json!(7)), refused(Code::BadPayload, "a room name (string) is required")),
            (
                Some(json!({"room": "a"})),
                refused(Code::BadPayload, "a room name (string) is required"),
            ),
            (Some(json!("")), refused(Code::RoomInvalid, INVALID_ROOM)),
            (Some(json!("$x")), refused(Code::RoomForbidden, "this room name is reserved")),
        ];
        for (data, error) in cases {
            assert_eq!(room_event(data.clone()), Err(error), "{data:?}");
        }
    }

    #[test]
    fn invalidations_keep_the_payload_as_sent() {
        let data = json!({"z": 1, "room": "r", "a": {"y": 2, "b": 3}});
        let parsed = Invalidate::parse(Some(data.clone())).expect("ok");
        assert_eq!(parsed.room, room("r"));
        assert_eq!(parsed.data.to_string(), data.to_string(), "key order kept");
        let not_object = refused(Code::BadPayload, "an object with a room is required");
        for data in [None, Some(json!("r")), Some(json!(["r"]))] {
            assert_eq!(Invalidate::parse(data), Err(not_object.clone()));
        }
        let no_room = refused(Code::BadPayload, "a room name (string) is required");
        assert_eq!(Invalidate::parse(Some(json!({"keys": []}))), Err(no_room));
        let reserved = refused(Code::RoomForbidden, "this room name is reserved");
        assert_eq!(Invalidate::parse(Some(json!({"room": "roomcast:x"}))), Err(reserved));
    }

    #[test]
    fn messages() {
        let text = SendMessage::parse(Some(json!({"room": "r", "message": "hi", "x": 1})));
        assert_eq!(text, Ok(SendMessage { room: room("r"), message: json!("hi") }));
        let object = json!({"z": 1, "a": 2});
        let parsed = SendMessage::parse(Some(json!({"room": "r", "message": object.clone()})));
        assert_eq!(parsed.expect("ok").message.to_string(), object.to_string(), "key order kept");
        let shape = "message must be a non-empty string or an object";
        let cases = [
            (json!("hi"), refused(Code::BadPayload, "an object {room, message} is required")),
            (json!({"room": "r"}), refused(Code::BadPayload, shape)),
            (json!({"room": "r", "message": ""}), refused(Code::BadPayload, shape)),
            (json!({"room": "r", "message": [1]}), refused(Code::BadPayload, shape)),
            // The message is checked before the room.
            (json!({"room": 5, "message": 5}), refused(Code::BadPayload, shape)),
            (
                json!({"message": "hi"}),
                refused(Code::BadPayload, "a room name (string) is required"),
            ),
            (json!({"room": " r", "message": "hi"}), refused(Code::RoomInvalid, INVALID_ROOM)),
        ];
        for (data, error) in cases {
            assert_eq!(SendMessage::parse(Some(data.clone())), Err(error), "{data}");
        }
        assert!(SendMessage::parse(None).is_err());
    }

    #[test]
    fn message_size_is_bounded_in_json_bytes() {
        // The JSON of a string is its text and two quotes.
        let fits = "x".repeat(MAX_MESSAGE_BYTES - 2);
        assert!(SendMessage::parse(Some(json!({"room": "r", "message": fits}))).is_ok());
        let over = "x".repeat(MAX_MESSAGE_BYTES - 1);
        let too_large = SendMessage::parse(Some(json!({"room": "$", "message": over})));
        assert_eq!(too_large, Err(refused(Code::BadPayload, "message is too large")));
    }

    #[test]
    fn history_queries() {
        let query = |data: Value| HistoryQuery::parse(Some(data));
        let range = |data: Value| query(data).expect("parsed").range;
        assert_eq!(range(json!({"room": "r"})), Ok(Range::Latest(50)));
        assert_eq!(range(json!({"room": "r", "limit": null})), Ok(Range::Latest(50)));
        assert_eq!(range(json!({"room": "r", "limit": 100, "after": 3})), Ok(Range::After(3, 100)));
        assert_eq!(range(json!({"room": "r", "limit": 1, "before": 9})), Ok(Range::Before(9, 1)));
        let cases = [
            (json!({"room": "r", "limit": 0}), "limit must be 1 to 100"),
            (json!({"room": "r", "limit": 101}), "limit must be 1 to 100"),
            (json!({"room": "r", "limit": "5"}), "limit must be a non-negative integer"),
            (json!({"room": "r", "before": -1}), "before must be a non-negative integer"),
            (json!({"room": "r", "after": 1.5}), "after must be a non-negative integer"),
            (json!({"room": "r", "before": 1, "after": 2}), "give before or after, not both"),
            // The limit is checked before the offsets.
            (json!({"room": "r", "limit": 0, "before": 1, "after": 2}), "limit must be 1 to 100"),
        ];
        for (data, message) in cases {
            assert_eq!(range(data.clone()), Err(refused(Code::BadPayload, message)), "{data}");
        }
        // A bad page does not hide a bad room: that is reported first.
        let shape = "an object {room, limit?, before?, after?} is required";
        assert_eq!(query(json!("r")), Err(refused(Code::BadPayload, shape)));
        let no_room = "a room name (string) is required";
        assert_eq!(query(json!({"limit": 0})), Err(refused(Code::BadPayload, no_room)));
        assert_eq!(
            query(json!({"room": "", "limit": 0})),
            Err(refused(Code::RoomInvalid, INVALID_ROOM))
        );
    }
}
