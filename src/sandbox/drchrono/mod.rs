//! DrChrono: authorization code for a confidential client (Django OAuth Toolkit style).
//!
//! Its dialect, as `vendor-docs/drchrono.txt` describes it and the sandbox enforces it:
//! `GET /o/authorize/` and `POST /o/token/` (trailing slashes); token and revoke requests are
//! `application/x-www-form-urlencoded` with `client_id` + `client_secret` in the body (no
//! HTTP Basic, no JSON); a long scope list; PKCE optional, S256 only when used; access tokens
//! last 48 hours; refresh rotates the refresh token (the old one is dead); 401 for a dead
//! token, 403 for a missing scope.

mod api;
mod authorize;
mod token;

use actix_web::web;

use super::authorize::Issuer;
use super::http::method_not_allowed;
use super::tokens::{Rotation, TokenProfile};

pub(crate) const VENDOR: &str = "drchrono";

/// 48-hour access tokens; refresh tokens rotate, without grant-wide reuse detection.
pub(crate) const PROFILE: TokenProfile = TokenProfile {
    access_lifetime: 48 * 3600,
    rotation: Rotation::Rotate,
    ..TokenProfile::new("drc_ac_", "drc_at_", "drc_rt_")
};

const ISSUER: Issuer = Issuer { vendor: VENDOR, title: "DrChrono (sandbox)", name: "DrChrono" };

/// The practice of the sandbox's DrChrono user.
const PRACTICE_NAME: &str = "Rivera Family Practice";

/// What the consent page says each scope allows.
fn describe(scope: &str) -> &'static str {
    match scope {
        "labs:read" => "view lab orders and results",
        "labs:write" => "create and update lab orders and results",
        "messages:read" => "read messages",
        "messages:write" => "send messages",
        "patients:read" => "view patients",
        "patients:write" => "create and update patients",
        "patients:summary:read" => "view patient summaries",
        "patients:summary:write" => "update patient summaries",
        "settings:read" => "view practice settings",
        "settings:write" => "change practice settings",
        "tasks:read" => "view tasks",
        "tasks:write" => "create and update tasks",
        "user:read" => "view your user profile",
        "user:write" => "update your user profile",
        "billing:patient-payment:read" => "view patient payments",
        "billing:patient-payment:write" => "record patient payments",
        "billing:read" => "view billing",
        "billing:write" => "update billing",
        "calendar:read" => "view the calendar and appointments",
        "calendar:write" => "book and change appointments",
        "clinical:read" => "view clinical notes",
        "clinical:write" => "write clinical notes",
        _ => "",
    }
}

pub(crate) fn scope() -> actix_web::Scope {
    web::scope("/drchrono")
        .service(
            web::resource("/o/authorize/")
                .route(web::get().to(authorize::authorize))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/o/consent/")
                .route(web::post().to(authorize::consent))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/o/token/").route(web::post().to(token::token)).default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/o/revoke_token/")
                .route(web::post().to(token::revoke))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/users/current")
                .route(web::get().to(api::current_user))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/appointments")
                .route(web::get().to(api::appointments))
                .default_service(web::to(method_not_allowed)),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::DRCHRONO_SCOPES;

    #[test]
    fn every_scope_has_words() {
        for scope in DRCHRONO_SCOPES {
            assert!(!describe(scope).is_empty(), "{scope}");
        }
        assert_eq!(DRCHRONO_SCOPES.len(), 22);
    }
}
