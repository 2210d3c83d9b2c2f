//! A fixed set of SQLite connections, lent out for one statement or one transaction at a time.
//!
//! sqlx's SQLite driver runs each connection on a thread of its own, so a statement is a round trip
//! to that thread. sqlx's `Pool` adds a second one to every statement: when a connection comes
//! back it is tested with a `ping`, in a task spawned for the purpose, before anyone else may have
//! it. A local SQLite connection does not go stale the way a network connection does, and the
//! cases that test was for are handled here by the driver's own order of commands:
//!
//! - a statement whose future was dropped half-way still runs to its end on the connection's
//!   thread, before the next borrower's commands, which queue behind it;
//! - a transaction dropped before its end queues its `ROLLBACK` at once (see [`super::WriteTx`]),
//!   so the next borrower starts outside any transaction.
//!
//! The most recently returned connection is lent first: its page cache is the warmest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone)]
pub struct Connections {
    inner: Arc<Inner>,
}

struct Inner {
    idle: Mutex<Vec<SqliteConnection>>,
    permits: Arc<Semaphore>,
    closed: AtomicBool,
}

impl Connections {
    /// Opens `size` connections with `options`.
    pub async fn open(options: &SqliteConnectOptions, size: usize) -> sqlx::Result<Self> {
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size {
            idle.push(options.connect().await?);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                idle: Mutex::new(idle),
                permits: Arc::new(Semaphore::new(size)),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// A connection of the set, waiting (first come, first served) while all are lent out.
    pub async fn acquire(&self) -> sqlx::Result<PooledConnection> {
        let permit = self.inner.permits.clone().acquire_owned().await.map_err(|_| sqlx::Error::PoolClosed)?;
        // Every permit stands for one idle connection, so there is one to take.
        let conn = self.inner.idle_list().pop().ok_or(sqlx::Error::PoolClosed)?;
        Ok(PooledConnection { conn: Some(conn), inner: self.inner.clone(), _permit: permit })
    }

    /// Closes the idle connections now and every lent one when it comes back; later borrowers get
    /// `PoolClosed`.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.permits.close();
        let idle = std::mem::take(&mut *self.inner.idle_list());
        for conn in idle {
            let _ = conn.close().await;
        }
    }
}

impl Inner {
    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<SqliteConnection>> {
        // The list is only pushed to and popped from; a panic elsewhere cannot leave it half-done.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A lent connection; it goes back to the set when dropped.
pub struct PooledConnection {
    conn: Option<SqliteConnection>,
    inner: Arc<Inner>,
    // Released after `drop` has put the connection back (fields drop after `Drop::drop`).
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for PooledConnection {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        // Only `drop` takes it out.
        self.conn.as_ref().unwrap_or_else(|| unreachable!("a lent connection is present until dropped"))
    }
}

impl std::ops::DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!("a lent connection is present until dropped"))
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !self.inner.closed.load(Ordering::Acquire) {
                self.inner.idle_list().push(conn);
            }
            // After `close`, dropping the connection ends its thread, which closes the handle.
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::str::FromStr;

    async fn set(dir: &tempfile::TempDir, size: usize) -> Connections {
        let options = SqliteConnectOptions::from_str("sqlite:")
            .unwrap()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        Connections::open(&options, size).await.unwrap()
    }

    #[tokio::test]
    async fn lends_each_connection_to_one_borrower_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let conns = set(&dir, 2).await;
        let a = conns.acquire().await.unwrap();
        let _b = conns.acquire().await.unwrap();
        // A third borrower waits until one comes back.
        let third = tokio::spawn({
            let conns = conns.clone();
            async move { conns.acquire().await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        drop(a);
        third.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_transaction_dropped_half_way_is_rolled_back_before_the_next_borrower() {
        let dir = tempfile::tempdir().unwrap();
        let conns = set(&dir, 1).await;
        let mut c = conns.acquire().await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut *c).await.unwrap();
        drop(c);
        {
            let mut c = conns.acquire().await.unwrap();
            let mut tx = c.begin().await.unwrap();
            sqlx::query("INSERT INTO t VALUES (1)").execute(&mut *tx).await.unwrap();
            // Dropped without commit.
        }
        let mut c = conns.acquire().await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&mut *c).await.unwrap();
        assert_eq!(n, 0);
        // And the connection is outside any transaction: this commit is visible to a new one.
        sqlx::query("INSERT INTO t VALUES (2)").execute(&mut *c).await.unwrap();
        drop(c);
        let other = set(&dir, 1).await;
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&mut *other.acquire().await.unwrap()).await.unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn closed_sets_lend_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let conns = set(&dir, 1).await;
        conns.close().await;
        assert!(matches!(conns.acquire().await, Err(sqlx::Error::PoolClosed)));
    }
}
