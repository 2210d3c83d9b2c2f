//! Rows for the database's own tests.

use super::connections::SealedGrant;
use super::flows::NewFlow;

pub fn flow(state_hash: &str) -> NewFlow<'_> {
    NewFlow {
        state_hash,
        session_binding: "binding",
        clinic_id: None,
        return_to: None,
        vendor: "zocdoc",
        environment: "production",
        verifier: b"sealed",
        redirect_uri: "http://localhost/callback",
        scopes: "openid",
        expires_at: 1_000,
    }
}

/// A DrChrono grant of `clinic_id` whose sealed access token is `token`.
pub fn grant(clinic_id: i64, token: &[u8]) -> SealedGrant<'_> {
    SealedGrant {
        clinic_id,
        vendor: "drchrono",
        environment: "production",
        access_token: token,
        refresh_token: Some(b"sealed-refresh"),
        token_type: "Bearer",
        scopes: "user:read",
        expires_at: Some(100),
        account_name: Some("Dr. A"),
        identity_retry: false,
        client_id: None,
        client_secret: None,
        parameters: "{}",
        now: 10,
    }
}

/// Commits a row no cached read depends on, through `conn`.
pub async fn commit_unrelated(conn: &mut sqlx::SqliteConnection, state_hash: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO oauth_flows (state_hash, session_binding, vendor, environment, verifier, redirect_uri, scopes,
           expires_at) VALUES (?, 'b', 'v', 'e', x'00', 'r', 's', 1)",
    )
    .bind(state_hash)
    .execute(conn)
    .await
    .map(|_| ())
}
