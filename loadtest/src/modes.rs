//! The load modes. Each spreads its connections round-robin over the targets, runs
//! for a bounded time, and returns its result as JSON.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::client::{self, Sources, Target, Ws};
use crate::framing::{self, EnginePacket, SioKind};
use crate::stats::{Errors, Latencies, epoch_micros};

/// What every mode needs to open connections.
pub struct Ctx {
    /// Servers, used round-robin.
    pub targets: Vec<Target>,
    /// Source addresses.
    pub sources: Sources,
    /// The namespace to connect to (`idle` and `handshakes`; the other modes speak the
    /// workspace protocol of `/`).
    pub namespace: String,
    /// The handshake `auth` payload.
    pub auth: Value,
    /// Handshakes in flight at once while ramping up.
    pub connect_concurrency: usize,
    /// Bound on one handshake.
    pub connect_timeout: Duration,
}

impl Ctx {
    fn target(&self, i: usize) -> &Target {
        &self.targets[i % self.targets.len()]
    }

    pub(crate) fn describe(&self) -> Value {
        json!({
            "targets": self.targets.iter().map(|t| t.url.clone()).collect::<Vec<_>>(),
            "connect_concurrency": self.connect_concurrency,
            "namespace": self.namespace,
        })
    }
}

/// How one socket's session ended.
enum End {
    /// We stopped it.
    Stopped,
    /// The server or the network ended it first.
    Dropped(String),
}

pub(crate) async fn send_text(ws: &mut Ws, text: String) -> Result<(), String> {
    ws.send(Message::text(text)).await.map_err(|e| format!("send: {e}"))
}

/// Closes without waiting long: thousands of sockets close at once at the end.
pub(crate) async fn close(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// The next text frame; `Err` when the socket ended. Pings are answered here.
pub(crate) async fn recv(ws: &mut Ws) -> Result<Option<String>, String> {
    match ws.next().await {
        Some(Ok(Message::Text(t))) => {
            if t.as_str() == "2" {
                send_text(ws, "3".into()).await?;
                return Ok(None);
            }
            if t.as_str() == "1" || t.as_str().starts_with("41") {
                return Err("closed by server".into());
            }
            Ok(Some(t.as_str().to_owned()))
        }
        Some(Ok(Message::Close(_))) | None => Err("closed by server".into()),
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(format!("read: {e}")),
    }
}

/// The outcome of opening a mode's connections.
pub(crate) struct Ramp {
    pub(crate) connected: usize,
    pub(crate) errors: Errors,
    connect: Latencies,
    elapsed: Duration,
}

/// `idle`: hold `connections` authenticated sockets for `hold` after the last one
/// connected, answering pings. Prints `{"ready":...}` on stderr when the ramp is
/// done, so a caller can measure the servers while the sockets are held.
pub async fn idle(ctx: Arc<Ctx>, connections: usize, hold: Duration) -> Value {
    let stop = CancellationToken::new();
    let sem = Arc::new(Semaphore::new(ctx.connect_concurrency));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        let (ctx, sem, tx, stop) = (ctx.clone(), sem.clone(), tx.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let permit = sem.acquire_owned().await;
            let result = client::connect(
                ctx.target(i),
                &ctx.sources,
                &ctx.namespace,
                &ctx.auth,
                ctx.connect_timeout,
            )
            .await;
            drop(permit);
            let mut ws = match result {
                Ok(c) => {
                    let _ = tx.send(Ok(c.elapsed));
                    c.ws
                }
                Err(e) => {
                    let _ = tx.send(Err(e.label()));
                    return None;
                }
            };
            let end = loop {
                tokio::select! {
                    () = stop.cancelled() => break End::Stopped,
                    r = recv(&mut ws) => if let Err(e) = r { break End::Dropped(e) },
                }
            };
            if matches!(end, End::Stopped) {
                close(ws).await;
            }
            Some(end)
        }));
    }
    drop(tx);
    let ramp = collect_ramp(&mut rx, connections, started).await;
    eprintln!(
        "{}",
        json!({"ready": true, "connected": ramp.connected, "failed": ramp.errors.total()})
    );
    tokio::time::sleep(hold).await;
    stop.cancel();
    let mut dropped = Errors::default();
    for t in tasks {
        if let Ok(Some(End::Dropped(e))) = t.await {
            dropped.add(e);
        }
    }
    json!({
        "mode": "idle",
        "setup": ctx.describe(),
        "connections": connections,
        "connected": ramp.connected,
        "connect_errors": ramp.errors,
        "ramp_s": ramp.elapsed.as_secs_f64(),
        "handshakes_per_s": ramp.connected as f64 / ramp.elapsed.as_secs_f64().max(1e-9),
        "connect_latency": ramp.connect.summary(),
        "hold_s": hold.as_secs_f64(),
        "dropped_during_hold": dropped,
        "errors": ramp.errors.total() + dropped.total(),
    })
}

