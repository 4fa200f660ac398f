//! The `users` table: logins and their argon2id password hashes.

use super::{Db, DbError, on_pool};

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
}

#[cfg(test)]
mod tests {
    use crate::db::testing;

    #[tokio::test]
    async fn users_are_unique_by_login() {
        for t in testing::all().await {
            assert!(t.db.create_user("alice", "h1").await.expect("create"));
            assert!(!t.db.create_user("alice", "h2").await.expect("create"));
            assert_eq!(t.db.password_hash("alice").await.expect("get").as_deref(), Some("h1"));
            assert_eq!(t.db.password_hash("bob").await.expect("get"), None);
        }
    }
}
