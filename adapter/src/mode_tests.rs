//! What each mode does differently: channels, uids, which messages go where
//! and which are read back, on the in-memory bus for publishing and counting.

use std::sync::Arc;

use rmpv::Value as Mp;
use tokio::sync::mpsc;

use super::*;
use crate::{
    AdapterMetrics,
    driver::{MemoryBus, MessageSink},
    proto::{Flags, ResponseBody},
};

const NSP: &str = "/chat";
const ME: &str = "0123456789abcdef";
const PEER: &str = "fedcba9876543210";
/// As long as a Node socket id: Node's `Dynamic` mode keeps it on the main channel.
const NODE_SID: &str = "AAAAAAAAAAAAAAAAAAAA";

fn classic() -> Mode {
    Mode::new(&AdapterConfig::default(), NSP)
}

fn classic_answering_on_the_shared_channel() -> Mode {
    Mode::new(&AdapterConfig { reply_on_own_channel: false, ..AdapterConfig::default() }, NSP)
}

fn sharded(subscription_mode: SubscriptionMode) -> Mode {
    let mode = AdapterMode::Sharded { subscription_mode };
    Mode::new(&AdapterConfig { mode, ..AdapterConfig::default() }, NSP)
}

fn every_mode() -> Vec<Mode> {
    vec![
        classic(),
        sharded(SubscriptionMode::Static),
        sharded(SubscriptionMode::Dynamic),
        sharded(SubscriptionMode::DynamicPrivate),
    ]
}

fn to_rooms(rooms: &[&str]) -> WireOpts {
    WireOpts {
        rooms: rooms.iter().map(|r| r.to_string()).collect(),
        except: Vec::new(),
        flags: Flags::default(),
    }
}

fn event() -> Vec<Mp> {
    vec![Mp::from("incomingMessage"), Mp::from("hi")]
}

fn broadcast_channel(mode: &Mode, rooms: &[&str]) -> String {
    mode.encode_broadcast(ME, NSP, event(), to_rooms(rooms)).unwrap().0
}

fn fetch(rooms: &[&str]) -> Request {
    Request::Fetch { target: Target { rooms: to_rooms(rooms).rooms, except: Vec::new() } }
}

#[test]
fn each_mode_listens_to_its_own_channels() {
    assert_eq!(
        classic().base_subscriptions(ME),
        [
            Subscription::Pattern("socket.io#/chat#*".into()),
            Subscription::Channel("socket.io-request#/chat#".into()),
            Subscription::Channel("socket.io-response#/chat#".into()),
            Subscription::Channel(format!("socket.io-response#/chat#{ME}#")),
        ]
    );
    for mode in &every_mode()[1..] {
        assert_eq!(
            mode.base_subscriptions(ME),
            [
                Subscription::Shard("socket.io#/chat#".into()),
                Subscription::Shard(format!("socket.io#/chat#{ME}#")),
            ]
        );
    }
}

#[test]
fn only_the_dynamic_sharded_modes_have_room_channels() {
    let has_rooms: Vec<bool> = every_mode().iter().map(|m| m.room_channels().is_some()).collect();
    assert_eq!(has_rooms, [false, false, true, true]);
    let dynamic = sharded(SubscriptionMode::Dynamic);
    assert_eq!(dynamic.room_channels().unwrap().room("r"), "socket.io#/chat#r#");
}

#[test]
fn sharded_uids_have_the_shape_of_node_ones() {
    let uid = sharded(SubscriptionMode::Dynamic).new_uid();
    assert_eq!(uid.len(), 16);
    assert!(uid.chars().all(|c| c.is_ascii_hexdigit()), "{uid}");
    assert_ne!(uid, sharded(SubscriptionMode::Dynamic).new_uid());
    assert_ne!(classic().new_uid(), classic().new_uid());
}

#[test]
fn all_rooms_is_asked_only_unfiltered_and_in_classic_mode() {
    let everything = || Target { rooms: Vec::new(), except: Vec::new() };
    assert_eq!(classic().rooms_request(everything()), Request::AllRooms);
    for mode in &every_mode()[1..] {
        assert_eq!(mode.rooms_request(everything()), fetch(&[]));
    }
    let filtered = Target { rooms: vec!["r".into()], except: Vec::new() };
    assert_eq!(classic().rooms_request(filtered.clone()), fetch(&["r"]));
    let except = Target { rooms: Vec::new(), except: vec!["r".into()] };
    assert_eq!(classic().rooms_request(except.clone()), Request::Fetch { target: except });
}

