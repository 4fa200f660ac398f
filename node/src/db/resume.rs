//! Resume tickets: the rooms of sockets a draining node closed, so their clients get
//! them back on whichever node they reconnect to.

use super::{Db, DbError, on_pool};

/// One closed socket's rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The closed socket's id.
    pub sid: String,
    /// Its login; only the same login may use the ticket.
    pub login: String,
    /// Its rooms.
    pub rooms: Vec<String>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Db {
    /// Stores tickets that expire after `ttl_ms`, in one transaction; an existing
    /// ticket for a sid is replaced.
    pub async fn save_tickets(&self, tickets: &[Ticket], ttl_ms: i64) -> Result<(), DbError> {
        let expires = now_ms().saturating_add(ttl_ms);
        let upsert =
            "INSERT INTO resume_tickets (sid, login, rooms, expires_ms) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (sid) DO UPDATE SET login = excluded.login, rooms = excluded.rooms,
                   expires_ms = excluded.expires_ms";
        on_pool!(self, upsert, upsert, |pool, sql| {
            let mut tx = pool.begin().await?;
            for ticket in tickets {
                let rooms = serde_json::to_string(&ticket.rooms).unwrap_or_else(|_| "[]".into());
                sqlx::query(sql)
                    .bind(&ticket.sid)
                    .bind(&ticket.login)
                    .bind(rooms)
                    .bind(expires)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?
        });
        Ok(())
    }

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

    /// Deletes expired tickets; returns how many.
    pub async fn delete_expired_tickets(&self) -> Result<u64, DbError> {
        let done = on_pool!(
            self,
            "DELETE FROM resume_tickets WHERE expires_ms <= $1",
            "DELETE FROM resume_tickets WHERE expires_ms <= $1",
            |pool, sql| sqlx::query(sql).bind(now_ms()).execute(pool).await?.rows_affected()
        );
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use crate::db::testing;

    use super::*;

    #[tokio::test]
    async fn tickets_are_used_once_by_their_login() {
        for t in testing::all().await {
            let db = &t.db;
            let ticket = Ticket {
                sid: "s1".into(),
                login: "alice".into(),
                rooms: vec!["a".into(), "b".into()],
            };
            db.save_tickets(std::slice::from_ref(&ticket), 60_000).await.expect("save");
            assert_eq!(db.take_ticket("s1", "bob").await.expect("take"), None, "other login");
            assert_eq!(db.take_ticket("s1", "alice").await.expect("take"), Some(ticket.rooms));
            assert_eq!(db.take_ticket("s1", "alice").await.expect("take"), None, "used once");

            let stale = Ticket { sid: "s2".into(), login: "alice".into(), rooms: vec![] };
            db.save_tickets(&[stale], -1).await.expect("save");
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
}
