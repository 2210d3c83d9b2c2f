//! The clinic's admins: the list, inviting one (the link is shown once), cancelling an
//! invitation, and removing an admin after a confirmation (never the last one, never oneself).

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{render, render_with, see_other};
use crate::admins::Email;
use crate::auth::CurrentAdmin;
use crate::clock::format_utc;
use crate::db::admins::{AdminRow, Removal};
use crate::errors::AppError;
use crate::invitations::{self, InviteError};
use crate::notice::Notice;
use crate::session;
use crate::startup::AppState;

struct AdminView {
    id: i64,
    email: String,
    added: String,
    sessions: i64,
    you: bool,
}

struct InvitationView {
    email: String,
    invited_by: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "admins.html")]
struct AdminsPage {
    admin_email: String,
    clinic_name: String,
    csrf: String,
    flash: Option<Notice>,
    admins: Vec<AdminView>,
    invitations: Vec<InvitationView>,
    form_error: Option<Notice>,
    typed_email: String,
}

#[derive(Template)]
#[template(path = "invited.html")]
struct InvitedPage {
    admin_email: String,
    clinic_name: String,
    csrf: String,
    flash: Option<Notice>,
    invitee: String,
    link: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "confirm_remove_admin.html")]
struct ConfirmRemovePage {
    admin_email: String,
    clinic_name: String,
    csrf: String,
    id: i64,
    email: String,
    sessions: i64,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admins", web::get().to(list))
        .service(super::post_only("/admins/invite", web::post().to(invite)))
        .service(super::post_only("/admins/invitations/cancel", web::post().to(cancel_invitation)))
        .route("/admins/{id}/remove/confirm", web::get().to(confirm_remove))
        .service(super::post_only("/admins/{id}/remove", web::post().to(remove)));
}

pub async fn list(state: web::Data<AppState>, session: Session, admin: CurrentAdmin) -> Result<HttpResponse, AppError> {
    render_list(&state, &session, &admin.0, StatusCode::OK, None, String::new()).await
}

