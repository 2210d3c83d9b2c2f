//! Zocdoc's API: anonymous-user tokens, provider search, and a user's appointments.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use ring::digest;
use serde_json::{json, Value};

use super::{Env, ANONYMOUS_PREFIX};
use crate::sandbox::authorize::{self as authz, Param};
use crate::sandbox::failure::Endpoint;
use crate::sandbox::http::{self, random_failed, rfc3339, JsonBody, JsonError};
use crate::sandbox::tokens::{Authorized, DirectGrant, GrantKind};
use crate::sandbox::{lock, Shared};

const READ_SCOPE: &str = "external.appointment.read";

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
    let data: Vec<Value> = sample_providers(shared.clock.now())
        .into_iter()
        .filter(|p| {
            let matches = |field: &str, wanted: &Option<String>| match wanted {
                Some(wanted) => p[field].as_str().is_some_and(|v| v.to_lowercase().contains(wanted.as_str())),
                None => true,
            };
            matches("full_name", &q) && matches("specialty", &specialty)
        })
        .collect();
    http::json(StatusCode::OK, &json!({ "data": data }))
}

/// `GET {prefix}/v1/appointments`: only a signed-in user's token with
/// `external.appointment.read`.
pub(super) async fn appointments(env: &'static Env, req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(response) = shared.inject(&req, env.vendor, Endpoint::Api).await {
        return response;
    }
    let caller = match bearer(env, &req, &shared) {
        Ok(caller) => caller,
        Err(err) => return err.response(),
    };
    let email = match (caller.kind, caller.subject.as_deref()) {
        (GrantKind::User, Some(email)) => email,
        _ => {
            tracing::info!(vendor = env.vendor, "sandbox zocdoc appointments refused: not a user token");
            return http::json_error(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "a signed-in user's token is required",
            );
        }
    };
    if !caller.scopes.iter().any(|s| s == READ_SCOPE) {
        tracing::info!(vendor = env.vendor, "sandbox zocdoc appointments refused: insufficient_scope");
        return http::json_error(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "this call needs the external.appointment.read scope",
        );
    }
    http::json(
        StatusCode::OK,
        &json!({
            "data": sample_appointments(email, shared.clock.now()),
            "meta": {"anonymous_session_linked": caller.linked_anonymous},
        }),
    )
}

/// Eight providers, available in the coming days (relative to the sandbox clock).
fn sample_providers(now: i64) -> Vec<Value> {
    let next_hour = now - now.rem_euclid(3600) + 3600;
    let provider = |id: &str, name: &str, specialty: &str, city: &str, state: &str, hours_out: i64| {
        json!({
            "provider_id": id,
            "full_name": name,
            "specialty": specialty,
            "location": {"city": city, "state": state},
            "next_availability": rfc3339(next_hour + hours_out * 3600),
        })
    };
    vec![
        provider("pr_10231", "Dr. Sarah Chen, DDS", "Dentistry", "Brooklyn", "NY", 2),
        provider("pr_10232", "Dr. Emily Novak, DMD", "Dentistry", "Hoboken", "NJ", 26),
        provider("pr_10233", "Dr. Marcus Webb, MD", "Dermatology", "New York", "NY", 5),
        provider("pr_10234", "Dr. Aisha Bello, MD", "Dermatology", "Chicago", "IL", 49),
        provider("pr_10235", "Dr. Priya Raman, MD", "Family Medicine", "Jersey City", "NJ", 1),
        provider("pr_10236", "Dr. James O'Connor, MD", "Family Medicine", "Boston", "MA", 20),
        provider("pr_10237", "Dr. Daniel Ortiz, MD", "Pediatrics", "Queens", "NY", 3),
        provider("pr_10238", "Dr. Kenji Tanaka, MD", "Pediatrics", "San Francisco", "CA", 72),
    ]
}

/// Three appointments of the user: two coming, one past. Their ids depend on the email,
/// so two users never see the same appointments.
fn sample_appointments(email: &str, now: i64) -> Vec<Value> {
    let digest = digest::digest(&digest::SHA256, email.to_ascii_lowercase().as_bytes());
    let tag: String = digest.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
    let day = now - now.rem_euclid(86_400);
    let appointment = |n: u8, name: &str, provider_id: &str, start: i64, status: &str| {
        json!({
            "appointment_id": format!("apt_{tag}{n}"),
            "provider": {"provider_id": provider_id, "full_name": name},
            "start_time": rfc3339(start),
            "duration_minutes": 30,
            "status": status,
            "patient": {"email": email},
        })
    };
    vec![
        appointment(1, "Dr. Priya Raman, MD", "pr_10235", day + 2 * 86_400 + 14 * 3600, "confirmed"),
        appointment(2, "Dr. Sarah Chen, DDS", "pr_10231", day + 9 * 86_400 + 15 * 3600 + 1800, "confirmed"),
        appointment(3, "Dr. Marcus Webb, MD", "pr_10233", day - 12 * 86_400 + 13 * 3600, "completed"),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_plausible() {
        let providers = sample_providers(1_700_000_000);
        assert_eq!(providers.len(), 8);
        assert!(providers.iter().all(|p| p["next_availability"].as_str().unwrap().ends_with('Z')));
        let a = sample_appointments("a@example.com", 1_700_000_000);
        let b = sample_appointments("b@example.com", 1_700_000_000);
        assert_eq!(a.len(), 3);
        assert_ne!(a[0]["appointment_id"], b[0]["appointment_id"]);
        assert_eq!(a[0]["patient"]["email"], "a@example.com");
    }
}
