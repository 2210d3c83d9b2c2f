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

impl Db {
    pub async fn insert_flow(&self, flow: &NewFlow<'_>) -> sqlx::Result<()> {
        let insert = async {
            let done = sqlx::query(
                "INSERT INTO oauth_flows
                   (state_hash, session_binding, clinic_id, return_to, vendor, environment, verifier, redirect_uri,
                    scopes, expires_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(flow.state_hash)
            .bind(flow.session_binding)
            .bind(flow.clinic_id)
            .bind(flow.return_to)
            .bind(flow.vendor)
            .bind(flow.environment)
            .bind(flow.verifier)
            .bind(flow.redirect_uri)
            .bind(flow.scopes)
            .bind(flow.expires_at)
            .execute(&mut *self.fast().await?)
            .await?;
            Ok(((), done.rows_affected() > 0))
        };
        // Pending flows are read by no cached read.
        self.own_write(insert, |_| {}).await
    }

    /// Takes the flow out in one statement, so a state can be used once even under concurrent
    /// callbacks. Only a flow of this session and this vendor is taken: a state presented on the
    /// wrong session or the wrong vendor's callback leaves the rightful flow in place.
    pub async fn take_flow(
        &self,
        state_hash: &str,
        session_binding: &str,
        vendor: &str,
    ) -> sqlx::Result<Option<FlowRow>> {
        let take = async {
            let flow: Option<FlowRow> = sqlx::query_as(
                "DELETE FROM oauth_flows WHERE state_hash = ? AND session_binding = ? AND vendor = ?
                 RETURNING clinic_id, return_to, vendor, environment, verifier, redirect_uri, scopes, expires_at",
            )
            .bind(state_hash)
            .bind(session_binding)
            .bind(vendor)
            .fetch_optional(&mut *self.fast().await?)
            .await?;
            let taken = flow.is_some();
            Ok((flow, taken))
        };
        self.own_write(take, |_| {}).await
    }

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
