//! What `keys rotate` reads and rewrites: every sealed column, row by row, with a version check so
//! that a write by the running app is never overwritten.

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

impl Db {
    pub async fn sealed_connections(&self) -> sqlx::Result<Vec<SealedConnection>> {
        sqlx::query_as(
            "SELECT id, clinic_id, vendor, access_token, refresh_token, client_secret, version FROM connections
              WHERE access_token IS NOT NULL OR refresh_token IS NOT NULL OR client_secret IS NOT NULL",
        )
        .fetch_all(&mut *self.pool().await?)
        .await
    }

    pub async fn sealed_connection(&self, id: i64) -> sqlx::Result<Option<SealedConnection>> {
        sqlx::query_as(
            "SELECT id, clinic_id, vendor, access_token, refresh_token, client_secret, version FROM connections WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&mut *self.pool().await?)
        .await
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
        let done = sqlx::query(
            "UPDATE connections SET access_token = ?, refresh_token = ?, client_secret = ?, version = version + 1
              WHERE id = ? AND version = ?",
        )
        .bind(access_token)
        .bind(refresh_token)
        .bind(client_secret)
        .bind(id)
        .bind(version)
        .execute(&mut *self.pool().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A row whose records no configured key opens: it fails closed until reconnected.
    pub async fn mark_key_missing(&self, id: i64, version: i64) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE connections SET status = 'key_missing', access_token = NULL, refresh_token = NULL, client_secret = NULL,
                    expires_at = NULL, version = version + 1 WHERE id = ? AND version = ?",
        )
        .bind(id)
        .bind(version)
        .execute(&mut *self.pool().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn sealed_sessions(&self) -> sqlx::Result<Vec<(String, String, Vec<u8>)>> {
        sqlx::query_as("SELECT id, kind, state FROM sessions").fetch_all(&mut *self.pool().await?).await
    }

    /// Replaces a session's state only if it did not change meanwhile.
    pub async fn reseal_session(&self, id: &str, old: &[u8], new: &[u8]) -> sqlx::Result<bool> {
        let done = sqlx::query("UPDATE sessions SET state = ? WHERE id = ? AND state = ?")
            .bind(new)
            .bind(id)
            .bind(old)
            .execute(&mut *self.pool().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn sealed_flows(&self) -> sqlx::Result<Vec<(String, Vec<u8>)>> {
        sqlx::query_as("SELECT state_hash, verifier FROM oauth_flows").fetch_all(&mut *self.pool().await?).await
    }

    pub async fn reseal_flow(&self, state_hash: &str, old: &[u8], new: &[u8]) -> sqlx::Result<bool> {
        let done = sqlx::query("UPDATE oauth_flows SET verifier = ? WHERE state_hash = ? AND verifier = ?")
            .bind(new)
            .bind(state_hash)
            .bind(old)
            .execute(&mut *self.pool().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_flow(&self, state_hash: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM oauth_flows WHERE state_hash = ?")
            .bind(state_hash)
            .execute(&mut *self.pool().await?)
            .await
            .map(|_| ())
    }

    pub async fn sealed_revocations(&self) -> sqlx::Result<Vec<(i64, String, Vec<u8>)>> {
        sqlx::query_as("SELECT id, ref, token FROM pending_revocations").fetch_all(&mut *self.pool().await?).await
    }

    pub async fn reseal_revocation(&self, id: i64, new: &[u8]) -> sqlx::Result<()> {
        sqlx::query("UPDATE pending_revocations SET token = ? WHERE id = ?")
            .bind(new)
            .bind(id)
            .execute(&mut *self.pool().await?)
            .await
            .map(|_| ())
    }
}
