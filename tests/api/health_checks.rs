//! Broken connections found without a click: the worker checks every live connection at its
//! vendor on a spread schedule (the identity call, or a refresh where the vendor has none),
//! claimed with a lease so that two instances never check one connection at once, and a proxied
//! call refused twice checks its connection at once. A failed check is classified as a failed
//! refresh and written to the history by the worker.

use std::time::Duration;

use clinic_connect::clock::Clock;
use clinic_connect::sandbox::{Endpoint, Failure, DOCPLANNER_CLIENT_ID, DOCPLANNER_CLIENT_SECRET, DOCPLANNER_DOMAIN};
use clinic_connect::startup::Application;
use clinic_connect::worker;
use reqwest::StatusCode;

use crate::helpers::{spawn_app, spawn_app_with, Browser, TestApp, PASSWORD};

/// The longest wait before a connection's first check with the default 15-minute interval
/// (five quarters of it), plus a second.
const PAST_FIRST_CHECK: i64 = 900 * 5 / 4 + 1;

async fn connect(app: &TestApp, vendor: &str, form: &[(&str, &str)]) {
    let response = app.browser.connect_code_flow(vendor, form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{vendor}");
}

async fn connect_docplanner(app: &TestApp) {
    let form = [
        ("client_id", DOCPLANNER_CLIENT_ID),
        ("client_secret", DOCPLANNER_CLIENT_SECRET),
        ("domain", DOCPLANNER_DOMAIN),
    ];
    let response = app.browser.submit_connect("docplanner", &form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

fn calls(app: &TestApp, vendor: &str, path: &str) -> usize {
    app.sandbox.requests_to(vendor, path).len()
}

async fn status_of(app: &TestApp, clinic: i64, vendor: &str) -> String {
    app.db.connection(clinic, vendor).await.unwrap().unwrap().status
}

#[tokio::test]
async fn grants_revoked_at_the_vendor_show_reconnect_needed_after_a_health_pass_without_any_click() {
    let app = spawn_app().await;
    app.login().await;
    connect(&app, "yappointment", &[]).await;
    connect(&app, "drchrono", &[]).await;
    connect(&app, "zocdoc", &[("environment", "production")]).await;
    let connected_events = app.db.events(1, "yappointment").await.unwrap().len();

    // The apps are uninstalled at the vendors, behind the admin's back.
    for vendor in ["yappointment", "drchrono", "zocdoc"] {
        assert_eq!(app.sandbox.revoke_all_grants(vendor), 1, "{vendor}");
    }
    // Nothing is due for a refresh yet: only the health check can notice.
    app.clock.advance(PAST_FIRST_CHECK);
    worker::run_once(&app.state).await;

    for vendor in ["yappointment", "drchrono", "zocdoc"] {
        let row = app.db.connection(1, vendor).await.unwrap().unwrap();
        assert_eq!(row.status, "reconnect_needed", "{vendor}");
        assert!(row.access_token.is_none() && row.refresh_token.is_none(), "{vendor}: tokens cleared");
        assert!(row.trouble_detail.as_deref().unwrap_or_default().contains("invalid_grant"), "{vendor}: {row:?}");
        let events = app.db.events(1, vendor).await.unwrap();
        assert_eq!((events[0].kind.as_str(), events[0].actor.as_str()), ("reconnect_needed", "worker"), "{vendor}");
    }
    assert_eq!(app.db.events(1, "yappointment").await.unwrap().len(), connected_events + 1, "one entry");
    // yAppointment and DrChrono were asked with their identity call, Zocdoc (which has none)
    // with a refresh.
    assert_eq!(calls(&app, "yappointment", "/api/v1/me"), 2, "the connect's lookup, then the check");
    assert_eq!(calls(&app, "drchrono", "/api/users/current"), 2);

    // The admin only looks: the dashboard already says it, broken connections first, with the
    // banner counting them.
    app.login().await;
    let dashboard = app.browser.get_text("/connections").await;
    for vendor in ["yappointment", "drchrono", "zocdoc"] {
        assert!(dashboard.contains(&format!(r#"id="status-{vendor}">Reconnect needed</span>"#)), "{dashboard}");
    }
    assert!(dashboard.contains("3 connections need attention."), "{dashboard}");
    let cards: Vec<&str> = dashboard.match_indices(r#"<li class="card"#).map(|(i, _)| &dashboard[i..i + 60]).collect();
    assert!(cards[..3].iter().all(|c| c.contains("needs-attention")), "{cards:?}");

    // A second pass does not ask again about connections that are no longer live.
    app.clock.advance(PAST_FIRST_CHECK);
    let before = app.sandbox.requests().len();
    worker::run_once(&app.state).await;
    assert_eq!(app.sandbox.requests().len(), before);
}

#[tokio::test]
async fn a_client_credentials_token_revoked_at_the_vendor_is_replaced_by_the_check() {
    let app = spawn_app().await;
    app.login().await;
    connect_docplanner(&app).await;
    let before = app.db.connection(1, "docplanner").await.unwrap().unwrap();
    let events = app.db.events(1, "docplanner").await.unwrap().len();
    assert_eq!(app.sandbox.revoke_all_grants("docplanner"), 1);
    app.clock.advance(PAST_FIRST_CHECK);
    worker::run_once(&app.state).await;
    // The identity call was refused, and the clinic's credentials fetched a new token.
    let after = app.db.connection(1, "docplanner").await.unwrap().unwrap();
    assert_eq!((after.status.as_str(), after.trouble.as_deref()), ("connected", None));
    assert_ne!(after.access_token, before.access_token);
    assert_eq!(app.db.events(1, "docplanner").await.unwrap().len(), events, "a check that went well adds no entry");
    let metrics = app.browser.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"clinic_connect_health_checks_total{vendor="docplanner",outcome="refreshed"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_failed_check_is_classified_as_a_failed_refresh_and_written_by_the_worker() {
    let app = spawn_app().await;
    app.login().await;
    // Zocdoc has no identity call: its check is a refresh.
    connect(&app, "zocdoc", &[("environment", "production")]).await;
    let tokens = app.db.connection(1, "zocdoc").await.unwrap().unwrap();

    // The vendor refuses the app: tokens kept, "vendor refuses the app".
    app.sandbox.set_failure("zocdoc", Endpoint::Token, Failure::Error(401, "invalid_client"), Some(1));
    app.clock.advance(PAST_FIRST_CHECK);
    worker::run_once(&app.state).await;
    let row = app.db.connection(1, "zocdoc").await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.trouble.as_deref()), ("connected", Some("app_refused")));
    assert_eq!((row.access_token, row.refresh_token), (tokens.access_token, tokens.refresh_token));
    let events = app.db.events(1, "zocdoc").await.unwrap();
    assert_eq!((events[0].kind.as_str(), events[0].actor.as_str()), ("app_refused", "worker"));

    // Its next check is a refresh (once the backoff is over); it works, and clears the trouble.
    app.clock.advance(PAST_FIRST_CHECK);
    worker::run_once(&app.state).await;
    let row = app.db.connection(1, "zocdoc").await.unwrap().unwrap();
    assert_eq!(row.trouble, None);

    // The vendor is down: "vendor down (retrying)".
    app.sandbox.set_failure("zocdoc", Endpoint::Token, Failure::Status(503), Some(1));
    app.clock.advance(PAST_FIRST_CHECK);
    worker::run_once(&app.state).await;
    let row = app.db.connection(1, "zocdoc").await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.trouble.as_deref()), ("connected", Some("vendor_down")));
    let events = app.db.events(1, "zocdoc").await.unwrap();
    assert_eq!((events[0].kind.as_str(), events[0].actor.as_str()), ("refresh_failed", "worker"));
    app.login().await;
    let dashboard = app.browser.get_text("/connections").await;
    assert!(dashboard.contains(r#"id="status-zocdoc">Vendor down (retrying)</span>"#), "{dashboard}");
}

#[tokio::test]
async fn checks_are_spread_over_the_interval_and_each_connection_is_checked_once_per_round() {
    let app = spawn_app_with(|s| s.health_interval_seconds = 400).await;
    app.login().await;
    let start = app.clock.now();
    connect(&app, "yappointment", &[]).await;
    connect(&app, "drchrono", &[]).await;
    connect_docplanner(&app).await;
    for vendor in ["yappointment", "drchrono", "docplanner"] {
        let next = app.db.connection(1, vendor).await.unwrap().unwrap().next_health_at.unwrap();
        assert!((start + 300..=start + 500).contains(&next), "{vendor}: {}", next - start);
    }
    // Not before its time…
    app.clock.advance(299);
    let before = app.sandbox.requests().len();
    worker::run_once(&app.state).await;
    assert_eq!(app.sandbox.requests().len(), before, "nothing checked early");
    // …each once when due, and then not again until its next time.
    app.clock.advance(202);
    worker::run_once(&app.state).await;
    worker::run_once(&app.state).await;
    assert_eq!(app.sandbox.requests().len(), before + 3, "one identity call each");
    let now = app.clock.now();
    for vendor in ["yappointment", "drchrono", "docplanner"] {
        let row = app.db.connection(1, vendor).await.unwrap().unwrap();
        assert!((now + 300..=now + 500).contains(&row.next_health_at.unwrap()), "{vendor}");
        assert_eq!(row.lease_owner, None, "{vendor}: the lease was given back");
    }
}

#[tokio::test]
async fn two_instances_never_check_one_connection_at_the_same_time() {
    let app = spawn_app().await;
    let mut browsers = Vec::new();
    for i in 0..6 {
        let email = format!("admin@clinic-{i}.test");
        app.create_admin(&format!("Clinic {i}"), &email).await;
        let browser = Browser::new(&app.address);
        browser.login(&email, PASSWORD).await;
        let authorize = browser.start_connect("yappointment").await;
        let callback = browser.consent(&authorize, "approve").await;
        assert_eq!(browser.get(callback.as_str()).await.status(), StatusCode::SEE_OTHER);
        browsers.push(browser);
    }
    let second = Application::build(app.settings.clone(), app.clock.clone()).await.unwrap();
    let second_state = second.state();
    tokio::spawn(second.run_until_stopped());
    // Each identity call takes a moment, so the two rounds overlap.
    app.sandbox.hold_answers("yappointment", "/api/v1/me", Duration::from_millis(200), 6);

    app.clock.advance(PAST_FIRST_CHECK);
    let before = calls(&app, "yappointment", "/api/v1/me");
    tokio::join!(worker::run_once(&app.state), worker::run_once(&second_state));
    assert_eq!(calls(&app, "yappointment", "/api/v1/me"), before + 6, "each connection checked once");
    let now = app.clock.now();
    for i in 0..6 {
        let clinic = app.db.clinic_id(&format!("Clinic {i}")).await.unwrap().unwrap();
        let row = app.db.connection(clinic, "yappointment").await.unwrap().unwrap();
        assert!(row.next_health_at.unwrap() > now && row.lease_owner.is_none(), "{row:?}");
    }
}

#[tokio::test]
async fn a_proxied_call_refused_twice_checks_the_connection_at_once() {
    let app = spawn_app().await;
    app.login().await;
    connect(&app, "yappointment", &[]).await;
    let key = app.api_key(1).await;

    // The call is refused (401); the proxy refreshes the token — and while the vendor's answer
    // to that refresh is on its way, the app is uninstalled there. The retry is refused too.
    app.sandbox.set_failure("yappointment", Endpoint::Identity, Failure::Status(401), Some(1));
    app.sandbox.hold_answers("yappointment", "/oauth/token", Duration::from_millis(500), 1);
    let call = {
        let url = format!("{}/api/v1/connections/yappointment/proxy/api/v1/me", app.address);
        let key = key.clone();
        tokio::spawn(async move {
            reqwest::Client::new().post(url).bearer_auth(key).body("{}").send().await.unwrap().status()
        })
    };
    for _ in 0..2000 {
        if app.sandbox.held_answers_handled() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(app.sandbox.held_answers_handled(), 1, "the proxy's refresh reached the vendor");
    app.sandbox.revoke_all_grants("yappointment");
    assert_eq!(call.await.unwrap(), StatusCode::UNAUTHORIZED, "the vendor's answer is passed on");

    // The check runs in the background, without waiting for the worker's round.
    let mut status = String::new();
    for _ in 0..200 {
        status = status_of(&app, 1, "yappointment").await;
        if status == "reconnect_needed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status, "reconnect_needed");
    let events = app.db.events(1, "yappointment").await.unwrap();
    assert_eq!((events[0].kind.as_str(), events[0].actor.as_str()), ("reconnect_needed", "worker"));
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/connections/yappointment/proxy/api/v1/me", app.address))
        .bearer_auth(&key)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT, "the clinic's systems are told to have it reconnected");
}

#[tokio::test]
async fn a_connection_that_passes_its_check_keeps_its_tokens_and_history() {
    let app = spawn_app().await;
    app.login().await;
    connect(&app, "yappointment", &[]).await;
    let before = app.db.connection(1, "yappointment").await.unwrap().unwrap();
    let events = app.db.events(1, "yappointment").await.unwrap().len();
    app.clock.advance(PAST_FIRST_CHECK);
    worker::run_once(&app.state).await;
    let after = app.db.connection(1, "yappointment").await.unwrap().unwrap();
    assert_eq!(
        (after.access_token, after.refresh_token, after.version),
        (before.access_token, before.refresh_token, before.version)
    );
    assert!(after.next_health_at > before.next_health_at);
    assert_eq!(app.db.events(1, "yappointment").await.unwrap().len(), events);
    assert_eq!(app.token_requests(), 1, "the connect's exchange only: no refresh");
    let metrics = app.browser.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"clinic_connect_health_checks_total{vendor="yappointment",outcome="passed"} 1"#),
        "{metrics}"
    );
}
