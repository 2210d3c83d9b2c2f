//! Booking and cancelling: Book (keeps the choice in the session, and starts the Zocdoc login
//! when needed), the confirmation of the same time, the booking itself, the patient's
//! appointments and cancelling one (with a confirmation step).

use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::booking::{self, Choice, Pick};
use super::pages::{cards, Chrome, ProviderCard};
use super::public::Found;
use super::return_to::ReturnTo;
use super::routes::{chrome, count_search, error_page, page};
use super::times::Zone;
use super::zocdoc::valid_id;
use super::CareError;
use crate::routes::see_other;
use crate::startup::AppState;

/// Other times offered when the chosen one is gone.
const ALTERNATIVES: usize = 6;

#[derive(Deserialize)]
pub struct BookForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    slot: String,
    #[serde(default)]
    reason: String,
}

#[derive(Template)]
#[template(path = "care_gone.html")]
struct GonePage {
    chrome: Chrome,
    provider_page: bool,
    csrf: String,
    message: String,
    cards: Vec<ProviderCard>,
}

/// Which other times to offer: those nearest to `around`, but not `except` (the time that is
/// gone), with `reason` chosen.
struct Nearby<'a> {
    around: i64,
    except: Option<(&'a str, i64)>,
    reason: Option<&'a str>,
}

/// "That time is no longer available", with the provider's nearest other open times.
fn gone_page(
    state: &AppState,
    session: &Session,
    req: &HttpRequest,
    found: &Found,
    nearby: &Nearby<'_>,
    message: &str,
) -> HttpResponse {
    let token = match super::form_token(state, session, req) {
        Ok(t) => t,
        Err(e) => return error_page(state, session, &e),
    };
    let near = Found {
        providers: found.providers.clone(),
        slots: booking::nearest_times(found, nearby.around, nearby.except, ALTERNATIVES),
    };
    let cards = if near.slots.is_empty() { Vec::new() } else { cards(&near, ALTERNATIVES, nearby.reason) };
    token.attach(page(
        StatusCode::CONFLICT,
        &GonePage {
            chrome: chrome(state, session),
            provider_page: false,
            csrf: token.value.clone(),
            message: message.to_owned(),
            cards,
        },
    ))
}

/// `POST /care/book`: a Book button. The time is checked against Zocdoc's open times and kept
/// in the session with a fresh idempotency key; then the confirmation, through the Zocdoc login
/// if the patient has not logged in yet.
pub async fn book(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
    form: web::Form<BookForm>,
) -> HttpResponse {
    if let Err(e) = super::verify_form(&state, &session, &req, &form.csrf) {
        return error_page(&state, &session, &e);
    }
    if let Err(e) = count_search(&state, &req) {
        return error_page(&state, &session, &e);
    }
    let pick = Pick { provider_id: form.provider.trim(), slot: form.slot.trim(), reason_id: form.reason.trim() };
    if !valid_id(pick.provider_id) || !valid_id(pick.reason_id) || pick.slot.len() > 200 {
        tracing::warn!("a Book form with fields that are not ours");
        return error_page(&state, &session, &CareError::NoChoice);
    }
    let choice = match booking::choose(&state, &session, &pick).await {
        Ok(choice) => choice,
        Err((CareError::SlotGone, Some(found))) => {
            let around = pick
                .slot
                .split_once('|')
                .and_then(|(_, t)| super::times::parse_instant(t))
                .unwrap_or_else(|| state.clock.now());
            return gone_page(
                &state,
                &session,
                &req,
                &found,
                &Nearby { around, except: None, reason: Some(pick.reason_id) },
                "That time was taken or is no longer offered.",
            );
        }
        Err((e, _)) => return error_page(&state, &session, &e),
    };
    if super::is_logged_in(&session) {
        return see_other("/care/book");
    }
    // Not logged in: Zocdoc's login starts from here, carrying this browser's anonymous token,
    // and comes back to the confirmation of this choice.
    match super::start_login(&state, &session, None, &ReturnTo::booking()).await {
        Ok(url) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Err(e) => {
            tracing::warn!(cause = %e, provider = %choice.provider_id, "could not start the Zocdoc login for a booking");
            error_page(&state, &session, &e)
        }
    }
}

