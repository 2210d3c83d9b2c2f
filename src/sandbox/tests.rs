//! End-to-end tests of the sandbox's HTTP surface (in-process service, plus one real bind).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use serde_json::{json, Value};

use super::*;
use crate::clock::ManualClock;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "http://127.0.0.1:8080/connections/yappointment/callback";
const STATE: &str = "st4te-Xq9ZpL2mVw8RkT3nB6yH1cJ0";

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn location(&self) -> url::Url {
        let raw = self.headers.get("location").unwrap().to_str().unwrap();
        url::Url::parse(raw).unwrap()
    }

    fn location_param(&self, name: &str) -> Option<String> {
        self.location().query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

macro_rules! send {
    ($app:expr, $req:expr) => {{
        let resp = test::call_service(&$app, $req.to_request()).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        assert!(headers.get("set-cookie").is_none(), "the sandbox sets no cookies");
        let body = test::read_body(resp).await;
        Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
    }};
}

/// Captures every log line written on this thread, at every level.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

thread_local! {
    /// Where this thread's log lines go while a test captures them.
    static CAPTURE: std::cell::RefCell<Option<LogBuffer>> = const { std::cell::RefCell::new(None) };
}

fn capturing() -> bool {
    CAPTURE.with(|c| c.borrow().is_some())
}

/// Writes to this thread's capture buffer, if any.
struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(logs) = c.borrow_mut().as_mut() {
                logs.write_all(buf)?;
            }
            Ok(buf.len())
        })
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One process-wide subscriber that writes each thread's lines to that thread's capture
/// buffer. Scoped (`set_default`) subscribers would race: tracing caches a callsite's
/// interest globally, so a callsite first hit by a test without a subscriber can stay
/// silent for a test that has one. Installed before any sandbox code runs (`setup`).
fn install_log_capture() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::Layer as _;
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| ThreadWriter)
            // Dynamic: asked on every event (a plain `filter_fn` is cached per callsite).
            .with_filter(tracing_subscriber::filter::dynamic_filter_fn(|_, _| capturing()));
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
    });
}

/// Captures every log line written on this thread, at every level, until the guard drops.
fn capture_logs() -> (LogBuffer, CaptureGuard) {
    install_log_capture();
    let logs = LogBuffer::default();
    CAPTURE.with(|c| *c.borrow_mut() = Some(logs.clone()));
    (logs, CaptureGuard)
}

struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = None);
    }
}

fn setup() -> (Arc<ManualClock>, SandboxControl, web::Data<Shared>) {
    install_log_capture();
    let clock = ManualClock::starting_now();
    let shared = Arc::new(Shared::new(clock.clone()));
    let control = SandboxControl { inner: Arc::clone(&shared) };
    (clock, control, web::Data::from(shared))
}

fn authorize_url(params: &[(&str, &str)]) -> String {
    let query = serde_urlencoded::to_string(params).unwrap();
    format!("/yappointment/oauth/authorize?{query}")
}

fn good_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("response_type", "code"),
        ("client_id", YAPPOINTMENT_CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("scope", "bookings:read services:read"),
        ("state", STATE),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
}

fn with(
    params: &[(&'static str, &'static str)],
    name: &'static str,
    value: Option<&'static str>,
) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<_> = params.iter().copied().filter(|(k, _)| *k != name).collect();
    if let Some(value) = value {
        out.push((name, value));
    }
    out
}

fn request_id(page: &str) -> String {
    let marker = r#"name="request" value=""#;
    let start = page.find(marker).unwrap() + marker.len();
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}

fn token_request(body: Value) -> TestRequest {
    TestRequest::post()
        .uri("/yappointment/oauth/token")
        .insert_header(("content-type", "application/json"))
        .set_payload(body.to_string())
}

fn code_body(code: &str, verifier: &str) -> Value {
    json!({
        "grant_type": "authorization_code",
        "code": code,
        "client_id": YAPPOINTMENT_CLIENT_ID,
        "client_secret": YAPPOINTMENT_CLIENT_SECRET,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    })
}

fn refresh_body(refresh_token: &str) -> Value {
    json!({
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": YAPPOINTMENT_CLIENT_ID,
        "client_secret": YAPPOINTMENT_CLIENT_SECRET,
    })
}

fn api(path: &str, token: &str) -> TestRequest {
    TestRequest::post()
        .uri(&format!("/yappointment/api/v1/{path}"))
        .insert_header(("authorization", format!("Bearer {token}")))
}

fn consent_form(request: &str, decision: &str) -> TestRequest {
    TestRequest::post()
        .uri("/yappointment/oauth/consent")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(format!("request={request}&decision={decision}"))
}

