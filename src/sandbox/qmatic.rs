//! Qmatic Cloud Appointments: client credentials per region.
//!
//! Its dialect, as `vendor-docs/qmatic.txt` describes it and the sandbox enforces it: the
//! token URL is `https://api.{region}.qmatic.io/oauth2/token` (here `/qmatic/{region}/...`);
//! HTTP Basic with the raw `client_id:client_secret`; a form body
//! `grant_type=client_credentials&scope=<space-separated scopes>`; the header `X-ACCOUNT`
//! carries the account name lower-cased with the spaces removed (an optional `x-account`
//! form field must say the same); tokens last 60 minutes and come with a refresh token,
//! which is not rotated. Credentials are registered in one region and refused in the others.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::authorize::parse_scopes;
use super::failure::Endpoint;
use super::http::{self, invalid_client, random_failed, token_error, JsonError};
use super::tokens::{DirectGrant, GrantKind, Rotation, TokenProfile};
use super::{
    lock, Shared, QMATIC_ACCOUNT_NAME, QMATIC_CLIENT_ID, QMATIC_CLIENT_SECRET, QMATIC_REGION, QMATIC_REGIONS,
    QMATIC_SCOPES,
};

pub(crate) const VENDOR: &str = "qmatic";

/// One-hour access tokens; the refresh token stays the same.
pub(crate) const PROFILE: TokenProfile =
    TokenProfile { rotation: Rotation::Keep, ..TokenProfile::new("qm_ac_", "qm_at_", "qm_rt_") };

const BASIC_CHALLENGE: &str = "Basic realm=\"Qmatic\"";

const SCOPE_RULE: &str = "scope must be one or more of com.qmatic.saas.appointments/external.appointment.book, \
    .../external.appointment.reschedule and .../external.appointment.cancel, separated by single spaces";

pub(crate) fn scope() -> actix_web::Scope {
    web::scope("/qmatic/{region}")
        .service(
            web::resource("/oauth2/token")
                .route(web::post().to(token))
                .default_service(web::to(http::method_not_allowed)),
        )
        .service(
            web::resource("/v1/branches")
                .route(web::get().to(branches))
                .default_service(web::to(http::method_not_allowed)),
        )
}

/// `X-ACCOUNT` as the account's admin would derive it: `Northside Health` → `northsidehealth`.
fn account_header_value() -> String {
    QMATIC_ACCOUNT_NAME.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect()
}

/// The `{region}` of the path, if Qmatic has it.
fn known_region(req: &HttpRequest) -> Result<&'static str, JsonError> {
    let region = req.match_info().get("region").unwrap_or_default();
    QMATIC_REGIONS
        .iter()
        .copied()
        .find(|known| *known == region)
        .ok_or_else(|| JsonError::new(StatusCode::NOT_FOUND, "not_found", "unknown Qmatic region"))
}

/// The `X-ACCOUNT` header, present and normalised (lower case, no spaces).
fn account_header(req: &HttpRequest) -> Result<&str, JsonError> {
    let Some(value) = req.headers().get("x-account") else {
        return Err(JsonError::bad_request("invalid_request", "X-ACCOUNT header is required"));
    };
    let value = value.to_str().unwrap_or(" ");
    let normalised = !value.is_empty() && !value.chars().any(|c| c.is_uppercase() || c.is_whitespace());
    if !normalised {
        return Err(JsonError::bad_request(
            "invalid_request",
            "X-ACCOUNT must be the account name lower-cased with spaces removed",
        ));
    }
    Ok(value)
}

/// `POST /qmatic/{region}/oauth2/token`.
async fn token(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(response) = shared.inject(&req, VENDOR, Endpoint::Token).await {
        return response;
    }
    match issue(&req, &body, &shared) {
        Ok(response) => response,
        Err(err) => err.response(),
    }
}

