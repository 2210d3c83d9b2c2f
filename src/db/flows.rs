//! Pending authorization-code flows: written at "Connect", taken exactly once at the callback.

use sqlx::FromRow;

use super::Db;
use crate::clock::UnixTime;

#[derive(FromRow)]
pub struct FlowRow {
    /// The admin's clinic; none for a patient's login.
    pub clinic_id: Option<i64>,
    /// Where a patient returns after logging in (an allow-listed relative path).
    pub return_to: Option<String>,
    pub vendor: String,
    pub environment: String,
    /// Vault record of the PKCE verifier.
    pub verifier: Vec<u8>,
    pub redirect_uri: String,
    pub scopes: String,
    pub expires_at: UnixTime,
}

pub struct NewFlow<'a> {
    pub state_hash: &'a str,
    pub session_binding: &'a str,
    pub clinic_id: Option<i64>,
    pub return_to: Option<&'a str>,
    pub vendor: &'a str,
    pub environment: &'a str,
    pub verifier: &'a [u8],
    pub redirect_uri: &'a str,
    pub scopes: &'a str,
    pub expires_at: UnixTime,
}

/// Adds a pending flow; its parameters are bound by [`super::hot`].
pub(super) const INSERT_FLOW: &str = "INSERT INTO oauth_flows
       (state_hash, session_binding, clinic_id, return_to, vendor, environment, verifier, redirect_uri, scopes,
        expires_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Takes a pending flow out, and says which write of a batch asked (`job`, the last parameter).
pub(super) const TAKE_FLOW: &str = "DELETE FROM oauth_flows WHERE state_hash = ? AND session_binding = ? AND vendor = ?
     RETURNING ? AS job, clinic_id, return_to, vendor, environment, verifier, redirect_uri, scopes, expires_at";

impl Db {
    pub async fn delete_flows_of_session(&self, session_binding: &str) -> sqlx::Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM oauth_flows WHERE session_binding = ?")
            .bind(session_binding)
            .execute(&mut *self.fast().await?)
            .await
            .map(|_| ())
    }

    pub async fn purge_flows(&self, now: UnixTime) -> sqlx::Result<u64> {
        let _turn = self.write_turn().await;
        let done = sqlx::query("DELETE FROM oauth_flows WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *self.fast().await?)
            .await?;
        Ok(done.rows_affected())
    }
}
