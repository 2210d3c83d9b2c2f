//! A refused refresh is not always the clinic's fault (issue 12, item 1), end to end: when the
//! vendor refuses the app itself (`401 invalid_client`, `400 unauthorized_client`, a 403, a
//! misrouted URL's 404, an error code nobody documents), every connection of that vendor keeps
//! its tokens (still opening with the vault), the current access token keeps serving while it is
//! valid, the dashboard says "Vendor refuses the app" with the cause in plain words, `/metrics`
//! counts it per vendor, retries back off, and it recovers by itself once the vendor answers 200
//! again. Only `invalid_grant` means the clinic's grant is gone.

use clinic_connect::clock::Clock;
use clinic_connect::connections::connection_binding;
use clinic_connect::sandbox::{Endpoint, Failure};
use clinic_connect::worker;
use reqwest::StatusCode;
use secrecy::ExposeSecret;

use crate::helpers::{spawn_app, Browser, TestApp, PASSWORD};

/// One clinic with a yAppointment connection: its id, its admin's browser and an API key.
struct Clinic {
    id: i64,
    browser: Browser,
    key: String,
}

/// `count` clinics (clinic A first), each with its admin signed in and yAppointment connected.
async fn clinics(app: &TestApp, count: usize) -> Vec<Clinic> {
    let mut all = Vec::new();
    for i in 0..count {
        let (name, email) = if i == 0 {
            ("Clinic A".to_owned(), "admin@clinic-a.test".to_owned())
        } else {
            let name = format!("Clinic {i}");
            app.create_admin(&name, &format!("admin@clinic-{i}.test")).await;
            (name, format!("admin@clinic-{i}.test"))
        };
        let browser = Browser::new(&app.address);
        browser.login(&email, PASSWORD).await;
        let authorize = browser.start_connect("yappointment").await;
        let callback = browser.consent(&authorize, "approve").await;
        assert_eq!(browser.get(callback.as_str()).await.status(), StatusCode::SEE_OTHER);
        let id = app.db.clinic_id(&name).await.unwrap().unwrap();
        all.push(Clinic { id, key: app.api_key(id).await, browser });
    }
    all
}

/// The clinic's stored tokens, opened with the vault: (access, refresh).
async fn opened_tokens(app: &TestApp, clinic: i64) -> (String, String) {
    let row = app.db.connection(clinic, "yappointment").await.unwrap().unwrap();
    let open = |sealed: &Option<Vec<u8>>, column| {
        let sealed = sealed.as_ref().unwrap_or_else(|| panic!("clinic {clinic} lost its {column}"));
        let binding = connection_binding(clinic, "yappointment", column);
        app.state.vault.open_str(sealed, &binding).unwrap().expose_secret().to_owned()
    };
    (open(&row.access_token, "access_token"), open(&row.refresh_token, "refresh_token"))
}

fn token_requests(app: &TestApp) -> usize {
    app.sandbox.requests_to("yappointment", "/oauth/token").len()
}

async fn proxy_me(app: &TestApp, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/v1/connections/yappointment/proxy/api/v1/me", app.address))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
}

fn last_bearer(app: &TestApp) -> String {
    let calls = app.sandbox.requests_to("yappointment", "/api/v1/me");
    calls.last().unwrap().header("authorization").unwrap().to_owned()
}

/// Moves the clock into the refresh margin of the connection that expires first.
async fn into_refresh_margin(app: &TestApp, clinics: &[Clinic]) {
    let mut first = i64::MAX;
    for c in clinics {
        let row = app.db.connection(c.id, "yappointment").await.unwrap().unwrap();
        first = first.min(row.expires_at.unwrap());
    }
    app.clock.advance(first - app.clock.now() - 120);
}

/// Signs clinic A's admin in again if the session idled out while the clock moved on.
async fn sign_in_again(browser: &Browser) {
    if browser.get("/connections").await.status() != StatusCode::OK {
        browser.login("admin@clinic-a.test", PASSWORD).await;
    }
}

