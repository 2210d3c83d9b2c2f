//! Small HTTP helpers shared by the simulated vendors.

use std::borrow::Cow;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
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
    json(status, &ErrorBody { error, error_description: description })
}

/// An error answered as `{"error": ..., "error_description": ...}`; small enough to pass
/// around in `Result`s, turned into a response at the end.
#[derive(Debug, Clone)]
pub(crate) struct JsonError {
    status: StatusCode,
    error: &'static str,
    description: Cow<'static, str>,
    /// The `WWW-Authenticate` header to send, if any.
    challenge: Option<&'static str>,
}

impl JsonError {
    pub(crate) fn new(status: StatusCode, error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        Self { status, error, description: description.into(), challenge: None }
    }

    pub(crate) fn bad_request(error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, description)
    }

    /// 401 for a missing or dead bearer token, with its `WWW-Authenticate` (RFC 6750 §3).
    pub(crate) fn invalid_token() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_token",
            description: Cow::Borrowed("the access token is missing, expired or revoked"),
            challenge: Some("Bearer error=\"invalid_token\""),
        }
    }

    /// Adds a `WWW-Authenticate` header (RFC 6749 §5.2 asks for one on a 401 to a client
    /// that may use HTTP Basic).
    pub(crate) fn with_challenge(self, challenge: &'static str) -> Self {
        Self { challenge: Some(challenge), ..self }
    }

    pub(crate) fn response(&self) -> HttpResponse {
        let mut response = json_error(self.status, self.error, &self.description);
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
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
    let diff = a.as_ref().iter().zip(b.as_ref()).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The raw `client_id:client_secret` of `Authorization: Basic <base64>`: decoded, split at
/// the first `:`, and NOT url-decoded (the vendors that use this compare the raw strings, so
/// a client that form-encodes its credentials first, as RFC 6749 §2.3.1 asks, fails).
/// `None` when there is no Basic header or it does not decode to UTF-8 with a `:`.
pub(crate) fn raw_basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let encoded = authorization(req, "basic")?;
    let decoded = STANDARD.decode(encoded).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// A urlencoded request body in which no parameter may appear twice (RFC 6749 §3.2).
pub(crate) struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Parses a form body; `Err` (400 invalid_request) if it is not one or repeats a name.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, JsonError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| JsonError::bad_request("invalid_request", "the form body could not be read"))?;
        for (i, (name, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(JsonError::bad_request(
                    "invalid_request",
                    format!("the {name} parameter was given more than once"),
                ));
            }
        }
        Ok(Self { pairs })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub(crate) fn required(&self, name: &str) -> Result<&str, JsonError> {
        self.get(name).ok_or_else(|| JsonError::bad_request("invalid_request", format!("{name} is required")))
    }
}

/// A JSON object request body.
pub(crate) struct JsonBody {
    body: serde_json::Map<String, serde_json::Value>,
}

impl JsonBody {
    /// Parses the body as a JSON object (the caller checked the content type).
    pub(crate) fn parse(body: &[u8]) -> Result<Self, JsonError> {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(body)) => Ok(Self { body }),
            _ => Err(JsonError::bad_request("invalid_request", "request body must be a JSON object")),
        }
    }

    /// A string member; `Err` (400 invalid_request) if present but not a string.
    pub(crate) fn string(&self, name: &str) -> Result<Option<&str>, JsonError> {
        match self.body.get(name) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(JsonError::bad_request("invalid_request", format!("{name} must be a string"))),
        }
    }

    pub(crate) fn required(&self, name: &str) -> Result<&str, JsonError> {
        self.string(name)?.ok_or_else(|| JsonError::bad_request("invalid_request", format!("{name} is required")))
    }

    /// Whether the member is present at all (even as `null` or an empty string).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.body.contains_key(name)
    }
}

/// 401 `invalid_client` with a description.
pub(crate) fn invalid_client(description: &'static str) -> JsonError {
    JsonError::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
}