#[derive(Template)]
#[template(path = "care_book.html")]
struct ConfirmationPage {
    chrome: Chrome,
    csrf: String,
    flash: Option<String>,
    provider: String,
    provider_id: String,
    reason: String,
    when: String,
    zone: String,
    address: String,
}

fn confirmation(
    state: &AppState,
    session: &Session,
    req: &HttpRequest,
    choice: &Choice,
    status: StatusCode,
) -> HttpResponse {
    let token = match super::form_token(state, session, req) {
        Ok(t) => t,
        Err(e) => return error_page(state, session, &e),
    };
    let zone = Zone::parse(&choice.zone);
    token.attach(page(
        status,
        &ConfirmationPage {
            chrome: chrome(state, session),
            csrf: token.value.clone(),
            flash: super::take_flash(session),
            provider: choice.provider_name.clone(),
            provider_id: choice.provider_id.clone(),
            reason: choice.reason_name.clone(),
            when: zone.when(choice.start),
            zone: zone.label(),
            address: choice.address.clone(),
        },
    ))
}

/// After the choice is gone from Zocdoc's open times: the provider's other times.
async fn gone_for(
    state: &AppState,
    session: &Session,
    req: &HttpRequest,
    choice: &Choice,
    message: &str,
) -> HttpResponse {
    match super::browse::provider(state, session, &choice.provider_id).await {
        Ok(found) => gone_page(
            state,
            session,
            req,
            &found,
            &Nearby {
                around: choice.start,
                except: Some((&choice.location_id, choice.start)),
                reason: Some(&choice.reason_id),
            },
            message,
        ),
        Err(e) => {
            tracing::warn!(cause = %e, "could not fetch other times");
            let nearby = Nearby { around: choice.start, except: None, reason: None };
            gone_page(state, session, req, &Found::default(), &nearby, message)
        }
    }
}

