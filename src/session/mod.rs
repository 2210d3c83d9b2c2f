//! What an admin's session holds, and the CSRF check every form goes through.

pub mod csrf_cookie;
pub mod devices;
pub mod store;

use actix_session::Session;

use crate::errors::AppError;
use crate::notice::Notice;
use crate::vault::{constant_time_eq, random_token};

pub(crate) const ADMIN_ID: &str = "admin_id";
const CSRF: &str = "csrf";
pub(crate) const BINDING: &str = "binding";
/// What the admin signed in from ("Firefox on Windows": `device::describe`), for their list of
/// sessions; the state is sealed at rest, and the User-Agent itself is never kept.
pub(crate) const DEVICE: &str = "device";
const FLASH: &str = "flash";
const NOTICE: &str = "notice";

pub const IDLE_TTL_SECONDS: i64 = 30 * 60;
pub const ABSOLUTE_TTL_SECONDS: i64 = 12 * 60 * 60;
/// Patients follow Zocdoc's login-session limits: 30 minutes idle, one day at most.
pub const PATIENT_IDLE_TTL_SECONDS: i64 = 30 * 60;
pub const PATIENT_ABSOLUTE_TTL_SECONDS: i64 = 24 * 60 * 60;
pub const ADMIN_KIND: &str = "admin";
pub const PATIENT_KIND: &str = "patient";

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(anyhow::anyhow!("session: {e}"))
}

/// The CSRF token of this session, created on first use.
pub fn csrf_token(session: &Session) -> Result<String, AppError> {
    if let Some(token) = session.get::<String>(CSRF).map_err(internal)? {
        return Ok(token);
    }
    let token = random_token(32).map_err(internal)?;
    session.insert(CSRF, &token).map_err(internal)?;
    Ok(token)
}

/// Whether this session has a CSRF token of its own (forms shown before it existed carry the
/// signed cookie's instead: see `csrf_cookie`).
pub fn has_csrf_token(session: &Session) -> bool {
    session.contains_key(CSRF)
}

/// A new CSRF token for this session, replacing any earlier one (at sign-in).
pub fn rotate_csrf_token(session: &Session) -> Result<String, AppError> {
    let token = random_token(32).map_err(internal)?;
    session.insert(CSRF, &token).map_err(internal)?;
    Ok(token)
}

/// Refuses a form whose CSRF token is missing or not this session's.
pub fn verify_csrf(session: &Session, submitted: &str) -> Result<(), AppError> {
    let expected = session.get::<String>(CSRF).map_err(internal)?.ok_or(AppError::Csrf)?;
    if constant_time_eq(expected.as_bytes(), submitted.as_bytes()) {
        Ok(())
    } else {
        Err(AppError::Csrf)
    }
}

/// Signs an admin in: a new session id, a new CSRF token, a new binding for pending flows, and
/// the device it was done from (a short description).
pub fn sign_in(session: &Session, admin_id: i64, device: &str) -> Result<(), AppError> {
    session.renew();
    session.clear();
    session.insert(ADMIN_ID, admin_id).map_err(internal)?;
    session.insert(DEVICE, device).map_err(internal)?;
    rotate_csrf_token(session)?;
    session.insert(BINDING, random_token(32).map_err(internal)?).map_err(internal)?;
    Ok(())
}

pub fn admin_id(session: &Session) -> Option<i64> {
    // A value that does not parse is treated as no sign-in at all.
    session.get::<i64>(ADMIN_ID).ok().flatten()
}

/// The random value that ties pending authorization flows to this session.
pub fn binding(session: &Session) -> Result<String, AppError> {
    session.get::<String>(BINDING).map_err(internal)?.ok_or(AppError::NotSignedIn)
}

/// A plain message for the next page (the patients' pages); admin pages use `notify`.
pub fn set_flash(session: &Session, message: &str) -> Result<(), AppError> {
    session.insert(FLASH, message).map_err(internal)
}

pub fn take_flash(session: &Session) -> Option<String> {
    // `remove` marks the session changed even when the key is absent; check first so that an
    // ordinary page view costs no session write.
    if !session.contains_key(FLASH) {
        return None;
    }
    session.remove_as::<String>(FLASH).and_then(Result::ok)
}

/// A message, with its kind, for the next page this session shows.
pub fn notify(session: &Session, notice: Notice) -> Result<(), AppError> {
    session.insert(NOTICE, notice).map_err(internal)
}

pub fn take_notice(session: &Session) -> Option<Notice> {
    // As in `take_flash`: no session write when there is nothing to take.
    if !session.contains_key(NOTICE) {
        return None;
    }
    session.remove_as::<Notice>(NOTICE).and_then(Result::ok)
}
