//! `roomcast-loadtest MODE ...`: drive Socket.IO servers on this host and print the
//! result as JSON on stdout. Progress (`{"ready":...}` once all sockets are up) goes
//! to stderr.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use roomcast_loadtest::client::{Sources, Target};
use roomcast_loadtest::modes::{self, Ctx, Fanout};
use roomcast_loadtest::storm::{self, Storm};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "roomcast-loadtest",
    version,
    about = "Socket.IO load generator (Engine.IO 4 over WebSocket)"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Args)]
struct Common {
    /// Servers, `http://IP:PORT`, comma-separated or repeated; used round-robin.
    #[arg(long, value_delimiter = ',', global = true)]
    target: Vec<String>,
    /// Socket.IO request path.
    #[arg(long, default_value = "/socket.io", global = true)]
    path: String,
    /// JWT for the handshake `auth: {token}`.
    #[arg(long, env = "LOADTEST_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Login for `auth: {login, password}` (argon2 on every handshake: slow on purpose).
    #[arg(long, global = true)]
    login: Option<String>,
    /// Password for `--login`.
    #[arg(long, env = "LOADTEST_PASSWORD", hide_env_values = true, global = true)]
    password: Option<String>,
    /// Namespace for `idle` and `handshakes` (e.g. a guest namespace such as `/chat`,
    /// to compare a socket's cost with and without Roomcast's per-socket session).
    #[arg(long, default_value = "/", global = true)]
    namespace: String,
    /// Source addresses 127.0.0.2 ... 127.0.0.(N+1); 0 lets the kernel pick 127.0.0.1.
    #[arg(long, default_value_t = 16, global = true)]
    sources: u8,
    /// Handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 128, global = true)]
    connect_concurrency: usize,
    /// Bound on one handshake, seconds.
    #[arg(long, default_value_t = 15.0, global = true)]
    connect_timeout: f64,
}

