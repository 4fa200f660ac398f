//! `storm`: members spread over rooms and targets receive a steady flow of messages
//! while the caller kills one target; the members it held reconnect to the others
//! (with `auth.recover`, or by joining their room again) and every member's deliveries
//! are checked against what the senders got acknowledged: lost, duplicated, how long
//! until everyone was back in their rooms, and how long the replay of missed messages
//! took.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::client::{self, Target, Ws};
use crate::framing::{self, EnginePacket, SioKind};
use crate::modes::{Ctx, close, collect_ramp, join, recv, send_text};
use crate::stats::{Errors, Latencies, epoch_micros};

/// Parameters of `storm`.
pub struct Storm {
    /// Members over all targets, each in one room.
    pub members: usize,
    /// Rooms; member `i` is in room `i % rooms`, and each room has one sender.
    pub rooms: usize,
    /// Messages per second over all rooms together.
    pub rate: f64,
    /// Sending time.
    pub duration: Duration,
    /// Time after the last send during which deliveries still count.
    pub drain: Duration,
    /// Index of the target the caller kills: senders stay off it.
    pub kill_target: Option<usize>,
    /// Reconnect with `auth.recover` (Roomcast); otherwise join the room again.
    pub recover: bool,
    /// First reconnect delay, doubled per failed attempt up to five times it, each
    /// randomised by ±50 % (socket.io-client's `reconnectionDelay` policy).
    pub reconnect_delay: Duration,
    /// Room names are `<prefix>-<k>`.
    pub room_prefix: String,
}

impl Storm {
    fn room(&self, k: usize) -> String {
        format!("{}-{k}", self.room_prefix)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base =
            self.reconnect_delay.mul_f64(f64::from(1u32 << attempt.min(3).saturating_sub(1)));
        base.min(self.reconnect_delay * 5).mul_f64(0.5 + rand::random::<f64>())
    }
}

/// The fields of `incomingMessage` the storm reads; the message body is the sender's.
#[derive(Deserialize)]
struct Incoming {
    message: Body,
    offset: Option<u64>,
    epoch: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    /// Send time, microseconds since the epoch.
    t: u64,
    /// The message's number in its room, from 1.
    n: usize,
}

/// The `recovery` event (docs/protocol.md): the next credential and what became of
/// each room.
#[derive(Deserialize)]
struct Recovery {
    token: String,
    reason: Option<String>,
    #[serde(default)]
    rooms: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct RoomRecovery {
    recovered: bool,
    reason: Option<String>,
    #[serde(default)]
    replayed: u64,
    offset: Option<u64>,
    epoch: Option<String>,
}

/// A `join room` ack: `{ok, offset?, epoch?}`.
#[derive(Deserialize)]
struct JoinAck {
    ok: bool,
    offset: Option<u64>,
    epoch: Option<String>,
}

/// Where a member stands after its connection dropped.
#[derive(Clone, Copy, PartialEq)]
enum Phase {
    /// In its room and receiving.
    Live,
    /// Reconnected with a recovery credential, waiting for the `recovery` event.
    AwaitRecovery,
    /// Sent `join room`, waiting for its ack.
    AwaitJoin,
}

/// One member's view of the run.
#[derive(Default)]
struct MemberReport {
    room: usize,
    /// `seen[n]`: message `n` of the room arrived.
    seen: Vec<bool>,
    duplicates: u64,
    out_of_order: u64,
    live_latency: Latencies,
    replayed: u64,
    dropped_at_us: Option<u64>,
    back_at_us: Option<u64>,
    back_latency: Latencies,
    replay_latency: Latencies,
    reconnect_connect_latency: Latencies,
    recovery_event_latency: Latencies,
    outcomes: Errors,
    errors: Errors,
}

struct Member {
    report: MemberReport,
    room: String,
    phase: Phase,
    last_n: usize,
    offset: Option<u64>,
    epoch: Option<String>,
    token: Option<String>,
    next_ack: u64,
    join_ack: u64,
    pending_replay: u64,
    dropped: Option<Instant>,
    reconnect_started: Option<Instant>,
}

impl Member {
    fn new(k: usize, room: String) -> Self {
        Self {
            report: MemberReport { room: k, ..MemberReport::default() },
            room,
            phase: Phase::AwaitJoin,
            last_n: 0,
            offset: None,
            epoch: None,
            token: None,
            next_ack: 1,
            join_ack: 0,
            pending_replay: 0,
            dropped: None,
            reconnect_started: None,
        }
    }

