//! Patients' pages under `/care`, with their own session (see `startup.rs`): searching, a
//! provider's page, logging in and out with Zocdoc, their appointments. Booking and cancelling
//! are in `booking_routes.rs`.

use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::pages::{cards, Chrome, ProviderCard};
use super::return_to::ReturnTo;
use super::{booking_routes, browse, CareError, LoginResult};
use crate::client_addr::client_addr;
use crate::oauth::CallbackQuery;
use crate::routes::{post_only, render_with, see_other};
use crate::startup::AppState;

/// Open times shown per location on the search results (all of them on the provider's page).
const TIMES_IN_RESULTS: usize = 4;
const TIMES_ON_PROVIDER_PAGE: usize = 400;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(search_page))
        .route("/providers/{provider_id}", web::get().to(provider_page))
        .route("/appointments", web::get().to(booking_routes::appointments_page))
        .route("/callback", web::get().to(callback))
        .route("/booked", web::get().to(booking_routes::booked_page))
        .service(
            web::resource("/book")
                .route(web::get().to(booking_routes::confirmation_page))
                .route(web::post().to(booking_routes::book))
                .default_service(web::to(|| async {
                    HttpResponse::MethodNotAllowed().insert_header((header::ALLOW, "GET, POST")).finish()
                })),
        )
        .service(post_only("/book/confirm", web::post().to(booking_routes::confirm)))
        .service(post_only("/appointments/cancel", web::post().to(booking_routes::cancel_page)))
        .service(post_only("/appointments/cancel/confirm", web::post().to(booking_routes::cancel)))
        .service(post_only("/login", web::post().to(login)))
        .service(post_only("/logout", web::post().to(logout)))
        .default_service(web::to(not_found));
}

async fn not_found(state: web::Data<AppState>, session: Session) -> HttpResponse {
    error_page(&state, &session, &CareError::NotFound)
}

/// The frame of a patient page. Reads the session only: showing a page to a visitor without a
/// session creates none.
pub fn chrome(state: &AppState, session: &Session) -> Chrome {
    let logged_in = super::is_logged_in(session);
    let csrf = if logged_in && super::has_session(session) {
        crate::session::csrf_token(session).unwrap_or_default()
    } else {
        String::new()
    };
    Chrome { clinic_name: state.clinic_name.clone(), logged_in, csrf }
}

pub fn page(status: StatusCode, template: &impl Template) -> HttpResponse {
    render_with(status, template).unwrap_or_else(|_| HttpResponse::InternalServerError().finish())
}

#[derive(Template)]
#[template(path = "care_error.html")]
struct CareErrorPage {
    chrome: Chrome,
    title: String,
    message: String,
}

/// A short page for the patient; the cause goes to the log only.
pub fn error_page(state: &AppState, session: &Session, e: &CareError) -> HttpResponse {
    let (status, title, message) = match e {
        CareError::Csrf => (
            StatusCode::FORBIDDEN,
            "This form expired",
            "This form expired or did not come from this site. Go back, reload the page and try again.",
        ),
        CareError::Callback(_) => (
            StatusCode::BAD_REQUEST,
            "This login cannot be completed",
            "This return from Zocdoc does not match a login started in this browser, or it was already used. Start again from the search page.",
        ),
        CareError::Zocdoc(_) => (StatusCode::BAD_GATEWAY, "Zocdoc did not answer", "Zocdoc could not be reached or refused the request. Nothing was changed. Please try again in a moment."),
        CareError::NotLoggedIn => (StatusCode::UNAUTHORIZED, "Please log in again", "Please log in with Zocdoc again."),
        CareError::NotConfigured(_) => (StatusCode::SERVICE_UNAVAILABLE, "Not available", "Zocdoc is not available here right now."),
        CareError::TooMany(_) => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            "There were too many requests from your network in a short time. Please wait a minute and try again.",
        ),
        CareError::NotFound => (StatusCode::NOT_FOUND, "Not found", "There is nothing here. Start again from the search page."),
        CareError::NoSuchProvider => (StatusCode::NOT_FOUND, "Provider not found", "Zocdoc does not list this provider. Search again from the search page."),
        CareError::SlotGone => (StatusCode::CONFLICT, "That time is no longer available", "That time is no longer available. Nothing was booked."),
        CareError::NoWriteScope => (
            StatusCode::FORBIDDEN,
            "Booking is not allowed",
            "Your Zocdoc login does not allow this app to book appointments. Log in again and allow booking.",
        ),
        CareError::NoChoice => (
            StatusCode::BAD_REQUEST,
            "No time chosen",
            "There is no chosen time to book. Search for a provider and press one of their open times.",
        ),
        CareError::Session | CareError::Internal(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "Something went wrong on our side. Nothing was changed; please try again.")
        }
    };
    tracing::warn!(cause = %e, status = status.as_u16(), "patient request failed");
    let mut response = page(
        status,
        &CareErrorPage { chrome: chrome(state, session), title: title.to_owned(), message: message.to_owned() },
    );
    if let CareError::TooMany(wait) = e {
        retry_after(&mut response, *wait);
    }
    response
}

pub fn retry_after(response: &mut HttpResponse, seconds: i64) {
    if let Ok(value) = header::HeaderValue::from_str(&seconds.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
}

/// Counts a search (or another browsing request that may call Zocdoc) against this client
/// address's limit.
pub fn count_search(state: &AppState, req: &HttpRequest) -> Result<(), CareError> {
    let addr = client_addr(req, &state.trusted_proxies);
    state.care.allow_search(addr, state.clock.now()).map_err(|wait| {
        tracing::warn!(%addr, "patient searches over the per-address limit");
        CareError::TooMany(wait)
    })
}

#[derive(Template)]
#[template(path = "care.html")]
struct SearchPage {
    chrome: Chrome,
    provider_page: bool,
    csrf: String,
    flash: Option<String>,
    query: String,
    specialty: String,
    searched: bool,
    cards: Vec<ProviderCard>,
    problem: Option<String>,
    return_to: String,
}

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    specialty: String,
}

