//! In-process tests: a whole node on port 0 with a fresh database per test, driven
//! over real HTTP and Socket.IO connections.

use std::net::SocketAddr;
use std::time::Duration;

use futures::FutureExt;
use roomcast_node::Node;
use roomcast_node::config::Config;
use roomcast_node::core::auth::password;
use roomcast_node::core::db::Db;
use rust_socketio::Payload;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct TestApp {
    addr: SocketAddr,
    db: Db,
    node_id: String,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

/// Starts a node on an ephemeral port with its own SQLite file and one user, alice.
async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().expect("addr");
    config.server.shutdown_timeout = Duration::from_secs(5);
    config.database.url = format!("sqlite://{}", dir.path().join("t.db").display()).into();
    config.node.id = Some("node-test".into());
    let node = Node::build(config).await.expect("node starts");
    let db = node.state().db.clone();
    let hash = password::hash("pw").expect("hash");
    assert!(db.create_user("alice", &hash).await.expect("user"));
    assert!(db.create_user("bob", &hash).await.expect("user"));
    let addr = node.local_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(node.run(shutdown.clone()));
    TestApp { addr, db, node_id: "node-test".into(), shutdown, task, _dir: dir }
}

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A connected client whose events of interest are forwarded into a channel.
    async fn client(
        &self,
        login: &str,
        events: &[&'static str],
    ) -> (Client, mpsc::UnboundedReceiver<(String, Value)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut builder = ClientBuilder::new(self.url("/"))
            .auth(json!({ "login": login, "password": "pw" }))
            .reconnect(false);
        for &event in events {
            let tx = tx.clone();
            builder = builder.on(event, move |payload, _| {
                let tx = tx.clone();
                async move {
                    if let Payload::Text(mut values) = payload {
                        let _ = tx.send((event.to_string(), values.pop().unwrap_or(Value::Null)));
                    }
                }
                .boxed()
            });
        }
        // `connect` returns once the handshake is sent; wait for the namespace's CONNECT
        // so that no event is sent before authentication has finished.
        let (connected_tx, mut connected) = mpsc::unbounded_channel();
        builder = builder.on(rust_socketio::Event::Connect, move |_, _| {
            let _ = connected_tx.send(());
            async {}.boxed()
        });
        let client = builder.connect().await.expect("connects");
        tokio::time::timeout(Duration::from_secs(5), connected.recv())
            .await
            .expect("namespace connected in time");
        (client, rx)
    }

    async fn row_count(&self) -> i64 {
        let Db::Sqlite(pool) = &self.db else { unreachable!("tests use SQLite") };
        sqlx::query_scalar("SELECT count(*) FROM express_sessions")
            .fetch_one(pool)
            .await
            .expect("count")
    }
}

async fn ack(client: &Client, event: &'static str, data: Value) -> Value {
    let (tx, mut rx) = mpsc::unbounded_channel();
    client
        .emit_with_ack(event, data, Duration::from_secs(5), move |payload, _| {
            let tx = tx.clone();
            async move {
                // rust_socketio hands an ack's arguments over as one array.
                if let Payload::Text(mut values) = payload
                    && let Some(Value::Array(mut args)) = values.pop()
                {
                    let _ = tx.send(args.pop().unwrap_or(Value::Null));
                }
            }
            .boxed()
        })
        .await
        .expect("emit");
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("ack in time")
        .expect("ack")
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, Value)>) -> (String, Value) {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("event in time")
        .expect("event")
}

