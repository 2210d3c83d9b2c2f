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
        transaction!(self, |tx| {
            sqlx::query(
                "INSERT INTO oauth_flows (state_hash, session_binding, clinic_id, return_to, vendor, environment,
                                          verifier, redirect_uri, scopes, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
            .execute(tx.c())
            .await?;
        });
        Ok(())
    }

    /// Takes the flow out, so a state can be used once even under concurrent callbacks (on any
    /// instance). Only a flow of this session and this vendor is taken: a state presented on the
    /// wrong session or the wrong vendor's callback leaves the rightful flow in place.
    pub async fn take_flow(
        &self,
        state_hash: &str,
        session_binding: &str,
        vendor: &str,
    ) -> sqlx::Result<Option<FlowRow>> {
        Ok(transaction!(self, |tx| {
            sqlx::query_as(
                "DELETE FROM oauth_flows WHERE state_hash = $1 AND session_binding = $2 AND vendor = $3
                 RETURNING clinic_id, return_to, vendor, environment, verifier, redirect_uri, scopes, expires_at",
            )
            .bind(state_hash)
            .bind(session_binding)
            .bind(vendor)
            .fetch_optional(tx.c())
            .await?
        }))
    }

    pub async fn delete_flows_of_session(&self, session_binding: &str) -> sqlx::Result<()> {
        transaction!(self, |tx| {
            sqlx::query("DELETE FROM oauth_flows WHERE session_binding = $1")
                .bind(session_binding)
                .execute(tx.c())
                .await?;
        });
        Ok(())
    }

    pub async fn purge_flows(&self, now: UnixTime) -> sqlx::Result<u64> {
        Ok(transaction!(self, |tx| {
            sqlx::query("DELETE FROM oauth_flows WHERE expires_at <= $1")
                .bind(now)
                .execute(tx.c())
                .await?
                .rows_affected()
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::db::fixtures::{flow, sqlite};

    #[tokio::test]
    async fn a_flow_is_taken_once_and_only_by_its_session_and_vendor() {
        let (db, _dir) = sqlite().await;
        db.insert_flow(&flow("h1")).await.unwrap();
        assert!(db.insert_flow(&flow("h1")).await.is_err(), "a state is never stored twice");
        assert!(db.take_flow("h1", "other-session", "zocdoc").await.unwrap().is_none());
        assert!(db.take_flow("h1", "binding", "drchrono").await.unwrap().is_none());
        let (first, second) =
            tokio::join!(db.take_flow("h1", "binding", "zocdoc"), db.take_flow("h1", "binding", "zocdoc"));
        let taken: Vec<_> = [first.unwrap(), second.unwrap()].into_iter().flatten().collect();
        assert_eq!(taken.len(), 1, "two callbacks at once: one takes it");
        assert_eq!(taken[0].verifier, b"sealed");
        assert_eq!(db.purge_flows(2_000).await.unwrap(), 0);
    }
}
