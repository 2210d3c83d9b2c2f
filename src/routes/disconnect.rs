//! Disconnect asks first: a page that names the vendor and says what will happen, whose form
//! POSTs the disconnect. Only that POST acts; this page changes nothing.

use actix_session::Session;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::{render, see_other};
use crate::auth::CurrentAdmin;
use crate::clock::format_utc;
use crate::connections::{self as service, STATUS_DISCONNECTED};
use crate::errors::AppError;
use crate::notice::Notice;
use crate::session;
use crate::startup::AppState;

/// What happens at the vendor.
#[derive(PartialEq, Eq)]
enum Revocation {
    /// Asked to revoke the tokens clinic-connect holds.
    Asked,
    /// No token is held (the vendor dropped the grant, or its key is gone): nothing to revoke.
    NothingHeld,
    /// The vendor offers no revocation: issued tokens stay valid until they expire.
    NotOffered,
}

#[derive(Template)]
#[template(path = "confirm_disconnect.html")]
struct ConfirmPage {
    admin_email: String,
    clinic_name: String,
    csrf: String,
    vendor_id: String,
    vendor_name: String,
    account_name: Option<String>,
    revocation: Revocation,
    expires_at: Option<String>,
    has_client_secret: bool,
}

pub async fn confirm(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let admin = admin.0;
    let vendor_id = path.into_inner();
    let vendor = service::vendor(&state, &vendor_id)?;
    let name = &vendor.profile.name;
    let row = state.db.connection(admin.clinic_id, &vendor_id).await?.filter(|r| r.status != STATUS_DISCONNECTED);
    let Some(row) = row else {
        session::notify(
            &session,
            Notice::neutral(format!("{name} is not connected, so there is nothing to disconnect.")),
        )?;
        return Ok(see_other(&format!("/connections/{vendor_id}")));
    };
    let has_token = row.access_token.is_some() || row.refresh_token.is_some();
    let offers_revocation =
        vendor.endpoints(&row.environment, &row.parameters).map(|e| e.revoke.is_some()).unwrap_or(false);
    render(&ConfirmPage {
        admin_email: admin.email,
        clinic_name: admin.clinic_name,
        csrf: session::csrf_token(&session)?,
        vendor_name: name.clone(),
        account_name: row.account_name.clone(),
        revocation: if !has_token || row.status == crate::tokens::STATUS_KEY_MISSING {
            Revocation::NothingHeld
        } else if offers_revocation {
            Revocation::Asked
        } else {
            Revocation::NotOffered
        },
        expires_at: row.expires_at.map(format_utc),
        has_client_secret: row.client_secret.is_some(),
        vendor_id,
    })
}
