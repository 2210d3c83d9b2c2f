//! DrChrono's token (`/o/token/`) and revocation (`/o/revoke_token/`) endpoints: form bodies
//! only, client credentials in the body.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::VENDOR;
use crate::sandbox::failure::Endpoint;
use crate::sandbox::http::{self, invalid_client, token_error, Form, JsonError};
use crate::sandbox::{lock, Shared, DRCHRONO_CLIENT_ID, DRCHRONO_CLIENT_SECRET};

/// A form request from the authenticated client.
fn client_form(req: &HttpRequest, body: &[u8]) -> Result<Form, JsonError> {
    if !http::is_form(req) {
        return Err(JsonError::bad_request(
            "invalid_request",
            "request body must be application/x-www-form-urlencoded",
        ));
    }
    if http::has_basic_auth(req) {
        return Err(invalid_client("send client credentials in the form body"));
    }
    let form = Form::parse(body)?;
    let refused = || invalid_client("client authentication failed");
    let id = form.get("client_id").ok_or_else(refused)?;
    let secret = form.get("client_secret").ok_or_else(refused)?;
    if !http::client_matches(id, secret, DRCHRONO_CLIENT_ID, DRCHRONO_CLIENT_SECRET) {
        tracing::info!("sandbox drchrono client authentication failed");
        return Err(refused());
    }
    Ok(form)
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    scope: String,
}

/// `POST /o/token/`.
pub(super) async fn token(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(response) = shared.inject(&req, VENDOR, Endpoint::Token).await {
        return response;
    }
    match client_form(&req, &body).and_then(|form| grant(&form, &shared)) {
        Ok(response) => response,
        Err(err) => err.response(),
    }
}

fn grant(form: &Form, shared: &Shared) -> Result<HttpResponse, JsonError> {
    let now = shared.clock.now();
    let (grant_type, result) = match form.required("grant_type")? {
        "authorization_code" => {
            let code = form.required("code")?;
            let result = lock(&shared.drchrono).redeem_code(
                &shared.rng,
                code,
                DRCHRONO_CLIENT_ID,
                form.get("redirect_uri"),
                form.get("code_verifier"),
                now,
            );
            ("authorization_code", result)
        }
        "refresh_token" => {
            let refresh_token = form.required("refresh_token")?;
            let result = lock(&shared.drchrono).refresh(&shared.rng, refresh_token, DRCHRONO_CLIENT_ID, now);
            ("refresh_token", result)
        }
        _ => {
            return Err(JsonError::bad_request(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            ))
        }
    };
    let tokens = result.map_err(|err| token_error(VENDOR, err))?;
    tracing::info!(grant_type, "sandbox drchrono tokens issued");
    Ok(http::json(
        StatusCode::OK,
        &TokenResponse {
            access_token: &tokens.access_token,
            token_type: "Bearer",
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token.as_deref(),
            scope: tokens.scopes.join(" "),
        },
    ))
}

/// `POST /o/revoke_token/` (RFC 7009): revokes the whole grant; 200 with an empty body,
/// also for unknown tokens.
pub(super) async fn revoke(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(response) = shared.inject(&req, VENDOR, Endpoint::Revoke).await {
        return response;
    }
    let form = match client_form(&req, &body) {
        Ok(form) => form,
        Err(err) => return err.response(),
    };
    let token = match form.required("token") {
        Ok(token) => token,
        Err(err) => return err.response(),
    };
    let revoked = lock(&shared.drchrono).revoke(token, DRCHRONO_CLIENT_ID);
    tracing::info!(outcome = if revoked { "grant revoked" } else { "unknown token" }, "sandbox drchrono revoke");
    HttpResponse::Ok().insert_header((actix_web::http::header::CACHE_CONTROL, "no-store")).finish()
}
