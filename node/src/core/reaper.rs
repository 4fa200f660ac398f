//! Deletes the session rows of departed sockets, many rows per statement.
//!
//! A mass disconnect (a load balancer dropping a node's clients, a network blip, a
//! benchmark closing 15,000 sockets) ends thousands of sockets within a second. One
//! DELETE per socket would hold every pooled connection, so handshakes and the node's
//! heartbeat would wait for the pool, and a node that cannot beat is swept as dead by
//! the others. Disconnects therefore only queue their row here; one task deletes
//! whatever has queued, up to [`BATCH`] rows per statement: a lone disconnect is deleted
//! at once, a burst in a few statements, on one connection. Rows that could not be
//! deleted (the store is away) stay queued and are tried again with a backoff.
//!
//! Nothing is lost by stopping: the node's shutdown sweep deletes every row it wrote.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::core::db::Db;
use crate::core::metrics::{ErrorKind, Metrics};

/// Rows deleted by one statement at most.
pub const BATCH: usize = 500;
/// The first wait after a failed delete; it doubles up to [`LAST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(250);
const LAST_RETRY: Duration = Duration::from_secs(2);

/// Queues session rows for deletion; cheap to clone.
#[derive(Clone)]
pub struct RowReaper {
    queue: mpsc::UnboundedSender<String>,
    stop: CancellationToken,
}

impl RowReaper {
    /// Starts the task that deletes queued rows, until [`RowReaper::close`]. Rows with
    /// a recovery credential leave a resume ticket for `keep` (`rooms.resume_ttl`).
    pub fn start(db: Db, metrics: Metrics, keep: Duration) -> Self {
        let (queue, rows) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        tokio::spawn(reap(db, metrics, keep_ms, rows, stop.clone()));
        Self { queue, stop }
    }

    /// Queues the row `sid` for deletion.
    pub fn remove(&self, sid: String) {
        // Once closed nobody reads the queue; the shutdown sweep removes the row.
        let _ = self.queue.send(sid);
    }

    /// Stops the task; rows still queued are left to the shutdown sweep.
    pub fn close(&self) {
        self.stop.cancel();
    }
}

async fn reap(
    db: Db,
    metrics: Metrics,
    keep_ms: i64,
    mut rows: mpsc::UnboundedReceiver<String>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut retry = FIRST_RETRY;
    loop {
        if batch.is_empty() {
            tokio::select! {
                _ = stop.cancelled() => return,
                // Whatever queued meanwhile, up to a batch; 0 once every sender is gone.
                n = rows.recv_many(&mut batch, BATCH) => if n == 0 { return },
            }
        } else {
            // After a failure: the rows that failed, and those that queued since.
            while batch.len() < BATCH
                && let Ok(sid) = rows.try_recv()
            {
                batch.push(sid);
            }
        }
        match db.delete_sessions(&batch, keep_ms).await {
            Ok(_) => {
                batch.clear();
                retry = FIRST_RETRY;
            }
            Err(e) => {
                metrics.error(ErrorKind::Database).inc();
                tracing::warn!(error = %e, rows = batch.len(), "session rows not removed yet");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(LAST_RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::db::{on_pool, testing};

    async fn rows(db: &Db) -> i64 {
        let count = "SELECT count(*) FROM express_sessions";
        on_pool!(db, count, count, |pool, sql| sqlx::query_scalar(sql).fetch_one(pool).await)
            .expect("count")
    }

    async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done().await {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_burst_of_departures_is_deleted() {
        for t in testing::all().await {
            let db = &t.db;
            let burst = 3 * BATCH + 7;
            for i in 0..burst {
                db.put_session(&format!("roomcast:s{i}"), &json!({}), 60).await.expect("put");
            }
            db.put_session("roomcast:stays", &json!({}), 60).await.expect("put");
            let reaper = RowReaper::start(db.clone(), Metrics::new(), Duration::from_secs(60));
            for i in 0..burst {
                reaper.remove(format!("roomcast:s{i}"));
            }
            until("the queued rows were not deleted", async || rows(db).await == 1).await;
            assert!(db.live_session("roomcast:stays").await.expect("get").is_some());
            reaper.close();
        }
    }

    #[tokio::test]
    async fn rows_that_failed_are_deleted_once_the_store_answers() {
        let t = testing::sqlite().await;
        let db = &t.db;
        db.put_session("roomcast:a", &json!({}), 60).await.expect("put");
        // Without its table the store answers every delete with an error.
        let rename = async |from: &str, to: &str| {
            let statement = format!("ALTER TABLE {from} RENAME TO {to}");
            on_pool!(db, &statement, &statement, |pool, sql| sqlx::query(sql)
                .execute(pool)
                .await
                .map(drop))
            .expect("rename");
        };
        rename("express_sessions", "away").await;
        let metrics = Metrics::new();
        let reaper = RowReaper::start(db.clone(), metrics.clone(), Duration::from_secs(60));
        reaper.remove("roomcast:a".into());
        let errors = metrics.error(ErrorKind::Database);
        until("the failed delete was not counted", async || errors.get() > 0).await;
        rename("away", "express_sessions").await;
        until("the row was not deleted again", async || rows(db).await == 0).await;
        reaper.close();
    }
}
