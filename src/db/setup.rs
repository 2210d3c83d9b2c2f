//! Statements that only the benchmark and the tests use, to set up or measure a scenario on
//! either engine; the app never calls them.

use super::{Db, Engine};
use crate::clock::UnixTime;

impl Db {
    /// Clinics with these names (created if needed), in one transaction; their ids, in order.
    pub async fn ensure_clinics(&self, names: &[String], now: UnixTime) -> sqlx::Result<Vec<i64>> {
        Ok(transaction!(self, |tx| {
            let mut ids = Vec::with_capacity(names.len());
            for name in names {
                sqlx::query("INSERT INTO clinics (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(now)
                    .execute(tx.c())
                    .await?;
                let id: i64 =
                    sqlx::query_scalar("SELECT id FROM clinics WHERE name = $1").bind(name).fetch_one(tx.c()).await?;
                ids.push(id);
            }
            ids
        }))
    }

    /// A vendor's connected rows whose token expires by `horizon`.
    pub async fn count_due(&self, vendor: &str, horizon: UnixTime) -> sqlx::Result<i64> {
        on_engine!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM connections WHERE vendor = $1 AND status = 'connected' AND expires_at <= $2"
        )
        .bind(vendor)
        .bind(horizon)
        .fetch_one(pool)
        .await)
    }

    /// Makes every connected token of a vendor expire at `at` (a refresh storm); how many.
    pub async fn expire_tokens(&self, vendor: &str, at: UnixTime) -> sqlx::Result<u64> {
        Ok(transaction!(self, |tx| {
            sqlx::query("UPDATE connections SET expires_at = $1 WHERE vendor = $2 AND status = 'connected'")
                .bind(at)
                .bind(vendor)
                .execute(tx.c())
                .await?
                .rows_affected()
        }))
    }

    /// The database's size in bytes (SQLite: after checkpointing its WAL into the main file).
    pub async fn database_bytes(&self) -> sqlx::Result<i64> {
        match &self.engine {
            Engine::Sqlite(pool) => {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(pool).await?;
                sqlx::query_scalar("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
                    .fetch_one(pool)
                    .await
            }
            Engine::Postgres(pool) => {
                sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(pool).await
            }
        }
    }
}
