//! The store: the only place with SQL. One API, two engines, chosen by
//! `CLINIC_CONNECT_DATABASE_URL`: SQLite (`sqlite://PATH`, the embedded default, for one host) and
//! PostgreSQL (`postgres://…`, for several instances on several hosts). The rest of the app never
//! learns which one is underneath. It stores and returns ciphertext only.
//!
//! How it is written, once, for both engines:
//! - each method is one thing the app does ("take a pending flow", "store a grant", "lease due
//!   refreshes") and is compiled once per engine by [`on_engine!`] (a read) or [`transaction!`]
//!   (every write: one way to write, a transaction);
//! - the SQL is the same text on both: sqlx binds `$1`, `$2`… on SQLite too, both engines speak
//!   `INSERT … ON CONFLICT`, `UPDATE … RETURNING` and `DELETE … RETURNING`; where they differ
//!   (PostgreSQL's `FOR UPDATE SKIP LOCKED`) the method says so;
//! - nothing is cached across requests: a request reads what it needs, in as few statements as
//!   the schema allows, so that every instance sees every write at once;
//! - what must happen once among all instances (a refresh, a revocation retry) is claimed with a
//!   lease on its row, by compare-and-swap in the `UPDATE` itself.
//!
//! Each engine has its own embedded migrations (`migrations/sqlite/`, `migrations/postgres/`),
//! the same schema in meaning.

/// Runs `$body` with `$pool` bound to this engine's pool (a counted executor). The body is
/// compiled once per engine, so the same code serves both.
macro_rules! on_engine {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.engine {
            $crate::db::Engine::Sqlite(pool) => {
                let $pool = $crate::db::counted::Counted::new(pool, &*$db.statements);
                $body
            }
            $crate::db::Engine::Postgres(pool) => {
                let $pool = $crate::db::counted::Counted::new(pool, &*$db.statements);
                $body
            }
        }
    };
}

/// Runs `$body` in a write transaction bound to `$tx` (statements go through `$tx.c()`), and
/// commits it; an error (`?`) inside leaves it to roll back. Evaluates to the body's value.
macro_rules! transaction {
    ($db:expr, |$tx:ident| $body:expr) => {
        match &$db.engine {
            $crate::db::Engine::Sqlite(pool) => {
                // BEGIN IMMEDIATE takes SQLite's one write lock at the start, waiting for it up to
                // the busy timeout, instead of failing when a read later turns into a write.
                let begin = pool.begin_with("BEGIN IMMEDIATE");
                #[allow(unused_mut)]
                let mut $tx = $crate::db::counted::Tx::begin(begin, &*$db.statements).await?;
                let value = $body;
                $tx.commit().await?;
                value
            }
            $crate::db::Engine::Postgres(pool) => {
                #[allow(unused_mut)]
                let mut $tx = $crate::db::counted::Tx::begin(pool.begin(), &*$db.statements).await?;
                let value = $body;
                $tx.commit().await?;
                value
            }
        }
    };
}

pub mod admin_page;
pub mod admins;
pub mod api_keys;
pub mod connections;
pub mod copy;
mod counted;
pub mod flows;
pub mod health;
pub mod invitations;
pub mod key_check;
mod refreshes;
pub mod revocations;
pub mod rotation;
pub mod sessions;
mod setup;
pub mod sign_in;

#[cfg(test)]
pub(crate) mod fixtures;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

/// Where the store lives and how many connections it may hold.
#[derive(Clone)]
pub struct Config {
    /// `sqlite://PATH` or `postgres://…` (which may carry a password).
    pub url: SecretString,
    /// Connections in the pool; `None` for the engine's default.
    pub max_connections: Option<u32>,
    /// How long a request waits for a connection (and SQLite for its write lock) before it fails.
    pub timeout: Duration,
}

