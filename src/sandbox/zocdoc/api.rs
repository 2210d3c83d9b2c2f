//! Zocdoc's API: anonymous-user tokens and providers (search and lookup). Scheduling lives in
//! `booking.rs`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::catalogue::{self, provider_json, PROVIDERS};
use super::{booking, Env, ANONYMOUS_PREFIX};
use crate::sandbox::authorize::{self as authz, Param};
use crate::sandbox::failure::Endpoint;
use crate::sandbox::http::{self, random_failed, rfc3339, JsonBody, JsonError};
use crate::sandbox::tokens::{Authorized, DirectGrant, GrantKind};
use crate::sandbox::{lock, Shared};

/// What the request's live bearer token (of this environment) grants, or the 401.
fn bearer(env: &Env, req: &HttpRequest, shared: &Shared) -> Result<Authorized, JsonError> {
    let Some(token) = http::bearer_token(req) else {
        tracing::info!(vendor = env.vendor, "sandbox zocdoc api call without a bearer token");
        return Err(JsonError::invalid_token());
    };
    let now = shared.clock.now();
    let authorized = lock(env.store(shared)).authorize(token, now);
    authorized.ok_or_else(|| {
        tracing::info!(vendor = env.vendor, "sandbox zocdoc api call with a dead or foreign token");
        JsonError::invalid_token()
    })
}

/// `POST {prefix}/v1/token/anonymous-user` with the backend's bearer token and
/// `{"app_client_id": <SPA client id>}`.
pub(super) async fn anonymous_user(
    env: &'static Env,
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    if let Some(response) = shared.inject(&req, env.vendor, Endpoint::Api).await {
        return response;
    }
    match issue_anonymous(env, &req, &body, &shared) {
        Ok(response) => response,
        Err(err) => err.response(),
    }
}

fn issue_anonymous(env: &Env, req: &HttpRequest, body: &[u8], shared: &Shared) -> Result<HttpResponse, JsonError> {
    let caller = bearer(env, req, shared)?;
    if caller.kind != GrantKind::Client {
        tracing::info!(vendor = env.vendor, "sandbox zocdoc anonymous-user token asked without the backend token");
        return Err(JsonError::invalid_token());
    }
    if !http::is_json(req) {
        return Err(JsonError::bad_request("invalid_request", "request body must be JSON"));
    }
    let body = JsonBody::parse(body)?;
    match body.string("app_client_id")? {
        Some(id) if id == env.spa_client_id => {}
        Some(_) => {
            return Err(JsonError::bad_request(
                "invalid_request",
                "app_client_id must be this environment's SPA client id",
            ))
        }
        None => return Err(JsonError::bad_request("invalid_request", "app_client_id is required")),
    }
    let now = shared.clock.now();
    let tokens = lock(env.store(shared))
        .issue_direct(
            &shared.rng,
            DirectGrant {
                client_id: env.spa_client_id,
                kind: GrantKind::Anonymous,
                scopes: Vec::new(),
                subject: None,
                audience: None,
                access_prefix: ANONYMOUS_PREFIX,
                with_refresh: false,
            },
            now,
        )
        .map_err(|_| random_failed())?;
    tracing::info!(vendor = env.vendor, "sandbox zocdoc anonymous-user token issued");
    Ok(http::json(
        StatusCode::OK,
        &json!({
            "access_token": tokens.access_token,
            "token_type": "Bearer",
            "expires_in": tokens.expires_in,
        }),
    ))
}

/// `GET {prefix}/v1/providers?q=&specialty=`: any live token of this environment.
pub(super) async fn providers(env: &'static Env, req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(response) = shared.inject(&req, env.vendor, Endpoint::Api).await {
        return response;
    }
    if let Err(err) = bearer(env, &req, &shared) {
        return err.response();
    }
    let pairs = authz::query_pairs(&req);
    let filter = |name: &str| match authz::param(&pairs, name) {
        Param::One(value) if !value.trim().is_empty() => Some(value.trim().to_lowercase()),
        _ => None,
    };
    let (q, specialty) = (filter("q"), filter("specialty"));
    let matches = |field: &str, wanted: &Option<String>| match wanted {
        Some(wanted) => field.to_lowercase().contains(wanted.as_str()),
        None => true,
    };
    let now = shared.clock.now();
    let mut desk = lock(&shared.zocdoc_desk);
    let ledger = desk.ledger(env);
    let data: Vec<Value> = PROVIDERS
        .iter()
        .filter(|p| matches(p.full_name, &q) && matches(p.specialty, &specialty))
        .map(|p| provider_json(p, booking::next_open(ledger, p, now).map(rfc3339)))
        .collect();
    http::json(StatusCode::OK, &json!({ "data": data }))
}

/// `GET {prefix}/v1/providers/{provider_id}`: any live token of this environment.
pub(super) async fn provider(
    env: &'static Env,
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    if let Some(response) = shared.inject(&req, env.vendor, Endpoint::Api).await {
        return response;
    }
    if let Err(err) = bearer(env, &req, &shared) {
        return err.response();
    }
    let Some(p) = catalogue::provider(&path) else {
        return http::json_error(StatusCode::NOT_FOUND, "not_found", "no such provider");
    };
    let now = shared.clock.now();
    let next = booking::next_open(lock(&shared.zocdoc_desk).ledger(env), p, now).map(rfc3339);
    http::json(StatusCode::OK, &json!({ "data": provider_json(p, next) }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn providers_carry_locations_with_zones_and_visit_reasons() {
        let ledger = booking::Ledger::default();
        let now = 1_700_000_000;
        let all: Vec<Value> =
            PROVIDERS.iter().map(|p| provider_json(p, booking::next_open(&ledger, p, now).map(rfc3339))).collect();
        assert_eq!(all.len(), 8);
        assert!(all.iter().all(|p| p["next_availability"].as_str().unwrap().ends_with('Z')));
        assert!(all.iter().all(|p| p["locations"][0]["time_zone"].is_string()));
        assert!(all.iter().all(|p| p["visit_reasons"][0]["visit_reason_id"].is_string()));
    }
}
