//! Every SQL statement the store sends is counted, for `/metrics` and the benchmark's "statements
//! per request": [`Counted`] wraps an executor (a pool or a transaction's connection) and counts
//! each statement it runs; [`Tx`] counts its `BEGIN` and `COMMIT` as the round trips they are.
//! (sqlx's own `ping` when a connection goes back to its pool is not a statement of ours.)

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::{Database, Describe, Either, Error, Execute, Executor, Transaction};

/// An executor that counts the statements run through it.
#[derive(Debug, Clone, Copy)]
pub struct Counted<'a, E> {
    inner: E,
    statements: &'a AtomicU64,
}

impl<'a, E> Counted<'a, E> {
    pub fn new(inner: E, statements: &'a AtomicU64) -> Self {
        Self { inner, statements }
    }
}

// `execute`, `fetch_all`, `fetch_one` and the rest are built by sqlx on these two, so each
// statement is counted exactly once.
impl<'c, E: Executor<'c>> Executor<'c> for Counted<'_, E> {
    type Database = E::Database;

    fn fetch_many<'e, 'q: 'e, Q>(
        self,
        query: Q,
    ) -> BoxStream<
        'e,
        Result<Either<<Self::Database as Database>::QueryResult, <Self::Database as Database>::Row>, Error>,
    >
    where
        'c: 'e,
        Q: 'q + Execute<'q, Self::Database>,
    {
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.inner.fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, Q>(
        self,
        query: Q,
    ) -> BoxFuture<'e, Result<Option<<Self::Database as Database>::Row>, Error>>
    where
        'c: 'e,
        Q: 'q + Execute<'q, Self::Database>,
    {
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.inner.fetch_optional(query)
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [<Self::Database as Database>::TypeInfo],
    ) -> BoxFuture<'e, Result<<Self::Database as Database>::Statement<'q>, Error>>
    where
        'c: 'e,
    {
        self.inner.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Self::Database>, Error>>
    where
        'c: 'e,
    {
        self.inner.describe(sql)
    }
}

/// A write transaction; it rolls back when dropped without `commit` (an error, a cancelled
/// request): sqlx queues the `ROLLBACK` ahead of anything the connection's next borrower sends.
pub struct Tx<'a, DB: Database> {
    tx: Transaction<'static, DB>,
    statements: &'a AtomicU64,
}

impl<'a, DB: Database> Tx<'a, DB> {
    pub async fn begin(
        begin: impl Future<Output = sqlx::Result<Transaction<'static, DB>>>,
        statements: &'a AtomicU64,
    ) -> sqlx::Result<Self> {
        statements.fetch_add(1, Ordering::Relaxed);
        Ok(Self { tx: begin.await?, statements })
    }

    /// The transaction's connection, for one statement.
    pub fn c(&mut self) -> Counted<'a, &mut DB::Connection> {
        Counted { inner: &mut *self.tx, statements: self.statements }
    }

    pub async fn commit(self) -> sqlx::Result<()> {
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.tx.commit().await
    }
}
