//! The authorization endpoint and the consent page (RFC 6749 §4.1.1–4.1.2).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use url::Url;

use super::{PROFILE, SCOPES, TITLE};
use crate::sandbox::http::{self, see_other};
use crate::sandbox::pages::{self, ConsentPage, ScopeLine};
use crate::sandbox::tokens::PendingAuthorization;
use crate::sandbox::{
    pkce, redirect_uri, Shared, YAPPOINTMENT_CLIENT_ID, YAPPOINTMENT_COMPANY_NAME,
};

const APP_NAME: &str = "clinic-connect";

const CONSENT_ACTION: &str = "/yappointment/oauth/consent";

const PKCE_REQUIRED: &str = "PKCE is required: send code_challenge with code_challenge_method=S256";

/// A parameter looked up in a urlencoded list, where repeating it is an error.
enum Param<'a> {
    Missing,
    One(&'a str),
    Repeated,
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Param<'a> {
    let mut found = pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    match (found.next(), found.next()) {
        (None, _) => Param::Missing,
        (Some(v), None) => Param::One(v),
        (Some(_), Some(_)) => Param::Repeated,
    }
}

/// Redirects an authorization error to the client (RFC 6749 §4.1.2.1).
fn redirect_error(
    redirect: &Url,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> HttpResponse {
    tracing::info!(error, "sandbox yappointment authorization refused");
    let mut url = redirect.clone();
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("error", error);
        query.append_pair("error_description", description);
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    see_other(url.as_str())
}

fn bad_request_page(heading: &str, message: &str) -> HttpResponse {
    tracing::info!(heading, "sandbox yappointment authorization page refused");
    pages::bad_request(TITLE, heading, message)
}

/// `GET /oauth/authorize`.
pub(super) async fn authorize(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();

    // Errors about the client or the redirect URI are shown here, never redirected.
    match param(&pairs, "client_id") {
        Param::One(id) if id == YAPPOINTMENT_CLIENT_ID => {}
        Param::One(_) => {
            return bad_request_page(
                "Unknown client",
                "The client_id is not registered with yAppointment.",
            )
        }
        Param::Missing => {
            return bad_request_page("Missing client", "The client_id parameter is missing.")
        }
        Param::Repeated => {
            return bad_request_page(
                "Invalid request",
                "The client_id parameter was given more than once.",
            )
        }
    }
    let raw_redirect = match param(&pairs, "redirect_uri") {
        Param::One(uri) => uri,
        Param::Missing => {
            return bad_request_page(
                "Invalid redirect URI",
                "The redirect_uri parameter is missing.",
            )
        }
        Param::Repeated => {
            return bad_request_page(
                "Invalid redirect URI",
                "The redirect_uri parameter was given more than once.",
            )
        }
    };
    let redirect = match redirect_uri::validate(raw_redirect) {
        Ok(url) => url,
        Err(err) => return bad_request_page("Invalid redirect URI", err.describe()),
    };

    // From here on, errors go back to the client.
    let state = match param(&pairs, "state") {
        Param::One(state) => Some(state),
        Param::Missing => None,
        Param::Repeated => {
            return redirect_error(
                &redirect,
                "invalid_request",
                "the state parameter was given more than once",
                None,
            )
        }
    };
    let fail =
        |error: &str, description: &str| redirect_error(&redirect, error, description, state);

    for name in [
        "response_type",
        "scope",
        "code_challenge",
        "code_challenge_method",
    ] {
        if matches!(param(&pairs, name), Param::Repeated) {
            return fail(
                "invalid_request",
                &format!("the {name} parameter was given more than once"),
            );
        }
    }
    match param(&pairs, "response_type") {
        Param::One("code") => {}
        Param::Missing => return fail("invalid_request", "the response_type parameter is missing"),
        _ => {
            return fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            )
        }
    }
    let code_challenge = match (
        param(&pairs, "code_challenge"),
        param(&pairs, "code_challenge_method"),
    ) {
        (Param::One(challenge), Param::One("S256")) => challenge,
        _ => return fail("invalid_request", PKCE_REQUIRED),
    };
    if !pkce::is_valid_s256_challenge(code_challenge) {
        return fail(
            "invalid_request",
            "the code_challenge must be the unpadded base64url SHA-256 of the code verifier (43 characters)",
        );
    }
    let scopes = match param(&pairs, "scope") {
        Param::One(scope) => match parse_scopes(scope) {
            Some(scopes) => scopes,
            None => {
                return fail(
                    "invalid_scope",
                    "scope must be one or more of bookings:read services:read calendars:read customers:read, separated by single spaces",
                )
            }
        },
        _ => return fail("invalid_scope", "the scope parameter is missing"),
    };

    let now = shared.clock.now();
    let pending = PendingAuthorization {
        client_id: YAPPOINTMENT_CLIENT_ID.to_owned(),
        redirect_uri: raw_redirect.to_owned(),
        scopes: scopes.iter().map(|(name, _)| (*name).to_owned()).collect(),
        state: state.map(str::to_owned),
        code_challenge: code_challenge.to_owned(),
        expires_at: now + PROFILE.pending_lifetime,
    };
    let request_id = {
        let mut store = shared
            .yappointment
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        store.add_pending(&shared.rng, pending, now)
    };
    let Ok(request_id) = request_id else {
        return server_error_page();
    };
    tracing::info!("sandbox yappointment consent page shown");
    pages::html(
        StatusCode::OK,
        &ConsentPage {
            vendor_title: TITLE,
            app_name: APP_NAME,
            company: YAPPOINTMENT_COMPANY_NAME,
            scopes: scopes
                .into_iter()
                .map(|(name, description)| ScopeLine { name, description })
                .collect(),
            action: CONSENT_ACTION,
            request_id: &request_id,
        },
    )
}