#[derive(Subcommand)]
enum Mode {
    /// Hold N authenticated connections, answering pings.
    Idle {
        /// Connections to open.
        #[arg(long)]
        connections: usize,
        /// Seconds to hold them once all are up.
        #[arg(long, default_value_t = 10.0)]
        hold: f64,
    },
    /// Room fan-out: members join one room, senders send timestamped messages.
    Fanout {
        /// Room members, over all targets.
        #[arg(long)]
        members: usize,
        /// Members that also send.
        #[arg(long, default_value_t = 1)]
        senders: usize,
        /// Messages per second, all senders together.
        #[arg(long)]
        rate: f64,
        /// Seconds of sending.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seconds after the last send during which deliveries still count.
        #[arg(long, default_value_t = 3.0)]
        drain: f64,
        /// Room name.
        #[arg(long, default_value = "loadtest-fanout")]
        room: String,
    },
    /// Request round trips (`request` route `echo`) at a target rate.
    Requests {
        /// Client sockets, over all targets.
        #[arg(long)]
        clients: usize,
        /// Requests per second, all clients together.
        #[arg(long)]
        rate: f64,
        /// Seconds of sending.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Reconnect storm: members in rooms receive a steady flow while the caller kills
    /// one target; its members reconnect to the others; losses and duplicates counted.
    Storm {
        /// Members over all targets; member i is in room i % rooms, on target i % targets.
        #[arg(long)]
        members: usize,
        /// Rooms, each with one sender of its own (not a member).
        #[arg(long, default_value_t = 50)]
        rooms: usize,
        /// Messages per second, all rooms together.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Seconds of sending, from the moment everyone is in their rooms.
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
        /// Seconds after the last send during which deliveries still count.
        #[arg(long, default_value_t = 5.0)]
        drain: f64,
        /// Index in --target of the server the caller will kill: senders stay off it.
        #[arg(long)]
        kill_target: Option<usize>,
        /// Reconnect with `auth.recover` and the last offset seen (Roomcast); without
        /// it, a dropped member joins its room again, as a plain Socket.IO client does.
        #[arg(long)]
        recover: bool,
        /// Seconds before the first reconnect attempt, doubled per failure up to 5x,
        /// each randomised by ±50 % (socket.io-client's defaults: 1 s, 5 s, 0.5).
        #[arg(long, default_value_t = 1.0)]
        reconnect_delay: f64,
        /// Room names are PREFIX-0, PREFIX-1, ...
        #[arg(long, default_value = "storm")]
        room_prefix: String,
    },
    /// Connect + auth + close loops: handshakes per second with a session row each.
    Handshakes {
        /// Loops running at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
}

fn seconds(name: &str, s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .with_context(|| format!("--{name} must be a non-negative number of seconds"))
}

fn ctx(common: &Common) -> anyhow::Result<Ctx> {
    if common.target.is_empty() {
        bail!("--target is required (http://IP:PORT, comma-separated for several)");
    }
    let targets = common
        .target
        .iter()
        .map(|t| Target::parse(t, &common.path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let auth = match (&common.token, &common.login, &common.password) {
        (Some(token), _, _) => json!({ "token": token }),
        (None, Some(login), Some(password)) => json!({ "login": login, "password": password }),
        _ => bail!("credentials needed: --token (or LOADTEST_TOKEN), or --login and --password"),
    };
    if !common.namespace.starts_with('/') {
        bail!("--namespace must start with /");
    }
    if common.connect_concurrency == 0 {
        bail!("--connect-concurrency must be at least 1");
    }
    Ok(Ctx {
        targets,
        sources: Sources::loopback(common.sources),
        namespace: common.namespace.clone(),
        auth,
        connect_concurrency: common.connect_concurrency,
        connect_timeout: seconds("connect-timeout", common.connect_timeout)?,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let ctx = Arc::new(ctx(&cli.common)?);
    if ctx.namespace != "/"
        && matches!(cli.mode, Mode::Fanout { .. } | Mode::Requests { .. } | Mode::Storm { .. })
    {
        bail!("fanout, requests and storm speak the workspace protocol of `/`: drop --namespace");
    }
    let result = match cli.mode {
        Mode::Idle { connections, hold } => {
            modes::idle(ctx, connections, seconds("hold", hold)?).await
        }
        Mode::Fanout { members, senders, rate, duration, drain, room } => {
            if senders == 0 || senders > members || !rate.is_finite() || rate <= 0.0 {
                bail!("fanout needs 1 <= --senders <= --members and --rate > 0");
            }
            let cfg = Fanout {
                members,
                senders,
                rate,
                duration: seconds("duration", duration)?,
                drain: seconds("drain", drain)?,
                room,
            };
            modes::fanout(ctx, cfg).await
        }
        Mode::Requests { clients, rate, duration } => {
            if clients == 0 || !rate.is_finite() || rate <= 0.0 {
                bail!("requests needs --clients >= 1 and --rate > 0");
            }
            modes::requests(ctx, clients, rate, seconds("duration", duration)?).await
        }
        Mode::Storm {
            members,
            rooms,
            rate,
            duration,
            drain,
            kill_target,
            recover,
            reconnect_delay,
            room_prefix,
        } => {
            if rooms == 0 || members < rooms || !rate.is_finite() || rate <= 0.0 {
                bail!("storm needs 1 <= --rooms <= --members and --rate > 0");
            }
            if kill_target.is_some_and(|k| k >= ctx.targets.len() || ctx.targets.len() < 2) {
                bail!("--kill-target must name one of at least two targets (0-based)");
            }
            let cfg = Storm {
                members,
                rooms,
                rate,
                duration: seconds("duration", duration)?,
                drain: seconds("drain", drain)?,
                kill_target,
                recover,
                reconnect_delay: seconds("reconnect-delay", reconnect_delay)?,
                room_prefix,
            };
            storm::storm(ctx, cfg).await
        }
        Mode::Handshakes { concurrency, duration } => {
            if concurrency == 0 {
                bail!("--concurrency must be at least 1");
            }
            modes::handshakes(ctx, concurrency, seconds("duration", duration)?).await
        }
    };
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
