//! Patients: browse Zocdoc providers and their open times, choose one, log in with Zocdoc only
//! then (carrying this browser's anonymous session over), confirm the booking, see and cancel
//! their appointments. Every token stays in the patient's server-side session (sealed at rest),
//! never in the browser.
//!
//! Browsing costs nothing until the patient acts: without a session, searches use the app's
//! backend token and a shared, brief cache (`public`), and no session row exists. Pressing Book
//! or Log in starts the session, with this browser's own anonymous token.

pub mod booking;
pub mod booking_routes;
pub mod browse;
pub mod cache;
pub mod limit;
pub mod pages;
pub mod public;
pub mod return_to;
pub mod routes;
pub mod times;
pub mod zocdoc;

use std::future::Future;
use std::sync::Arc;

use actix_web::HttpRequest;

use actix_session::Session;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::clock::UnixTime;
use crate::db::flows::NewFlow;
use crate::oauth::{self, CallbackError, CallbackOutcome, CallbackQuery};
use crate::session::csrf_cookie::FormToken;
use crate::startup::AppState;
use crate::vault::{random_token, Binding};
use crate::vendors::http::{ClientCredentials, Endpoints, TokenSet, VendorError};
use crate::vendors::{Environment, Parameters, Vendor};
use return_to::ReturnTo;

/// The flows table's vendor name for patients' logins (apart from admins' Zocdoc connections).
pub const CARE_FLOW: &str = "care";
const PATIENT_SCOPES: [&str; 3] = ["external.appointment.read", "external.appointment.write", "offline_access"];

const ANON: &str = "anon";
const ANON_EXPIRES: &str = "anon_expires";
const USER_ACCESS: &str = "user_access";
const USER_REFRESH: &str = "user_refresh";
const USER_EXPIRES: &str = "user_expires";
const BINDING: &str = "binding";

