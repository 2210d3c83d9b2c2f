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
    /// The message is shown to the person; it must not carry a secret.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A vendor refused or failed; `message` is shown, `cause` is logged.
    #[error("{message}")]
    Vendor { message: String, cause: anyhow::Error },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("database"))
    }
}

impl From<crate::vault::VaultError> for AppError {
    fn from(e: crate::vault::VaultError) -> Self {
        Self::Internal(anyhow::Error::new(e).context("vault"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::NotSignedIn => StatusCode::SEE_OTHER,
            AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Vendor { .. } => StatusCode::BAD_GATEWAY,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, message): (&str, &str) = match self {
            AppError::NotSignedIn => {
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, HeaderValue::from_static("/login")))
                    .finish();
            }
            AppError::Csrf => {
                tracing::warn!("refused a form without a valid CSRF token");
                (
                    "Form expired",
                    "This form has expired or did not come from this site. Go back, reload the page and try again.",
                )
            }
            AppError::NotFound => ("Not found", "There is nothing here."),
            AppError::BadRequest(message) => {
                tracing::warn!(%message, "bad request");
                ("Request refused", message)
            }
            AppError::Vendor { message, cause } => {
                tracing::warn!(cause = format!("{cause:#}"), "vendor call failed");
                ("The vendor did not cooperate", message)
            }
            AppError::Internal(cause) => {
                tracing::error!(cause = format!("{cause:#}"), "internal error");
                ("Something went wrong", "Something went wrong on our side. Nothing was changed; please try again.")
            }
        };
        render_error(self.status_code(), title, message)
    }
}

pub fn render_error(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let body = ErrorPage { title, message }.render().unwrap_or_else(|_| "Something went wrong.".to_owned());
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}
