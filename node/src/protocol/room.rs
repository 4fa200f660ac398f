//! Rules for user-named rooms.
//!
//! Names travel in events, logs and session rows, so they are bounded and printable.
//! Some names belong to the server: the `$` and `roomcast:` prefixes, and any
//! connected socket's id, which is that socket's private room (the adapter delivers a
//! broadcast to a room named after a socket id to that socket).

use super::error::{ClientError, Code};

/// Longest room name, in characters.
pub const MAX_ROOM_CHARS: usize = 100;

/// Prefixes reserved for rooms the server makes.
pub const RESERVED_PREFIXES: &[&str] = &["$", "roomcast:"];

/// Why a room name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// Empty, too long, control characters or surrounding white space.
    #[error("room names are 1-100 printable characters without surrounding spaces")]
    Invalid,
    /// Reserved for the server.
    #[error("this room name is reserved")]
    Reserved,
}

/// Checks the form of a room name. Whether it is a socket's private room needs the
/// live sockets and is checked by the caller.
pub fn check_name(name: &str) -> Result<(), RoomError> {
    let chars = name.chars().count();
    if chars == 0
        || chars > MAX_ROOM_CHARS
        || name.chars().any(char::is_control)
        || name.trim() != name
    {
        return Err(RoomError::Invalid);
    }
    if RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return Err(RoomError::Reserved);
    }
    Ok(())
}

impl From<RoomError> for ClientError {
    fn from(e: RoomError) -> Self {
        let code = match e {
            RoomError::Invalid => Code::RoomInvalid,
            RoomError::Reserved => Code::RoomForbidden,
        };
        ClientError::new(code, e.to_string())
    }
}

/// A room name that follows [`check_name`]'s rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomName(String);

impl RoomName {
    /// `name`, if it follows the rules.
    pub fn parse(name: impl Into<String>) -> Result<Self, RoomError> {
        let name = name.into();
        check_name(&name)?;
        Ok(Self(name))
    }
}

checked_text!(RoomName);

/// Whether `name` has the shape of an Engine.IO socket id: 16 (socketioxide) to 20
/// (Node's `base64id`) characters of the URL-safe base64 alphabet. A name of any other
/// shape cannot be a socket's private room, so it needs no cluster query.
pub fn could_be_socket_id(name: &str) -> bool {
    (16..=20).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in ["general", "project/42", "Привет мир", "a", &"x".repeat(100)] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_bad_and_reserved_names() {
        for name in ["", " lead", "trail ", "tab\there", "nul\0", &"x".repeat(101)] {
            assert_eq!(check_name(name), Err(RoomError::Invalid), "{name:?}");
        }
        assert_eq!(check_name("$internal"), Err(RoomError::Reserved));
        assert_eq!(check_name("roomcast:x"), Err(RoomError::Reserved));
    }

    #[test]
    fn room_names_are_built_only_from_good_names() {
        let room = RoomName::parse("general").expect("ok");
        assert_eq!(room.as_str(), "general");
        assert_eq!(serde_json::to_value(&room).expect("json"), serde_json::json!("general"));
        assert_eq!(RoomName::parse(" lead"), Err(RoomError::Invalid));
        assert_eq!(RoomName::parse("$internal"), Err(RoomError::Reserved));
    }

    #[test]
    fn room_errors_have_their_client_codes() {
        let invalid = ClientError::from(RoomError::Invalid);
        assert_eq!(invalid.code, Code::RoomInvalid);
        assert_eq!(
            invalid.message,
            "room names are 1-100 printable characters without surrounding spaces"
        );
        let reserved = ClientError::from(RoomError::Reserved);
        assert_eq!(reserved.code, Code::RoomForbidden);
        assert_eq!(reserved.message, "this room name is reserved");
    }

    #[test]
    fn socket_id_shapes() {
        // socketioxide's 16 characters and Node's 20 (base64id: 15 random bytes).
        assert!(could_be_socket_id("AbCdEfGh12345678"));
        assert!(could_be_socket_id("x-Y_z0123456789abcde"));
        for name in ["general", "AbCdEfGh1234567", "x-Y_z0123456789abcdef", "AbCdEfGh 2345678"] {
            assert!(!could_be_socket_id(name), "{name}");
        }
    }
}