    async fn send_join(&mut self, ws: &mut Ws) -> Result<(), String> {
        self.join_ack = self.next_ack;
        self.next_ack += 1;
        self.phase = Phase::AwaitJoin;
        send_text(ws, framing::event("join room", &json!(self.room), Some(self.join_ack))).await
    }

    /// The handshake `auth`: the credentials, plus the recovery credential and the
    /// room's position when there is one.
    fn auth(&self, base: &Value) -> Value {
        let mut auth = base.clone();
        if let (Some(token), Some(obj)) = (&self.token, auth.as_object_mut()) {
            let position = match (&self.epoch, self.offset) {
                (Some(epoch), Some(offset)) => json!({"offset": offset, "epoch": epoch}),
                _ => json!({}),
            };
            obj.insert("recover".into(), json!({"token": token, "rooms": {&self.room: position}}));
        }
        auth
    }

    fn back(&mut self) {
        self.phase = Phase::Live;
        if let Some(dropped) = self.dropped.take() {
            self.report.back_at_us = Some(epoch_micros());
            self.report.back_latency.push(dropped.elapsed());
        }
    }

    fn replay_done(&mut self) {
        if let Some(started) = self.reconnect_started.take() {
            self.report.replay_latency.push(started.elapsed());
        }
    }

    /// Handles one frame; `Err` when the member cannot go on (a refused join, an
    /// unreadable `recovery`).
    async fn on_frame(&mut self, ws: &mut Ws, text: &str) -> Result<(), String> {
        let Ok(EnginePacket::Message(p)) = framing::decode(text) else { return Ok(()) };
        match p.kind {
            SioKind::Event => match framing::event_name(p.data) {
                Some("incomingMessage") => self.on_message(p.data),
                Some("recovery") => return self.on_recovery(ws, p.data).await,
                Some("error") => self.report.errors.add("error event"),
                _ => {}
            },
            SioKind::Ack if p.ack == Some(self.join_ack) && self.phase == Phase::AwaitJoin => {
                match serde_json::from_str::<(JoinAck,)>(p.data) {
                    Ok((ack,)) if ack.ok => {
                        if ack.epoch.is_some() {
                            self.epoch = ack.epoch;
                            self.offset = self.offset.max(ack.offset);
                        }
                        if self.dropped.is_some() {
                            self.report.outcomes.add("joined again");
                        }
                        self.back();
                    }
                    _ => return Err(format!("join refused: {:.80}", p.data)),
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn on_message(&mut self, data: &str) {
        let Ok((_, m)) = serde_json::from_str::<(&str, Incoming)>(data) else {
            self.report.errors.add("unreadable incomingMessage");
            return;
        };
        let n = m.message.n;
        if n >= self.report.seen.len() {
            self.report.seen.resize(n + 1, false);
        }
        if self.report.seen[n] {
            self.report.duplicates += 1;
            return;
        }
        self.report.seen[n] = true;
        if n < self.last_n {
            self.report.out_of_order += 1;
        }
        self.last_n = self.last_n.max(n);
        if m.epoch.is_some() {
            self.offset = m.offset;
            self.epoch = m.epoch;
        }
        if self.pending_replay > 0 {
            self.pending_replay -= 1;
            self.report.replayed += 1;
            if self.pending_replay == 0 {
                self.replay_done();
            }
        } else {
            self.report.live_latency.push_micros(epoch_micros().saturating_sub(m.message.t));
        }
    }

    async fn on_recovery(&mut self, ws: &mut Ws, data: &str) -> Result<(), String> {
        let Ok((_, r)) = serde_json::from_str::<(&str, Recovery)>(data) else {
            return Err(format!("unreadable recovery event: {data:.80}"));
        };
        self.token = Some(r.token);
        if self.phase != Phase::AwaitRecovery {
            // The first connect: only the credential matters.
            return Ok(());
        }
        if let Some(started) = self.reconnect_started {
            self.report.recovery_event_latency.push(started.elapsed());
        }
        let room = r.rooms.get(&self.room).and_then(|v| RoomRecovery::deserialize(v).ok());
        match room {
            Some(room) => {
                if room.recovered {
                    self.report.outcomes.add("recovered");
                    self.pending_replay = room.replayed;
                } else {
                    self.report.outcomes.add(format!(
                        "not recovered: {}",
                        room.reason.as_deref().unwrap_or("no reason given")
                    ));
                    self.offset = room.offset;
                    self.epoch = room.epoch;
                }
                self.back();
                if self.pending_replay == 0 {
                    self.replay_done();
                }
                Ok(())
            }
            None => {
                // Not rejoined (the credential was refused): join as a new client would.
                self.report.outcomes.add(format!(
                    "credential refused: {}",
                    r.reason.as_deref().unwrap_or("no reason given")
                ));
                self.reconnect_started = None;
                self.send_join(ws).await
            }
        }
    }

    /// Reconnects after a drop, trying the other targets in turn; `None` once stopped.
    async fn reconnect(
        &mut self,
        ctx: &Ctx,
        cfg: &Storm,
        member: usize,
        stop: &CancellationToken,
    ) -> Option<Ws> {
        for attempt in 1u32.. {
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(cfg.backoff(attempt)) => {}
            }
            let target = &ctx.targets[reconnect_target(member, attempt, ctx.targets.len())];
            let recovering = cfg.recover && self.token.is_some();
            self.reconnect_started = Some(Instant::now());
            let auth = self.auth(&ctx.auth);
            match client::connect(target, &ctx.sources, "/", &auth, ctx.connect_timeout).await {
                Ok(c) => {
                    self.report.reconnect_connect_latency.push(c.elapsed);
                    let mut ws = c.ws;
                    if recovering {
                        self.phase = Phase::AwaitRecovery;
                    } else if let Err(e) = self.send_join(&mut ws).await {
                        self.report.errors.add(e);
                        continue;
                    }
                    return Some(ws);
                }
                Err(e) => self.report.errors.add(format!("reconnect: {}", e.label())),
            }
        }
        None
    }
}

/// The target of a member's reconnect attempt: the others than its own in turn,
/// starting from a different one per member, so that the members of a dead target
/// spread evenly over the rest (as a balancer would spread them).
fn reconnect_target(member: usize, attempt: u32, targets: usize) -> usize {
    let home = member % targets;
    if targets == 1 {
        return home;
    }
    (home + 1 + (member / targets + attempt as usize - 1) % (targets - 1)) % targets
}

/// One sender per room: joins it, then sends numbered, timestamped messages.
#[derive(Default)]
struct SenderReport {
    room: usize,
    sent: u64,
    /// `acked[n]`: the server accepted message `n`.
    acked: Vec<bool>,
    errors: Errors,
}

fn others(ctx: &Ctx, kill_target: Option<usize>) -> Vec<Target> {
    ctx.targets
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != kill_target)
        .map(|(_, t)| t.clone())
        .collect()
}

/// `storm`: see the module documentation. Prints `{"ready":...}` on stderr once every
/// member and sender is in its room; sending starts then.
pub async fn storm(ctx: Arc<Ctx>, cfg: Storm) -> Value {
    let cfg = Arc::new(cfg);
    let sem = Arc::new(Semaphore::new(ctx.connect_concurrency));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (start_tx, start_rx) = watch::channel(false);
    let stop = CancellationToken::new();
    let started = Instant::now();

    let mut members = Vec::with_capacity(cfg.members);
    for i in 0..cfg.members {
        let (ctx, cfg, sem, ready_tx, stop) =
            (ctx.clone(), cfg.clone(), sem.clone(), ready_tx.clone(), stop.clone());
        members.push(tokio::spawn(async move {
            let k = i % cfg.rooms;
            let mut m = Member::new(k, cfg.room(k));
            let home = i % ctx.targets.len();
            let permit = sem.acquire_owned().await;
            let connected = client::connect(
                &ctx.targets[home],
                &ctx.sources,
                "/",
                &ctx.auth,
                ctx.connect_timeout,
            )
            .await;
            let mut ws = match connected {
                Ok(c) => c.ws,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.label()));
                    return m.report;
                }
            };
            // In the room, and holding a recovery credential when recovering.
            let joined = async {
                m.send_join(&mut ws).await?;
                while m.phase != Phase::Live || (cfg.recover && m.token.is_none()) {
                    if let Some(text) = recv(&mut ws).await? {
                        m.on_frame(&mut ws, &text).await?;
                    }
                }
                Ok::<(), String>(())
            }
            .await;
            drop(permit);
            if let Err(e) = joined {
                let _ = ready_tx.send(Err(e));
                return m.report;
            }
            let _ = ready_tx.send(Ok(Duration::ZERO));
            drop(ready_tx);
            loop {
                let r = tokio::select! {
                    () = stop.cancelled() => break,
                    r = recv(&mut ws) => r,
                };
                let outcome = match r {
                    Ok(None) => Ok(()),
                    Ok(Some(text)) => m.on_frame(&mut ws, &text).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = outcome {
                    if stop.is_cancelled() {
                        break;
                    }
                    m.report.errors.add(e);
                    // Dropped (or refused after a reconnect): come back as a client would.
                    if m.dropped.is_none() {
                        m.dropped = Some(Instant::now());
                        m.report.dropped_at_us.get_or_insert_with(epoch_micros);
                    }
                    match m.reconnect(&ctx, &cfg, i, &stop).await {
                        Some(new) => ws = new,
                        None => return m.report,
                    }
                }
            }
            close(ws).await;
            m.report
        }));
    }