/// `GET /care/book`: the chosen time, to confirm (or to log in first).
pub async fn confirmation_page(state: web::Data<AppState>, session: Session, req: HttpRequest) -> HttpResponse {
    let Some(choice) = booking::choice(&session) else {
        return error_page(&state, &session, &CareError::NoChoice);
    };
    if super::is_logged_in(&session) {
        match booking::still_open(&state, &session, &choice).await {
            Ok(false) => {
                return gone_for(
                    &state,
                    &session,
                    &req,
                    &choice,
                    "The time you chose was taken while you were logging in.",
                )
                .await;
            }
            Ok(true) => {}
            // Zocdoc decides when the patient confirms; the page still shows the choice.
            Err(e) => tracing::warn!(cause = %e, "could not check the chosen time"),
        }
    }
    confirmation(&state, &session, &req, &choice, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /care/book/confirm`: books the choice with the idempotency key it was made with.
pub async fn confirm(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    if !super::has_session(&session) {
        // The session ended (idle or a day old): the choice went with it, and so did the token
        // the form carried, so the form cannot be told from a forged one: refused (403) either
        // way, and nothing is booked.
        tracing::info!("booking confirmed without a patient session");
        return error_page_with(
            &state,
            &session,
            StatusCode::FORBIDDEN,
            "Your session ended",
            "Your session ended before the booking was confirmed, so the time you chose is no longer held. Nothing was booked. Search again and choose a time; you will be asked to log in with Zocdoc.",
        );
    }
    if let Err(e) = super::verify_form(&state, &session, &req, &form.csrf) {
        return error_page(&state, &session, &e);
    }
    let Some(choice) = booking::choice(&session) else {
        if booking::booked(&session).is_some() {
            // A second press of Confirm after the booking went through: show it, book nothing.
            return see_other("/care/booked");
        }
        return error_page(&state, &session, &CareError::NoChoice);
    };
    match booking::confirm(&state, &session).await {
        Ok(_) => {
            let _ = super::set_flash(&session, "Your appointment is booked.");
            see_other("/care/booked")
        }
        Err(CareError::SlotGone) => gone_for(&state, &session, &req, &choice, "Zocdoc says this time was just taken.").await,
        Err(CareError::NotLoggedIn) => {
            let _ = super::set_flash(
                &session,
                "Your Zocdoc login has ended. Log in again to book; the time you chose is kept.",
            );
            confirmation(&state, &session, &req, &choice, StatusCode::UNAUTHORIZED)
        }
        Err(CareError::NoWriteScope) => error_page_with(
            &state,
            &session,
            StatusCode::FORBIDDEN,
            "Zocdoc did not allow booking",
            "Your Zocdoc login did not give this app permission to book appointments, so nothing was booked. The time you chose is kept: log in with Zocdoc again from the confirmation page and allow booking.",
        ),
        Err(e @ CareError::Zocdoc(_)) => {
            // Zocdoc may have booked without our hearing it: the choice and its key stay, so
            // pressing again answers that booking instead of making another.
            tracing::warn!(cause = %e, "booking call failed; the choice is kept for a retry");
            let _ = super::set_flash(
                &session,
                "Zocdoc did not answer in time, so we cannot tell yet whether this was booked. Press Book this appointment again: it will not be booked twice.",
            );
            confirmation(&state, &session, &req, &choice, StatusCode::BAD_GATEWAY)
        }
        Err(e) => error_page(&state, &session, &e),
    }
}

#[derive(Template)]
#[template(path = "care_error.html")]
struct MessagePage {
    chrome: Chrome,
    title: String,
    message: String,
}

fn error_page_with(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    title: &str,
    message: &str,
) -> HttpResponse {
    tracing::info!(status = status.as_u16(), title, "patient told why nothing was booked");
    page(status, &MessagePage { chrome: chrome(state, session), title: title.to_owned(), message: message.to_owned() })
}

#[derive(Template)]
#[template(path = "care_booked.html")]
struct BookedPage {
    chrome: Chrome,
    flash: Option<String>,
    provider: String,
    reason: String,
    when: String,
    zone: String,
    address: String,
}

/// `GET /care/booked`: the booking just made, and how to cancel it.
pub async fn booked_page(state: web::Data<AppState>, session: Session) -> HttpResponse {
    let Some(booked) = booking::booked(&session) else {
        return see_other("/care/appointments");
    };
    let zone = Zone::parse(&booked.zone);
    page(
        StatusCode::OK,
        &BookedPage {
            chrome: chrome(&state, &session),
            flash: super::take_flash(&session),
            provider: booked.provider_name,
            reason: booked.reason_name,
            when: zone.when(booked.start),
            zone: zone.label(),
            address: booked.address,
        },
    )
}

/// An appointment as the patient reads it.
pub struct AppointmentView {
    id: String,
    provider: String,
    when: String,
    address: String,
    reason: String,
    status: String,
}

fn view(a: &super::zocdoc::Appointment) -> AppointmentView {
    let when = match (&a.location, a.start) {
        (Some(l), Some(start)) => l.zone.when(start),
        (None, Some(start)) => Zone::parse("UTC").when(start),
        _ => "Time unknown".to_owned(),
    };
    let status = match a.status.as_str() {
        "cancelled" => "Cancelled",
        "completed" => "Completed",
        "confirmed" => "Booked",
        _ => "Status unknown",
    };
    AppointmentView {
        id: a.id.clone(),
        provider: a.provider.clone(),
        when,
        address: a.location.as_ref().map(|l| l.address.clone()).unwrap_or_default(),
        reason: a.visit_reason.clone(),
        status: status.to_owned(),
    }
}

#[derive(Template)]
#[template(path = "care_appointments.html")]
struct AppointmentsPage {
    chrome: Chrome,
    csrf: String,
    flash: Option<String>,
    upcoming: Vec<AppointmentView>,
    past: Vec<AppointmentView>,
    problem: Option<String>,
}

pub async fn appointments_page(state: web::Data<AppState>, session: Session, req: HttpRequest) -> HttpResponse {
    let (upcoming, past, problem, status) = if !super::is_logged_in(&session) {
        (
            Vec::new(),
            Vec::new(),
            Some("Log in with Zocdoc to see your appointments.".to_owned()),
            StatusCode::UNAUTHORIZED,
        )
    } else {
        match booking::appointments(&state, &session).await {
            Ok(list) => {
                let now = state.clock.now();
                let (upcoming, past): (Vec<_>, Vec<_>) = list.iter().partition(|a| a.is_upcoming(now));
                let mut past: Vec<AppointmentView> = past.into_iter().map(view).collect();
                past.reverse();
                (upcoming.into_iter().map(view).collect(), past, None, StatusCode::OK)
            }
            Err(CareError::NotLoggedIn) => (
                Vec::new(),
                Vec::new(),
                Some("Your Zocdoc login has ended. Log in again to see your appointments.".to_owned()),
                StatusCode::UNAUTHORIZED,
            ),
            Err(e) => {
                tracing::warn!(cause = %e, "appointments failed");
                (
                    Vec::new(),
                    Vec::new(),
                    Some("Your appointments are unavailable right now: Zocdoc could not be reached.".to_owned()),
                    StatusCode::BAD_GATEWAY,
                )
            }
        }
    };
    let token = match super::form_token(&state, &session, &req) {
        Ok(t) => t,
        Err(e) => return error_page(&state, &session, &e),
    };
    token.attach(page(
        status,
        &AppointmentsPage {
            chrome: chrome(&state, &session),
            csrf: token.value.clone(),
            flash: super::take_flash(&session),
            upcoming,
            past,
            problem,
        },
    ))
}

#[derive(Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    appointment: String,
}

#[derive(Template)]
#[template(path = "care_cancel.html")]
struct CancelPage {
    chrome: Chrome,
    csrf: String,
    id: String,
    provider: String,
    when: String,
    address: String,
}

/// The patient's upcoming appointment with this id, as Zocdoc lists it now.
async fn upcoming(state: &AppState, session: &Session, id: &str) -> Result<Option<AppointmentView>, CareError> {
    if !valid_id(id) {
        return Ok(None);
    }
    let now = state.clock.now();
    let list = booking::appointments(state, session).await?;
    Ok(list.iter().find(|a| a.id == id && a.is_upcoming(now)).map(view))
}

fn not_cancellable(session: &Session) -> HttpResponse {
    let _ = super::set_flash(
        session,
        "That appointment cannot be cancelled here: it is not one of your upcoming appointments.",
    );
    see_other("/care/appointments")
}

/// `POST /care/appointments/cancel`: the confirmation step.
pub async fn cancel_page(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
    form: web::Form<CancelForm>,
) -> HttpResponse {
    if let Err(e) = super::verify_form(&state, &session, &req, &form.csrf) {
        return error_page(&state, &session, &e);
    }
    let appointment = match upcoming(&state, &session, form.appointment.trim()).await {
        Ok(Some(a)) => a,
        Ok(None) => return not_cancellable(&session),
        Err(e) => return error_page(&state, &session, &e),
    };
    let csrf = crate::session::csrf_token(&session).unwrap_or_default();
    page(
        StatusCode::OK,
        &CancelPage {
            chrome: chrome(&state, &session),
            csrf,
            id: appointment.id,
            provider: appointment.provider,
            when: appointment.when,
            address: appointment.address,
        },
    )
}

/// `POST /care/appointments/cancel/confirm`: cancels at Zocdoc.
pub async fn cancel(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
    form: web::Form<CancelForm>,
) -> HttpResponse {
    if let Err(e) = super::verify_form(&state, &session, &req, &form.csrf) {
        return error_page(&state, &session, &e);
    }
    let id = form.appointment.trim();
    let appointment = match upcoming(&state, &session, id).await {
        Ok(Some(a)) => a,
        Ok(None) => return not_cancellable(&session),
        Err(e) => return error_page(&state, &session, &e),
    };
    match booking::cancel(&state, &session, id).await {
        Ok(()) => {
            tracing::info!("patient cancelled an appointment");
            let _ = super::set_flash(
                &session,
                &format!("Your appointment with {} on {} is cancelled.", appointment.provider, appointment.when),
            );
            see_other("/care/appointments")
        }
        Err(CareError::NoWriteScope) => error_page(&state, &session, &CareError::NoWriteScope),
        Err(CareError::Zocdoc(crate::vendors::http::VendorError::Refused { status: 403, .. })) => {
            error_page(&state, &session, &CareError::NoWriteScope)
        }
        Err(e) => error_page(&state, &session, &e),
    }
}
