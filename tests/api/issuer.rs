//! RFC 9207: a vendor environment that declares its issuer gets callbacks checked for `iss`
//! before any token request, for admins' connections and patients' Zocdoc login alike.

use reqwest::StatusCode;
use url::Url;

use crate::helpers::{hidden_field, location, spawn_app_with, Browser, TestApp};

const YAPPOINTMENT_ISSUER: &str = "https://auth.yappointment.example";
const ZOCDOC_ISSUER: &str = "https://auth-api-developer-sandbox.zocdoc.example";

/// An app whose configuration file declares yAppointment's and Zocdoc sandbox's issuers.
async fn app_with_issuers(dir: &tempfile::TempDir) -> TestApp {
    let path = dir.path().join("vendors.toml");
    std::fs::write(
        &path,
        format!(
            "[vendors.yappointment.environments.production]\nissuer = \"{YAPPOINTMENT_ISSUER}\"\n\
             [vendors.zocdoc.environments.sandbox]\nissuer = \"{ZOCDOC_ISSUER}\"\n"
        ),
    )
    .unwrap();
    let app = spawn_app_with(|s| s.config_path = Some(path)).await;
    app.login().await;
    app
}

fn with_param(url: &Url, name: &str, value: &str) -> Url {
    let mut url = url.clone();
    url.query_pairs_mut().append_pair(name, value);
    url
}

/// The callback is refused with the issuer page, and nothing was asked of the token endpoint.
async fn refused_for_the_issuer(app: &TestApp, callback: &Url) {
    let response = app.browser.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(page.contains("did not name the expected issuer"), "{page}");
    assert!(page.contains("Nothing was requested from the vendor"), "{page}");
    assert_eq!(app.token_requests(), 0, "no token request after a refused issuer");
}

#[tokio::test]
async fn a_matching_iss_connects() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_issuers(&dir).await;
    app.sandbox.send_issuer("yappointment", Some(YAPPOINTMENT_ISSUER));
    let authorize = app.browser.start_connect("yappointment").await;
    let callback = app.browser.consent(&authorize, "approve").await;
    assert_eq!(callback.query_pairs().find(|(k, _)| k == "iss").unwrap().1, YAPPOINTMENT_ISSUER);
    let response = app.browser.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/connections/yappointment");
    assert_eq!(app.token_requests(), 1);
    let detail = app.browser.get_text("/connections/yappointment").await;
    assert!(detail.contains(r#"<span id="status">Connected</span>"#), "{detail}");
}

#[tokio::test]
async fn a_missing_iss_is_refused_before_any_token_request_and_uses_the_flow_up() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_issuers(&dir).await;
    let authorize = app.browser.start_connect("yappointment").await;
    let callback = app.browser.consent(&authorize, "approve").await;
    assert!(callback.query_pairs().all(|(k, _)| k != "iss"));
    refused_for_the_issuer(&app, &callback).await;
    // The flow is gone: the same code and state with the right iss added now are refused too.
    let retried = with_param(&callback, "iss", YAPPOINTMENT_ISSUER);
    let response = app.browser.get(retried.as_str()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("already used"));
    assert_eq!(app.token_requests(), 0);
    assert!(app.db.connection(1, "yappointment").await.unwrap().is_none());
}

#[tokio::test]
async fn a_different_iss_is_refused_before_any_token_request_on_a_code_or_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_issuers(&dir).await;
    for wrong in ["https://evil.example", "https://auth.yappointment.example/", "HTTPS://AUTH.YAPPOINTMENT.EXAMPLE"] {
        app.sandbox.send_issuer("yappointment", Some(wrong));
        let authorize = app.browser.start_connect("yappointment").await;
        let callback = app.browser.consent(&authorize, "approve").await;
        refused_for_the_issuer(&app, &callback).await;
        // An error answer from the wrong issuer is no more believed than a code.
        let authorize = app.browser.start_connect("yappointment").await;
        let denied = app.browser.consent(&authorize, "deny").await;
        refused_for_the_issuer(&app, &denied).await;
    }
    assert!(app.db.connection(1, "yappointment").await.unwrap().is_none());
    // A vendor without a declared issuer is unaffected by whatever `iss` arrives.
    app.sandbox.send_issuer("drchrono", Some("https://anything.example"));
    let response = app.browser.connect_code_flow("drchrono", &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/connections/drchrono");
}

/// The patient's Zocdoc login, from the search page to Zocdoc's redirect back.
async fn patient_callback(patient: &Browser) -> Url {
    let html = patient.get_text("/care?q=Chen").await;
    let csrf = hidden_field(&html, "csrf").unwrap();
    let return_to = hidden_field(&html, "return_to").unwrap();
    let response = patient.post_form("/care/login", &[("csrf", &csrf), ("return_to", &return_to), ("email", "")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let authorize = Url::parse(&location(&response)).unwrap();
    patient.consent_as(&authorize, "approve", Some("pat@example.com")).await
}

fn code_exchanges(app: &TestApp) -> usize {
    app.sandbox
        .requests_to("zocdoc-sandbox", "/oauth/token")
        .iter()
        .filter(|r| r.json().is_some_and(|b| b["grant_type"] == "authorization_code"))
        .count()
}

#[tokio::test]
async fn the_patients_zocdoc_login_checks_the_issuer_too() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_issuers(&dir).await;

    let patient = Browser::new(&app.address);
    let callback = patient_callback(&patient).await;
    let response = patient.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    app.sandbox.send_issuer("zocdoc-sandbox", Some("https://auth.zocdoc.com"));
    let callback = patient_callback(&patient).await;
    assert_eq!(patient.get(callback.as_str()).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code_exchanges(&app), 0, "no token request after a refused issuer");

    app.sandbox.send_issuer("zocdoc-sandbox", Some(ZOCDOC_ISSUER));
    let callback = patient_callback(&patient).await;
    let response = patient.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/care?q=Chen");
    assert_eq!(code_exchanges(&app), 1);
    assert!(patient.get_text("/care?q=Chen").await.contains("You are logged in with Zocdoc"));
}
