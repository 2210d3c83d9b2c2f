//! Service API keys: only their SHA-256 is stored. A revoked key is kept (as revoked) so that its
//! label and dates stay in the list; it no longer authenticates, on any instance, at once.

use sqlx::{FromRow, Row};

use super::connections::ConnectionRow;
use super::Db;
use crate::clock::UnixTime;

#[derive(Debug, Clone, FromRow)]
pub struct ApiKeyRow {
    pub id: i64,
    pub label: String,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
}

/// A live key's owner, as a request presenting it needs.
#[derive(Debug, Clone)]
pub struct KeyHolder {
    pub key_id: i64,
    pub clinic_id: i64,
    pub last_used_at: Option<UnixTime>,
}

/// A key's "last used" is written at most this often: a busy key costs no write per request.
pub const LAST_USED_PRECISION_SECONDS: i64 = 60;

impl Db {
    /// Adds a key; `None` when the clinic already has a live key with this label.
    pub async fn insert_api_key(
        &self,
        clinic_id: i64,
        key_hash: &str,
        label: &str,
        now: UnixTime,
    ) -> sqlx::Result<Option<i64>> {
        Ok(transaction!(self, |tx| {
            let taken: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM api_keys WHERE clinic_id = $1 AND label = $2 AND revoked_at IS NULL",
            )
            .bind(clinic_id)
            .bind(label)
            .fetch_optional(tx.c())
            .await?;
            match taken {
                Some(_) => None,
                None => Some(
                    sqlx::query_scalar(
                        "INSERT INTO api_keys (clinic_id, key_hash, label, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                    )
                    .bind(clinic_id)
                    .bind(key_hash)
                    .bind(label)
                    .bind(now)
                    .fetch_one(tx.c())
                    .await?,
                ),
            }
        }))
    }

    /// The live key with this hash, and its clinic.
    pub async fn api_key_holder(&self, key_hash: &str) -> sqlx::Result<Option<KeyHolder>> {
        let row: Option<(i64, i64, Option<UnixTime>)> = on_engine!(self, |pool| sqlx::query_as(
            "SELECT id, clinic_id, last_used_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"
        )
        .bind(key_hash)
        .fetch_optional(pool)
        .await)?;
        Ok(row.map(|(key_id, clinic_id, last_used_at)| KeyHolder { key_id, clinic_id, last_used_at }))
    }

    /// A proxy call's one read: the live key with this hash and its clinic's connection at
    /// `vendor` (none when the clinic has no such connection).
    pub async fn api_key_and_connection(
        &self,
        key_hash: &str,
        vendor: &str,
    ) -> sqlx::Result<Option<(KeyHolder, Option<ConnectionRow>)>> {
        let sql = "SELECT k.id AS key_id, k.clinic_id AS key_clinic_id, k.last_used_at AS key_last_used_at, c.*
                     FROM api_keys k LEFT JOIN connections c ON c.clinic_id = k.clinic_id AND c.vendor = $2
                    WHERE k.key_hash = $1 AND k.revoked_at IS NULL";
        on_engine!(self, |pool| {
            let Some(row) = sqlx::query(sql).bind(key_hash).bind(vendor).fetch_optional(pool).await? else {
                return Ok(None);
            };
            let holder = KeyHolder {
                key_id: row.try_get("key_id")?,
                clinic_id: row.try_get("key_clinic_id")?,
                last_used_at: row.try_get("key_last_used_at")?,
            };
            let connection = match row.try_get::<Option<i64>, _>("id")? {
                Some(_) => Some(ConnectionRow::from_row(&row)?),
                None => None,
            };
            Ok(Some((holder, connection)))
        })
    }

    /// Notes that a key was used, unless that was noted less than a minute ago.
    pub async fn note_api_key_use(&self, holder: &KeyHolder, now: UnixTime) -> sqlx::Result<()> {
        if holder.last_used_at.is_some_and(|at| now - at < LAST_USED_PRECISION_SECONDS) {
            return Ok(());
        }
        transaction!(self, |tx| {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(holder.key_id)
                .execute(tx.c())
                .await?;
        });
        Ok(())
    }

    /// A clinic's keys, live first, newest first; never the key itself (only its hash is kept).
    pub async fn api_keys_of_clinic(&self, clinic_id: i64) -> sqlx::Result<Vec<ApiKeyRow>> {
        on_engine!(self, |pool| sqlx::query_as(
            "SELECT id, label, created_at, last_used_at, revoked_at FROM api_keys WHERE clinic_id = $1
              ORDER BY CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END, created_at DESC, id DESC"
        )
        .bind(clinic_id)
        .fetch_all(pool)
        .await)
    }

    /// Revokes a clinic's live keys with this label; how many.
    pub async fn revoke_api_key(&self, clinic_id: i64, label: &str, now: UnixTime) -> sqlx::Result<u64> {
        Ok(transaction!(self, |tx| {
            sqlx::query(
                "UPDATE api_keys SET revoked_at = $1 WHERE clinic_id = $2 AND label = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(clinic_id)
            .bind(label)
            .execute(tx.c())
            .await?
            .rows_affected()
        }))
    }

    /// Revokes one of a clinic's keys by id; whether it was live.
    pub async fn revoke_api_key_id(&self, clinic_id: i64, id: i64, now: UnixTime) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE clinic_id = $2 AND id = $3 AND revoked_at IS NULL")
                .bind(now)
                .bind(clinic_id)
                .bind(id)
                .execute(tx.c())
                .await?
                .rows_affected()
                == 1
        }))
    }
}
