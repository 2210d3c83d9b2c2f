//! The only place with SQL. It stores and returns ciphertext; it never sees a plaintext secret.

pub mod admins;
pub mod api_keys;
pub mod connections;
pub mod flows;
pub mod revocations;
pub mod rotation;
pub mod sessions;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// One database file, two kinds of connection. Writes of tokens, secrets, connections and their
/// history go through `durable` connections (`synchronous=FULL`: the WAL is fsynced at every
/// commit, so a token write survives a power cut). Reads and writes of short-lived state —
/// sessions, pending flows, refresh leases — go through `fast` connections
/// (`synchronous=NORMAL`: committed and crash-safe for the process, not fsynced one by one; a
/// power cut may forget the last moments of them, which costs a sign-in, never a token).
#[derive(Debug, Clone)]
pub struct Db {
    durable: SqlitePool,
    fast: SqlitePool,
}

impl Db {
    /// Opens (creating if needed) the database and applies the embedded migrations.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let options = |synchronous| -> anyhow::Result<SqliteConnectOptions> {
            Ok(SqliteConnectOptions::from_str("sqlite:")?
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(synchronous)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5)))
        };
        // A local SQLite connection does not go stale like a network one: no ping before each
        // use, which would cost a second thread round trip per statement.
        let durable = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(4)
            .connect_with(options(SqliteSynchronous::Full)?)
            .await
            .with_context(|| format!("cannot open the database at {}", path.display()))?;
        sqlx::migrate!("./migrations").run(&durable).await.context("cannot apply migrations")?;
        let fast = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(8)
            .connect_with(options(SqliteSynchronous::Normal)?)
            .await
            .with_context(|| format!("cannot open the database at {}", path.display()))?;
        Ok(Self { durable, fast })
    }

    /// For writes that must survive a crash, and reads alongside them.
    pub fn pool(&self) -> &SqlitePool {
        &self.durable
    }

    /// For reads, and writes of short-lived state (sessions, flows, leases).
    pub fn fast(&self) -> &SqlitePool {
        &self.fast
    }

    pub async fn ping(&self) -> bool {
        sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&self.fast).await.is_ok()
    }

    /// A durable transaction.
    pub async fn begin(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.durable.begin().await
    }

    pub async fn close(&self) {
        self.fast.close().await;
        self.durable.close().await;
    }
}
