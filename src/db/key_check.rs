//! What the start-up check for removed keys reads and writes (see `crate::key_check`). Unlike
//! `keys rotate`, which fails unreadable rows closed for good, the start-up check keeps the sealed
//! values: a key left out of the keyring by mistake, put back, brings the connections back.

use sqlx::FromRow;

use super::connections::{NewEvent, ADD_EVENT};
use super::Db;
use crate::clock::UnixTime;

/// A connection's sealed values, with what a compare-and-swap needs.
#[derive(Debug, FromRow)]
pub struct SealedRow {
    pub id: i64,
    pub status: String,
    pub access_token: Option<Vec<u8>>,
    pub refresh_token: Option<Vec<u8>>,
    pub client_secret: Option<Vec<u8>>,
    pub version: i64,
}

const SEALED: &str = "SELECT id, status, access_token, refresh_token, client_secret, version FROM connections";

/// Adds a history entry to the row `RETURNING clinic_id, vendor` gave, inside a transaction.
macro_rules! entry {
    ($tx:ident, $owner:expr, $event:expr, $now:expr) => {{
        let event: &NewEvent<'_> = $event;
        match $owner {
            Some((clinic_id, vendor)) => {
                sqlx::query(ADD_EVENT)
                    .bind(clinic_id)
                    .bind(vendor)
                    .bind($now)
                    .bind(event.kind)
                    .bind(event.detail)
                    .bind(event.actor)
                    .execute($tx.c())
                    .await?;
                true
            }
            None => false,
        }
    }};
}

impl Db {
    /// Every connection holding a sealed value.
    pub async fn sealed_rows(&self) -> sqlx::Result<Vec<SealedRow>> {
        on_engine!(self, |pool| {
            sqlx::query_as(&format!(
            "{SEALED} WHERE access_token IS NOT NULL OR refresh_token IS NOT NULL OR client_secret IS NOT NULL ORDER BY id"
        ))
        .fetch_all(pool)
        .await
        })
    }

    pub async fn sealed_row(&self, id: i64) -> sqlx::Result<Option<SealedRow>> {
        on_engine!(self, |pool| sqlx::query_as(&format!("{SEALED} WHERE id = $1")).bind(id).fetch_optional(pool).await)
    }

    /// Marks a row "key missing", keeping its sealed values, with its history entry (whose words
    /// are also the row's technical detail), if it is still at `version`: false when it changed
    /// meanwhile (another instance starting at the same moment may have marked it).
    pub async fn mark_key_missing_keeping_secrets(
        &self,
        id: i64,
        version: i64,
        event: &NewEvent<'_>,
        now: UnixTime,
    ) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            let owner: Option<(i64, String)> = sqlx::query_as(
                "UPDATE connections SET status = 'key_missing', lease_owner = NULL, lease_until = NULL, trouble = NULL,
                        trouble_detail = $4, trouble_since = $1, next_health_at = NULL, version = version + 1,
                        updated_at = $1
                  WHERE id = $2 AND version = $3 AND status <> 'key_missing'
                 RETURNING clinic_id, vendor",
            )
            .bind(now)
            .bind(id)
            .bind(version)
            .bind(event.detail)
            .fetch_optional(tx.c())
            .await?;
            entry!(tx, owner, event, now)
        }))
    }

    /// A "key missing" row whose keys are all configured again: back to what its sealed values
    /// make it (live with tokens; to be reconnected without), with its history entry, if it is
    /// still at `version`.
    pub async fn key_found_again(
        &self,
        id: i64,
        version: i64,
        event: &NewEvent<'_>,
        next_health_at: UnixTime,
        now: UnixTime,
    ) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            let owner: Option<(i64, String)> = sqlx::query_as(
                "UPDATE connections
                    SET status = CASE WHEN access_token IS NOT NULL OR refresh_token IS NOT NULL
                                      THEN 'connected' ELSE 'reconnect_needed' END,
                        trouble_detail = NULL, trouble_since = NULL, next_health_at = $4, version = version + 1,
                        updated_at = $1
                  WHERE id = $2 AND version = $3 AND status = 'key_missing'
                 RETURNING clinic_id, vendor",
            )
            .bind(now)
            .bind(id)
            .bind(version)
            .bind(next_health_at)
            .fetch_optional(tx.c())
            .await?;
            entry!(tx, owner, event, now)
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::db::fixtures::{event, grant, sqlite};

    #[tokio::test]
    async fn marking_keeps_the_secrets_happens_once_and_a_key_found_again_undoes_it() {
        let (db, _dir) = sqlite().await;
        let clinic = db.ensure_clinic("c", 1).await.unwrap();
        let row = db.store_grant(&grant(clinic, b"t"), &event("connected")).await.unwrap();
        assert!(db.mark_key_missing_keeping_secrets(row.id, row.version, &event("gone"), 5).await.unwrap());
        assert!(!db.mark_key_missing_keeping_secrets(row.id, row.version, &event("again"), 6).await.unwrap());
        let marked = db.sealed_row(row.id).await.unwrap().unwrap();
        assert_eq!((marked.status.as_str(), marked.access_token.as_deref()), ("key_missing", Some(b"t".as_slice())));
        // Another instance saw the new version and the status: nothing more to do.
        assert!(!db.mark_key_missing_keeping_secrets(marked.id, marked.version, &event("x"), 7).await.unwrap());
        assert_eq!(db.events(clinic, "drchrono").await.unwrap().len(), 2);

        assert!(db.key_found_again(marked.id, marked.version, &event("back"), 900, 8).await.unwrap());
        let back = db.connection_by_id(row.id).await.unwrap().unwrap();
        assert_eq!((back.status.as_str(), back.next_health_at, back.trouble_detail), ("connected", Some(900), None));
        assert!(!db.key_found_again(back.id, back.version, &event("back"), 900, 9).await.unwrap());
        assert_eq!(db.events(clinic, "drchrono").await.unwrap().len(), 3);
    }
}
