//! The dashboard, and connect → callback → view → disconnect for each vendor.

use std::collections::BTreeMap;

use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;

use super::{render, render_with, see_other, CsrfForm};
use crate::auth::CurrentAdmin;
use crate::clock::format_utc;
use crate::connections::{self as service, CallbackResult, ConnectError, ConnectInput, ConnectionView, Started};
use crate::errors::AppError;
use crate::notice::Notice;
use crate::oauth::CallbackQuery;
use crate::session;
use crate::startup::AppState;

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    admin_email: String,
    clinic_name: String,
    csrf: String,
    flash: Option<Notice>,
    cards: Vec<ConnectionView>,
}

pub async fn dashboard(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
) -> Result<HttpResponse, AppError> {
    let admin = admin.0;
    let rows = state.db.connections_of_clinic(admin.clinic_id).await?;
    let none = BTreeMap::new();
    let mut cards: Vec<ConnectionView> = state
        .vendors
        .all()
        .iter()
        .map(|v| service::view(v, rows.iter().find(|r| r.vendor == v.profile.id), &none))
        .collect();
    cards.sort_by_key(|c| c.vendor_name.to_lowercase());
    render(&DashboardPage {
        admin_email: admin.email,
        clinic_name: admin.clinic_name,
        csrf: session::csrf_token(&session)?,
        flash: session::take_notice(&session),
        cards,
    })
}

struct EventView {
    at: String,
    kind: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "connection.html")]
struct ConnectionPage {
    admin_email: String,
    clinic_name: String,
    csrf: String,
    flash: Option<Notice>,
    form_error: Option<Notice>,
    /// Where a newcomer finds the sandbox's test credentials (development only).
    credentials_url: Option<String>,
    c: ConnectionView,
    events: Vec<EventView>,
}

impl ConnectionPage {
    fn reconnect_notice(&self) -> Notice {
        Notice::warning(format!(
            "{} no longer accepts this connection. Connect again to restore access; its history is kept.",
            self.c.vendor_name
        ))
    }
}

/// "Connected to X." or, for a connection that was there before, "Reconnected to X."; a warning
/// when the account lookup left a note.
fn connected_notice(vendor_name: &str, reconnected: bool, note: Option<&str>) -> Notice {
    let done = if reconnected { "Reconnected to" } else { "Connected to" };
    match note {
        None => Notice::success(format!("{done} {vendor_name}.")),
        Some(note) => Notice::warning(format!("{done} {vendor_name}. {note}")),
    }
}

/// Whether connecting now replaces a connection the clinic still has (one the vendor stopped
/// accepting, say): the message then says "Reconnected".
async fn has_connection(state: &AppState, clinic_id: i64, vendor_id: &str) -> Result<bool, AppError> {
    let row = state.db.connection(clinic_id, vendor_id).await?;
    Ok(row.is_some_and(|r| r.status != service::STATUS_DISCONNECTED))
}

fn event_label(kind: &str) -> String {
    match kind {
        "connected" => "Connected",
        "consent_denied" => "Access not granted",
        "connect_failed" => "Connection failed",
        "disconnected" => "Disconnected",
        "identified" => "Account identified",
        "refreshed" => "Token refreshed",
        "refresh_failed" => "Refresh failed",
        "reconnect_needed" => "Reconnect needed",
        "revoked" => "Revoked at the vendor",
        "revocation_failed" => "Revocation retry failed",
        "revocation_abandoned" => "Revocation abandoned",
        other => other,
    }
    .to_owned()
}

pub async fn detail(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    render_detail(&state, &session, &admin, &path, StatusCode::OK, None, &BTreeMap::new()).await
}

