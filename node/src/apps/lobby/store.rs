//! Lobby sessions of seed 001, shared by every node through the database.

use crate::core::db::{Db, DbError, on_pool};

/// A member's role in a lobby session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The creator; only it may start the session, and its leaving closes it.
    Host,
    /// Anyone who joined with the key.
    Client,
}

impl Role {
    /// The name seed 001 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Host => "HOST",
            Role::Client => "CLIENT",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "HOST" { Role::Host } else { Role::Client }
    }
}

/// A socket's place in a lobby session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The session.
    pub session_key: String,
    /// The member's name.
    pub name: String,
    /// HOST or CLIENT.
    pub role: Role,
}

/// What joining with a key found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinResult {
    /// Joined as CLIENT.
    Joined,
    /// No session has this key.
    UnknownKey,
    /// The session has started and takes nobody new.
    Started,
    /// The socket is in a session already.
    AlreadyMember,
}

/// Inserts a membership; false when the socket is in a session already (the socket id
/// is the primary key, so the database settles races between two nodes).
async fn add_member<'c, DB: sqlx::Database>(
    executor: impl sqlx::Executor<'c, Database = DB>,
    key: &str,
    socket_id: &str,
    name: &str,
    role: &str,
    node: &str,
) -> Result<bool, sqlx::Error>
where
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    let inserted = sqlx::query(
        "INSERT INTO lobby_members (socket_id, session_key, name, role, node)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(socket_id)
    .bind(key)
    .bind(name)
    .bind(role)
    .bind(node)
    .execute(executor)
    .await;
    match inserted {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e),
    }
}

