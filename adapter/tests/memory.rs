//! Three socketioxide servers sharing the in-memory bus, with real clients.
#![allow(clippy::unwrap_used)]

mod common;

use std::{str::FromStr, sync::Arc, time::Duration};

use common::{Node, TestClient, eventually, start_node};
use futures::StreamExt;
use roomcast_adapter::{
    AdapterConfig, AdapterMetrics, Cluster,
    driver::{Driver, MemoryBus, MemoryDriver, Message, MessageSink, Subscription},
    proto::{Broadcast, Channels},
};
use serde_json::{Value, json};
use socketioxide::socket::Sid;
use tokio::sync::mpsc;

fn config() -> AdapterConfig {
    AdapterConfig { request_timeout: Duration::from_secs(2), ..AdapterConfig::default() }
}

struct Fixture {
    bus: MemoryBus,
    nodes: Vec<Node<MemoryDriver>>,
    clients: Vec<TestClient>,
}

/// Three nodes with one client each.
async fn cluster3() -> Fixture {
    let bus = MemoryBus::new();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(start_node(Cluster::with_driver(bus.connect(), config())).await);
    }
    let mut clients = Vec::new();
    for node in &nodes {
        clients.push(TestClient::connect(node.addr).await);
    }
    Fixture { bus, nodes, clients }
}

/// A bare bus connection listening to `subs`.
async fn spy(bus: &MemoryBus, subs: Vec<Subscription>) -> (MemoryDriver, mpsc::Receiver<Message>) {
    let conn = bus.connect();
    let (tx, rx) = mpsc::channel(1024);
    conn.subscribe(subs, MessageSink::new(tx, Arc::new(AdapterMetrics::default()))).await.unwrap();
    (conn, rx)
}

fn sid(id: &str) -> Sid {
    Sid::from_str(id).unwrap()
}

async fn timed<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f).await.expect("test took too long")
}

#[tokio::test]
async fn broadcast_reaches_every_node_once() {
    timed(async {
        let mut f = cluster3().await;
        let channels = Channels::new("socket.io", "/");
        let (_spy, mut wire) =
            spy(&f.bus, vec![Subscription::Pattern(channels.broadcast_pattern())]).await;

        f.nodes[0].io.emit("msg", &json!({"n": 1})).await.unwrap();
        for c in &mut f.clients {
            assert_eq!(c.expect("msg").await, vec![json!({"n": 1})]);
            c.expect_nothing().await;
        }
        // One publish, never one per node.
        let msg = wire.recv().await.unwrap();
        assert_eq!(msg.channel, "socket.io#/#");
        let decoded = Broadcast::decode(&msg.payload).unwrap();
        assert!(decoded.opts.rooms.is_empty());
        assert!(wire.try_recv().is_err());

        // local: only node 0's client.
        f.nodes[0].io.local().emit("loc", "x").await.unwrap();
        assert_eq!(f.clients[0].expect("loc").await, vec![json!("x")]);
        f.clients[1].expect_nothing().await;
        assert!(wire.try_recv().is_err());

        // volatile travels as a flag; a single room picks the room channel.
        f.clients[1].join("r").await;
        eventually(async || f.nodes[1].io.within("r").sockets().len() == 1).await;
        f.nodes[0].io.to("r").volatile().emit("vol", "v").await.unwrap();
        assert_eq!(f.clients[1].expect("vol").await, vec![json!("v")]);
        let msg = wire.recv().await.unwrap();
        assert_eq!(msg.channel, "socket.io#/#r#");
        assert_eq!(Broadcast::decode(&msg.payload).unwrap().opts.flags.volatile, Some(true));
    })
    .await;
}

#[tokio::test]
async fn rooms_except_and_socket_ids() {
    timed(async {
        let mut f = cluster3().await;
        f.clients[1].join("r").await;
        f.clients[2].join("r").await;
        eventually(async || f.nodes[2].io.within("r").sockets().len() == 1).await;

        f.nodes[0].io.to("r").emit("a", "1").await.unwrap();
        f.clients[1].expect("a").await;
        f.clients[2].expect("a").await;
        f.clients[0].expect_nothing().await;

        // except a room named after a (remote) socket id excludes that socket.
        let c2 = f.clients[2].id.clone();
        f.nodes[0].io.to("r").except(c2.clone()).emit("b", "2").await.unwrap();
        f.clients[1].expect("b").await;
        f.clients[2].expect_nothing().await;

        // a socket id as a room targets exactly that socket, local or remote.
        f.nodes[0].io.to(c2).emit("c", "3").await.unwrap();
        f.clients[2].expect("c").await;
        let c0 = f.clients[0].id.clone();
        f.nodes[1].io.to(c0).emit("d", "4").await.unwrap();
        f.clients[0].expect("d").await;
        f.clients[1].expect_nothing().await;

        // except a local socket id, on the node that owns it.
        let c1 = f.clients[1].id.clone();
        f.nodes[1].io.except(c1).emit("e", "5").await.unwrap();
        f.clients[0].expect("e").await;
        f.clients[2].expect("e").await;
        f.clients[1].expect_nothing().await;

        // a socket broadcasting skips itself everywhere.
        let s0 = f.nodes[0].io.get_socket(sid(&f.clients[0].id)).unwrap();
        s0.broadcast().emit("f", "6").await.unwrap();
        f.clients[1].expect("f").await;
        f.clients[2].expect("f").await;
        f.clients[0].expect_nothing().await;
    })
    .await;
}

