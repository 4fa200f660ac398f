//! Mixed cluster: a Node.js socket.io 4.8 server with
//! @socket.io/redis-adapter 8.3, @socket.io/redis-emitter and
//! socket.io-client sockets, next to in-process Rust nodes, on a real Redis.
//! Needs `node`/`npm` (the peer installs its pinned packages on first run)
//! and `redis-server`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{TestClient, eventually, peer::Peer, redis::RedisServer, start_node};
use futures::StreamExt;
use roomcast_adapter::{AdapterConfig, Cluster};
use serde_json::{Value, json};
use socketioxide::socket::Sid;
use tokio::sync::mpsc;

fn config(redis: &RedisServer) -> AdapterConfig {
    AdapterConfig {
        redis_url: redis.url(),
        request_timeout: Duration::from_secs(2),
        ..AdapterConfig::default()
    }
}

async fn timed<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(90), f).await.expect("test took too long")
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn node_and_rust_servers_share_a_cluster() {
    timed(async {
        let redis = RedisServer::start();
        let rust = [
            start_node(Cluster::connect(config(&redis)).await.unwrap()).await,
            start_node(Cluster::connect(config(&redis)).await.unwrap()).await,
        ];
        let mut peer = Peer::start(&redis.url()).await;
        let node_url = peer.url();
        let n0 = peer.client("n0", &node_url).await;
        let r1 = peer.client("r1", &format!("http://{}/", rust[0].addr)).await;
        let r2 = peer.client("r2", &format!("http://{}/", rust[1].addr)).await;
        peer.drain().await;

        assert_eq!(rust[0].cluster.server_count("/").await.unwrap(), 3);
        assert_eq!(peer.cmd(json!({"cmd": "io", "op": "serverCount"})).await, json!(3));

        // Broadcasts both ways.
        peer.cmd(json!({"cmd": "io", "op": "emit", "event": "from-node", "args": [1, {"a": "b"}]})).await;
        let events = peer.drain().await;
        assert_eq!(Peer::receivers(&events, "from-node"), names(&["n0", "r1", "r2"]));
        assert!(events.iter().all(|e| e["event"] != "from-node" || e["args"] == json!([1, {"a": "b"}])));
        rust[0].io.emit("from-rust", &json!([true])).await.unwrap();
        assert_eq!(Peer::receivers(&peer.drain().await, "from-rust"), names(&["n0", "r1", "r2"]));

        // Rooms and except, including socket-id rooms on either side.
        peer.cmd(json!({"cmd": "clientEmit", "name": "r2", "event": "join", "args": ["room"]})).await;
        peer.cmd(json!({"cmd": "clientEmit", "name": "n0", "event": "join", "args": ["room"]})).await;
        eventually(async || rust[1].io.within("room").sockets().len() == 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        rust[0].io.to("room").emit("to-room", "x").await.unwrap();
        assert_eq!(Peer::receivers(&peer.drain().await, "to-room"), names(&["n0", "r2"]));
        peer.cmd(json!({"cmd": "io", "op": "emit", "rooms": ["room"], "except": [r2], "event": "room-but", "args": []})).await;
        assert_eq!(Peer::receivers(&peer.drain().await, "room-but"), names(&["n0"]));
        peer.cmd(json!({"cmd": "io", "op": "emit", "rooms": [r1], "event": "direct", "args": []})).await;
        assert_eq!(Peer::receivers(&peer.drain().await, "direct"), names(&["r1"]));
        rust[1].io.to(n0.clone()).emit("direct2", "y").await.unwrap();
        assert_eq!(Peer::receivers(&peer.drain().await, "direct2"), names(&["n0"]));
        peer.cmd(json!({"cmd": "io", "op": "emit", "except": [n0], "volatile": true, "event": "vol", "args": []})).await;
        assert_eq!(Peer::receivers(&peer.drain().await, "vol"), names(&["r1", "r2"]));

        // Acks: every client answers with its name.
        let mut acks: Vec<String> = serde_json::from_value(
            peer.cmd(json!({"cmd": "io", "op": "emitWithAck", "timeout": 3000, "event": "ask", "args": []})).await,
        )
        .unwrap();
        acks.sort();
        assert_eq!(acks, names(&["n0", "r1", "r2"]));
        let stream = rust[0].io.timeout(Duration::from_secs(3)).emit_with_ack::<_, String>("ask", &()).await.unwrap();
        let mut acks: Vec<String> = stream.map(|(_, r)| r.unwrap()).collect().await;
        acks.sort();
        assert_eq!(acks, names(&["n0", "r1", "r2"]));
        peer.drain().await;

        // fetchSockets / rooms.
        let fetched = peer.cmd(json!({"cmd": "io", "op": "fetchSockets", "rooms": ["room"]})).await;
        let mut ids: Vec<&str> = fetched.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        ids.sort_unstable();
        let mut expected = vec![n0.as_str(), r2.as_str()];
        expected.sort_unstable();
        assert_eq!(ids, expected);
        let r2_entry = fetched.as_array().unwrap().iter().find(|s| s["id"] == r2.as_str()).unwrap();
        assert_eq!(r2_entry["rooms"], json!([r2, "room"]));
        let all_rooms = peer.cmd(json!({"cmd": "io", "op": "allRooms"})).await;
        for room in ["room", r1.as_str(), r2.as_str(), n0.as_str()] {
            assert!(all_rooms.as_array().unwrap().contains(&json!(room)), "{room} in {all_rooms}");
        }
        // The Node socket has a 20-character id: socketioxide cannot hold it.
        let from_rust = rust[0].io.fetch_sockets().await.unwrap();
        let mut rust_ids: Vec<String> = from_rust.iter().map(|s| s.data().id.to_string()).collect();
        rust_ids.sort();
        let mut expected = vec![r1.clone(), r2.clone()];
        expected.sort();
        assert_eq!(rust_ids, expected);
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
        rust[0].io.to("k").leave("k").await.unwrap();
        eventually(async || {
            let got = peer.cmd(json!({"cmd": "io", "op": "fetchSockets", "rooms": ["k"]})).await;
            got.as_array().unwrap().is_empty()
        })
        .await;

        // serverSideEmit both ways.
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
        let answers = peer.cmd(json!({"cmd": "io", "op": "serverSideEmitWithAck", "event": "sse", "args": [7]})).await;
        assert_eq!(answers, json!(["rust", "rust"]));
        assert_eq!(rx.recv().await.unwrap(), ("sse".to_owned(), vec![json!(7)]));
        assert_eq!(rx.recv().await.unwrap(), ("sse".to_owned(), vec![json!(7)]));
        let mut answers = rust[0].cluster.server_side_emit_with_ack("/", "sse", vec![json!("q")]).await.unwrap();
        answers.sort_by_key(Value::to_string);
        assert_eq!(answers, vec![json!("node"), json!("rust")]);
        let node_saw = peer.next_event().await;
        assert_eq!(node_saw, json!({"type": "server-event", "event": "sse", "args": ["q"]}));
        assert_eq!(rx.recv().await.unwrap(), ("sse".to_owned(), vec![json!("q")]));
        peer.cmd(json!({"cmd": "io", "op": "serverSideEmit", "event": "sse", "args": ["plain"]})).await;
        assert_eq!(rx.recv().await.unwrap(), ("sse".to_owned(), vec![json!("plain")]));
        rust[1].cluster.server_side_emit("/", "sse", vec![json!(null)]).await.unwrap();
        assert_eq!(peer.next_event().await["args"], json!([null]));

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

#[tokio::test]
async fn redis_emitter_drives_rust_nodes() {
    timed(async {
        let redis = RedisServer::start();
        let rust = [
            start_node(Cluster::connect(config(&redis)).await.unwrap()).await,
            start_node(Cluster::connect(config(&redis)).await.unwrap()).await,
        ];
        let mut peer = Peer::start(&redis.url()).await;
        let mut a = TestClient::connect(rust[0].addr).await;
        let mut b = TestClient::connect(rust[1].addr).await;
        b.join("room").await;
        eventually(async || rust[1].io.within("room").sockets().len() == 1).await;

        let emit = |extra: Value| {
            let mut op = json!({"cmd": "emitter", "op": "emit", "args": ["v", {"bin": false}]});
            for (k, v) in extra.as_object().unwrap() {
                op[k] = v.clone();
            }
            op
        };
        peer.cmd(emit(json!({"event": "all"}))).await;
        assert_eq!(a.expect("all").await, vec![json!("v"), json!({"bin": false})]);
        b.expect("all").await;
        peer.cmd(emit(json!({"event": "room", "rooms": ["room"]}))).await;
        b.expect("room").await;
        a.expect_nothing().await;
        peer.cmd(emit(json!({"event": "sid", "rooms": [a.id]}))).await;
        a.expect("sid").await;
        b.expect_nothing().await;
        peer.cmd(emit(json!({"event": "except", "except": ["room"]}))).await;
        a.expect("except").await;
        b.expect_nothing().await;
        peer.cmd(emit(json!({"event": "vol", "volatile": true}))).await;
        a.expect("vol").await;
        b.expect("vol").await;

        peer.cmd(json!({"cmd": "emitter", "op": "socketsJoin", "rooms": [a.id], "room": "ej"}))
            .await;
        eventually(async || rust[0].io.within("ej").sockets().len() == 1).await;
        peer.cmd(json!({"cmd": "emitter", "op": "socketsLeave", "rooms": ["ej"], "room": "ej"}))
            .await;
        eventually(async || rust[0].io.within("ej").sockets().is_empty()).await;

        let (tx, mut rx) = mpsc::unbounded_channel();
        rust[1].cluster.on_server_event("/", move |ev| {
            let _ = tx.send((ev.event.clone(), ev.args.clone(), ev.ack.is_some()));
        });
        peer.cmd(
            json!({"cmd": "emitter", "op": "serverSideEmit", "event": "hey", "args": [1, "two"]}),
        )
        .await;
        assert_eq!(
            rx.recv().await.unwrap(),
            ("hey".to_owned(), vec![json!(1), json!("two")], false)
        );

        peer.cmd(json!({"cmd": "emitter", "op": "disconnectSockets", "rooms": ["room"]})).await;
        eventually(async || rust[1].io.sockets().is_empty()).await;
        assert!(rust[0].io.get_socket(a.id.parse::<Sid>().unwrap()).is_some());
        for node in &rust {
            node.cluster.close().await;
        }
    })
    .await;
}
