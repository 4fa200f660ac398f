//! Sharded mode and classic mode on a real three-master Redis Cluster, a
//! mixed cluster with Node's `createShardedAdapter`, and resubscription
//! after a master restarts. Each test starts its own cluster (Redis 7+).
#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::{Node, TestClient, eventually, peer::Peer, redis_cluster::RedisCluster, start_node};
use futures::StreamExt;
use roomcast_adapter::{
    AdapterConfig, AdapterMode, Cluster, SubscriptionMode, driver::FredDriver,
    proto::ShardedChannels,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

fn sharded(redis: &RedisCluster, mode: SubscriptionMode) -> AdapterConfig {
    AdapterConfig {
        redis_url: redis.url(),
        mode: AdapterMode::Sharded { subscription_mode: mode },
        request_timeout: Duration::from_secs(3),
        reconnect_max_delay: Duration::from_millis(300),
        room_sync_interval: Duration::from_millis(20),
        ..AdapterConfig::default()
    }
}

async fn timed<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(120), f).await.expect("test took too long")
}

async fn nodes(config: &AdapterConfig, n: usize) -> Vec<Node<FredDriver>> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(start_node(Cluster::connect(config.clone()).await.unwrap()).await);
    }
    nodes
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn slot_of(channel: &str) -> u16 {
    fred::util::redis_keyslot(channel.as_bytes())
}

#[tokio::test]
async fn sharded_nodes_on_a_redis_cluster() {
    timed(async {
        let redis = RedisCluster::start();
        let config = sharded(&redis, SubscriptionMode::Dynamic);
        let nodes = nodes(&config, 3).await;
        let mut clients = Vec::new();
        for node in &nodes {
            clients.push(TestClient::connect(node.addr).await);
        }
        // Only the owner of the main channel's slot has subscribers; the
        // count is summed over every master.
        let ch = ShardedChannels::new("socket.io", "/");
        let owner = redis.owner(&ch.main);
        for &port in &redis.ports {
            let expected = if port == owner { 3 } else { 0 };
            assert_eq!(redis.shardnumsub(port, &ch.main), expected, "SHARDNUMSUB on {port}");
        }
        assert_eq!(nodes[0].cluster.server_count("/").await.unwrap(), 3);
        // No classic channel in sharded mode.
        for &port in &redis.ports {
            assert_eq!(redis.calls(port, "subscribe") + redis.calls(port, "psubscribe"), 0);
        }

        nodes[1].io.emit("all", "x").await.unwrap();
        for c in &mut clients {
            assert_eq!(c.expect("all").await, vec![json!("x")]);
        }
        clients[2].join("room").await;
        eventually(async || {
            redis.shardnumsub(redis.owner(&ch.room("room")), &ch.room("room")) == 1
        })
        .await;
        nodes[0].io.to("room").emit("r", "y").await.unwrap();
        clients[2].expect("r").await;
        clients[0].expect_nothing().await;
        clients[1].expect_nothing().await;
        nodes[0].io.to(clients[1].id.clone()).emit("direct", "z").await.unwrap();
        clients[1].expect("direct").await;
        clients[0].expect_nothing().await;

        assert_eq!(nodes[0].io.fetch_sockets().await.unwrap().len(), 3);
        for (i, node) in nodes.iter().enumerate() {
            node.cluster.on_server_event("/", move |ev| {
                if let Some(ack) = ev.ack {
                    ack.send(json!(i));
                }
            });
        }
        let mut answers =
            nodes[0].cluster.server_side_emit_with_ack("/", "ping", vec![]).await.unwrap();
        answers.sort_by_key(|a| a.as_u64());
        assert_eq!(answers, vec![json!(1), json!(2)]);
        // Messages went to the shards, none to the classic channels.
        let spublished: u64 = redis.ports.iter().map(|p| redis.calls(*p, "spublish")).sum();
        let published: u64 = redis.ports.iter().map(|p| redis.calls(*p, "publish")).sum();
        assert!(spublished >= 5 && published == 0, "spublish {spublished}, publish {published}");
        assert_eq!(nodes[0].cluster.metrics_snapshot().decode_errors, 0);
        for node in &nodes {
            node.cluster.close().await;
        }
    })
    .await;
}

