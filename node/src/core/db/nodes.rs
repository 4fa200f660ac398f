//! Node heartbeats and the sweep of dead nodes' rows.
//!
//! Every node writes its heartbeat; every node also sweeps. Claiming a dead node is
//! one `DELETE … RETURNING` on its heartbeat row, so exactly one survivor cleans up
//! after it, however many sweep at once. When to sweep is the caller's rule (the
//! heartbeat loop sweeps only once its own beats have run unbroken for `dead_after`).

use super::{Db, DbError, on_pool};

/// A live node as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeRow {
    /// The node's id.
    pub id: String,
    /// Its last heartbeat, RFC 3339 UTC.
    pub heartbeat_at: String,
    /// Its live socket rows, every namespace.
    pub sockets: i64,
}

/// What a sweep removed of one dead node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweptNode {
    /// The dead node's id.
    pub node: String,
    /// Session rows removed.
    pub sessions: u64,
}

impl Db {
    /// Records that `node` is alive now. Returns whether its row was there: false for a
    /// new node, or one another node swept as dead, which must then write its rows again.
    pub async fn heartbeat(&self, node: &str) -> Result<bool, DbError> {
        let updated = on_pool!(
            self,
            "UPDATE nodes SET heartbeat_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = $1",
            "UPDATE nodes SET heartbeat_at = now()::timestamp WHERE id = $1",
            |pool, sql| sqlx::query(sql).bind(node).execute(pool).await?.rows_affected()
        );
        if updated > 0 {
            return Ok(true);
        }
        on_pool!(
            self,
            "INSERT INTO nodes (id, heartbeat_at) VALUES ($1, strftime('%Y-%m-%d %H:%M:%f', 'now'))
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            "INSERT INTO nodes (id, heartbeat_at) VALUES ($1, now()::timestamp)
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            |pool, sql| sqlx::query(sql).bind(node).execute(pool).await.map(drop)
        )?;
        Ok(false)
    }

    /// Forgets a node that shut down cleanly.
    pub async fn forget_node(&self, node: &str) -> Result<(), DbError> {
        on_pool!(
            self,
            "DELETE FROM nodes WHERE id = $1",
            "DELETE FROM nodes WHERE id = $1",
            |pool, sql| sqlx::query(sql).bind(node).execute(pool).await.map(drop)
        )?;
        Ok(())
    }

    /// The nodes that beat, with their live socket rows counted.
    pub async fn list_nodes(&self) -> Result<Vec<NodeRow>, DbError> {
        let rows: Vec<(String, String, i64)> = on_pool!(
            self,
            "SELECT n.id, strftime('%Y-%m-%dT%H:%M:%fZ', n.heartbeat_at),
                    (SELECT COUNT(*) FROM express_sessions s
                     WHERE s.sid LIKE 'roomcast:%' AND json_extract(s.sess, '$.node') = n.id
                       AND s.expire > datetime('now'))
             FROM nodes n ORDER BY n.id",
            "SELECT n.id, to_char(n.heartbeat_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                    (SELECT COUNT(*) FROM express_sessions s
                     WHERE s.sid LIKE 'roomcast:%' AND s.sess->>'node' = n.id
                       AND s.expire > now())
             FROM nodes n ORDER BY n.id",
            |pool, sql| sqlx::query_as(sql).fetch_all(pool).await?
        );
        Ok(rows
            .into_iter()
            .map(|(id, heartbeat_at, sockets)| NodeRow { id, heartbeat_at, sockets })
            .collect())
    }

    /// Claims the nodes silent for longer than `timeout_ms` and removes their rows;
    /// their sockets' rooms stay as resume tickets for `keep_ms`.
    pub async fn sweep_dead_nodes(
        &self,
        timeout_ms: i64,
        keep_ms: i64,
    ) -> Result<Vec<SweptNode>, DbError> {
        let seconds = timeout_ms as f64 / 1000.0;
        let dead: Vec<String> = on_pool!(
            self,
            "DELETE FROM nodes
             WHERE heartbeat_at < strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || $1 || ' seconds')
             RETURNING id",
            "DELETE FROM nodes WHERE heartbeat_at < now()::timestamp - make_interval(secs => $1)
             RETURNING id",
            |pool, sql| sqlx::query_scalar(sql).bind(seconds).fetch_all(pool).await?
        );
        let mut swept = Vec::with_capacity(dead.len());
        for node in dead {
            let sessions = self.delete_node_sessions(&node, keep_ms).await?;
            swept.push(SweptNode { node, sessions });
        }
        Ok(swept)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::core::db::testing;

    #[tokio::test]
    async fn dead_nodes_are_swept_once_with_their_rows() {
        for t in testing::all().await {
            let db = &t.db;
            db.heartbeat("alive").await.expect("beat");
            db.heartbeat("dead").await.expect("beat");
            db.put_session(
                "roomcast:a1",
                &json!({"user": "a", "node": "alive", "rooms": ["r"]}),
                60,
            )
            .await
            .expect("row");
            db.put_session(
                "roomcast:d1",
                &json!({"user": "d", "node": "dead", "rooms": ["r"]}),
                60,
            )
            .await
            .expect("row");

            assert!(
                db.sweep_dead_nodes(60_000, 60_000).await.expect("sweep").is_empty(),
                "both fresh"
            );
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            db.heartbeat("alive").await.expect("beat");
            let swept = db.sweep_dead_nodes(200, 60_000).await.expect("sweep");
            assert_eq!(swept.len(), 1);
            assert_eq!((swept[0].node.as_str(), swept[0].sessions), ("dead", 1));

            assert_eq!(db.room_users("r").await.expect("presence"), ["a"]);
            assert!(
                db.sweep_dead_nodes(200, 60_000).await.expect("sweep").is_empty(),
                "claimed once"
            );
            let nodes = db.list_nodes().await.expect("list");
            assert_eq!(nodes.len(), 1);
            assert_eq!((nodes[0].id.as_str(), nodes[0].sockets), ("alive", 1));
            assert!(nodes[0].heartbeat_at.ends_with('Z'), "{}", nodes[0].heartbeat_at);
        }
    }

    #[tokio::test]
    async fn a_heartbeat_tells_whether_the_row_was_there() {
        for t in testing::all().await {
            let db = &t.db;
            assert!(!db.heartbeat("n").await.expect("beat"), "new node");
            assert!(db.heartbeat("n").await.expect("beat"), "registered");
            db.forget_node("n").await.expect("forget");
            assert!(!db.heartbeat("n").await.expect("beat"), "swept, registered again");
            assert!(db.heartbeat("n").await.expect("beat"));
        }
    }
}
