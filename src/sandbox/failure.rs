//! Failures that tests inject per (vendor, endpoint).

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::http;
use super::recorder::split_vendor;
use actix_web::http::header;

/// A class of vendor endpoint a failure can be injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// The token endpoint (`/oauth/token`, DrChrono `/o/token/`, Docplanner
    /// `/{domain}/oauth/v2/token`, Qmatic `/{region}/oauth2/token`).
    Token,
    /// The revocation endpoint (`/oauth/revoke`, DrChrono `/o/revoke_token/`).
    Revoke,
    /// The account-identity call (yAppointment `/api/v1/me`, DrChrono `/api/users/current`,
    /// Docplanner `/api/v3/integration/facilities`, Qmatic `/v1/branches`).
    Identity,
    /// Any other API call, e.g. bookings, appointments, providers, anonymous-user tokens.
    Api,
}

/// What an endpoint does instead of its job.
#[derive(Clone, Copy, Debug)]
pub enum Failure {
    /// Answer with this status and a JSON error body.
    Status(u16),
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Do not answer for 120 seconds, so the client times out.
    Hang,
    /// Answer 400 `{"error":"invalid_grant"}`.
    InvalidGrant,
    /// Answer 301 to the vendor's real `https://` URL of this endpoint, as Docplanner does
    /// with plain-HTTP requests (`https://www.{domain}/oauth/v2/token`). A client must not
    /// follow it.
    Redirect,
    /// Answer this status with this OAuth error code, e.g. `(401, "invalid_client")`,
    /// `(400, "unauthorized_client")` or a code no specification defines.
    Error(u16, &'static str),
    /// Answer 429 with this `Retry-After` value, sent as it is (seconds, a date, nonsense).
    RateLimited(&'static str),
    /// Answer this status with an HTML page and no OAuth error at all, as a web server does for
    /// a misrouted URL.
    Page(u16),
    /// Answer 200 with a well-formed token response padded past the app's body cap
    /// ([`crate::vendors::http::BODY_CAP`]), its length declared in `Content-Length`.
    Oversized,
    /// As [`Failure::Oversized`], streamed in chunks without a declared length.
    OversizedStream,
    /// Answer this status with this body as JSON, verbatim: e.g. a token response whose
    /// `expires_in` is absurd.
    Body(u16, &'static str),
}

impl Failure {
    /// A word for logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Failure::Status(_) => "status",
            Failure::Malformed => "malformed",
            Failure::Hang => "hang",
            Failure::InvalidGrant => "invalid_grant",
            Failure::Redirect => "redirect",
            Failure::Error(..) => "error",
            Failure::RateLimited(_) => "rate_limited",
            Failure::Page(_) => "page",
            Failure::Oversized | Failure::OversizedStream => "oversized",
            Failure::Body(..) => "body",
        }
    }
}

const HANG_FOR: Duration = Duration::from_secs(120);

struct Rule {
    failure: Failure,
    /// `None`: until cleared; `Some(n)`: n more calls.
    remaining: Option<u32>,
}

#[derive(Default)]
pub(crate) struct FailureTable {
    rules: HashMap<(String, Endpoint), Rule>,
}

impl FailureTable {
    pub(crate) fn set(&mut self, vendor: &str, endpoint: Endpoint, failure: Failure, times: Option<u32>) {
        let key = (vendor.to_owned(), endpoint);
        if times == Some(0) {
            self.rules.remove(&key);
        } else {
            self.rules.insert(key, Rule { failure, remaining: times });
        }
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// The failure for this call, if any, counting it against a limited rule.
    pub(crate) fn take(&mut self, vendor: &str, endpoint: Endpoint) -> Option<Failure> {
        let key = (vendor.to_owned(), endpoint);
        let rule = self.rules.get_mut(&key)?;
        let failure = rule.failure;
        if let Some(remaining) = rule.remaining.as_mut() {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                self.rules.remove(&key);
            }
        }
        Some(failure)
    }
}

/// The OAuth-style error word that fits an injected status on this endpoint.
fn error_word(status: StatusCode, endpoint: Endpoint) -> &'static str {
    match (status.as_u16(), endpoint) {
        (400, _) => "invalid_request",
        (401, Endpoint::Token | Endpoint::Revoke) => "invalid_client",
        (401, _) => "invalid_token",
        (403, _) => "insufficient_scope",
        (404, _) => "not_found",
        (429, _) => "rate_limited",
        (503, _) => "temporarily_unavailable",
        (500..=599, _) => "server_error",
        _ => "injected_failure",
    }
}

