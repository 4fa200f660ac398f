//! The SQL store: SQLite for the embedded default, Postgres in a cluster.
//!
//! Both backends have the same tables (see `migrations/`), and every query exists in a
//! dialect of each; [`Db`] picks one. The two are kept side by side in each query so a
//! change to one is seen next to the other, and every behaviour is tested on both.

pub mod nodes;
pub mod resume;
pub mod sessions;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::config::DatabaseConfig;

/// A connection pool on one of the two backends.
#[derive(Debug, Clone)]
pub enum Db {
    /// The embedded default.
    Sqlite(SqlitePool),
    /// The cluster store.
    Postgres(PgPool),
}

/// The store could not be reached or answered with an error.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A query or connection failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Runs the same query-building expression on whichever pool `db` holds, choosing the
/// SQL text by dialect: `on_pool!(db, sqlite_sql, postgres_sql, |pool, sql| expr)`.
macro_rules! on_pool {
    ($db:expr, $sqlite:expr, $postgres:expr, |$pool:ident, $sql:ident| $body:expr) => {
        match $db {
            $crate::core::db::Db::Sqlite($pool) => {
                let $sql = $sqlite;
                $body
            }
            $crate::core::db::Db::Postgres($pool) => {
                let $sql = $postgres;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

impl Db {
    /// Connects without touching the schema.
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, DbError> {
        let timeout = config.acquire_timeout;
        let url = config.url.expose();
        if url.starts_with("sqlite:") {
            // WAL lets readers go on while a writer commits; the busy timeout makes
            // concurrent writers wait instead of failing at once.
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(timeout)
                .connect_with(options)
                .await?;
            Ok(Db::Sqlite(pool))
        } else {
            let pool = PgPoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(timeout)
                .connect(url)
                .await?;
            Ok(Db::Postgres(pool))
        }
    }

    /// Brings the schema up to date. Safe to run from several nodes at once: sqlx takes
    /// an advisory lock on Postgres.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(pool) => sqlx::migrate!("../migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// True when a trivial query succeeds; used by readiness.
    pub async fn ping(&self) -> bool {
        on_pool!(self, "SELECT 1", "SELECT 1", |pool, sql| sqlx::query(sql)
            .execute(pool)
            .await
            .is_ok())
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Fresh databases for tests: a temporary SQLite file always, and a new Postgres
    //! database when `ROOMCAST_TEST_PG_URL` names a server the tests may create
    //! databases on.

    use super::*;

    /// A database that lives as long as this value.
    pub(crate) struct TestDb {
        pub(crate) db: Db,
        _dir: Option<tempfile::TempDir>,
    }

    pub(crate) async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = DatabaseConfig {
            url: format!("sqlite://{}", dir.path().join("t.db").display()).into(),
            ..DatabaseConfig::default()
        };
        let db = Db::connect(&config).await.expect("sqlite");
        db.migrate().await.expect("migrate");
        TestDb { db, _dir: Some(dir) }
    }

    pub(crate) async fn postgres() -> Option<TestDb> {
        let admin_url = std::env::var("ROOMCAST_TEST_PG_URL").ok()?;
        let admin = PgPool::connect(&admin_url).await.expect("postgres admin");
        let name = format!("rc_unit_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.expect("create db");
        let (base, _) = admin_url.rsplit_once('/').expect("url with a database");
        let config =
            DatabaseConfig { url: format!("{base}/{name}").into(), ..DatabaseConfig::default() };
        let db = Db::connect(&config).await.expect("postgres");
        db.migrate().await.expect("migrate");
        Some(TestDb { db, _dir: None })
    }

    /// Every backend available to this run.
    pub(crate) async fn all() -> Vec<TestDb> {
        let mut dbs = vec![sqlite().await];
        match postgres().await {
            Some(pg) => dbs.push(pg),
            None => eprintln!("ROOMCAST_TEST_PG_URL unset: Postgres variant skipped"),
        }
        dbs
    }
}