async fn eventually(mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..50 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not met within 5 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn ops_endpoints_answer() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let get = async |path: &str| http.get(app.url(path)).send().await.expect("http");
    assert_eq!(get("/livez").await.status(), 200);
    assert_eq!(get("/readyz").await.status(), 200);
    let metrics = get("/metrics").await.text().await.expect("body");
    assert!(metrics.contains("roomcast_connections{nsp=\"/\"} 0"), "{metrics}");
    app.shutdown.cancel();
    app.task.await.expect("joined").expect("clean exit");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_handshake_gets_connect_error_and_writes_nothing() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    // Engine.IO 4 over long-polling, by hand, to read the exact CONNECT_ERROR packet.
    let open = http.get(app.url("/socket.io/?EIO=4&transport=polling")).send().await.expect("open");
    let body = open.text().await.expect("body");
    let handshake: Value = serde_json::from_str(body.trim_start_matches('0')).expect("open packet");
    let sid = handshake["sid"].as_str().expect("sid");
    let url = app.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"));
    let sent = http
        .post(&url)
        .body(r#"40{"login":"alice","password":"wrong"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(sent.status(), 200);
    // The engine may send a ping first; poll until the Socket.IO answer arrives.
    let mut replies = String::new();
    for _ in 0..5 {
        replies += &http.get(&url).send().await.expect("poll").text().await.expect("body");
        if replies.contains("44") {
            break;
        }
    }
    assert!(
        replies.contains(r#"44{"message":"unauthorized: invalid login or password"}"#),
        "{replies}"
    );
    assert_eq!(app.row_count().await, 0);
    app.shutdown.cancel();
    app.task.await.expect("joined").expect("clean exit");
}

#[tokio::test(flavor = "multi_thread")]
async fn room_messages_reach_members_and_rows_follow_the_socket() {
    let app = spawn_app().await;
    let (alice, _) = app.client("alice", &[]).await;
    let (bob, mut bob_events) = app.client("bob", &["incomingMessage", "ds invalidate"]).await;

    // A fresh room: nothing stored yet, at offset 0 of its epoch.
    let joined = ack(&alice, "join room", json!("team")).await;
    assert_eq!(
        (&joined["ok"], &joined["room"], &joined["offset"]),
        (&json!(true), &json!("team"), &json!(0))
    );
    assert!(joined["epoch"].is_string(), "{joined}");
    assert_eq!(ack(&bob, "join room", json!("team")).await["ok"], true);
    eventually(async || app.db.room_users("team").await.expect("presence") == ["alice", "bob"])
        .await;

    let sent = ack(&alice, "sendMessage", json!({"room": "team", "message": "hello"})).await;
    let (event, message) = next(&mut bob_events).await;
    assert_eq!(event, "incomingMessage");
    assert_eq!(message["from"], "alice");
    assert_eq!(message["room"], "team");
    assert_eq!(message["message"], "hello");
    assert_eq!(message["id"], sent["id"]);
    assert!(message["ts"].is_i64());
    assert_eq!((&message["offset"], &message["epoch"]), (&json!(1), &joined["epoch"]));

    ack(&alice, "invalidate", json!({"room": "team", "ds": "tasks"})).await;
    let (event, payload) = next(&mut bob_events).await;
    assert_eq!(
        (event.as_str(), payload),
        (
            "ds invalidate",
            json!({"room": "team", "ds": "tasks", "offset": 2, "epoch": joined["epoch"]})
        )
    );

    // A refused message changes nothing: bob sees no event for it.
    let refused = ack(&alice, "sendMessage", json!({"room": "elsewhere", "message": "x"})).await;
    assert_eq!(refused["error"]["code"], "not_member");

    assert_eq!(app.row_count().await, 2);
    alice.disconnect().await.expect("disconnect");
    eventually(async || app.row_count().await == 1).await;
    assert!(tokio::time::timeout(Duration::from_millis(300), bob_events.recv()).await.is_err());

    // Shutdown drains: bob's row goes with the node.
    app.shutdown.cancel();
    app.task.await.expect("joined").expect("clean exit");
    let db = Db::connect(&roomcast_node::config::DatabaseConfig {
        url: format!("sqlite://{}", app._dir.path().join("t.db").display()).into(),
        ..Default::default()
    })
    .await
    .expect("reopen");
    assert_eq!(db.delete_node_sessions(&app.node_id, 60_000).await.expect("sweep"), 0);
}
