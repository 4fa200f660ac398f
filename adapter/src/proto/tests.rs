//! Round trips, and byte-exact agreement with Node.
//!
//! The hex fixtures were produced once with notepack.io 3.0.1 (the codec of
//! @socket.io/redis-adapter 8.3.0 and @socket.io/redis-emitter 5.1.0) by
//! `node adapter/tests/interop/gen-fixtures.js`.

use rmpv::Value as Mp;
use serde_json::json;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

const NODE_BROADCAST: &str = "93a675696431323383a47479706502a46461746195a2657601a173c40301020381a161cb3ff8000000000000a36e7370a12f83a5726f6f6d7391a27231a665786365707491a178a5666c61677381a8766f6c6174696c65c3";
const EMITTER_BROADCAST: &str = "93a7656d697474657283a47479706502a46461746192a26576d1ff38a36e7370a12f83a5726f6f6d73912aa5666c61677380a665786365707490";
const NODE_BROADCAST_REQUEST: &str = "85a3756964a6756964313233a9726571756573744964a472657131a47479706507a67061636b657483a47479706502a46461746191a26576a36e7370a12fa46f70747383a5726f6f6d7390a665786365707490a5666c61677381a774696d656f7574cd1388";
const NODE_ACK: &str = "83a47479706509a9726571756573744964a472657131a67061636b6574a26f6b";
const NODE_ACK_UNDEFINED: &str = "82a47479706509a9726571756573744964a472657131";
const NODE_DATE: &str = "93a16483a47479706502a46461746192a26576d7ff1d5353005fee6600a36e7370a12f83a5726f6f6d7390a665786365707490a5666c61677380";

fn sample_broadcast() -> Broadcast {
    Broadcast {
        uid: "uid123".into(),
        packet: EventPacket {
            nsp: "/".into(),
            data: vec![
                Mp::from("ev"),
                Mp::from(1),
                Mp::from("s"),
                Mp::Binary(vec![1, 2, 3]),
                Mp::Map(vec![(Mp::from("a"), Mp::F64(1.5))]),
            ],
        },
        opts: WireOpts {
            rooms: vec!["r1".into()],
            except: vec!["x".into()],
            flags: Flags { volatile: Some(true), ..Flags::default() },
        },
    }
}

#[test]
fn broadcast_is_byte_exact() {
    let msg = sample_broadcast();
    assert_eq!(msg.encode().unwrap(), hex(NODE_BROADCAST));
    assert_eq!(Broadcast::decode(&hex(NODE_BROADCAST)).unwrap(), msg);
}

#[test]
fn emitter_broadcast_with_numeric_room_and_other_key_order() {
    let msg = Broadcast::decode(&hex(EMITTER_BROADCAST)).unwrap();
    assert_eq!(msg.uid, "emitter");
    assert_eq!(msg.opts.rooms, vec!["42".to_owned()]);
    assert!(msg.opts.except.is_empty());
    assert_eq!(msg.packet.data, vec![Mp::from("ev"), Mp::from(-200)]);
}

#[test]
fn broadcast_request_and_acks_are_byte_exact() {
    let request = RequestMsg {
        uid: Some("uid123".into()),
        request_id: Some("req1".into()),
        request: Request::Broadcast {
            packet: EventPacket { nsp: "/".into(), data: vec![Mp::from("ev")] },
            opts: WireOpts {
                flags: Flags { timeout: Some(5000), ..Flags::default() },
                ..WireOpts::default()
            },
        },
    };
    assert_eq!(request.encode().unwrap(), hex(NODE_BROADCAST_REQUEST));
    assert_eq!(RequestMsg::decode(&hex(NODE_BROADCAST_REQUEST)).unwrap(), request);

    let ack = ResponseMsg {
        request_id: "req1".into(),
        body: ResponseBody::BroadcastAck(Some(Mp::from("ok"))),
    };
    assert_eq!(ack.encode().unwrap(), hex(NODE_ACK));
    assert_eq!(ResponseMsg::decode(&hex(NODE_ACK)).unwrap(), ack);
    let none = ResponseMsg { request_id: "req1".into(), body: ResponseBody::BroadcastAck(None) };
    assert_eq!(none.encode().unwrap(), hex(NODE_ACK_UNDEFINED));
    assert_eq!(ResponseMsg::decode(&hex(NODE_ACK_UNDEFINED)).unwrap(), none);
}

