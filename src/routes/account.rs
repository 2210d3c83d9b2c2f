//! The signed-in admin's own account: the devices they are signed in on (end one, or every one
//! but this), and changing their password (which signs them out everywhere else).

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{render, render_with, see_other};
use crate::admins::NewPassword;
use crate::auth::{verify_password, CurrentAdmin};
use crate::clock::format_utc;
use crate::errors::AppError;
use crate::notice::Notice;
use crate::session;
use crate::session::devices::{self, Devices};
use crate::startup::AppState;
use crate::vault::constant_time_eq;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/account", web::get().to(account))
        .service(super::post_only("/account/sessions/end", web::post().to(end_session)))
        .service(super::post_only("/account/sessions/end-others", web::post().to(end_other_sessions)))
        .service(
            web::resource("/account/password")
                .route(web::get().to(password_page))
                .route(web::post().to(change_password)),
        );
}

struct DeviceView {
    handle: String,
    description: String,
    started: String,
    last_active: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    admin_email: String,
    clinic_name: String,
    csrf: String,
    flash: Option<Notice>,
    devices: Vec<DeviceView>,
}

impl AccountPage {
    fn others(&self) -> usize {
        self.devices.iter().filter(|d| !d.current).count()
    }
}

async fn devices_of(state: &AppState, session: &Session, admin_id: i64) -> Result<Devices, AppError> {
    devices::of_admin(&state.db, &state.vault, state.clock.now(), admin_id, session).await
}

pub async fn account(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
) -> Result<HttpResponse, AppError> {
    let admin = admin.0;
    let devices = devices_of(&state, &session, admin.id).await?;
    render(&AccountPage {
        admin_email: admin.email,
        clinic_name: admin.clinic_name,
        csrf: session::csrf_token(&session)?,
        flash: session::take_notice(&session),
        devices: devices
            .devices
            .into_iter()
            .map(|d| DeviceView {
                handle: d.handle,
                description: d.description,
                started: format_utc(d.started_at),
                last_active: format_utc(d.last_active_at),
                current: d.current,
            })
            .collect(),
    })
}

#[derive(Deserialize)]
pub struct EndSessionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    session: String,
}

pub async fn end_session(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    form: web::Form<EndSessionForm>,
) -> Result<HttpResponse, AppError> {
    session::verify_csrf(&session, &form.csrf)?;
    let admin = admin.0;
    let devices = devices_of(&state, &session, admin.id).await?;
    let notice = match (devices.find(&form.session), devices.id_of(&form.session)) {
        (Some(device), _) if device.current => {
            Notice::neutral("That is this device: to end this session, use Sign out.")
        }
        (Some(device), Some(id)) => {
            if state.db.end_admin_session(admin.id, id).await? {
                tracing::info!(admin_id = admin.id, "admin ended one of their sessions");
                Notice::success(format!(
                    "Signed out on {} (signed in {}).",
                    device.description,
                    format_utc(device.started_at)
                ))
            } else {
                Notice::neutral("That session had already ended.")
            }
        }
        _ => Notice::neutral("That session had already ended."),
    };
    session::notify(&session, notice)?;
    Ok(see_other("/account"))
}

pub async fn end_other_sessions(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    form: web::Form<super::CsrfForm>,
) -> Result<HttpResponse, AppError> {
    session::verify_csrf(&session, &form.csrf)?;
    let admin = admin.0;
    let devices = devices_of(&state, &session, admin.id).await?;
    let current = devices
        .current_id()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("this session is not among the admin's sessions")))?;
    let ended = state.db.end_other_sessions(admin.id, current).await?;
    tracing::info!(admin_id = admin.id, ended, "admin signed out everywhere else");
    let notice = match ended {
        0 => Notice::neutral("You were not signed in anywhere else."),
        1 => Notice::success("Signed out on 1 other device."),
        n => Notice::success(format!("Signed out on {n} other devices.")),
    };
    session::notify(&session, notice)?;
    Ok(see_other("/account"))
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    admin_email: String,
    clinic_name: String,
    csrf: String,
    error: Option<Notice>,
    min_length: usize,
}

fn password_form(
    session: &Session,
    admin: &crate::db::admins::AdminRow,
    status: StatusCode,
    error: Option<Notice>,
) -> Result<HttpResponse, AppError> {
    render_with(
        status,
        &PasswordPage {
            admin_email: admin.email.clone(),
            clinic_name: admin.clinic_name.clone(),
            csrf: session::csrf_token(session)?,
            error,
            min_length: crate::auth::MIN_PASSWORD_LEN,
        },
    )
}

pub async fn password_page(session: Session, admin: CurrentAdmin) -> Result<HttpResponse, AppError> {
    password_form(&session, &admin.0, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

/// The current password is asked for (so a session left open is not enough to take the account
/// over); every other session of the admin ends with the change; this one stays.
pub async fn change_password(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, AppError> {
    session::verify_csrf(&session, &form.csrf)?;
    let admin = admin.0;
    let PasswordForm { current_password, new_password, confirm_password, .. } = form.into_inner();
    let (current, new, confirm) =
        (SecretString::from(current_password), SecretString::from(new_password), SecretString::from(confirm_password));
    let refuse = |message: String| {
        tracing::info!(admin_id = admin.id, reason = %message, "password change refused");
        password_form(&session, &admin, StatusCode::BAD_REQUEST, Some(Notice::error(message)))
    };
    let hash = state.db.admin_password_hash(admin.id).await?.ok_or(AppError::NotSignedIn)?;
    if !verify_password(current.clone(), hash).await {
        return refuse("Your current password is not that. Nothing was changed.".to_owned());
    }
    let new = match NewPassword::parse(new) {
        Ok(new) => new,
        Err(problem) => return refuse(format!("{problem} Nothing was changed.")),
    };
    if !constant_time_eq(new.secret().expose_secret().as_bytes(), confirm.expose_secret().as_bytes()) {
        return refuse("The new password and its confirmation differ. Nothing was changed.".to_owned());
    }
    if constant_time_eq(new.secret().expose_secret().as_bytes(), current.expose_secret().as_bytes()) {
        return refuse("The new password is the one you have now. Choose another.".to_owned());
    }
    let devices = devices_of(&state, &session, admin.id).await?;
    let others = devices.devices.iter().filter(|d| !d.current).count();
    let keep = devices.current_id();
    if keep.is_none() {
        // It cannot be kept if it cannot be found: the change then signs this device out too.
        tracing::warn!(admin_id = admin.id, "this session is not among the admin's sessions; it ends too");
    }
    state.db.set_password(admin.id, &new.hash().await?, keep).await?;
    tracing::info!(admin_id = admin.id, others, "admin changed their password; their other sessions ended");
    let notice = match others {
        0 => Notice::success("Your password was changed."),
        1 => Notice::success("Your password was changed, and you were signed out on 1 other device."),
        n => Notice::success(format!("Your password was changed, and you were signed out on {n} other devices.")),
    };
    session::notify(&session, notice)?;
    Ok(see_other("/account"))
}