/// Space-separated known scopes, none empty, duplicates folded; `None` if any is unknown
/// or none is given.
fn parse_scopes(raw: &str) -> Option<Vec<(&'static str, &'static str)>> {
    let mut scopes: Vec<(&'static str, &'static str)> = Vec::new();
    for token in raw.split(' ') {
        let known = SCOPES.iter().find(|(name, _)| *name == token)?;
        if !scopes.contains(known) {
            scopes.push(*known);
        }
    }
    (!scopes.is_empty()).then_some(scopes)
}

fn server_error_page() -> HttpResponse {
    tracing::error!("sandbox random source failed");
    pages::html(
        StatusCode::INTERNAL_SERVER_ERROR,
        &pages::ErrorPage {
            vendor_title: TITLE,
            heading: "Something went wrong",
            message: "The sandbox could not create a random value.",
        },
    )
}

/// `POST /oauth/consent`: the user's decision on a pending request.
pub(super) async fn consent(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    if !http::is_form(&req) {
        return bad_request_page(
            "Invalid request",
            "The consent form must be posted as a form.",
        );
    }
    let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return bad_request_page("Invalid request", "The consent form could not be read.");
    };
    let approve = match param(&form, "decision") {
        Param::One("approve") => true,
        Param::One("deny") => false,
        _ => return bad_request_page("Invalid request", "Choose Approve or Deny."),
    };
    let Param::One(request_id) = param(&form, "request") else {
        return bad_request_page("Invalid request", "The authorization request is missing.");
    };

    let now = shared.clock.now();
    let pending = shared
        .yappointment
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take_pending(request_id, now);
    let Some(pending) = pending else {
        return bad_request_page(
            "Authorization request expired",
            "This authorization request is unknown, was already answered, or expired. Start again from the app.",
        );
    };
    let Ok(redirect) = Url::parse(&pending.redirect_uri) else {
        return bad_request_page(
            "Invalid redirect URI",
            "The redirect_uri is not an absolute URL.",
        );
    };
    if !approve {
        return redirect_error(
            &redirect,
            "access_denied",
            "The user denied access",
            pending.state.as_deref(),
        );
    }

    let code = shared
        .yappointment
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .issue_code(&shared.rng, &pending, now);
    let Ok(code) = code else {
        return server_error_page();
    };
    tracing::info!("sandbox yappointment consent approved; code issued");
    let mut url = redirect;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("code", &code);
        if let Some(state) = &pending.state {
            query.append_pair("state", state);
        }
    }
    see_other(url.as_str())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn parses_scopes_strictly() {
        assert_eq!(
            parse_scopes("bookings:read services:read").unwrap(),
            vec![SCOPES[0], SCOPES[1]]
        );
        assert_eq!(
            parse_scopes("bookings:read bookings:read").unwrap().len(),
            1
        );
        assert!(parse_scopes("").is_none());
        assert!(parse_scopes("bookings:write").is_none());
        assert!(parse_scopes("bookings:read  services:read").is_none());
        assert!(parse_scopes("bookings:read,services:read").is_none());
    }
}
