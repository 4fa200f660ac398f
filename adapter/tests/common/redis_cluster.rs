//! A throwaway Redis Cluster: three masters on free loopback ports, each in
//! its own temporary directory, joined by `redis-cli --cluster create`.
//! Killed on drop. Needs Redis 7+ (sharded pub/sub).

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Runs `redis-server` on `port`, without persistence, with `extra`
/// arguments and in `dir` if given, and waits until it accepts connections.
/// Here, not in `redis.rs`, because the `shard_bench` example includes this
/// file alone.
pub fn spawn_redis(port: u16, extra: &[&str], dir: Option<&Path>) -> Child {
    let mut command = Command::new("redis-server");
    command
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let child = command.spawn().unwrap_or_else(|e| {
        panic!("cannot run redis-server ({e}): install it (Debian: apt-get install redis-server)")
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

pub struct RedisCluster {
    pub ports: Vec<u16>,
    children: Vec<Option<Child>>,
    dirs: Vec<PathBuf>,
}

fn free_port() -> u16 {
    // The cluster bus uses port + 10000: keep both free and below 65536.
    loop {
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        if port < 55000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
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

/// Fails loudly unless `redis-server` is 7 or newer.
pub fn require_redis_7() {
    let out = Command::new("redis-server")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-server ({e}): apt-get install redis-server"));
    let text = String::from_utf8_lossy(&out.stdout);
    let major: u32 = text
        .split("v=")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unreadable redis-server version: {text}"));
    assert!(major >= 7, "sharded pub/sub needs Redis 7+, found {text}");
}

impl RedisCluster {
    pub fn start() -> Self {
        require_redis_7();
        // The ports are free when chosen but released before redis-server binds them, and
        // tests run in parallel: another may take one first. Then start on new ports.
        for _ in 0..3 {
            if let Some(cluster) = Self::try_start() {
                return cluster;
            }
        }
        panic!("redis-cli --cluster create failed three times");
    }

    fn try_start() -> Option<Self> {
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 3 {
            let port = free_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let base = std::env::temp_dir().join(format!(
            "roomcast-cluster-{}-{}",
            std::process::id(),
            ports[0]
        ));
        let dirs: Vec<PathBuf> = ports.iter().map(|p| base.join(p.to_string())).collect();
        for dir in &dirs {
            std::fs::create_dir_all(dir).expect("temp dir");
        }
        let mut cluster = Self { ports: ports.clone(), children: Vec::new(), dirs };
        for i in 0..ports.len() {
            let child = cluster.spawn(i);
            cluster.children.push(Some(child));
        }
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(ports.iter().map(|p| format!("127.0.0.1:{p}")));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(str::to_owned));
        let status = Command::new("redis-cli")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        if !status.success() {
            return None;
        }
        cluster.wait_ok();
        Some(cluster)
    }

    fn spawn(&self, i: usize) -> Child {
        let cluster_args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ];
        spawn_redis(self.ports[i], &cluster_args, Some(&self.dirs[i]))
    }

    /// Waits until every node reports `cluster_state:ok`.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for &port in &self.ports {
            while !cli(port, &["cluster", "info"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "cluster not ok on {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
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
        format!("redis://127.0.0.1:{}", self.ports[0])
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
        let i = self.ports.iter().position(|p| *p == port).expect("our port");
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::thread::sleep(Duration::from_millis(300));
        self.children[i] = Some(self.spawn(i));
        self.wait_ok();
    }

    /// The pids of the servers (for CPU accounting).
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().flatten().map(Child::id).collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(base) = self.dirs.first().and_then(|d| d.parent()) {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}
