//! Sharded mode, three socketioxide servers on the in-memory bus with real
//! clients, once per subscription mode.
#![allow(clippy::unwrap_used)]

mod common;

use std::{str::FromStr, time::Duration};

use common::{
    Node, eventually,
    memory::{self, cluster3},
    scenarios, timed,
};
use roomcast_adapter::{
    AdapterConfig, AdapterMode, SubscriptionMode,
    driver::{Driver, MemoryBus, MemoryDriver, Message, Subscription},
    proto::{ShardedBody, ShardedChannels, ShardedMessage},
};
use socketioxide::socket::Sid;
use tokio::sync::mpsc;

fn config(mode: SubscriptionMode) -> AdapterConfig {
    AdapterConfig {
        request_timeout: Duration::from_secs(2),
        mode: AdapterMode::Sharded { subscription_mode: mode },
        room_sync_interval: Duration::from_millis(20),
        ..AdapterConfig::default()
    }
}

/// A spy on shard channels, as SSUBSCRIBE would give.
async fn spy(bus: &MemoryBus, channels: &[String]) -> (MemoryDriver, mpsc::Receiver<Message>) {
    memory::spy(bus, channels.iter().cloned().map(Subscription::Shard).collect()).await
}

fn ch() -> ShardedChannels {
    ShardedChannels::new("socket.io", "/")
}

/// SHARDNUMSUB of `channel`, as another Redis client sees it.
async fn subscribers(bus: &MemoryBus, channel: String) -> u64 {
    bus.connect().shard_numsub(channel).await.unwrap()
}

fn decode(msg: &Message) -> ShardedMessage {
    ShardedMessage::decode(&msg.payload).unwrap()
}

async fn broadcasts_rooms_and_socket_ids(mode: SubscriptionMode) {
    let mut f = cluster3(config(mode)).await;
    let dynamic = mode != SubscriptionMode::Static;
    assert_eq!(f.nodes[0].cluster.server_count("/").await.unwrap(), 3);
    let spied = [ch().main, ch().room("r"), ch().room(&f.clients[0].id)];
    let (_spy, mut wire) = spy(&f.bus, &spied).await;
    // SHARDNUMSUB counts any subscriber of the main channel, as in Redis.
    assert_eq!(f.nodes[0].cluster.server_count("/").await.unwrap(), 4);
    // Nothing but SSUBSCRIBE: no classic channel exists.
    assert_eq!(f.bus.connect().numsub("socket.io-request#/#".into()).await.unwrap(), 0);

    scenarios::broadcast_reaches_every_client_once(&f.nodes, &mut f.clients).await;
    let sent = wire.recv().await.unwrap();
    assert_eq!(sent.channel, ch().main);
    assert!(wire.try_recv().is_err(), "one publish, not one per node");

    // A room appears on node 1: in dynamic modes its channel gets exactly
    // one subscriber (node 1) besides the spy, and the broadcast travels on it.
    f.clients[1].join("r").await;
    eventually(async || f.nodes[1].io.within("r").sockets().len() == 1).await;
    let expected = 1 + u64::from(dynamic);
    eventually(async || subscribers(&f.bus, ch().room("r")).await == expected).await;
    f.nodes[0].io.to("r").emit("room", "x").await.unwrap();
    f.clients[1].expect("room").await;
    f.clients[0].expect_nothing().await;
    f.clients[2].expect_nothing().await;
    let sent = wire.recv().await.unwrap();
    assert_eq!(sent.channel, if dynamic { ch().room("r") } else { ch().main });

    // The room disappears: its channel is unsubscribed.
    let c1 = f.clients[1].id.clone();
    f.nodes[1].io.to(c1.clone()).leave("r").await.unwrap();
    eventually(async || subscribers(&f.bus, ch().room("r")).await == 1).await;
    let leave = decode(&wire.recv().await.unwrap());
    assert!(matches!(leave.body, ShardedBody::SocketsLeave { .. }));

    // A socket id as a room, from another node: on its own channel in the
    // dynamic modes (Roomcast ids are 16 characters, not Node's 20).
    let c0 = f.clients[0].id.clone();
    let expected = 1 + u64::from(dynamic);
    eventually(async || subscribers(&f.bus, ch().room(&c0)).await == expected).await;
    f.nodes[2].io.to(c0.clone()).emit("direct", "d").await.unwrap();
    f.clients[0].expect("direct").await;
    f.clients[1].expect_nothing().await;
    f.clients[2].expect_nothing().await;
    let sent = wire.recv().await.unwrap();
    assert_eq!(sent.channel, if dynamic { ch().room(&c0) } else { ch().main });

    // except, a socket broadcasting, volatile.
    f.clients[2].join("r").await;
    f.clients[1].join("r").await;
    eventually(async || f.nodes[2].io.within("r").sockets().len() == 1).await;
    eventually(async || f.nodes[1].io.within("r").sockets().len() == 1).await;
    let expected = if dynamic { 3 } else { 1 };
    eventually(async || subscribers(&f.bus, ch().room("r")).await == expected).await;
    f.nodes[0].io.to("r").except(c1.clone()).emit("but", "b").await.unwrap();
    f.clients[2].expect("but").await;
    f.clients[1].expect_nothing().await;
    let s0 = f.nodes[0].io.get_socket(Sid::from_str(&c0).unwrap()).unwrap();
    s0.broadcast().volatile().emit("from-socket", "s").await.unwrap();
    f.clients[1].expect("from-socket").await;
    f.clients[2].expect("from-socket").await;
    f.clients[0].expect_nothing().await;

    // A disconnected socket's channel goes away with it.
    f.nodes[0].io.to(c0.clone()).disconnect().await.unwrap();
    eventually(async || subscribers(&f.bus, ch().room(&c0)).await == 1).await;
    assert_eq!(f.nodes[0].cluster.metrics_snapshot().decode_errors, 0);
}

