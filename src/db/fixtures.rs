//! Rows and stores for the database's own tests.
#![allow(clippy::expect_used)]

use super::connections::{NewEvent, SealedGrant};
use super::flows::NewFlow;
use super::{Config, Db};

/// A fresh SQLite store in a temporary folder (kept alive by the returned guard).
pub async fn sqlite() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = Db::open(&Config::sqlite(&dir.path().join("test.db"))).await.expect("the store opens");
    (db, dir)
}

pub fn event(detail: &str) -> NewEvent<'_> {
    NewEvent { kind: "connected", detail, actor: "test" }
}

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
        next_health_at: None,
        now: 10,
    }
}
