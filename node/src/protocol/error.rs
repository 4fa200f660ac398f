//! The one error type clients see, with its stable codes.

use serde_json::{Map, Value, json};

/// Machine-readable error codes, stable for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The payload has the wrong type or misses a field.
    BadPayload,
    /// The room name breaks the naming rules.
    RoomInvalid,
    /// The room is reserved or another socket's private room.
    RoomForbidden,
    /// The socket is in as many rooms as it may be.
    TooManyRooms,
    /// The socket is not in the room it addresses.
    NotMember,
    /// No handler for this event.
    UnknownEvent,
    /// No handler for this request route.
    UnknownRoute,
    /// The route's parameters are wrong.
    BadParams,
    /// A request with this uuid is already in flight on this socket.
    DuplicateRequest,
    /// The node could not complete the operation (its store failed).
    Unavailable,
    /// No handler answered a request in time.
    Timeout,
    /// The socket has `requests.max_in_flight_per_socket` requests in flight.
    TooManyRequests,
    /// The room keeps no history (`history.enabled`, `history.skip_prefixes`).
    NoHistory,
}

impl Code {
    const ALL: [Code; 13] = [
        Code::BadPayload,
        Code::RoomInvalid,
        Code::RoomForbidden,
        Code::TooManyRooms,
        Code::NotMember,
        Code::UnknownEvent,
        Code::UnknownRoute,
        Code::BadParams,
        Code::DuplicateRequest,
        Code::Unavailable,
        Code::Timeout,
        Code::TooManyRequests,
        Code::NoHistory,
    ];

    /// The code sent as `code`, if it is one of these.
    pub fn parse(code: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The code as sent to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadPayload => "bad_payload",
            Code::RoomInvalid => "room_invalid",
            Code::RoomForbidden => "room_forbidden",
            Code::TooManyRooms => "too_many_rooms",
            Code::NotMember => "not_member",
            Code::UnknownEvent => "unknown_event",
            Code::UnknownRoute => "unknown_route",
            Code::BadParams => "bad_params",
            Code::DuplicateRequest => "duplicate_request",
            Code::Unavailable => "unavailable",
            Code::Timeout => "timeout",
            Code::TooManyRequests => "too_many_requests",
            Code::NoHistory => "no_history",
        }
    }
}

/// An error a client caused or must be told about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    /// The code.
    pub code: Code,
    /// A sentence for people.
    pub message: String,
}

impl ClientError {
    /// An error with a code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// `{code, message}`, as it appears in replies.
    pub fn to_json(&self) -> Value {
        json!({ "code": self.code.as_str(), "message": self.message })
    }
}

/// The result of a handler: extra fields of a success reply, or an error.
pub type Outcome = Result<Map<String, Value>, ClientError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back() {
        for code in Code::ALL {
            assert_eq!(Code::parse(code.as_str()), Some(code));
        }
        for other in ["", "upstream_status", "handler_error", "Bad_Payload"] {
            assert_eq!(Code::parse(other), None, "{other}");
        }
    }
}
