//! Patients' pages under `/care`, with their own session (see `startup.rs`).

use actix_session::Session;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::return_to::ReturnTo;
use super::zocdoc::{Appointment, Provider};
use super::{CareError, LoginResult};
use crate::oauth::CallbackQuery;
use crate::routes::{render_with, see_other};
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(search_page))
        .route("/appointments", web::get().to(appointments_page))
        .route("/callback", web::get().to(callback))
        .service(crate::routes::post_only("/login", web::post().to(login)))
        .service(crate::routes::post_only("/logout", web::post().to(logout)));
}

#[derive(Template)]
#[template(path = "care.html")]
struct SearchPage {
    csrf: String,
    logged_in: bool,
    flash: Option<String>,
    query: String,
    specialty: String,
    searched: bool,
    providers: Vec<Provider>,
    problem: Option<String>,
    return_to: String,
}

#[derive(Template)]
#[template(path = "care_appointments.html")]
struct AppointmentsPage {
    csrf: String,
    logged_in: bool,
    flash: Option<String>,
    appointments: Vec<Appointment>,
    problem: Option<String>,
}

#[derive(Template)]
#[template(path = "care_error.html")]
struct CareErrorPage {
    csrf: String,
    logged_in: bool,
    message: String,
}

fn page(status: StatusCode, template: &impl Template) -> HttpResponse {
    render_with(status, template).unwrap_or_else(|_| HttpResponse::InternalServerError().finish())
}

/// A short page for the patient; the cause goes to the log only.
fn error_page(session: &Session, e: &CareError) -> HttpResponse {
    let (status, message) = match e {
        CareError::Csrf => (StatusCode::FORBIDDEN, "This form expired. Go back, reload the page and try again."),
        CareError::Callback(_) => (
            StatusCode::BAD_REQUEST,
            "This return from Zocdoc does not match a login started in this browser, or it was already used. Start again from the search page.",
        ),
        CareError::Zocdoc(_) => (StatusCode::BAD_GATEWAY, "Zocdoc could not be reached or refused the request. Please try again in a moment."),
        CareError::NotLoggedIn => (StatusCode::UNAUTHORIZED, "Please log in with Zocdoc again."),
        CareError::NotConfigured(_) => (StatusCode::SERVICE_UNAVAILABLE, "Zocdoc is not available here right now."),
        CareError::Session | CareError::Internal(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side. Please try again.")
        }
    };
    tracing::warn!(cause = %e, status = status.as_u16(), "patient request failed");
    let csrf = super::csrf_token(session).unwrap_or_default();
    page(status, &CareErrorPage { csrf, logged_in: super::is_logged_in(session), message: message.to_owned() })
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
    let (providers, problem) = if searched {
        match super::search(&state, &session, &q, &specialty).await {
            Ok(p) => (p, None),
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
    } else {
        (Vec::new(), None)
    };
    let here = match req.uri().query() {
        Some(q) if !q.is_empty() => format!("/care?{q}"),
        _ => "/care".to_owned(),
    };
    let return_to = ReturnTo::parse(&here).unwrap_or_else(ReturnTo::home);
    let csrf = match super::csrf_token(&session) {
        Ok(c) => c,
        Err(e) => return error_page(&session, &e),
    };
    page(
        StatusCode::OK,
        &SearchPage {
            csrf,
            logged_in: super::is_logged_in(&session),
            flash: super::take_flash(&session),
            query: q,
            specialty,
            searched,
            providers,
            problem,
            return_to: return_to.as_str().to_owned(),
        },
    )
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

pub async fn login(state: web::Data<AppState>, session: Session, form: web::Form<LoginForm>) -> HttpResponse {
    if let Err(e) = super::verify_csrf(&session, &form.csrf) {
        return error_page(&session, &e);
    }
    let Some(return_to) = ReturnTo::parse(&form.return_to) else {
        tracing::warn!("patient login with a refused return path");
        return error_page(&session, &CareError::Callback(crate::oauth::CallbackError::MissingState));
    };
    let email = form.email.trim();
    let hint =
        (!email.is_empty() && email.len() <= 254 && email.contains('@') && !email.chars().any(char::is_whitespace))
            .then_some(email);
    match super::start_login(&state, &session, hint, &return_to).await {
        Ok(url) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Err(e) => error_page(&session, &e),
    }
}

pub async fn callback(state: web::Data<AppState>, session: Session, query: web::Query<CallbackQuery>) -> HttpResponse {
    let (location, flash) = match super::complete_login(&state, &session, query.into_inner()).await {
        Ok(LoginResult::LoggedIn(to)) => (to, "You are logged in with Zocdoc.".to_owned()),
        Ok(LoginResult::Denied(to, message)) => (to, message),
        Err(e) => return error_page(&session, &e),
    };
    let _ = super::set_flash(&session, &flash);
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish()
}

pub async fn appointments_page(state: web::Data<AppState>, session: Session) -> HttpResponse {
    let csrf = super::csrf_token(&session).unwrap_or_default();
    if !super::is_logged_in(&session) {
        return page(
            StatusCode::UNAUTHORIZED,
            &AppointmentsPage {
                csrf,
                logged_in: false,
                flash: super::take_flash(&session),
                appointments: Vec::new(),
                problem: Some("Log in with Zocdoc to see your appointments.".to_owned()),
            },
        );
    }
    let (appointments, problem, status) = match super::appointments(&state, &session).await {
        Ok(a) => (a, None, StatusCode::OK),
        Err(CareError::NotLoggedIn) => (
            Vec::new(),
            Some("Your Zocdoc login has ended. Log in again to see your appointments.".to_owned()),
            StatusCode::UNAUTHORIZED,
        ),
        Err(e) => {
            tracing::warn!(cause = %e, "appointments failed");
            (
                Vec::new(),
                Some("Your appointments are unavailable right now: Zocdoc could not be reached.".to_owned()),
                StatusCode::BAD_GATEWAY,
            )
        }
    };
    page(
        status,
        &AppointmentsPage {
            csrf,
            logged_in: super::is_logged_in(&session),
            flash: super::take_flash(&session),
            appointments,
            problem,
        },
    )
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(state: web::Data<AppState>, session: Session, form: web::Form<CsrfOnly>) -> HttpResponse {
    if let Err(e) = super::verify_csrf(&session, &form.csrf) {
        return error_page(&session, &e);
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
