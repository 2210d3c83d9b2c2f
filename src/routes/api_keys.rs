//! The clinic admin's "API keys" page: the clinic's keys (never a key itself), a form that
//! creates one and shows it once, and a revocation that asks first.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{render, render_with, see_other, CsrfForm};
use crate::api_keys::{self as service, CreateError, KeyLabel, KeyView};
use crate::auth::CurrentAdmin;
use crate::db::admins::AdminRow;
use crate::errors::AppError;
use crate::notice::Notice;
use crate::session;
use crate::startup::AppState;

/// A key just created, on the one page that ever shows it.
struct CreatedKey {
    label: String,
    key: String,
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct ApiKeysPage {
    admin_email: String,
    clinic_name: String,
    csrf: String,
    flash: Option<Notice>,
    form_error: Option<Notice>,
    /// What the create form shows again after a refusal.
    label: String,
    created: Option<CreatedKey>,
    keys: Vec<KeyView>,
}

impl ApiKeysPage {
    fn live(&self) -> impl Iterator<Item = &KeyView> {
        self.keys.iter().filter(|k| k.is_live())
    }

    fn revoked(&self) -> impl Iterator<Item = &KeyView> {
        self.keys.iter().filter(|k| !k.is_live())
    }

    fn has_revoked(&self) -> bool {
        self.revoked().next().is_some()
    }

    fn created_notice(&self) -> Option<Notice> {
        self.created.as_ref().map(|c| {
            Notice::warning(format!(
                "Copy the key for “{}” now and store it in that system's secret store: it is shown only this \
                 once, and clinic-connect keeps no copy it could show again.",
                c.label
            ))
        })
    }
}

async fn page(
    state: &AppState,
    session: &Session,
    admin: AdminRow,
    flash: Option<Notice>,
    form_error: Option<Notice>,
    label: String,
    created: Option<CreatedKey>,
) -> Result<ApiKeysPage, AppError> {
    let keys = state.db.api_keys_of_clinic(admin.clinic_id).await?.iter().map(KeyView::of).collect();
    Ok(ApiKeysPage {
        admin_email: admin.email,
        clinic_name: admin.clinic_name,
        csrf: session::csrf_token(session)?,
        flash,
        form_error,
        label,
        created,
        keys,
    })
}

pub async fn list(state: web::Data<AppState>, session: Session, admin: CurrentAdmin) -> Result<HttpResponse, AppError> {
    let flash = session::take_notice(&session);
    render(&page(&state, &session, admin.0, flash, None, String::new(), None).await?)
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    label: String,
}

/// Creates a key and answers with the page that shows it: never a redirect, so the key is in
/// no address and nowhere stored for a later page (the session included).
pub async fn create(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    form: web::Form<CreateForm>,
) -> Result<HttpResponse, AppError> {
    session::verify_csrf(&session, &form.csrf)?;
    let admin = admin.0;
    let raw_label: String = form.label.chars().take(200).collect();
    let label = match KeyLabel::parse(&raw_label) {
        Ok(label) => label,
        Err(why) => {
            tracing::warn!(reason = %why, "API key not created: bad label");
            let page = page(&state, &session, admin, None, Some(Notice::error(why)), raw_label, None).await?;
            return render_with(StatusCode::BAD_REQUEST, &page);
        }
    };
    match service::create(&state.db, admin.clinic_id, &label, state.clock.now()).await {
        Ok(key) => {
            tracing::info!(admin_id = admin.id, "an admin created an API key");
            let created = CreatedKey { label: label.as_str().to_owned(), key: key.expose_secret().to_owned() };
            let flash = Some(Notice::success(format!("API key “{}” created.", label.as_str())));
            render(&page(&state, &session, admin, flash, None, String::new(), Some(created)).await?)
        }
        Err(CreateError::LabelTaken) => {
            tracing::warn!("API key not created: its label is taken");
            let why = format!(
                "A live key is already labelled “{}”. Pick another label, or revoke that key first.",
                label.as_str()
            );
            let page =
                page(&state, &session, admin, None, Some(Notice::error(why)), label.as_str().to_owned(), None).await?;
            render_with(StatusCode::CONFLICT, &page)
        }
        Err(CreateError::Database(e)) => Err(e.into()),
        Err(CreateError::Internal(e)) => Err(AppError::Internal(e)),
    }
}

#[derive(Template)]
#[template(path = "confirm_revoke_api_key.html")]
struct ConfirmRevokePage {
    admin_email: String,
    clinic_name: String,
    csrf: String,
    key: KeyView,
}

/// The clinic's live key with this id, if there is one.
async fn live_key(state: &AppState, clinic_id: i64, id: i64) -> Result<Option<KeyView>, AppError> {
    let rows = state.db.api_keys_of_clinic(clinic_id).await?;
    Ok(rows.iter().find(|r| r.id == id && r.revoked_at.is_none()).map(KeyView::of))
}

fn gone(session: &Session) -> Result<HttpResponse, AppError> {
    session::notify(session, Notice::neutral("That API key is already revoked, or is not one of this clinic's."))?;
    Ok(see_other("/api-keys"))
}

/// Revoking asks first: this page names the key and says what will happen; only its form acts.
pub async fn confirm_revoke(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let admin = admin.0;
    let Some(key) = live_key(&state, admin.clinic_id, path.into_inner()).await? else { return gone(&session) };
    render(&ConfirmRevokePage {
        admin_email: admin.email,
        clinic_name: admin.clinic_name,
        csrf: session::csrf_token(&session)?,
        key,
    })
}

pub async fn revoke(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    path: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    session::verify_csrf(&session, &form.csrf)?;
    let admin = admin.0;
    let id = path.into_inner();
    let Some(key) = live_key(&state, admin.clinic_id, id).await? else { return gone(&session) };
    if !state.db.revoke_api_key_id(admin.clinic_id, id, state.clock.now()).await? {
        // Revoked by someone else between the two statements.
        return gone(&session);
    }
    tracing::info!(admin_id = admin.id, key_id = id, "an admin revoked an API key");
    session::notify(
        &session,
        Notice::success(format!("API key “{}” revoked: systems that use it are refused from now on.", key.label)),
    )?;
    Ok(see_other("/api-keys"))
}