#[test]
fn a_broadcast_goes_where_node_would_put_it() {
    let main = "socket.io#/chat#";
    let room = "socket.io#/chat#r#";
    let sid_room = format!("socket.io#/chat#{NODE_SID}#");
    // Classic: the room is in the channel name, the receivers all hear it.
    assert_eq!(broadcast_channel(&classic(), &["r"]), room);
    assert_eq!(broadcast_channel(&classic(), &["r", "s"]), main);
    assert_eq!(broadcast_channel(&classic(), &[]), main);

    let static_mode = sharded(SubscriptionMode::Static);
    assert_eq!(broadcast_channel(&static_mode, &["r"]), main);
    let dynamic = sharded(SubscriptionMode::Dynamic);
    assert_eq!(broadcast_channel(&dynamic, &["r"]), room);
    assert_eq!(broadcast_channel(&dynamic, &[NODE_SID]), main);
    assert_eq!(broadcast_channel(&dynamic, &["r", "s"]), main);
    let private = sharded(SubscriptionMode::DynamicPrivate);
    assert_eq!(broadcast_channel(&private, &[NODE_SID]), sid_room);
}

#[test]
fn a_broadcast_is_read_back_by_a_peer_of_the_same_mode_as_a_request_without_ack() {
    for mode in every_mode() {
        let (channel, payload) =
            mode.encode_broadcast(PEER, NSP, event(), to_rooms(&["r"])).unwrap();
        let inbound = mode.decode(ME, NSP, &channel, &payload).unwrap().unwrap();
        assert_eq!(inbound.from.as_deref(), Some(PEER), "{mode:?}");
        let packet = EventPacket { nsp: NSP.into(), data: event() };
        let request = Request::Broadcast { packet, opts: to_rooms(&["r"]) };
        assert_eq!(inbound.incoming, Incoming::Request { request_id: None, request }, "{mode:?}");
        // Our own message comes back to us: its local part already ran.
        assert_eq!(mode.decode(PEER, NSP, &channel, &payload).unwrap(), None, "{mode:?}");
    }
}

#[test]
fn requests_go_to_the_channel_every_server_hears() {
    let (channel, payload) =
        classic().encode_request(ME, NSP, fetch(&["r"]), Some("q1".into())).unwrap();
    assert_eq!(channel, "socket.io-request#/chat#");
    for mode in every_mode() {
        let (channel, payload) =
            mode.encode_request(PEER, NSP, fetch(&["r"]), Some("q1".into())).unwrap();
        let inbound = mode.decode(ME, NSP, &channel, &payload).unwrap().unwrap();
        let incoming = Incoming::Request { request_id: Some("q1".into()), request: fetch(&["r"]) };
        assert_eq!(inbound, Inbound { from: Some(PEER.into()), incoming }, "{mode:?}");
    }
    for mode in &every_mode()[1..] {
        let (channel, _) = mode.encode_request(ME, NSP, fetch(&["r"]), Some("q1".into())).unwrap();
        assert_eq!(channel, "socket.io#/chat#");
        // The sharded protocol has no ALL_ROOMS.
        let refused = mode.encode_request(ME, NSP, Request::AllRooms, Some("q2".into()));
        assert!(matches!(refused, Err(EncodeError::UnsupportedRequest)), "{refused:?}");
    }
    // A classic request of another namespace is on another channel.
    let other = Mode::new(&AdapterConfig::default(), "/other");
    assert_eq!(other.decode(ME, "/other", "socket.io-request#/chat#", &payload).unwrap(), None);
}

