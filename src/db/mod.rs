//! The only place with SQL. It stores and returns ciphertext; it never sees a plaintext secret.

pub mod admins;
pub mod api_keys;
pub mod cache;
pub mod connections;
pub mod flows;
mod hot;
pub mod pool;
pub mod revocations;
pub mod rotation;
pub mod sessions;
pub mod writer;

#[cfg(test)]
pub(crate) mod fixtures;

use std::future::Future;
use std::hash::Hash;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous, SqliteTransactionManager,
};
use sqlx::TransactionManager;

use self::admins::AdminRow;
use self::cache::{ChangeStamps, Coherence, Observation, OwnWrite, ReadCache, Seen, Stamp};
use self::connections::{ConnectionRow, EventRow};
use self::pool::{Connections, PooledConnection};
use self::sessions::SessionRow;
use self::writer::Writer;

/// One database file, two kinds of connection. Writes of tokens, secrets, connections and their
/// history go through `durable` connections (`synchronous=FULL`: the WAL is fsynced at every
/// commit, so a token write survives a power cut). Reads and writes of short-lived state —
/// sessions, pending flows, refresh leases — go through `fast` connections
/// (`synchronous=NORMAL`: committed and crash-safe for the process, not fsynced one by one; a
/// power cut may forget the last moments of them, which costs a sign-in, never a token).
///
/// The reads every request makes go through [`cache`]: served from memory while nothing they
/// depend on has been committed to the database since they were read, by any process. The
/// request path's writes (a pending flow added or taken, a grant stored) go through `db::hot`: on a
/// writer thread, together with the others queued at the same moment.
#[derive(Clone)]
pub struct Db {
    durable: Connections,
    fast: Connections,
    stamps: Option<Arc<ChangeStamps>>,
    coherence: Arc<Coherence>,
    caches: Arc<Caches>,
    /// This process's turn to write. SQLite lets one connection write at a time and makes the
    /// others poll with sleeps of 1 ms and more; queueing here instead hands the write lock on
    /// the moment it is free. (Other processes still meet SQLite's own busy handling.)
    writer: Arc<tokio::sync::Mutex<()>>,
    /// The thread the request path's writes run on (see [`writer`]).
    hot_writes: Arc<Writer<hot::Queued>>,
    reads: Arc<ReadCounts>,
}

/// How long a cached read waits for one of this process's writes to say whether a commit it
/// meets was that write's (the write is past its commit then; this is the hop back to its thread).
const LANDING_WAIT: Duration = Duration::from_millis(2);

/// How the cached reads were served, for `/metrics`.
#[derive(Default)]
struct ReadCounts {
    memory: AtomicU64,
    database: AtomicU64,
}

/// What the hot paths read: a page's session and admin, a clinic's connections, a proxy call's
/// API key and connection.
pub(crate) struct Caches {
    sessions: ReadCache<(String, String), Option<SessionRow>>,
    admins: ReadCache<i64, Option<AdminRow>>,
    clinic_connections: ReadCache<i64, Vec<ConnectionRow>>,
    connections: ReadCache<(i64, String), Option<ConnectionRow>>,
    api_keys: ReadCache<String, Option<i64>>,
    /// A connection's newest history entries.
    history: ReadCache<(i64, String), Arc<Vec<EventRow>>>,
}

impl Default for Caches {
    fn default() -> Self {
        Self {
            sessions: ReadCache::new(10_000),
            admins: ReadCache::new(10_000),
            clinic_connections: ReadCache::new(2_000),
            connections: ReadCache::new(10_000),
            api_keys: ReadCache::new(10_000),
            history: ReadCache::new(2_000),
        }
    }
}

impl Caches {
    fn forget_connection(&self, clinic_id: i64, vendor: &str) {
        self.connections.forget(&(clinic_id, vendor.to_owned()));
        self.clinic_connections.forget(&clinic_id);
    }

    /// After this process's own write of a session (at `seen`): the row as the database now holds
    /// it, or its absence.
    fn stored_session(&self, seen: Seen, id: &str, kind: &str, row: Option<SessionRow>) {
        self.sessions.put(seen, (id.to_owned(), kind.to_owned()), row);
    }

