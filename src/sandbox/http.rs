//! Small HTTP helpers shared by the simulated vendors.

use std::borrow::Cow;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use ring::digest;
use serde::Serialize;

/// A JSON response that is never cached (RFC 6749 §5.1 asks this of token responses).
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(value)
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// `{"error": ..., "error_description": ...}` with the given status.
pub(crate) fn json_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    json(
        status,
        &ErrorBody {
            error,
            error_description: description,
        },
    )
}

/// An error answered as `{"error": ..., "error_description": ...}`; small enough to pass
/// around in `Result`s, turned into a response at the end.
#[derive(Debug, Clone)]
pub(crate) struct JsonError {
    status: StatusCode,
    error: &'static str,
    description: Cow<'static, str>,
    bearer_challenge: bool,
}

impl JsonError {
    pub(crate) fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            bearer_challenge: false,
        }
    }

    pub(crate) fn bad_request(
        error: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, description)
    }

    /// 401 for a missing or dead bearer token, with its `WWW-Authenticate` (RFC 6750 §3).
    pub(crate) fn invalid_token() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_token",
            description: Cow::Borrowed("the access token is missing, expired or revoked"),
            bearer_challenge: true,
        }
    }

    pub(crate) fn response(&self) -> HttpResponse {
        let mut response = json_error(self.status, self.error, &self.description);
        if self.bearer_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        response
    }
}

impl From<JsonError> for HttpResponse {
    fn from(err: JsonError) -> Self {
        err.response()
    }
}

/// The media type of the request (no parameters), lower-cased.
fn media_type(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    Some(essence.to_ascii_lowercase())
}

pub(crate) fn is_json(req: &HttpRequest) -> bool {
    media_type(req).as_deref() == Some("application/json")
}

pub(crate) fn is_form(req: &HttpRequest) -> bool {
    media_type(req).as_deref() == Some("application/x-www-form-urlencoded")
}

/// The credentials part of an `Authorization` header with the given scheme.
fn authorization<'r>(req: &'r HttpRequest, scheme: &str) -> Option<&'r str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given, rest) = value.trim().split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// Whether the request carries `Authorization: Basic ...`.
pub(crate) fn has_basic_auth(req: &HttpRequest) -> bool {
    authorization(req, "basic").is_some()
        || req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("basic"))
}

/// The token of `Authorization: Bearer <token>`, if well formed.
pub(crate) fn bearer_token(req: &HttpRequest) -> Option<&str> {
    authorization(req, "bearer").filter(|t| !t.is_empty() && !t.contains(' '))
}

/// Compares two secrets without an early exit on the first differing byte. Both sides are
/// hashed first, so neither their contents nor their lengths leak through timing.
pub(crate) fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    let a = digest::digest(&digest::SHA256, a);
    let b = digest::digest(&digest::SHA256, b);
    let diff = a
        .as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// 303 See Other to `location`; never cached, never leaks a Referer.
pub(crate) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn compares_secrets() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"abcd"));
        assert!(secrets_equal(b"", b""));
    }

    #[test]
    fn reads_content_types_and_authorization() {
        let req = TestRequest::default()
            .insert_header(("content-type", "Application/JSON; charset=utf-8"))
            .insert_header(("authorization", "bearer  abc "))
            .to_http_request();
        assert!(is_json(&req));
        assert!(!is_form(&req));
        assert_eq!(bearer_token(&req), Some("abc"));
        assert!(!has_basic_auth(&req));

        let req = TestRequest::default()
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .insert_header(("authorization", "Basic Zm9vOmJhcg=="))
            .to_http_request();
        assert!(is_form(&req));
        assert!(!is_json(&req));
        assert!(has_basic_auth(&req));
        assert_eq!(bearer_token(&req), None);
    }
}