#[tokio::test]
async fn classic_mode_on_a_redis_cluster() {
    timed(async {
        let redis = RedisCluster::start();
        // A plain URL plus the flag connects as a cluster client too.
        let config = AdapterConfig {
            redis_url: redis.seed(),
            cluster: true,
            request_timeout: Duration::from_secs(3),
            ..AdapterConfig::default()
        };
        let nodes = nodes(&config, 3).await;
        let mut clients = Vec::new();
        for node in &nodes {
            clients.push(TestClient::connect(node.addr).await);
        }
        // Each server subscribes on the master of its client id's slot:
        // NUMSUB is only right summed over every master.
        let per_node: Vec<u64> = redis
            .ports
            .iter()
            .map(|p| {
                let out = std::process::Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "pubsub", "numsub", "socket.io-request#/#"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
            })
            .collect();
        assert_eq!(per_node.iter().sum::<u64>(), 3, "{per_node:?}");
        assert_eq!(nodes[0].cluster.server_count("/").await.unwrap(), 3);

        nodes[2].io.emit("all", "x").await.unwrap();
        for c in &mut clients {
            c.expect("all").await;
        }
        clients[0].join("room").await;
        eventually(async || nodes[0].io.within("room").sockets().len() == 1).await;
        nodes[1].io.to("room").emit("r", "y").await.unwrap();
        clients[0].expect("r").await;
        clients[1].expect_nothing().await;
        assert_eq!(nodes[1].io.fetch_sockets().await.unwrap().len(), 3);
        for node in &nodes {
            node.cluster.close().await;
        }
    })
    .await;
}

