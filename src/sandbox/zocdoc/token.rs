//! Zocdoc's token endpoint: JSON bodies only; client credentials with an `audience` for the
//! backend client, no secret at all for the public SPA client.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::{Env, CLIENT_ACCESS_PREFIX, OFFLINE_ACCESS};
use crate::sandbox::failure::Endpoint;
use crate::sandbox::http::{self, invalid_client, random_failed, token_error, JsonBody, JsonError};
use crate::sandbox::tokens::{DirectGrant, GrantKind, IssuedTokens};
use crate::sandbox::{lock, Shared};

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
}

/// `scope` as Zocdoc reports it: what was granted, without `offline_access`.
fn reported_scope(scopes: &[String]) -> String {
    scopes.iter().filter(|s| *s != OFFLINE_ACCESS).map(String::as_str).collect::<Vec<_>>().join(" ")
}

fn issued(env: &Env, grant_type: &'static str, tokens: &IssuedTokens, with_refresh: bool) -> HttpResponse {
    tracing::info!(vendor = env.vendor, grant_type, "sandbox zocdoc tokens issued");
    http::json(
        StatusCode::OK,
        &TokenResponse {
            access_token: &tokens.access_token,
            token_type: "Bearer",
            expires_in: tokens.expires_in,
            scope: reported_scope(&tokens.scopes),
            refresh_token: if with_refresh { tokens.refresh_token.as_deref() } else { None },
        },
    )
}

/// `POST {prefix}/oauth/token`.
pub(super) async fn token(
    env: &'static Env,
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    if let Some(response) = shared.inject(&req, env.vendor, Endpoint::Token).await {
        return response;
    }
    match grant(env, &req, &body, &shared) {
        Ok(response) => response,
        Err(err) => err.response(),
    }
}

fn grant(env: &Env, req: &HttpRequest, body: &[u8], shared: &Shared) -> Result<HttpResponse, JsonError> {
    if !http::is_json(req) {
        return Err(JsonError::bad_request("invalid_request", "request body must be JSON"));
    }
    if http::has_basic_auth(req) {
        return Err(invalid_client("client credentials must be sent in the JSON body"));
    }
    let body = JsonBody::parse(body)?;
    let now = shared.clock.now();
    match body.required("grant_type")? {
        "client_credentials" => {
            backend_client(env, &body)?;
            match body.string("audience")? {
                None => {
                    return Err(JsonError::bad_request(
                        "invalid_request",
                        format!("audience is required (this environment's API audience is {})", env.api_audience),
                    ))
                }
                Some(audience) if audience != env.api_audience => {
                    return Err(JsonError::bad_request(
                        "invalid_request",
                        format!("unknown audience: this environment's API audience is {}", env.api_audience),
                    ))
                }
                Some(_) => {}
            }
            let tokens = lock(env.store(shared))
                .issue_direct(
                    &shared.rng,
                    DirectGrant {
                        client_id: env.backend_client_id,
                        kind: GrantKind::Client,
                        scopes: Vec::new(),
                        subject: None,
                        audience: Some(env.api_audience.to_owned()),
                        access_prefix: CLIENT_ACCESS_PREFIX,
                        with_refresh: false,
                    },
                    now,
                )
                .map_err(|_| random_failed())?;
            Ok(issued(env, "client_credentials", &tokens, false))
        }
        "authorization_code" => {
            public_client(env, &body)?;
            let code = body.required("code")?;
            let redirect_uri = body.string("redirect_uri")?;
            let verifier = body.string("code_verifier")?;
            let tokens = lock(env.store(shared))
                .redeem_code(&shared.rng, code, env.spa_client_id, redirect_uri, verifier, now)
                .map_err(|err| token_error(env.vendor, err))?;
            Ok(issued(env, "authorization_code", &tokens, true))
        }
        "refresh_token" => {
            public_client(env, &body)?;
            let refresh_token = body.required("refresh_token")?;
            let tokens = lock(env.store(shared))
                .refresh(&shared.rng, refresh_token, env.spa_client_id, now)
                .map_err(|err| token_error(env.vendor, err))?;
            // No rotation: the refresh token the client holds stays valid, and none is returned.
            Ok(issued(env, "refresh_token", &tokens, false))
        }
        _ => {
            tracing::info!(vendor = env.vendor, "sandbox zocdoc unsupported_grant_type");
            Err(JsonError::bad_request(
                "unsupported_grant_type",
                "grant_type must be client_credentials, authorization_code or refresh_token",
            ))
        }
    }
}

/// The backend client: this environment's id and secret, compared in constant time.
fn backend_client(env: &Env, body: &JsonBody) -> Result<(), JsonError> {
    let refused = || invalid_client("client authentication failed");
    let id = body.string("client_id")?.ok_or_else(refused)?;
    let secret = body.string("client_secret")?.ok_or_else(refused)?;
    if !http::client_matches(id, secret, env.backend_client_id, env.backend_client_secret) {
        tracing::info!(vendor = env.vendor, "sandbox zocdoc client authentication failed");
        return Err(refused());
    }
    Ok(())
}

/// The public SPA client: its id, and no secret.
fn public_client(env: &Env, body: &JsonBody) -> Result<(), JsonError> {
    if body.has("client_secret") {
        return Err(JsonError::bad_request("invalid_request", "public SPA clients must not send a client_secret"));
    }
    match body.string("client_id")? {
        Some(id) if id == env.spa_client_id => Ok(()),
        _ => {
            tracing::info!(vendor = env.vendor, "sandbox zocdoc unknown public client");
            Err(invalid_client("unknown client_id: use this environment's SPA client id"))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn reported_scope_leaves_out_offline_access() {
        let scopes = ["external.appointment.read", "offline_access", "external.appointment.write"].map(String::from);
        assert_eq!(reported_scope(&scopes), "external.appointment.read external.appointment.write");
        assert_eq!(reported_scope(&[]), "");
    }
}
