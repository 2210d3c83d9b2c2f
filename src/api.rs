//! The backend API for the clinic's own systems: they use the vendor APIs through us and never
//! hold a token. Authenticated by service API keys (made by `clinic-connect apikey create` or on
//! the clinic admin's "API keys" page; see `api_keys`).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::client_addr::client_addr;
use crate::clock::format_utc;
use crate::startup::AppState;
use crate::tokens::TokenError;
use crate::vault::{lookup_hash, random_token};
use crate::vendors::http::{VendorError, WorkerClient};

/// Requests and answers larger than this are refused.
pub const PROXY_BODY_CAP: usize = 1024 * 1024;
const KEY_PREFIX: &str = "cck_";

/// A new key, shown once; only its hash is stored.
pub fn new_api_key() -> anyhow::Result<(String, String)> {
    let key = format!("{KEY_PREFIX}{}", random_token(32)?);
    let hash = lookup_hash(&key);
    Ok((key, hash))
}

fn json_error(status: StatusCode, error: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "error": error, "message": message }))
}

/// The API key a request presents (`Authorization: Bearer cck_…`), if it has the shape of one.
fn presented_key(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| k.trim().to_owned())
        .filter(|k| k.starts_with(KEY_PREFIX) && k.len() < 200)
}

/// An unknown (or revoked) key is worth a warning, but a client retrying in a loop must not
/// flood the log: one line per client address per minute, saying how many were held back.
fn warn_unknown_key(state: &AppState, client: IpAddr) {
    if let Some(held_back) = state.unknown_api_keys.allow(client, state.clock.now()) {
        tracing::warn!(%client, held_back, "API request with an unknown or revoked key");
    }
}

fn unavailable() -> HttpResponse {
    json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Try again.")
}

/// The clinic an API key belongs to.
pub struct ApiClient {
    pub clinic_id: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut response = json_error(self.status, self.code, &self.message);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn unauthorized() -> ApiError {
    ApiError { status: StatusCode::UNAUTHORIZED, code: "unauthorized", message: "A valid API key is required.".into() }
}

impl FromRequest for ApiClient {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let presented = presented_key(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let client = state.as_ref().map(|s| client_addr(req, &s.trusted_proxies));
        Box::pin(async move {
            let key = presented.ok_or_else(unauthorized)?;
            let state = state.ok_or_else(unauthorized)?;
            match state.db.api_key_holder(&lookup_hash(&key)).await {
                Ok(Some(holder)) => {
                    if let Err(e) = state.db.note_api_key_use(&holder, state.clock.now()).await {
                        tracing::warn!(cause = %e, "could not note an API key's use");
                    }
                    Ok(ApiClient { clinic_id: holder.clinic_id })
                }
                Ok(None) => {
                    if let Some(client) = client {
                        warn_unknown_key(&state, client);
                    }
                    Err(unauthorized())
                }
                Err(e) => {
                    tracing::error!(cause = %e, "API key lookup failed");
                    Err(ApiError {
                        status: StatusCode::SERVICE_UNAVAILABLE,
                        code: "unavailable",
                        message: "Try again.".into(),
                    })
                }
            }
        })
    }
}

#[derive(Serialize)]
struct ConnectionStatus {
    vendor: String,
    name: String,
    status: String,
    /// A live connection's trouble: `vendor_down` (refreshes failing, retried) or `app_refused`
    /// (the vendor refuses the app's registration; the current token is served while valid).
    trouble: Option<String>,
    environment: Option<String>,
    account: Option<String>,
    scopes: Vec<String>,
    expires_at: Option<String>,
}

/// `GET /api/v1/connections`: the status of each of the clinic's connections.
pub async fn connections(state: web::Data<AppState>, client: ApiClient) -> HttpResponse {
    let rows = match state.db.connections_of_clinic(client.clinic_id).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(cause = %e, "listing connections failed");
            return unavailable();
        }
    };
    let list: Vec<ConnectionStatus> = state
        .vendors
        .all()
        .iter()
        .map(|v| {
            let row = rows.iter().find(|r| r.vendor == v.profile.id);
            let live = row.filter(|r| r.status == crate::connections::STATUS_CONNECTED);
            ConnectionStatus {
                vendor: v.profile.id.clone(),
                name: v.profile.name.clone(),
                status: row.map(|r| r.status.clone()).unwrap_or_else(|| "disconnected".into()),
                trouble: live.and_then(|r| r.trouble.clone()),
                environment: live.map(|r| r.environment.clone()),
                account: live.and_then(|r| r.account_name.clone()),
                scopes: live.map(|r| r.scopes.split_whitespace().map(str::to_owned).collect()).unwrap_or_default(),
                expires_at: live.and_then(|r| r.expires_at).map(format_utc),
            }
        })
        .collect();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "connections": list }))
}

