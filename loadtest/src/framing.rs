//! Engine.IO 4 / Socket.IO 5 text framing, just what the generator speaks.
//!
//! Engine.IO packets are WebSocket text frames whose first byte is the packet type;
//! a Socket.IO packet rides in an Engine.IO `4` (message) packet:
//! `<type>[/<nsp>,][<ack id>][<json>]`. Only the default namespace and text packets
//! are produced; parsing accepts any namespace so that a stray packet is reported
//! rather than misread.

use serde_json::Value;

/// One decoded Engine.IO packet.
#[derive(Debug, Clone, PartialEq)]
pub enum EnginePacket<'a> {
    /// `0{...}`: the handshake with the session id and ping settings.
    Open(&'a str),
    /// `1`: the server closes the session.
    Close,
    /// `2`: a heartbeat the client must answer with `3`.
    Ping,
    /// `3`: a heartbeat answer.
    Pong,
    /// `4...`: a Socket.IO packet.
    Message(SioPacket<'a>),
    /// `6`: upgrade no-op (polling only, ignored).
    Noop,
}

/// A Socket.IO packet; `data` is the raw JSON, parsed only when a caller needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct SioPacket<'a> {
    /// Packet type: 0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR.
    pub kind: SioKind,
    /// Namespace, `/` when absent.
    pub nsp: &'a str,
    /// Acknowledgement id, when present.
    pub ack: Option<u64>,
    /// The JSON payload, possibly empty.
    pub data: &'a str,
}

/// Socket.IO packet types (binary ones are never sent by the servers under test for
/// these scenarios and are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SioKind {
    /// The namespace accepted the client.
    Connect,
    /// The namespace dropped the client.
    Disconnect,
    /// An event `["name", ...args]`.
    Event,
    /// An acknowledgement `[...args]`.
    Ack,
    /// The namespace refused the client: `{message}`.
    ConnectError,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Empty frame.
    #[error("empty frame")]
    Empty,
    /// Unknown Engine.IO packet type.
    #[error("unknown engine.io packet type {0:?}")]
    EngineType(char),
    /// Unknown or unsupported Socket.IO packet type.
    #[error("unsupported socket.io packet type {0:?}")]
    SioType(char),
    /// An ack id that does not fit in u64.
    #[error("bad ack id")]
    AckId,
}

/// Decodes one text frame.
pub fn decode(frame: &str) -> Result<EnginePacket<'_>, FrameError> {
    let mut chars = frame.chars();
    let first = chars.next().ok_or(FrameError::Empty)?;
    let rest = &frame[1..];
    match first {
        '0' => Ok(EnginePacket::Open(rest)),
        '1' => Ok(EnginePacket::Close),
        '2' => Ok(EnginePacket::Ping),
        '3' => Ok(EnginePacket::Pong),
        '4' => decode_sio(rest).map(EnginePacket::Message),
        '6' => Ok(EnginePacket::Noop),
        other => Err(FrameError::EngineType(other)),
    }
}

fn decode_sio(s: &str) -> Result<SioPacket<'_>, FrameError> {
    let kind_char = s.chars().next().ok_or(FrameError::Empty)?;
    let kind = match kind_char {
        '0' => SioKind::Connect,
        '1' => SioKind::Disconnect,
        '2' => SioKind::Event,
        '3' => SioKind::Ack,
        '4' => SioKind::ConnectError,
        other => return Err(FrameError::SioType(other)),
    };
    let mut rest = &s[1..];
    let mut nsp = "/";
    if rest.starts_with('/') {
        match rest.find(',') {
            Some(comma) => {
                nsp = &rest[..comma];
                rest = &rest[comma + 1..];
            }
            None => {
                nsp = rest;
                rest = "";
            }
        }
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = if digits > 0 {
        Some(rest[..digits].parse().map_err(|_| FrameError::AckId)?)
    } else {
        None
    };
    Ok(SioPacket { kind, nsp, ack, data: &rest[digits..] })
}

/// `40[/nsp,]{auth}`: CONNECT to a namespace with the handshake `auth` payload.
pub fn connect(nsp: &str, auth: &Value) -> String {
    if nsp == "/" { format!("40{auth}") } else { format!("40{nsp},{auth}") }
}

/// `42[ack]["event",data]`: an event on the default namespace.
pub fn event(name: &str, data: &Value, ack: Option<u64>) -> String {
    let name = Value::from(name);
    match ack {
        Some(id) => format!("42{id}[{name},{data}]"),
        None => format!("42[{name},{data}]"),
    }
}

