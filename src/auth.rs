//! Admin sign-in: argon2id password hashes, and the extractor that loads the signed-in admin.

use std::future::Future;
use std::pin::Pin;

use actix_session::SessionExt;
use actix_web::{web, FromRequest, HttpRequest};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use secrecy::{ExposeSecret, SecretString};

use crate::db::admins::AdminRow;
use crate::db::connections::ConnectionRow;
use crate::errors::AppError;
use crate::session;
use crate::startup::AppState;

pub const MIN_PASSWORD_LEN: usize = 12;

pub fn hash_password(password: &SecretString) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// At most this many argon2id verifications at once (each takes ~19 MiB and a core for a while):
/// a flood of sign-ins queues instead of exhausting memory.
const CONCURRENT_VERIFICATIONS: usize = 2;

fn verifications() -> &'static tokio::sync::Semaphore {
    static SEMAPHORE: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SEMAPHORE.get_or_init(|| tokio::sync::Semaphore::new(CONCURRENT_VERIFICATIONS))
}

/// Verifies on a blocking thread: argon2id is deliberately slow.
pub async fn verify_password(password: SecretString, hash: String) -> bool {
    let Ok(_permit) = verifications().acquire().await else { return false };
    web::block(move || {
        PasswordHash::new(&hash)
            .map(|parsed| Argon2::default().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A hash of nothing anyone knows, verified when the email is unknown so that a wrong email
/// takes as long as a wrong password.
pub fn decoy_hash() -> String {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3XbU1y9zGu0lCqyAKnq0kqaPxXrzwdEZAqVSmO8/eFY".to_owned()
}

/// The signed-in admin, with their clinic's connections as they were when the request began;
/// a request without one is sent to `/login`. Both come from one statement
/// (`Db::admin_with_connections`), which also gives the page's attention banner what it shows
/// (`routes::attention`), so a page that uses them reads nothing else about them.
#[derive(Debug, Clone)]
pub struct CurrentAdmin(pub AdminRow, Vec<ConnectionRow>);

impl CurrentAdmin {
    /// The clinic's connections, at most one per vendor.
    pub fn connections(&self) -> &[ConnectionRow] {
        &self.1
    }

    /// The clinic's connection at this vendor, if it has one (of any status).
    pub fn connection(&self, vendor: &str) -> Option<&ConnectionRow> {
        self.1.iter().find(|c| c.vendor == vendor)
    }
}

impl FromRequest for CurrentAdmin {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let session = req.get_session();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::Internal(anyhow::anyhow!("app state missing")))?;
            let id = session::admin_id(&session).ok_or(AppError::NotSignedIn)?;
            match state.db.admin_with_connections(id).await? {
                Some((admin, connections)) => {
                    crate::routes::attention::known(&req, admin.id, &connections);
                    Ok(CurrentAdmin(admin, connections))
                }
                None => {
                    // The admin was removed: end the session rather than keep a dangling one.
                    session.purge();
                    Err(AppError::NotSignedIn)
                }
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let hash = hash_password(&SecretString::from("correct horse battery")).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(SecretString::from("correct horse battery"), hash.clone()).await);
        assert!(!verify_password(SecretString::from("wrong horse battery"), hash).await);
    }

    #[tokio::test]
    async fn decoy_hash_parses_and_matches_nothing_typed() {
        assert!(PasswordHash::new(&decoy_hash()).is_ok());
        assert!(!verify_password(SecretString::from(""), decoy_hash()).await);
    }
}
