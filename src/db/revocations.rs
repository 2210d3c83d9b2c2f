//! Revocations that failed at disconnect, kept (sealed) to be retried a bounded number of times.

use sqlx::sqlite::SqliteConnection;
use sqlx::FromRow;

use super::Db;
use crate::clock::UnixTime;

#[derive(Debug, Clone, FromRow)]
pub struct PendingRevocation {
    pub id: i64,
    pub reference: String,
    pub clinic_id: i64,
    pub vendor: String,
    pub environment: String,
    pub parameters: String,
    pub token: Vec<u8>,
    pub attempts: i64,
}

pub struct NewRevocation<'a> {
    pub reference: &'a str,
    pub clinic_id: i64,
    pub vendor: &'a str,
    pub environment: &'a str,
    pub parameters: &'a str,
    pub token: &'a [u8],
    pub next_attempt_at: UnixTime,
}

impl Db {
    pub async fn insert_revocation(tx: &mut SqliteConnection, r: &NewRevocation<'_>) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO pending_revocations (ref, clinic_id, vendor, environment, parameters, token, next_attempt_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.reference)
        .bind(r.clinic_id)
        .bind(r.vendor)
        .bind(r.environment)
        .bind(r.parameters)
        .bind(r.token)
        .bind(r.next_attempt_at)
        .execute(&mut *tx)
        .await
        .map(|_| ())
    }

    pub async fn due_revocations(&self, now: UnixTime, limit: i64) -> sqlx::Result<Vec<PendingRevocation>> {
        sqlx::query_as(
            "SELECT id, ref AS reference, clinic_id, vendor, environment, parameters, token, attempts
               FROM pending_revocations WHERE next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *self.pool().await?)
        .await
    }

    pub async fn delete_revocation(&self, id: i64) -> sqlx::Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM pending_revocations WHERE id = ?")
            .bind(id)
            .execute(&mut *self.pool().await?)
            .await
            .map(|_| ())
    }

    pub async fn postpone_revocation(&self, id: i64, next_attempt_at: UnixTime) -> sqlx::Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE pending_revocations SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ?")
            .bind(next_attempt_at)
            .bind(id)
            .execute(&mut *self.pool().await?)
            .await
            .map(|_| ())
    }

    pub async fn pending_revocation_count(&self) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM pending_revocations").fetch_one(&mut *self.pool().await?).await
    }
}
