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

use actix_web::web;

use super::authorize::Issuer;
use super::http::method_not_allowed;
use super::tokens::TokenProfile;

pub(crate) const VENDOR: &str = "yappointment";

/// 60 s codes, 1 h access tokens, a refresh token every time, rotated with reuse detection.
pub(crate) const PROFILE: TokenProfile = TokenProfile::new("yapp_ac_", "yapp_at_", "yapp_rt_");

const ISSUER: Issuer = Issuer { vendor: VENDOR, title: "yAppointment (sandbox)", name: "yAppointment" };

/// Every scope yAppointment knows, with the words its consent screen uses.
pub(crate) const SCOPES: &[(&str, &str)] = &[
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
            web::resource("/api/v1/me").route(web::post().to(api::me)).default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/v1/bookings")
                .route(web::post().to(api::bookings))
                .default_service(web::to(method_not_allowed)),
        )
}