pub(crate) async fn collect_ramp(
    rx: &mut mpsc::UnboundedReceiver<Result<Duration, String>>,
    n: usize,
    started: Instant,
) -> Ramp {
    let mut ramp = Ramp {
        connected: 0,
        errors: Errors::default(),
        connect: Latencies::default(),
        elapsed: Duration::ZERO,
    };
    for _ in 0..n {
        match rx.recv().await {
            Some(Ok(d)) => {
                ramp.connected += 1;
                ramp.connect.push(d);
            }
            Some(Err(e)) => ramp.errors.add(e),
            None => break,
        }
    }
    ramp.elapsed = started.elapsed();
    ramp
}

/// Parameters of `fanout`.
pub struct Fanout {
    /// Room members, spread over the targets.
    pub members: usize,
    /// How many of the members send.
    pub senders: usize,
    /// Messages per second, all senders together.
    pub rate: f64,
    /// Sending time.
    pub duration: Duration,
    /// Time after the last send during which deliveries are still counted.
    pub drain: Duration,
    /// The room.
    pub room: String,
}

#[derive(Default)]
struct MemberStats {
    deliveries: u64,
    latency: Latencies,
    sent: u64,
    acked_ok: u64,
    errors: Errors,
    last_delivery_us: u64,
}

pub(crate) async fn join(ws: &mut Ws, room: &str) -> Result<(), String> {
    send_text(ws, framing::event("join room", &json!(room), Some(0))).await?;
    loop {
        let Some(text) = recv(ws).await? else { continue };
        if let Ok(EnginePacket::Message(p)) = framing::decode(&text)
            && p.kind == SioKind::Ack
            && p.ack == Some(0)
        {
            return if p.data.contains("\"ok\":true") {
                Ok(())
            } else {
                Err(format!("join refused: {:.80}", p.data))
            };
        }
    }
}

/// `fanout`: every member joins the room; the senders send timestamped
/// `sendMessage`s at the given rate; every member times each `incomingMessage`.
pub async fn fanout(ctx: Arc<Ctx>, cfg: Fanout) -> Value {
    let cfg = Arc::new(cfg);
    let sem = Arc::new(Semaphore::new(ctx.connect_concurrency));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    // Senders wait for the start instant; everyone stops at the stop token.
    let (start_tx, start_rx) = watch::channel(None::<Instant>);
    let stop = CancellationToken::new();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(cfg.members);
    for i in 0..cfg.members {
        let (ctx, cfg, sem, ready_tx, mut start_rx, stop) = (
            ctx.clone(),
            cfg.clone(),
            sem.clone(),
            ready_tx.clone(),
            start_rx.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut st = MemberStats::default();
            let permit = sem.acquire_owned().await;
            let connected =
                client::connect(ctx.target(i), &ctx.sources, &ctx.namespace, &ctx.auth, ctx.connect_timeout).await;
            let mut ws = match connected {
                Ok(c) => c.ws,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.label()));
                    return st;
                }
            };
            let joined = join(&mut ws, &cfg.room).await;
            drop(permit);
            if let Err(e) = joined {
                let _ = ready_tx.send(Err(e));
                return st;
            }
            let _ = ready_tx.send(Ok(Duration::ZERO));
            drop(ready_tx);
            let sender = i < cfg.senders;
            // Each sender's share of the rate; non-senders never tick.
            let period = Duration::from_secs_f64(cfg.senders as f64 / cfg.rate);
            let mut ticker = tokio::time::interval(if sender { period } else { Duration::from_secs(3600) });
            ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
            let mut send_until = None;
            let mut next_ack: u64 = 1;
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    // Senders start together, once every member has joined.
                    Ok(()) = start_rx.changed(), if sender && send_until.is_none() => {
                        let start = (*start_rx.borrow()).unwrap_or_else(Instant::now);
                        send_until = Some(start + cfg.duration);
                        ticker.reset();
                    }
                    _ = ticker.tick(), if send_until.is_some_and(|u| Instant::now() < u) => {
                        let body = json!({"room": cfg.room, "message": {"t": epoch_micros()}});
                        if let Err(e) = send_text(&mut ws, framing::event("sendMessage", &body, Some(next_ack))).await {
                            st.errors.add(e);
                            break;
                        }
                        next_ack += 1;
                        st.sent += 1;
                    }
                    r = recv(&mut ws) => match r {
                        Err(e) => { st.errors.add(e); break; }
                        Ok(None) => {}
                        Ok(Some(text)) => on_fanout_frame(&text, &mut st),
                    },
                }
            }
            close(ws).await;
            st
        }));
    }
    drop(ready_tx);
    let ramp = collect_ramp(&mut ready_rx, cfg.members, started).await;
    eprintln!(
        "{}",
        json!({"ready": true, "joined": ramp.connected, "failed": ramp.errors.total()})
    );
    let send_start = Instant::now();
    let send_start_us = epoch_micros();
    let _ = start_tx.send(Some(send_start));
    tokio::time::sleep(cfg.duration + cfg.drain).await;
    stop.cancel();

    let mut total = MemberStats::default();
    for t in tasks {
        if let Ok(st) = t.await {
            total.deliveries += st.deliveries;
            total.latency.merge(st.latency);
            total.sent += st.sent;
            total.acked_ok += st.acked_ok;
            total.errors.merge(st.errors);
            total.last_delivery_us = total.last_delivery_us.max(st.last_delivery_us);
        }
    }
    // Every message sent is due to every member; acks may lag behind under overload.
    let expected = total.sent * ramp.connected as u64;
    // Deliveries over the time from the first send to the last delivery: under
    // overload the servers keep delivering after the senders stop.
    let span_s = (total.last_delivery_us.saturating_sub(send_start_us) as f64 / 1e6)
        .max(cfg.duration.as_secs_f64());
    json!({
        "mode": "fanout",
        "setup": ctx.describe(),
        "members": cfg.members,
        "joined": ramp.connected,
        "join_errors": ramp.errors,
        "senders": cfg.senders,
        "offered_rate": cfg.rate,
        "duration_s": cfg.duration.as_secs_f64(),
        "messages_sent": total.sent,
        "messages_acked": total.acked_ok,
        "deliveries": total.deliveries,
        "expected_deliveries": expected,
        "delivery_ratio": if expected == 0 { 0.0 } else { total.deliveries as f64 / expected as f64 },
        "delivery_span_s": span_s,
        "deliveries_per_s": total.deliveries as f64 / span_s,
        "latency": total.latency.summary(),
        "session_errors": total.errors,
        "errors": ramp.errors.total() + total.errors.total(),
    })
}