fn issue(req: &HttpRequest, body: &[u8], shared: &Shared) -> Result<HttpResponse, JsonError> {
    let region = known_region(req)?;
    let form = http::basic_dialect_form(req, body)?;
    let account = account_header(req)?;
    if form.get("x-account").is_some_and(|field| field != account) {
        return Err(JsonError::bad_request(
            "invalid_request",
            "the x-account form field must equal the X-ACCOUNT header",
        ));
    }
    http::require_raw_basic(
        req,
        VENDOR,
        QMATIC_CLIENT_ID,
        QMATIC_CLIENT_SECRET,
        "use HTTP Basic: Authorization: Basic base64(clientId:clientSecret)",
        BASIC_CHALLENGE,
    )?;
    if region != QMATIC_REGION {
        tracing::info!("sandbox qmatic credentials used in another region");
        return Err(invalid_client("these client credentials are not registered in this region")
            .with_challenge(BASIC_CHALLENGE));
    }
    if account != account_header_value() {
        tracing::info!("sandbox qmatic unknown account");
        return Err(invalid_client("unknown account for these client credentials"));
    }

    let now = shared.clock.now();
    let (grant_type, tokens) = match form.get("grant_type") {
        Some("client_credentials") => {
            let scopes = form
                .get("scope")
                .and_then(|raw| parse_scopes(raw, QMATIC_SCOPES, |s| s))
                .ok_or_else(|| JsonError::bad_request("invalid_scope", SCOPE_RULE))?;
            let tokens = lock(&shared.qmatic)
                .issue_direct(
                    &shared.rng,
                    DirectGrant {
                        client_id: QMATIC_CLIENT_ID,
                        kind: GrantKind::Client,
                        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                        subject: Some(account.to_owned()),
                        audience: Some(region.to_owned()),
                        access_prefix: PROFILE.access_prefix,
                        with_refresh: true,
                    },
                    now,
                )
                .map_err(|_| random_failed())?;
            ("client_credentials", tokens)
        }
        Some("refresh_token") => {
            let refresh_token = form.required("refresh_token")?;
            let tokens = lock(&shared.qmatic)
                .refresh(&shared.rng, refresh_token, QMATIC_CLIENT_ID, now)
                .map_err(|err| token_error(VENDOR, err))?;
            // A narrower scope may be asked for; nothing outside the grant.
            if let Some(raw) = form.get("scope") {
                let asked = parse_scopes(raw, QMATIC_SCOPES, |s| s)
                    .ok_or_else(|| JsonError::bad_request("invalid_scope", SCOPE_RULE))?;
                if !asked.iter().all(|s| tokens.scopes.iter().any(|g| g == s)) {
                    return Err(JsonError::bad_request("invalid_scope", "scope exceeds what was granted"));
                }
            }
            ("refresh_token", tokens)
        }
        Some(_) => {
            return Err(JsonError::bad_request(
                "unsupported_grant_type",
                "grant_type must be client_credentials or refresh_token",
            ))
        }
        None => return Err(JsonError::bad_request("invalid_request", "grant_type is required")),
    };
    tracing::info!(grant_type, "sandbox qmatic tokens issued");
    Ok(http::json(
        StatusCode::OK,
        &json!({
            "access_token": tokens.access_token,
            "expires_in": tokens.expires_in,
            "token_type": "Bearer",
            "refresh_token": tokens.refresh_token,
            "scope": tokens.scopes.join(" "),
        }),
    ))
}

/// `GET /qmatic/{region}/v1/branches`: a live token of that region, and `X-ACCOUNT`.
async fn branches(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(response) = shared.inject(&req, VENDOR, Endpoint::Identity).await {
        return response;
    }
    match list_branches(&req, &shared) {
        Ok(response) => response,
        Err(err) => err.response(),
    }
}

fn list_branches(req: &HttpRequest, shared: &Shared) -> Result<HttpResponse, JsonError> {
    let region = known_region(req)?;
    let now = shared.clock.now();
    let authorized = http::bearer_token(req)
        .and_then(|token| lock(&shared.qmatic).authorize(token, now))
        .filter(|auth| auth.audience.as_deref() == Some(region));
    let Some(authorized) = authorized else {
        tracing::info!("sandbox qmatic api call without a live token of this region");
        return Err(JsonError::invalid_token());
    };
    let account = account_header(req)?;
    if authorized.subject.as_deref() != Some(account) {
        tracing::info!("sandbox qmatic api call for another account");
        return Err(JsonError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the access token was issued for another account",
        ));
    }
    Ok(http::json(
        StatusCode::OK,
        &json!({"branches": [{"id": "br_1", "name": format!("{QMATIC_ACCOUNT_NAME} — Main Street")}]}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_header_is_lower_case_without_spaces() {
        assert_eq!(account_header_value(), "northsidehealth");
    }
}
