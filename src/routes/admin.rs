//! Admin sign-in and sign-out.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;

use super::{render, render_with, see_other, CsrfForm};
use crate::auth::{decoy_hash, verify_password};
use crate::client_addr::client_addr;
use crate::errors::AppError;
use crate::notice::Notice;
use crate::session;
use crate::sign_in_throttle::{in_words, Attempt};
use crate::startup::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    email: String,
    flash: Option<Notice>,
    error: Option<Notice>,
    development: bool,
}

/// Where sign-out sends the browser. The sign-out ended the session, so the message cannot wait
/// in it (and a new session just for a message would be a row for nothing): the address says
/// it, with nothing secret in it.
const SIGNED_OUT: &str = "/login?signed_out=1";

#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    signed_out: Option<String>,
    /// An invitee who just chose their password (see `invitation`).
    #[serde(default)]
    password_set: Option<String>,
}

/// The sign-in form's CSRF token lives in a signed cookie, not a session: showing the form (to
/// anyone, a crawler included) costs no session row.
pub async fn login_page(
    state: web::Data<AppState>,
    session: Session,
    query: web::Query<LoginQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    if session::admin_id(&session).is_some() {
        return Ok(see_other("/connections"));
    }
    let flash = match (query.signed_out.as_deref(), query.password_set.as_deref()) {
        (Some("1"), _) => Some(Notice::success("You signed out.")),
        (_, Some("1")) => Some(Notice::success("Your password is set. Sign in with your email and that password.")),
        _ => None,
    };
    let token = state.csrf_cookie.issue(&req, state.clock.now())?;
    let page = render(&LoginPage {
        csrf: token.value.clone(),
        email: String::new(),
        flash,
        error: None,
        development: !state.mode.is_production(),
    })?;
    Ok(token.attach(page))
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

pub async fn login(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let LoginForm { email, password, csrf } = form.into_inner();
    if !state.csrf_cookie.verify(&req, &csrf, state.clock.now()) {
        return Err(AppError::Csrf);
    }
    let email = email.trim().to_owned();
    let password = SecretString::from(password);
    let client = client_addr(&req, &state.trusted_proxies);
    let attempt = Attempt::new(&email, client);
    let now = state.clock.now();
    // Checked before the password, and whatever the password: past the limit even the right
    // one is refused, so guessing on gains nothing.
    if let Some(wait) = attempt.refused_for(&state.db, now).await? {
        tracing::warn!(%client, wait_seconds = wait, "sign-in refused: too many failed sign-ins");
        let message = format!(
            "Too many failed sign-ins for this email or from your network. Signing in is paused: try again in {}.",
            in_words(wait)
        );
        let mut response = login_form_again(&state, &req, StatusCode::TOO_MANY_REQUESTS, &email, message)?;
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&wait.to_string()) {
            response.headers_mut().insert(actix_web::http::header::RETRY_AFTER, value);
        }
        return Ok(response);
    }
    let credentials =
        if email.is_empty() || email.len() > 254 { None } else { state.db.admin_credentials(&email).await? };
    let (admin_id, hash) = match credentials {
        Some(c) => (Some(c.id), c.password_hash),
        None => (None, decoy_hash()),
    };
    let verified = verify_password(password, hash).await;
    match admin_id.filter(|_| verified) {
        Some(id) => {
            attempt.succeeded(&state.db).await?;
            // The session's own (rotated) CSRF token takes over from the cookie's.
            session::sign_in(&session, id, &crate::device::of_request(&req))?;
            tracing::info!(admin_id = id, "admin signed in");
            Ok(see_other("/connections"))
        }
        None => {
            attempt.failed(&state.db, now).await?;
            tracing::warn!(%client, "sign-in refused: wrong email or password");
            login_form_again(
                &state,
                &req,
                StatusCode::UNAUTHORIZED,
                &email,
                "That email and password do not match an admin.".to_owned(),
            )
        }
    }
}

/// The sign-in form once more, with the email kept, a fresh CSRF cookie and why it came back.
fn login_form_again(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    email: &str,
    message: String,
) -> Result<HttpResponse, AppError> {
    let token = state.csrf_cookie.issue(req, state.clock.now())?;
    let page = render_with(
        status,
        &LoginPage {
            csrf: token.value.clone(),
            email: email.chars().take(254).collect(),
            flash: None,
            error: Some(Notice::error(message)),
            development: !state.mode.is_production(),
        },
    )?;
    Ok(token.attach(page))
}

pub async fn logout(
    state: web::Data<AppState>,
    session: Session,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    session::verify_csrf(&session, &form.csrf)?;
    if let Ok(binding) = session::binding(&session) {
        state.db.delete_flows_of_session(&binding).await?;
    }
    session.purge();
    tracing::info!("admin signed out");
    Ok(see_other(SIGNED_OUT))
}