#[tokio::test]
async fn join_leave_disconnect_fetch_rooms_across_nodes() {
    timed(async {
        let mut f = cluster3().await;
        let c1 = f.clients[1].id.clone();
        f.nodes[0].io.to(c1.clone()).join("x").await.unwrap();
        eventually(async || f.nodes[1].io.within("x").sockets().len() == 1).await;
        f.nodes[2].io.to("x").emit("in-x", &1).await.unwrap();
        f.clients[1].expect("in-x").await;

        let rooms = f.nodes[0].io.rooms().await.unwrap();
        assert!(rooms.iter().any(|r| r == "x"));
        for c in &f.clients {
            assert!(rooms.iter().any(|r| r == c.id.as_str()), "socket id room listed");
        }
        let rooms_x = f.nodes[2].io.to("x").rooms().await.unwrap();
        assert!(rooms_x.iter().any(|r| r == c1.as_str()));

        let all = f.nodes[0].io.fetch_sockets().await.unwrap();
        let mut ids: Vec<String> = all.iter().map(|s| s.data().id.to_string()).collect();
        ids.sort();
        let mut expected: Vec<String> = f.clients.iter().map(|c| c.id.clone()).collect();
        expected.sort();
        assert_eq!(ids, expected);
        let in_x = f.nodes[0].io.to("x").fetch_sockets().await.unwrap();
        assert_eq!(in_x.len(), 1);
        // A fetched remote socket can be used.
        in_x[0].emit("remote", "hi").await.unwrap();
        f.clients[1].expect("remote").await;

        f.nodes[2].io.to("x").leave("x").await.unwrap();
        eventually(async || f.nodes[1].io.within("x").sockets().is_empty()).await;

        assert_eq!(f.nodes[0].cluster.server_count("/").await.unwrap(), 3);

        f.nodes[0].io.to(f.clients[2].id.clone()).disconnect().await.unwrap();
        eventually(async || f.nodes[2].io.sockets().is_empty()).await;
        assert_eq!(f.nodes[1].io.sockets().len(), 1);
        assert_eq!(f.nodes[0].io.sockets().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn server_side_events_with_and_without_ack() {
    timed(async {
        let f = cluster3().await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        for (i, node) in f.nodes.iter().enumerate() {
            let tx = tx.clone();
            node.cluster.on_server_event("/", move |ev| {
                let _ = tx.send((i, ev.event.clone(), ev.args.clone()));
                if let Some(ack) = ev.ack {
                    ack.send(json!({ "node": i }));
                }
            });
        }
        f.nodes[0].cluster.server_side_emit("/", "ping", vec![json!(1), json!("a")]).await.unwrap();
        let mut got = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
        got.sort_by_key(|g| g.0);
        assert_eq!(
            got,
            vec![
                (1, "ping".into(), vec![json!(1), json!("a")]),
                (2, "ping".into(), vec![json!(1), json!("a")])
            ]
        );

        let mut answers =
            f.nodes[1].cluster.server_side_emit_with_ack("/", "count", vec![]).await.unwrap();
        answers.sort_by_key(|a| a["node"].as_u64());
        assert_eq!(answers, vec![json!({"node": 0}), json!({"node": 2})]);
        assert!(f.nodes[0].cluster.server_side_emit("/nope", "x", vec![]).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn broadcast_with_ack_completes_on_client_counts() {
    timed(async {
        let bus = MemoryBus::new();
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(start_node(Cluster::with_driver(bus.connect(), config())).await);
        }
        // No clients anywhere: every server reports 0 at once, so the stream
        // ends long before the 10 s ack timeout.
        let started = tokio::time::Instant::now();
        let acks: Vec<_> = nodes[0]
            .io
            .timeout(Duration::from_secs(10))
            .emit_with_ack::<_, Value>("q", &1)
            .await
            .unwrap()
            .collect()
            .await;
        assert!(acks.is_empty());
        assert!(started.elapsed() < Duration::from_secs(3), "waited for the timeout");
    })
    .await;
}

#[tokio::test]
async fn outage_keeps_local_delivery() {
    timed(async {
        let mut f = cluster3().await;
        f.bus.set_down(true);
        let result = f.nodes[0].io.emit("m", "down").await;
        assert!(result.is_err(), "the lost remote part is reported");
        f.clients[0].expect("m").await;
        f.clients[1].expect_nothing().await;
        assert!(f.nodes[0].cluster.metrics_snapshot().publish_errors >= 1);
        assert!(f.nodes[0].io.fetch_sockets().await.is_err());

        f.bus.set_down(false);
        f.nodes[0].io.emit("m", "up").await.unwrap();
        for c in &mut f.clients {
            assert_eq!(c.expect("m").await, vec![json!("up")]);
        }
    })
    .await;
}

#[tokio::test]
async fn hostile_bytes_on_every_channel() {
    timed(async {
        let mut f = cluster3().await;
        f.clients[1].join("r").await;
        eventually(async || f.nodes[1].io.within("r").sockets().len() == 1).await;
        let attacker = f.bus.connect();
        let ch = Channels::new("socket.io", "/");
        let channels = [
            ch.broadcast.clone(),
            ch.broadcast_channel(&["r".into()]),
            ch.request.clone(),
            ch.response.clone(),
            ch.response_for("someone"),
        ];
        for channel in &channels {
            for payload in common::hostile_payloads() {
                attacker.publish(channel.clone(), payload).await.unwrap();
            }
        }
        // Nothing wrong was delivered, every node still works.
        for c in &mut f.clients {
            c.expect_nothing().await;
        }
        f.nodes[2].io.emit("still", "ok").await.unwrap();
        for c in &mut f.clients {
            assert_eq!(c.expect("still").await, vec![json!("ok")]);
        }
        assert_eq!(f.nodes[0].cluster.server_count("/").await.unwrap(), 3);
        assert!(f.nodes[0].cluster.metrics_snapshot().decode_errors > 10);
    })
    .await;
}