impl Db {
    /// Creates a session with `socket_id` as its HOST. False when the socket is in a
    /// session already.
    pub async fn create_lobby(
        &self,
        key: &str,
        kind: &str,
        ph_users: i64,
        socket_id: &str,
        name: &str,
        node: &str,
    ) -> Result<bool, DbError> {
        // SQLite: take the write lock up front, so the transaction never has to upgrade a
        // read lock (which fails at once when another writer got in between).
        on_pool!(self, "BEGIN IMMEDIATE", "BEGIN", |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            sqlx::query(
                "INSERT INTO lobby_sessions (session_key, kind, ph_users) VALUES ($1, $2, $3)",
            )
            .bind(key)
            .bind(kind)
            .bind(ph_users)
            .execute(&mut *tx)
            .await?;
            if !add_member(&mut *tx, key, socket_id, name, "HOST", node).await? {
                // Rolled back now, not when the connection is next used: until then it
                // would hold SQLite's write lock.
                tx.rollback().await?;
                return Ok(false);
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Adds `socket_id` as a CLIENT of the session `key`.
    pub async fn join_lobby(
        &self,
        key: &str,
        socket_id: &str,
        name: &str,
        node: &str,
    ) -> Result<JoinResult, DbError> {
        // SQLite: take the write lock up front, so the transaction never has to upgrade a
        // read lock (which fails at once when another writer got in between).
        on_pool!(self, "BEGIN IMMEDIATE", "BEGIN", |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            let started: Option<bool> =
                sqlx::query_scalar("SELECT started FROM lobby_sessions WHERE session_key = $1")
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
            let result = match started {
                None => JoinResult::UnknownKey,
                Some(true) => JoinResult::Started,
                Some(false)
                    if add_member(&mut *tx, key, socket_id, name, "CLIENT", node).await? =>
                {
                    JoinResult::Joined
                }
                Some(false) => JoinResult::AlreadyMember,
            };
            if result == JoinResult::Joined {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok(result)
        })
    }

    /// The session a socket is in, if any.
    pub async fn lobby_membership(&self, socket_id: &str) -> Result<Option<Membership>, DbError> {
        let row: Option<(String, String, String)> = on_pool!(
            self,
            "SELECT session_key, name, role FROM lobby_members WHERE socket_id = $1",
            "SELECT session_key, name, role FROM lobby_members WHERE socket_id = $1",
            |pool, sql| sqlx::query_as(sql).bind(socket_id).fetch_optional(pool).await?
        );
        Ok(row.map(|(session_key, name, role)| Membership {
            session_key,
            name,
            role: Role::parse(&role),
        }))
    }

    /// Removes a socket from its session; a HOST's leaving deletes the session and
    /// every membership in it. Returns what the socket was.
    pub async fn leave_lobby(&self, socket_id: &str) -> Result<Option<Membership>, DbError> {
        let Some(membership) = self.lobby_membership(socket_id).await? else {
            return Ok(None);
        };
        match membership.role {
            // Members go with the session (ON DELETE CASCADE).
            Role::Host => on_pool!(
                self,
                "DELETE FROM lobby_sessions WHERE session_key = $1",
                "DELETE FROM lobby_sessions WHERE session_key = $1",
                |pool, sql| sqlx::query(sql)
                    .bind(&membership.session_key)
                    .execute(pool)
                    .await
                    .map(drop)
            )?,
            Role::Client => on_pool!(
                self,
                "DELETE FROM lobby_members WHERE socket_id = $1",
                "DELETE FROM lobby_members WHERE socket_id = $1",
                |pool, sql| sqlx::query(sql).bind(socket_id).execute(pool).await.map(drop)
            )?,
        }
        Ok(Some(membership))
    }

    /// Marks a session started; false when it was started already.
    pub async fn start_lobby(&self, key: &str) -> Result<bool, DbError> {
        let rows = on_pool!(
            self,
            "UPDATE lobby_sessions SET started = 1 WHERE session_key = $1 AND started = 0",
            "UPDATE lobby_sessions SET started = true WHERE session_key = $1 AND NOT started",
            |pool, sql| sqlx::query(sql).bind(key).execute(pool).await?.rows_affected()
        );
        Ok(rows == 1)
    }

    /// Removes a node's lobby memberships, deleting the sessions it hosted.
    pub async fn remove_node_lobby(&self, node: &str) -> Result<Vec<Membership>, DbError> {
        let rows: Vec<(String, String, String, String)> = on_pool!(
            self,
            "SELECT socket_id, session_key, name, role FROM lobby_members WHERE node = $1",
            "SELECT socket_id, session_key, name, role FROM lobby_members WHERE node = $1",
            |pool, sql| sqlx::query_as(sql).bind(node).fetch_all(pool).await?
        );
        let mut left = Vec::with_capacity(rows.len());
        for (socket_id, ..) in rows {
            if let Some(membership) = self.leave_lobby(&socket_id).await? {
                left.push(membership);
            }
        }
        // Hosts first: their members learn the session closed, not that one user left.
        left.sort_by_key(|m| m.role != Role::Host);
        Ok(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::testing;

    #[tokio::test]
    async fn lobby_lifecycle_on_every_backend() {
        for t in testing::all().await {
            let db = &t.db;
            assert!(
                db.create_lobby("K1", "default", 0, "host", "Hana", "n1").await.expect("create")
            );
            assert!(
                !db.create_lobby("K2", "default", 0, "host", "Hana", "n1").await.expect("create")
            );
            assert_eq!(
                db.join_lobby("K1", "c1", "Carl", "n2").await.expect("join"),
                JoinResult::Joined
            );
            assert_eq!(
                db.join_lobby("K1", "c1", "Carl", "n2").await.expect("join"),
                JoinResult::AlreadyMember
            );
            assert_eq!(
                db.join_lobby("NOPE", "c2", "Cy", "n2").await.expect("join"),
                JoinResult::UnknownKey
            );
            let host = db.lobby_membership("host").await.expect("get").expect("member");
            assert_eq!((host.session_key.as_str(), host.role), ("K1", Role::Host));

            assert_eq!(
                db.join_lobby("K1", "c4", "Di", "n1").await.expect("join"),
                JoinResult::Joined
            );
            assert!(db.start_lobby("K1").await.expect("start"));
            assert!(!db.start_lobby("K1").await.expect("start"));
            assert_eq!(
                db.join_lobby("K1", "c3", "Cy", "n2").await.expect("join"),
                JoinResult::Started
            );

            let left = db.leave_lobby("c1").await.expect("leave").expect("was member");
            assert_eq!(left.role, Role::Client);
            assert!(db.lobby_membership("c4").await.expect("get").is_some());
            let left = db.leave_lobby("host").await.expect("leave").expect("was member");
            assert_eq!(left.role, Role::Host);
            assert_eq!(db.lobby_membership("c4").await.expect("get"), None, "closed with its host");
            assert_eq!(db.leave_lobby("host").await.expect("leave"), None);
        }
    }

    #[tokio::test]
    async fn a_dead_nodes_memberships_go_hosts_first() {
        for t in testing::all().await {
            let db = &t.db;
            db.create_lobby("K1", "default", 0, "d-host", "Dee", "dead").await.expect("lobby");
            db.join_lobby("K1", "a-client", "Al", "alive").await.expect("join");
            db.create_lobby("K2", "default", 0, "a-host", "Ann", "alive").await.expect("lobby");
            db.join_lobby("K2", "d-client", "Dan", "dead").await.expect("join");
            let left = db.remove_node_lobby("dead").await.expect("remove");
            let roles: Vec<_> = left.iter().map(|m| (m.session_key.as_str(), m.role)).collect();
            assert_eq!(roles, [("K1", Role::Host), ("K2", Role::Client)]);
            assert_eq!(db.lobby_membership("a-client").await.expect("get"), None, "K1 closed");
            assert!(db.lobby_membership("a-host").await.expect("get").is_some(), "K2 lives");
        }
    }
}