/// 500 when the random source failed.
pub(crate) fn random_failed() -> JsonError {
    tracing::error!("sandbox random source failed");
    JsonError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "random source failed")
}

/// The answer to a refused token request (no secret in the description or the log).
pub(crate) fn token_error(vendor: &'static str, err: super::tokens::TokenError) -> JsonError {
    match err {
        super::tokens::TokenError::InvalidGrant(why) => {
            tracing::info!(vendor, reason = why, "sandbox invalid_grant");
            JsonError::bad_request("invalid_grant", why)
        }
        super::tokens::TokenError::Random => random_failed(),
    }
}

/// Compares client credentials in constant time; both comparisons always run.
/// The body of a token request in the raw-Basic dialect (Docplanner, Qmatic): form-encoded,
/// and without client credentials in it.
pub(crate) fn basic_dialect_form(req: &HttpRequest, body: &[u8]) -> Result<Form, JsonError> {
    if !is_form(req) {
        return Err(JsonError::bad_request(
            "invalid_request",
            "request body must be application/x-www-form-urlencoded",
        ));
    }
    let form = Form::parse(body)?;
    if form.has("client_id") || form.has("client_secret") {
        return Err(JsonError::bad_request(
            "invalid_request",
            "use HTTP Basic for the client credentials, not the request body",
        ));
    }
    Ok(form)
}

/// Checks `Authorization: Basic base64(id:secret)` (not form-encoded) against the registered
/// client; `missing` says how to send it, `challenge` is the WWW-Authenticate value.
pub(crate) fn require_raw_basic(
    req: &HttpRequest,
    vendor: &'static str,
    expected_id: &str,
    expected_secret: &str,
    missing: &'static str,
    challenge: &'static str,
) -> Result<(), JsonError> {
    let Some((id, secret)) = raw_basic_credentials(req) else {
        tracing::info!(vendor, "sandbox token request without HTTP Basic");
        return Err(invalid_client(missing).with_challenge(challenge));
    };
    if !client_matches(&id, &secret, expected_id, expected_secret) {
        tracing::info!(vendor, "sandbox client authentication failed");
        return Err(invalid_client("client authentication failed").with_challenge(challenge));
    }
    Ok(())
}

pub(crate) fn client_matches(id: &str, secret: &str, expected_id: &str, expected_secret: &str) -> bool {
    let id_ok = secrets_equal(id.as_bytes(), expected_id.as_bytes());
    let secret_ok = secrets_equal(secret.as_bytes(), expected_secret.as_bytes());
    id_ok & secret_ok
}

/// 405 for a known path asked with the wrong method.
pub(crate) async fn method_not_allowed() -> HttpResponse {
    json_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not accept that method")
}

/// A Unix time as RFC 3339 in UTC (`2026-11-22T09:41:00Z`).
pub(crate) fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
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
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
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
        assert_eq!(raw_basic_credentials(&req), Some(("foo".to_owned(), "bar".to_owned())));
    }

    #[test]
    fn basic_credentials_are_raw_and_split_at_the_first_colon() {
        let basic = |value: &str| {
            let req = TestRequest::default()
                .insert_header(("authorization", format!("Basic {}", STANDARD.encode(value))))
                .to_http_request();
            raw_basic_credentials(&req)
        };
        assert_eq!(basic("id:se:cr%2Bet"), Some(("id".to_owned(), "se:cr%2Bet".to_owned())));
        assert_eq!(basic("id:"), Some(("id".to_owned(), String::new())));
        assert_eq!(basic("no-colon"), None);
        let req = TestRequest::default().insert_header(("authorization", "Basic !!!")).to_http_request();
        assert_eq!(raw_basic_credentials(&req), None);
    }

    #[test]
    fn forms_refuse_repeated_parameters() {
        let form = Form::parse(b"a=1&b=x+y").unwrap();
        assert_eq!(form.get("b"), Some("x y"));
        assert!(form.has("a") && !form.has("c"));
        assert!(form.required("c").is_err());
        assert!(Form::parse(b"a=1&a=2").is_err());
    }
}