fn expected_credentials() -> Value {
    json!({
        "docplanner": {
            "client_id": "dp-sandbox-clinic",
            "client_secret": "dp_cs_Zn4+k/Q8=w7e",
            "domain": "znanylekarz.pl",
            "domains": DOCPLANNER_DOMAINS,
        },
        "qmatic": {
            "client_id": "qm-sandbox-clinic",
            "client_secret": "qm_cs_9Rt/e+2Lx=",
            "account_name": "Northside Health",
            "region": "eu-west-1",
            "regions": ["eu-west-1", "eu-central-1", "us-east-1", "ap-southeast-2"],
            "scopes": QMATIC_SCOPES,
        },
    })
}

/// Asserts that none of `secrets` appears in the captured logs.
fn assert_logs_hold_none(logs: &LogBuffer, secrets: &[&str]) {
    let text = logs.text();
    assert!(text.contains("sandbox request"), "the capture works: {text}");
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(!text.contains(secret), "{secret} leaked into the logs:\n{text}");
    }
}

mod docplanner;
mod drchrono;
mod qmatic;
mod zocdoc;

#[actix_web::test]
async fn full_flow_is_strict_and_logs_no_secrets() {
    let (logs, _guard) = capture_logs();
    let (clock, control, data) = setup();
    let app = test::init_service(app(data)).await;

    // Consent page.
    let page = send!(app, TestRequest::get().uri(&authorize_url(&good_params())));
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<title>yAppointment (sandbox)</title>"));
    assert!(page.body.contains("clinic-connect"));
    assert!(page.body.contains(YAPPOINTMENT_COMPANY_NAME));
    assert!(page.body.contains("view customer bookings"));
    assert!(page.body.contains("view services and pricing"));
    assert!(!page.body.contains("view customer list"));
    assert!(!page.body.contains(STATE));
    assert!(!page.body.contains(CHALLENGE));
    assert!(page.body.contains(r#"<form method="post" action="/yappointment/oauth/consent">"#));
    assert!(page.body.contains(r#"<button type="submit" name="decision" value="deny" id="deny">Deny</button>"#));
    let request = request_id(&page.body);

    // Approve: 303 to the redirect URI with code and state. The request is single use.
    let approved = send!(app, consent_form(&request, "approve"));
    assert_eq!(approved.status, StatusCode::SEE_OTHER);
    assert!(approved.location().as_str().starts_with(REDIRECT));
    assert_eq!(approved.location_param("state").as_deref(), Some(STATE));
    let code = approved.location_param("code").unwrap();
    assert!(code.starts_with("yapp_ac_"));
    let again = send!(app, consent_form(&request, "approve"));
    assert_eq!(again.status, StatusCode::BAD_REQUEST);

    // The token endpoint's dialect.
    let form = send!(
        app,
        TestRequest::post()
            .uri("/yappointment/oauth/token")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(format!("grant_type=authorization_code&code={code}"))
    );
    assert_eq!(form.status, StatusCode::BAD_REQUEST);
    assert_eq!(form.json(), json!({"error": "invalid_request", "error_description": "request body must be JSON"}));
    let basic = send!(
        app,
        token_request(code_body(&code, VERIFIER)).insert_header(("authorization", "Basic Y2xpZW50OnNlY3JldA=="))
    );
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        basic.json(),
        json!({"error": "invalid_client", "error_description": "client credentials must be sent in the JSON body"})
    );
    let mut wrong_secret = code_body(&code, VERIFIER);
    wrong_secret["client_secret"] = json!("yapp_cs_wrong");
    let wrong = send!(app, token_request(wrong_secret));
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json()["error"], "invalid_client");
    let bad_verifier = send!(app, token_request(code_body(&code, &"a".repeat(43))));
    assert_eq!(bad_verifier.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_verifier.json()["error"], "invalid_grant");
    let mut other_redirect = code_body(&code, VERIFIER);
    other_redirect["redirect_uri"] = json!("http://127.0.0.1:8080/other");
    assert_eq!(send!(app, token_request(other_redirect)).json()["error"], "invalid_grant");
    let mut other_grant = code_body(&code, VERIFIER);
    other_grant["grant_type"] = json!("password");
    assert_eq!(send!(app, token_request(other_grant)).json()["error"], "unsupported_grant_type");

    // The exchange.
    let tokens = send!(app, token_request(code_body(&code, VERIFIER)));
    assert_eq!(tokens.status, StatusCode::OK);
    assert_eq!(tokens.headers.get("cache-control").unwrap(), "no-store");
    let tokens = tokens.json();
    let keys: Vec<&String> = tokens.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("yapp_at_"));
    assert!(refresh.starts_with("yapp_rt_"));

    // The API.
    let me = send!(app, api("me", &access));
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        me.json(),
        json!({"id": YAPPOINTMENT_COMPANY_ID, "name": YAPPOINTMENT_COMPANY_NAME, "timezone": "Europe/Warsaw", "plan": "sandbox"})
    );
    let all = send!(app, api("bookings", &access));
    assert_eq!(all.json()["data"].as_array().unwrap().len(), 3);
    let confirmed = send!(
        app,
        api("bookings", &access)
            .insert_header(("content-type", "application/json"))
            .set_payload(r#"{"filter":{"status":"confirmed"}}"#)
    );
    let confirmed = confirmed.json();
    let confirmed = confirmed["data"].as_array().unwrap();
    assert!(!confirmed.is_empty());
    assert!(confirmed.iter().all(|b| b["status"] == "confirmed"));
    let not_json = send!(
        app,
        api("bookings", &access).insert_header(("content-type", "text/plain")).set_payload("status=confirmed")
    );
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    let anonymous = send!(app, TestRequest::post().uri("/yappointment/api/v1/me"));
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["error"], "invalid_token");
    let get_me = send!(app, TestRequest::get().uri("/yappointment/api/v1/me"));
    assert_eq!(get_me.status, StatusCode::METHOD_NOT_ALLOWED);

    // Refresh rotates; the old refresh token is dead and its reuse revokes the grant.
    let rotated = send!(app, token_request(refresh_body(&refresh)));
    assert_eq!(rotated.status, StatusCode::OK);
    let rotated = rotated.json();
    let access2 = rotated["access_token"].as_str().unwrap().to_owned();
    let refresh2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    assert_eq!(send!(app, api("me", &access2)).status, StatusCode::OK);
    assert_eq!(control.refresh_reuse_detections(), 0);
    let reused = send!(app, token_request(refresh_body(&refresh)));
    assert_eq!(reused.status, StatusCode::BAD_REQUEST);
    assert_eq!(reused.json()["error"], "invalid_grant");
    assert_eq!(control.refresh_reuse_detections(), 1);
    assert_eq!(send!(app, api("me", &access2)).status, StatusCode::UNAUTHORIZED);
    assert_eq!(send!(app, token_request(refresh_body(&refresh2))).json()["error"], "invalid_grant");

    // A replayed code fails, and what it produced is revoked.
    let page = send!(app, TestRequest::get().uri(&authorize_url(&good_params())));
    let code = send!(app, consent_form(&request_id(&page.body), "approve")).location_param("code").unwrap();
    let first = send!(app, token_request(code_body(&code, VERIFIER))).json();
    let access3 = first["access_token"].as_str().unwrap().to_owned();
    assert_eq!(send!(app, api("me", &access3)).status, StatusCode::OK);
    let replay = send!(app, token_request(code_body(&code, VERIFIER)));
    assert_eq!(replay.json()["error"], "invalid_grant");
    assert_eq!(send!(app, api("me", &access3)).status, StatusCode::UNAUTHORIZED);

    // Access tokens expire by the clock; codes after 60 s.
    let page = send!(app, TestRequest::get().uri(&authorize_url(&good_params())));
    let code = send!(app, consent_form(&request_id(&page.body), "approve")).location_param("code").unwrap();
    let fresh = send!(app, token_request(code_body(&code, VERIFIER))).json();
    let access4 = fresh["access_token"].as_str().unwrap().to_owned();
    let refresh4 = fresh["refresh_token"].as_str().unwrap().to_owned();
    clock.advance(3599);
    assert_eq!(send!(app, api("me", &access4)).status, StatusCode::OK);
    clock.advance(1);
    assert_eq!(send!(app, api("me", &access4)).status, StatusCode::UNAUTHORIZED);
    let page = send!(app, TestRequest::get().uri(&authorize_url(&good_params())));
    let code = send!(app, consent_form(&request_id(&page.body), "approve")).location_param("code").unwrap();
    clock.advance(60);
    assert_eq!(send!(app, token_request(code_body(&code, VERIFIER))).json()["error"], "invalid_grant");

    // Revocation kills the grant from its refresh token; unknown tokens are still 200.
    let renewed = send!(app, token_request(refresh_body(&refresh4))).json();
    let access5 = renewed["access_token"].as_str().unwrap().to_owned();
    let revoke = |token: &str| {
        TestRequest::post()
            .uri("/yappointment/oauth/revoke")
            .insert_header(("content-type", "application/json"))
            .set_payload(
            json!({"token": token, "client_id": YAPPOINTMENT_CLIENT_ID, "client_secret": YAPPOINTMENT_CLIENT_SECRET})
                .to_string(),
        )
    };
    let revoked = send!(app, revoke(renewed["refresh_token"].as_str().unwrap()));
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(revoked.json(), json!({}));
    assert_eq!(send!(app, api("me", &access5)).status, StatusCode::UNAUTHORIZED);
    assert_eq!(send!(app, revoke("yapp_at_unknown")).status, StatusCode::OK);
    let revoke_form = send!(
        app,
        TestRequest::post()
            .uri("/yappointment/oauth/revoke")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload("token=x")
    );
    assert_eq!(revoke_form.status, StatusCode::BAD_REQUEST);

    // Everything was recorded, including the refused requests.
    let token_calls = control.requests_to("yappointment", "/oauth/token");
    assert_eq!(token_calls.len(), 15);
    assert_eq!(token_calls[0].header("Content-Type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(token_calls[0].form()[0], ("grant_type".to_owned(), "authorization_code".to_owned()));
    assert_eq!(token_calls[1].json().unwrap()["client_id"], YAPPOINTMENT_CLIENT_ID);
    let authorize_calls = control.requests_to("yappointment", "/oauth/authorize");
    assert_eq!(authorize_calls.len(), 4);
    assert!(authorize_calls[0].query.contains("code_challenge_method=S256"));
    assert_eq!(authorize_calls[0].method, "GET");
    assert!(control.requests().len() > token_calls.len() + authorize_calls.len());

    // Nothing secret reached the logs.
    let logs = logs.text();
    assert!(logs.contains("sandbox request"), "the capture works: {logs}");
    for secret in ["yapp_", STATE, CHALLENGE, VERIFIER, &request] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs:\n{logs}");
    }
}

#[actix_web::test]
async fn authorize_refuses_per_rfc6749() {
    let (_clock, control, data) = setup();
    let app = test::init_service(app(data)).await;
    let good = good_params();

    // Client and redirect URI problems: a page, never a redirect.
    for params in [
        with(&good, "client_id", Some("someone-else")),
        with(&good, "client_id", None),
        with(&good, "redirect_uri", None),
        with(&good, "redirect_uri", Some("http://evil.example.com/cb")),
        with(&good, "redirect_uri", Some("https://app.example.com/cb#x")),
        with(&good, "redirect_uri", Some("/relative/cb")),
    ] {
        let reply = send!(app, TestRequest::get().uri(&authorize_url(&params)));
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{params:?}");
        assert!(reply.headers.get("location").is_none());
        assert!(reply.headers.get("content-type").unwrap().to_str().unwrap().starts_with("text/html"));
    }

    // Everything else: back to the client with error (+ description, + state).
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (with(&good, "response_type", Some("token")), "unsupported_response_type"),
        (with(&good, "code_challenge", None), "invalid_request"),
        (with(&good, "code_challenge_method", Some("plain")), "invalid_request"),
        (with(&good, "code_challenge_method", None), "invalid_request"),
        (with(&good, "scope", Some("bookings:write")), "invalid_scope"),
        (with(&good, "scope", Some("")), "invalid_scope"),
        (with(&good, "scope", None), "invalid_scope"),
    ];
    for (params, error) in cases {
        let reply = send!(app, TestRequest::get().uri(&authorize_url(&params)));
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{params:?}");
        assert!(reply.location().as_str().starts_with(REDIRECT));
        assert_eq!(reply.location_param("error").as_deref(), Some(error), "{params:?}");
        assert_eq!(reply.location_param("state").as_deref(), Some(STATE));
        assert!(reply.location_param("error_description").is_some());
    }
    let plain =
        send!(app, TestRequest::get().uri(&authorize_url(&with(&good, "code_challenge_method", Some("plain")))));
    assert!(plain.location_param("error_description").unwrap().contains("S256"));
    let stateless =
        send!(app, TestRequest::get().uri(&authorize_url(&with(&with(&good, "state", None), "scope", Some("x")))));
    assert_eq!(stateless.location_param("state"), None);

    // Deny.
    let page = send!(app, TestRequest::get().uri(&authorize_url(&good)));
    let denied = send!(app, consent_form(&request_id(&page.body), "deny"));
    assert_eq!(denied.status, StatusCode::SEE_OTHER);
    let location = denied.headers.get("location").unwrap().to_str().unwrap().to_owned();
    assert!(location.contains("error=access_denied&error_description=The+user+denied+access&state="), "{location}");
    let unknown = send!(app, consent_form("nope", "approve"));
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(control.requests_to("yappointment", "/oauth/consent").len(), 2);
}

