//! Revocations at a vendor, queued (sealed) when a connection is disconnected and retried a
//! bounded number of times. Each attempt holds a lease on its row, so two instances never retry
//! the same one at once.

use sqlx::FromRow;

use super::connections::NewEvent;
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

/// A token to revoke, sealed under a binding to `reference`.
pub struct NewRevocation<'a> {
    pub reference: &'a str,
    pub environment: &'a str,
    pub parameters: &'a str,
    pub token: &'a [u8],
}

const COLUMNS: &str = "id, ref AS reference, clinic_id, vendor, environment, parameters, token, attempts";

/// A revocation's attempt is over: `Done` (revoked, or given up) removes it, `Later` keeps it for
/// another attempt at the given time. Both give the lease back and add the history entry.
pub enum RevocationEnd {
    Done,
    Later(UnixTime),
}

impl Db {
    /// Leases up to `limit` revocations that are due and that nobody is attempting.
    pub async fn lease_due_revocations(
        &self,
        now: UnixTime,
        owner: &str,
        until: UnixTime,
        limit: i64,
    ) -> sqlx::Result<Vec<PendingRevocation>> {
        let due = "next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)";
        // As `Db::lease_due`: the candidates chosen once, in a CTE, and locked as they are chosen.
        let sql = format!(
            "WITH due AS (SELECT id AS due_id FROM pending_revocations WHERE {due}
                          ORDER BY next_attempt_at LIMIT $4 {})
             UPDATE pending_revocations SET lease_owner = $2, lease_until = $3 WHERE id IN (SELECT due_id FROM due)
             RETURNING {COLUMNS}",
            self.skip_locked()
        );
        Ok(transaction!(self, |tx| {
            sqlx::query_as(&sql).bind(now).bind(owner).bind(until).bind(limit).fetch_all(tx.c()).await?
        }))
    }

    /// Queued revocations by id (the ones a disconnect just leased to this process).
    pub async fn revocations(&self, ids: &[i64]) -> sqlx::Result<Vec<PendingRevocation>> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            let row: Option<PendingRevocation> = on_engine!(self, |pool| sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM pending_revocations WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await)?;
            found.extend(row);
        }
        Ok(found)
    }

    /// Ends an attempt under its lease, with the connection's history entry if any; false when
    /// the lease was no longer `owner`'s (another instance took over: it writes the outcome).
    pub async fn end_revocation(
        &self,
        id: i64,
        owner: &str,
        end: RevocationEnd,
        event: Option<&NewEvent<'_>>,
        now: UnixTime,
    ) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            let ended: Option<(i64, String)> = match end {
                RevocationEnd::Done => sqlx::query_as(
                    "DELETE FROM pending_revocations WHERE id = $1 AND lease_owner = $2 RETURNING clinic_id, vendor",
                )
                .bind(id)
                .bind(owner)
                .fetch_optional(tx.c())
                .await?,
                RevocationEnd::Later(at) => {
                    sqlx::query_as(
                        "UPDATE pending_revocations SET attempts = attempts + 1, next_attempt_at = $1,
                                lease_owner = NULL, lease_until = NULL
                          WHERE id = $2 AND lease_owner = $3 RETURNING clinic_id, vendor",
                    )
                    .bind(at)
                    .bind(id)
                    .bind(owner)
                    .fetch_optional(tx.c())
                    .await?
                }
            };
            match ended {
                Some((clinic_id, vendor)) => {
                    if let Some(event) = event {
                        sqlx::query(
                            "INSERT INTO connection_events (clinic_id, vendor, at, kind, detail, actor)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        )
                        .bind(clinic_id)
                        .bind(&vendor)
                        .bind(now)
                        .bind(event.kind)
                        .bind(event.detail)
                        .bind(event.actor)
                        .execute(tx.c())
                        .await?;
                    }
                    true
                }
                None => false,
            }
        }))
    }

    /// Removes a revocation whatever its lease (`keys rotate`: its token no longer opens).
    pub async fn delete_revocation(&self, id: i64) -> sqlx::Result<()> {
        transaction!(self, |tx| {
            sqlx::query("DELETE FROM pending_revocations WHERE id = $1").bind(id).execute(tx.c()).await?;
        });
        Ok(())
    }

    pub async fn pending_revocation_count(&self) -> sqlx::Result<i64> {
        on_engine!(self, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM pending_revocations").fetch_one(pool).await)
    }
}
