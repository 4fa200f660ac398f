//! Resume tickets: the rooms of sockets that are gone (closed by a draining node,
//! disconnected, or on a node swept as dead), so their clients get them back on
//! whichever node they reconnect to, and the one-time use of recovery credentials.

use super::{Db, DbError, on_pool};

/// How long a used credential is remembered: longer than any socket row it could be
/// checked against again.
const USED_FOR_MS: i64 = 24 * 3600 * 1000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Db {
    /// Uses up the live ticket of `sid` if it belongs to `login`: its rooms, once.
    pub async fn take_ticket(
        &self,
        sid: &str,
        login: &str,
    ) -> Result<Option<Vec<String>>, DbError> {
        let rooms: Option<String> = on_pool!(
            self,
            "DELETE FROM resume_tickets WHERE sid = $1 AND login = $2 AND expires_ms > $3
             RETURNING rooms",
            "DELETE FROM resume_tickets WHERE sid = $1 AND login = $2 AND expires_ms > $3
             RETURNING rooms",
            |pool, sql| sqlx::query_scalar(sql)
                .bind(sid)
                .bind(login)
                .bind(now_ms())
                .fetch_optional(pool)
                .await?
        );
        Ok(rooms.map(|r| serde_json::from_str(&r).unwrap_or_default()))
    }

    /// The rooms a reconnecting `login` had on its previous socket `sid`: its ticket if
    /// a draining node closed it (used up), else its session row if that socket is
    /// still live somewhere — a load balancer may move a client before its old node
    /// closed the socket, and a crashed node's rows live until they are swept.
    pub async fn resume_rooms(&self, sid: &str, login: &str) -> Result<Vec<String>, DbError> {
        if let Some(rooms) = self.take_ticket(sid, login).await? {
            return Ok(rooms);
        }
        let Some(sess) = self.live_session(&format!("roomcast:{sid}")).await? else {
            return Ok(Vec::new());
        };
        if sess.get("user").and_then(|u| u.as_str()) != Some(login)
            || sess.get("namespace").and_then(|n| n.as_str()) != Some("/")
        {
            return Ok(Vec::new());
        }
        Ok(serde_json::from_value(sess.get("rooms").cloned().unwrap_or_default())
            .unwrap_or_default())
    }

    /// Checks a recovery credential of socket `sid` for `login` and uses it up: the
    /// rooms of the socket's ticket, or of its session row while that socket is still
    /// live (its client came back before the server noticed the old transport was
    /// dead). `None` when nothing matches, or the credential was used before.
    pub async fn take_recovery(
        &self,
        sid: &str,
        login: &str,
        secret_hash: &str,
    ) -> Result<Option<Vec<String>>, DbError> {
        let ticket: Option<String> = on_pool!(
            self,
            "SELECT rooms FROM resume_tickets
             WHERE sid = $1 AND login = $2 AND secret_hash = $3 AND expires_ms > $4",
            "SELECT rooms FROM resume_tickets
             WHERE sid = $1 AND login = $2 AND secret_hash = $3 AND expires_ms > $4",
            |pool, sql| sqlx::query_scalar(sql)
                .bind(sid)
                .bind(login)
                .bind(secret_hash)
                .bind(now_ms())
                .fetch_optional(pool)
                .await?
        );
        let rooms = match ticket {
            Some(rooms) => serde_json::from_str(&rooms).unwrap_or_default(),
            None => {
                let live = self.live_session(&format!("roomcast:{sid}")).await?;
                let field = |sess: &serde_json::Value, key: &str| {
                    sess.get(key).and_then(|v| v.as_str()).map(str::to_owned)
                };
                match live {
                    Some(sess)
                        if field(&sess, "user").as_deref() == Some(login)
                            && field(&sess, "namespace").as_deref() == Some("/")
                            && field(&sess, "recovery").as_deref() == Some(secret_hash) =>
                    {
                        serde_json::from_value(sess.get("rooms").cloned().unwrap_or_default())
                            .unwrap_or_default()
                    }
                    _ => return Ok(None),
                }
            }
        };
        // Marked only once proven, so a forged credential cannot spend someone else's.
        let first = on_pool!(
            self,
            "INSERT INTO recovery_used (sid, expires_ms) VALUES ($1, $2) ON CONFLICT (sid) DO NOTHING",
            "INSERT INTO recovery_used (sid, expires_ms) VALUES ($1, $2) ON CONFLICT (sid) DO NOTHING",
            |pool, sql| sqlx::query(sql)
                .bind(sid)
                .bind(now_ms().saturating_add(USED_FOR_MS))
                .execute(pool)
                .await?
                .rows_affected()
        ) == 1;
        if !first {
            return Ok(None);
        }
        on_pool!(
            self,
            "DELETE FROM resume_tickets WHERE sid = $1",
            "DELETE FROM resume_tickets WHERE sid = $1",
            |pool, sql| sqlx::query(sql).bind(sid).execute(pool).await.map(drop)
        )?;
        Ok(Some(rooms))
    }

    /// Deletes expired tickets and used-credential marks; returns how many tickets.
    pub async fn delete_expired_tickets(&self) -> Result<u64, DbError> {
        let done = on_pool!(
            self,
            "DELETE FROM resume_tickets WHERE expires_ms <= $1",
            "DELETE FROM resume_tickets WHERE expires_ms <= $1",
            |pool, sql| sqlx::query(sql).bind(now_ms()).execute(pool).await?.rows_affected()
        );
        on_pool!(
            self,
            "DELETE FROM recovery_used WHERE expires_ms <= $1",
            "DELETE FROM recovery_used WHERE expires_ms <= $1",
            |pool, sql| sqlx::query(sql).bind(now_ms()).execute(pool).await.map(drop)
        )?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use crate::core::db::testing;

    #[tokio::test]
    async fn tickets_are_used_once_by_their_login() {
        for t in testing::all().await {
            let db = &t.db;
            // A row that goes leaves its rooms behind as a ticket.
            let sess = serde_json::json!({
                "user": "alice", "namespace": "/", "rooms": ["a", "b"], "recovery": "h",
            });
            db.put_session("roomcast:s1", &sess, 60).await.expect("row");
            db.delete_sessions(&["roomcast:s1".into()], 60_000).await.expect("delete");
            assert_eq!(db.take_ticket("s1", "bob").await.expect("take"), None, "other login");
            assert_eq!(
                db.take_ticket("s1", "alice").await.expect("take"),
                Some(vec!["a".into(), "b".into()])
            );
            assert_eq!(db.take_ticket("s1", "alice").await.expect("take"), None, "used once");

            db.put_session("roomcast:s2", &sess, 60).await.expect("row");
            db.delete_sessions(&["roomcast:s2".into()], -1).await.expect("delete");
            assert_eq!(db.take_ticket("s2", "alice").await.expect("take"), None, "expired");
            assert_eq!(db.delete_expired_tickets().await.expect("sweep"), 1);

            // No ticket: the previous socket's live row, for the same login only.
            let sess = serde_json::json!({"user": "alice", "namespace": "/", "rooms": ["r"]});
            db.put_session("roomcast:s3", &sess, 60).await.expect("row");
            assert_eq!(db.resume_rooms("s3", "bob").await.expect("resume"), Vec::<String>::new());
            assert_eq!(db.resume_rooms("s3", "alice").await.expect("resume"), ["r"]);
            assert_eq!(
                db.resume_rooms("nope", "alice").await.expect("resume"),
                Vec::<String>::new()
            );
        }
    }

    #[tokio::test]
    async fn a_recovery_credential_is_checked_against_row_or_ticket_and_used_once() {
        for t in testing::all().await {
            let db = &t.db;
            let sess = |user: &str| {
                serde_json::json!({
                    "user": user, "node": "n1", "namespace": "/", "rooms": ["a", "b"],
                    "recovery": "hash1",
                })
            };
            // Live row: the right login and hash only; then used up.
            db.put_session("roomcast:live1", &sess("alice"), 60).await.expect("row");
            assert_eq!(db.take_recovery("live1", "bob", "hash1").await.expect("take"), None);
            assert_eq!(db.take_recovery("live1", "alice", "forged").await.expect("take"), None);
            let rooms = db.take_recovery("live1", "alice", "hash1").await.expect("take");
            assert_eq!(rooms, Some(vec!["a".to_owned(), "b".to_owned()]));
            assert_eq!(db.take_recovery("live1", "alice", "hash1").await.expect("take"), None);
            // Its row going away leaves no ticket: the credential was used.
            db.delete_sessions(&["roomcast:live1".into()], 60_000).await.expect("delete");
            assert_eq!(db.take_recovery("live1", "alice", "hash1").await.expect("take"), None);

            // A row deleted unused leaves a ticket with the same rooms, usable once.
            db.put_session("roomcast:gone1", &sess("alice"), 60).await.expect("row");
            db.delete_sessions(&["roomcast:gone1".into()], 60_000).await.expect("delete");
            assert_eq!(db.live_session("roomcast:gone1").await.expect("read"), None);
            let rooms = db.take_recovery("gone1", "alice", "hash1").await.expect("take");
            assert_eq!(rooms, Some(vec!["a".to_owned(), "b".to_owned()]));
            assert_eq!(db.take_recovery("gone1", "alice", "hash1").await.expect("take"), None);

            // A dead node's rows become tickets too; an expired one is refused.
            db.put_session("roomcast:swept1", &sess("carol"), 60).await.expect("row");
            db.delete_node_sessions("n1", -1).await.expect("sweep");
            assert_eq!(db.take_recovery("swept1", "carol", "hash1").await.expect("take"), None);
            db.put_session("roomcast:swept2", &sess("carol"), 60).await.expect("row");
            db.delete_node_sessions("n1", 60_000).await.expect("sweep");
            assert!(db.take_recovery("swept2", "carol", "hash1").await.expect("take").is_some());
        }
    }
}
