//! What runs for a node's whole life, and the order it stops in: the [`Supervisor`]
//! holds the listeners and the heartbeat (which also sweeps dead nodes), and
//! [`Supervisor::shut_down`] drains the node within `server.shutdown_timeout`.

use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::accept::{self, ConnectionLimits};
use super::engine::Engine;
use crate::apps;
use crate::core::db::DbError;
use crate::core::state::AppState;

/// Tasks that stop together: a token to tell them, and a tracker to wait for them.
#[derive(Default)]
struct Group {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Group {
    /// Stops the group's tasks and waits until they have ended.
    async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// The node's long-lived tasks, stopped in order by [`Supervisor::shut_down`]: the
/// listeners once every socket is closed, the heartbeat last. The node beats through
/// its drain: silent, it would be swept as dead and its sockets' rows (which
/// reconnecting clients resume from) deleted early.
pub(super) struct Supervisor {
    state: AppState,
    engine: Engine,
    listeners: Group,
    heartbeat: Group,
}

impl Supervisor {
    /// A supervisor of nothing yet.
    pub(super) fn new(state: AppState, engine: Engine) -> Self {
        Self { state, engine, listeners: Group::default(), heartbeat: Group::default() }
    }

    /// Serves `router` on `listener` until the drain closes the listeners.
    pub(super) fn serve(&self, router: Router, listener: TcpListener) {
        let server = &self.state.config.server;
        let limits = ConnectionLimits {
            header_read_timeout: server.header_read_timeout,
            max_pending_per_address: server.max_pending_per_address,
            trusted_proxies: server.trusted_proxies.clone(),
            // A peer whose TCP window stays shut is given up after the Engine.IO
            // liveness budget, ping interval + timeout.
            tcp_user_timeout: server.ping_interval + server.ping_timeout,
        };
        let (metrics, stop) = (self.state.metrics.clone(), self.listeners.stop.clone());
        self.listeners.tasks.spawn(accept::serve(listener, router, limits, metrics, stop));
    }

    /// Registers the node and starts its heartbeat.
    pub(super) async fn beat(&self) -> Result<(), DbError> {
        self.state.db.heartbeat(&self.state.node_id).await?;
        let (state, engine) = (self.state.clone(), self.engine.clone());
        self.heartbeat.tasks.spawn(heartbeat(state, engine, self.heartbeat.stop.clone()));
        Ok(())
    }

