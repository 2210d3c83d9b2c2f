use actix_web::{web, HttpResponse};

use crate::startup::AppState;

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// The database answers and the keys are loaded.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state.db.ping().await;
    let keys = !state.vault.current_key_id().is_empty();
    let body = serde_json::json!({ "database": database, "keys": keys });
    if database && keys {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text: connections by vendor and status, refreshes, vendor latency, revocations.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let counts = state.db.connection_counts().await.unwrap_or_default();
    let pending = state.db.pending_revocation_count().await.unwrap_or(0);
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render(
        &counts,
        pending,
        state.db.statements(),
    ))
}
