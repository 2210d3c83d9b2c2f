//! What an operator relies on: health, readiness, production refusals.

use clinic_connect::clock::ManualClock;
use clinic_connect::settings::Mode;
use clinic_connect::startup::Application;
use reqwest::StatusCode;

use crate::helpers::{spawn_app, test_settings};

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    assert_eq!(app.browser.get("/healthz").await.status(), StatusCode::OK);
    let ready = app.browser.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: serde_json::Value = ready.json().await.unwrap();
    let engine = if crate::helpers::on_postgres() { "postgres" } else { "sqlite" };
    assert_eq!(
        body,
        serde_json::json!({"status": "ready", "database": true, "engine": engine, "keys": true, "key_missing": 0})
    );
}

#[tokio::test]
async fn pages_carry_security_headers() {
    let app = spawn_app().await;
    let page = app.browser.get("/login").await;
    let headers = page.headers();
    assert!(headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
}

#[tokio::test]
async fn production_refuses_the_sandbox_plain_http_and_missing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_now();

    // The sandbox is on.
    let mut settings = test_settings(dir.path(), "http://127.0.0.1:1");
    settings.mode = Mode::Production;
    settings.public_url = Some("https://connect.example.org/".parse().unwrap());
    let err = Application::build(settings.clone(), clock.clone()).await.err().unwrap();
    assert!(err.to_string().contains("sandbox"), "{err}");

    // No keys from the environment.
    let mut no_keys = settings.clone();
    no_keys.sandbox_url = None;
    no_keys.token_keys = None;
    let err = Application::build(no_keys, clock.clone()).await.err().unwrap();
    assert!(err.to_string().contains("TOKEN_KEYS"), "{err}");

    // A plain-http public URL.
    let mut plain = settings.clone();
    plain.sandbox_url = None;
    plain.public_url = Some("http://connect.example.org/".parse().unwrap());
    let err = Application::build(plain, clock.clone()).await.err().unwrap();
    assert!(err.to_string().contains("https"), "{err}");

    // With all that right it starts.
    let mut good = settings;
    good.sandbox_url = None;
    assert!(Application::build(good, clock).await.is_ok());
}