fn on_fanout_frame(text: &str, st: &mut MemberStats) {
    let Ok(EnginePacket::Message(p)) = framing::decode(text) else { return };
    match p.kind {
        SioKind::Event if framing::event_name(p.data) == Some("incomingMessage") => {
            let now = epoch_micros();
            if let Some(t) = framing::number_after(p.data, "\"t\":") {
                st.deliveries += 1;
                st.latency.push_micros(now.saturating_sub(t));
                st.last_delivery_us = now;
            }
        }
        SioKind::Event if framing::event_name(p.data) == Some("error") => {
            st.errors.add("error event");
        }
        SioKind::Ack if p.data.contains("\"ok\":true") => st.acked_ok += 1,
        SioKind::Ack => st.errors.add("send refused"),
        _ => {}
    }
}

/// `requests`: `clients` sockets send `request {uuid, route: "echo"}` at `rate`
/// per second together and time the reply event `request <uuid>`.
pub async fn requests(ctx: Arc<Ctx>, clients: usize, rate: f64, duration: Duration) -> Value {
    let sem = Arc::new(Semaphore::new(ctx.connect_concurrency));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (start_tx, start_rx) = watch::channel(false);
    let started = Instant::now();
    let period = Duration::from_secs_f64(clients as f64 / rate);
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let (ctx, sem, ready_tx, mut start_rx) =
            (ctx.clone(), sem.clone(), ready_tx.clone(), start_rx.clone());
        tasks.push(tokio::spawn(async move {
            let mut st = (0u64, 0u64, 0u64, Latencies::default(), Errors::default());
            let (sent, replies, acks, rtt, errors) = (&mut st.0, &mut st.1, &mut st.2, &mut st.3, &mut st.4);
            let permit = sem.acquire_owned().await;
            let connected =
                client::connect(ctx.target(i), &ctx.sources, &ctx.namespace, &ctx.auth, ctx.connect_timeout).await;
            drop(permit);
            let mut ws = match connected {
                Ok(c) => {
                    let _ = ready_tx.send(Ok(c.elapsed));
                    c.ws
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.label()));
                    return st;
                }
            };
            drop(ready_tx);
            let _ = start_rx.wait_for(|s| *s).await;
            // Spread the clients' ticks over one period so the load is smooth.
            let offset = period.mul_f64(i as f64 / clients as f64);
            let first = tokio::time::Instant::now() + offset;
            let mut ticker = tokio::time::interval_at(first, period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
            let send_until = Instant::now() + offset + duration;
            // Replies still in flight get this long after the last send.
            let deadline = send_until + Duration::from_secs(2);
            let mut seq = 0u64;
            loop {
                let now = Instant::now();
                if now >= deadline || (now >= send_until && *replies >= *sent && *acks >= *sent) {
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(deadline.into()) => break,
                    _ = ticker.tick(), if Instant::now() < send_until => {
                        seq += 1;
                        let body = json!({
                            "uuid": format!("c{i}-{seq}"),
                            "route": "echo",
                            "params": {"t": epoch_micros()},
                        });
                        if let Err(e) = send_text(&mut ws, framing::event("request", &body, Some(seq))).await {
                            errors.add(e);
                            break;
                        }
                        *sent += 1;
                    }
                    r = recv(&mut ws) => match r {
                        Err(e) => { errors.add(e); break; }
                        Ok(None) => {}
                        Ok(Some(text)) => {
                            let Ok(EnginePacket::Message(p)) = framing::decode(&text) else { continue };
                            match p.kind {
                                SioKind::Event if framing::event_name(p.data).is_some_and(|n| n.starts_with("request ")) => {
                                    let now = epoch_micros();
                                    match framing::number_after(p.data, "\"t\":") {
                                        Some(t) if p.data.contains("\"ok\":true") => {
                                            *replies += 1;
                                            rtt.push_micros(now.saturating_sub(t));
                                        }
                                        _ => errors.add("bad reply"),
                                    }
                                }
                                SioKind::Ack if p.data.contains("\"ok\":true") => *acks += 1,
                                SioKind::Ack => errors.add("refused ack"),
                                _ => {}
                            }
                        }
                    },
                }
            }
            close(ws).await;
            st
        }));
    }
    drop(ready_tx);
    let ramp = collect_ramp(&mut ready_rx, clients, started).await;
    eprintln!(
        "{}",
        json!({"ready": true, "connected": ramp.connected, "failed": ramp.errors.total()})
    );
    let _ = start_tx.send(true);
    let (mut sent, mut replies, mut acks, mut rtt, mut errors) =
        (0, 0, 0, Latencies::default(), Errors::default());
    for t in tasks {
        if let Ok((s, r, a, l, e)) = t.await {
            sent += s;
            replies += r;
            acks += a;
            rtt.merge(l);
            errors.merge(e);
        }
    }
    let lost = sent.saturating_sub(replies);
    json!({
        "mode": "requests",
        "setup": ctx.describe(),
        "clients": clients,
        "connected": ramp.connected,
        "connect_errors": ramp.errors,
        "target_rate": rate,
        "duration_s": duration.as_secs_f64(),
        "sent": sent,
        "replies": replies,
        "acks": acks,
        "achieved_rate": sent as f64 / duration.as_secs_f64(),
        "lost": lost,
        "rtt": rtt.summary(),
        "session_errors": errors,
        "errors": ramp.errors.total() + errors.total() + lost,
    })
}

