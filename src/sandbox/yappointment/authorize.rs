//! The authorization endpoint and the consent page (RFC 6749 §4.1.1–4.1.2).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{ISSUER, PROFILE, SCOPES};
use crate::sandbox::authorize::{self as authz, PkcePolicy, Refused, APP_NAME};
use crate::sandbox::pages::{self, ConsentPage, ScopeLine};
use crate::sandbox::tokens::PendingAuthorization;
use crate::sandbox::{Shared, YAPPOINTMENT_CLIENT_ID, YAPPOINTMENT_COMPANY_NAME};

const CONSENT_ACTION: &str = "/yappointment/oauth/consent";

/// `GET /oauth/authorize`.
pub(super) async fn authorize(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let pairs = authz::query_pairs(&req);
    match validate(&pairs, &shared) {
        Ok(response) => response,
        Err(refused) => *refused,
    }
}

fn validate(pairs: &[(String, String)], shared: &Shared) -> Result<HttpResponse, Refused> {
    // Errors about the client or the redirect URI are shown here, never redirected.
    let target = authz::target(pairs, ISSUER, |id| id == YAPPOINTMENT_CLIENT_ID)?;
    // From here on, errors go back to the client.
    authz::check_basics(&target, pairs, &[])?;
    let code_challenge = authz::code_challenge(&target, pairs, PkcePolicy::Required)?;
    let scopes = authz::scopes(
        &target,
        pairs,
        SCOPES,
        |(name, _)| name,
        "scope must be one or more of bookings:read services:read calendars:read customers:read, separated by single spaces",
    )?;

    let pending = PendingAuthorization {
        client_id: YAPPOINTMENT_CLIENT_ID.to_owned(),
        redirect_uri: target.raw_redirect.to_owned(),
        scopes: scopes.iter().map(|(name, _)| (*name).to_owned()).collect(),
        state: target.state.map(str::to_owned),
        code_challenge,
        anonymous_token: None,
        login_hint: None,
        expires_at: shared.clock.now() + PROFILE.pending_lifetime,
    };
    let request_id = authz::add_pending(shared, &shared.yappointment, ISSUER, pending)?;
    tracing::info!("sandbox yappointment consent page shown");
    Ok(pages::html(
        StatusCode::OK,
        &ConsentPage {
            vendor_title: ISSUER.title,
            app_name: APP_NAME,
            company: YAPPOINTMENT_COMPANY_NAME,
            scopes: scopes.into_iter().map(|(name, description)| ScopeLine { name, description }).collect(),
            action: CONSENT_ACTION,
            request_id: &request_id,
        },
    ))
}

/// `POST /oauth/consent`: the user's decision on a pending request.
pub(super) async fn consent(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let form = match authz::consent_form(&req, &body, ISSUER) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    authz::finish_consent(&shared, &shared.yappointment, ISSUER, &form, authz::approve_as(None))
}
