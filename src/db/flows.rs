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
        let insert = sqlx::query(
            "INSERT INTO oauth_flows
               (state_hash, session_binding, clinic_id, return_to, vendor, environment, verifier, redirect_uri,
                scopes, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(flow.state_hash.to_owned())
        .bind(flow.session_binding.to_owned())
        .bind(flow.clinic_id)
        .bind(flow.return_to.map(str::to_owned))
        .bind(flow.vendor.to_owned())
        .bind(flow.environment.to_owned())
        .bind(flow.verifier.to_vec())
        .bind(flow.redirect_uri.to_owned())
        .bind(flow.scopes.to_owned())
        .bind(flow.expires_at);
        let db = self.clone();
        self.hot_writes
            .run(async move {
                let write = async {
                    let done = insert.execute(&mut *db.fast().await?).await?;
                    Ok(((), done.rows_affected() > 0))
                };
                // Pending flows are read by no cached read.
                db.own_write(write, |_| {}).await
            })
            .await
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
        let take = sqlx::query_as(
            "DELETE FROM oauth_flows WHERE state_hash = ? AND session_binding = ? AND vendor = ?
             RETURNING clinic_id, return_to, vendor, environment, verifier, redirect_uri, scopes, expires_at",
        )
        .bind(state_hash.to_owned())
        .bind(session_binding.to_owned())
        .bind(vendor.to_owned());
        let db = self.clone();
        self.hot_writes
            .run(async move {
                let write = async {
                    let flow: Option<FlowRow> = take.fetch_optional(&mut *db.fast().await?).await?;
                    let taken = flow.is_some();
                    Ok((flow, taken))
                };
                db.own_write(write, |_| {}).await
            })
            .await
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