#[tokio::test]
async fn mixed_cluster_with_node_sharded_adapter() {
    timed(async {
        let redis = RedisCluster::start();
        let config = sharded(&redis, SubscriptionMode::Dynamic);
        let rust = nodes(&config, 2).await;
        let mut peer = Peer::start_sharded(&redis.seed(), "dynamic").await;
        let node_url = peer.url();
        let n0 = peer.client("n0", &node_url).await;
        let r1 = peer.client("r1", &format!("http://{}/", rust[0].addr)).await;
        let r2 = peer.client("r2", &format!("http://{}/", rust[1].addr)).await;
        peer.drain().await;

        assert_eq!(rust[0].cluster.server_count("/").await.unwrap(), 3);
        assert_eq!(peer.cmd(json!({"cmd": "io", "op": "serverCount"})).await, json!(3));

        // Broadcasts both ways, binary included.
        peer.cmd(json!({"cmd": "io", "op": "emit", "event": "from-node", "args": [1, {"a": "b"}]}))
            .await;
        let events = peer.drain().await;
        assert_eq!(Peer::receivers(&events, "from-node"), names(&["n0", "r1", "r2"]));
        assert!(events.iter().all(|e| e["event"] != "from-node" || e["args"] == json!([1, {"a": "b"}])));
        rust[0].io.emit("from-rust", &json!([true])).await.unwrap();
        assert_eq!(Peer::receivers(&peer.drain().await, "from-rust"), names(&["n0", "r1", "r2"]));

        // Room broadcasts on the room channels, both ways.
        peer.cmd(json!({"cmd": "clientEmit", "name": "r2", "event": "join", "args": ["room"]})).await;
        peer.cmd(json!({"cmd": "clientEmit", "name": "n0", "event": "join", "args": ["room"]})).await;
        let room = ShardedChannels::new("socket.io", "/").room("room");
        // Node (on n0's join) and rust[1] (on r2's) subscribe to it.
        eventually(async || redis.shardnumsub(redis.owner(&room), &room) == 2).await;
        rust[0].io.to("room").emit("to-room", "x").await.unwrap();
        assert_eq!(Peer::receivers(&peer.drain().await, "to-room"), names(&["n0", "r2"]));
        peer.cmd(json!({"cmd": "io", "op": "emit", "rooms": ["room"], "event": "node-room", "args": []}))
            .await;
        assert_eq!(Peer::receivers(&peer.drain().await, "node-room"), names(&["n0", "r2"]));
        // Node publishes to a Roomcast socket on its own room channel.
        peer.cmd(json!({"cmd": "io", "op": "emit", "rooms": [r1], "event": "direct", "args": []}))
            .await;
        assert_eq!(Peer::receivers(&peer.drain().await, "direct"), names(&["r1"]));
        // And Roomcast to a Node socket (20 characters) on the main channel.
        rust[1].io.to(n0.clone()).emit("direct2", "y").await.unwrap();
        assert_eq!(Peer::receivers(&peer.drain().await, "direct2"), names(&["n0"]));
        peer.cmd(json!({"cmd": "io", "op": "emit", "except": [n0], "event": "but", "args": []}))
            .await;
        assert_eq!(Peer::receivers(&peer.drain().await, "but"), names(&["r1", "r2"]));

        // Acks: every client answers with its name.
        let mut acks: Vec<String> = serde_json::from_value(
            peer.cmd(json!({"cmd": "io", "op": "emitWithAck", "timeout": 3000, "event": "ask", "args": []}))
                .await,
        )
        .unwrap();
        acks.sort();
        assert_eq!(acks, names(&["n0", "r1", "r2"]));
        let stream = rust[0]
            .io
            .timeout(Duration::from_secs(3))
            .emit_with_ack::<_, String>("ask", &())
            .await
            .unwrap();
        let mut acks: Vec<String> = stream.map(|(_, r)| r.unwrap()).collect().await;
        acks.sort();
        assert_eq!(acks, names(&["n0", "r1", "r2"]));
        peer.drain().await;

        // fetchSockets both ways.
        let fetched = peer.cmd(json!({"cmd": "io", "op": "fetchSockets", "rooms": ["room"]})).await;
        let ids: BTreeSet<&str> =
            fetched.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids, BTreeSet::from([n0.as_str(), r2.as_str()]));
        let r2_entry = fetched.as_array().unwrap().iter().find(|s| s["id"] == r2.as_str()).unwrap();
        assert_eq!(r2_entry["rooms"], json!([r2, "room"]));
        let from_rust = rust[0].io.fetch_sockets().await.unwrap();
        let rust_ids: BTreeSet<String> = from_rust.iter().map(|s| s.data().id.to_string()).collect();
        assert_eq!(rust_ids, BTreeSet::from([r1.clone(), r2.clone()]));
        let rust_rooms = rust[0].io.rooms().await.unwrap();
        assert!(rust_rooms.iter().any(|r| r == "room") && rust_rooms.iter().any(|r| r == n0.as_str()));

        // socketsJoin / socketsLeave both ways.
        peer.cmd(json!({"cmd": "io", "op": "socketsJoin", "rooms": [r2], "room": "j"})).await;
        eventually(async || rust[1].io.within("j").sockets().len() == 1).await;
        peer.cmd(json!({"cmd": "io", "op": "socketsLeave", "rooms": ["j"], "room": "j"})).await;
        eventually(async || rust[1].io.within("j").sockets().is_empty()).await;
        rust[0].io.to(n0.clone()).join("k").await.unwrap();
        eventually(async || {
            let got = peer.cmd(json!({"cmd": "io", "op": "fetchSockets", "rooms": ["k"]})).await;
            got.as_array().unwrap().len() == 1
        })
        .await;

        // serverSideEmit both ways, with acks.
        let (tx, mut rx) = mpsc::unbounded_channel();
        for node in &rust {
            let tx = tx.clone();
            node.cluster.on_server_event("/", move |ev| {
                let _ = tx.send((ev.event.clone(), ev.args.clone()));
                if let Some(ack) = ev.ack {
                    ack.send(json!("rust"));
                }
            });
        }
        let answers = peer
            .cmd(json!({"cmd": "io", "op": "serverSideEmitWithAck", "event": "sse", "args": [7]}))
            .await;
        assert_eq!(answers, json!(["rust", "rust"]));
        assert_eq!(rx.recv().await.unwrap(), ("sse".to_owned(), vec![json!(7)]));
        assert_eq!(rx.recv().await.unwrap(), ("sse".to_owned(), vec![json!(7)]));
        let mut answers =
            rust[0].cluster.server_side_emit_with_ack("/", "sse", vec![json!("q")]).await.unwrap();
        answers.sort_by_key(Value::to_string);
        assert_eq!(answers, vec![json!("node"), json!("rust")]);
        let node_saw = peer.next_event().await;
        assert_eq!(node_saw, json!({"type": "server-event", "event": "sse", "args": ["q"]}));
        assert_eq!(rx.recv().await.unwrap(), ("sse".to_owned(), vec![json!("q")]));

        // disconnectSockets both ways.
        peer.cmd(json!({"cmd": "io", "op": "disconnectSockets", "rooms": [r2]})).await;
        let ev = peer.next_event().await;
        assert_eq!((ev["type"].as_str(), ev["client"].as_str()), (Some("disconnect"), Some("r2")));
        rust[0].io.to(n0).disconnect().await.unwrap();
        let ev = peer.next_event().await;
        assert_eq!((ev["type"].as_str(), ev["client"].as_str()), (Some("disconnect"), Some("n0")));
        assert_eq!(rust[0].cluster.metrics_snapshot().decode_errors, 0);
        for node in &rust {
            node.cluster.close().await;
        }
    })
    .await;
}

