//! Byte-exact agreement with Node's sharded adapter.
//!
//! Every constant below is what @socket.io/redis-adapter 8.3.0's
//! `createShardedAdapter` (socket.io 4.8.1, socket.io-adapter 2.5.5+,
//! notepack.io 3.0.1) published, recorded once by
//! `node adapter/tests/interop/gen-sharded-fixtures.js`: the real adapter in
//! a real socket.io server, with a recording Redis client and stable random
//! ids (uid `0101010101010101`). JSON messages are kept as text, msgpack
//! ones as hex; the doc comment of each names the channel it went to.

use rmpv::Value as Mp;
use serde_json::json;

use super::*;

const UID: &str = "0101010101010101";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// On `socket.io#/#`.
const BROADCAST: &str = r#"{"type":3,"data":{"packet":{"type":2,"data":["ev",1,"s",{"a":1.5}]},"opts":{"rooms":[],"except":[],"flags":{}}},"uid":"0101010101010101","nsp":"/"}"#;
/// On `socket.io#/#r1#` (msgpack, hex).
const BROADCAST_ROOM_BINARY: &str = "84a47479706503a46461746182a67061636b657482a47479706502a46461746192a26576c403010203a46f70747383a5726f6f6d7391a27231a665786365707491a178a5666c61677381a8766f6c6174696c65c3a3756964b030313031303130313031303130313031a36e7370a12f";
/// On `socket.io#/#`.
const BROADCAST_NODE_SID: &str = r#"{"type":3,"data":{"packet":{"type":2,"data":["ev"]},"opts":{"rooms":["abcdefghijklmnopqrst"],"except":[],"flags":{}}},"uid":"0101010101010101","nsp":"/"}"#;
/// On `socket.io#/#`.
const BROADCAST_ACK: &str = r#"{"type":3,"data":{"packet":{"type":2,"data":["ev"]},"requestId":"0202020202020202","opts":{"rooms":[],"except":[],"flags":{"timeout":5000}}},"uid":"0101010101010101","nsp":"/"}"#;
/// On `socket.io#/#`.
const SOCKETS_JOIN: &str = r#"{"type":4,"data":{"opts":{"rooms":["r1"],"except":[],"flags":{}},"rooms":["j1","j2"]},"uid":"0101010101010101","nsp":"/"}"#;
/// On `socket.io#/#`.
const SOCKETS_LEAVE: &str = r#"{"type":5,"data":{"opts":{"rooms":[],"except":["x"],"flags":{}},"rooms":["j1"]},"uid":"0101010101010101","nsp":"/"}"#;
/// On `socket.io#/#`.
const DISCONNECT_SOCKETS: &str = r#"{"type":6,"data":{"opts":{"rooms":["r1"],"except":[],"flags":{}},"close":true},"uid":"0101010101010101","nsp":"/"}"#;
/// On `socket.io#/#`.
const FETCH_SOCKETS: &str = r#"{"type":7,"data":{"opts":{"rooms":["r1"],"except":[],"flags":{}},"requestId":"0303030303030303"},"uid":"0101010101010101","nsp":"/"}"#;
/// On `socket.io#/#`.
const SERVER_SIDE_EMIT: &str =
    r#"{"type":9,"data":{"packet":["hello","world",7]},"uid":"0101010101010101","nsp":"/"}"#;
/// On `socket.io#/#`.
const SERVER_SIDE_EMIT_ACK: &str = r#"{"type":9,"data":{"requestId":"0404040404040404","packet":["ping",{"x":null}]},"uid":"0101010101010101","nsp":"/"}"#;
/// On `socket.io#/#fedcba9876543210#`.
const SERVER_SIDE_EMIT_RESPONSE: &str = r#"{"type":10,"data":{"requestId":"req1","packet":{"ok":true}},"uid":"0101010101010101","nsp":"/"}"#;
/// On `socket.io#/#fedcba9876543210#`.
const FETCH_SOCKETS_RESPONSE: &str =
    r#"{"type":8,"data":{"requestId":"req2","sockets":[]},"uid":"0101010101010101","nsp":"/"}"#;
/// On `socket.io#/#fedcba9876543210#`.
const BROADCAST_CLIENT_COUNT: &str =
    r#"{"type":11,"data":{"requestId":"req3","clientCount":0},"uid":"0101010101010101","nsp":"/"}"#;
