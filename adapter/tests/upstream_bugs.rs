//! Bug classes fixed upstream in socketioxide-redis, each checked against a
//! real Redis so they cannot come back here: one full inbound queue must not
//! stall the others; requests that a server never answers must not leak
//! their response handlers; the caller's ack timeout holds on the remote
//! servers; a socket in several targeted rooms gets a broadcast once.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{A, Node, TestClient, close_all, eventually, peer::Peer, redis_nodes, timed};
use futures::StreamExt;
use roomcast_adapter::{AdapterConfig, Cluster, driver::FredDriver};
use roomcast_testkit::Redis;
use serde_json::{Value, json};
use socketioxide::{SocketIo, extract::SocketRef};

fn config(redis: &Redis) -> AdapterConfig {
    AdapterConfig {
        redis_url: redis.url(),
        request_timeout: Duration::from_millis(500),
        ..AdapterConfig::default()
    }
}

/// A server that Redis counts (it listens on the request channel of `/`)
/// but that never answers anything.
struct SilentServer(Child);

impl SilentServer {
    fn start(redis: &Redis) -> Self {
        let child = Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), "subscribe", "socket.io-request#/#"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-cli");
        Self(child)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Socket.IO server with namespaces `/` (clients say hello as in
/// `common`) and `/slow`, on `cluster`.
async fn two_namespace_node(cluster: Cluster) -> (SocketIo<A<FredDriver>>, SocketAddr) {
    let (layer, io) =
        SocketIo::builder().with_adapter::<A<FredDriver>>(cluster.clone()).build_layer();
    io.ns("/", async |s: SocketRef<A<FredDriver>>| {
        let _ = s.emit("hello", &s.id.to_string());
    })
    .await
    .unwrap();
    io.ns("/slow", async || {}).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new().layer(layer)).await;
    });
    (io, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_namespace_queue_does_not_stall_the_others() {
    timed(60, async {
        let redis = Redis::start();
        let small = AdapterConfig { queue_capacity: 2, ..config(&redis) };
        let sender = Cluster::connect(small.clone()).await.unwrap();
        let receiver = Cluster::connect(small).await.unwrap();
        let (sender_io, _) = two_namespace_node(sender.clone()).await;
        let (_receiver_io, addr) = two_namespace_node(receiver.clone()).await;
        // `/slow` handles its events on the adapter's task: it stops reading.
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = std::sync::Mutex::new(release_rx);
        receiver.on_server_event("/slow", move |_| {
            let _ = release_rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
        });
        let mut client = TestClient::connect(addr).await;

        for i in 0..20 {
            sender.server_side_emit("/slow", "work", vec![json!(i)]).await.unwrap();
        }
        eventually(async || receiver.metrics_snapshot().dropped > 0).await;
        // `/` is served while `/slow` is stuck with a full queue.
        let started = Instant::now();
        sender_io.emit("still", &1).await.unwrap();
        assert_eq!(client.expect("still").await, vec![json!(1)]);
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        drop(release_tx);
        sender.close().await;
        receiver.close().await;
    })
    .await;
}

#[tokio::test]
async fn requests_a_server_never_answers_leave_no_handler_behind() {
    timed(60, async {
        let redis = Redis::start();
        let nodes = redis_nodes(&config(&redis), 1).await;
        let _silent = SilentServer::start(&redis);
        let cluster = &nodes[0].cluster;
        eventually(async || cluster.server_count("/").await.unwrap() == 2).await;

        // Server-side emit with acks, fetch and rooms: each times out.
        assert!(cluster.server_side_emit_with_ack("/", "ping", vec![]).await.is_err());
        assert!(nodes[0].io.fetch_sockets().await.is_err());
        assert!(nodes[0].io.rooms().await.is_err());
        assert_eq!(cluster.pending_requests(), 0, "after timeouts");

        // A broadcast with acks whose stream runs to its end...
        let stream = nodes[0]
            .io
            .timeout(Duration::from_millis(300))
            .emit_with_ack::<_, Value>("q", &1)
            .await
            .unwrap();
        let acks: Vec<_> = stream.collect().await;
        assert!(acks.is_empty());
        assert_eq!(cluster.pending_requests(), 0, "after an ack stream ended");

        // ...or is dropped by its caller before.
        let stream = nodes[0]
            .io
            .timeout(Duration::from_secs(30))
            .emit_with_ack::<_, Value>("q", &1)
            .await
            .unwrap();
        assert_eq!(cluster.pending_requests(), 1, "while it is alive");
        drop(stream);
        assert_eq!(cluster.pending_requests(), 0, "after the caller dropped it");
        close_all(&nodes).await;
    })
    .await;
}

#[tokio::test]
async fn the_callers_ack_timeout_holds_on_remote_servers() {
    timed(90, async {
        let redis = Redis::start();
        let asker = redis_nodes(&config(&redis), 1).await;
        // The remote server's own ack timeout is far shorter than the caller's.
        let remote_cluster = Cluster::connect(config(&redis)).await.unwrap();
        let (layer, remote_io) = SocketIo::builder()
            .ack_timeout(Duration::from_millis(200))
            .with_adapter::<A<FredDriver>>(remote_cluster.clone())
            .build_layer();
        remote_io.ns("/", async || {}).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let remote_addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, axum::Router::new().layer(layer)).await;
        });
        let mut peer = Peer::start(&redis.url()).await;
        // A client of the remote server that answers after 600 ms.
        peer.cmd(json!({"cmd": "client", "name": "late", "url": format!("http://{remote_addr}/"), "ackDelay": 600}))
            .await;

        let started = Instant::now();
        let acks: Vec<String> = asker[0]
            .io
            .timeout(Duration::from_secs(3))
            .emit_with_ack::<_, String>("ask", &())
            .await
            .unwrap()
            .map(|(_, r)| r.unwrap())
            .collect()
            .await;
        assert_eq!(acks, vec!["late".to_owned()], "the remote waited the caller's 3 s");
        assert!(started.elapsed() < Duration::from_secs(3), "ended on the last ack");

        // And a caller's short timeout ends the wait, whatever the remote's.
        let started = Instant::now();
        let acks: Vec<_> = asker[0]
            .io
            .timeout(Duration::from_millis(300))
            .emit_with_ack::<_, String>("ask", &())
            .await
            .unwrap()
            .collect()
            .await;
        assert!(acks.is_empty(), "{acks:?}");
        assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
        close_all(&asker).await;
        remote_cluster.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_socket_in_several_targeted_rooms_gets_a_broadcast_once() {
    timed(60, async {
        let redis = Redis::start();
        let nodes: Vec<Node<FredDriver>> = redis_nodes(&config(&redis), 2).await;
        let mut local = TestClient::connect(nodes[0].addr).await;
        let mut remote = TestClient::connect(nodes[1].addr).await;
        for client in [&local, &remote] {
            client.join("r1").await;
            client.join("r2").await;
        }
        eventually(async || nodes[0].io.within("r2").sockets().len() == 1).await;
        eventually(async || nodes[1].io.within("r2").sockets().len() == 1).await;

        nodes[0].io.to(["r1", "r2"]).emit("both", &1).await.unwrap();
        local.expect("both").await;
        remote.expect("both").await;
        // A room and the socket's own id name the same socket.
        let remote_id = remote.id.clone();
        nodes[0].io.to(["r1".to_owned(), remote_id]).emit("room-and-id", &2).await.unwrap();
        local.expect("room-and-id").await;
        remote.expect("room-and-id").await;
        // Broadcasts with acks too.
        let _acks = nodes[0]
            .io
            .to(["r1", "r2"])
            .timeout(Duration::from_millis(500))
            .emit_with_ack::<_, Value>("ask", &())
            .await
            .unwrap();
        local.expect("ask").await;
        remote.expect("ask").await;
        local.expect_nothing().await;
        remote.expect_nothing().await;
        close_all(&nodes).await;
    })
    .await;
}