#[test]
fn responses_go_to_the_askers_own_channel_when_they_can() {
    let answer = || ResponseMsg { request_id: "q1".into(), body: ResponseBody::ClientCount(2) };
    let channel = |mode: &Mode, to: Option<&str>| {
        mode.encode_response(ME, NSP, to, answer()).unwrap().map(|(channel, _)| channel)
    };
    assert_eq!(channel(&classic(), Some(PEER)), Some(format!("socket.io-response#/chat#{PEER}#")));
    assert_eq!(channel(&classic(), None), Some("socket.io-response#/chat#".into()));
    let shared = classic_answering_on_the_shared_channel();
    assert_eq!(channel(&shared, Some(PEER)), Some("socket.io-response#/chat#".into()));
    for mode in &every_mode()[1..] {
        assert_eq!(channel(mode, Some(PEER)), Some(format!("socket.io#/chat#{PEER}#")));
        // Node answers on the asker's own channel only.
        assert_eq!(channel(mode, None), None);
    }
    for mode in every_mode() {
        let (channel, payload) =
            mode.encode_response(PEER, NSP, Some(ME), answer()).unwrap().unwrap();
        let inbound = mode.decode(ME, NSP, &channel, &payload).unwrap().unwrap();
        assert_eq!(inbound.incoming, Incoming::Response(answer()), "{mode:?}");
    }
}

#[test]
fn sharded_responses_are_taken_whatever_their_namespace_other_messages_are_not() {
    let mode = sharded(SubscriptionMode::Dynamic);
    let answer = ResponseMsg { request_id: "q1".into(), body: ResponseBody::ClientCount(1) };
    let (channel, payload) =
        mode.encode_response(PEER, "/elsewhere", Some(ME), answer.clone()).unwrap().unwrap();
    let inbound = mode.decode(ME, NSP, &channel, &payload).unwrap().unwrap();
    assert_eq!(inbound.incoming, Incoming::Response(answer));
    let (channel, payload) =
        mode.encode_request(PEER, "/elsewhere", fetch(&[]), Some("q2".into())).unwrap();
    assert_eq!(mode.decode(ME, NSP, &channel, &payload).unwrap(), None);
}

#[test]
fn classic_messages_on_unknown_channels_are_ignored_and_malformed_ones_refused() {
    let mode = classic();
    let (_, payload) = mode.encode_broadcast(PEER, NSP, event(), to_rooms(&[])).unwrap();
    assert_eq!(mode.decode(ME, NSP, "elsewhere", &payload).unwrap(), None);
    for channel in ["socket.io#/chat#", "socket.io-request#/chat#", "socket.io-response#/chat#"] {
        assert!(mode.decode(ME, NSP, channel, b"\xc1").is_err(), "{channel}");
    }
    assert!(sharded(SubscriptionMode::Static).decode(ME, NSP, "socket.io#/chat#", b"{").is_err());
}

#[tokio::test]
async fn each_mode_publishes_and_counts_servers_on_its_own_kind_of_channel() {
    let bus = MemoryBus::new();
    for mode in every_mode() {
        let (me, peer) = (bus.connect(), bus.connect());
        let (tx, mut rx) = mpsc::channel(8);
        let sink = MessageSink::new(tx, Arc::new(AdapterMetrics::default()));
        me.subscribe(mode.base_subscriptions(ME), sink.clone()).await.unwrap();
        peer.subscribe(mode.base_subscriptions(PEER), sink).await.unwrap();
        assert_eq!(mode.server_count(&me).await.unwrap(), 2, "{mode:?}");

        let (channel, payload) =
            mode.encode_request(PEER, NSP, fetch(&[]), Some("q".into())).unwrap();
        mode.publish(&peer, channel.clone(), payload).await.unwrap();
        // Both servers hear it (the sender skips its own by uid).
        for _ in 0..2 {
            assert_eq!(rx.recv().await.unwrap().channel, channel, "{mode:?}");
        }
        // A mode's messages never reach a server of the other kind.
        let other = if matches!(mode, Mode::Classic { .. }) {
            sharded(SubscriptionMode::Static)
        } else {
            classic()
        };
        let (channel, payload) =
            other.encode_request(PEER, NSP, fetch(&[]), Some("q".into())).unwrap();
        other.publish(&peer, channel, payload).await.unwrap();
        assert!(rx.try_recv().is_err(), "{mode:?}");
        assert_eq!(other.server_count(&me).await.unwrap(), 0, "{mode:?}");
    }
}
