//! The Node.js peer (`tests/interop/peer.js`) as a child process.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, Command},
    sync::{mpsc, oneshot},
};

use super::WAIT;

type Replies = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

pub struct Peer {
    pub port: u16,
    child: Child,
    stdin: ChildStdin,
    replies: Replies,
    events: mpsc::UnboundedReceiver<Value>,
    next_id: u64,
}

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Installs the pinned npm packages once (`npm ci` from the lock file).
fn ensure_node_modules() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = interop_dir();
        if dir.join("node_modules/@socket.io/redis-adapter").exists() {
            return;
        }
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .unwrap_or_else(|e| panic!("cannot run npm ({e}): install Node.js 18+ and npm"));
        assert!(status.success(), "npm ci failed in {}", dir.display());
    });
}

impl Peer {
    /// Starts a Node server with the Redis adapter on `redis_url`.
    pub async fn start(redis_url: &str) -> Self {
        Self::start_with(redis_url, &[]).await
    }

    /// Starts a Node server with `createShardedAdapter` in `mode`
    /// (`static`, `dynamic`, `dynamic-private`) on the Redis Cluster whose
    /// seed is `redis_url`.
    pub async fn start_sharded(redis_url: &str, mode: &str) -> Self {
        Self::start_with(redis_url, &["sharded", mode]).await
    }

    async fn start_with(redis_url: &str, extra: &[&str]) -> Self {
        ensure_node_modules();
        let mut child = Command::new("node")
            .arg("peer.js")
            .arg(redis_url)
            .args(extra)
            .current_dir(interop_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node ({e}): install Node.js 18+"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let replies = Replies::default();
        let (tx, mut events) = mpsc::unbounded_channel();
        let routes = replies.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(msg) = serde_json::from_str::<Value>(&line) else { continue };
                if let Some(id) = msg.get("id").and_then(Value::as_u64) {
                    let reply = match msg.get("error") {
                        Some(e) => Err(e.to_string()),
                        None => Ok(msg.get("ok").cloned().unwrap_or(Value::Null)),
                    };
                    if let Some(tx) = routes.lock().expect("lock").remove(&id) {
                        let _ = tx.send(reply);
                    }
                } else {
                    let _ = tx.send(msg);
                }
            }
        });
        let ready = tokio::time::timeout(WAIT * 2, events.recv())
            .await
            .expect("peer ready in time")
            .expect("peer up");
        assert_eq!(ready["type"], "ready", "peer failed: {ready}");
        let port = u16::try_from(ready["port"].as_u64().expect("port")).expect("port");
        Self { port, child, stdin, replies, events, next_id: 0 }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Runs a command; returns its result or the peer's error text.
    pub async fn try_cmd(&mut self, mut cmd: Value) -> Result<Value, String> {
        self.next_id += 1;
        cmd["id"] = json!(self.next_id);
        let (tx, rx) = oneshot::channel();
        self.replies.lock().expect("lock").insert(self.next_id, tx);
        let line = format!("{cmd}\n");
        self.stdin.write_all(line.as_bytes()).await.expect("peer stdin");
        tokio::time::timeout(WAIT * 2, rx)
            .await
            .expect("peer answered in time")
            .expect("peer alive")
    }

    pub async fn cmd(&mut self, cmd: Value) -> Value {
        let shown = cmd.to_string();
        self.try_cmd(cmd).await.unwrap_or_else(|e| panic!("{shown} failed: {e}"))
    }

    /// Connects a socket.io-client socket named `name` to `url`; returns its id.
    pub async fn client(&mut self, name: &str, url: &str) -> String {
        let id = self.cmd(json!({"cmd": "client", "name": name, "url": url})).await;
        id.as_str().expect("socket id").to_owned()
    }

    /// The next event of the given type, skipping nothing: unexpected
    /// events fail the test.
    pub async fn next_event(&mut self) -> Value {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("peer event in time")
            .expect("peer alive")
    }

    /// Collects events for a short while.
    pub async fn drain(&mut self) -> Vec<Value> {
        let mut got = Vec::new();
        while let Ok(Some(ev)) = tokio::time::timeout(super::QUIET, self.events.recv()).await {
            got.push(ev);
        }
        got
    }

    /// Client names that received `event` among `events`, sorted.
    pub fn receivers(events: &[Value], event: &str) -> Vec<String> {
        let mut names: Vec<String> = events
            .iter()
            .filter(|e| e["type"] == "event" && e["event"] == event)
            .filter_map(|e| e["client"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