/// On `socket.io#/#fedcba9876543210#`.
const BROADCAST_ACK_TEXT: &str =
    r#"{"type":11,"data":{"requestId":"req4","clientCount":1},"uid":"0101010101010101","nsp":"/"}"#;
/// On `socket.io#/#fedcba9876543210#`.
const BROADCAST_ACK_TEXT_2: &str =
    r#"{"type":12,"data":{"requestId":"req4","packet":"ok"},"uid":"0101010101010101","nsp":"/"}"#;
/// On `socket.io#/#fedcba9876543210#`.
const BROADCAST_ACK_BINARY: &str =
    r#"{"type":11,"data":{"requestId":"req5","clientCount":1},"uid":"0101010101010101","nsp":"/"}"#;
/// On `socket.io#/#fedcba9876543210#` (msgpack, hex).
const BROADCAST_ACK_BINARY_2: &str = "84a4747970650ca46461746182a9726571756573744964a472657135a67061636b6574c4020908a3756964b030313031303130313031303130313031a36e7370a12f";

fn msg(body: ShardedBody) -> ShardedMessage {
    ShardedMessage { uid: Some(UID.into()), nsp: Some("/".into()), body }
}

fn opts(rooms: &[&str], except: &[&str]) -> WireOpts {
    WireOpts {
        rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
        except: except.iter().map(|r| (*r).to_owned()).collect(),
        flags: Flags::default(),
    }
}

/// Encodes to exactly Node's bytes, decodes back to the same message.
fn assert_exact(bytes: &[u8], body: ShardedBody) {
    let msg = msg(body);
    assert_eq!(
        msg.encode().unwrap(),
        bytes,
        "\nours:   {}\nnode's: {}",
        String::from_utf8_lossy(&msg.encode().unwrap()),
        String::from_utf8_lossy(bytes)
    );
    assert_eq!(ShardedMessage::decode(bytes).unwrap(), msg);
}

#[test]
fn broadcasts() {
    let data = vec![
        Mp::from("ev"),
        Mp::from(1),
        Mp::from("s"),
        Mp::Map(vec![(Mp::from("a"), Mp::F64(1.5))]),
    ];
    assert_exact(
        BROADCAST.as_bytes(),
        ShardedBody::Broadcast { data, request_id: None, opts: opts(&[], &[]) },
    );

    let mut binary_opts = opts(&["r1"], &["x"]);
    binary_opts.flags.volatile = Some(true);
    assert_exact(
        &hex(BROADCAST_ROOM_BINARY),
        ShardedBody::Broadcast {
            data: vec![Mp::from("ev"), Mp::Binary(vec![1, 2, 3])],
            request_id: None,
            opts: binary_opts,
        },
    );
    assert_exact(
        BROADCAST_NODE_SID.as_bytes(),
        ShardedBody::Broadcast {
            data: vec![Mp::from("ev")],
            request_id: None,
            opts: opts(&["abcdefghijklmnopqrst"], &[]),
        },
    );
    let mut ack_opts = opts(&[], &[]);
    ack_opts.flags.timeout = Some(5000);
    assert_exact(
        BROADCAST_ACK.as_bytes(),
        ShardedBody::Broadcast {
            data: vec![Mp::from("ev")],
            request_id: Some("0202020202020202".into()),
            opts: ack_opts,
        },
    );
}

#[test]
fn operations() {
    assert_exact(
        SOCKETS_JOIN.as_bytes(),
        ShardedBody::SocketsJoin {
            opts: opts(&["r1"], &[]),
            rooms: vec!["j1".into(), "j2".into()],
        },
    );
    assert_exact(
        SOCKETS_LEAVE.as_bytes(),
        ShardedBody::SocketsLeave { opts: opts(&[], &["x"]), rooms: vec!["j1".into()] },
    );
    assert_exact(
        DISCONNECT_SOCKETS.as_bytes(),
        ShardedBody::DisconnectSockets { opts: opts(&["r1"], &[]), close: true },
    );
    assert_exact(
        FETCH_SOCKETS.as_bytes(),
        ShardedBody::FetchSockets {
            opts: opts(&["r1"], &[]),
            request_id: "0303030303030303".into(),
        },
    );
    assert_exact(
        SERVER_SIDE_EMIT.as_bytes(),
        ShardedBody::ServerSideEmit {
            request_id: None,
            packet: vec![json!("hello"), json!("world"), json!(7)],
        },
    );
    assert_exact(
        SERVER_SIDE_EMIT_ACK.as_bytes(),
        ShardedBody::ServerSideEmit {
            request_id: Some("0404040404040404".into()),
            packet: vec![json!("ping"), json!({"x": null})],
        },
    );
}