/// The real vendor's `https://` URL for a sandbox path (`/docplanner/{domain}/oauth/v2/token`
/// → `https://www.{domain}/oauth/v2/token`), where a [`Failure::Redirect`] points.
pub(crate) fn real_https_url(path: &str) -> String {
    let (vendor, rest) = split_vendor(path);
    let first_segment = |rest: &str| -> (String, String) {
        let trimmed = rest.trim_start_matches('/');
        match trimmed.split_once('/') {
            Some((first, tail)) => (first.to_owned(), format!("/{tail}")),
            None => (trimmed.to_owned(), "/".to_owned()),
        }
    };
    match vendor {
        "yappointment" => format!("https://api.yappointment.com{rest}"),
        "zocdoc" if rest.starts_with("/v1/") => format!("https://api-developer.zocdoc.com{rest}"),
        "zocdoc" => format!("https://auth.zocdoc.com{rest}"),
        "zocdoc-sandbox" if rest.starts_with("/v1/") => format!("https://api-developer-sandbox.zocdoc.com{rest}"),
        "zocdoc-sandbox" => format!("https://auth-api-developer-sandbox.zocdoc.com{rest}"),
        "drchrono" => format!("https://drchrono.com{rest}"),
        "docplanner" => {
            let (domain, tail) = first_segment(&rest);
            format!("https://www.{domain}{tail}")
        }
        "qmatic" => {
            let (region, tail) = first_segment(&rest);
            format!("https://api.{region}.qmatic.io{tail}")
        }
        _ => format!("https://sandbox.invalid{rest}"),
    }
}

/// The injected answer. `path` is the request's path, for [`Failure::Redirect`].
pub(crate) async fn respond(failure: Failure, endpoint: Endpoint, path: &str) -> HttpResponse {
    match failure {
        Failure::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = http::json_error(status, error_word(status, endpoint), "injected failure (sandbox)");
            if matches!(status.as_u16(), 429 | 503) {
                response.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from_static("1"),
                );
            }
            response
        }
        Failure::Malformed => HttpResponse::Ok().content_type("text/html; charset=utf-8").body("<html>oops"),
        Failure::Hang => {
            tokio::time::sleep(HANG_FOR).await;
            http::json_error(StatusCode::GATEWAY_TIMEOUT, "server_error", "injected hang (sandbox)")
        }
        Failure::InvalidGrant => {
            http::json_error(StatusCode::BAD_REQUEST, "invalid_grant", "injected failure (sandbox)")
        }
        Failure::Redirect => HttpResponse::MovedPermanently()
            .insert_header((header::LOCATION, real_https_url(path)))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Failure::Error(code, error) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            http::json_error(status, error, "injected failure (sandbox)")
        }
        Failure::RateLimited(retry_after) => {
            let mut response =
                http::json_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "injected failure (sandbox)");
            if let Ok(value) = header::HeaderValue::from_str(retry_after) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Failure::Page(code) => HttpResponse::build(StatusCode::from_u16(code).unwrap_or(StatusCode::NOT_FOUND))
            .content_type("text/html; charset=utf-8")
            .body("<html><body><h1>Not here</h1></body></html>"),
        Failure::Body(code, body) => HttpResponse::build(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
            .content_type("application/json")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Failure::Oversized => HttpResponse::Ok().content_type("application/json").body(oversized_body()),
        Failure::OversizedStream => {
            let body = web::Bytes::from(oversized_body());
            let chunks: Vec<Result<web::Bytes, std::convert::Infallible>> = (0..body.len())
                .step_by(OVERSIZED_CHUNK)
                .map(|at| Ok(body.slice(at..(at + OVERSIZED_CHUNK).min(body.len()))))
                .collect();
            HttpResponse::Ok().content_type("application/json").streaming(futures_util::stream::iter(chunks))
        }
    }
}

const OVERSIZED_CHUNK: usize = 16 * 1024;