fn clean(s: &str) -> String {
    s.trim().chars().filter(|c| !c.is_control()).take(100).collect()
}

pub async fn search_page(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
    query: web::Query<SearchQuery>,
) -> HttpResponse {
    let (q, specialty) = (clean(&query.q), clean(&query.specialty));
    let searched = !q.is_empty() || !specialty.is_empty();
    let mut status = StatusCode::OK;
    let mut wait = None;
    let (found, problem) = if !searched {
        (Vec::new(), None)
    } else if let Err(CareError::TooMany(seconds)) = count_search(&state, &req) {
        status = StatusCode::TOO_MANY_REQUESTS;
        wait = Some(seconds);
        (
            Vec::new(),
            Some(format!(
                "You have searched many times in a short while. Please wait {seconds} seconds, then search again."
            )),
        )
    } else {
        match browse::search(&state, &session, &q, &specialty).await {
            Ok(found) => (cards(&found, TIMES_IN_RESULTS, None), None),
            Err(e) => {
                tracing::warn!(cause = %e, "provider search failed");
                (
                    Vec::new(),
                    Some(
                        "Search is unavailable right now: Zocdoc could not be reached. Try again in a moment."
                            .to_owned(),
                    ),
                )
            }
        }
    };
    let here = match req.uri().query() {
        Some(q) if !q.is_empty() => format!("/care?{q}"),
        _ => "/care".to_owned(),
    };
    let return_to = ReturnTo::parse(&here).unwrap_or_else(ReturnTo::home);
    let token = match super::form_token(&state, &session, &req) {
        Ok(t) => t,
        Err(e) => return error_page(&state, &session, &e),
    };
    let mut response = token.attach(page(
        status,
        &SearchPage {
            chrome: chrome(&state, &session),
            provider_page: false,
            csrf: token.value.clone(),
            flash: super::take_flash(&session),
            query: q,
            specialty,
            searched,
            cards: found,
            problem,
            return_to: return_to.as_str().to_owned(),
        },
    ));
    if let Some(seconds) = wait {
        retry_after(&mut response, seconds);
    }
    response
}

#[derive(Template)]
#[template(path = "care_provider.html")]
struct ProviderPage {
    chrome: Chrome,
    provider_page: bool,
    csrf: String,
    flash: Option<String>,
    title: String,
    cards: Vec<ProviderCard>,
}

pub async fn provider_page(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    if let Err(e) = count_search(&state, &req) {
        return error_page(&state, &session, &e);
    }
    let found = match browse::provider(&state, &session, &path).await {
        Ok(found) => found,
        Err(e) => return error_page(&state, &session, &e),
    };
    let token = match super::form_token(&state, &session, &req) {
        Ok(t) => t,
        Err(e) => return error_page(&state, &session, &e),
    };
    let cards = cards(&found, TIMES_ON_PROVIDER_PAGE, None);
    let title = cards.first().map(|c| c.name.clone()).unwrap_or_default();
    token.attach(page(
        StatusCode::OK,
        &ProviderPage {
            chrome: chrome(&state, &session),
            provider_page: true,
            csrf: token.value.clone(),
            flash: super::take_flash(&session),
            title,
            cards,
        },
    ))
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    return_to: String,
}

pub async fn login(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    if let Err(e) = super::verify_form(&state, &session, &req, &form.csrf) {
        return error_page(&state, &session, &e);
    }
    let Some(return_to) = ReturnTo::parse(&form.return_to) else {
        tracing::warn!("patient login with a refused return path");
        return error_page(&state, &session, &CareError::Callback(crate::oauth::CallbackError::MissingState));
    };
    // Starting a login creates the session and fetches an anonymous token: it counts.
    if let Err(e) = count_search(&state, &req) {
        return error_page(&state, &session, &e);
    }
    let email = form.email.trim();
    let hint =
        (!email.is_empty() && email.len() <= 254 && email.contains('@') && !email.chars().any(char::is_whitespace))
            .then_some(email);
    match super::start_login(&state, &session, hint, &return_to).await {
        Ok(url) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Err(e) => error_page(&state, &session, &e),
    }
}

pub async fn callback(state: web::Data<AppState>, session: Session, query: web::Query<CallbackQuery>) -> HttpResponse {
    let (location, flash) = match super::complete_login(&state, &session, query.into_inner()).await {
        Ok(LoginResult::LoggedIn(to)) => (to, "You are logged in with Zocdoc.".to_owned()),
        Ok(LoginResult::Denied(to, message)) => (to, message),
        Err(e) => return error_page(&state, &session, &e),
    };
    let _ = super::set_flash(&session, &flash);
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish()
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
    form: web::Form<CsrfOnly>,
) -> HttpResponse {
    if let Err(e) = super::verify_form(&state, &session, &req, &form.csrf) {
        return error_page(&state, &session, &e);
    }
    if let Some(binding) = session.get::<String>("binding").ok().flatten() {
        if let Err(e) = state.db.delete_flows_of_session(&binding).await {
            tracing::warn!(cause = %e, "could not remove a patient's pending flows");
        }
    }
    // Ends the session on the server: its row, with the tokens sealed in it, is deleted.
    session.purge();
    tracing::info!("patient logged out");
    see_other("/care")
}