/// Headers from the caller that are forwarded; everything else (Authorization, Cookie,
/// hop-by-hop headers, Host…) stays behind.
const FORWARDED_REQUEST_HEADERS: [&str; 4] = ["content-type", "accept", "accept-language", "if-none-match"];

/// `/api/v1/connections/{vendor}/proxy/{path}`: forwards to the vendor's API with the
/// connection's bearer token; on a 401 refreshes once and retries once. The key and the
/// connection are read in one statement.
pub async fn proxy(
    state: web::Data<AppState>,
    http: web::Data<WorkerClient>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (vendor_id, tail) = path.into_inner();
    // Without a key nothing else is looked at; with one, the request's shape is checked before
    // any lookup.
    let Some(key) = presented_key(&req) else { return actix_web::ResponseError::error_response(&unauthorized()) };
    if !FORWARDED_METHODS.contains(req.method()) {
        tracing::warn!(method = %req.method().as_str().chars().take(16).collect::<String>(), "proxy refused a method");
        let mut response = json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Only GET, HEAD, POST, PUT, PATCH and DELETE are forwarded to a vendor.",
        );
        response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(ALLOWED_METHODS));
        return response;
    }
    if has_control_characters(req.uri().path()) || tail.chars().any(char::is_control) {
        tracing::warn!("proxy refused a path with control characters");
        return json_error(StatusCode::BAD_REQUEST, "bad_path", "The path has control characters.");
    }
    let (holder, row) = match state.db.api_key_and_connection(&lookup_hash(&key), &vendor_id).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            warn_unknown_key(&state, client_addr(&req, &state.trusted_proxies));
            return actix_web::ResponseError::error_response(&unauthorized());
        }
        Err(e) => {
            tracing::error!(cause = %e, "proxy lookup failed");
            return unavailable();
        }
    };
    if let Err(e) = state.db.note_api_key_use(&holder, state.clock.now()).await {
        tracing::warn!(cause = %e, "could not note an API key's use");
    }
    if body.len() > PROXY_BODY_CAP {
        return json_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "The request body is too large.");
    }
    let (Some(vendor), Some(row)) = (state.vendors.get(&vendor_id).cloned(), row) else {
        return json_error(StatusCode::NOT_FOUND, "not_found", "No such connection.");
    };
    if !safe_tail(&tail) {
        return json_error(StatusCode::BAD_REQUEST, "bad_path", "The path is not a vendor API path.");
    }
    let profile = &vendor.profile;
    let Some(env) = profile.environment(&row.environment) else {
        return json_error(StatusCode::NOT_FOUND, "not_found", "No such connection.");
    };
    let endpoints = match vendor.endpoints(&env.name, &row.parameters) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(cause = %e, "proxy endpoints");
            return json_error(StatusCode::BAD_GATEWAY, "vendor_unavailable", "The vendor cannot be reached.");
        }
    };
    let mut url = match endpoints.api_base.join(&tail) {
        Ok(u) => u,
        Err(_) => return json_error(StatusCode::BAD_REQUEST, "bad_path", "The path is not a vendor API path."),
    };
    // The vendor's own OAuth endpoints may live under the API host; they are not API calls.
    // Compared as a lenient server would read the path: any case, parameters, trailing slashes,
    // dot segments and percent-encoding make no difference.
    let asked = normalised_path(url.path());
    let oauth_endpoint = [Some(&endpoints.token), endpoints.revoke.as_ref(), endpoints.authorize.as_ref()]
        .into_iter()
        .flatten()
        .filter(|u| u.host_str() == url.host_str() && u.port_or_known_default() == url.port_or_known_default())
        .any(|u| normalised_path(u.path()) == asked);
    if oauth_endpoint {
        tracing::warn!(vendor = %vendor_id, "proxy refused a call to the vendor's OAuth endpoints");
        return json_error(StatusCode::BAD_REQUEST, "bad_path", "The path is not a vendor API path.");
    }
    url.set_query(req.uri().query());
    let method = req.method().clone();
    let mut retried = false;
    let connection_id = row.id;
    let mut token = match state.tokens.for_row(&state, row, false, crate::connections::API).await {
        Ok(t) => t,
        Err(e) => return token_error(&e, &profile.name),
    };
    loop {
        let mut request = http
            .0
            .request(
                reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap_or(reqwest::Method::GET),
                url.clone(),
            )
            .header(reqwest::header::AUTHORIZATION, format!("Bearer {}", token.expose_secret()));
        for name in FORWARDED_REQUEST_HEADERS {
            if let Some(value) = req.headers().get(name).and_then(|v| v.to_str().ok()) {
                request = request.header(name, value);
            }
        }
        for (name, value) in &endpoints.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if method != Method::GET && method != Method::HEAD {
            request = request.body(body.clone());
        }
        let answer = match state.http.timed(&profile.id, "api", request).await {
            Ok(a) => a,
            Err(e) => return vendor_error(&e, &profile.name),
        };
        if answer.status.as_u16() == 401 && !retried {
            retried = true;
            token = match state
                .tokens
                .access_token(&state, holder.clinic_id, &vendor_id, true, crate::connections::API)
                .await
            {
                Ok(t) => t,
                Err(e) => return token_error(&e, &profile.name),
            };
            continue;
        }
        if answer.status.as_u16() == 401 {
            // Refused again with a token just refreshed: the vendor may have dropped the grant
            // (an app uninstalled there). A health check finds out and marks the connection, in
            // the background: this answer does not wait for it.
            let state = state.clone();
            tokio::spawn(async move { crate::health::check_after_refusals(&state, connection_id).await });
        }
        state.metrics.proxied();
        let status = StatusCode::from_u16(answer.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(ct) = &answer.content_type {
            response.insert_header((header::CONTENT_TYPE, ct.as_str()));
        }
        if let Some(retry_after) = answer.retry_after {
            response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        return response.body(answer.body);
    }
}

/// The methods forwarded to a vendor's API; anything else (TRACE, CONNECT, OPTIONS, WebDAV…)
/// is answered 405 here.
const FORWARDED_METHODS: [Method; 6] =
    [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";

/// Control characters (a NUL included), raw or percent-encoded (even twice), in a request's
/// raw path.
fn has_control_characters(raw_path: &str) -> bool {
    fully_decoded(raw_path).iter().any(|b| b.is_ascii_control())
}

/// Percent-decoded until nothing changes (at most a few rounds), so a double encoding does not
/// hide what a server that decodes twice would see.
fn fully_decoded(s: &str) -> Vec<u8> {
    let mut decoded = s.as_bytes().to_vec();
    for _ in 0..4 {
        let next = percent_decode(&String::from_utf8_lossy(&decoded));
        if next == decoded {
            break;
        }
        decoded = next;
    }
    decoded
}

/// `%XX` sequences decoded; anything else kept as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// A path as the most lenient server would read it: percent-decoded (repeatedly, so a double
/// encoding does not hide a segment), lower-cased, `;parameters` dropped from each segment,
/// empty and `.` segments dropped, `..` resolved, no trailing slash.
fn normalised_path(path: &str) -> String {
    let decoded = String::from_utf8_lossy(&fully_decoded(path)).into_owned();
    let mut segments: Vec<String> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        let segment = segment.split(';').next().unwrap_or_default().trim().to_lowercase();
        match segment.as_str() {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    format!("/{}", segments.join("/"))
}

/// A relative API path: no scheme, no authority, no dot segments, no backslashes.
fn safe_tail(tail: &str) -> bool {
    !tail.is_empty()
        && tail.len() <= 1024
        && !tail.starts_with('/')
        && !tail.contains("//")
        && !tail.contains('\\')
        && !tail.contains(':')
        && !tail.contains('%')
        && tail.split('/').all(|seg| seg != ".." && seg != ".")
}

fn token_error(e: &TokenError, vendor: &str) -> HttpResponse {
    tracing::warn!(cause = %e, "proxy could not get a token");
    match e {
        TokenError::NotConnected => {
            json_error(StatusCode::NOT_FOUND, "not_connected", &format!("{vendor} is not connected."))
        }
        TokenError::ReconnectNeeded | TokenError::KeyMissing => json_error(
            StatusCode::CONFLICT,
            "reconnect_needed",
            &format!("The {vendor} connection must be reconnected by a clinic admin."),
        ),
        TokenError::Unavailable(_) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "vendor_unavailable",
            &format!("{vendor} is unavailable; try again later."),
        ),
        TokenError::AppRefused(_) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "vendor_refuses_app",
            &format!("{vendor} refuses this app's registration; the operator has been told. Try again later."),
        ),
        TokenError::Internal(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong."),
    }
}

fn vendor_error(e: &VendorError, vendor: &str) -> HttpResponse {
    tracing::warn!(cause = %e, "proxy call failed");
    match e {
        VendorError::TooLarge => json_error(StatusCode::BAD_GATEWAY, "too_large", "The vendor's answer is too large."),
        _ => json_error(StatusCode::BAD_GATEWAY, "vendor_unavailable", &format!("{vendor} could not be reached.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_relative_api_paths_are_proxied() {
        for ok in ["api/v1/me", "api/v1/bookings", "v1/branches"] {
            assert!(safe_tail(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc",
            "../oauth/token",
            "api/../../x",
            "//evil.example/x",
            "http://evil.example",
            "a\\\\b",
            "a/%2e%2e/b",
            "./x",
        ] {
            assert!(!safe_tail(bad), "{bad}");
        }
    }

    #[test]
    fn paths_are_compared_the_way_a_lenient_server_reads_them() {
        let token = normalised_path("/yappointment/oauth/token");
        assert_eq!(token, "/yappointment/oauth/token");
        for same in [
            "/yappointment/OAUTH/TOKEN",
            "/yappointment/oauth/token/",
            "/yappointment/oauth/token;x",
            "/yappointment/oauth;v=1/token;jsessionid=1/",
            "/yappointment/./oauth//token",
            "/yappointment/api/../oauth/token",
            "/yappointment/oauth%2Ftoken",
            "/yappointment/oauth/%74oken",
            "/yappointment/oauth/%2574oken",
            "/yappointment/%2e%2e/yappointment/oauth/token",
            "/yappointment/oauth\\token",
            "/yappointment/oauth/token%3Bx",
            "/yappointment/oauth/token%20",
        ] {
            assert_eq!(normalised_path(same), token, "{same}");
        }
        for other in ["/yappointment/oauth/tokens", "/yappointment/api/v1/me", "/yappointment/oauth/token/x"] {
            assert_ne!(normalised_path(other), token, "{other}");
        }
    }

    #[test]
    fn control_characters_are_found_raw_or_encoded() {
        for bad in ["/a%00b", "/a%0ab", "/a%0D", "/a%1f", "/a%7F", "/a\tb", "/%2500"] {
            assert!(has_control_characters(bad), "{bad}");
        }
        for ok in ["/api/v1/me", "/a%20b", "/a%2Fb", "/%e2%82%ac", "/a%zz"] {
            assert!(!has_control_characters(ok), "{ok}");
        }
    }
}