    /// After this process's own write of `row` (at `seen`): the row as the database now holds it.
    fn stored_connection(&self, seen: Seen, row: ConnectionRow) {
        self.clinic_connections.forget(&row.clinic_id);
        self.connections.put(seen, (row.clinic_id, row.vendor.clone()), Some(row));
    }

    /// After this process's own write added `event` to a connection's history (at `seen`): a
    /// history held from before the write gains it on top; none is read again.
    fn added_history(&self, seen: Seen, clinic_id: i64, vendor: &str, event: EventRow) {
        self.history.update(seen, &(clinic_id, vendor.to_owned()), |events| {
            let events = Arc::make_mut(events);
            events.insert(0, event);
            events.truncate(connections::HISTORY_SHOWN);
        });
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("read_cache", &self.stamps.is_some()).finish_non_exhaustive()
    }
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
        // Few connections: the hot reads are served from memory, writes take turns anyway, and
        // each connection is a thread and a page cache that every other connection's write
        // invalidates. Not sqlx's `Pool`: see [`pool`] for why.
        let durable = Connections::open(&options(SqliteSynchronous::Full)?, 2)
            .await
            .with_context(|| format!("cannot open the database at {}", path.display()))?;
        sqlx::migrate!("./migrations").run(&mut *durable.acquire().await?).await.context("cannot apply migrations")?;
        let fast = Connections::open(&options(SqliteSynchronous::Normal)?, 3)
            .await
            .with_context(|| format!("cannot open the database at {}", path.display()))?;
        let stamps = ChangeStamps::open(path, &options(SqliteSynchronous::Normal)?).await.map(Arc::new);
        if stamps.is_none() {
            tracing::warn!("the database's change stamp cannot be read; every read goes to SQLite");
        }
        let hot_writes = Arc::new(Writer::start(hot::write_batch).context("cannot start the database writer thread")?);
        Ok(Self {
            durable,
            fast,
            stamps,
            coherence: Arc::default(),
            caches: Arc::default(),
            writer: Arc::default(),
            hot_writes,
            reads: Arc::default(),
        })
    }

    /// `read`'s value, from memory when nothing it depends on was committed since it was read.
    async fn cached<K, V, F>(&self, cache: &ReadCache<K, V>, key: K, read: F) -> sqlx::Result<V>
    where
        K: Hash + Eq,
        V: Clone,
        F: Future<Output = sqlx::Result<V>>,
    {
        let Some(seen) = self.observe().await else {
            self.reads.database.fetch_add(1, Ordering::Relaxed);
            return read.await;
        };
        if let Some(value) = cache.get(seen, &key) {
            self.reads.memory.fetch_add(1, Ordering::Relaxed);
            return Ok(value);
        }
        self.reads.database.fetch_add(1, Ordering::Relaxed);
        let value = read.await?;
        self.coherence.keep_if_current(seen, || cache.put(seen, key, value.clone()));
        Ok(value)
    }

    /// The cached reads so far: (served from memory, read from SQLite).
    pub fn cached_read_counts(&self) -> (u64, u64) {
        (self.reads.memory.load(Ordering::Relaxed), self.reads.database.load(Ordering::Relaxed))
    }

    /// The state a cached read belongs to; `None` when it must go to SQLite and keep nothing.
    /// When one of this process's writes has committed and not yet said so, waits (briefly) for it
    /// rather than reading SQLite: the commit is most likely that write's alone.
    async fn observe(&self) -> Option<Seen> {
        let landed = match self.coherence.observe_or_landing(self.stamp()?) {
            Observation::Current(seen) => return Some(seen),
            Observation::Landing(landed) => landed,
        };
        tokio::time::timeout(LANDING_WAIT, landed).await.ok()?;
        self.coherence.observe(self.stamp()?)
    }

    fn stamp(&self) -> Option<Stamp> {
        self.stamps.as_ref().and_then(|s| s.stamp())
    }

    /// A write on the hot path that commits once when `write` says it changed something, and
    /// changes nothing the caches hold but what `forget` removes: the caches keep everything
    /// else across it (see [`cache::OwnWrite::landed`]). Any other write makes the next read start
    /// over, which is always correct.
    async fn own_write<T>(
        &self,
        write: impl Future<Output = sqlx::Result<(T, bool)>>,
        account: impl FnOnce(&Caches, Seen, &T),
    ) -> sqlx::Result<T> {
        let _turn = self.write_turn().await;
        let own = self.coherence.own_write(self.stamp());
        let (value, changed) = write.await?;
        if changed {
            own.landed(self.stamp(), |seen| account(&self.caches, seen, &value));
        }
        Ok(value)
    }

    /// For writes that must survive a crash, and reads alongside them.
    pub async fn pool(&self) -> sqlx::Result<PooledConnection> {
        self.durable.acquire().await
    }

    /// For reads, and writes of short-lived state (sessions, flows, leases).
    pub async fn fast(&self) -> sqlx::Result<PooledConnection> {
        self.fast.acquire().await
    }

    pub async fn ping(&self) -> bool {
        match self.fast().await {
            Ok(mut conn) => sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&mut *conn).await.is_ok(),
            Err(_) => false,
        }
    }

    /// A durable transaction. It holds this process's write turn until it ends, so nothing else
    /// may be written from inside it (and no vendor call may be made inside it, either).
    pub async fn begin(&self) -> sqlx::Result<WriteTx> {
        let turn = self.writer.clone().lock_owned().await;
        let own = self.coherence.own_write(self.stamp());
        let mut conn = self.durable.acquire().await?;
        SqliteTransactionManager::begin(&mut conn, None).await?;
        Ok(WriteTx {
            conn,
            open: true,
            own: Some(own),
            db: self.clone(),
            changed: Vec::new(),
            history: Vec::new(),
            wrote: false,
            undeclared: false,
            _turn: turn,
        })
    }

    /// Held by every write on the request and refresh paths, for the length of the write.
    async fn write_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writer.lock().await
    }

    pub async fn close(&self) {
        if let Some(stamps) = &self.stamps {
            stamps.close().await;
        }
        self.fast.close().await;
        self.durable.close().await;
    }
}

