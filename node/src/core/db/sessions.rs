//! Rows of `express_sessions`, the table shared with connect-pg-simple.
//!
//! Express applications write login rows (`sess.user` or `sess.passport.user`); the
//! node writes one row per connected socket, keyed `roomcast:<socket id>`. Times are
//! computed by the database, as connect-pg-simple does, so a Postgres `timestamp`
//! column means the same instant to both.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Db, DbError, on_pool};

/// Prefix of the rows the node writes for its sockets.
pub const SOCKET_ROW_PREFIX: &str = "roomcast:";

/// The row key of a socket's session: `roomcast:<id>` on `/`, `roomcast:<id><ns>`
/// elsewhere, since one client's namespaces share an id.
pub fn socket_row_sid(socket_id: &str, namespace: &str) -> String {
    match namespace {
        "/" => format!("{SOCKET_ROW_PREFIX}{socket_id}"),
        ns => format!("{SOCKET_ROW_PREFIX}{socket_id}{ns}"),
    }
}

/// A live socket, as its session row describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketRow {
    /// The socket id (shared by one client's namespaces).
    pub socket: String,
    /// Its namespace.
    pub namespace: String,
    /// The authenticated user.
    pub user: String,
    /// The node holding it.
    pub node: String,
    /// The rooms it joined.
    #[serde(default)]
    pub rooms: Vec<String>,
    /// When it connected, RFC 3339.
    #[serde(rename(deserialize = "connectedAt"), default)]
    pub connected_at: Option<String>,
}

/// A user with live sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnlineUser {
    /// The login.
    pub user: String,
    /// Live sockets, every namespace and node.
    pub sockets: i64,
    /// The nodes holding them, sorted.
    pub nodes: Vec<String>,
}

