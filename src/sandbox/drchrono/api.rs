//! DrChrono's API (Django REST Framework style errors: `{"detail": ...}`).

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::VENDOR;
use crate::sandbox::failure::Endpoint;
use crate::sandbox::http;
use crate::sandbox::{lock, Shared, DRCHRONO_USERNAME};

const FORBIDDEN: &str = "You do not have permission to perform this action.";

fn detail(status: StatusCode, detail: &str) -> HttpResponse {
    let mut response = http::json(status, &json!({ "detail": detail }));
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"api\""));
    }
    response
}

/// The request's token has `scope`: `Ok`, or the 401 / 403 to answer.
fn require(req: &HttpRequest, shared: &Shared, scope: &str) -> Result<(), Box<HttpResponse>> {
    let Some(token) = http::bearer_token(req) else {
        tracing::info!("sandbox drchrono api call without a bearer token");
        return Err(Box::new(detail(StatusCode::UNAUTHORIZED, "Authentication credentials were not provided.")));
    };
    let now = shared.clock.now();
    let Some(authorized) = lock(&shared.drchrono).authorize(token, now) else {
        tracing::info!("sandbox drchrono api call with a dead access token");
        return Err(Box::new(detail(StatusCode::UNAUTHORIZED, "Invalid token.")));
    };
    if !authorized.scopes.iter().any(|s| s == scope) {
        tracing::info!(scope, "sandbox drchrono api call refused: missing scope");
        return Err(Box::new(detail(StatusCode::FORBIDDEN, FORBIDDEN)));
    }
    Ok(())
}

/// `GET /api/users/current`: needs `user:read`.
pub(super) async fn current_user(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(response) = shared.inject(&req, VENDOR, Endpoint::Identity).await {
        return response;
    }
    if let Err(response) = require(&req, &shared, "user:read") {
        return *response;
    }
    http::json(
        StatusCode::OK,
        &json!({
            "id": 9301,
            "username": DRCHRONO_USERNAME,
            "practice_group": 4410,
            "doctor": 7102,
            "is_doctor": true,
            "is_staff": false,
        }),
    )
}

/// `GET /api/appointments`: needs `calendar:read`.
pub(super) async fn appointments(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(response) = shared.inject(&req, VENDOR, Endpoint::Api).await {
        return response;
    }
    if let Err(response) = require(&req, &shared, "calendar:read") {
        return *response;
    }
    http::json(
        StatusCode::OK,
        &json!({
            "previous": null,
            "next": null,
            "results": sample_appointments(shared.clock.now()),
        }),
    )
}

/// `2026-11-23T09:00:00`: DrChrono's scheduled times carry no offset (practice-local).
fn local_time(t: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(t).ok().and_then(|d| d.format(&format).ok()).unwrap_or_default()
}

fn sample_appointments(now: i64) -> Vec<Value> {
    let tomorrow = now - now.rem_euclid(86_400) + 86_400;
    let appointment = |id: u64, patient: u64, start: i64, duration: i64, status: &str, reason: &str| {
        json!({
            "id": id,
            "doctor": 7102,
            "office": 3301,
            "exam_room": 1,
            "patient": patient,
            "scheduled_time": local_time(start),
            "duration": duration,
            "status": status,
            "reason": reason,
        })
    };
    vec![
        appointment(880_141, 61_207, tomorrow + 9 * 3600, 30, "Confirmed", "Annual physical"),
        appointment(880_142, 61_233, tomorrow + 10 * 3600 + 1800, 15, "", "Follow-up: blood pressure"),
        appointment(880_157, 61_290, tomorrow + 86_400 + 14 * 3600, 45, "Confirmed", "New patient visit"),
    ]
}
