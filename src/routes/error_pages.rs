//! Error pages keep the signed-in header: an admin who meets a 404, a 405, a refused form or a
//! forged callback still sees their clinic and Sign out, not a page that looks signed out.
//!
//! `AppError` renders its page without knowing the request; this middleware, inside the admin
//! session, renders it again with the admin's header when someone is signed in.

use actix_session::SessionExt;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use askama::Template;

use crate::errors::{AppError, Audience, ErrorPage};
use crate::session;
use crate::startup::AppState;

pub async fn signed_in_header<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let session = req.get_session();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let response = next.call(req).await?;
    let page = response
        .response()
        .error()
        .and_then(|e| e.as_error::<AppError>())
        .and_then(AppError::page)
        .map(|(title, message)| (title.to_owned(), message.to_owned()));
    let (Some((title, message)), Some(state), Some(admin_id)) = (page, state, session::admin_id(&session)) else {
        return Ok(response.map_into_boxed_body());
    };
    let admin = match state.db.admin(admin_id).await {
        Ok(Some(admin)) => admin,
        Ok(None) => return Ok(response.map_into_boxed_body()),
        Err(e) => {
            tracing::warn!(cause = %e, "error page shown without the admin's header: the admin could not be read");
            return Ok(response.map_into_boxed_body());
        }
    };
    let csrf = match session::csrf_token(&session) {
        Ok(csrf) => csrf,
        Err(e) => {
            tracing::warn!(cause = %e, "error page shown without the admin's header: no CSRF token");
            return Ok(response.map_into_boxed_body());
        }
    };
    let page = ErrorPage {
        title: &title,
        message: &message,
        audience: Audience::Admin,
        signed_in: true,
        clinic_name: &admin.clinic_name,
        admin_email: &admin.email,
        csrf: &csrf,
    };
    match page.render() {
        // Same status and headers (Allow, Cache-Control…); only the body gains the header.
        Ok(body) => Ok(response.map_body(|_, _| BoxBody::new(body))),
        Err(e) => {
            tracing::error!(cause = %e, "the signed-in error page does not render");
            Ok(response.map_into_boxed_body())
        }
    }
}

/// Inside each session middleware: a request whose session could not be read (the store is down,
/// see `session::store::STORE_UNAVAILABLE`) gets a page that says so, and no handler runs.
pub async fn store_available<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.get_session().contains_key(crate::session::store::STORE_UNAVAILABLE) {
        let audience = if req.path().starts_with("/care") { Audience::Patient } else { Audience::Admin };
        let page = crate::errors::render_error(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "This page cannot be shown right now because its data cannot be reached. Nothing was changed; please try \
             again in a moment.",
            audience,
        );
        return Ok(req.into_response(page));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}
