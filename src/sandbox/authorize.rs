//! What every simulated authorization endpoint shares (RFC 6749 §4.1.1–4.1.2, RFC 7636):
//! strict query parsing, the client / redirect-URI checks that answer with a page, the
//! errors that go back to the client, PKCE, scopes, and the consent form.

use std::sync::Mutex;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use url::Url;

use super::http::{self, see_other};
use super::tokens::{OAuthStore, PendingAuthorization};
use super::{lock, pages, pkce, redirect_uri, Shared};

/// The app name consent pages show.
pub(crate) const APP_NAME: &str = "clinic-connect";

const PKCE_REQUIRED: &str = "PKCE is required: send code_challenge with code_challenge_method=S256";

/// An answer that ends the request early: an error page or a redirect back to the client.
/// Boxed, so that `Result`s carrying it stay small.
pub(crate) type Refused = Box<HttpResponse>;

/// A parameter looked up in a urlencoded list, where repeating it is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Param<'a> {
    Missing,
    One(&'a str),
    Repeated,
}

pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Param<'a> {
    let mut found = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
    match (found.next(), found.next()) {
        (None, _) => Param::Missing,
        (Some(v), None) => Param::One(v),
        (Some(_), Some(_)) => Param::Repeated,
    }
}

/// The decoded query string.
pub(crate) fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect()
}

/// Redirects an authorization error to the client (RFC 6749 §4.1.2.1).
pub(crate) fn redirect_error(
    vendor: &'static str,
    redirect: &Url,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> HttpResponse {
    tracing::info!(vendor, error, "sandbox authorization refused");
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

/// A 400 page for errors that must not redirect (unknown client, bad redirect URI).
pub(crate) fn bad_request_page(vendor: &'static str, title: &str, heading: &str, message: &str) -> HttpResponse {
    tracing::info!(vendor, heading, "sandbox authorization page refused");
    pages::bad_request(title, heading, message)
}

pub(crate) fn server_error_page(title: &str) -> HttpResponse {
    tracing::error!("sandbox random source failed");
    pages::html(
        StatusCode::INTERNAL_SERVER_ERROR,
        &pages::ErrorPage {
            vendor_title: title,
            heading: "Something went wrong",
            message: "The sandbox could not create a random value.",
        },
    )
}

/// Who an authorization endpoint is: for logs and pages.
#[derive(Clone, Copy)]
pub(crate) struct Issuer {
    /// The recorder's vendor id (`zocdoc-sandbox`), for logs.
    pub(crate) vendor: &'static str,
    /// The page title (`Zocdoc (sandbox)`).
    pub(crate) title: &'static str,
    /// The vendor's name in sentences (`Zocdoc`).
    pub(crate) name: &'static str,
}

/// A request whose client and redirect URI passed: from here on, errors go back to the
/// client.
pub(crate) struct Target<'a> {
    pub(crate) issuer: Issuer,
    /// Exactly as given, for the comparison at the token endpoint.
    pub(crate) raw_redirect: &'a str,
    pub(crate) redirect: Url,
    pub(crate) state: Option<&'a str>,
}

impl Target<'_> {
    /// Sends `error` back to the client's redirect URI, with the state.
    pub(crate) fn fail(&self, error: &str, description: &str) -> Refused {
        Box::new(redirect_error(self.issuer.vendor, &self.redirect, error, description, self.state))
    }
}

/// Checks `client_id` (with `client_ok`) and `redirect_uri`, answering with a page when
/// either is wrong, then reads `state`.
pub(crate) fn target<'a>(
    pairs: &'a [(String, String)],
    issuer: Issuer,
    client_ok: impl Fn(&str) -> bool,
) -> Result<Target<'a>, Refused> {
    let page = |heading: &str, message: &str| -> Refused {
        Box::new(bad_request_page(issuer.vendor, issuer.title, heading, message))
    };
    match param(pairs, "client_id") {
        Param::One(id) if client_ok(id) => {}
        Param::One(_) => {
            return Err(page("Unknown client", &format!("The client_id is not registered with {}.", issuer.name)))
        }
        Param::Missing => return Err(page("Missing client", "The client_id parameter is missing.")),
        Param::Repeated => return Err(page("Invalid request", "The client_id parameter was given more than once.")),
    }
    let raw_redirect = match param(pairs, "redirect_uri") {
        Param::One(uri) => uri,
        Param::Missing => return Err(page("Invalid redirect URI", "The redirect_uri parameter is missing.")),
        Param::Repeated => {
            return Err(page("Invalid redirect URI", "The redirect_uri parameter was given more than once."))
        }
    };
    let redirect = match redirect_uri::validate(raw_redirect) {
        Ok(url) => url,
        Err(err) => return Err(page("Invalid redirect URI", err.describe())),
    };
    let state = match param(pairs, "state") {
        Param::One(state) => Some(state),
        Param::Missing => None,
        Param::Repeated => {
            return Err(Box::new(redirect_error(
                issuer.vendor,
                &redirect,
                "invalid_request",
                "the state parameter was given more than once",
                None,
            )))
        }
    };
    Ok(Target { issuer, raw_redirect, redirect, state })
}