/// After a master restarts, each server subscribes again to the channels
/// that master owns, one SSUBSCRIBE per slot, and nothing is sent to the
/// masters that stayed up. With a hash-tagged prefix every channel of a
/// server shares one slot: one SSUBSCRIBE per server, whatever the number
/// of rooms.
#[tokio::test]
async fn restart_resubscribes_in_batches() {
    timed(async {
        let mut redis = RedisCluster::start();
        let config =
            AdapterConfig { key: "{rc}".into(), ..sharded(&redis, SubscriptionMode::Dynamic) };
        let nodes = nodes(&config, 2).await;
        let mut a = TestClient::connect(nodes[0].addr).await;
        let mut b = TestClient::connect(nodes[1].addr).await;
        let rooms = ["r1", "r2", "r3", "r4", "r5"];
        for room in rooms {
            b.join(room).await;
        }
        let ch = ShardedChannels::new("{rc}", "/");
        let owner = redis.owner(&ch.main);
        eventually(async || rooms.iter().all(|r| redis.shardnumsub(owner, &ch.room(r)) == 1)).await;
        let others: Vec<u16> = redis.ports.iter().copied().filter(|p| *p != owner).collect();
        let before: Vec<u64> = others.iter().map(|p| redis.calls(*p, "ssubscribe")).collect();

        redis.restart(owner);
        eventually(async || nodes.iter().all(|n| n.cluster.metrics_snapshot().reconnects > 0))
            .await;
        // b: main, own response, 5 rooms, its socket: 8 channels, 1 command.
        eventually(async || redis.shardnumsub(owner, &ch.room("r5")) == 1).await;
        eventually(async || redis.shardnumsub(owner, &ch.main) == 2).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(redis.calls(owner, "ssubscribe"), 2, "one SSUBSCRIBE per server");
        let after: Vec<u64> = others.iter().map(|p| redis.calls(*p, "ssubscribe")).collect();
        assert_eq!(before, after, "masters that stayed up are left alone");
        nodes[0].io.to("r3").emit("back", "ok").await.unwrap();
        b.expect("back").await;
        a.expect_nothing().await;
        for node in &nodes {
            node.cluster.close().await;
        }
    })
    .await;
}

/// Default prefix: channels spread over the slots. A restarted master gets
/// one SSUBSCRIBE per slot it owns among the server's channels.
#[tokio::test]
async fn restart_resubscribes_per_slot() {
    timed(async {
        let mut redis = RedisCluster::start();
        let config = sharded(&redis, SubscriptionMode::Dynamic);
        let node = start_node(Cluster::connect(config).await.unwrap()).await;
        let c = TestClient::connect(node.addr).await;
        let rooms: Vec<String> = (0..24).map(|i| format!("room-{i}")).collect();
        for room in &rooms {
            c.join(room).await;
        }
        let ch = ShardedChannels::new("socket.io", "/");
        eventually(async || {
            rooms.iter().all(|r| redis.shardnumsub(redis.owner(&ch.room(r)), &ch.room(r)) == 1)
        })
        .await;
        // The master owning the most of these channels is restarted.
        let mut channels: Vec<String> = rooms.iter().map(|r| ch.room(r)).collect();
        channels.push(ch.main.clone());
        channels.push(ch.room(&c.id));
        let victim = *redis
            .ports
            .iter()
            .max_by_key(|p| channels.iter().filter(|c| redis.owner(c) == **p).count())
            .unwrap();
        let owned: Vec<&String> = channels.iter().filter(|c| redis.owner(c) == victim).collect();
        let slots: BTreeSet<u16> = owned.iter().map(|c| slot_of(c)).collect();
        let others: Vec<u16> = redis.ports.iter().copied().filter(|p| *p != victim).collect();
        let before: Vec<u64> = others.iter().map(|p| redis.calls(*p, "ssubscribe")).collect();

        redis.restart(victim);
        eventually(async || node.cluster.metrics_snapshot().reconnects > 0).await;
        eventually(async || owned.iter().all(|c| redis.shardnumsub(victim, c) == 1)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The own response channel may live there too: at most one more.
        let calls = redis.calls(victim, "ssubscribe");
        let slots = slots.len() as u64;
        assert!(calls == slots || calls == slots + 1, "{calls} SSUBSCRIBE for {slots} slots");
        let after: Vec<u64> = others.iter().map(|p| redis.calls(*p, "ssubscribe")).collect();
        assert_eq!(before, after, "masters that stayed up are left alone");
        node.cluster.close().await;
    })
    .await;
}
