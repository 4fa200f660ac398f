//! Shared fixtures: in-process socketioxide servers on port 0 with the
//! cluster adapter, and real Socket.IO clients (`rust_socketio`).
#![allow(dead_code, unreachable_pub)]

use std::{net::SocketAddr, time::Duration};

use futures::FutureExt;
use roomcast_adapter::{
    AdapterConfig, Cluster, ClusterAdapter,
    driver::{Driver, FredDriver},
};
use rust_socketio::{
    Payload,
    asynchronous::{Client, ClientBuilder},
};
use serde_json::Value;
use socketioxide::{
    SocketIo,
    adapter::{Adapter, Emitter},
    extract::{Data, SocketRef},
};
use tokio::{sync::mpsc, task::JoinHandle};

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test waits to be sure something does not happen.
pub const QUIET: Duration = Duration::from_millis(300);

pub type A<D> = ClusterAdapter<Emitter, D>;

/// One Roomcast-like server.
pub struct Node<D: Driver> {
    pub io: SocketIo<A<D>>,
    pub cluster: Cluster<D>,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl<D: Driver> Drop for Node<D> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn on_connect<Ad: Adapter>(s: SocketRef<Ad>) {
    let _ = s.emit("hello", &s.id.to_string());
    s.on("join", async |s: SocketRef<Ad>, Data(room): Data<String>| s.join(room));
    s.on("leave", async |s: SocketRef<Ad>, Data(room): Data<String>| s.leave(room));
}

/// Starts a server whose namespace `/` uses the cluster adapter.
pub async fn start_node<D: Driver>(cluster: Cluster<D>) -> Node<D> {
    let (layer, io) = SocketIo::builder().with_adapter::<A<D>>(cluster.clone()).build_layer();
    io.ns("/", on_connect::<A<D>>).await.expect("namespace subscribed");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().layer(layer);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Node { io, cluster, addr, task }
}

/// A connected client and the events it received.
pub struct TestClient {
    pub client: Client,
    pub id: String,
    rx: mpsc::UnboundedReceiver<(String, Vec<Value>)>,
}

impl TestClient {
    pub async fn connect(addr: SocketAddr) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let client = ClientBuilder::new(format!("http://{addr}/"))
            .reconnect(false)
            .on_any(move |event, payload, _| {
                let tx = tx.clone();
                async move {
                    let args = match payload {
                        Payload::Text(values) => values,
                        other => vec![Value::String(format!("{other:?}"))],
                    };
                    let _ = tx.send((event.to_string(), args));
                }
                .boxed()
            })
            .connect()
            .await
            .expect("client connects");
        let (event, args) =
            tokio::time::timeout(WAIT, rx.recv()).await.expect("hello in time").expect("hello");
        assert_eq!(event, "hello");
        let id = args[0].as_str().expect("id").to_owned();
        Self { client, id, rx }
    }

    /// The next event, which must be `event`; returns its arguments.
    pub async fn expect(&mut self, event: &str) -> Vec<Value> {
        let (got, args) = tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {event} in time"))
            .expect("client open");
        assert_eq!(got, event, "unexpected event {got} {args:?}");
        args
    }

    /// Asserts nothing arrives for a short while.
    pub async fn expect_nothing(&mut self) {
        if let Ok(Some(got)) = tokio::time::timeout(QUIET, self.rx.recv()).await {
            panic!("unexpected event {got:?}");
        }
    }

    pub async fn join(&self, room: &str) {
        self.client.emit("join", Value::String(room.into())).await.expect("emit join");
    }
}

/// Polls `check` until it holds or the wait is over.
pub async fn eventually(mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "condition not met in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fails the test instead of letting it hang for longer than `secs`.
pub async fn timed<F: Future>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f).await.expect("test took too long")
}

pub fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// `n` servers, each on its own adapter made by `cluster`.
pub async fn start_nodes<D: Driver>(
    n: usize,
    mut cluster: impl AsyncFnMut() -> Cluster<D>,
) -> Vec<Node<D>> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(start_node(cluster().await).await);
    }
    nodes
}

/// `n` servers, each with its own Redis connection made from `config`.
pub async fn redis_nodes(config: &AdapterConfig, n: usize) -> Vec<Node<FredDriver>> {
    start_nodes(n, async || Cluster::connect(config.clone()).await.expect("Redis connects")).await
}

/// One client on each server, in the servers' order.
pub async fn connect_clients<D: Driver>(nodes: &[Node<D>]) -> Vec<TestClient> {
    let mut clients = Vec::new();
    for node in nodes {
        clients.push(TestClient::connect(node.addr).await);
    }
    clients
}

pub async fn close_all<D: Driver>(nodes: &[Node<D>]) {
    for node in nodes {
        node.cluster.close().await;
    }
}

pub mod memory;
pub mod peer;
pub mod scenarios;

/// Bytes a hostile or broken publisher might send.
pub fn hostile_payloads() -> Vec<Vec<u8>> {
    let mut deep = vec![0x91u8; 100_000];
    deep.push(0xc0);
    vec![
        vec![],
        b"{".to_vec(),
        b"{\"type\":5}".to_vec(),
        b"{\"type\":2,\"opts\":{\"rooms\":[{}]},\"rooms\":[\"x\"]}".to_vec(),
        b"{\"type\":6,\"data\":\"notarray\"}".to_vec(),
        b"{\"type\":6,\"data\":[1,2]}".to_vec(),
        b"{\"requestId\":\"a\",\"type\":8}".to_vec(),
        b"[1,2,3]".to_vec(),
        vec![0xc1],
        vec![0xdd, 0xff, 0xff, 0xff, 0xff],
        vec![0xdb, 0xff, 0xff, 0xff, 0xff, 0x41],
        vec![0xc6, 0xff, 0xff, 0xff, 0xff],
        vec![0x93, 0xa1, 0x78, 0xc0, 0xc0],
        deep,
        // [uid, {type: 2, data: ["ev"], nsp: "/"}, opts] plus a trailing byte
        hex(
            "93a378797a83a474797065 02a46461746191a26576a36e7370a12f 83a5726f6f6d7390a6657863657074 90a5666c61677380 00",
        ),
        // rooms: [{}] (must not become "every socket")
        hex(
            "93a378797a83a474797065 02a46461746191a26576a36e7370a12f 83a5726f6f6d739180a6657863657074 90a5666c61677380",
        ),
        // packet type 3 (ACK)
        hex(
            "93a378797a83a474797065 03a46461746191a26576a36e7370a12f 83a5726f6f6d7390a6657863657074 90a5666c61677380",
        ),
        // data is a string
        hex(
            "93a378797a83a474797065 02a464617461a26576a36e7370a12f 83a5726f6f6d7390a6657863657074 90a5666c61677380",
        ),
        // event name is a number
        hex(
            "93a378797a83a474797065 02a46461746191 01a36e7370a12f 83a5726f6f6d7390a6657863657074 90a5666c61677380",
        ),
        // opts missing
        hex("92a378797a83a474797065 02a46461746191a26576a36e7370a12f"),
        // a well-formed ALL_ROOMS request without request id: ignored
        b"{\"type\":1}".to_vec(),
    ]
}

/// Decodes spaced hex.
pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}
