//! Zocdoc's authorization endpoint and its sign-in / consent page.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{Env, OFFLINE_ACCESS, PROFILE, SCOPES};
use crate::sandbox::authorize::{self as authz, Approval, Param, PkcePolicy, Refused, APP_NAME};
use crate::sandbox::pages::{self, ScopeLine, ZocdocConsentPage};
use crate::sandbox::tokens::PendingAuthorization;
use crate::sandbox::{lock, Shared};

/// The email the sign-in form shows when the app sent no `login_hint`.
const DEFAULT_EMAIL: &str = "patient@example.com";

/// `GET {prefix}/authorize`.
pub(super) async fn authorize(env: &'static Env, req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let pairs = authz::query_pairs(&req);
    match validate(env, &pairs, &shared) {
        Ok(response) => response,
        Err(refused) => *refused,
    }
}

fn validate(env: &Env, pairs: &[(String, String)], shared: &Shared) -> Result<HttpResponse, Refused> {
    let issuer = env.issuer();
    // Errors about the client or the redirect URI are shown here, never redirected.
    let target = authz::target(pairs, issuer, |id| id == env.spa_client_id)?;
    // From here on, errors go back to the client.
    authz::check_basics(&target, pairs, &["audience", "anonymous_token", "login_hint"])?;
    match authz::param(pairs, "audience") {
        Param::One(audience) if audience == env.user_audience => {}
        Param::One(_) => {
            return Err(target.fail(
                "invalid_request",
                &format!(
                    "unknown audience: this environment's authorize endpoint takes audience={}",
                    env.user_audience
                ),
            ))
        }
        _ => {
            return Err(target.fail(
                "invalid_request",
                &format!("the audience parameter is required (audience={})", env.user_audience),
            ))
        }
    }
    let code_challenge = authz::code_challenge(&target, pairs, PkcePolicy::Required)?;
    let scopes = authz::scopes(
        &target,
        pairs,
        SCOPES,
        |(name, _)| name,
        "scope must be one or more of external.appointment.read external.appointment.write offline_access, \
         separated by single spaces",
    )?;
    let anonymous_token = match authz::param(pairs, "anonymous_token") {
        Param::One(token) => {
            if !env.anonymous_token_is_live(shared, token) {
                return Err(target.fail("invalid_request", "the anonymous_token is unknown or expired"));
            }
            Some(token.to_owned())
        }
        _ => None,
    };
    let login_hint = match authz::param(pairs, "login_hint") {
        Param::One(hint) => Some(hint),
        _ => None,
    };
    let email = prefilled_email(login_hint);

    let pending = PendingAuthorization {
        client_id: env.spa_client_id.to_owned(),
        redirect_uri: target.raw_redirect.to_owned(),
        // A user may withhold a permission (tests say so through `SandboxControl`).
        scopes: {
            let withheld = lock(&shared.zocdoc_desk).withheld_scope.clone();
            scopes.iter().map(|(name, _)| (*name).to_owned()).filter(|s| Some(s) != withheld.as_ref()).collect()
        },
        state: target.state.map(str::to_owned),
        code_challenge,
        anonymous_token,
        login_hint: login_hint.map(str::to_owned),
        expires_at: shared.clock.now() + PROFILE.pending_lifetime,
    };
    let request_id = authz::add_pending(shared, env.store(shared), issuer, pending)?;
    tracing::info!(vendor = env.vendor, "sandbox zocdoc sign-in page shown");
    let action = format!("{}/consent", env.prefix);
    Ok(pages::html(
        StatusCode::OK,
        &ZocdocConsentPage {
            vendor_title: issuer.title,
            environment: env.name,
            app_name: APP_NAME,
            email,
            scopes: scopes
                .iter()
                .filter(|(name, _)| *name != OFFLINE_ACCESS)
                .map(|(name, description)| ScopeLine { name, description })
                .collect(),
            offline_access: scopes.iter().any(|(name, _)| *name == OFFLINE_ACCESS),
            action: &action,
            request_id: &request_id,
        },
    ))
}

/// A plausible email: one `@` with something on each side, no spaces or control
/// characters, at most 254 characters. Returns it trimmed.
pub(super) fn valid_email(raw: &str) -> Option<&str> {
    let email = raw.trim();
    let (local, domain) = email.split_once('@')?;
    let plausible = email.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    plausible.then_some(email)
}

/// What the sign-in form's email field holds to begin with.
fn prefilled_email(login_hint: Option<&str>) -> &str {
    login_hint.unwrap_or(DEFAULT_EMAIL)
}

/// `POST {prefix}/consent`: the user signs in with an email and approves, or denies.
///
/// A browser always submits the (pre-filled) email field; a post without the field is
/// read as the pre-filled value. A present but malformed email is refused with a page,
/// before the pending request is used up.
pub(super) async fn consent(
    env: &'static Env,
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let issuer = env.issuer();
    let form = match authz::consent_form(&req, &body, issuer) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let typed = if form.approve {
        match form.field("email") {
            Param::One(raw) => match valid_email(raw) {
                Some(email) => Some(email),
                None => return sign_in_failed(env),
            },
            Param::Missing => None,
            Param::Repeated => return sign_in_failed(env),
        }
    } else {
        None
    };
    let shared_ref: &Shared = &shared;
    let approval: Approval<'_> = Box::new(move |pending| {
        let email = match typed {
            Some(email) => email,
            None => match valid_email(prefilled_email(pending.login_hint.as_deref())) {
                Some(email) => email,
                None => return Err("the login_hint is not an email address; the user must type one"),
            },
        };
        if let Some(anonymous_token) = &pending.anonymous_token {
            // It may have expired while the user was signing in.
            if !env.anonymous_token_is_live(shared_ref, anonymous_token) {
                return Err("the anonymous_token is unknown or expired");
            }
            lock(&shared_ref.zocdoc_links).push((anonymous_token.clone(), email.to_owned()));
            tracing::info!(vendor = env.vendor, "sandbox zocdoc linked an anonymous session to a sign-in");
        }
        Ok(Some(email.to_owned()))
    });
    authz::finish_consent(shared_ref, env.store(shared_ref), issuer, &form, approval)
}

fn sign_in_failed(env: &Env) -> HttpResponse {
    let issuer = env.issuer();
    authz::bad_request_page(
        issuer.vendor,
        issuer.title,
        "Sign-in failed",
        "Enter the email address of your Zocdoc account.",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_loosely() {
        assert_eq!(valid_email(" pat@example.com "), Some("pat@example.com"));
        assert_eq!(valid_email("a@b"), Some("a@b"));
        for bad in ["", "pat", "@example.com", "pat@", "pat@@example.com", "p at@example.com", "a@b@c"] {
            assert_eq!(valid_email(bad), None, "{bad}");
        }
        assert_eq!(valid_email(&format!("{}@example.com", "a".repeat(250))), None);
    }
}