/// Refuses a repeated parameter among `names` (RFC 6749 §3.1), and any
/// `response_type` other than `code`.
pub(crate) fn check_basics(target: &Target<'_>, pairs: &[(String, String)], names: &[&str]) -> Result<(), Refused> {
    for name in ["response_type", "scope", "code_challenge", "code_challenge_method"].iter().chain(names) {
        if matches!(param(pairs, name), Param::Repeated) {
            return Err(target.fail("invalid_request", &format!("the {name} parameter was given more than once")));
        }
    }
    match param(pairs, "response_type") {
        Param::One("code") => Ok(()),
        Param::Missing => Err(target.fail("invalid_request", "the response_type parameter is missing")),
        _ => Err(target.fail("unsupported_response_type", "only response_type=code is supported")),
    }
}

/// Whether a vendor insists on PKCE.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum PkcePolicy {
    /// S256 on every request.
    Required,
    /// May be left out; when given, it must be S256 and is verified at the token endpoint.
    Optional,
}

/// The S256 `code_challenge` of the request; `plain` (or a challenge without a method,
/// which RFC 7636 §4.3 reads as `plain`) is always refused.
pub(crate) fn code_challenge(
    target: &Target<'_>,
    pairs: &[(String, String)],
    policy: PkcePolicy,
) -> Result<Option<String>, Refused> {
    let challenge = match (param(pairs, "code_challenge"), param(pairs, "code_challenge_method")) {
        (Param::One(challenge), Param::One("S256")) => challenge,
        (Param::Missing, Param::Missing) if policy == PkcePolicy::Optional => return Ok(None),
        (_, Param::One("plain")) => {
            return Err(target.fail("invalid_request", "code_challenge_method=plain is not supported; use S256"))
        }
        _ if policy == PkcePolicy::Optional => {
            return Err(target.fail(
                "invalid_request",
                "send code_challenge together with code_challenge_method=S256 (the only supported method)",
            ))
        }
        _ => return Err(target.fail("invalid_request", PKCE_REQUIRED)),
    };
    if !pkce::is_valid_s256_challenge(challenge) {
        return Err(target.fail(
            "invalid_request",
            "the code_challenge must be the unpadded base64url SHA-256 of the code verifier (43 characters)",
        ));
    }
    Ok(Some(challenge.to_owned()))
}

/// Space-separated known scopes, none empty, duplicates folded; `None` if any is unknown
/// or none is given.
pub(crate) fn parse_scopes<T: Copy + PartialEq>(raw: &str, known: &[T], name: impl Fn(&T) -> &str) -> Option<Vec<T>> {
    let mut scopes: Vec<T> = Vec::new();
    for token in raw.split(' ') {
        let found = known.iter().find(|k| name(k) == token)?;
        if !scopes.contains(found) {
            scopes.push(*found);
        }
    }
    (!scopes.is_empty()).then_some(scopes)
}

/// The `scope` parameter, parsed against `known`; a missing, empty or unknown scope goes
/// back to the client as `invalid_scope` with `description`.
pub(crate) fn scopes<T: Copy + PartialEq>(
    target: &Target<'_>,
    pairs: &[(String, String)],
    known: &[T],
    name: impl Fn(&T) -> &str,
    description: &str,
) -> Result<Vec<T>, Refused> {
    match param(pairs, "scope") {
        Param::One(raw) => parse_scopes(raw, known, name).ok_or_else(|| target.fail("invalid_scope", description)),
        _ => Err(target.fail("invalid_scope", "the scope parameter is missing")),
    }
}

/// Stores a validated request and returns the opaque id its consent form carries.
pub(crate) fn add_pending(
    shared: &Shared,
    store: &Mutex<OAuthStore>,
    issuer: Issuer,
    pending: PendingAuthorization,
) -> Result<String, Refused> {
    let now = shared.clock.now();
    let id = lock(store).add_pending(&shared.rng, pending, now);
    id.map_err(|_| Box::new(server_error_page(issuer.title)))
}

/// The posted consent form: the decision, the request id, and any other fields.
pub(crate) struct ConsentForm {
    pub(crate) approve: bool,
    pub(crate) request_id: String,
    pub(crate) fields: Vec<(String, String)>,
}

impl ConsentForm {
    pub(crate) fn field(&self, name: &str) -> Param<'_> {
        param(&self.fields, name)
    }
}