/// Which live socket rows to read.
#[derive(Debug, Clone, Copy)]
pub enum SocketFilter<'a> {
    /// Every one.
    All,
    /// The sockets of one user.
    User(&'a str),
    /// One socket id, in whichever namespaces it opened.
    Socket(&'a str),
}

/// The statement that turns the `/` rows matching `$filter` (whose `$1` is bound by the
/// caller) into resume tickets expiring at `$2`, except for sockets whose credential was
/// already used: their client recovered elsewhere.
macro_rules! keep_as_tickets {
    (sqlite, $filter:literal) => {
        concat!(
            "INSERT INTO resume_tickets (sid, login, rooms, expires_ms, secret_hash)
             SELECT substr(sid, 10), json_extract(sess, '$.user'), json_extract(sess, '$.rooms'),
                    $2, json_extract(sess, '$.recovery')
             FROM express_sessions
             WHERE ",
            $filter,
            " AND json_extract(sess, '$.recovery') IS NOT NULL
               AND substr(sid, 10) NOT IN (SELECT sid FROM recovery_used)
             ON CONFLICT (sid) DO UPDATE SET login = excluded.login, rooms = excluded.rooms,
                expires_ms = excluded.expires_ms, secret_hash = excluded.secret_hash"
        )
    };
    (postgres, $filter:literal) => {
        concat!(
            "INSERT INTO resume_tickets (sid, login, rooms, expires_ms, secret_hash)
             SELECT substr(sid, 10), sess->>'user', (sess->'rooms')::text, $2, sess->>'recovery'
             FROM express_sessions
             WHERE ",
            $filter,
            " AND sess->>'recovery' IS NOT NULL
               AND substr(sid, 10) NOT IN (SELECT sid FROM recovery_used)
             ON CONFLICT (sid) DO UPDATE SET login = excluded.login, rooms = excluded.rooms,
                expires_ms = excluded.expires_ms, secret_hash = excluded.secret_hash"
        )
    };
}

/// Unix milliseconds `keep_ms` from now.
fn expiry(keep_ms: i64) -> i64 {
    chrono::Utc::now().timestamp_millis().saturating_add(keep_ms)
}

impl Db {
    /// Inserts or replaces a row that expires `ttl_secs` from now.
    pub async fn put_session(&self, sid: &str, sess: &Value, ttl_secs: i64) -> Result<(), DbError> {
        let sess = sess.to_string();
        on_pool!(
            self,
            "INSERT INTO express_sessions (sid, sess, expire)
             VALUES ($1, $2, datetime('now', $3 || ' seconds'))
             ON CONFLICT (sid) DO UPDATE SET sess = excluded.sess, expire = excluded.expire",
            "INSERT INTO express_sessions (sid, sess, expire)
             VALUES ($1, $2::json, now()::timestamp + make_interval(secs => $3))
             ON CONFLICT (sid) DO UPDATE SET sess = excluded.sess, expire = excluded.expire",
            |pool, sql| sqlx::query(sql)
                .bind(sid)
                .bind(sess)
                .bind(ttl_secs)
                .execute(pool)
                .await
                .map(drop)
        )?;
        Ok(())
    }

    /// Replaces the `sess` of an existing row, keeping its expiry. Returns whether a
    /// row was there.
    pub async fn update_session(&self, sid: &str, sess: &Value) -> Result<bool, DbError> {
        let sess = sess.to_string();
        let result = on_pool!(
            self,
            "UPDATE express_sessions SET sess = $2 WHERE sid = $1",
            "UPDATE express_sessions SET sess = $2::json WHERE sid = $1",
            |pool, sql| sqlx::query(sql).bind(sid).bind(sess).execute(pool).await?.rows_affected()
        );
        Ok(result == 1)
    }

    /// The `sess` of a row that has not expired.
    pub async fn live_session(&self, sid: &str) -> Result<Option<Value>, DbError> {
        let text: Option<String> = on_pool!(
            self,
            "SELECT sess FROM express_sessions WHERE sid = $1 AND expire > datetime('now')",
            "SELECT sess::text FROM express_sessions WHERE sid = $1 AND expire > now()",
            |pool, sql| sqlx::query_scalar(sql).bind(sid).fetch_optional(pool).await?
        );
        // A row another application wrote with broken JSON is treated as absent.
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Deletes many rows in one statement; returns how many were there. The rows of
    /// sockets on `/` with a recovery credential leave a ticket for `keep_ms` first.
    pub async fn delete_sessions(&self, sids: &[String], keep_ms: i64) -> Result<u64, DbError> {
        let sids = serde_json::to_string(sids).unwrap_or_else(|_| "[]".into());
        let done = on_pool!(
            self,
            (
                keep_as_tickets!(sqlite, "sid IN (SELECT value FROM json_each($1))"),
                "DELETE FROM express_sessions WHERE sid IN (SELECT value FROM json_each($1))"
            ),
            (
                keep_as_tickets!(postgres, "sid IN (SELECT json_array_elements_text($1::json))"),
                "DELETE FROM express_sessions WHERE sid IN (SELECT json_array_elements_text($1::json))"
            ),
            |pool, sql| {
                let mut tx = pool.begin().await?;
                sqlx::query(sql.0).bind(&sids).bind(expiry(keep_ms)).execute(&mut *tx).await?;
                let done = sqlx::query(sql.1).bind(&sids).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                done
            }
        );
        Ok(done)
    }

    /// Pushes the expiry of every socket row a node wrote to `ttl_secs` from now, so
    /// that long-lived connections outlive `database.session_ttl`; returns how many.
    pub async fn refresh_node_sessions(
        &self,
        node_id: &str,
        ttl_secs: i64,
    ) -> Result<u64, DbError> {
        let rows = on_pool!(
            self,
            "UPDATE express_sessions SET expire = datetime('now', $2 || ' seconds')
             WHERE sid LIKE 'roomcast:%' AND json_extract(sess, '$.node') = $1",
            "UPDATE express_sessions SET expire = now()::timestamp + make_interval(secs => $2)
             WHERE sid LIKE 'roomcast:%' AND sess->>'node' = $1",
            |pool, sql| sqlx::query(sql)
                .bind(node_id)
                .bind(ttl_secs)
                .execute(pool)
                .await?
                .rows_affected()
        );
        Ok(rows)
    }

    /// Deletes every socket row a node wrote; returns how many. Rows with a recovery
    /// credential leave a ticket for `keep_ms` first, as in [`Db::delete_sessions`].
    pub async fn delete_node_sessions(&self, node_id: &str, keep_ms: i64) -> Result<u64, DbError> {
        let rows = on_pool!(
            self,
            (
                keep_as_tickets!(
                    sqlite,
                    "sid LIKE 'roomcast:%' AND json_extract(sess, '$.node') = $1"
                ),
                "DELETE FROM express_sessions
                 WHERE sid LIKE 'roomcast:%' AND json_extract(sess, '$.node') = $1"
            ),
            (
                keep_as_tickets!(postgres, "sid LIKE 'roomcast:%' AND sess->>'node' = $1"),
                "DELETE FROM express_sessions WHERE sid LIKE 'roomcast:%' AND sess->>'node' = $1"
            ),
            |pool, sql| {
                let mut tx = pool.begin().await?;
                sqlx::query(sql.0).bind(node_id).bind(expiry(keep_ms)).execute(&mut *tx).await?;
                let done =
                    sqlx::query(sql.1).bind(node_id).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                done
            }
        );
        Ok(rows)
    }

    /// Logins of the live socket rows whose `rooms` include `room`, sorted, once each.
    pub async fn room_users(&self, room: &str) -> Result<Vec<String>, DbError> {
        let users: Vec<String> = on_pool!(
            self,
            "SELECT DISTINCT json_extract(s.sess, '$.user') AS u
             FROM express_sessions s, json_each(s.sess, '$.rooms') r
             WHERE s.sid LIKE 'roomcast:%' AND r.value = $1 AND s.expire > datetime('now')
               AND json_extract(s.sess, '$.user') IS NOT NULL
             ORDER BY u",
            "SELECT DISTINCT sess->>'user' AS u FROM express_sessions
             WHERE sid LIKE 'roomcast:%' AND (sess::jsonb)->'rooms' @> jsonb_build_array($1::text)
               AND expire > now() AND sess->>'user' IS NOT NULL
             ORDER BY u",
            |pool, sql| sqlx::query_scalar(sql).bind(room).fetch_all(pool).await?
        );
        Ok(users)
    }
}

impl Db {
    /// Live socket rows, every node, sorted by row key, at most `limit`.
    pub async fn live_sockets(
        &self,
        filter: SocketFilter<'_>,
        limit: i64,
    ) -> Result<Vec<SocketRow>, DbError> {
        let (user, socket) = match filter {
            SocketFilter::All => (None, None),
            SocketFilter::User(user) => (Some(user), None),
            SocketFilter::Socket(socket) => (None, Some(socket)),
        };
        let rows: Vec<String> = on_pool!(
            self,
            "SELECT sess FROM express_sessions
             WHERE sid LIKE 'roomcast:%' AND expire > datetime('now')
               AND ($1 IS NULL OR json_extract(sess, '$.user') = $1)
               AND ($2 IS NULL OR json_extract(sess, '$.socket') = $2)
             ORDER BY sid LIMIT $3",
            "SELECT sess::text FROM express_sessions
             WHERE sid LIKE 'roomcast:%' AND expire > now()
               AND ($1::text IS NULL OR sess->>'user' = $1)
               AND ($2::text IS NULL OR sess->>'socket' = $2)
             ORDER BY sid LIMIT $3",
            |pool, sql| sqlx::query_scalar(sql)
                .bind(user)
                .bind(socket)
                .bind(limit)
                .fetch_all(pool)
                .await?
        );
        // A row in another shape (written by something else) is not one of our sockets.
        Ok(rows.iter().filter_map(|sess| serde_json::from_str(sess).ok()).collect())
    }

    /// Users with live socket rows, by login, with their socket count and nodes.
    pub async fn online_users(&self) -> Result<Vec<OnlineUser>, DbError> {
        let rows: Vec<(String, i64, Option<String>)> = on_pool!(
            self,
            "SELECT json_extract(sess, '$.user') AS u, COUNT(*),
                    group_concat(DISTINCT json_extract(sess, '$.node'))
             FROM express_sessions
             WHERE sid LIKE 'roomcast:%' AND expire > datetime('now') AND u IS NOT NULL
             GROUP BY u ORDER BY u",
            "SELECT sess->>'user' AS u, COUNT(*), string_agg(DISTINCT sess->>'node', ',')
             FROM express_sessions
             WHERE sid LIKE 'roomcast:%' AND expire > now() AND sess->>'user' IS NOT NULL
             GROUP BY u ORDER BY u",
            |pool, sql| sqlx::query_as(sql).fetch_all(pool).await?
        );
        Ok(rows
            .into_iter()
            .map(|(user, sockets, nodes)| {
                // Node ids hold no commas (`node.id` is [A-Za-z0-9._-]).
                let mut nodes: Vec<String> =
                    nodes.unwrap_or_default().split(',').map(str::to_owned).collect();
                nodes.retain(|n| !n.is_empty());
                nodes.sort();
                OnlineUser { user, sockets, nodes }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::db::testing;

    #[tokio::test]
    async fn rows_round_trip_on_every_backend() {
        for t in testing::all().await {
            let db = &t.db;
            let sid = socket_row_sid("abc", "/");
            assert_eq!(socket_row_sid("abc", "/lobby"), "roomcast:abc/lobby");
            let sess = json!({"user": "alice", "rooms": ["r1", "r2"]});
            db.put_session(&sid, &sess, 60).await.expect("put");
            assert_eq!(db.live_session(&sid).await.expect("get"), Some(sess));

            let sess = json!({"user": "alice", "rooms": ["r2"]});
            assert!(db.update_session(&sid, &sess).await.expect("update"));
            assert_eq!(db.live_session(&sid).await.expect("get"), Some(sess));
            assert!(!db.update_session("roomcast:none", &json!({})).await.expect("update"));

            db.put_session("roomcast:b", &json!({"user": "bob", "rooms": ["r2"]}), 60)
                .await
                .expect("put");
            db.put_session("roomcast:c", &json!({"user": "alice", "rooms": ["r2"]}), 60)
                .await
                .expect("put");
            assert_eq!(db.room_users("r2").await.expect("users"), ["alice", "bob"]);
            assert!(db.room_users("r1").await.expect("users").is_empty());

            assert_eq!(
                db.delete_sessions(&[sid.clone(), "roomcast:none".into()], 60_000)
                    .await
                    .expect("delete"),
                1
            );
            assert_eq!(db.live_session(&sid).await.expect("get"), None);

            db.put_session("roomcast:n1", &json!({"user": "a", "node": "n1"}), 60)
                .await
                .expect("put");
            db.put_session("express", &json!({"user": "a", "node": "n1"}), 60).await.expect("put");
            db.put_session("roomcast:n1x", &json!({"user": "b", "node": "n1"}), -5)
                .await
                .expect("put");
            assert_eq!(db.live_session("roomcast:n1x").await.expect("get"), None, "expired");
            assert_eq!(db.refresh_node_sessions("n1", 60).await.expect("refresh"), 2);
            assert!(db.live_session("roomcast:n1x").await.expect("get").is_some(), "refreshed");
            assert_eq!(db.delete_node_sessions("n1", 60_000).await.expect("sweep"), 2);
            assert!(db.live_session("express").await.expect("get").is_some());
        }
    }

    #[tokio::test]
    async fn rows_are_deleted_in_batches() {
        for t in testing::all().await {
            for sid in ["roomcast:a", "roomcast:b", "keep"] {
                t.db.put_session(sid, &json!({"user": "a"}), 60).await.expect("put");
            }
            let gone =
                ["roomcast:a".to_owned(), "roomcast:b".to_owned(), "roomcast:none".to_owned()];
            assert_eq!(t.db.delete_sessions(&gone, 60_000).await.expect("delete"), 2);
            assert_eq!(t.db.delete_sessions(&[], 60_000).await.expect("delete"), 0);
            assert!(t.db.live_session("keep").await.expect("get").is_some());
            assert_eq!(t.db.live_session("roomcast:a").await.expect("get"), None);
        }
    }

    #[tokio::test]
    async fn live_sockets_and_users_are_listed_cluster_wide() {
        for t in testing::all().await {
            let row = |socket: &str, ns: &str, user: &str, node: &str| {
                json!({"user": user, "node": node, "socket": socket, "namespace": ns,
                       "rooms": ["r"], "connectedAt": "2026-01-01T00:00:00.000Z"})
            };
            let puts = [
                ("s1", "/", "alice", "n1", 60),
                ("s1", "/chat", "alice", "n1", 60),
                ("s2", "/", "alice", "n2", 60),
                ("s3", "/", "bob", "n2", 60),
                ("s4", "/", "carol", "n3", -5),
            ];
            for (socket, ns, user, node, ttl) in puts {
                let sid = socket_row_sid(socket, ns);
                t.db.put_session(&sid, &row(socket, ns, user, node), ttl).await.expect("put");
            }
            // An Express login row is no socket.
            t.db.put_session("express1", &json!({"user": "dave"}), 60).await.expect("put");

            let all = t.db.live_sockets(SocketFilter::All, 100).await.expect("all");
            let keys: Vec<_> =
                all.iter().map(|s| (s.socket.as_str(), s.namespace.as_str())).collect();
            assert_eq!(keys, [("s1", "/"), ("s1", "/chat"), ("s2", "/"), ("s3", "/")]);
            assert_eq!(all[0].rooms, ["r"]);
            assert_eq!(all[0].connected_at.as_deref(), Some("2026-01-01T00:00:00.000Z"));
            assert_eq!(t.db.live_sockets(SocketFilter::All, 2).await.expect("limit").len(), 2);
            let alice = t.db.live_sockets(SocketFilter::User("alice"), 100).await.expect("user");
            assert_eq!(alice.len(), 3);
            let s1 = t.db.live_sockets(SocketFilter::Socket("s1"), 100).await.expect("socket");
            assert_eq!(s1.len(), 2);
            assert!(
                t.db.live_sockets(SocketFilter::Socket("s4"), 100).await.expect("x").is_empty()
            );

            let users = t.db.online_users().await.expect("users");
            let alice = OnlineUser {
                user: "alice".into(),
                sockets: 3,
                nodes: vec!["n1".into(), "n2".into()],
            };
            let bob = OnlineUser { user: "bob".into(), sockets: 1, nodes: vec!["n2".into()] };
            assert_eq!(users, [alice, bob]);
        }
    }

    #[tokio::test]
    async fn expired_rows_are_not_live() {
        for t in testing::all().await {
            t.db.put_session("s1", &json!({"user": "alice"}), -5).await.expect("put");
            assert_eq!(t.db.live_session("s1").await.expect("get"), None);
            t.db.put_session("roomcast:x", &json!({"user": "a", "rooms": ["r"]}), -5)
                .await
                .expect("put");
            assert!(t.db.room_users("r").await.expect("users").is_empty());
        }
    }
}