#[test]
fn responses() {
    assert_exact(
        SERVER_SIDE_EMIT_RESPONSE.as_bytes(),
        ShardedBody::ServerSideEmitResponse {
            request_id: "req1".into(),
            packet: json!({"ok": true}),
        },
    );
    assert_exact(
        FETCH_SOCKETS_RESPONSE.as_bytes(),
        ShardedBody::FetchSocketsResponse { request_id: "req2".into(), sockets: vec![] },
    );
    assert_exact(
        BROADCAST_CLIENT_COUNT.as_bytes(),
        ShardedBody::BroadcastClientCount { request_id: "req3".into(), client_count: 0 },
    );
    assert_exact(
        BROADCAST_ACK_TEXT.as_bytes(),
        ShardedBody::BroadcastClientCount { request_id: "req4".into(), client_count: 1 },
    );
    assert_exact(
        BROADCAST_ACK_TEXT_2.as_bytes(),
        ShardedBody::BroadcastAck { request_id: "req4".into(), packet: Some(Mp::from("ok")) },
    );
    assert_exact(
        BROADCAST_ACK_BINARY.as_bytes(),
        ShardedBody::BroadcastClientCount { request_id: "req5".into(), client_count: 1 },
    );
    assert_exact(
        &hex(BROADCAST_ACK_BINARY_2),
        ShardedBody::BroadcastAck {
            request_id: "req5".into(),
            packet: Some(Mp::Binary(vec![9, 8])),
        },
    );
    assert!(ShardedBody::BroadcastAck { request_id: "r".into(), packet: None }.is_response());
}

#[test]
fn channels_follow_node() {
    let ch = ShardedChannels::new("socket.io", "/");
    assert_eq!(ch.main, "socket.io#/#");
    assert_eq!(ch.response_for("fedcba9876543210"), "socket.io#/#fedcba9876543210#");
    let broadcast = |rooms: &[&str], request_id: Option<&str>| ShardedBody::Broadcast {
        data: vec![Mp::from("ev")],
        request_id: request_id.map(str::to_owned),
        opts: opts(rooms, &[]),
    };
    use SubscriptionMode::*;
    // The recorded channels: a single room goes to its channel, a Node
    // socket id (20 characters) and a broadcast with ack to the main one.
    assert_eq!(ch.publish_channel(&broadcast(&["r1"], None), Dynamic), "socket.io#/#r1#");
    assert_eq!(ch.publish_channel(&broadcast(&["abcdefghijklmnopqrst"], None), Dynamic), ch.main);
    assert_eq!(ch.publish_channel(&broadcast(&["r1"], Some("id")), Dynamic), ch.main);
    // A Roomcast socket id (16 characters) is a room for Node.
    assert_eq!(
        ch.publish_channel(&broadcast(&["0123456789abcdef"], None), Dynamic),
        "socket.io#/#0123456789abcdef#"
    );
    assert_eq!(
        ch.publish_channel(&broadcast(&["abcdefghijklmnopqrst"], None), DynamicPrivate),
        "socket.io#/#abcdefghijklmnopqrst#"
    );
    assert_eq!(ch.publish_channel(&broadcast(&["r1"], None), Static), ch.main);
    assert_eq!(ch.publish_channel(&broadcast(&["a", "b"], None), Dynamic), ch.main);
    // JS counts UTF-16 units: 10 astral characters are 20 units.
    let astral = "😀".repeat(10);
    assert_eq!(ch.publish_channel(&broadcast(&[&astral], None), Dynamic), ch.main);
    let join = ShardedBody::SocketsJoin { opts: opts(&["r1"], &[]), rooms: vec!["x".into()] };
    assert_eq!(ch.publish_channel(&join, Dynamic), ch.main);
}

