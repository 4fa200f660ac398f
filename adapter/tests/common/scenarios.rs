//! Scenarios that classic and sharded mode share, written once and run by
//! the tests of both modes; what only one mode has is passed in.

use std::time::Duration;

use futures::StreamExt;
use roomcast_adapter::{
    driver::{Driver, FredDriver},
    proto::ShardedChannels,
};
use roomcast_testkit::RedisCluster;
use serde_json::{Value, json};
use socketioxide::operators::BroadcastOperators;
use tokio::sync::mpsc;

use super::{A, Node, TestClient, eventually, names, peer::Peer};

/// A broadcast from server 0 reaches every client exactly once.
pub async fn broadcast_reaches_every_client_once<D: Driver>(
    nodes: &[Node<D>],
    clients: &mut [TestClient],
) {
    nodes[0].io.emit("msg", &json!({"n": 1})).await.expect("emit");
    for c in clients {
        assert_eq!(c.expect("msg").await, vec![json!({"n": 1})]);
        c.expect_nothing().await;
    }
}

/// fetchSockets on `node` finds every client, each once.
pub async fn fetch_finds_every_client<D: Driver>(node: &Node<D>, clients: &[TestClient]) {
    let fetched = node.io.fetch_sockets().await.expect("fetch_sockets");
    let mut ids: Vec<String> = fetched.iter().map(|s| s.data().id.to_string()).collect();
    ids.sort();
    let mut expected: Vec<String> = clients.iter().map(|c| c.id.clone()).collect();
    expected.sort();
    assert_eq!(ids, expected);
}

/// Server 0 makes client 1 join `x`, which a broadcast from server 2 then
/// reaches; rooms lists `x` and every socket id; fetchSockets finds every
/// client, and from servers 0 and 2 the one in `x`, usable from there; then
/// server 2 makes it leave. `joined` runs once server 1 has seen the join.
pub async fn join_fetch_leave_across_nodes<D: Driver>(
    nodes: &[Node<D>],
    clients: &mut [TestClient],
    joined: impl AsyncFnOnce(),
) {
    let c1 = clients[1].id.clone();
    nodes[0].io.to(c1.clone()).join("x").await.expect("join");
    eventually(async || nodes[1].io.within("x").sockets().len() == 1).await;
    joined().await;
    nodes[2].io.to("x").emit("in-x", &1).await.expect("emit");
    clients[1].expect("in-x").await;

    let rooms = nodes[0].io.rooms().await.expect("rooms");
    assert!(rooms.iter().any(|r| r == "x"));
    for c in clients.iter() {
        assert!(rooms.iter().any(|r| r == c.id.as_str()), "socket id room listed");
    }
    let rooms_x = nodes[2].io.to("x").rooms().await.expect("rooms");
    assert!(rooms_x.iter().any(|r| r == c1.as_str()));

    fetch_finds_every_client(&nodes[0], clients).await;
    for from in [0, 2] {
        let in_x = nodes[from].io.to("x").fetch_sockets().await.expect("fetch_sockets");
        assert_eq!(in_x.len(), 1);
        // A fetched remote socket can be used.
        in_x[0].emit("remote", "hi").await.expect("emit");
        clients[1].expect("remote").await;
    }

    nodes[2].io.to("x").leave("x").await.expect("leave");
    eventually(async || nodes[1].io.within("x").sockets().is_empty()).await;
}

/// serverSideEmit from server 0 reaches servers 1 and 2 with its arguments;
/// with an ack, from server 1, servers 0 and 2 each answer once.
pub async fn server_side_emit_reaches_the_others<D: Driver>(nodes: &[Node<D>]) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    for (i, node) in nodes.iter().enumerate() {
        let tx = tx.clone();
        node.cluster.on_server_event("/", move |ev| {
            let _ = tx.send((i, ev.event.clone(), ev.args.clone()));
            if let Some(ack) = ev.ack {
                ack.send(json!({ "node": i }));
            }
        });
    }
    nodes[0].cluster.server_side_emit("/", "ping", vec![json!(1), json!("a")]).await.expect("sse");
    let mut got = vec![rx.recv().await.expect("event"), rx.recv().await.expect("event")];
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got,
        vec![
            (1, "ping".into(), vec![json!(1), json!("a")]),
            (2, "ping".into(), vec![json!(1), json!("a")])
        ]
    );
    let mut answers =
        nodes[1].cluster.server_side_emit_with_ack("/", "count", vec![]).await.expect("acks");
    answers.sort_by_key(|a| a["node"].as_u64());
    assert_eq!(answers, vec![json!({"node": 0}), json!({"node": 2})]);
}

