//! yAppointment: authorization code + PKCE (S256 only) for a confidential client.
//!
//! Its dialect, as `vendor-docs/yappointment.txt` describes it and the sandbox enforces it:
//! token and revoke requests are JSON bodies carrying `client_id` + `client_secret` (no HTTP
//! Basic, no forms); refresh rotates the refresh token and a rotated-out one presented
//! again revokes the grant; identity is `POST /api/v1/me`; bookings are
//! `POST /api/v1/bookings` with a JSON filter.

mod api;
mod authorize;
mod token;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::http::json_error;
use super::tokens::TokenProfile;

pub(crate) const VENDOR: &str = "yappointment";

pub(crate) const PROFILE: TokenProfile = TokenProfile {
    code_prefix: "yapp_ac_",
    access_prefix: "yapp_at_",
    refresh_prefix: "yapp_rt_",
    code_lifetime: 60,
    access_lifetime: 3600,
    pending_lifetime: 600,
};

const TITLE: &str = "yAppointment (sandbox)";

/// Every scope yAppointment knows, with the words its consent screen uses.
const SCOPES: &[(&str, &str)] = &[
    ("bookings:read", "view customer bookings"),
    ("services:read", "view services and pricing"),
    ("calendars:read", "view availability and time slots"),
    ("customers:read", "view customer list"),
];

pub(crate) fn scope() -> actix_web::Scope {
    web::scope("/yappointment")
        .service(
            web::resource("/oauth/authorize")
                .route(web::get().to(authorize::authorize))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/oauth/consent")
                .route(web::post().to(authorize::consent))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/oauth/token")
                .route(web::post().to(token::token))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/oauth/revoke")
                .route(web::post().to(token::revoke))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/v1/me")
                .route(web::post().to(api::me))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/v1/bookings")
                .route(web::post().to(api::bookings))
                .default_service(web::to(method_not_allowed)),
        )
}

async fn method_not_allowed() -> HttpResponse {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}
