//! Mixed cluster: a Node.js socket.io 4.8 server with
//! @socket.io/redis-adapter 8.3, @socket.io/redis-emitter and
//! socket.io-client sockets, next to in-process Rust nodes, on a real Redis.
//! Needs `node`/`npm` (the peer installs its pinned packages on first run)
//! and `redis-server`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{
    TestClient, close_all, eventually,
    peer::Peer,
    redis_nodes,
    scenarios::{self, Mixed},
    timed,
};
use roomcast_adapter::{AdapterConfig, SocketDetails};
use roomcast_testkit::Redis;
use serde_json::{Value, json};
use socketioxide::socket::Sid;
use tokio::sync::mpsc;

fn config(redis: &Redis) -> AdapterConfig {
    AdapterConfig {
        redis_url: redis.url(),
        request_timeout: Duration::from_secs(2),
        ..AdapterConfig::default()
    }
}

#[tokio::test]
async fn node_and_rust_servers_share_a_cluster() {
    timed(90, async {
        let redis = Redis::start();
        let rust = redis_nodes(&config(&redis), 2).await;
        let mut peer = Peer::start(&redis.url()).await;
        scenarios::node_and_rust_servers(&rust, &mut peer, Mixed::Classic).await;
        close_all(&rust).await;
    })
    .await;
}

#[tokio::test]
async fn redis_emitter_drives_rust_nodes() {
    timed(90, async {
        let redis = Redis::start();
        let rust = redis_nodes(&config(&redis), 2).await;
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
        close_all(&rust).await;
    })
    .await;
}

/// The keys of a JSON object, in the order they come.
fn keys(value: &Value) -> Vec<&str> {
    value.as_object().expect("an object").keys().map(String::as_str).collect()
}

#[tokio::test]
async fn object_keys_keep_their_order_both_ways() {
    timed(90, async {
        let redis = Redis::start();
        let rust = redis_nodes(&config(&redis), 1).await;
        let mut peer = Peer::start(&redis.url()).await;
        let mut r0 = TestClient::connect(rust[0].addr).await;
        peer.client("n0", &peer.url()).await;
        let payload = json!({"z": 1, "a": {"y": 2, "b": 3}, "m": [{"q": 4, "c": 5}]});

        // Node to a Roomcast client, through the msgpack broadcast.
        peer.cmd(json!({"cmd": "io", "op": "emit", "event": "ord", "args": [payload]})).await;
        let got = r0.expect("ord").await;
        assert_eq!(keys(&got[0]), ["z", "a", "m"]);
        assert_eq!(keys(&got[0]["a"]), ["y", "b"]);
        assert_eq!(keys(&got[0]["m"][0]), ["q", "c"]);
        peer.drain().await;

        // Roomcast to a Node client.
        rust[0].io.emit("ord2", &payload).await.unwrap();
        let events = peer.drain().await;
        let got = events.iter().find(|e| e["event"] == "ord2").expect("ord2 reached Node");
        assert_eq!(keys(&got["args"][0]), ["z", "a", "m"]);
        assert_eq!(keys(&got["args"][0]["a"]), ["y", "b"]);
        assert_eq!(keys(&got["args"][0]["m"][0]), ["q", "c"]);
        close_all(&rust).await;
    })
    .await;
}

#[tokio::test]
async fn node_fetch_sockets_shows_the_handshake_and_data_of_roomcast_sockets() {
    timed(90, async {
        let redis = Redis::start();
        let rust = redis_nodes(&config(&redis), 1).await;
        rust[0].cluster.on_socket_details(|ns, sid| {
            Some(SocketDetails {
                handshake: json!({
                    "headers": {"user-agent": "t"}, "time": "now", "address": "127.0.0.1",
                    "xdomain": false, "secure": false, "issued": 1, "url": "/socket.io/",
                    "query": {"EIO": "4"}, "auth": {"login": "alice"}, "nsp": ns,
                }),
                data: json!({"user": "alice", "via": "password", "node": "n1", "sid": sid.to_string()}),
            })
        });
        let mut peer = Peer::start(&redis.url()).await;
        let r0 = TestClient::connect(rust[0].addr).await;

        let fetched = peer.cmd(json!({"cmd": "io", "op": "fetchSockets"})).await;
        let socket = fetched
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == r0.id.as_str())
            .expect("the Roomcast socket is fetched");
        assert_eq!(
            keys(&socket["handshake"]),
            ["headers", "time", "address", "xdomain", "secure", "issued", "url", "query", "auth", "nsp"]
        );
        assert_eq!(socket["handshake"]["auth"], json!({"login": "alice"}));
        assert_eq!(socket["handshake"]["nsp"], "/");
        assert_eq!(
            socket["data"],
            json!({"user": "alice", "via": "password", "node": "n1", "sid": r0.id})
        );
        assert_eq!(keys(&socket["data"]), ["user", "via", "node", "sid"]);
        close_all(&rust).await;
    })
    .await;
}