#[actix_web::test]
async fn pending_authorizations_expire_after_ten_minutes() {
    let (clock, _control, data) = setup();
    let app = test::init_service(app(data)).await;
    let page = send!(app, TestRequest::get().uri(&authorize_url(&good_params())));
    clock.advance(600);
    let late = send!(app, consent_form(&request_id(&page.body), "approve"));
    assert_eq!(late.status, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn injected_failures_come_after_recording() {
    let (_clock, control, data) = setup();
    let app = test::init_service(app(data)).await;
    let ask = || token_request(refresh_body("yapp_rt_unknown"));

    control.set_failure("yappointment", Endpoint::Token, Failure::Status(503), Some(2));
    for _ in 0..2 {
        let reply = send!(app, ask());
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(reply.json()["error"].is_string());
    }
    let reply = send!(app, ask());
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_grant");

    control.set_failure("yappointment", Endpoint::Token, Failure::Malformed, None);
    for _ in 0..3 {
        let reply = send!(app, ask());
        assert_eq!(reply.status, StatusCode::OK);
        assert!(serde_json::from_str::<Value>(&reply.body).is_err());
    }
    // Other endpoints are untouched.
    assert_eq!(send!(app, api("me", "nope")).status, StatusCode::UNAUTHORIZED);
    control.set_failure("yappointment", Endpoint::Identity, Failure::InvalidGrant, Some(1));
    let reply = send!(app, api("me", "nope"));
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_grant");
    control.set_failure("yappointment", Endpoint::Api, Failure::Status(500), None);
    assert_eq!(send!(app, api("bookings", "nope")).status, StatusCode::INTERNAL_SERVER_ERROR);
    control.clear_failures();
    assert_eq!(send!(app, ask()).status, StatusCode::BAD_REQUEST);
    assert_eq!(send!(app, api("bookings", "nope")).status, StatusCode::UNAUTHORIZED);
    assert_eq!(control.requests_to("yappointment", "/oauth/token").len(), 7);
}

#[actix_web::test]
async fn index_credentials_not_found_and_body_cap() {
    let (_clock, control, data) = setup();
    let app = test::init_service(app(data)).await;
    let index = send!(app, TestRequest::get().uri("/"));
    assert_eq!(index.status, StatusCode::OK);
    assert!(index.body.contains("yappointment"));
    for base in
        ["/yappointment/", "/zocdoc/", "/zocdoc-sandbox/", "/drchrono/", "/docplanner/{domain}/", "/qmatic/{region}/"]
    {
        assert!(index.body.contains(base), "{base} missing from the index");
    }
    assert!(index.body.contains(r#"<a href="/credentials.json">"#));
    let credentials = send!(app, TestRequest::get().uri("/credentials.json"));
    assert_eq!(credentials.status, StatusCode::OK);
    assert_eq!(credentials.json(), expected_credentials());
    let missing = send!(app, TestRequest::get().uri("/yappointment/nope?x=1"));
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["error"], "not_found");
    let missing = send!(app, TestRequest::get().uri("/nope"));
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let recorded = control.requests_to("yappointment", "/nope");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].query, "x=1");
    let get_token = send!(app, TestRequest::get().uri("/yappointment/oauth/token"));
    assert_eq!(get_token.status, StatusCode::METHOD_NOT_ALLOWED);
    let huge = send!(app, token_request(json!({"pad": "x".repeat(BODY_LIMIT)})));
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(control.requests_to("yappointment", "/oauth/token").len(), 2);
}

#[tokio::test]
async fn build_binds_and_serves() {
    install_log_capture();
    let sandbox = build("127.0.0.1:0", ManualClock::starting_now(), 1).unwrap();
    assert_ne!(sandbox.port, 0);
    assert_eq!(sandbox.base_url, format!("http://127.0.0.1:{}", sandbox.port));
    let handle = sandbox.server.handle();
    tokio::spawn(sandbox.server);
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let body: Value =
        client.get(format!("{}/credentials.json", sandbox.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(body, expected_credentials());
    // A hanging endpoint makes the client time out.
    sandbox.control.set_failure("yappointment", Endpoint::Revoke, Failure::Hang, Some(1));
    let hung = client
        .post(format!("{}/yappointment/oauth/revoke", sandbox.base_url))
        .timeout(std::time::Duration::from_millis(300))
        .json(&json!({}))
        .send()
        .await;
    assert!(hung.unwrap_err().is_timeout());
    assert_eq!(sandbox.control.requests_to("yappointment", "/oauth/revoke").len(), 1);
    handle.stop(false).await;
}
