//! The token and revocation endpoints: JSON bodies only, client credentials in the body.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::VENDOR;
use crate::sandbox::failure::Endpoint;
use crate::sandbox::http::{self, json_error, secrets_equal, JsonError};
use crate::sandbox::tokens::{IssuedTokens, TokenError};
use crate::sandbox::{lock, Shared, YAPPOINTMENT_CLIENT_ID, YAPPOINTMENT_CLIENT_SECRET};

/// The JSON object of a token or revoke request, from an authenticated client.
struct ClientRequest {
    body: Map<String, Value>,
}

impl ClientRequest {
    /// A string member; `Err` (400 invalid_request) if present but not a string.
    fn string(&self, name: &str) -> Result<Option<&str>, JsonError> {
        match self.body.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(JsonError::bad_request("invalid_request", format!("{name} must be a string"))),
        }
    }

    fn required(&self, name: &str) -> Result<&str, JsonError> {
        self.string(name)?.ok_or_else(|| JsonError::bad_request("invalid_request", format!("{name} is required")))
    }
}

/// Enforces yAppointment's dialect and authenticates the client from the body.
fn client_request(req: &HttpRequest, body: &[u8]) -> Result<ClientRequest, JsonError> {
    let not_json = || JsonError::bad_request("invalid_request", "request body must be JSON");
    if !http::is_json(req) {
        return Err(not_json());
    }
    if http::has_basic_auth(req) {
        return Err(JsonError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client credentials must be sent in the JSON body",
        ));
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return Err(not_json());
    };
    let request = ClientRequest { body };
    let invalid_client = || JsonError::new(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    let id = request.string("client_id")?.ok_or_else(invalid_client)?;
    let secret = request.string("client_secret")?.ok_or_else(invalid_client)?;
    // Evaluate both comparisons, so the time taken does not say which one failed.
    let id_ok = secrets_equal(id.as_bytes(), YAPPOINTMENT_CLIENT_ID.as_bytes());
    let secret_ok = secrets_equal(secret.as_bytes(), YAPPOINTMENT_CLIENT_SECRET.as_bytes());
    if !(id_ok & secret_ok) {
        tracing::info!("sandbox yappointment client authentication failed");
        return Err(invalid_client());
    }
    Ok(request)
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
}

fn token_outcome(result: Result<IssuedTokens, TokenError>, grant_type: &str) -> HttpResponse {
    match result {
        Ok(tokens) => {
            tracing::info!(grant_type, "sandbox yappointment tokens issued");
            http::json(
                StatusCode::OK,
                &TokenResponse {
                    access_token: &tokens.access_token,
                    token_type: "Bearer",
                    expires_in: tokens.expires_in,
                    refresh_token: tokens.refresh_token.as_deref(),
                },
            )
        }
        Err(TokenError::InvalidGrant(why)) => {
            tracing::info!(grant_type, reason = why, "sandbox yappointment invalid_grant");
            json_error(StatusCode::BAD_REQUEST, "invalid_grant", why)
        }
        Err(TokenError::Random) => {
            tracing::error!("sandbox random source failed");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "random source failed")
        }
    }
}

/// `POST /oauth/token`.
pub(super) async fn token(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(response) = shared.inject(&req, VENDOR, Endpoint::Token).await {
        return response;
    }
    match client_request(&req, &body).and_then(|request| token_grant(&request, &shared)) {
        Ok(response) => response,
        Err(err) => err.response(),
    }
}

fn token_grant(request: &ClientRequest, shared: &Shared) -> Result<HttpResponse, JsonError> {
    let now = shared.clock.now();
    match request.required("grant_type")? {
        "authorization_code" => {
            let code = request.required("code")?;
            let redirect_uri = request.string("redirect_uri")?;
            let verifier = request.string("code_verifier")?;
            let result = lock(&shared.yappointment).redeem_code(
                &shared.rng,
                code,
                YAPPOINTMENT_CLIENT_ID,
                redirect_uri,
                verifier,
                now,
            );
            Ok(token_outcome(result, "authorization_code"))
        }
        "refresh_token" => {
            let refresh_token = request.required("refresh_token")?;
            let result = lock(&shared.yappointment).refresh(&shared.rng, refresh_token, YAPPOINTMENT_CLIENT_ID, now);
            Ok(token_outcome(result, "refresh_token"))
        }
        _ => {
            tracing::info!("sandbox yappointment unsupported_grant_type");
            Err(JsonError::bad_request(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            ))
        }
    }
}

/// `POST /oauth/revoke` (RFC 7009): revokes the whole grant; unknown tokens are fine.
pub(super) async fn revoke(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(response) = shared.inject(&req, VENDOR, Endpoint::Revoke).await {
        return response;
    }
    let request = match client_request(&req, &body) {
        Ok(request) => request,
        Err(err) => return err.response(),
    };
    let token = match request.required("token") {
        Ok(token) => token,
        Err(err) => return err.response(),
    };
    let revoked = lock(&shared.yappointment).revoke(token, YAPPOINTMENT_CLIENT_ID);
    tracing::info!(outcome = if revoked { "grant revoked" } else { "unknown token" }, "sandbox yappointment revoke");
    http::json(StatusCode::OK, &json!({}))
}