/// A token response that would be accepted but for its size: one more kilobyte than the cap.
fn oversized_body() -> Vec<u8> {
    let pad = "x".repeat(crate::vendors::http::BODY_CAP + 1024);
    serde_json::json!({
        "access_token": "oversized_at_0",
        "token_type": "Bearer",
        "expires_in": 3600,
        "pad": pad,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn limited_failures_run_out() {
        let mut table = FailureTable::default();
        table.set("yappointment", Endpoint::Token, Failure::Status(503), Some(2));
        assert!(table.take("yappointment", Endpoint::Token).is_some());
        assert!(table.take("yappointment", Endpoint::Revoke).is_none());
        assert!(table.take("zocdoc", Endpoint::Token).is_none());
        assert!(table.take("yappointment", Endpoint::Token).is_some());
        assert!(table.take("yappointment", Endpoint::Token).is_none());
    }

    #[test]
    fn unlimited_failures_last_until_cleared() {
        let mut table = FailureTable::default();
        table.set("yappointment", Endpoint::Api, Failure::Malformed, None);
        for _ in 0..10 {
            assert!(table.take("yappointment", Endpoint::Api).is_some());
        }
        table.clear();
        assert!(table.take("yappointment", Endpoint::Api).is_none());
        table.set("yappointment", Endpoint::Api, Failure::Malformed, Some(0));
        assert!(table.take("yappointment", Endpoint::Api).is_none());
    }

    async fn answer(failure: Failure) -> (StatusCode, actix_web::http::header::HeaderMap, Vec<u8>) {
        let response = respond(failure, Endpoint::Token, "/yappointment/oauth/token").await;
        let (status, headers) = (response.status(), response.headers().clone());
        let body = actix_web::body::to_bytes(response.into_body()).await.unwrap_or_default();
        (status, headers, body.to_vec())
    }

    fn error_of(body: &[u8]) -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(body).unwrap()["error"].clone()
    }

    #[actix_web::test]
    async fn injected_refusals_say_what_the_test_asked_for() {
        for (status, code) in [(401, "invalid_client"), (400, "unauthorized_client"), (400, "made_up_code")] {
            let (got, _, body) = answer(Failure::Error(status, code)).await;
            assert_eq!(got.as_u16(), status);
            assert_eq!(error_of(&body), code);
        }
        let (status, _, body) = answer(Failure::Status(403)).await;
        assert_eq!((status.as_u16(), error_of(&body)), (403, "insufficient_scope".into()));
        let (status, headers, body) = answer(Failure::Page(404)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(headers.get("content-type").unwrap().to_str().unwrap().starts_with("text/html"));
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
        let (status, _, body) = answer(Failure::Body(200, r#"{"expires_in":-1}"#)).await;
        assert_eq!((status, body.as_slice()), (StatusCode::OK, &br#"{"expires_in":-1}"#[..]));
        let (status, headers, body) = answer(Failure::RateLimited("120")).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers.get("retry-after").unwrap(), "120");
        assert_eq!(error_of(&body), "rate_limited");
    }

    #[actix_web::test]
    async fn oversized_answers_pass_the_cap_and_are_otherwise_good() {
        for failure in [Failure::Oversized, Failure::OversizedStream] {
            let (status, _, body) = answer(failure).await;
            assert_eq!(status, StatusCode::OK);
            assert!(body.len() > crate::vendors::http::BODY_CAP, "{}", body.len());
            let parsed = crate::vendors::http::parse_token_response(&body).unwrap();
            assert_eq!(parsed.expires_in, Some(3600));
        }
    }

    #[test]
    fn redirects_point_at_the_real_https_hosts() {
        assert_eq!(
            real_https_url("/docplanner/doctoralia.es/oauth/v2/token"),
            "https://www.doctoralia.es/oauth/v2/token"
        );
        assert_eq!(real_https_url("/qmatic/eu-west-1/oauth2/token"), "https://api.eu-west-1.qmatic.io/oauth2/token");
        assert_eq!(real_https_url("/zocdoc/oauth/token"), "https://auth.zocdoc.com/oauth/token");
        assert_eq!(
            real_https_url("/zocdoc-sandbox/v1/providers"),
            "https://api-developer-sandbox.zocdoc.com/v1/providers"
        );
        assert_eq!(real_https_url("/drchrono/o/token/"), "https://drchrono.com/o/token/");
        assert_eq!(real_https_url("/yappointment/oauth/token"), "https://api.yappointment.com/oauth/token");
        assert!(real_https_url("/elsewhere").starts_with("https://"));
    }
}