#[test]
fn malformed_messages_are_refused() {
    let bad: &[&[u8]] = &[
        b"",
        b"{",
        b"{}",
        br#"{"type":3,"data":{"packet":{"type":2,"data":["ev"]},"opts":{"rooms":[{}]}},"nsp":"/"}"#,
        br#"{"type":3,"data":{"packet":{"type":3,"data":["ev"]},"opts":{}},"nsp":"/"}"#,
        br#"{"type":3,"data":{"packet":{"type":2,"data":[1]},"opts":{}},"nsp":"/"}"#,
        br#"{"type":3,"data":{"packet":{"type":2,"data":["ev"]}},"nsp":"/"}"#,
        br#"{"type":7,"data":{"opts":{}},"nsp":"/"}"#,
        br#"{"type":9,"data":{"packet":"x"},"nsp":"/"}"#,
        br#"{"type":11,"data":{"requestId":"a"}}"#,
        br#"{"type":42,"data":{}}"#,
        br#"{"type":4,"data":{"opts":{},"rooms":[null]},"nsp":"/"}"#,
        br#"{"type":4,"data":[],"nsp":"/"}"#,
        br#"{"type":4,"data":{"opts":{},"rooms":[]},"nsp":5}"#,
        &[0xc1],
        &[0x81, 0xa4, b't', b'y', b'p', b'e', 0x03],
    ];
    for bytes in bad {
        assert!(ShardedMessage::decode(bytes).is_err(), "{}", String::from_utf8_lossy(bytes));
    }
    // Trailing bytes after a msgpack message.
    let mut trailing = hex(BROADCAST_ROOM_BINARY);
    trailing.push(0);
    assert!(ShardedMessage::decode(&trailing).is_err());
}

#[test]
fn nothing_malformed_is_encoded() {
    let no_event =
        ShardedBody::Broadcast { data: vec![Mp::from(1)], request_id: None, opts: opts(&[], &[]) };
    assert_eq!(msg(no_event).encode(), Err(EncodeError::InvalidPayload));
    let no_event = ShardedBody::ServerSideEmit { request_id: None, packet: vec![json!(1)] };
    assert_eq!(msg(no_event).encode(), Err(EncodeError::InvalidPayload));
    let anonymous = ShardedMessage {
        uid: None,
        nsp: Some("/".into()),
        body: ShardedBody::BroadcastClientCount { request_id: "a".into(), client_count: 1 },
    };
    assert_eq!(anonymous.encode(), Err(EncodeError::InvalidPayload));
    assert_eq!(
        ShardedBody::from_request(Request::AllRooms, None),
        Err(EncodeError::UnsupportedRequest)
    );
    assert_eq!(
        ShardedBody::from_request(Request::Fetch { target: Target::default() }, None),
        Err(EncodeError::UnsupportedRequest)
    );
}

#[test]
fn shared_shapes_round_trip() {
    // A response of the shared code, through the sharded wire and back.
    let response = ResponseMsg { request_id: "q".into(), body: ResponseBody::ClientCount(3) };
    let body = ShardedBody::from_response(response.clone()).unwrap();
    let bytes = msg(body).encode().unwrap();
    let decoded = ShardedMessage::decode(&bytes).unwrap();
    assert_eq!(decoded.body.into_incoming("/"), Incoming::Response(response));
    // An ALL_ROOMS answer has no sharded form.
    let rooms = ResponseMsg { request_id: "q".into(), body: ResponseBody::Rooms(vec![]) };
    assert_eq!(ShardedBody::from_response(rooms), Err(EncodeError::UnsupportedRequest));
    // A binary payload keeps its type, and Node's packet carries no nsp:
    // the receiver's namespace fills it.
    let request = Request::Broadcast {
        packet: EventPacket { nsp: "/chat".into(), data: vec![Mp::from("e"), Mp::Binary(vec![0])] },
        opts: opts(&["r"], &[]),
    };
    let body = ShardedBody::from_request(request.clone(), None).unwrap();
    let decoded = ShardedMessage::decode(&msg(body).encode().unwrap()).unwrap();
    assert_eq!(
        decoded.body.into_incoming("/chat"),
        Incoming::Request { request_id: None, request }
    );
}

#[test]
fn the_history_flag_survives_both_encodings() {
    let flags = Flags { from_history: Some(true), ..Flags::default() };
    let opts = WireOpts { rooms: vec!["r".into()], except: Vec::new(), flags };
    let body = ShardedBody::Broadcast {
        data: vec![Mp::from("incomingMessage")],
        request_id: None,
        opts: opts.clone(),
    };
    let sharded = msg(body.clone());
    assert_eq!(ShardedMessage::decode(&sharded.encode().unwrap()).unwrap(), sharded);
    let classic = crate::proto::Broadcast {
        uid: UID.into(),
        packet: crate::proto::EventPacket { nsp: "/".into(), data: vec![Mp::from("ev")] },
        opts,
    };
    assert_eq!(crate::proto::Broadcast::decode(&classic.encode().unwrap()).unwrap(), classic);
}
