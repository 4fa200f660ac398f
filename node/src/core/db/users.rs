//! The `users` table: logins and their argon2id password hashes.

use serde::Serialize;

use super::{Db, DbError, on_pool};

/// A user as the admin API lists it; the hash stays in the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRow {
    /// The login.
    pub login: String,
    /// When the user was created, RFC 3339 UTC.
    pub created_at: String,
}

impl Db {
    /// Adds a user; returns false when the login is taken.
    pub async fn create_user(&self, login: &str, password_hash: &str) -> Result<bool, DbError> {
        let inserted = on_pool!(
            self,
            "INSERT INTO users (login, password_hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            "INSERT INTO users (login, password_hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            |pool, sql| sqlx::query(sql)
                .bind(login)
                .bind(password_hash)
                .execute(pool)
                .await?
                .rows_affected()
        );
        Ok(inserted == 1)
    }

    /// The stored hash of a login, if the user exists.
    pub async fn password_hash(&self, login: &str) -> Result<Option<String>, DbError> {
        let hash = on_pool!(
            self,
            "SELECT password_hash FROM users WHERE login = $1",
            "SELECT password_hash FROM users WHERE login = $1",
            |pool, sql| sqlx::query_scalar(sql).bind(login).fetch_optional(pool).await?
        );
        Ok(hash)
    }

    /// Whether a user with this login exists.
    pub async fn user_exists(&self, login: &str) -> Result<bool, DbError> {
        Ok(self.password_hash(login).await?.is_some())
    }

    /// Every user, by login.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, DbError> {
        let rows: Vec<(String, String)> = on_pool!(
            self,
            "SELECT login, strftime('%Y-%m-%dT%H:%M:%SZ', created_at) FROM users ORDER BY login",
            "SELECT login, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM users ORDER BY login",
            |pool, sql| sqlx::query_as(sql).fetch_all(pool).await?
        );
        Ok(rows.into_iter().map(|(login, created_at)| UserRow { login, created_at }).collect())
    }

    /// Deletes a user; returns whether there was one.
    pub async fn delete_user(&self, login: &str) -> Result<bool, DbError> {
        let deleted = on_pool!(
            self,
            "DELETE FROM users WHERE login = $1",
            "DELETE FROM users WHERE login = $1",
            |pool, sql| sqlx::query(sql).bind(login).execute(pool).await?.rows_affected()
        );
        Ok(deleted == 1)
    }

    /// Replaces a user's password hash; returns whether the user exists.
    pub async fn set_password_hash(&self, login: &str, hash: &str) -> Result<bool, DbError> {
        let updated = on_pool!(
            self,
            "UPDATE users SET password_hash = $2 WHERE login = $1",
            "UPDATE users SET password_hash = $2 WHERE login = $1",
            |pool, sql| sqlx::query(sql)
                .bind(login)
                .bind(hash)
                .execute(pool)
                .await?
                .rows_affected()
        );
        Ok(updated == 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::core::db::testing;

    #[tokio::test]
    async fn users_are_unique_by_login() {
        for t in testing::all().await {
            assert!(t.db.create_user("alice", "h1").await.expect("create"));
            assert!(!t.db.create_user("alice", "h2").await.expect("create"));
            assert_eq!(t.db.password_hash("alice").await.expect("get").as_deref(), Some("h1"));
            assert_eq!(t.db.password_hash("bob").await.expect("get"), None);
        }
    }

    #[tokio::test]
    async fn users_are_listed_rehashed_and_deleted() {
        for t in testing::all().await {
            for login in ["bob", "alice"] {
                assert!(t.db.create_user(login, "h").await.expect("create"));
            }
            let users = t.db.list_users().await.expect("list");
            let logins: Vec<_> = users.iter().map(|u| u.login.as_str()).collect();
            assert_eq!(logins, ["alice", "bob"]);
            assert!(users[0].created_at.ends_with('Z') && users[0].created_at.contains('T'));

            assert!(t.db.set_password_hash("alice", "h2").await.expect("update"));
            assert_eq!(t.db.password_hash("alice").await.expect("get").as_deref(), Some("h2"));
            assert!(!t.db.set_password_hash("nobody", "h2").await.expect("update"));

            assert!(t.db.delete_user("alice").await.expect("delete"));
            assert!(!t.db.delete_user("alice").await.expect("delete again"));
            assert!(!t.db.user_exists("alice").await.expect("exists"));
            assert!(t.db.user_exists("bob").await.expect("exists"));
        }
    }
}