/// A broadcast with acks that no client answers ends as soon as every
/// server has reported its client count, long before its 10 s timeout.
pub async fn acks_end_on_client_counts<D: Driver>(op: BroadcastOperators<A<D>>) {
    let started = tokio::time::Instant::now();
    let acks: Vec<_> = op
        .timeout(Duration::from_secs(10))
        .emit_with_ack::<_, Value>("q", &1)
        .await
        .expect("emit")
        .collect()
        .await;
    assert!(acks.is_empty());
    assert!(started.elapsed() < Duration::from_secs(3), "waited for the timeout");
}

/// Three servers with a client each: broadcast to all, to a room client 2
/// joins, to client 1's id; fetchSockets and serverSideEmit. `room_ready`
/// waits until the mode routes the room to server 2.
pub async fn three_servers<D: Driver>(
    nodes: &[Node<D>],
    clients: &mut [TestClient],
    room_ready: impl AsyncFnOnce(&str),
) {
    assert_eq!(nodes[0].cluster.server_count("/").await.expect("count"), 3);
    broadcast_reaches_every_client_once(nodes, clients).await;
    clients[2].join("room").await;
    room_ready("room").await;
    nodes[0].io.to("room").emit("r", "y").await.expect("emit");
    clients[2].expect("r").await;
    clients[0].expect_nothing().await;
    clients[1].expect_nothing().await;
    nodes[0].io.to(clients[1].id.clone()).emit("direct", "z").await.expect("emit");
    clients[1].expect("direct").await;
    clients[0].expect_nothing().await;
    fetch_finds_every_client(&nodes[0], clients).await;
    server_side_emit_reaches_the_others(nodes).await;
}

/// The hostile payloads, then `extra`, sent by `publish` on each of
/// `channels`, deliver nothing and break nothing: the last server still
/// reaches every client, and server 0 counted the bad messages.
pub async fn hostile_bytes_are_dropped<D: Driver>(
    nodes: &[Node<D>],
    clients: &mut [TestClient],
    channels: &[String],
    extra: &[Vec<u8>],
    publish: impl AsyncFn(String, Vec<u8>),
) {
    for channel in channels {
        for payload in super::hostile_payloads().into_iter().chain(extra.iter().cloned()) {
            publish(channel.clone(), payload).await;
        }
    }
    for c in clients.iter_mut() {
        c.expect_nothing().await;
    }
    nodes.last().expect("a server").io.emit("still", "ok").await.expect("emit");
    for c in clients {
        assert_eq!(c.expect("still").await, vec![json!("ok")]);
    }
    assert!(nodes[0].cluster.metrics_snapshot().decode_errors > 10);
}

/// The adapter Node's server runs next to the Roomcast servers.
#[derive(Clone, Copy)]
pub enum Mixed<'a> {
    /// `@socket.io/redis-adapter` on one Redis.
    Classic,
    /// `createShardedAdapter` in dynamic mode on this Redis Cluster.
    Sharded(&'a RedisCluster),
}