async fn operations_across_nodes(mode: SubscriptionMode) {
    let mut f = cluster3(config(mode)).await;
    let (spy_conn, mut wire) = spy(&f.bus, &[ch().main]).await;
    let c2 = f.clients[2].id.clone();

    // rooms() works here without an ALL_ROOMS request, which this protocol lacks.
    scenarios::join_fetch_leave_across_nodes(&f.nodes, &mut f.clients, async move || {
        // socketsJoin is one SOCKETS_JOIN on the main channel.
        let join = decode(&wire.recv().await.unwrap());
        assert!(matches!(join.body, ShardedBody::SocketsJoin { ref rooms, .. } if rooms == &["x"]));
        // The spy would count as a server.
        drop(spy_conn);
    })
    .await;

    scenarios::server_side_emit_reaches_the_others(&f.nodes).await;

    // Broadcast with acks: every other server reports its client count on
    // the asker's own channel, so the stream ends long before its timeout
    // (these clients do not ack).
    let responses = ch().response_for(&sniff_uid(&f.bus, &f.nodes[0]).await);
    let (_spy2, mut answers_wire) = spy(&f.bus, std::slice::from_ref(&responses)).await;
    scenarios::acks_end_on_client_counts(f.nodes[0].io.to("nobody")).await;
    for _ in 0..2 {
        let answer = decode(&answers_wire.recv().await.unwrap());
        assert!(matches!(answer.body, ShardedBody::BroadcastClientCount { client_count: 0, .. }));
    }

    // disconnectSockets across nodes.
    f.nodes[0].io.to(c2).disconnect().await.unwrap();
    eventually(async || f.nodes[2].io.sockets().is_empty()).await;
    assert_eq!(f.nodes[1].io.sockets().len(), 1);
    f.clients[0].expect_nothing().await;
    assert_eq!(f.nodes[0].cluster.server_count("/").await.unwrap(), 3);
    f.nodes[2].cluster.close().await;
    eventually(async || f.nodes[0].cluster.server_count("/").await.unwrap() == 2).await;
}

