//! The to-do list of seed 002.

use serde::Serialize;

use crate::core::db::{Db, DbError, on_pool};

/// One to-do item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Todo {
    /// Its id.
    pub id: i64,
    /// What to do.
    pub title: String,
    /// Login of who added it.
    pub author: String,
}

impl Db {
    /// Every item, oldest first.
    pub async fn todos(&self) -> Result<Vec<Todo>, DbError> {
        let todos = on_pool!(
            self,
            "SELECT id, title, author FROM todos ORDER BY id",
            "SELECT id, title, author FROM todos ORDER BY id",
            |pool, sql| sqlx::query_as(sql).fetch_all(pool).await?
        );
        Ok(todos)
    }

    /// Adds an item.
    pub async fn add_todo(&self, title: &str, author: &str) -> Result<(), DbError> {
        on_pool!(
            self,
            "INSERT INTO todos (title, author) VALUES ($1, $2)",
            "INSERT INTO todos (title, author) VALUES ($1, $2)",
            |pool, sql| sqlx::query(sql).bind(title).bind(author).execute(pool).await.map(drop)
        )?;
        Ok(())
    }

    /// Removes an item; false when there was none with this id.
    pub async fn remove_todo(&self, id: i64) -> Result<bool, DbError> {
        let rows = on_pool!(
            self,
            "DELETE FROM todos WHERE id = $1",
            "DELETE FROM todos WHERE id = $1",
            |pool, sql| sqlx::query(sql).bind(id).execute(pool).await?.rows_affected()
        );
        Ok(rows == 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::core::db::testing;

    #[tokio::test]
    async fn todos_on_every_backend() {
        for t in testing::all().await {
            t.db.add_todo("milk", "alice").await.expect("add");
            t.db.add_todo("bread", "bob").await.expect("add");
            let todos = t.db.todos().await.expect("list");
            assert_eq!(
                todos.iter().map(|t| t.title.as_str()).collect::<Vec<_>>(),
                ["milk", "bread"]
            );
            assert!(t.db.remove_todo(todos[0].id).await.expect("remove"));
            assert!(!t.db.remove_todo(todos[0].id).await.expect("remove"));
            assert_eq!(t.db.todos().await.expect("list").len(), 1);
        }
    }
}
