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
use crate::oauth::CallbackQuery;
use crate::session;
use crate::startup::AppState;

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    admin_email: String,
    clinic_name: String,
    csrf: String,
    flash: Option<String>,
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
        flash: session::take_flash(&session),
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
    flash: Option<String>,
    form_error: Option<String>,
    /// Where a newcomer finds the sandbox's test credentials (development only).
    credentials_url: Option<String>,
    c: ConnectionView,
    events: Vec<EventView>,
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
    form_error: Option<String>,
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
            flash: session::take_flash(session),
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
    match service::start(&state, &admin.0, &binding, &vendor_id, &input).await {
        Ok(Started::Redirect(url)) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()),
        Ok(Started::Connected { message }) => {
            session::set_flash(&session, &message)?;
            Ok(see_other(&format!("/connections/{vendor_id}")))
        }
        Err(ConnectError::App(e)) => Err(e),
        Err(ConnectError::Form(problem)) => {
            render_detail(&state, &session, &admin, &vendor_id, problem.status, Some(problem.message), &problem.values)
                .await
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
    let result = service::complete_authorization(&state, &admin.0, &binding, &vendor_id, query.into_inner()).await;
    match &result {
        Ok(CallbackResult::Denied { message }) => session::set_flash(&session, message)?,
        Ok(CallbackResult::Connected { note: Some(note) }) => session::set_flash(&session, note)?,
        _ => {}
    }
    result?;
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
    let message = service::disconnect(&state, admin.0.clinic_id, &vendor_id, &actor).await?;
    session::set_flash(&session, &message)?;
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
    let message = match outcome {
        Ok(_) if after != before => format!("The {name} access token was refreshed."),
        // The current token came back: the vendor could not be asked right now.
        Ok(_) => format!("The {name} token could not be refreshed right now; the current one is still valid."),
        Err(e) => format!("The {name} token could not be refreshed: {e}."),
    };
    session::set_flash(&session, &message)?;
    Ok(see_other(&format!("/connections/{vendor_id}")))
}