/// The uid of `node`'s adapter, read from a message it publishes.
async fn sniff_uid(bus: &MemoryBus, node: &Node<MemoryDriver>) -> String {
    let (_spy, mut wire) = spy(bus, &[ch().main]).await;
    // Two rooms nobody is in: the main channel, no client disturbed.
    node.io.to(["nobody1", "nobody2"]).emit("sniff", &0).await.unwrap();
    loop {
        let msg = decode(&wire.recv().await.unwrap());
        if let ShardedBody::Broadcast { data, .. } = &msg.body
            && data[0] == rmpv::Value::from("sniff")
        {
            let uid = msg.uid.unwrap();
            assert_eq!(uid.len(), 16);
            assert!(uid.bytes().all(|b| b.is_ascii_hexdigit()));
            return uid;
        }
    }
}

#[tokio::test]
async fn static_broadcasts() {
    timed(40, broadcasts_rooms_and_socket_ids(SubscriptionMode::Static)).await;
}

#[tokio::test]
async fn dynamic_broadcasts() {
    timed(40, broadcasts_rooms_and_socket_ids(SubscriptionMode::Dynamic)).await;
}

#[tokio::test]
async fn dynamic_private_broadcasts() {
    timed(40, broadcasts_rooms_and_socket_ids(SubscriptionMode::DynamicPrivate)).await;
}

#[tokio::test]
async fn static_operations() {
    timed(40, operations_across_nodes(SubscriptionMode::Static)).await;
}

#[tokio::test]
async fn dynamic_operations() {
    timed(40, operations_across_nodes(SubscriptionMode::Dynamic)).await;
}

#[tokio::test]
async fn dynamic_private_operations() {
    timed(40, operations_across_nodes(SubscriptionMode::DynamicPrivate)).await;
}

#[tokio::test]
async fn hostile_bytes_on_shard_channels() {
    timed(40, async {
        let mut f = cluster3(config(SubscriptionMode::Dynamic)).await;
        f.clients[1].join("r").await;
        eventually(async || subscribers(&f.bus, ch().room("r")).await == 1).await;
        let attacker = f.bus.connect();
        let channels = [ch().main, ch().room("r"), ch().room(&f.clients[0].id)];
        // A broadcast with rooms it cannot read must not reach everyone.
        let widened = br#"{"type":3,"data":{"packet":{"type":2,"data":["bad"]},"opts":{"rooms":[{}],"except":[]}},"uid":"x","nsp":"/"}"#;
        let extra = [widened.to_vec()];
        scenarios::hostile_bytes_are_dropped(&f.nodes, &mut f.clients, &channels, &extra, async |c, p| {
            attacker.spublish(c, p).await.unwrap();
        })
        .await;
    })
    .await;
}

/// A room channel whose subscription failed (the bus was down) is confirmed
/// once the bus is back and someone waits for it, not left unconfirmed.
#[tokio::test]
async fn rooms_ready_after_an_outage() {
    timed(30, async {
        let mut f = cluster3(config(SubscriptionMode::Dynamic)).await;
        let node = &f.nodes[0];
        let short = Duration::from_millis(200);
        f.bus.set_down(true);
        f.clients[0].join("during").await;
        eventually(async || node.io.within("during").sockets().len() == 1).await;
        let refused = node.cluster.rooms_ready("/", &["during".to_owned()], short).await;
        assert!(matches!(refused, Err(roomcast_adapter::RoomsReadyError::Timeout(_))));
        f.bus.set_down(false);
        node.cluster
            .rooms_ready("/", &["during".to_owned()], Duration::from_secs(2))
            .await
            .unwrap();
        f.nodes[1].io.to("during").emit("after", &1).await.unwrap();
        f.clients[0].expect("after").await;
    })
    .await;
}
