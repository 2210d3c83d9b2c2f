//! The invitee's side of an invitation: open the link, choose a password, then sign in.
//!
//! The link carries its token in the query. Opening it moves the token into a short-lived
//! HttpOnly cookie and sends the browser on to `/invitation`, so the token leaves the address
//! bar and history; the password form needs no token of its own (its CSRF token comes from the
//! signed form cookie, since the invitee has no session).

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{render_with, see_other};
use crate::admins::NewPassword;
use crate::clock::format_utc;
use crate::db::admins::{Acceptance, Invitation};
use crate::errors::AppError;
use crate::invitations::{self, InvitationToken};
use crate::notice::Notice;
use crate::startup::AppState;
use crate::vault::constant_time_eq;

pub const PRODUCTION_COOKIE: &str = "__Host-clinic-connect-invitation";
pub const DEVELOPMENT_COOKIE: &str = "clinic-connect-invitation";
/// The cookie lasts at most this long (or until the invitation expires, if sooner).
const COOKIE_SECONDS: i64 = 60 * 60;
/// Where the invitee signs in once the password is set.
const PASSWORD_SET: &str = "/login?password_set=1";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/invitation").route(web::get().to(open)).route(web::post().to(accept)));
}

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage {
    csrf: String,
    /// `None` when the invitation is not (or no longer) valid.
    invitation: Option<InvitationView>,
    error: Option<Notice>,
    min_length: usize,
}

struct InvitationView {
    clinic_name: String,
    email: String,
    expires: String,
}

fn cookie_name(state: &AppState) -> &'static str {
    if state.mode.is_production() {
        PRODUCTION_COOKIE
    } else {
        DEVELOPMENT_COOKIE
    }
}

fn cookie(state: &AppState, value: String, max_age: i64) -> Cookie<'static> {
    Cookie::build(cookie_name(state), value)
        .path("/")
        .http_only(true)
        .secure(state.mode.is_production())
        // Lax: the link is opened from another site (a mail), and the redirect that follows
        // must still carry it.
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::seconds(max_age))
        .finish()
}

/// The invitation's token, from its cookie.
fn token_from_cookie(state: &AppState, req: &HttpRequest) -> Option<InvitationToken> {
    req.cookie(cookie_name(state)).and_then(|c| InvitationToken::parse(c.value()))
}

/// The page: the password form for a live invitation, or why there is none.
fn page(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    invitation: Option<&Invitation>,
    error: Option<Notice>,
) -> Result<HttpResponse, AppError> {
    let token = state.csrf_cookie.issue(req, state.clock.now())?;
    let mut response = render_with(
        status,
        &InvitationPage {
            csrf: token.value.clone(),
            invitation: invitation.map(|i| InvitationView {
                clinic_name: i.clinic_name.clone(),
                email: i.email.clone(),
                expires: format_utc(i.expires_at),
            }),
            error,
            min_length: crate::auth::MIN_PASSWORD_LEN,
        },
    )?;
    if invitation.is_none() && req.cookie(cookie_name(state)).is_some() {
        // A dead invitation's cookie is of no further use.
        if let Err(e) = response.add_removal_cookie(&cookie(state, String::new(), 0)) {
            tracing::warn!(cause = %e, "could not remove the invitation cookie");
        }
    }
    Ok(token.attach(response))
}

fn invalid(state: &AppState, req: &HttpRequest) -> Result<HttpResponse, AppError> {
    page(state, req, StatusCode::NOT_FOUND, None, None)
}

#[derive(Deserialize)]
pub struct OpenQuery {
    #[serde(default)]
    token: Option<String>,
}

pub async fn open(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<OpenQuery>,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    if let Some(given) = &query.token {
        let Some(token) = InvitationToken::parse(given) else {
            tracing::info!("invitation link refused: not a token of ours");
            return invalid(&state, &req);
        };
        let Some(invitation) = invitations::find(&state.db, &token, now).await? else {
            tracing::info!("invitation link refused: unknown, used or expired");
            return invalid(&state, &req);
        };
        let max_age = (invitation.expires_at - now).clamp(1, COOKIE_SECONDS);
        let mut response = see_other("/invitation");
        response
            .add_cookie(&cookie(&state, token.expose().to_owned(), max_age))
            .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot set the invitation cookie: {e}")))?;
        return Ok(response);
    }
    let Some(token) = token_from_cookie(&state, &req) else {
        tracing::info!("invitation page without an invitation");
        return invalid(&state, &req);
    };
    match invitations::find(&state.db, &token, now).await? {
        Some(invitation) => page(&state, &req, StatusCode::OK, Some(&invitation), None),
        None => {
            tracing::info!("invitation page refused: unknown, used or expired");
            invalid(&state, &req)
        }
    }
}

#[derive(Deserialize)]
pub struct AcceptForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

pub async fn accept(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<AcceptForm>,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    if !state.csrf_cookie.verify(&req, &form.csrf, now) {
        return Err(AppError::Csrf);
    }
    let AcceptForm { new_password, confirm_password, .. } = form.into_inner();
    let (new, confirm) = (SecretString::from(new_password), SecretString::from(confirm_password));
    let Some(token) = token_from_cookie(&state, &req) else {
        tracing::info!("invitation refused: no invitation cookie");
        return invalid(&state, &req);
    };
    let Some(invitation) = invitations::find(&state.db, &token, now).await? else {
        tracing::info!("invitation refused: unknown, used or expired");
        return invalid(&state, &req);
    };
    let refuse = |message: String| {
        tracing::info!(reason = %message, "invitation password refused");
        page(&state, &req, StatusCode::BAD_REQUEST, Some(&invitation), Some(Notice::error(message)))
    };
    let password = match NewPassword::parse(new) {
        Ok(password) => password,
        Err(problem) => return refuse(problem),
    };
    if !constant_time_eq(password.secret().expose_secret().as_bytes(), confirm.expose_secret().as_bytes()) {
        return refuse("The password and its confirmation differ.".to_owned());
    }
    match invitations::accept(&state.db, &token, &password, now).await? {
        Acceptance::Accepted(id) => {
            tracing::info!(admin_id = id, clinic_id = invitation.clinic_id, "invitation accepted: a new admin");
            let mut response = see_other(PASSWORD_SET);
            if let Err(e) = response.add_removal_cookie(&cookie(&state, String::new(), 0)) {
                tracing::warn!(cause = %e, "could not remove the invitation cookie");
            }
            Ok(response)
        }
        Acceptance::EmailTaken => {
            tracing::info!("invitation used up: its address already belongs to an admin");
            page(
                &state,
                &req,
                StatusCode::CONFLICT,
                None,
                Some(Notice::error(format!(
                    "{} is already an admin, so this invitation is of no use: sign in instead.",
                    invitation.email
                ))),
            )
        }
        Acceptance::Invalid => {
            tracing::info!("invitation refused: used or expired meanwhile");
            invalid(&state, &req)
        }
    }
}