async fn render_detail(
    state: &AppState,
    session: &Session,
    admin: &CurrentAdmin,
    vendor_id: &str,
    status: StatusCode,
    form_error: Option<Notice>,
    typed: &BTreeMap<String, String>,
) -> Result<HttpResponse, AppError> {
    let admin = &admin.0;
    let vendor = service::vendor(state, vendor_id)?;
    let mut row = state.db.connection(admin.clinic_id, vendor_id).await?;
    if let Some(r) = row.as_mut().filter(|r| r.status == service::STATUS_CONNECTED && r.identity_retry != 0) {
        // The account lookup failed in passing earlier: try once more now that someone looks.
        match service::retry_identity(state, vendor, r).await {
            Ok(account) => r.account_name = account.or(r.account_name.take()),
            Err(e) => tracing::warn!(cause = %e, "account lookup retry failed"),
        }
    }
    let events = state
        .db
        .events(admin.clinic_id, vendor_id)
        .await?
        .iter()
        .map(|e| EventView { at: format_utc(e.at), kind: event_label(&e.kind), detail: e.detail.clone() })
        .collect();
    let view = service::view(vendor, row.as_ref(), typed);
    let credentials_url = state
        .sandbox_url
        .as_ref()
        .filter(|_| view.fields.iter().any(|f| f.kind == "secret"))
        .map(|u| format!("{}/credentials.json", u.as_str().trim_end_matches('/')));
    render_with(
        status,
        &ConnectionPage {
            admin_email: admin.email.clone(),
            clinic_name: admin.clinic_name.clone(),
            csrf: session::csrf_token(session)?,
            flash: session::take_notice(session),
            form_error,
            credentials_url,
            c: view,
            events,
        },
    )
}

pub async fn connect(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let input = ConnectInput::parse(&body);
    session::verify_csrf(&session, input.get("csrf").unwrap_or_default())?;
    let binding = session::binding(&session)?;
    let vendor_id = path.into_inner();
    let reconnecting = has_connection(&state, admin.0.clinic_id, &vendor_id).await?;
    match service::start(&state, &admin.0, &binding, &vendor_id, &input).await {
        Ok(Started::Redirect(url)) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()),
        Ok(Started::Connected { note }) => {
            let name = &service::vendor(&state, &vendor_id)?.profile.name;
            session::notify(&session, connected_notice(name, reconnecting, note.as_deref()))?;
            Ok(see_other(&format!("/connections/{vendor_id}")))
        }
        Err(ConnectError::App(e)) => Err(e),
        Err(ConnectError::Form(problem)) => {
            let message = Some(Notice::error(problem.message));
            render_detail(&state, &session, &admin, &vendor_id, problem.status, message, &problem.values).await
        }
    }
}

pub async fn callback(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    path: web::Path<String>,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, AppError> {
    let vendor_id = path.into_inner();
    let binding = session::binding(&session)?;
    let reconnecting = has_connection(&state, admin.0.clinic_id, &vendor_id).await?;
    let result = service::complete_authorization(&state, &admin.0, &binding, &vendor_id, query.into_inner()).await;
    match result? {
        CallbackResult::Denied { message } => session::notify(&session, Notice::warning(message))?,
        CallbackResult::Connected { note } => {
            let name = &service::vendor(&state, &vendor_id)?.profile.name;
            session::notify(&session, connected_notice(name, reconnecting, note.as_deref()))?;
        }
    }
    // The code and state stay behind: the browser is sent to a clean URL, nothing is cached,
    // and no Referer carries the callback URL onwards.
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/connections/{vendor_id}")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish())
}

pub async fn disconnect(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    session::verify_csrf(&session, &form.csrf)?;
    let vendor_id = path.into_inner();
    let actor = service::admin_actor(&admin.0.email);
    let notice = service::disconnect(&state, admin.0.clinic_id, &vendor_id, &actor).await?;
    session::notify(&session, notice)?;
    Ok(see_other(&format!("/connections/{vendor_id}")))
}

pub async fn refresh(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    session::verify_csrf(&session, &form.csrf)?;
    let vendor_id = path.into_inner();
    let vendor = service::vendor(&state, &vendor_id)?;
    let name = &vendor.profile.name;
    let version = |row: Option<crate::db::connections::ConnectionRow>| row.map(|r| r.version);
    let before = version(state.db.connection(admin.0.clinic_id, &vendor_id).await?);
    let actor = service::admin_actor(&admin.0.email);
    let outcome = state.tokens.access_token(&state, admin.0.clinic_id, &vendor_id, true, &actor).await;
    let after = version(state.db.connection(admin.0.clinic_id, &vendor_id).await?);
    let notice = match outcome {
        Ok(_) if after != before => Notice::success(format!("The {name} access token was refreshed.")),
        // The current token came back: the vendor could not be asked right now.
        Ok(_) => Notice::warning(format!(
            "The {name} token could not be refreshed right now; the current one is still valid."
        )),
        Err(e) => Notice::error(format!("The {name} token could not be refreshed: {e}.")),
    };
    session::notify(&session, notice)?;
    Ok(see_other(&format!("/connections/{vendor_id}")))
}