/// The metric line's value, if the line is there.
fn metric(text: &str, line_start: &str) -> Option<i64> {
    text.lines().find_map(|l| l.strip_prefix(line_start).and_then(|v| v.trim().parse().ok()))
}

/// One refusal of the app, answered to every refresh until it is lifted, as seen by every
/// clinic: returns once they have all recovered by themselves.
async fn refused_then_recovered(app: &TestApp, clinics: &[Clinic], failure: Failure, code: &str) {
    let before: Vec<(String, String)> =
        futures_util::future::join_all(clinics.iter().map(|c| opened_tokens(app, c.id))).await;
    let metrics = clinics[0].browser.get_text("/metrics").await;
    let refused_before =
        metric(&metrics, r#"clinic_connect_refreshes_total{vendor="yappointment",outcome="app_refused"}"#).unwrap_or(0);
    app.sandbox.set_failure("yappointment", Endpoint::Token, failure, None);
    into_refresh_margin(app, clinics).await;
    let asked = token_requests(app);
    worker::run_once(&app.state).await;
    assert_eq!(token_requests(app), asked + clinics.len(), "{failure:?}: one refresh each");

    for (c, tokens) in clinics.iter().zip(&before) {
        // The tokens are kept, and still open.
        assert_eq!(&opened_tokens(app, c.id).await, tokens, "{failure:?}: clinic {} kept its tokens", c.id);
        let row = app.db.connection(c.id, "yappointment").await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.trouble.as_deref()), ("connected", Some("app_refused")), "{failure:?}");
        assert!(row.trouble_detail.as_deref().unwrap_or_default().contains(code), "{failure:?}: {row:?}");
        // The current access token keeps being served while it is valid.
        let response = proxy_me(app, &c.key).await;
        assert_eq!(response.status(), StatusCode::OK, "{failure:?}");
        assert_eq!(last_bearer(app), format!("Bearer {}", tokens.0), "{failure:?}");
    }
    // Backing off: neither the worker nor the proxied calls asked the vendor again.
    worker::run_once(&app.state).await;
    assert_eq!(token_requests(app), asked + clinics.len(), "{failure:?}: backoff");

    // The dashboard says so, in plain words for the operator; the code only under Details.
    let a = &clinics[0];
    sign_in_again(&a.browser).await;
    let dashboard = a.browser.get_text("/connections").await;
    assert!(dashboard.contains(r#"id="status-yappointment">Vendor refuses the app</span>"#), "{dashboard}");
    // (Apostrophes are escaped in the page.)
    assert!(dashboard.contains("refuses this app&#39;s own registration"), "{dashboard}");
    assert!(dashboard.contains("operator must fix the app&#39;s registration"), "{dashboard}");
    assert!(!dashboard.contains(code), "{failure:?}: the code is not a headline: {dashboard}");
    let detail = a.browser.get_text("/connections/yappointment").await;
    let (headline, rest) = detail.split_once(r#"<details id="problem-details">"#).expect("a Details disclosure");
    assert!(!headline.contains(code), "{failure:?}: {headline}");
    let (details, _) = rest.split_once("</details>").unwrap();
    assert!(details.contains(code), "{failure:?}: {details}");

    // Counted per vendor.
    let metrics = a.browser.get_text("/metrics").await;
    let connections = metric(&metrics, r#"clinic_connect_connections{vendor="yappointment",status="app_refused"}"#);
    assert_eq!(connections, Some(clinics.len() as i64), "{metrics}");
    let refused = metric(&metrics, r#"clinic_connect_refreshes_total{vendor="yappointment",outcome="app_refused"}"#);
    assert_eq!(refused, Some(refused_before + clinics.len() as i64), "{metrics}");
    // The clinic's systems see it too, in the status API.
    let status: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/connections", app.address))
        .bearer_auth(&a.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let yapp = status["connections"].as_array().unwrap().iter().find(|c| c["vendor"] == "yappointment").unwrap();
    assert_eq!((yapp["status"].as_str(), yapp["trouble"].as_str()), (Some("connected"), Some("app_refused")));

    // The vendor answers 200 again: after the backoff, the next round recovers every one.
    app.sandbox.clear_failures();
    app.clock.advance(40);
    worker::run_once(&app.state).await;
    for (c, tokens) in clinics.iter().zip(&before) {
        let row = app.db.connection(c.id, "yappointment").await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.trouble.as_deref()), ("connected", None), "{failure:?}");
        assert_ne!(&opened_tokens(app, c.id).await.0, &tokens.0, "{failure:?}: refreshed");
        assert_eq!(proxy_me(app, &c.key).await.status(), StatusCode::OK);
    }
    sign_in_again(&a.browser).await;
    let dashboard = a.browser.get_text("/connections").await;
    assert!(dashboard.contains(r#"id="status-yappointment">Connected</span>"#), "{dashboard}");
    assert!(!dashboard.contains(r#"id="attention""#), "{dashboard}");
    assert_eq!(app.sandbox.refresh_reuse_detections(), 0);
}

/// The refusals of the app, and the code each leaves in the details.
const REFUSALS: [(Failure, &str); 5] = [
    (Failure::Error(401, "invalid_client"), "invalid_client"),
    (Failure::Error(400, "unauthorized_client"), "unauthorized_client"),
    (Failure::Status(403), "HTTP 403"),
    (Failure::Page(404), "HTTP 404"),
    (Failure::Error(400, "no_spec_defines_this"), "no_spec_defines_this"),
];

#[tokio::test]
async fn each_refusal_of_the_app_keeps_one_connection_serving_and_it_recovers_by_itself() {
    let app = spawn_app().await;
    let clinics = clinics(&app, 1).await;
    for (failure, code) in REFUSALS {
        refused_then_recovered(&app, &clinics, failure, code).await;
    }
}

#[tokio::test]
async fn each_refusal_of_the_app_keeps_every_connection_of_the_vendor_and_they_all_recover() {
    let app = spawn_app().await;
    let clinics = clinics(&app, 4).await;
    for (failure, code) in REFUSALS {
        refused_then_recovered(&app, &clinics, failure, code).await;
    }

    // invalid_grant still means the clinic's grant is gone: reconnect needed, tokens cleared.
    app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::InvalidGrant, None);
    into_refresh_margin(&app, &clinics).await;
    worker::run_once(&app.state).await;
    for c in &clinics {
        let row = app.db.connection(c.id, "yappointment").await.unwrap().unwrap();
        assert_eq!(row.status, "reconnect_needed");
        assert!(row.access_token.is_none() && row.refresh_token.is_none(), "tokens cleared");
        assert_eq!(proxy_me(&app, &c.key).await.status(), StatusCode::CONFLICT);
    }
    sign_in_again(&clinics[0].browser).await;
    let dashboard = clinics[0].browser.get_text("/connections").await;
    assert!(dashboard.contains(r#"id="status-yappointment">Reconnect needed</span>"#), "{dashboard}");
    let metrics = clinics[0].browser.get_text("/metrics").await;
    let gone = metric(&metrics, r#"clinic_connect_connections{vendor="yappointment",status="reconnect_needed"}"#);
    assert_eq!(gone, Some(4), "{metrics}");
}

#[tokio::test]
async fn a_refused_app_whose_token_expired_says_so_and_still_recovers() {
    let app = spawn_app().await;
    let clinics = clinics(&app, 1).await;
    let c = &clinics[0];
    app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::Error(401, "invalid_client"), None);
    // Past the token's expiry: nothing valid to serve, and the proxy says who must act.
    app.clock.advance(3600 + 10);
    worker::run_once(&app.state).await;
    let response = proxy_me(&app, &c.key).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "vendor_refuses_app");
    assert!(!body.to_string().contains("invalid_client"), "{body}");
    sign_in_again(&c.browser).await;
    let detail = c.browser.get_text("/connections/yappointment").await;
    assert!(detail.contains("current access has expired"), "{detail}");
    assert!(!opened_tokens(&app, c.id).await.1.is_empty(), "the refresh token is kept");

    app.sandbox.clear_failures();
    app.clock.advance(3600);
    worker::run_once(&app.state).await;
    assert_eq!(proxy_me(&app, &c.key).await.status(), StatusCode::OK);
}
