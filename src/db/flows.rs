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

/// Adds the pending flows of a JSON array (the verifier in hex); see [`super::hot`].
pub(super) const INSERT_FLOWS: &str = "INSERT INTO oauth_flows
       (state_hash, session_binding, clinic_id, return_to, vendor, environment, verifier, redirect_uri, scopes,
        expires_at)
     SELECT value->>'state_hash', value->>'session_binding', value->>'clinic_id', value->>'return_to',
            value->>'vendor', value->>'environment', unhex(value->>'verifier'), value->>'redirect_uri',
            value->>'scopes', value->>'expires_at'
       FROM json_each(?) ORDER BY key";

/// Takes out the pending flows named by a JSON array of `[state_hash, session_binding, vendor]`:
/// only a flow whose three match. Each comes back whole, marked `returned = 'flow'`.
pub(super) const TAKE_FLOWS: &str = "DELETE FROM oauth_flows
     WHERE (state_hash, session_binding, vendor) IN (SELECT value->>0, value->>1, value->>2 FROM json_each(?))
     RETURNING 'flow' AS returned, state_hash, session_binding, clinic_id, return_to, vendor, environment, verifier,
               redirect_uri, scopes, expires_at";

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
