//! A Node.js socket.io 4.8 server with `@socket.io/redis-adapter` shares a Redis with a
//! Roomcast node and calls `fetchSockets()`: the Roomcast socket shows a handshake and
//! data as a Node socket would, without its credentials. Needs `redis-server`, `node`
//! and the npm packages of `adapter/tests/interop` (installed on first run).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use roomcast_node::Node;
use roomcast_node::config::Config;
use roomcast_node::core::auth::password;
use roomcast_testkit::Redis;
use rust_socketio::asynchronous::ClientBuilder;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Where the Node packages of the adapter's interop tests live.
fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../adapter/tests/interop")
}

/// A Node server on `redis_url` that prints its `fetchSockets()` as JSON, then exits.
const FETCH: &str = r#"
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");
setTimeout(() => process.exit(3), 20000).unref();
(async () => {
  const pub = createClient({ url: process.argv[1] });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const io = new Server({ adapter: createAdapter(pub, sub, { requestsTimeout: 3000 }) });
  const sockets = await io.fetchSockets();
  console.log(JSON.stringify(sockets.map((s) => ({ id: s.id, handshake: s.handshake, data: s.data }))));
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(2); });
"#;

fn node_fetch_sockets(redis_url: &str) -> Vec<Value> {
    let dir = interop_dir();
    if !dir.join("node_modules").exists() {
        let status =
            Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir).status();
        assert!(status.expect("npm").success(), "npm ci in {}", dir.display());
    }
    let out = Command::new("node")
        .args(["-e", FETCH, redis_url])
        .current_dir(&dir)
        .stderr(Stdio::inherit())
        .output()
        .expect("node");
    assert!(out.status.success(), "node exited with {}", out.status);
    serde_json::from_slice(&out.stdout).expect("fetchSockets JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn node_peers_see_handshake_and_data_without_credentials() {
    let redis = Redis::start();
    let redis_url = redis.url();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().expect("addr");
    config.database.url = format!("sqlite://{}", dir.path().join("t.db").display()).into();
    config.node.id = Some("node-details".into());
    config.redis.url = Some(redis_url.clone().into());
    let node = Node::build(config).await.expect("node starts");
    let hash = password::hash("pw").expect("hash");
    assert!(node.state().db.create_user("alice", &hash).await.expect("user"));
    let addr = node.local_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(node.run(shutdown.clone()));

    let client = ClientBuilder::new(format!("http://{addr}/?room=lobby&token=in-the-query"))
        .auth(json!({ "login": "alice", "password": "pw", "theme": "dark" }))
        .reconnect(false)
        .connect()
        .await
        .expect("client connects");

    // The client's connect() returns before the slow password check lets the socket in:
    // ask again until the socket exists (bounded), then expect exactly it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let sockets = loop {
        let url = redis_url.clone();
        let sockets =
            tokio::task::spawn_blocking(move || node_fetch_sockets(&url)).await.expect("fetch");
        if !sockets.is_empty() || std::time::Instant::now() > deadline {
            break sockets;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(sockets.len(), 1, "{sockets:?}");
    let socket = &sockets[0];
    let handshake = &socket["handshake"];
    let keys: Vec<&str> =
        handshake.as_object().expect("handshake").keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["headers", "time", "address", "xdomain", "secure", "issued", "url", "query", "auth"]
    );
    assert_eq!(handshake["auth"], json!({ "login": "alice", "theme": "dark" }));
    assert_eq!(handshake["query"]["room"], "lobby");
    assert_eq!(handshake["query"]["EIO"], "4");
    assert_eq!(handshake["address"], "127.0.0.1");
    assert!(handshake["issued"].as_i64().is_some_and(|t| t > 0));
    assert!(handshake["headers"]["host"].is_string());
    assert_eq!(
        socket["data"],
        json!({ "user": "alice", "via": "password", "node": "node-details" })
    );
    let text = socket.to_string();
    assert!(
        !text.contains("in-the-query") && !text.contains("\"pw\""),
        "a credential leaked: {text}"
    );

    client.disconnect().await.expect("disconnect");
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
}
