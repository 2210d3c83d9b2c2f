//! Thin handlers: parse the input, call a service, render a template.

mod account;
mod admin;
mod admins;
mod api_keys;
pub mod attention;
mod connections;
mod disconnect;
pub mod error_pages;
mod health;
mod invitation;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use crate::errors::{render_error, AppError, Audience};

/// What needs no session: the clinic systems' API (API keys), the static files and the operator's
/// probes. Outside the session middleware, so a call costs no session read, and the probes answer
/// even when the database that holds sessions does not.
pub fn configure_sessionless(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .app_data(web::PayloadConfig::new(crate::api::PROXY_BODY_CAP))
            .route("/connections", web::get().to(crate::api::connections))
            .route("/connections/{vendor}/proxy/{tail:.*}", web::to(crate::api::proxy)),
    )
    .route("/static/style.css", web::get().to(stylesheet))
    .route("/static/favicon.svg", web::get().to(favicon))
    // Browsers ask for this one by name before they read a page's `<link rel="icon">`.
    .route("/favicon.ico", web::get().to(|| async { see_other("/static/favicon.svg") }))
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(health::metrics));
}

/// The admins' pages, inside the admin session.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(|| async { see_other("/connections") }))
        .service(web::resource("/login").route(web::get().to(admin::login_page)).route(web::post().to(admin::login)))
        .service(post_only("/logout", web::post().to(admin::logout)))
        .route("/connections", web::get().to(connections::dashboard))
        .service(post_only("/connections/{vendor}/connect", web::post().to(connections::connect)))
        .service(post_only("/connections/{vendor}/disconnect", web::post().to(connections::disconnect)))
        .route("/connections/{vendor}/disconnect/confirm", web::get().to(disconnect::confirm))
        .service(post_only("/connections/{vendor}/refresh", web::post().to(connections::refresh)))
        .route("/connections/{vendor}/callback", web::get().to(connections::callback))
        .route("/connections/{vendor}", web::get().to(connections::detail))
        .service(
            web::resource("/api-keys").route(web::get().to(api_keys::list)).route(web::post().to(api_keys::create)),
        )
        .service(
            web::resource("/api-keys/{id}/revoke")
                .route(web::get().to(api_keys::confirm_revoke))
                .route(web::post().to(api_keys::revoke)),
        )
        .configure(admins::configure)
        .configure(account::configure)
        .configure(invitation::configure);
}

/// A state-changing route: any other method is 405 with `Allow: POST` and a page that says to
/// use the page's button, never an action.
pub fn post_only(path: &str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path).route(route).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, AppError> {
    // The patients' forms live under /care: their page points back to the search.
    if req.path().starts_with("/care/") {
        let error = AppError::MethodNotAllowed;
        tracing::info!("refused a method the address does not take");
        let (title, message) = error.page().unwrap_or_default();
        let mut response = render_error(error.status_code(), title, message, Audience::Patient);
        response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return Ok(response);
    }
    Err(AppError::MethodNotAllowed)
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

pub fn render<T: Template>(template: &T) -> Result<HttpResponse, AppError> {
    render_with(actix_web::http::StatusCode::OK, template)
}

pub fn render_with<T: Template>(status: actix_web::http::StatusCode, template: &T) -> Result<HttpResponse, AppError> {
    let body = template.render().map_err(|e| AppError::Internal(anyhow::anyhow!("template: {e}")))?;
    Ok(HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body))
}

/// The hidden field every form carries.
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// The one stylesheet, compiled in so the binary needs no files beside it.
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/style.css"))
}

/// The tab's icon, compiled in like the stylesheet.
async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(include_str!("../../static/favicon.svg"))
}
