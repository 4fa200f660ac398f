//! Broadcast throughput and Redis CPU, classic vs sharded pub/sub, on a
//! local three-master Redis Cluster this program starts (and stops).
//!
//! Three in-process socketioxide servers share the cluster; each has
//! `--clients` real Socket.IO clients, each client in its own room. Server 0
//! broadcasts `--messages` events, `--concurrency` at a time, either to one
//! room each (round robin) or to everyone; the run ends when every client
//! has every event it should get. Redis CPU is the utime + stime of the
//! three redis-server processes (/proc/<pid>/stat) over the run.
//!
//! ```sh
//! cargo run --release -p roomcast-adapter --example shard_bench -- --messages 20000
//! ```
#![allow(clippy::unwrap_used, missing_docs)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{FutureExt, StreamExt};
use roomcast_adapter::{AdapterConfig, AdapterMode, Cluster, ClusterAdapter, SubscriptionMode};
use roomcast_testkit::RedisCluster;
use rust_socketio::asynchronous::ClientBuilder;
use socketioxide::{SocketIo, adapter::Emitter, extract::SocketRef};

type A = ClusterAdapter<Emitter>;

struct Args {
    messages: u64,
    clients: usize,
    concurrency: usize,
}

fn args() -> Args {
    let mut out = Args { messages: 20_000, clients: 10, concurrency: 64 };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or("");
        match pair[0].as_str() {
            "--messages" => out.messages = value.parse().expect("--messages N"),
            "--clients" => out.clients = value.parse().expect("--clients N"),
            "--concurrency" => out.concurrency = value.parse().expect("--concurrency N"),
            other => panic!("unknown argument {other}"),
        }
    }
    out
}

fn clock_ticks() -> f64 {
    let out = std::process::Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(100.0)
}

/// utime + stime of `pid`, in ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at 3.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Target {
    OneRoom,
    Everyone,
}

struct Outcome {
    published: f64,
    seconds: f64,
    redis_cpu: f64,
    delivered: u64,
    bus_messages: u64,
}

async fn run(redis: &RedisCluster, mode: AdapterMode, target: Target, args: &Args) -> Outcome {
    let config = AdapterConfig {
        redis_url: redis.url(),
        mode,
        queue_capacity: 65_536,
        ..AdapterConfig::default()
    };
    let mut servers = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let cluster = Cluster::connect(config.clone()).await.unwrap();
        let (layer, io) = SocketIo::builder().with_adapter::<A>(cluster.clone()).build_layer();
        io.ns("/", async |s: SocketRef<A>| {
            let query = s.req_parts().uri.query().unwrap_or("");
            if let Some(room) = query.split('&').find_map(|kv| kv.strip_prefix("room=")) {
                s.join(room.to_owned());
            }
        })
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, axum::Router::new().layer(layer)).await;
        }));
        servers.push((io, cluster, addr));
    }
    let delivered = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    let mut rooms = Vec::new();
    for (i, (_, _, addr)) in servers.iter().enumerate() {
        for j in 0..args.clients {
            let room = format!("room-{i}-{j}");
            let counter = delivered.clone();
            let client = ClientBuilder::new(format!("http://{addr}/?room={room}"))
                .reconnect(false)
                .on("m", move |_, _| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    async {}.boxed()
                })
                .connect()
                .await
                .unwrap();
            clients.push(client);
            rooms.push(room);
        }
    }
    // Rooms joined and, in dynamic mode, their channels subscribed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let expected = match target {
        Target::OneRoom => args.messages,
        Target::Everyone => args.messages * rooms.len() as u64,
    };
    let pids = redis.pids();
    let cpu_before: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
    let bus_before: u64 = servers.iter().map(|s| s.1.metrics_snapshot().received).sum();
    let io = servers[0].0.clone();
    let payload = serde_json::json!({"text": "x".repeat(64), "n": 1});
    let started = Instant::now();
    futures::stream::iter(0..args.messages)
        .for_each_concurrent(args.concurrency, |n| {
            let io = io.clone();
            let room = rooms[n as usize % rooms.len()].clone();
            let payload = &payload;
            async move {
                let result = match target {
                    Target::OneRoom => io.to(room).emit("m", payload).await,
                    Target::Everyone => io.emit("m", payload).await,
                };
                result.unwrap();
            }
        })
        .await;
    let published = started.elapsed().as_secs_f64();
    // Deliveries still missing 10 s after the last publish are counted as lost.
    let deadline = Instant::now() + Duration::from_secs(10);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
    let bus_after: u64 = servers.iter().map(|s| s.1.metrics_snapshot().received).sum();
    for client in clients {
        let _ = client.disconnect().await;
    }
    for (_, cluster, _) in &servers {
        cluster.close().await;
    }
    for task in tasks {
        task.abort();
    }
    Outcome {
        published,
        seconds,
        redis_cpu: (cpu_after - cpu_before) as f64 / clock_ticks(),
        delivered: delivered.load(Ordering::Relaxed),
        bus_messages: bus_after - bus_before,
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let redis = RedisCluster::start();
    println!(
        "| workload | mode | broadcasts | deliveries (expected) | publish s | publish rate /s | all delivered s | adapter messages received | redis CPU s (3 masters) | redis CPU ms / 1k broadcasts |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let modes = [
        ("classic", AdapterMode::Classic),
        ("sharded static", AdapterMode::Sharded { subscription_mode: SubscriptionMode::Static }),
        ("sharded dynamic", AdapterMode::Sharded { subscription_mode: SubscriptionMode::Dynamic }),
    ];
    for target in [Target::OneRoom, Target::Everyone] {
        for (name, mode) in modes {
            let o = run(&redis, mode, target, &args).await;
            let workload = match target {
                Target::OneRoom => "one room each",
                Target::Everyone => "everyone",
            };
            let expected = match target {
                Target::OneRoom => args.messages,
                Target::Everyone => args.messages * 3 * args.clients as u64,
            };
            println!(
                "| {workload} | {name} | {} | {} ({expected}) | {:.2} | {:.0} | {:.2} | {} | {:.2} | {:.1} |",
                args.messages,
                o.delivered,
                o.published,
                args.messages as f64 / o.published,
                o.seconds,
                o.bus_messages,
                o.redis_cpu,
                o.redis_cpu * 1000.0 * 1000.0 / args.messages as f64,
            );
        }
    }
}
