//! The dashboard, and connect → callback → view → disconnect for each vendor.

use actix_session::Session;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::{render, see_other, CsrfForm};
use crate::auth::CurrentAdmin;
use crate::clock::format_utc;
use crate::connections::{self as service, CallbackResult, ConnectionView};
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
    let mut cards: Vec<ConnectionView> = state
        .vendors
        .all()
        .iter()
        .map(|v| service::view(v, rows.iter().find(|r| r.vendor == v.profile.id)))
        .collect();
    cards.extend(
        state
            .vendors
            .planned()
            .iter()
            .map(|(id, name)| service::planned_view(id, name)),
    );
    cards.sort_by(|a, b| {
        a.vendor_name
            .to_lowercase()
            .cmp(&b.vendor_name.to_lowercase())
    });
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
    c: ConnectionView,
    events: Vec<EventView>,
}

fn event_label(kind: &str) -> String {
    match kind {
        "connected" => "Connected",
        "consent_denied" => "Access not granted",
        "connect_failed" => "Connection failed",
        "disconnected" => "Disconnected",
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
    let admin = admin.0;
    let vendor_id = path.into_inner();
    let vendor = service::vendor(&state, &vendor_id)?;
    let row = state.db.connection(admin.clinic_id, &vendor_id).await?;
    let events = state
        .db
        .events(admin.clinic_id, &vendor_id, 50)
        .await?
        .into_iter()
        .map(|e| EventView {
            at: format_utc(e.at),
            kind: event_label(&e.kind),
            detail: e.detail,
        })
        .collect();
    render(&ConnectionPage {
        admin_email: admin.email,
        clinic_name: admin.clinic_name,
        csrf: session::csrf_token(&session)?,
        flash: session::take_flash(&session),
        c: service::view(vendor, row.as_ref()),
        events,
    })
}

pub async fn connect(
    state: web::Data<AppState>,
    session: Session,
    admin: CurrentAdmin,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    session::verify_csrf(&session, &form.csrf)?;
    let binding = session::binding(&session)?;
    let url = service::start_authorization(&state, admin.0.clinic_id, &binding, &path).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
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
    let result = service::complete_authorization(
        &state,
        admin.0.clinic_id,
        &binding,
        &vendor_id,
        query.into_inner(),
    )
    .await;
    if let Ok(CallbackResult::Denied { message }) = &result {
        session::set_flash(&session, message)?;
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
    let message = service::disconnect(&state, admin.0.clinic_id, &vendor_id).await?;
    session::set_flash(&session, &message)?;
    Ok(see_other(&format!("/connections/{vendor_id}")))
}
