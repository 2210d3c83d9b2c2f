//! Connections (one per clinic and vendor) and their history.

use sqlx::{FromRow, Sqlite, Transaction};

use super::Db;
use crate::clock::UnixTime;

#[derive(Debug, Clone, FromRow)]
pub struct ConnectionRow {
    pub id: i64,
    pub clinic_id: i64,
    pub vendor: String,
    pub environment: String,
    pub status: String,
    pub access_token: Option<Vec<u8>>,
    pub refresh_token: Option<Vec<u8>>,
    pub token_type: Option<String>,
    pub scopes: String,
    pub expires_at: Option<UnixTime>,
    pub account_name: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Vec<u8>>,
    pub parameters: String,
    pub version: i64,
    pub connected_at: Option<UnixTime>,
    pub updated_at: UnixTime,
}

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub at: UnixTime,
    pub kind: String,
    pub detail: String,
}

/// A freshly issued set of tokens, already sealed by the vault.
pub struct SealedGrant<'a> {
    pub clinic_id: i64,
    pub vendor: &'a str,
    pub environment: &'a str,
    pub access_token: &'a [u8],
    pub refresh_token: Option<&'a [u8]>,
    pub token_type: &'a str,
    pub scopes: &'a str,
    pub expires_at: Option<UnixTime>,
    pub account_name: Option<&'a str>,
    pub now: UnixTime,
}

const COLUMNS: &str = "id, clinic_id, vendor, environment, status, access_token, refresh_token, token_type, scopes,
     expires_at, account_name, client_id, client_secret, parameters, version, connected_at, updated_at";

impl Db {
    pub async fn connection(
        &self,
        clinic_id: i64,
        vendor: &str,
    ) -> sqlx::Result<Option<ConnectionRow>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM connections WHERE clinic_id = ? AND vendor = ?"
        ))
        .bind(clinic_id)
        .bind(vendor)
        .fetch_optional(self.pool())
        .await
    }

    pub async fn connections_of_clinic(&self, clinic_id: i64) -> sqlx::Result<Vec<ConnectionRow>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM connections WHERE clinic_id = ?"
        ))
        .bind(clinic_id)
        .fetch_all(self.pool())
        .await
    }

    /// Stores a new grant for the clinic's connection at a vendor, creating the row if needed.
    pub async fn store_grant(
        tx: &mut Transaction<'_, Sqlite>,
        grant: &SealedGrant<'_>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO connections
               (clinic_id, vendor, environment, status, access_token, refresh_token, token_type, scopes,
                expires_at, account_name, version, connected_at, updated_at)
             VALUES (?, ?, ?, 'connected', ?, ?, ?, ?, ?, ?, 1, ?, ?)
             ON CONFLICT (clinic_id, vendor) DO UPDATE SET
                environment = excluded.environment, status = 'connected',
                access_token = excluded.access_token, refresh_token = excluded.refresh_token,
                token_type = excluded.token_type, scopes = excluded.scopes, expires_at = excluded.expires_at,
                account_name = excluded.account_name, version = connections.version + 1,
                connected_at = excluded.connected_at, updated_at = excluded.updated_at",
        )
        .bind(grant.clinic_id)
        .bind(grant.vendor)
        .bind(grant.environment)
        .bind(grant.access_token)
        .bind(grant.refresh_token)
        .bind(grant.token_type)
        .bind(grant.scopes)
        .bind(grant.expires_at)
        .bind(grant.account_name)
        .bind(grant.now)
        .bind(grant.now)
        .execute(&mut **tx)
        .await
        .map(|_| ())
    }

    /// Removes every token and secret of a connection and sets its status; the row and its
    /// history stay. False when the row had changed since it was read (`version`).
    pub async fn clear_grant(
        tx: &mut Transaction<'_, Sqlite>,
        connection_id: i64,
        version: i64,
        status: &str,
        now: UnixTime,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE connections SET status = ?, access_token = NULL, refresh_token = NULL, client_secret = NULL,
                    expires_at = NULL, version = version + 1, updated_at = ?
              WHERE id = ? AND version = ?",
        )
        .bind(status)
        .bind(now)
        .bind(connection_id)
        .bind(version)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn add_event_in(
        tx: &mut Transaction<'_, Sqlite>,
        clinic_id: i64,
        vendor: &str,
        kind: &str,
        detail: &str,
        now: UnixTime,
    ) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO connection_events (clinic_id, vendor, at, kind, detail) VALUES (?, ?, ?, ?, ?)")
            .bind(clinic_id)
            .bind(vendor)
            .bind(now)
            .bind(kind)
            .bind(detail)
            .execute(&mut **tx)
            .await
            .map(|_| ())
    }

    pub async fn add_event(
        &self,
        clinic_id: i64,
        vendor: &str,
        kind: &str,
        detail: &str,
        now: UnixTime,
    ) -> sqlx::Result<()> {
        let mut tx = self.begin().await?;
        Self::add_event_in(&mut tx, clinic_id, vendor, kind, detail, now).await?;
        tx.commit().await
    }

    /// Newest first.
    pub async fn events(
        &self,
        clinic_id: i64,
        vendor: &str,
        limit: i64,
    ) -> sqlx::Result<Vec<EventRow>> {
        sqlx::query_as(
            "SELECT at, kind, detail FROM connection_events WHERE clinic_id = ? AND vendor = ?
              ORDER BY id DESC LIMIT ?",
        )
        .bind(clinic_id)
        .bind(vendor)
        .bind(limit)
        .fetch_all(self.pool())
        .await
    }
}