/// A durable transaction holding this process's write turn; it rolls back when dropped.
pub struct WriteTx {
    conn: PooledConnection,
    open: bool,
    /// This write, for the caches; taken at the commit.
    own: Option<OwnWrite>,
    db: Db,
    /// The connections (clinic, vendor) whose rows it wrote through [`WriteTx::writing_connection`].
    changed: Vec<(i64, String)>,
    /// The connections whose history it added to through [`WriteTx::writing_history`].
    history: Vec<(i64, String)>,
    /// Whether a statement that always writes ran through one of the declared accessors.
    wrote: bool,
    /// Whether anything used the connection directly (`DerefMut`): then nothing is known of what
    /// it changed, and the commit invalidates every cached read.
    undeclared: bool,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    /// For a statement that always changes a row of `connections` — that of (`clinic_id`,
    /// `vendor`) and no other.
    pub(crate) fn writing_connection(&mut self, clinic_id: i64, vendor: &str) -> &mut SqliteConnection {
        self.changed.push((clinic_id, vendor.to_owned()));
        self.wrote = true;
        &mut self.conn
    }

    /// For a statement that always adds to the history of (`clinic_id`, `vendor`), and changes
    /// nothing else.
    pub(crate) fn writing_history(&mut self, clinic_id: i64, vendor: &str) -> &mut SqliteConnection {
        self.history.push((clinic_id, vendor.to_owned()));
        self.wrote = true;
        &mut self.conn
    }

    /// Commits. When every statement said what it changed (and something did change), the
    /// caches keep all they hold but those connections (see [`cache::OwnWrite::landed`]).
    pub async fn commit(mut self) -> sqlx::Result<()> {
        SqliteTransactionManager::commit(&mut self.conn).await?;
        self.open = false;
        let own = self.own.take();
        if let Some(own) = own.filter(|_| self.wrote && !self.undeclared) {
            let (db, changed, history) = (&self.db, &self.changed, &self.history);
            own.landed(db.stamp(), |_| {
                for (clinic_id, vendor) in changed {
                    db.caches.forget_connection(*clinic_id, vendor);
                }
                for key in history {
                    db.caches.history.forget(key);
                }
            });
        }
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            // Queued on the connection's thread ahead of anything its next borrower sends.
            SqliteTransactionManager::start_rollback(&mut self.conn);
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.undeclared = true;
        &mut self.conn
    }
}