async fn render_list(
    state: &AppState,
    session: &Session,
    admin: &AdminRow,
    status: StatusCode,
    form_error: Option<Notice>,
    typed_email: String,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let admins = state
        .db
        .admins_of_clinic(admin.clinic_id, now)
        .await?
        .into_iter()
        .map(|a| AdminView {
            you: a.id == admin.id,
            id: a.id,
            email: a.email,
            added: format_utc(a.created_at),
            sessions: a.sessions,
        })
        .collect();
    let invitations = state
        .db
        .invitations_of_clinic(admin.clinic_id, now)
        .await?
        .into_iter()
        .map(|i| InvitationView {
            email: i.email,
            invited_by: i.invited_by.unwrap_or_else(|| "a former admin".to_owned()),
            expires: format_utc(i.expires_at),
        })
        .collect();
    render_with(
        status,
        &AdminsPage {
            admin_email: admin.email.clone(),
            clinic_name: admin.clinic_name.clone(),
            csrf: session::csrf_token(session)?,
            flash: session::take_notice(session),
            admins,
            invitations,
            form_error,
            typed_email,
        },
    )
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

/// Makes the invitation and shows its link in the answer itself: the link exists nowhere else
/// (the store keeps only its hash), so it is shown once, to this admin.
pub async fn invite(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    form: web::Form<InviteForm>,
) -> Result<HttpResponse, AppError> {
    session::verify_csrf(&session, &form.csrf)?;
    let admin = admin.0;
    let typed: String = form.email.trim().chars().take(254).collect();
    let email = match Email::parse(&form.email) {
        Ok(email) => email,
        Err(problem) => {
            tracing::info!("invitation refused: not an email address");
            let notice = Some(Notice::error(problem));
            return render_list(&state, &session, &admin, StatusCode::BAD_REQUEST, notice, typed).await;
        }
    };
    let now = state.clock.now();
    match invitations::invite(&state.db, &state.public_url, admin.clinic_id, admin.id, &email, now).await {
        Ok(invited) => {
            tracing::info!(admin_id = admin.id, clinic_id = admin.clinic_id, "admin invitation made");
            render(&InvitedPage {
                csrf: session::csrf_token(&session)?,
                admin_email: admin.email,
                clinic_name: admin.clinic_name,
                flash: Some(Notice::success(format!("The invitation is ready. Send this link to {email}."))),
                invitee: email.to_string(),
                link: invited.link.expose_secret().to_owned(),
                expires: format_utc(invited.expires_at),
            })
        }
        Err(InviteError::AlreadyAdmin) => {
            tracing::info!("invitation refused: the address already belongs to an admin");
            let notice = Some(Notice::error(format!("{email} is already an admin, so there is nobody to invite.")));
            render_list(&state, &session, &admin, StatusCode::CONFLICT, notice, typed).await
        }
        Err(InviteError::App(e)) => Err(e),
    }
}

pub async fn cancel_invitation(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    form: web::Form<InviteForm>,
) -> Result<HttpResponse, AppError> {
    session::verify_csrf(&session, &form.csrf)?;
    let admin = admin.0;
    let email = form.email.trim();
    let notice = if state.db.cancel_invitation(admin.clinic_id, email).await? {
        tracing::info!(admin_id = admin.id, "admin invitation cancelled");
        Notice::success(format!("The invitation for {email} was cancelled: its link no longer works."))
    } else {
        Notice::neutral(format!("There was no open invitation for {email}: it was used, cancelled or it expired."))
    };
    session::notify(&session, notice)?;
    Ok(see_other("/admins"))
}

/// The admin a path names, when they are an admin of this clinic.
async fn admin_of_clinic(state: &AppState, clinic_id: i64, id: &str) -> Result<Option<AdminRow>, AppError> {
    let Ok(id) = id.parse::<i64>() else { return Ok(None) };
    Ok(state.db.admin(id).await?.filter(|a| a.clinic_id == clinic_id))
}

/// Why an admin cannot be removed from here, if they cannot.
fn refusal(admin: &AdminRow, target: &AdminRow) -> Option<Notice> {
    (admin.id == target.id).then(|| {
        Notice::error("You cannot remove yourself. Another admin of the clinic can, or you can change your password.")
    })
}

/// Removing asks first: a page naming the admin and saying what will happen, with Cancel.
pub async fn confirm_remove(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let admin = admin.0;
    let Some(target) = admin_of_clinic(&state, admin.clinic_id, &path).await? else {
        return Err(AppError::NotFound);
    };
    if let Some(notice) = refusal(&admin, &target) {
        session::notify(&session, notice)?;
        return Ok(see_other("/admins"));
    }
    let sessions = state
        .db
        .admins_of_clinic(admin.clinic_id, state.clock.now())
        .await?
        .iter()
        .find(|a| a.id == target.id)
        .map_or(0, |a| a.sessions);
    render(&ConfirmRemovePage {
        admin_email: admin.email,
        clinic_name: admin.clinic_name,
        csrf: session::csrf_token(&session)?,
        id: target.id,
        email: target.email,
        sessions,
    })
}

#[derive(Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    csrf: String,
}

pub async fn remove(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    path: web::Path<String>,
    form: web::Form<RemoveForm>,
) -> Result<HttpResponse, AppError> {
    session::verify_csrf(&session, &form.csrf)?;
    let admin = admin.0;
    let Some(target) = admin_of_clinic(&state, admin.clinic_id, &path).await? else {
        session::notify(&session, Notice::neutral("That admin had already been removed."))?;
        return Ok(see_other("/admins"));
    };
    if let Some(notice) = refusal(&admin, &target) {
        tracing::info!(admin_id = admin.id, "admin removal refused: oneself");
        session::notify(&session, notice)?;
        return Ok(see_other("/admins"));
    }
    // Their sessions are rows that name them: they go with them, for every instance at once.
    let notice = match state.db.remove_admin(admin.clinic_id, target.id).await? {
        Removal::Removed => {
            tracing::info!(admin_id = admin.id, removed_admin_id = target.id, "admin removed");
            Notice::success(format!(
                "{} is no longer an admin of {}: they were signed out everywhere.",
                target.email, admin.clinic_name
            ))
        }
        Removal::LastAdmin => {
            tracing::info!(admin_id = admin.id, "admin removal refused: the clinic's last admin");
            Notice::error(format!("{} is the clinic's last admin, so they stay.", target.email))
        }
        Removal::NotFound => Notice::neutral("That admin had already been removed."),
    };
    session::notify(&session, notice)?;
    Ok(see_other("/admins"))
}