/// A Node server (`peer`, client n0) and two Roomcast servers (`rust`,
/// clients r1 and r2) in one cluster: every operation both ways.
pub async fn node_and_rust_servers(rust: &[Node<FredDriver>], peer: &mut Peer, mode: Mixed<'_>) {
    let node_url = peer.url();
    let n0 = peer.client("n0", &node_url).await;
    let r1 = peer.client("r1", &format!("http://{}/", rust[0].addr)).await;
    let r2 = peer.client("r2", &format!("http://{}/", rust[1].addr)).await;
    peer.drain().await;

    assert_eq!(rust[0].cluster.server_count("/").await.unwrap(), 3);
    assert_eq!(peer.cmd(json!({"cmd": "io", "op": "serverCount"})).await, json!(3));

    // Broadcasts both ways.
    peer.cmd(json!({"cmd": "io", "op": "emit", "event": "from-node", "args": [1, {"a": "b"}]}))
        .await;
    let events = peer.drain().await;
    assert_eq!(Peer::receivers(&events, "from-node"), names(&["n0", "r1", "r2"]));
    assert!(
        events.iter().all(|e| e["event"] != "from-node" || e["args"] == json!([1, {"a": "b"}]))
    );
    rust[0].io.emit("from-rust", &json!([true])).await.unwrap();
    assert_eq!(Peer::receivers(&peer.drain().await, "from-rust"), names(&["n0", "r1", "r2"]));

    // Rooms and except, including socket-id rooms on either side.
    peer.cmd(json!({"cmd": "clientEmit", "name": "r2", "event": "join", "args": ["room"]})).await;
    peer.cmd(json!({"cmd": "clientEmit", "name": "n0", "event": "join", "args": ["room"]})).await;
    match mode {
        Mixed::Classic => {
            eventually(async || rust[1].io.within("room").sockets().len() == 1).await;
            // n0's join inside the Node server cannot be watched from here.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Mixed::Sharded(redis) => {
            // Room broadcasts travel on the room channel: Node (on n0's
            // join) and rust[1] (on r2's) subscribe to it.
            let room = ShardedChannels::new("socket.io", "/").room("room");
            eventually(async || redis.shardnumsub(redis.owner(&room), &room) == 2).await;
        }
    }
    rust[0].io.to("room").emit("to-room", "x").await.unwrap();
    assert_eq!(Peer::receivers(&peer.drain().await, "to-room"), names(&["n0", "r2"]));
    peer.cmd(
        json!({"cmd": "io", "op": "emit", "rooms": ["room"], "event": "node-room", "args": []}),
    )
    .await;
    assert_eq!(Peer::receivers(&peer.drain().await, "node-room"), names(&["n0", "r2"]));
    peer.cmd(json!({"cmd": "io", "op": "emit", "rooms": ["room"], "except": [r2], "event": "room-but", "args": []})).await;
    assert_eq!(Peer::receivers(&peer.drain().await, "room-but"), names(&["n0"]));
    // Node to a Roomcast socket (in sharded mode on its own room channel).
    peer.cmd(json!({"cmd": "io", "op": "emit", "rooms": [r1], "event": "direct", "args": []}))
        .await;
    assert_eq!(Peer::receivers(&peer.drain().await, "direct"), names(&["r1"]));
    // Roomcast to a Node socket (20 characters: in sharded mode on the main
    // channel).
    rust[1].io.to(n0.clone()).emit("direct2", "y").await.unwrap();
    assert_eq!(Peer::receivers(&peer.drain().await, "direct2"), names(&["n0"]));
    peer.cmd(json!({"cmd": "io", "op": "emit", "except": [n0], "volatile": true, "event": "vol", "args": []})).await;
    assert_eq!(Peer::receivers(&peer.drain().await, "vol"), names(&["r1", "r2"]));

    // Acks: every client answers with its name.
    let mut acks: Vec<String> = serde_json::from_value(
        peer.cmd(
            json!({"cmd": "io", "op": "emitWithAck", "timeout": 3000, "event": "ask", "args": []}),
        )
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

    // fetchSockets / rooms both ways.
    let fetched = peer.cmd(json!({"cmd": "io", "op": "fetchSockets", "rooms": ["room"]})).await;
    let mut ids: Vec<&str> =
        fetched.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut expected = vec![n0.as_str(), r2.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let r2_entry = fetched.as_array().unwrap().iter().find(|s| s["id"] == r2.as_str()).unwrap();
    assert_eq!(r2_entry["rooms"], json!([r2, "room"]));
    if matches!(mode, Mixed::Classic) {
        // The sharded protocol has no ALL_ROOMS request.
        let all_rooms = peer.cmd(json!({"cmd": "io", "op": "allRooms"})).await;
        for room in ["room", r1.as_str(), r2.as_str(), n0.as_str()] {
            assert!(all_rooms.as_array().unwrap().contains(&json!(room)), "{room} in {all_rooms}");
        }
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

    // serverSideEmit both ways, with and without acks.
    let (tx, mut rx) = mpsc::unbounded_channel();
    for node in rust {
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
}
