//! Zocdoc, in two environments: `/zocdoc` simulates production and `/zocdoc-sandbox`
//! Zocdoc's sandbox environment. Each has its own credentials, audiences and tokens;
//! credentials of one are refused at the other.
//!
//! Its dialect, as `vendor-docs/zocdoc.txt` describes it and the sandbox enforces it:
//! - `GET /authorize`: public SPA client, authorization code + PKCE (S256 only), `audience`
//!   required (`DeveloperApiPatient` / `DeveloperApiPatient-Sandbox`), optional
//!   `anonymous_token` (linked to the user who signs in) and `login_hint`; errors go back to
//!   the redirect URI as `error` + `error_description` + `state`.
//! - `POST /oauth/token`: JSON bodies only, no HTTP Basic. Client credentials carry the
//!   backend `client_id` + `client_secret` + the API `audience`; the code exchange and
//!   refresh carry the SPA `client_id` and no secret. A refresh token only with
//!   `offline_access`; it is not rotated, and dies after 15 days unused or 30 days in all.
//! - `POST /v1/token/anonymous-user` with the backend bearer token and
//!   `{"app_client_id": <SPA client id>}`.
//! - `GET /v1/providers` and `GET /v1/providers/{provider_id}` (any token of the environment).
//! - Scheduling (availability, booking, appointments, cancellation): see `booking.rs`.

mod api;
mod authorize;
pub(crate) mod booking;
mod catalogue;
mod token;

use std::sync::Mutex;

use actix_web::{web, HttpRequest};

use super::authorize::Issuer;
use super::http::method_not_allowed;
use super::tokens::{GrantKind, OAuthStore, RefreshIssue, Rotation, TokenProfile};
use super::{
    lock, Shared, ZOCDOC_API_AUDIENCE, ZOCDOC_BACKEND_CLIENT_ID, ZOCDOC_BACKEND_CLIENT_SECRET,
    ZOCDOC_SANDBOX_API_AUDIENCE, ZOCDOC_SANDBOX_BACKEND_CLIENT_ID, ZOCDOC_SANDBOX_BACKEND_CLIENT_SECRET,
    ZOCDOC_SANDBOX_SPA_CLIENT_ID, ZOCDOC_SANDBOX_USER_AUDIENCE, ZOCDOC_SPA_CLIENT_ID, ZOCDOC_USER_AUDIENCE,
};

const DAY: i64 = 24 * 3600;

const OFFLINE_ACCESS: &str = "offline_access";

/// Both environments' token rules.
pub(crate) const PROFILE: TokenProfile = TokenProfile {
    refresh_issue: RefreshIssue::WithScope(OFFLINE_ACCESS),
    rotation: Rotation::Keep,
    refresh_idle_lifetime: Some(15 * DAY),
    refresh_max_lifetime: Some(30 * DAY),
    ..TokenProfile::new("zd_ac_", "zd_at_", "zd_rt_")
};

/// Access tokens of the backend (client-credentials) client.
const CLIENT_ACCESS_PREFIX: &str = "zd_cc_";
/// Anonymous-user tokens.
const ANONYMOUS_PREFIX: &str = "zd_anon_";

/// The scopes the SPA client may ask for, with the words the consent page uses.
const SCOPES: &[(&str, &str)] = &[
    ("external.appointment.read", "See your Zocdoc appointments"),
    ("external.appointment.write", "Book, reschedule and cancel appointments for you"),
    (OFFLINE_ACCESS, "Allow offline access"),
];

/// One simulated Zocdoc environment.
pub(crate) struct Env {
    /// The recorder's vendor name (the first path segment).
    pub(crate) vendor: &'static str,
    pub(crate) prefix: &'static str,
    /// Shown on the sign-in page.
    name: &'static str,
    spa_client_id: &'static str,
    backend_client_id: &'static str,
    backend_client_secret: &'static str,
    user_audience: &'static str,
    api_audience: &'static str,
}

pub(crate) const PRODUCTION: Env = Env {
    vendor: "zocdoc",
    prefix: "/zocdoc",
    name: "Production",
    spa_client_id: ZOCDOC_SPA_CLIENT_ID,
    backend_client_id: ZOCDOC_BACKEND_CLIENT_ID,
    backend_client_secret: ZOCDOC_BACKEND_CLIENT_SECRET,
    user_audience: ZOCDOC_USER_AUDIENCE,
    api_audience: ZOCDOC_API_AUDIENCE,
};

pub(crate) const SANDBOX: Env = Env {
    vendor: "zocdoc-sandbox",
    prefix: "/zocdoc-sandbox",
    name: "Sandbox environment",
    spa_client_id: ZOCDOC_SANDBOX_SPA_CLIENT_ID,
    backend_client_id: ZOCDOC_SANDBOX_BACKEND_CLIENT_ID,
    backend_client_secret: ZOCDOC_SANDBOX_BACKEND_CLIENT_SECRET,
    user_audience: ZOCDOC_SANDBOX_USER_AUDIENCE,
    api_audience: ZOCDOC_SANDBOX_API_AUDIENCE,
};

impl Env {
    fn store<'s>(&self, shared: &'s Shared) -> &'s Mutex<OAuthStore> {
        if self.vendor == SANDBOX.vendor {
            &shared.zocdoc_sandbox
        } else {
            &shared.zocdoc
        }
    }

    fn issuer(&self) -> Issuer {
        Issuer { vendor: self.vendor, title: "Zocdoc (sandbox)", name: "Zocdoc" }
    }

    /// Whether `token` is a live anonymous-user token of this environment.
    fn anonymous_token_is_live(&self, shared: &Shared, token: &str) -> bool {
        let now = shared.clock.now();
        lock(self.store(shared)).authorize(token, now).is_some_and(|auth| auth.kind == GrantKind::Anonymous)
    }
}

pub(crate) fn scope(env: &'static Env) -> actix_web::Scope {
    web::scope(env.prefix)
        .service(
            web::resource("/authorize")
                .route(
                    web::get()
                        .to(move |req: HttpRequest, shared: web::Data<Shared>| authorize::authorize(env, req, shared)),
                )
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/consent")
                .route(web::post().to(move |req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>| {
                    authorize::consent(env, req, body, shared)
                }))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/oauth/token")
                .route(web::post().to(move |req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>| {
                    token::token(env, req, body, shared)
                }))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/v1/token/anonymous-user")
                .route(web::post().to(move |req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>| {
                    api::anonymous_user(env, req, body, shared)
                }))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/v1/providers")
                .route(
                    web::get().to(move |req: HttpRequest, shared: web::Data<Shared>| api::providers(env, req, shared)),
                )
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/v1/providers/{provider_id}")
                .route(web::get().to(move |req: HttpRequest, path: web::Path<String>, shared: web::Data<Shared>| {
                    api::provider(env, req, path, shared)
                }))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/v1/provider_locations/availability")
                .route(
                    web::get()
                        .to(move |req: HttpRequest, shared: web::Data<Shared>| booking::availability(env, req, shared)),
                )
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/v1/appointments")
                .route(
                    web::get()
                        .to(move |req: HttpRequest, shared: web::Data<Shared>| booking::appointments(env, req, shared)),
                )
                .route(web::post().to(move |req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>| {
                    booking::book(env, req, body, shared)
                }))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/v1/appointments/{appointment_id}/cancel")
                .route(web::post().to(move |req: HttpRequest, path: web::Path<String>, shared: web::Data<Shared>| {
                    booking::cancel(env, req, path, shared)
                }))
                .default_service(web::to(method_not_allowed)),
        )
}
