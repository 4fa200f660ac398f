//! The one error type clients see, with its codes: the node's own ([`Code`]), or one
//! a request's handler chose ([`HandlerCode`]), checked so that clients never get
//! arbitrary text as a code.

use serde_json::{Map, Value};

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
    /// A request's HTTP upstream answered with an error status.
    UpstreamStatus,
    /// A request's handler failed without a code that reads as one.
    HandlerError,
}

impl Code {
    const ALL: [Code; 15] = [
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
        Code::UpstreamStatus,
        Code::HandlerError,
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
            Code::UpstreamStatus => "upstream_status",
            Code::HandlerError => "handler_error",
        }
    }
}

/// A code a request's handler chose (a worker's `no_stock`, say): 1-64 characters of
/// `[a-z_.]` that are not one of the node's own codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerCode(String);

checked_text!(HandlerCode);

/// The `code` of a [`ClientError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    /// One of the node's own.
    Node(Code),
    /// One a request's handler chose.
    Handler(HandlerCode),
}

impl ErrorCode {
    /// The code a handler sent: its own when it reads as a code, else
    /// [`Code::HandlerError`].
    pub fn from_handler(code: Option<&str>) -> Self {
        let Some(code) = code else { return ErrorCode::Node(Code::HandlerError) };
        if let Some(own) = Code::parse(code) {
            return ErrorCode::Node(own);
        }
        let reads_as_code = (1..=64).contains(&code.len())
            && code.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.');
        if reads_as_code {
            ErrorCode::Handler(HandlerCode(code.to_owned()))
        } else {
            ErrorCode::Node(Code::HandlerError)
        }
    }

    /// The code as sent to clients.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Node(code) => code.as_str(),
            ErrorCode::Handler(code) => code.as_str(),
        }
    }
}

impl From<Code> for ErrorCode {
    fn from(code: Code) -> Self {
        ErrorCode::Node(code)
    }
}

impl PartialEq<Code> for ErrorCode {
    fn eq(&self, other: &Code) -> bool {
        *self == ErrorCode::Node(*other)
    }
}

/// An error a client caused or must be told about: in a reply it reads
/// `{code, message, ..details}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    /// The code.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
    /// Extra fields a request's handler added (an upstream's status and body, say).
    pub details: Map<String, Value>,
}

impl ClientError {
    /// An error with one of the node's codes.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self::with_details(code.into(), message, Map::new())
    }

    /// An error with any code and extra fields.
    pub fn with_details(
        code: ErrorCode,
        message: impl Into<String>,
        details: Map<String, Value>,
    ) -> Self {
        Self { code, message: message.into(), details }
    }

    /// `{code, message, ..details}`, as it appears in replies.
    pub fn to_json(&self) -> Value {
        let mut out = self.details.clone();
        out.insert("code".into(), self.code.as_str().into());
        out.insert("message".into(), self.message.clone().into());
        Value::Object(out)
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
        for other in ["", "no_stock", "Bad_Payload"] {
            assert_eq!(Code::parse(other), None, "{other}");
        }
    }

    #[test]
    fn handler_codes_pass_only_when_they_read_as_codes() {
        let own = |code: &str| ErrorCode::from_handler(Some(code));
        assert_eq!(own("no_stock").as_str(), "no_stock");
        assert!(matches!(own("no_stock"), ErrorCode::Handler(_)));
        assert_eq!(own("stock.empty").as_str(), "stock.empty");
        assert_eq!(own("timeout"), Code::Timeout);
        for bad in ["", "<b>Bad Code</b>", "No_Stock", &"x".repeat(65)] {
            assert_eq!(own(bad), Code::HandlerError, "{bad}");
        }
        assert_eq!(ErrorCode::from_handler(None), Code::HandlerError);
    }

    #[test]
    fn details_come_before_code_and_message() {
        let mut details = Map::new();
        details.insert("status".into(), 503.into());
        let e = ClientError::with_details(Code::UpstreamStatus.into(), "down", details);
        assert_eq!(
            e.to_json().to_string(),
            r#"{"status":503,"code":"upstream_status","message":"down"}"#
        );
        let plain = ClientError::new(Code::BadPayload, "no");
        assert_eq!(plain.to_json().to_string(), r#"{"code":"bad_payload","message":"no"}"#);
    }
}