#[test]
fn dates_arrive_as_iso_strings() {
    let msg = Broadcast::decode(&hex(NODE_DATE)).unwrap();
    let (text, bins) = msgpack_to_json(&msg.packet.data).unwrap();
    assert_eq!(text, r#"["ev","2021-01-01T00:00:00.123Z"]"#);
    assert!(bins.is_empty());
}

#[test]
fn json_requests_from_node_and_emitter() {
    let join =
        RequestMsg::decode(br#"{"type":2,"opts":{"rooms":["a",7],"except":[]},"rooms":["b"]}"#)
            .unwrap();
    assert_eq!(join.uid, None);
    assert_eq!(
        join.request,
        Request::Join {
            target: Target { rooms: vec!["a".into(), "7".into()], except: vec![] },
            rooms: vec!["b".into()]
        }
    );
    let legacy =
        RequestMsg::decode(br#"{"uid":"u","requestId":"1","type":3,"sid":"abc","room":"r"}"#)
            .unwrap();
    assert_eq!(legacy.request, Request::LeaveSocket { sid: "abc".into(), room: "r".into() });
    assert_eq!(legacy.request_id.as_deref(), Some("1"));
    let sse = RequestMsg::decode(br#"{"uid":"u","type":6,"data":["hi",{"x":1}]}"#).unwrap();
    assert_eq!(sse.request, Request::ServerSideEmit { data: vec![json!("hi"), json!({"x":1})] });
    let disconnect =
        RequestMsg::decode(br#"{"type":4,"opts":{"rooms":[],"except":["z"]},"close":true}"#)
            .unwrap();
    assert_eq!(
        disconnect.request,
        Request::Disconnect {
            target: Target { rooms: vec![], except: vec!["z".into()] },
            close: true
        }
    );
}

#[test]
fn json_requests_round_trip() {
    let target = Target { rooms: vec!["a".into()], except: vec!["b".into()] };
    let requests = [
        Request::Sockets { rooms: vec!["a".into()] },
        Request::AllRooms,
        Request::Join { target: target.clone(), rooms: vec!["c".into()] },
        Request::Leave { target: target.clone(), rooms: vec!["c".into()] },
        Request::JoinSocket { sid: "s".into(), room: "r".into() },
        Request::LeaveSocket { sid: "s".into(), room: "r".into() },
        Request::Disconnect { target: target.clone(), close: false },
        Request::DisconnectSocket { sid: "s".into(), close: true },
        Request::Fetch { target },
        Request::ServerSideEmit { data: vec![json!("e"), json!([1, 2])] },
    ];
    for request in requests {
        let msg = RequestMsg { uid: Some("me".into()), request_id: Some("r1".into()), request };
        let bytes = msg.encode().unwrap();
        assert_eq!(bytes[0], b'{');
        assert_eq!(RequestMsg::decode(&bytes).unwrap(), msg);
    }
}

#[test]
fn responses_round_trip() {
    let bodies = [
        ResponseBody::Sockets(vec![json!("id1"), json!({"id": "x", "rooms": ["x"]})]),
        ResponseBody::Rooms(vec!["a".into(), "b".into()]),
        ResponseBody::Done,
        ResponseBody::ServerSideEmitAck(json!({"ok": true})),
        ResponseBody::ClientCount(0),
        ResponseBody::BroadcastAck(Some(Mp::Binary(vec![9]))),
    ];
    for body in bodies {
        let msg = ResponseMsg { request_id: "r".into(), body };
        assert_eq!(ResponseMsg::decode(&msg.encode().unwrap()).unwrap(), msg);
    }
    let fetched = FetchedSocket::from_json(
        &json!({"id": "abc", "rooms": ["abc", 5], "handshake": {}, "data": {"u": 1}}),
    )
    .unwrap();
    assert_eq!(fetched.rooms, vec!["abc".to_owned(), "5".to_owned()]);
}

#[test]
fn invalid_messages_are_never_built() {
    let mut msg = sample_broadcast();
    msg.packet.data = vec![Mp::from(1)];
    assert_eq!(msg.encode(), Err(EncodeError::InvalidPayload));
    msg.packet.data = vec![];
    assert_eq!(msg.encode(), Err(EncodeError::InvalidPayload));
    let sse = RequestMsg {
        uid: None,
        request_id: None,
        request: Request::ServerSideEmit { data: vec![json!(1)] },
    };
    assert_eq!(sse.encode(), Err(EncodeError::InvalidPayload));
}

#[test]
fn hostile_bytes_never_panic() {
    // Truncations and bit flips of valid messages, then random bytes from a
    // fixed-seed generator: every decoder must return, never panic.
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for fixture in [NODE_BROADCAST, EMITTER_BROADCAST, NODE_BROADCAST_REQUEST, NODE_ACK, NODE_DATE]
    {
        let bytes = hex(fixture);
        for cut in 0..bytes.len() {
            inputs.push(bytes[..cut].to_vec());
            let mut flipped = bytes.clone();
            flipped[cut] ^= 0xff;
            inputs.push(flipped);
        }
    }
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for len in 0..3000usize {
        let bytes = (0..len % 64)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed.to_be_bytes()[0]
            })
            .collect();
        inputs.push(bytes);
    }
    inputs.push([vec![0x91u8; 1_000_000], vec![0xc0]].concat());
    inputs.push([vec![b'['; 100_000], vec![b']'; 100_000]].concat());
    inputs.push([b"{\"type\":6,\"data\":".to_vec(), vec![b'['; 100_000]].concat());
    for input in &inputs {
        let _ = Broadcast::decode(input);
        let _ = RequestMsg::decode(input);
        let _ = ResponseMsg::decode(input);
    }
}