    /// Drains the node: readiness off and no new sockets at once; after
    /// `server.drain_delay` (the load balancer's turn to notice), requests in flight
    /// answered, every client told to reconnect elsewhere (its rows stay as resume
    /// tickets), this node's session rows removed, and the stores closed, within
    /// `server.shutdown_timeout` whatever happens.
    pub(super) async fn shut_down(self) {
        let Supervisor { state, engine, listeners, heartbeat } = self;
        let deadline = state.config.server.shutdown_timeout;
        tracing::info!(?deadline, "shutting down");
        state.set_ready(false);
        let delay = state.config.server.drain_delay;
        let drain = async {
            // Sockets keep working while the load balancer takes the node out.
            tokio::time::sleep(delay).await;
            // Requests in flight are answered before their sockets go, within half of
            // what is left, so the rest of the drain still fits.
            if !state.requests.drain((deadline - delay) / 2).await {
                tracing::warn!("requests still in flight at the drain's half-time");
            }
            // Closing the engine ends each transport without a Socket.IO disconnect
            // packet, so official clients reconnect (to another node behind the LB).
            engine.close().await;
            listeners.stop().await;
        };
        if tokio::time::timeout(deadline, drain).await.is_err() {
            tracing::warn!("drain deadline passed; exiting with connections open");
        }
        heartbeat.stop().await;
        state.reaper.close();
        remove_rows(&state).await;
        state.requests.close().await;
        apps::stop_all(&state).await;
        state.db.close().await;
        tracing::info!("stopped");
    }
}

/// Removes what is left of this node's session rows (they become resume tickets) and
/// its heartbeat row: disconnect handlers may still be running when the deadline hits,
/// and rows of this node's sockets must not outlive it.
async fn remove_rows(state: &AppState) {
    let sweep = async {
        let keep_ms = i64::try_from(state.config.rooms.resume_ttl.as_millis()).unwrap_or(i64::MAX);
        let rows = state.db.delete_node_sessions(&state.node_id, keep_ms).await?;
        state.db.forget_node(&state.node_id).await?;
        Ok::<_, DbError>(rows)
    };
    match tokio::time::timeout(state.config.server.final_sweep_timeout, sweep).await {
        Ok(Ok(rows)) if rows > 0 => tracing::info!(rows, "removed remaining session rows"),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "session rows not removed"),
        Err(_) => tracing::warn!("session row sweep timed out"),
    }
}

/// Records this node's heartbeat and sweeps nodes that stopped beating, until `stop`.
/// A database outage only delays both: the loop logs, counts and tries again.
///
/// A node sweeps others only once its own beats have run unbroken (no failure, no gap
/// of two intervals) for `dead_after`: after an outage every node's heartbeat is old,
/// and the first one back would otherwise take its live peers for dead before they
/// had a chance to beat. A node that finds its own row gone (swept while it could not
/// beat) registers again and rewrites its sockets' rows.
async fn heartbeat(state: AppState, engine: Engine, stop: CancellationToken) {
    let node = &state.config.node;
    let mut tick = tokio::time::interval(node.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let dead_after = i64::try_from(node.dead_after.as_millis()).unwrap_or(i64::MAX);
    let mut beats = BeatRun::new(node.heartbeat_interval * 2);
    // Rows are written with `session_ttl` to live; a quarter of it before they would
    // expire, the live ones are pushed forward again.
    let ttl = state.config.database.session_ttl;
    let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    let mut last_refresh = tokio::time::Instant::now();
    let mut store_was_away = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let result = async {
            let registered = state.db.heartbeat(&state.node_id).await?;
            let beating_for = beats.beat(tokio::time::Instant::now());
            if !registered {
                tracing::warn!(
                    "this node's heartbeat row was gone (swept as dead); registering again"
                );
            }
            if std::mem::take(&mut store_was_away) || !registered {
                reconcile(&state, &engine).await?;
            }
            if last_refresh.elapsed() >= ttl / 4 {
                state.db.refresh_node_sessions(&state.node_id, ttl_secs).await?;
                last_refresh = tokio::time::Instant::now();
            }
            state.db.delete_expired_tickets().await?;
            if beating_for < state.config.node.dead_after {
                return Ok::<_, DbError>(());
            }
            let keep_ms =
                i64::try_from(state.config.rooms.resume_ttl.as_millis()).unwrap_or(i64::MAX);
            for node in state.db.sweep_dead_nodes(dead_after, keep_ms).await? {
                tracing::warn!(node = %node.node, sessions = node.sessions, "swept a dead node");
                state.metrics.swept_nodes.inc();
                engine.node_swept(&state, &node.node).await?;
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {}
            Err(e) => {
                store_was_away = true;
                beats.break_off();
                state.metrics.error(crate::core::metrics::ErrorKind::Database).inc();
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
    }
}

/// This node's unbroken run of successful heartbeats.
struct BeatRun {
    max_gap: Duration,
    since: Option<tokio::time::Instant>,
    last: Option<tokio::time::Instant>,
}

impl BeatRun {
    /// A run that a gap longer than `max_gap` between two beats breaks.
    fn new(max_gap: Duration) -> Self {
        Self { max_gap, since: None, last: None }
    }

    /// Records a successful beat at `now`; returns how long the run has lasted.
    fn beat(&mut self, now: tokio::time::Instant) -> Duration {
        let unbroken = self.last.is_some_and(|last| now.duration_since(last) <= self.max_gap);
        let since = match self.since {
            Some(since) if unbroken => since,
            _ => now,
        };
        self.since = Some(since);
        self.last = Some(now);
        now.duration_since(since)
    }

    /// A beat failed: the run starts again at the next success.
    fn break_off(&mut self) {
        self.since = None;
        self.last = None;
    }
}

/// After the store was away, or this node was swept: rewrites the row of every live
/// socket (joins made during the outage, or rows another node swept).
async fn reconcile(state: &AppState, engine: &Engine) -> Result<(), DbError> {
    let members = engine.members();
    for (member, rooms) in &members {
        member.insert_row(&state.db, state.config.database.session_ttl, || rooms.clone()).await?;
    }
    tracing::info!(live = members.len(), "session rows reconciled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn a_beat_run_grows_until_a_failure_or_a_gap() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut run = BeatRun::new(Duration::from_millis(200));
        assert_eq!(run.beat(at(0)), Duration::ZERO, "the first beat starts a run");
        assert_eq!(run.beat(at(100)), Duration::from_millis(100));
        assert_eq!(run.beat(at(300)), Duration::from_millis(300));
        // A beat after a long silence (a stalled store) starts again.
        assert_eq!(run.beat(at(1000)), Duration::ZERO);
        assert_eq!(run.beat(at(1100)), Duration::from_millis(100));
        run.break_off();
        assert_eq!(run.beat(at(1200)), Duration::ZERO, "a failure starts again");
    }
}
