//! DrChrono's authorization endpoint (`/o/authorize/`) and consent page.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{describe, ISSUER, PRACTICE_NAME, PROFILE};
use crate::sandbox::authorize::{self as authz, PkcePolicy, Refused, APP_NAME};
use crate::sandbox::pages::{self, ConsentPage, ScopeLine};
use crate::sandbox::tokens::PendingAuthorization;
use crate::sandbox::{Shared, DRCHRONO_CLIENT_ID, DRCHRONO_SCOPES, DRCHRONO_USERNAME};

const CONSENT_ACTION: &str = "/drchrono/o/consent/";

/// `GET /o/authorize/`.
pub(super) async fn authorize(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let pairs = authz::query_pairs(&req);
    match validate(&pairs, &shared) {
        Ok(response) => response,
        Err(refused) => *refused,
    }
}

fn validate(pairs: &[(String, String)], shared: &Shared) -> Result<HttpResponse, Refused> {
    let target = authz::target(pairs, ISSUER, |id| id == DRCHRONO_CLIENT_ID)?;
    authz::check_basics(&target, pairs, &[])?;
    let code_challenge = authz::code_challenge(&target, pairs, PkcePolicy::Optional)?;
    let scopes = authz::scopes(
        &target,
        pairs,
        DRCHRONO_SCOPES,
        |scope| scope,
        "scope must be one or more of DrChrono's scopes (e.g. user:read calendar:read), separated by single spaces",
    )?;

    let pending = PendingAuthorization {
        client_id: DRCHRONO_CLIENT_ID.to_owned(),
        redirect_uri: target.raw_redirect.to_owned(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        state: target.state.map(str::to_owned),
        code_challenge,
        anonymous_token: None,
        login_hint: None,
        expires_at: shared.clock.now() + PROFILE.pending_lifetime,
    };
    let request_id = authz::add_pending(shared, &shared.drchrono, ISSUER, pending)?;
    tracing::info!("sandbox drchrono consent page shown");
    let company = format!("{PRACTICE_NAME} ({DRCHRONO_USERNAME})");
    Ok(pages::html(
        StatusCode::OK,
        &ConsentPage {
            vendor_title: ISSUER.title,
            app_name: APP_NAME,
            company: &company,
            scopes: scopes.into_iter().map(|name| ScopeLine { name, description: describe(name) }).collect(),
            action: CONSENT_ACTION,
            request_id: &request_id,
        },
    ))
}

/// `POST /o/consent/`: the user's decision on a pending request.
pub(super) async fn consent(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let form = match authz::consent_form(&req, &body, ISSUER) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    authz::finish_consent(&shared, &shared.drchrono, ISSUER, &form, authz::approve_as(Some(DRCHRONO_USERNAME)))
}
