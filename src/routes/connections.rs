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
use crate::db::connections::ConnectionRow;
use crate::errors::AppError;
use crate::notice::Notice;
use crate::oauth::CallbackQuery;
use crate::session;
use crate::startup::AppState;
use crate::tokens::{TokenError, TROUBLE_APP_REFUSED};

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
    // The connections came with the admin, in the same statement.
    let none = BTreeMap::new();
    let now = state.clock.now();
    let mut cards: Vec<ConnectionView> =
        state.vendors.all().iter().map(|v| service::view(v, admin.connection(&v.profile.id), &none, now)).collect();
    crate::connection_view::sort_for_dashboard(&mut cards);
    let admin = admin.0;
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
    /// Who did it, in words.
    who: String,
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
fn has_connection(admin: &CurrentAdmin, vendor_id: &str) -> bool {
    admin.connection(vendor_id).is_some_and(|r| r.status != service::STATUS_DISCONNECTED)
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
        "app_refused" => "Vendor refuses the app",
        "key_missing" => "Key missing",
        "key_found" => "Key found again",
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
    let vendor = service::vendor(state, vendor_id)?;
    // As the request found it (read with the admin): a form sent back with a problem changed
    // nothing.
    let mut row = admin.connection(vendor_id).cloned();
    let admin = &admin.0;
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
        .map(|e| EventView {
            at: format_utc(e.at),
            kind: event_label(&e.kind),
            detail: e.detail.clone(),
            who: crate::status::actor_label(&e.actor),
        })
        .collect();
    let view = service::view(vendor, row.as_ref(), typed, state.clock.now());
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
    let reconnecting = has_connection(&admin, &vendor_id);
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
    let reconnecting = has_connection(&admin, &vendor_id);
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
    let before = state.db.connection(admin.0.clinic_id, &vendor_id).await?.map(|r| r.version);
    let actor = service::admin_actor(&admin.0.email);
    let outcome = state.tokens.refresh_now(&state, admin.0.clinic_id, &vendor_id, &actor).await;
    let after = state.db.connection(admin.0.clinic_id, &vendor_id).await?;
    let notice = refresh_notice(name, outcome.map(|_| ()), before, after.as_ref());
    session::notify(&session, notice)?;
    Ok(see_other(&format!("/connections/{vendor_id}")))
}

/// What "Refresh now" came to, in plain words: the technical detail is on the page, under
/// "Details", and in the history.
fn refresh_notice(
    name: &str,
    outcome: Result<(), TokenError>,
    before: Option<i64>,
    after: Option<&ConnectionRow>,
) -> Notice {
    let trouble = after.and_then(|r| r.trouble.as_deref());
    match outcome {
        Err(TokenError::ReconnectNeeded) => {
            Notice::error(format!("{name} no longer accepts this connection. Reconnect it to restore access."))
        }
        Err(TokenError::KeyMissing) => Notice::error(format!(
            "The stored {name} secrets cannot be read: their encryption key was removed from the server."
        )),
        Err(TokenError::NotConnected) => Notice::error(format!("{name} is not connected.")),
        _ if trouble == Some(TROUBLE_APP_REFUSED) => Notice::error(format!(
            "{name} still refuses this app's registration, so the token could not be refreshed. See below for what \
             happens next."
        )),
        _ if trouble.is_some() => Notice::error(format!(
            "{name} could not be reached or had trouble, so the token could not be refreshed; it is retried \
             automatically."
        )),
        Err(TokenError::AppRefused(_) | TokenError::Unavailable(_) | TokenError::Internal(_)) => {
            Notice::error(format!("The {name} token could not be refreshed. Nothing was changed; try again."))
        }
        Ok(()) if after.map(|r| r.version) != before => {
            Notice::success(format!("The {name} access token was refreshed."))
        }
        // The current token came back unchanged: someone else was refreshing it at that moment.
        Ok(()) => Notice::warning(format!(
            "The {name} token could not be refreshed right now; the current one is still valid."
        )),
    }
}
