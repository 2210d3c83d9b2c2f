//! The API: account identity and bookings, behind a bearer access token.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::VENDOR;
use crate::sandbox::failure::Endpoint;
use crate::sandbox::http::{self, json_error, rfc3339, JsonError};
use crate::sandbox::{lock, Shared, YAPPOINTMENT_COMPANY_ID, YAPPOINTMENT_COMPANY_NAME};

/// The scopes of the request's live bearer token, or the 401 to answer.
fn bearer_scopes(req: &HttpRequest, shared: &Shared) -> Result<Vec<String>, JsonError> {
    let Some(token) = http::bearer_token(req) else {
        tracing::info!("sandbox yappointment api call without a bearer token");
        return Err(JsonError::invalid_token());
    };
    let now = shared.clock.now();
    let authorized = lock(&shared.yappointment).authorize(token, now);
    match authorized {
        Some(auth) => Ok(auth.scopes),
        None => {
            tracing::info!("sandbox yappointment api call with a dead access token");
            Err(JsonError::invalid_token())
        }
    }
}

/// `POST /api/v1/me`: the company that granted access.
pub(super) async fn me(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(response) = shared.inject(&req, VENDOR, Endpoint::Identity).await {
        return response;
    }
    if let Err(err) = bearer_scopes(&req, &shared) {
        return err.response();
    }
    http::json(
        StatusCode::OK,
        &json!({
            "id": YAPPOINTMENT_COMPANY_ID,
            "name": YAPPOINTMENT_COMPANY_NAME,
            "timezone": "Europe/Warsaw",
            "plan": "sandbox",
        }),
    )
}

/// `POST /api/v1/bookings` with an optional JSON `{"filter": {"status": ...}}`.
pub(super) async fn bookings(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(response) = shared.inject(&req, VENDOR, Endpoint::Api).await {
        return response;
    }
    let scopes = match bearer_scopes(&req, &shared) {
        Ok(scopes) => scopes,
        Err(err) => return err.response(),
    };
    if !scopes.iter().any(|s| s == "bookings:read") {
        tracing::info!("sandbox yappointment bookings refused: insufficient_scope");
        return json_error(StatusCode::FORBIDDEN, "insufficient_scope", "this call needs the bookings:read scope");
    }
    let status = match status_filter(&req, &body) {
        Ok(status) => status,
        Err(why) => return json_error(StatusCode::BAD_REQUEST, "invalid_request", why),
    };
    let data: Vec<Value> = sample_bookings(shared.clock.now())
        .into_iter()
        .filter(|b| match status.as_deref() {
            Some(wanted) => b["status"] == wanted,
            None => true,
        })
        .collect();
    http::json(StatusCode::OK, &json!({ "data": data }))
}

/// The `filter.status` of a bookings request body. An empty body means no filter.
fn status_filter(req: &HttpRequest, body: &[u8]) -> Result<Option<String>, &'static str> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !http::is_json(req) {
        return Err("request body must be JSON");
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return Err("request body must be a JSON object");
    };
    match body.get("filter") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(filter)) => match filter.get("status") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(status)) => Ok(Some(status.clone())),
            Some(_) => Err("filter.status must be a string"),
        },
        Some(_) => Err("filter must be an object"),
    }
}

/// Three bookings in the coming days, relative to the sandbox clock.
fn sample_bookings(now: i64) -> Vec<Value> {
    let tomorrow = now - now.rem_euclid(86_400) + 86_400;
    let booking = |id: &str, status: &str, start: i64, minutes: i64, service: Value, customer: Value| {
        json!({
            "id": id,
            "status": status,
            "starts_at": rfc3339(start),
            "ends_at": rfc3339(start + minutes * 60),
            "service": service,
            "customer": customer,
            "staff": {"id": "stf_0417", "name": "Dr. Ewa Zielińska"},
            "location": YAPPOINTMENT_COMPANY_NAME,
        })
    };
    vec![
        booking(
            "bkg_8d41c2a7",
            "confirmed",
            tomorrow + 7 * 3600,
            30,
            json!({"id": "svc_1001", "name": "General consultation", "price": {"amount": "180.00", "currency": "PLN"}}),
            json!({"id": "cus_5521", "name": "Anna Kowalska"}),
        ),
        booking(
            "bkg_8d41c2b3",
            "pending",
            tomorrow + 9 * 3600,
            45,
            json!({"id": "svc_1004", "name": "Physiotherapy session", "price": {"amount": "220.00", "currency": "PLN"}}),
            json!({"id": "cus_5530", "name": "Tomasz Wiśniewski"}),
        ),
        booking(
            "bkg_8d41c2c9",
            "cancelled",
            tomorrow + 86_400 + 12 * 3600,
            20,
            json!({"id": "svc_1002", "name": "Vaccination", "price": {"amount": "90.00", "currency": "PLN"}}),
            json!({"id": "cus_5547", "name": "Maria Nowak"}),
        ),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn sample_bookings_filter_by_status() {
        let all = sample_bookings(1_700_000_000);
        assert_eq!(all.len(), 3);
        assert_eq!(all.iter().filter(|b| b["status"] == "confirmed").count(), 1);
        assert!(all[0]["starts_at"].as_str().unwrap().ends_with('Z'));
    }
}