/// Reads a consent form (`request`, `decision`), answering with a 400 page when it is not one.
pub(crate) fn consent_form(req: &HttpRequest, body: &[u8], issuer: Issuer) -> Result<ConsentForm, Refused> {
    let page = |heading: &str, message: &str| -> Refused {
        Box::new(bad_request_page(issuer.vendor, issuer.title, heading, message))
    };
    if !http::is_form(req) {
        return Err(page("Invalid request", "The consent form must be posted as a form."));
    }
    let Ok(fields) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) else {
        return Err(page("Invalid request", "The consent form could not be read."));
    };
    let approve = match param(&fields, "decision") {
        Param::One("approve") => true,
        Param::One("deny") => false,
        _ => return Err(page("Invalid request", "Choose Approve or Deny.")),
    };
    let Param::One(request_id) = param(&fields, "request") else {
        return Err(page("Invalid request", "The authorization request is missing."));
    };
    let request_id = request_id.to_owned();
    Ok(ConsentForm { approve, request_id, fields })
}

/// Run on an approval once the pending request is taken: the user the code is for
/// (`subject`), or why the approval is refused (back to the client as `invalid_request`).
pub(crate) type Approval<'a> = Box<dyn FnOnce(&PendingAuthorization) -> Result<Option<String>, &'static str> + 'a>;

/// Answers a consent decision: takes the pending request (single use), and redirects back
/// with `access_denied`, or with a code bound to the request and to the subject that
/// `approval` names.
pub(crate) fn finish_consent(
    shared: &Shared,
    store: &Mutex<OAuthStore>,
    issuer: Issuer,
    form: &ConsentForm,
    approval: Approval<'_>,
) -> HttpResponse {
    let now = shared.clock.now();
    let pending = lock(store).take_pending(&form.request_id, now);
    let Some(pending) = pending else {
        return bad_request_page(
            issuer.vendor,
            issuer.title,
            "Authorization request expired",
            "This authorization request is unknown, was already answered, or expired. Start again from the app.",
        );
    };
    let Ok(redirect) = Url::parse(&pending.redirect_uri) else {
        return bad_request_page(
            issuer.vendor,
            issuer.title,
            "Invalid redirect URI",
            "The redirect_uri is not an absolute URL.",
        );
    };
    let state = pending.state.as_deref();
    // RFC 9207: `iss` on every answer of the consent, when a test switched it on.
    let iss = lock(&shared.issuers).get(issuer.vendor).cloned();
    let iss = iss.as_deref();
    if !form.approve {
        tracing::info!(vendor = issuer.vendor, error = "access_denied", "sandbox authorization refused");
        return back(
            &redirect,
            &[("error", "access_denied"), ("error_description", "The user denied access")],
            state,
            iss,
        );
    }
    let subject = match approval(&pending) {
        Ok(subject) => subject,
        Err(why) => {
            tracing::info!(vendor = issuer.vendor, error = "invalid_request", "sandbox authorization refused");
            return back(&redirect, &[("error", "invalid_request"), ("error_description", why)], state, iss);
        }
    };
    let code = lock(store).issue_code(&shared.rng, &pending, subject.as_deref(), now);
    let Ok(code) = code else {
        return server_error_page(issuer.title);
    };
    tracing::info!(vendor = issuer.vendor, "sandbox consent approved; code issued");
    back(&redirect, &[("code", &code)], state, iss)
}

/// 303 back to the client's redirect URI with these parameters, the state and `iss`.
fn back(redirect: &Url, pairs: &[(&str, &str)], state: Option<&str>, iss: Option<&str>) -> HttpResponse {
    let mut url = redirect.clone();
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        if let Some(iss) = iss {
            query.append_pair("iss", iss);
        }
    }
    see_other(url.as_str())
}

/// An approval that needs no further check, for a fixed user.
pub(crate) fn approve_as<'a>(subject: Option<&'static str>) -> Approval<'a> {
    Box::new(move |_| Ok(subject.map(str::to_owned)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn parses_scopes_strictly() {
        let known = ["a:read", "b:read", "c"];
        assert_eq!(parse_scopes("a:read b:read", &known, |s| s).unwrap(), vec!["a:read", "b:read"]);
        assert_eq!(parse_scopes("c c", &known, |s| s).unwrap().len(), 1);
        assert!(parse_scopes("", &known, |s| s).is_none());
        assert!(parse_scopes("a:write", &known, |s| s).is_none());
        assert!(parse_scopes("a:read  b:read", &known, |s| s).is_none());
        assert!(parse_scopes("a:read,b:read", &known, |s| s).is_none());
    }

    #[test]
    fn repeated_parameters_are_not_one() {
        let pairs = vec![("a".to_owned(), "1".to_owned()), ("a".to_owned(), "2".to_owned())];
        assert_eq!(param(&pairs, "a"), Param::Repeated);
        assert_eq!(param(&pairs, "b"), Param::Missing);
        assert_eq!(param(&pairs[..1], "a"), Param::One("1"));
    }
}
