//! What `keys rotate` (and the start-up check for removed keys) reads and rewrites: every sealed
//! column, row by row, with a version or value check so that a write by a running instance is
//! never overwritten.

use sqlx::FromRow;

use super::Db;

#[derive(FromRow)]
pub struct SealedConnection {
    pub id: i64,
    pub clinic_id: i64,
    pub vendor: String,
    pub access_token: Option<Vec<u8>>,
    pub refresh_token: Option<Vec<u8>>,
    pub client_secret: Option<Vec<u8>>,
    pub version: i64,
}

const SEALED: &str =
    "SELECT id, clinic_id, vendor, access_token, refresh_token, client_secret, version FROM connections";

impl Db {
    pub async fn sealed_connections(&self) -> sqlx::Result<Vec<SealedConnection>> {
        on_engine!(self, |pool| {
            sqlx::query_as(&format!(
            "{SEALED} WHERE access_token IS NOT NULL OR refresh_token IS NOT NULL OR client_secret IS NOT NULL ORDER BY id"
        ))
        .fetch_all(pool)
        .await
        })
    }

    pub async fn sealed_connection(&self, id: i64) -> sqlx::Result<Option<SealedConnection>> {
        on_engine!(self, |pool| sqlx::query_as(&format!("{SEALED} WHERE id = $1")).bind(id).fetch_optional(pool).await)
    }

    /// Replaces the sealed columns if the row is still at `version`.
    pub async fn reseal_connection(
        &self,
        id: i64,
        version: i64,
        access_token: Option<&[u8]>,
        refresh_token: Option<&[u8]>,
        client_secret: Option<&[u8]>,
    ) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            sqlx::query(
                "UPDATE connections SET access_token = $1, refresh_token = $2, client_secret = $3, version = version + 1
                  WHERE id = $4 AND version = $5",
            )
            .bind(access_token)
            .bind(refresh_token)
            .bind(client_secret)
            .bind(id)
            .bind(version)
            .execute(tx.c())
            .await?
            .rows_affected()
                == 1
        }))
    }

    pub async fn sealed_sessions(&self) -> sqlx::Result<Vec<(String, String, Vec<u8>)>> {
        on_engine!(self, |pool| sqlx::query_as("SELECT id, kind, state FROM sessions ORDER BY id")
            .fetch_all(pool)
            .await)
    }

    /// Replaces a session's state only if it did not change meanwhile.
    pub async fn reseal_session(&self, id: &str, old: &[u8], new: &[u8]) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            sqlx::query("UPDATE sessions SET state = $1 WHERE id = $2 AND state = $3")
                .bind(new)
                .bind(id)
                .bind(old)
                .execute(tx.c())
                .await?
                .rows_affected()
                == 1
        }))
    }

    pub async fn sealed_flows(&self) -> sqlx::Result<Vec<(String, Vec<u8>)>> {
        on_engine!(self, |pool| sqlx::query_as("SELECT state_hash, verifier FROM oauth_flows ORDER BY state_hash")
            .fetch_all(pool)
            .await)
    }

    pub async fn reseal_flow(&self, state_hash: &str, old: &[u8], new: &[u8]) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            sqlx::query("UPDATE oauth_flows SET verifier = $1 WHERE state_hash = $2 AND verifier = $3")
                .bind(new)
                .bind(state_hash)
                .bind(old)
                .execute(tx.c())
                .await?
                .rows_affected()
                == 1
        }))
    }

    pub async fn delete_flow(&self, state_hash: &str) -> sqlx::Result<()> {
        transaction!(self, |tx| {
            sqlx::query("DELETE FROM oauth_flows WHERE state_hash = $1").bind(state_hash).execute(tx.c()).await?;
        });
        Ok(())
    }

    pub async fn sealed_revocations(&self) -> sqlx::Result<Vec<(i64, String, Vec<u8>)>> {
        on_engine!(self, |pool| sqlx::query_as("SELECT id, ref, token FROM pending_revocations ORDER BY id")
            .fetch_all(pool)
            .await)
    }

    /// Replaces a revocation's token only if it did not change meanwhile.
    pub async fn reseal_revocation(&self, id: i64, old: &[u8], new: &[u8]) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            sqlx::query("UPDATE pending_revocations SET token = $1 WHERE id = $2 AND token = $3")
                .bind(new)
                .bind(id)
                .bind(old)
                .execute(tx.c())
                .await?
                .rows_affected()
                == 1
        }))
    }
}
