//! Throw-away Redis and Redis Cluster for the Rust tests, started by
//! `scripts/services`, the script every language's tests use. A guard stops
//! its servers when dropped; if the test process dies first, the script's
//! watchdog (`--owner`, this process) stops them.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde::Deserialize;

/// What `scripts/services start` and `up` print.
#[derive(Deserialize)]
struct Started {
    url: String,
    ports: Vec<u16>,
    pids: Vec<u32>,
    dir: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/services")
}

/// Runs the script; its stdout, or a panic with its error line.
fn services(args: &[&str]) -> String {
    let out = Command::new(script())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/services ({e}): it needs python3"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scripts/services {}: {}", args.join(" "), stderr.trim());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn parse(line: &str) -> Started {
    serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("scripts/services printed {line:?}: {e}"))
}

/// Servers started in one directory, stopped (SIGKILL) on drop.
struct Services(Started);

impl Services {
    fn start(args: &[&str]) -> Self {
        let owner = std::process::id().to_string();
        let mut args = args.to_vec();
        args.extend(["--owner", &owner]);
        Self(parse(&services(&args)))
    }

    fn dir(&self) -> &str {
        self.0.dir.to_str().expect("UTF-8 temp dir")
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        // Not `services()`: a failure must not panic in a drop during a panic.
        let _ = Command::new(script()).args(["stop", "--kill", self.dir()]).output();
    }
}

/// One `redis-server` on loopback, without persistence.
pub struct Redis {
    pub port: u16,
    services: Services,
}

impl Redis {
    /// Starts on a free port.
    pub fn start() -> Self {
        Self::from(Services::start(&["start", "redis"]))
    }

    /// Starts on `port` (to bring a stopped server back).
    pub fn start_on(port: u16) -> Self {
        Self::from(Services::start(&["start", "redis", "--port", &port.to_string()]))
    }

    fn from(services: Services) -> Self {
        Self { port: services.0.ports[0], services }
    }

    pub fn url(&self) -> String {
        self.services.0.url.clone()
    }
}

/// A Redis Cluster of three masters on loopback, no replicas, its slots
/// spread evenly. Needs Redis 7+ (sharded pub/sub).
pub struct RedisCluster {
    pub ports: Vec<u16>,
    services: Services,
}

impl RedisCluster {
    pub fn start() -> Self {
        let services = Services::start(&["start", "redis-cluster", "--masters", "3"]);
        Self { ports: services.0.ports.clone(), services }
    }

    /// `redis-cluster://` URL naming every node.
    pub fn url(&self) -> String {
        let others: Vec<String> =
            self.ports[1..].iter().map(|p| format!("node=127.0.0.1:{p}")).collect();
        format!("redis-cluster://127.0.0.1:{}?{}", self.ports[0], others.join("&"))
    }

    /// A plain `redis://` URL of one node (for node-redis and the
    /// `cluster: true` flag).
    pub fn seed(&self) -> String {
        self.services.0.url.clone()
    }

    /// The master owning `channel`'s slot.
    pub fn owner(&self, channel: &str) -> u16 {
        let slot: u16 =
            cli(self.ports[0], &["cluster", "keyslot", channel]).trim().parse().expect("slot");
        self.owner_of_slot(slot)
    }

    pub fn owner_of_slot(&self, slot: u16) -> u16 {
        let nodes = cli(self.ports[0], &["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") {
                continue;
            }
            let port: u16 =
                fields[1].split(['@', ':']).nth(1).and_then(|p| p.parse().ok()).expect("port");
            for range in &fields[8..] {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>())
                    && (lo..=hi).contains(&slot)
                {
                    return port;
                }
            }
        }
        panic!("no owner for slot {slot}");
    }

    /// `calls` of a command in `INFO commandstats` of the node on `port`.
    pub fn calls(&self, port: u16, command: &str) -> u64 {
        let stats = cli(port, &["info", "commandstats"]);
        let prefix = format!("cmdstat_{command}:calls=");
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// `PUBSUB SHARDNUMSUB channel` on one node.
    pub fn shardnumsub(&self, port: u16, channel: &str) -> u64 {
        pubsub_count(port, "shardnumsub", channel)
    }

    /// `PUBSUB NUMSUB channel` on one node.
    pub fn numsub(&self, port: u16, channel: &str) -> u64 {
        pubsub_count(port, "numsub", channel)
    }

    /// Kills the master on `port` and starts it again from its nodes.conf
    /// (same id, same slots), then waits for the cluster to be whole.
    pub fn restart(&mut self, port: u16) {
        let port = port.to_string();
        services(&["down", self.services.dir(), "--port", &port, "--kill"]);
        std::thread::sleep(Duration::from_millis(300));
        let pids = parse(&services(&["up", self.services.dir(), "--port", &port])).pids;
        self.services.0.pids = pids;
    }

    /// The pids of the servers (for CPU accounting).
    pub fn pids(&self) -> Vec<u32> {
        self.services.0.pids.clone()
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): apt-get install redis-server"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The count in the answer to `PUBSUB <command> channel`.
fn pubsub_count(port: u16, command: &str, channel: &str) -> u64 {
    let out = cli(port, &["pubsub", command, channel]);
    out.lines().nth(1).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}