#[derive(Debug, thiserror::Error)]
pub enum CareError {
    #[error("Zocdoc is not available here: {0}")]
    NotConfigured(&'static str),
    #[error("{0}")]
    Zocdoc(#[from] VendorError),
    #[error("the session could not be read or written")]
    Session,
    #[error("the form expired")]
    Csrf,
    #[error("login refused: {0}")]
    Callback(CallbackError),
    #[error("not logged in")]
    NotLoggedIn,
    #[error("too many searches from this address; retry in {0} s")]
    TooMany(i64),
    #[error("no such page")]
    NotFound,
    #[error("no such provider")]
    NoSuchProvider,
    #[error("the chosen time is not open")]
    SlotGone,
    #[error("the patient's Zocdoc login does not allow booking (no external.appointment.write)")]
    NoWriteScope,
    #[error("no booking choice in the session")]
    NoChoice,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for CareError {
    fn from(e: sqlx::Error) -> Self {
        CareError::Internal(anyhow::Error::new(e))
    }
}

impl From<crate::vault::VaultError> for CareError {
    fn from(e: crate::vault::VaultError) -> Self {
        CareError::Internal(anyhow::Error::new(e))
    }
}

fn get(session: &Session, key: &str) -> Option<String> {
    session.get::<String>(key).ok().flatten()
}

fn get_time(session: &Session, key: &str) -> Option<UnixTime> {
    session.get::<UnixTime>(key).ok().flatten()
}

fn put<T: serde::Serialize>(session: &Session, key: &str, value: T) -> Result<(), CareError> {
    session.insert(key, value).map_err(|_| CareError::Session)
}

/// Whether this browser has a patient session (it pressed Book or Log in, and it has not ended).
pub fn has_session(session: &Session) -> bool {
    crate::session::has_csrf_token(session)
}

/// The token a page's forms carry: the session's own once there is a session, else the signed
/// cookie's (so that showing a page creates no session).
pub fn form_token(state: &AppState, session: &Session, req: &HttpRequest) -> Result<FormToken, CareError> {
    if has_session(session) {
        let value = crate::session::csrf_token(session).map_err(|_| CareError::Session)?;
        return Ok(FormToken { value, set_cookie: None });
    }
    Ok(state.csrf_cookie.issue(req, state.clock.now())?)
}

/// A form's token checked against the session's, or before there is one, the signed cookie's.
pub fn verify_form(state: &AppState, session: &Session, req: &HttpRequest, submitted: &str) -> Result<(), CareError> {
    if has_session(session) {
        return crate::session::verify_csrf(session, submitted).map_err(|_| CareError::Csrf);
    }
    if state.csrf_cookie.verify(req, submitted, state.clock.now()) {
        Ok(())
    } else {
        Err(CareError::Csrf)
    }
}

/// The patient acts (Book, Log in): from here on the session exists, with its own CSRF token.
pub fn begin_session(session: &Session) -> Result<(), CareError> {
    if !has_session(session) {
        crate::session::rotate_csrf_token(session).map_err(|_| CareError::Session)?;
    }
    Ok(())
}

fn binding(session: &Session) -> Result<String, CareError> {
    if let Some(b) = get(session, BINDING) {
        return Ok(b);
    }
    let b = random_token(32)?;
    put(session, BINDING, &b)?;
    Ok(b)
}

pub fn is_logged_in(session: &Session) -> bool {
    session.contains_key(USER_ACCESS)
}

pub fn set_flash(session: &Session, message: &str) -> Result<(), CareError> {
    crate::session::set_flash(session, message).map_err(|_| CareError::Session)
}

pub use crate::session::take_flash;

struct Zocdoc<'a> {
    vendor: &'a Arc<Vendor>,
    env: &'a Environment,
    endpoints: Endpoints,
    spa_client_id: &'a str,
}

fn zocdoc(state: &AppState) -> Result<Zocdoc<'_>, CareError> {
    let vendor = state.vendors.get("zocdoc").ok_or(CareError::NotConfigured("no Zocdoc profile"))?;
    let env =
        vendor.profile.environment(&state.care_environment).ok_or(CareError::NotConfigured("no such environment"))?;
    let spa = vendor.registration(&env.name).ok_or(CareError::NotConfigured("no SPA registration"))?;
    let endpoints = Endpoints::resolve(&vendor.profile, env, &Parameters::new())?;
    Ok(Zocdoc { vendor, env, endpoints, spa_client_id: &spa.client_id })
}

/// This browser's anonymous token: fetched once per session with the app's cached backend token.
pub async fn anonymous_token(state: &AppState, session: &Session) -> Result<SecretString, CareError> {
    let now = state.clock.now();
    if let (Some(token), Some(expires)) = (get(session, ANON), get_time(session, ANON_EXPIRES)) {
        if now < expires - 60 {
            return Ok(SecretString::from(token));
        }
    }
    let z = zocdoc(state)?;
    let backend = state.backend_tokens.token(state, z.vendor, &z.env.name).await?;
    let issued = zocdoc::anonymous_token(&state.http, &z.endpoints.api_base, &backend, z.spa_client_id).await?;
    put(session, ANON, issued.access_token.expose_secret())?;
    put(session, ANON_EXPIRES, now.saturating_add(issued.expires_in.unwrap_or(1800)))?;
    tracing::info!("anonymous patient token issued");
    Ok(issued.access_token)
}

fn forget_anonymous(session: &Session) {
    session.remove(ANON);
    session.remove(ANON_EXPIRES);
}

fn store_user_tokens(session: &Session, tokens: &TokenSet, now: UnixTime) -> Result<(), CareError> {
    put(session, USER_ACCESS, tokens.access_token.expose_secret())?;
    if let Some(refresh) = &tokens.refresh_token {
        put(session, USER_REFRESH, refresh.expose_secret())?;
    }
    put(session, USER_EXPIRES, now.saturating_add(tokens.expires_in.unwrap_or(3600)))
}

/// Drops the patient's Zocdoc tokens (the session lives on, anonymous again).
pub fn forget_user(session: &Session) {
    for key in [USER_ACCESS, USER_REFRESH, USER_EXPIRES] {
        session.remove(key);
    }
}

/// The patient's access token, refreshed with their refresh token when it nears expiry.
pub async fn user_token(state: &AppState, session: &Session, force: bool) -> Result<SecretString, CareError> {
    let access = get(session, USER_ACCESS).ok_or(CareError::NotLoggedIn)?;
    let now = state.clock.now();
    if !force && get_time(session, USER_EXPIRES).is_some_and(|exp| now < exp - 60) {
        return Ok(SecretString::from(access));
    }
    let Some(refresh) = get(session, USER_REFRESH) else {
        forget_user(session);
        return Err(CareError::NotLoggedIn);
    };
    let z = zocdoc(state)?;
    let client = ClientCredentials { client_id: z.spa_client_id, client_secret: None, auth: None };
    match state.http.refresh(&z.vendor.profile, &z.endpoints, &client, &SecretString::from(refresh)).await {
        Ok(tokens) => {
            store_user_tokens(session, &tokens, now)?;
            Ok(tokens.access_token)
        }
        Err(e) if !e.is_transient() => {
            tracing::info!(cause = %e, "patient refresh refused; logged out of Zocdoc");
            forget_user(session);
            Err(CareError::NotLoggedIn)
        }
        Err(e) => Err(e.into()),
    }
}

/// A call with the patient's token: their user token once logged in, else this browser's
/// anonymous token. A token Zocdoc no longer accepts is replaced once.
pub async fn as_patient<T, F, Fut>(state: &AppState, session: &Session, call: F) -> Result<T, CareError>
where
    F: Fn(SecretString) -> Fut,
    Fut: Future<Output = Result<T, VendorError>>,
{
    for attempt in 0..2 {
        let logged_in = is_logged_in(session);
        let token = if logged_in {
            match user_token(state, session, attempt > 0).await {
                Ok(t) => t,
                Err(CareError::NotLoggedIn) => anonymous_token(state, session).await?,
                Err(e) => return Err(e),
            }
        } else {
            anonymous_token(state, session).await?
        };
        match call(token).await {
            Err(VendorError::Refused { status: 401, .. }) if attempt == 0 => {
                if !logged_in {
                    forget_anonymous(session);
                }
            }
            other => return Ok(other?),
        }
    }
    Err(CareError::Zocdoc(VendorError::Refused { status: 401, error: None, retry_after: None }))
}

/// A call that needs the logged-in patient (appointments, booking, cancelling). A refused token
/// is refreshed once; refused again, the patient is logged out of Zocdoc.
pub async fn as_user<T, F, Fut>(state: &AppState, session: &Session, call: F) -> Result<T, CareError>
where
    F: Fn(SecretString) -> Fut,
    Fut: Future<Output = Result<T, VendorError>>,
{
    for attempt in 0..2 {
        let token = user_token(state, session, attempt > 0).await?;
        match call(token).await {
            Err(VendorError::Refused { status: 401, .. }) if attempt == 0 => continue,
            other => return Ok(other?),
        }
    }
    forget_user(session);
    Err(CareError::NotLoggedIn)
}

/// A call for browsing without a session: the app's cached backend token (Zocdoc's resource
/// endpoints take it), counted in `/metrics`.
pub async fn as_app<T, F, Fut>(state: &AppState, call: F) -> Result<T, CareError>
where
    F: Fn(SecretString) -> Fut,
    Fut: Future<Output = Result<T, VendorError>>,
{
    let z = zocdoc(state)?;
    let token = state.backend_tokens.token(state, z.vendor, &z.env.name).await?;
    state.care.zocdoc_call();
    Ok(call(token).await?)
}

/// Zocdoc's API base for patients.
pub fn api_base(state: &AppState) -> Result<Url, CareError> {
    Ok(zocdoc(state)?.endpoints.api_base)
}

fn flow_binding(state_hash: &str) -> Binding {
    Binding::new("oauth_flows", state_hash, "verifier")
}

fn redirect_uri(public_url: &Url) -> Result<Url, CareError> {
    Ok(public_url.join("care/callback").map_err(anyhow::Error::new)?)
}

/// Starts the patient's Zocdoc login: PKCE on the SPA client, the documented audience and
/// scopes, this browser's anonymous token and an optional email hint.
pub async fn start_login(
    state: &AppState,
    session: &Session,
    email: Option<&str>,
    return_to: &ReturnTo,
) -> Result<Url, CareError> {
    begin_session(session)?;
    let z = zocdoc(state)?;
    let authorize = z.endpoints.authorize.clone().ok_or(CareError::NotConfigured("no authorize URL"))?;
    let mut extra = Vec::new();
    if let Some(audience) = &z.env.user_audience {
        extra.push(("audience".to_owned(), audience.clone()));
    }
    // Carry the anonymous session over; if Zocdoc cannot give one right now, log in without.
    match anonymous_token(state, session).await {
        Ok(anon) => extra.push(("anonymous_token".to_owned(), anon.expose_secret().to_owned())),
        Err(e) => tracing::warn!(cause = %e, "no anonymous token to carry over"),
    }
    if let Some(email) = email {
        extra.push(("login_hint".to_owned(), email.to_owned()));
    }
    let scopes: Vec<String> = PATIENT_SCOPES.iter().map(|s| (*s).to_owned()).collect();
    let now = state.clock.now();
    let redirect = redirect_uri(&state.public_url)?;
    let request =
        oauth::authorization_request(&z.vendor.profile, &authorize, z.spa_client_id, &redirect, &scopes, &extra, now)?;
    let state_hash = oauth::state_hash(&request.state);
    let verifier = state.vault.seal_str(&request.verifier, &flow_binding(&state_hash))?;
    state
        .db
        .insert_flow(&NewFlow {
            state_hash: &state_hash,
            session_binding: &binding(session)?,
            clinic_id: None,
            return_to: Some(return_to.as_str()),
            vendor: CARE_FLOW,
            environment: &z.env.name,
            verifier: &verifier,
            redirect_uri: redirect.as_str(),
            scopes: &scopes.join(" "),
            expires_at: request.expires_at,
        })
        .await?;
    tracing::info!("patient login started");
    Ok(request.url)
}

pub enum LoginResult {
    LoggedIn(ReturnTo),
    Denied(ReturnTo, String),
}

/// Completes the patient's login: the state once, the code once, the tokens into the session,
/// the anonymous token dropped, the session id renewed.
pub async fn complete_login(
    state: &AppState,
    session: &Session,
    query: CallbackQuery,
) -> Result<LoginResult, CareError> {
    let outcome = query.into_outcome().map_err(CareError::Callback)?;
    let presented = match &outcome {
        CallbackOutcome::Code { state, .. } | CallbackOutcome::Denied { state, .. } => state,
    };
    let state_hash = oauth::state_hash(presented);
    let Some(binding) = get(session, BINDING) else { return Err(CareError::Callback(CallbackError::UnknownState)) };
    let flow = state
        .db
        .take_flow(&state_hash, &binding, CARE_FLOW)
        .await?
        .ok_or(CareError::Callback(CallbackError::UnknownState))?;
    let now = state.clock.now();
    oauth::check_flow(flow.clinic_id, flow.expires_at, None, now).map_err(CareError::Callback)?;
    oauth::check_callback_issuer(&zocdoc(state)?.vendor.profile, &flow.environment, &outcome)
        .map_err(CareError::Callback)?;
    let return_to = flow.return_to.as_deref().and_then(ReturnTo::parse).unwrap_or_else(ReturnTo::home);
    let code = match outcome {
        CallbackOutcome::Denied { error, .. } => {
            tracing::info!(%error, "patient login denied at Zocdoc");
            let message = if error == "access_denied" {
                "You did not log in with Zocdoc. You can keep searching and log in when you are ready.".to_owned()
            } else {
                format!("Zocdoc could not log you in ({error}). You can keep searching.")
            };
            return Ok(LoginResult::Denied(return_to, message));
        }
        CallbackOutcome::Code { code, .. } => code,
    };
    let z = zocdoc(state)?;
    let verifier = state.vault.open_str(&flow.verifier, &flow_binding(&state_hash))?;
    let client = ClientCredentials { client_id: z.spa_client_id, client_secret: None, auth: None };
    let tokens = state
        .http
        .exchange_code(&z.vendor.profile, &z.endpoints, &client, &code, &verifier, &flow.redirect_uri)
        .await?;
    // A new session id and a new CSRF token at login, as for admins; the anonymous token has
    // done its job.
    session.renew();
    forget_anonymous(session);
    store_user_tokens(session, &tokens, now)?;
    put(session, BINDING, random_token(32)?)?;
    crate::session::rotate_csrf_token(session).map_err(|_| CareError::Session)?;
    tracing::info!("patient logged in with Zocdoc");
    Ok(LoginResult::LoggedIn(return_to))
}