/// `handshakes`: `concurrency` loops each connect, authenticate and close, for
/// `duration`. Every accepted handshake writes and then deletes a session row.
pub async fn handshakes(ctx: Arc<Ctx>, concurrency: usize, duration: Duration) -> Value {
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut lat, mut errors) = (0u64, Latencies::default(), Errors::default());
            let mut n = i;
            while Instant::now() < until {
                match client::connect(
                    ctx.target(n),
                    &ctx.sources,
                    &ctx.namespace,
                    &ctx.auth,
                    ctx.connect_timeout,
                )
                .await
                {
                    Ok(c) => {
                        ok += 1;
                        lat.push(c.elapsed);
                        close(c.ws).await;
                    }
                    Err(e) => errors.add(e.label()),
                }
                n += concurrency;
            }
            (ok, lat, errors)
        }));
    }
    let (mut ok, mut lat, mut errors) = (0, Latencies::default(), Errors::default());
    for t in tasks {
        if let Ok((o, l, e)) = t.await {
            ok += o;
            lat.merge(l);
            errors.merge(e);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    json!({
        "mode": "handshakes",
        "setup": ctx.describe(),
        "concurrency": concurrency,
        "duration_s": elapsed,
        "handshakes": ok,
        "handshakes_per_s": ok as f64 / elapsed,
        "handshake_latency": lat.summary(),
        "connect_errors": errors,
        "errors": errors.total(),
    })
}
