use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;

use crate::startup::AppState;
use crate::vault::{constant_time_eq, lookup_hash};

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// The database answers and the keys are loaded: ready (200). Still 200 but `degraded` when some
/// connections' secrets are sealed under a key that is no longer configured (`key_missing`, how
/// many): the app serves, but those connections need the key back or a reconnect. 503 otherwise.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    // The count is read from the database, not remembered: another instance (or a reconnect)
    // may have changed it since this one started.
    let key_missing = state.db.key_missing_count().await;
    let database = match &key_missing {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(cause = %e, "readiness: the database does not answer");
            false
        }
    };
    let keys = !state.vault.current_key_id().is_empty();
    let key_missing = key_missing.unwrap_or(0);
    let status = match (database && keys, key_missing) {
        (false, _) => "unavailable",
        (true, 0) => "ready",
        (true, _) => "degraded",
    };
    // The engine is named (never its URL, which may hold a password).
    let body = serde_json::json!({
        "status": status,
        "database": database,
        "engine": state.db.engine(),
        "keys": keys,
        "key_missing": key_missing,
    });
    if database && keys {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Who may read `/metrics`: anyone in development; in production only a scraper presenting
/// `CLINIC_CONNECT_METRICS_TOKEN`, and nobody (404, as if there were no such page) without one.
/// `None` when the request may read them; otherwise the refusal to send.
fn metrics_refusal(state: &AppState, req: &HttpRequest) -> Option<HttpResponse> {
    if !state.mode.is_production() {
        return None;
    }
    let Some(expected) = &state.metrics_token else {
        tracing::info!("metrics asked for in production without CLINIC_CONNECT_METRICS_TOKEN set");
        return Some(HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body("not found"));
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    // Hashed first, so the comparison's time says nothing about the token's length either.
    if constant_time_eq(lookup_hash(presented).as_bytes(), lookup_hash(expected.expose_secret()).as_bytes()) {
        return None;
    }
    tracing::warn!(presented = !presented.is_empty(), "metrics refused: wrong or missing bearer token");
    Some(
        HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\""))
            .content_type("text/plain; charset=utf-8")
            .body("a valid metrics token is required"),
    )
}

/// Prometheus text: connections by vendor and status, refreshes, vendor latency, revocations.
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = metrics_refusal(&state, &req) {
        return refused;
    }
    let counts = state.db.connection_counts().await.unwrap_or_default();
    let pending = state.db.pending_revocation_count().await.unwrap_or(0);
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render(
        &counts,
        pending,
        state.db.statements(),
    ))
}
