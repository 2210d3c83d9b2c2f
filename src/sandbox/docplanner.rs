//! Docplanner: client credentials per country domain.
//!
//! Its dialect, as `vendor-docs/docplanner.txt` describes it and the sandbox enforces it:
//! the token URL is `https://www.{domain}/oauth/v2/token` (here `/docplanner/{domain}/...`);
//! the client authenticates with HTTP Basic only, the raw `client_id:client_secret` (not
//! form-encoded first); the body is exactly `grant_type=client_credentials&scope=integration`;
//! the answer says `"token_type": "bearer"` (lower case), `"expires_in": 3600` (the prose says
//! 24 hours; the sandbox honours `expires_in`) and `"scope": null`; tokens are 40 hex digits.
//! Credentials are registered at one domain and refused at every other.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::failure::Endpoint;
use super::http::{self, invalid_client, method_not_allowed, random_failed, JsonError};
use super::tokens::{DirectGrant, GrantKind, TokenProfile, TokenStyle};
use super::{lock, Shared, DOCPLANNER_CLIENT_ID, DOCPLANNER_CLIENT_SECRET, DOCPLANNER_DOMAIN, DOCPLANNER_DOMAINS};

pub(crate) const VENDOR: &str = "docplanner";

/// Hex access tokens for one hour; no codes or refresh tokens are ever issued.
pub(crate) const PROFILE: TokenProfile =
    TokenProfile { access_style: TokenStyle::Hex40, ..TokenProfile::new("dp_ac_", "dp_at_", "dp_rt_") };

const BASIC_CHALLENGE: &str = "Basic realm=\"Docplanner\"";

/// The facility the test credentials manage.
const FACILITY_ID: &str = "fac_2841";

pub(crate) fn scope() -> actix_web::Scope {
    web::scope("/docplanner/{domain}")
        .service(
            web::resource("/oauth/v2/token").route(web::post().to(token)).default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/v3/integration/facilities")
                .route(web::get().to(facilities))
                .default_service(web::to(method_not_allowed)),
        )
}

/// The `{domain}` of the path, if Docplanner has it.
fn known_domain(req: &HttpRequest) -> Result<&'static str, JsonError> {
    let domain = req.match_info().get("domain").unwrap_or_default();
    DOCPLANNER_DOMAINS
        .iter()
        .copied()
        .find(|known| *known == domain)
        .ok_or_else(|| JsonError::new(StatusCode::NOT_FOUND, "not_found", "unknown Docplanner domain"))
}

/// `POST /docplanner/{domain}/oauth/v2/token`.
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
    let domain = known_domain(req)?;
    let form = http::basic_dialect_form(req, body)?;
    http::require_raw_basic(
        req,
        VENDOR,
        DOCPLANNER_CLIENT_ID,
        DOCPLANNER_CLIENT_SECRET,
        "use HTTP Basic: Authorization: Basic base64(client_id:client_secret)",
        BASIC_CHALLENGE,
    )?;
    if domain != DOCPLANNER_DOMAIN {
        tracing::info!("sandbox docplanner credentials used at another domain");
        return Err(invalid_client("these client credentials are not registered at this domain")
            .with_challenge(BASIC_CHALLENGE));
    }
    match form.get("grant_type") {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(JsonError::bad_request("unsupported_grant_type", "grant_type must be client_credentials"))
        }
        None => return Err(JsonError::bad_request("invalid_request", "grant_type is required")),
    }
    if form.get("scope") != Some("integration") {
        return Err(JsonError::bad_request("invalid_scope", "scope must be integration"));
    }
    let now = shared.clock.now();
    let tokens = lock(&shared.docplanner)
        .issue_direct(
            &shared.rng,
            DirectGrant {
                client_id: DOCPLANNER_CLIENT_ID,
                kind: GrantKind::Client,
                scopes: vec!["integration".to_owned()],
                subject: None,
                audience: Some(domain.to_owned()),
                access_prefix: PROFILE.access_prefix,
                with_refresh: false,
            },
            now,
        )
        .map_err(|_| random_failed())?;
    tracing::info!("sandbox docplanner token issued");
    Ok(http::json(
        StatusCode::OK,
        &json!({
            "access_token": tokens.access_token,
            "expires_in": tokens.expires_in,
            "token_type": "bearer",
            "scope": null,
        }),
    ))
}

/// `GET /docplanner/{domain}/api/v3/integration/facilities`: a live token of that domain.
async fn facilities(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(response) = shared.inject(&req, VENDOR, Endpoint::Identity).await {
        return response;
    }
    let domain = match known_domain(&req) {
        Ok(domain) => domain,
        Err(err) => return err.response(),
    };
    let now = shared.clock.now();
    let live = http::bearer_token(&req)
        .and_then(|token| lock(&shared.docplanner).authorize(token, now))
        .is_some_and(|auth| auth.audience.as_deref() == Some(domain));
    if !live {
        tracing::info!("sandbox docplanner api call without a live token of this domain");
        return JsonError::invalid_token().response();
    }
    http::json(StatusCode::OK, &json!({"_items": [{"id": FACILITY_ID, "name": super::DOCPLANNER_FACILITY_NAME}]}))
}
