//! One error type for every handler: a short page for the person, the cause chain for the log.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not signed in")]
    NotSignedIn,
    #[error("the form's CSRF token is missing or wrong")]
    Csrf,
    #[error("not found")]
    NotFound,
    /// A GET (or any other method) on an address that only takes a form's POST.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The message is shown to the person; it must not carry a secret.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A vendor refused or failed; `message` is shown, `cause` is logged.
    #[error("{message}")]
    Vendor { message: String, cause: anyhow::Error },
    /// The database is busy or cannot be reached: nothing was done, and trying again may work.
    #[error("database unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The answer could not be completed after the handler ran (its session could not be
    /// saved): what the handler did may or may not have been kept.
    #[error("the request could not be completed")]
    Incomplete,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        if database_unavailable(&e) {
            Self::Unavailable(anyhow::Error::new(e).context("database"))
        } else {
            Self::Internal(anyhow::Error::new(e).context("database"))
        }
    }
}

/// Whether a database error is a passing one: no connection to be had, the connection lost, or
/// SQLite's write lock held elsewhere past the busy timeout.
pub fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // SQLite: SQLITE_BUSY and SQLITE_LOCKED, with their extended codes.
            Some(code) if code.parse::<i32>().is_ok_and(|c| c & 0xff == 5 || c & 0xff == 6) => true,
            // PostgreSQL: connection exceptions, a server shutting down or starting up.
            Some(code) => code.starts_with("08") || code == "57P01" || code == "57P03",
            None => false,
        },
        _ => false,
    }
}

impl From<crate::vault::VaultError> for AppError {
    fn from(e: crate::vault::VaultError) -> Self {
        Self::Internal(anyhow::Error::new(e).context("vault"))
    }
}

/// The page every error shows, in the site's layout. `signed_in` adds the admin's header (the
/// clinic, the email, Sign out); the patients' pages point back to the search instead.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub audience: Audience,
    pub signed_in: bool,
    pub clinic_name: &'a str,
    pub admin_email: &'a str,
    pub csrf: &'a str,
}

/// Whose pages an error page belongs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Admin,
    Patient,
}

impl ErrorPage<'_> {
    fn home(&self) -> &'static str {
        match self.audience {
            Audience::Admin => "/connections",
            Audience::Patient => "/care",
        }
    }

    fn brand(&self) -> &'static str {
        match self.audience {
            Audience::Admin => "clinic-connect",
            Audience::Patient => "Find care",
        }
    }

    /// Where the person goes next, and the link's words.
    fn back(&self) -> (&'static str, &'static str) {
        match (self.audience, self.signed_in) {
            (Audience::Patient, _) => ("/care", "Back to the search"),
            (Audience::Admin, true) => ("/connections", "Back to your connections"),
            (Audience::Admin, false) => ("/login", "Go to the sign-in page"),
        }
    }
}

impl AppError {
    /// The title and message of this error's page; `None` when it is not a page (a redirect).
    /// Nothing here is logged: `error_response` logs once.
    pub fn page(&self) -> Option<(&str, &str)> {
        Some(match self {
            AppError::NotSignedIn => return None,
            AppError::Csrf => (
                "Form expired",
                "This form has expired or did not come from this site. Go back, reload the page and try again.",
            ),
            AppError::NotFound => ("Page not found", "There is nothing at this address. Check the link, or start again from your connections."),
            AppError::MethodNotAllowed => (
                "Use the button on the page",
                "This address only takes a form sent from one of the site's pages, so nothing was done. Go back and use the page's button.",
            ),
            AppError::BadRequest(message) => ("Request refused", message),
            AppError::Vendor { message, .. } => ("The vendor did not cooperate", message),
            AppError::Unavailable(_) => (
                "Temporarily unavailable",
                "The database is busy or cannot be reached right now. Nothing was changed; please try again in a moment.",
            ),
            AppError::Incomplete => (
                "Temporarily unavailable",
                "This page could not be completed because its data cannot be reached right now. Reload the page in a \
                 moment to see where things stand.",
            ),
            AppError::Internal(_) => {
                ("Something went wrong", "Something went wrong on our side. Nothing was changed; please try again.")
            }
        })
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::NotSignedIn => StatusCode::SEE_OTHER,
            AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Vendor { .. } => StatusCode::BAD_GATEWAY,
            AppError::Unavailable(_) | AppError::Incomplete => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AppError::NotSignedIn => {
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, HeaderValue::from_static("/login")))
                    .finish();
            }
            AppError::Csrf => tracing::warn!("refused a form without a valid CSRF token"),
            AppError::NotFound => tracing::info!("no such page"),
            AppError::MethodNotAllowed => tracing::info!("refused a method the address does not take"),
            AppError::BadRequest(message) => tracing::warn!(%message, "bad request"),
            AppError::Vendor { cause, .. } => tracing::warn!(cause = format!("{cause:#}"), "vendor call failed"),
            AppError::Unavailable(cause) => tracing::error!(cause = format!("{cause:#}"), "database unavailable"),
            AppError::Incomplete => {}
            AppError::Internal(cause) => tracing::error!(cause = format!("{cause:#}"), "internal error"),
        }
        let (title, message) = self.page().unwrap_or(("Something went wrong", ""));
        let mut response = render_error(self.status_code(), title, message, Audience::Admin);
        if matches!(self, AppError::Unavailable(_) | AppError::Incomplete) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if matches!(self, AppError::MethodNotAllowed) {
            // Every address that refuses a method here is a form's POST-only target.
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

/// An error page for a person who is not signed in (the signed-in header is added on the way out
/// by `routes::error_pages`, which knows the session).
pub fn render_error(status: StatusCode, title: &str, message: &str, audience: Audience) -> HttpResponse {
    let page = ErrorPage { title, message, audience, signed_in: false, clinic_name: "", admin_email: "", csrf: "" };
    error_html(status, &page)
}

pub fn error_html(status: StatusCode, page: &ErrorPage<'_>) -> HttpResponse {
    let body = page.render().unwrap_or_else(|e| {
        tracing::error!(cause = %e, "the error page does not render");
        "Something went wrong.".to_owned()
    });
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}