    let targets = Arc::new(others(&ctx, cfg.kill_target));
    let period = Duration::from_secs_f64(cfg.rooms as f64 / cfg.rate);
    let mut senders = Vec::with_capacity(cfg.rooms);
    for k in 0..cfg.rooms {
        let (ctx, cfg, sem, ready_tx, mut start_rx, stop, targets) = (
            ctx.clone(),
            cfg.clone(),
            sem.clone(),
            ready_tx.clone(),
            start_rx.clone(),
            stop.clone(),
            targets.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut st = SenderReport { room: k, ..SenderReport::default() };
            let room = cfg.room(k);
            let permit = sem.acquire_owned().await;
            let connected =
                client::connect(&targets[k % targets.len()], &ctx.sources, "/", &ctx.auth, ctx.connect_timeout).await;
            let mut ws = match connected {
                Ok(c) => c.ws,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("sender: {}", e.label())));
                    return st;
                }
            };
            // Ack 0 is the join; message n is sent with ack id n.
            let joined = join(&mut ws, &room).await.map_err(|e| format!("sender {e}"));
            drop(permit);
            if let Err(e) = joined {
                let _ = ready_tx.send(Err(e));
                return st;
            }
            let _ = ready_tx.send(Ok(Duration::ZERO));
            drop(ready_tx);
            let _ = start_rx.wait_for(|s| *s).await;
            // Senders' ticks spread over one period, so the flow is smooth.
            let first = tokio::time::Instant::now() + period.mul_f64(k as f64 / cfg.rooms as f64);
            let mut ticker = tokio::time::interval_at(first, period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
            let send_until = Instant::now() + cfg.duration;
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = ticker.tick(), if Instant::now() < send_until => {
                        let n = st.sent + 1;
                        let body = json!({"room": room, "message": {"t": epoch_micros(), "n": n}});
                        if let Err(e) = send_text(&mut ws, framing::event("sendMessage", &body, Some(n))).await {
                            st.errors.add(e);
                            break;
                        }
                        st.sent = n;
                    }
                    r = recv(&mut ws) => match r {
                        Err(e) => { st.errors.add(format!("sender: {e}")); break; }
                        Ok(None) => {}
                        Ok(Some(text)) => {
                            if let Ok(EnginePacket::Message(p)) = framing::decode(&text)
                                && p.kind == SioKind::Ack
                                && let Some(n) = p.ack.and_then(|n| usize::try_from(n).ok())
                            {
                                if p.data.contains("\"ok\":true") {
                                    if n >= st.acked.len() {
                                        st.acked.resize(n + 1, false);
                                    }
                                    st.acked[n] = true;
                                } else {
                                    st.errors.add(format!("send refused: {:.80}", p.data));
                                }
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
    let ramp = collect_ramp(&mut ready_rx, cfg.members + cfg.rooms, started).await;
    eprintln!(
        "{}",
        json!({"ready": true, "joined": ramp.connected, "failed": ramp.errors.total()})
    );
    let _ = start_tx.send(true);
    tokio::time::sleep(cfg.duration + cfg.drain).await;
    stop.cancel();

    let mut acked: Vec<Vec<bool>> = vec![Vec::new(); cfg.rooms];
    let (mut sent, mut errors) = (0u64, Errors::default());
    for t in senders {
        if let Ok(st) = t.await {
            sent += st.sent;
            errors.merge(st.errors);
            acked[st.room] = st.acked;
        }
    }
    let mut totals = Totals::default();
    for t in members {
        if let Ok(report) = t.await {
            totals.add(report, &acked[..]);
        }
    }
    errors.merge(std::mem::take(&mut totals.errors));
    let messages_acked: usize = acked.iter().map(|a| a.iter().filter(|x| **x).count()).sum();
    json!({
        "mode": "storm",
        "setup": ctx.describe(),
        "members": cfg.members,
        "rooms": cfg.rooms,
        "joined": ramp.connected,
        "join_errors": ramp.errors,
        "recover": cfg.recover,
        "offered_rate": cfg.rate,
        "duration_s": cfg.duration.as_secs_f64(),
        "messages_sent": sent,
        "messages_acked": messages_acked,
        "expected_deliveries": totals.expected,
        "deliveries": totals.delivered,
        "lost": totals.lost,
        "lost_by_dropped_members": totals.lost_dropped,
        "duplicates": totals.duplicates,
        "out_of_order": totals.out_of_order,
        "dropped_members": totals.dropped,
        "members_back": totals.back,
        "storm_s": totals.storm_s(),
        "back_latency": totals.back_latency.summary(),
        "replay_latency": totals.replay_latency.summary(),
        "reconnect_connect_latency": totals.reconnect_connect_latency.summary(),
        "recovery_event_latency": totals.recovery_event_latency.summary(),
        "replayed_messages": totals.replayed,
        "outcomes": totals.outcomes,
        "live_latency": totals.live_latency.summary(),
        "session_errors": errors,
        "errors": ramp.errors.total(),
    })
}

/// Every member's report folded together, checked against the senders' acks.
#[derive(Default)]
struct Totals {
    expected: u64,
    delivered: u64,
    lost: u64,
    lost_dropped: u64,
    duplicates: u64,
    out_of_order: u64,
    dropped: u64,
    back: u64,
    first_drop_us: Option<u64>,
    last_back_us: Option<u64>,
    back_latency: Latencies,
    replay_latency: Latencies,
    reconnect_connect_latency: Latencies,
    recovery_event_latency: Latencies,
    replayed: u64,
    live_latency: Latencies,
    outcomes: Errors,
    errors: Errors,
}

impl Totals {
    fn add(&mut self, r: MemberReport, acked: &[Vec<bool>]) {
        let due = &acked[r.room];
        let seen = |n: usize| r.seen.get(n).copied().unwrap_or(false);
        let expected = due.iter().filter(|x| **x).count() as u64;
        let lost = due.iter().enumerate().filter(|(n, a)| **a && !seen(*n)).count() as u64;
        self.expected += expected;
        self.delivered += r.seen.iter().filter(|x| **x).count() as u64;
        self.lost += lost;
        self.duplicates += r.duplicates;
        self.out_of_order += r.out_of_order;
        if let Some(at) = r.dropped_at_us {
            self.dropped += 1;
            self.lost_dropped += lost;
            self.first_drop_us = Some(self.first_drop_us.map_or(at, |f| f.min(at)));
        }
        if let Some(at) = r.back_at_us {
            self.back += 1;
            self.last_back_us = Some(self.last_back_us.map_or(at, |l| l.max(at)));
        }
        self.back_latency.merge(r.back_latency);
        self.replay_latency.merge(r.replay_latency);
        self.reconnect_connect_latency.merge(r.reconnect_connect_latency);
        self.recovery_event_latency.merge(r.recovery_event_latency);
        self.replayed += r.replayed;
        self.live_latency.merge(r.live_latency);
        self.outcomes.merge(r.outcomes);
        self.errors.merge(r.errors);
    }

    /// From the first member dropped to the last one back in its room; `None` when
    /// nobody dropped or someone never came back.
    fn storm_s(&self) -> Option<f64> {
        match (self.first_drop_us, self.last_back_us) {
            (Some(first), Some(last)) if self.back == self.dropped => {
                Some(last.saturating_sub(first) as f64 / 1e6)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(delay_ms: u64) -> Storm {
        Storm {
            members: 2,
            rooms: 1,
            rate: 1.0,
            duration: Duration::from_secs(1),
            drain: Duration::ZERO,
            kill_target: None,
            recover: true,
            reconnect_delay: Duration::from_millis(delay_ms),
            room_prefix: "r".into(),
        }
    }

    fn message(n: usize, offset: u64) -> String {
        format!(
            r#"["incomingMessage",{{"id":"x","from":"u","room":"r-0","message":{{"t":1,"n":{n}}},"ts":1,"offset":{offset},"epoch":"e1"}}]"#
        )
    }

    #[test]
    fn backoff_follows_the_client_defaults() {
        let c = cfg(1000);
        for _ in 0..200 {
            let first = c.backoff(1).as_millis();
            assert!((500..=1500).contains(&first), "{first}");
            let second = c.backoff(2).as_millis();
            assert!((1000..=3000).contains(&second), "{second}");
            let late = c.backoff(9).as_millis();
            assert!((2000..=6000).contains(&late), "{late}");
        }
        assert_eq!(cfg(0).backoff(3), Duration::ZERO);
    }

    #[test]
    fn reconnects_spread_over_the_other_targets() {
        // Members 0, 3, 6, 9 live on target 0 of 3: their first attempts alternate
        // between targets 1 and 2, and each member then tries the other one.
        let first: Vec<_> = [0, 3, 6, 9].iter().map(|&m| reconnect_target(m, 1, 3)).collect();
        assert_eq!(first, [1, 2, 1, 2]);
        assert_eq!((reconnect_target(0, 2, 3), reconnect_target(3, 2, 3)), (2, 1));
        assert!((1..20).all(|a| reconnect_target(4, a, 3) != 1), "never its own target");
        assert_eq!(reconnect_target(5, 1, 1), 0);
    }

    #[test]
    fn deliveries_are_checked_by_number() {
        let mut m = Member::new(0, "r-0".into());
        for (n, offset) in [(1, 1), (3, 3), (2, 2), (3, 3)] {
            m.on_message(&message(n, offset));
        }
        m.on_message(r#"["incomingMessage",{"message":"not ours"}]"#);
        assert_eq!(m.report.duplicates, 1);
        assert_eq!(m.report.out_of_order, 1);
        assert_eq!(m.report.errors.total(), 1);
        assert_eq!((m.offset, m.epoch.as_deref()), (Some(2), Some("e1")));

        // Replayed messages are counted as such, not timed as live ones.
        m.pending_replay = 1;
        m.reconnect_started = Some(Instant::now());
        m.on_message(&message(4, 4));
        assert_eq!((m.report.replayed, m.report.replay_latency.len()), (1, 1));
        assert_eq!(m.report.live_latency.len(), 3);
    }

    #[test]
    fn recovery_credential_goes_into_auth() {
        let mut m = Member::new(0, "r-0".into());
        let base = json!({"token": "jwt"});
        assert_eq!(m.auth(&base), base, "no credential yet");
        m.token = Some("sid.secret".into());
        m.on_message(&message(7, 41));
        assert_eq!(
            m.auth(&base),
            json!({"token": "jwt", "recover": {"token": "sid.secret", "rooms": {"r-0": {"offset": 41, "epoch": "e1"}}}})
        );
    }

    #[test]
    fn totals_count_what_was_due() {
        // Messages 1-3 acknowledged, 4 sent but refused.
        let acked = vec![vec![false, true, true, true, false]];
        let mut stayed =
            MemberReport { seen: vec![false, true, true, true], ..MemberReport::default() };
        stayed.live_latency.push_micros(10);
        let dropped = MemberReport {
            seen: vec![false, true, false, true, true],
            duplicates: 2,
            dropped_at_us: Some(1_000_000),
            back_at_us: Some(3_500_000),
            ..MemberReport::default()
        };
        let mut t = Totals::default();
        t.add(stayed, &acked);
        assert_eq!(t.storm_s(), None, "nobody dropped");
        t.add(dropped, &acked);
        assert_eq!((t.expected, t.delivered, t.lost, t.lost_dropped), (6, 6, 1, 1));
        assert_eq!((t.duplicates, t.dropped, t.back), (2, 1, 1));
        assert_eq!(t.storm_s(), Some(2.5));
        let never_back = MemberReport { dropped_at_us: Some(2_000_000), ..MemberReport::default() };
        t.add(never_back, &acked);
        assert_eq!(t.storm_s(), None, "one member never came back");
    }
}