/// The event name of an EVENT payload `["name", ...]`, without parsing the rest.
pub fn event_name(data: &str) -> Option<&str> {
    let rest = data.strip_prefix("[\"")?;
    // Event names used here never contain escaped quotes; a name that does is
    // returned up to the backslash and simply matches nothing.
    let end = rest.find(['"', '\\'])?;
    Some(&rest[..end])
}

/// The first number following `key` (e.g. `"t":`) in `data`: a cheap way to read a
/// timestamp out of a delivery without parsing the whole payload.
pub fn number_after(data: &str, key: &str) -> Option<u64> {
    let at = data.find(key)? + key.len();
    let tail = data[at..].trim_start();
    let len = tail.bytes().take_while(u8::is_ascii_digit).count();
    tail[..len].parse().ok()
}

/// The `pingInterval` of an open packet, milliseconds.
pub fn ping_interval(open: &str) -> Option<u64> {
    serde_json::from_str::<Value>(open).ok()?.get("pingInterval")?.as_u64()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sio(frame: &str) -> SioPacket<'_> {
        match decode(frame) {
            Ok(EnginePacket::Message(p)) => p,
            other => panic!("not a socket.io packet: {other:?}"),
        }
    }

    #[test]
    fn engine_packets() {
        assert_eq!(decode("2"), Ok(EnginePacket::Ping));
        assert_eq!(decode("3"), Ok(EnginePacket::Pong));
        assert_eq!(decode("1"), Ok(EnginePacket::Close));
        assert_eq!(decode("6"), Ok(EnginePacket::Noop));
        let open = r#"{"sid":"a","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#;
        assert_eq!(decode(&format!("0{open}")), Ok(EnginePacket::Open(open)));
        assert_eq!(ping_interval(open), Some(25000));
        assert_eq!(decode(""), Err(FrameError::Empty));
        assert_eq!(decode("9x"), Err(FrameError::EngineType('9')));
        assert_eq!(decode("4"), Err(FrameError::Empty));
        // Binary events are not spoken here.
        assert_eq!(decode("451-[]"), Err(FrameError::SioType('5')));
    }

    #[test]
    fn socketio_packets() {
        let p = sio(r#"40{"sid":"abc"}"#);
        assert_eq!(
            (p.kind, p.nsp, p.ack, p.data),
            (SioKind::Connect, "/", None, r#"{"sid":"abc"}"#)
        );

        let p = sio(r#"44{"message":"unauthorized: no credentials"}"#);
        assert_eq!(p.kind, SioKind::ConnectError);

        let p = sio(r#"4317[{"ok":true}]"#);
        assert_eq!((p.kind, p.ack, p.data), (SioKind::Ack, Some(17), r#"[{"ok":true}]"#));

        let p = sio(r#"42/chat,5["x",1]"#);
        assert_eq!(
            (p.kind, p.nsp, p.ack, p.data),
            (SioKind::Event, "/chat", Some(5), r#"["x",1]"#)
        );

        let p = sio("41/lobby");
        assert_eq!((p.kind, p.nsp, p.data), (SioKind::Disconnect, "/lobby", ""));

        assert_eq!(decode("43999999999999999999999[]"), Err(FrameError::AckId));
    }

    #[test]
    fn encodes_what_it_decodes() {
        let frame = event("join room", &json!("r 1"), Some(3));
        assert_eq!(frame, r#"423["join room","r 1"]"#);
        let p = sio(&frame);
        assert_eq!(
            (p.kind, p.ack, event_name(p.data)),
            (SioKind::Event, Some(3), Some("join room"))
        );

        let frame = event("say \"hi\"", &json!({"a": 1}), None);
        assert_eq!(frame, r#"42["say \"hi\"",{"a":1}]"#);
        assert_eq!(connect("/", &json!({"token": "t"})), r#"40{"token":"t"}"#);
        assert_eq!(connect("/chat", &json!({})), r#"40/chat,{}"#);
    }

    #[test]
    fn cheap_field_reads() {
        let data = r#"["incomingMessage",{"from":"u","message":{"t": 1700000000123456},"ts":1}]"#;
        assert_eq!(event_name(data), Some("incomingMessage"));
        assert_eq!(number_after(data, r#""t":"#), Some(1_700_000_000_123_456));
        assert_eq!(number_after(data, r#""missing":"#), None);
        assert_eq!(number_after(r#"{"t":"x"}"#, r#""t":"#), None);
        assert_eq!(event_name("[1]"), None);
    }
}