impl Config {
    pub fn sqlite(path: &Path) -> Self {
        Self {
            url: SecretString::from(format!("sqlite://{}", path.display())),
            max_connections: None,
            timeout: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("engine", &engine_name(self.url.expose_secret()))
            .field("max_connections", &self.max_connections)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn engine_name(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "sqlite"
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        "postgres"
    } else {
        "unknown"
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Engine {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The store. Cheap to clone: the pool and the counter are shared.
#[derive(Clone, Debug)]
pub struct Db {
    engine: Engine,
    /// Statements sent, counted (see [`counted`]).
    statements: Arc<AtomicU64>,
}

impl Db {
    /// Connects (creating a SQLite file if needed) and applies the engine's migrations.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let url = config.url.expose_secret();
        let engine = match engine_name(url) {
            "sqlite" => Engine::Sqlite(open_sqlite(url, config).await?),
            "postgres" => Engine::Postgres(open_postgres(url, config).await?),
            _ => bail!("CLINIC_CONNECT_DATABASE_URL must start with sqlite:// or postgres://"),
        };
        match &engine {
            Engine::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
            Engine::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        }
        .context("cannot apply the database migrations")?;
        Ok(Self { engine, statements: Arc::default() })
    }

    /// `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite(_) => "sqlite",
            Engine::Postgres(_) => "postgres",
        }
    }

    /// The statements this process has sent so far.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        on_engine!(self, |pool| sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool).await.is_ok())
    }

    pub async fn close(&self) {
        match &self.engine {
            Engine::Sqlite(pool) => pool.close().await,
            Engine::Postgres(pool) => pool.close().await,
        }
    }

    /// PostgreSQL's row locks for a lease's candidates: two instances leasing at once take
    /// different rows instead of waiting on each other's. SQLite has one writer at a time, which
    /// already makes a lease's `UPDATE` atomic.
    fn skip_locked(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite(_) => "",
            Engine::Postgres(_) => "FOR UPDATE SKIP LOCKED",
        }
    }
}

async fn open_sqlite(url: &str, config: &Config) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str(url)
        .context("CLINIC_CONNECT_DATABASE_URL is not a SQLite URL")?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // Every commit is fsynced (the WAL at each commit): a stored token survives a power cut.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(config.timeout);
    let path = options.get_filename().to_owned();
    create_owner_only(&path)?;
    SqlitePoolOptions::new()
        // Eight connections: SQLite reads in parallel (WAL) but writes one at a time, and sqlx's
        // pool pings every connection as it comes back (a round trip to its thread), so a
        // connection is busy for two round trips per statement. With 32 requests in flight on
        // two server workers, 4 connections were the queue (dashboard pages/s of the binary
        // alone: 2: ~3,700, 4: ~4,800, 8: ~5,400, 16 or 32: no better); each costs a thread and
        // up to 2 MiB of page cache.
        .max_connections(config.max_connections.unwrap_or(8))
        .min_connections(1)
        .acquire_timeout(config.timeout)
        // A local file does not go stale the way a network connection does; testing each
        // connection before lending it would double every statement's round trips.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot open the database at {}", path.display()))
}

async fn open_postgres(url: &str, config: &Config) -> anyhow::Result<PgPool> {
    // `sslmode=require|verify-full` (and `sslrootcert=`) in the URL turn on TLS, through rustls.
    let options = PgConnectOptions::from_str(url).context("CLINIC_CONNECT_DATABASE_URL is not a PostgreSQL URL")?;
    PgPoolOptions::new()
        .max_connections(config.max_connections.unwrap_or(10))
        .acquire_timeout(config.timeout)
        // No test before lending: sqlx already pings every connection as it goes back to the pool
        // and drops a broken one, so after a PostgreSQL restart the pool refills by itself; a
        // second ping before each use would double every request's round trips.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL")
}

/// Creates the database file owner-only (0600) before SQLite opens it: SQLite gives its `-wal`
/// and `-shm` files the database file's permissions. A file that already exists and is readable
/// by others gets a warning naming it.
fn create_owner_only(path: &Path) -> anyhow::Result<()> {
    if path.as_os_str().is_empty() || path.to_str() == Some(":memory:") {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                for file in database_files(path) {
                    crate::files::warn_if_readable_by_others(&file);
                }
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }
    Ok(())
}

fn database_files(path: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm"].iter().map(|suffix| PathBuf::from(format!("{}{suffix}", path.display()))).collect()
}
