//! Tokens that are always valid: single-flight refresh (in one process and across two),
//! rotation, reconnect-needed, backoff, background refresh, revocation retries, key rotation.

use clinic_connect::clock::Clock;
use clinic_connect::sandbox::{Endpoint, Failure, YAPPOINTMENT_COMPANY_NAME};
use clinic_connect::startup::Application;
use clinic_connect::worker;
use reqwest::StatusCode;

use crate::helpers::{spawn_app, Browser, TestApp, PASSWORD};

fn refresh_requests(app: &TestApp) -> Vec<serde_json::Value> {
    app.sandbox
        .requests_to("yappointment", "/oauth/token")
        .into_iter()
        .filter_map(|r| r.json())
        .filter(|b| b["grant_type"] == "refresh_token")
        .collect()
}

async fn proxy_me(base: &str, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/api/v1/connections/yappointment/proxy/api/v1/me"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn twenty_concurrent_calls_with_an_expired_token_cause_exactly_one_refresh() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let key = app.api_key(1).await;
    app.clock.advance(3600 + 60);

    let calls = (0..20).map(|_| proxy_me(&app.address, &key));
    let responses = futures_util::future::join_all(calls).await;
    for r in responses {
        assert_eq!(r.status(), StatusCode::OK);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["name"], YAPPOINTMENT_COMPANY_NAME);
    }
    assert_eq!(refresh_requests(&app).len(), 1);
    assert_eq!(app.sandbox.refresh_reuse_detections(), 0);
}

#[tokio::test]
async fn two_app_instances_on_one_database_refresh_once_between_them() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let key = app.api_key(1).await;
    let second_address = app.second_instance().await;

    app.clock.advance(3600 + 60);
    let calls = (0..20).map(|i| {
        let base = if i % 2 == 0 { app.address.clone() } else { second_address.clone() };
        let key = key.clone();
        async move { proxy_me(&base, &key).await.status() }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    assert_eq!(refresh_requests(&app).len(), 1);
    assert_eq!(app.sandbox.refresh_reuse_detections(), 0);
}

#[tokio::test]
async fn a_disconnect_on_one_instance_stops_the_other_instances_proxy_at_once() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let key = app.api_key(1).await;
    let second_address = app.second_instance().await;
    // The second instance now holds the key and the connection in memory.
    for _ in 0..3 {
        assert_eq!(proxy_me(&second_address, &key).await.status(), StatusCode::OK);
    }
    let api_calls = app.sandbox.requests_to("yappointment", "/api/v1/me").len();
    assert!(api_calls >= 3, "the sandbox saw the proxied calls ({api_calls})");

    assert_eq!(app.browser.disconnect("yappointment").await.status(), StatusCode::SEE_OTHER);

    let response = proxy_me(&second_address, &key).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "{}", response.text().await.unwrap());
    assert_eq!(
        app.sandbox.requests_to("yappointment", "/api/v1/me").len(),
        api_calls,
        "no vendor call with a disconnected connection's token"
    );
}

#[tokio::test]
async fn consecutive_refreshes_send_the_newest_refresh_token_and_keep_it_encrypted() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    for _ in 0..3 {
        let csrf = app.browser.csrf("/connections/yappointment").await;
        let response = app.browser.post_form("/connections/yappointment/refresh", &[("csrf", &csrf)]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let page = app.browser.get_text("/connections/yappointment").await;
        assert!(page.contains("access token was refreshed"), "{page}");
    }
    let sent: Vec<String> =
        refresh_requests(&app).iter().map(|b| b["refresh_token"].as_str().unwrap().to_owned()).collect();
    assert_eq!(sent.len(), 3);
    assert!(sent[0] != sent[1] && sent[1] != sent[2], "each refresh presents the token the previous one returned");
    assert_eq!(app.sandbox.refresh_reuse_detections(), 0);
    let db = app.database_bytes().await;
    for token in &sent {
        assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));
    }
    // The connection still works with what was stored last.
    let key = app.api_key(1).await;
    assert_eq!(proxy_me(&app.address, &key).await.status(), StatusCode::OK);
    let history = app.browser.get_text("/connections/yappointment").await;
    assert_eq!(history.matches("Token refreshed").count(), 3);
}

#[tokio::test]
async fn invalid_grant_marks_reconnect_needed_once_and_reconnect_keeps_the_history() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::InvalidGrant, Some(1));
    app.clock.advance(3600 - 60);
    worker::run_once(&app.state).await;
    worker::run_once(&app.state).await;
    assert_eq!(refresh_requests(&app).len(), 1, "no retry loop after invalid_grant");
    app.login().await; // the admin's session idled out meanwhile

    let dashboard = app.browser.get_text("/connections").await;
    assert!(
        dashboard.contains(r#"<span class="status" id="status-yappointment">Reconnect needed</span>"#),
        "{dashboard}"
    );
    assert!(dashboard.contains(r#"id="reconnect-yappointment""#));
    let key = app.api_key(1).await;
    let response = proxy_me(&app.address, &key).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);

    app.connect_yappointment().await;
    let detail = app.browser.get_text("/connections/yappointment").await;
    assert!(detail.contains(r#"<span id="status">Connected</span>"#));
    assert!(detail.contains("Reconnected to yAppointment."), "{detail}");
    assert!(detail.contains("Reconnect needed") && detail.matches("<td>Connected</td>").count() == 2, "{detail}");
    assert_eq!(app.sandbox.refresh_reuse_detections(), 0);
}

#[tokio::test]
async fn a_503_then_200_backs_off_keeps_the_valid_token_and_recovers() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let key = app.api_key(1).await;
    app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::Status(503), Some(1));
    // Inside the refresh margin, still valid.
    app.clock.advance(3600 - 120);
    worker::run_once(&app.state).await;
    assert_eq!(refresh_requests(&app).len(), 1);
    // Backing off: calls keep working with the current token and do not hammer the vendor.
    assert_eq!(proxy_me(&app.address, &key).await.status(), StatusCode::OK);
    worker::run_once(&app.state).await;
    assert_eq!(refresh_requests(&app).len(), 1);
    // After the backoff the next round recovers.
    app.clock.advance(60);
    worker::run_once(&app.state).await;
    assert_eq!(refresh_requests(&app).len(), 2);
    app.login().await; // the admin's session idled out meanwhile
    let detail = app.browser.get_text("/connections/yappointment").await;
    assert!(detail.contains("Refresh failed") && detail.contains("HTTP 503"), "{detail}");
    assert!(detail.contains("Token refreshed"));
    assert!(detail.contains(r#"<span id="status">Connected</span>"#));
}

#[tokio::test]
async fn the_background_worker_keeps_an_idle_connection_alive() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    for _ in 0..5 {
        app.clock.advance(3600 - 200);
        worker::run_once(&app.state).await;
    }
    assert_eq!(refresh_requests(&app).len(), 5);
    let row = app.db.connection(1, "yappointment").await.unwrap().unwrap();
    assert!(row.expires_at.unwrap() > app.clock.now() + 3000);
    let key = app.api_key(1).await;
    assert_eq!(proxy_me(&app.address, &key).await.status(), StatusCode::OK);
    assert_eq!(app.sandbox.refresh_reuse_detections(), 0);
}

/// Signs a new clinic's admin in with a browser of its own and connects yAppointment.
async fn connect_another_clinic(app: &TestApp, clinic: &str) -> Browser {
    let email = format!("admin@{}.test", clinic.to_lowercase().replace(' ', "-"));
    app.create_admin(clinic, &email).await;
    let browser = Browser::new(&app.address);
    browser.login(&email, PASSWORD).await;
    let authorize = browser.start_connect("yappointment").await;
    let callback = browser.consent(&authorize, "approve").await;
    assert_eq!(browser.get(callback.as_str()).await.status(), StatusCode::SEE_OTHER);
    browser
}

#[tokio::test]
async fn a_background_round_refreshes_each_due_connection_once_and_respects_other_leases() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let _b = connect_another_clinic(&app, "Clinic B").await;
    let _c = connect_another_clinic(&app, "Clinic C").await;
    let _d = connect_another_clinic(&app, "Clinic D").await;
    let mut ids = Vec::new();
    for clinic in ["Clinic A", "Clinic B", "Clinic C", "Clinic D"] {
        ids.push(app.db.clinic_id(clinic).await.unwrap().unwrap());
    }
    let [a, b, c, d] = ids[..] else { panic!("four clinics expected, got {ids:?}") };

    app.clock.advance(3600 - 200);
    let now = app.clock.now();
    // C: another live process is refreshing it right now. D: a process died mid-refresh.
    for (clinic, owner, until) in [(c, "elsewhere", now + 30), (d, "dead", now - 1)] {
        let row = app.db.connection(clinic, "yappointment").await.unwrap().unwrap();
        assert!(app.db.acquire_lease(row.id, row.version, owner, now - 100, until).await.unwrap());
    }
    let before_c = app.db.connection(c, "yappointment").await.unwrap().unwrap();

    assert_eq!(worker::refresh_due(&app.state).await, 3, "A and B refreshed, D resolved, C left to its holder");

    let refreshes = refresh_requests(&app);
    assert_eq!(refreshes.len(), 2, "one refresh each for A and B, none for C or D");
    assert_ne!(refreshes[0]["refresh_token"], refreshes[1]["refresh_token"]);
    for clinic in [a, b] {
        let row = app.db.connection(clinic, "yappointment").await.unwrap().unwrap();
        assert!(row.expires_at.unwrap() > now + 3000, "clinic {clinic} refreshed");
        assert_eq!((row.lease_owner, row.status.as_str()), (None, "connected"));
        let events = app.db.events(clinic, "yappointment").await.unwrap();
        assert_eq!(events[0].kind, "refreshed");
    }
    let after_c = app.db.connection(c, "yappointment").await.unwrap().unwrap();
    assert_eq!((after_c.version, after_c.lease_owner.as_deref()), (before_c.version, Some("elsewhere")));
    let after_d = app.db.connection(d, "yappointment").await.unwrap().unwrap();
    assert_eq!(after_d.status, "reconnect_needed", "an interrupted rotating refresh is never replayed");
    assert_eq!(app.sandbox.refresh_reuse_detections(), 0);

    // A second round finds nothing left to do.
    assert_eq!(worker::refresh_due(&app.state).await, 0);
    assert_eq!(refresh_requests(&app).len(), 2);
}

#[tokio::test]
async fn disconnect_with_revocation_down_disables_at_once_and_retries_in_the_background() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let me = app.sandbox.requests_to("yappointment", "/api/v1/me");
    let bearer = me[0].header("authorization").unwrap().to_owned();
    app.sandbox.set_failure("yappointment", Endpoint::Revoke, Failure::Status(503), None);

    let response = app.browser.disconnect("yappointment").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let detail = app.browser.get_text("/connections/yappointment").await;
    assert!(detail.contains(r#"<span id="status">Not connected</span>"#));
    assert!(detail.contains("will be retried"), "{detail}");
    assert!(app.db.pending_revocation_count().await.unwrap() > 0);
    let metrics = app.browser.get_text("/metrics").await;
    assert!(metrics.contains("clinic_connect_revocations_pending 2"), "{metrics}");

    // A failing retry is recorded; then the vendor is back and the retry succeeds.
    app.clock.advance(60);
    worker::run_once(&app.state).await;
    assert!(app.browser.get_text("/connections/yappointment").await.contains("Revocation retry failed"));
    app.sandbox.clear_failures();
    app.clock.advance(600);
    worker::run_once(&app.state).await;
    assert_eq!(app.db.pending_revocation_count().await.unwrap(), 0);
    app.login().await; // the admin's session idled out meanwhile
    assert!(app.browser.get_text("/connections/yappointment").await.contains("Revoked at the vendor"));
    let probe = reqwest::Client::new()
        .post(format!("{}/yappointment/api/v1/me", app.sandbox_url))
        .header("authorization", bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 401, "the token is revoked at the vendor");
}

#[tokio::test]
async fn revocation_retries_are_bounded() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    app.sandbox.set_failure("yappointment", Endpoint::Revoke, Failure::Status(503), None);
    app.browser.disconnect("yappointment").await;
    for _ in 0..10 {
        app.clock.advance(3600);
        worker::run_once(&app.state).await;
    }
    assert_eq!(app.db.pending_revocation_count().await.unwrap(), 0);
    app.login().await; // the admin's session idled out meanwhile
    let revokes = app.sandbox.requests_to("yappointment", "/oauth/revoke").len();
    // The first attempt at disconnect, then at most five per pending token (two tokens).
    assert!(revokes <= 1 + 2 * 5, "{revokes}");
    assert!(app.browser.get_text("/connections/yappointment").await.contains("Revocation abandoned"));
}

#[tokio::test]
async fn metrics_report_connections_refreshes_and_vendor_latency() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    app.clock.advance(3600);
    worker::run_once(&app.state).await;
    let metrics = app.browser.get_text("/metrics").await;
    assert!(metrics.contains(r#"clinic_connect_connections{vendor="yappointment",status="connected"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"clinic_connect_refreshes_total{vendor="yappointment",outcome="success"} 1"#));
    assert!(metrics.contains("clinic_connect_sql_statements_total "), "{metrics}");
    assert!(
        metrics.contains(r#"clinic_connect_vendor_request_seconds_count{vendor="yappointment",operation="token"} 2"#)
    );
    assert!(!metrics.contains("yapp_"));
}

#[tokio::test]
async fn keys_rotate_while_the_app_serves_and_removed_keys_fail_closed() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let old_keyring = app.settings.token_keys.clone().unwrap();
    use secrecy::ExposeSecret;
    let new_entry = clinic_connect::vault::Vault::generate_key_entry().unwrap();
    let rotated = format!("{new_entry},{}", old_keyring.expose_secret());
    // A second instance started with the new keyring (new key first, old one decrypt-only)
    // serves alongside while `keys rotate` runs.
    let mut settings = app.settings.clone();
    settings.token_keys = Some(secrecy::SecretString::from(rotated.clone()));
    let second = Application::build(settings.clone(), app.clock.clone()).await.unwrap();
    let second_state = second.state();
    let second_address = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run_until_stopped());
    let key = app.api_key(1).await;

    let vault = clinic_connect::vault::Vault::from_keyring(&secrecy::SecretString::from(rotated)).unwrap();
    let clock: clinic_connect::clock::SharedClock = app.clock.clone();
    let (report, served) = tokio::join!(
        clinic_connect::rotation::rotate(&app.db, &vault, &clock),
        futures_util::future::join_all((0..10).map(|_| proxy_me(&second_address, &key)))
    );
    let report = report.unwrap();
    assert!(report.resealed >= 2, "{report}");
    assert_eq!(report.unreadable, 0);
    assert!(served.iter().all(|r| r.status() == StatusCode::OK));
    // Everything is now under the new key: the new keyring alone opens it…
    let row = app.db.connection(1, "yappointment").await.unwrap().unwrap();
    let new_id = new_entry.split(':').next().unwrap();
    assert_eq!(clinic_connect::vault::Vault::key_id_of(row.access_token.as_ref().unwrap()).unwrap(), new_id);
    assert!(second_state.tokens.access_token(&second_state, 1, "yappointment", false, "test").await.is_ok());

    // …and a row under a key that was removed fails closed with a clear status.
    let only_other = clinic_connect::vault::Vault::from_keyring(&secrecy::SecretString::from(
        clinic_connect::vault::Vault::generate_key_entry().unwrap(),
    ))
    .unwrap();
    let report = clinic_connect::rotation::rotate(&app.db, &only_other, &clock).await.unwrap();
    assert!(report.unreadable >= 1, "{report}");
    app.login().await; // sessions sealed under the removed key ended too
    let dashboard = app.browser.get_text("/connections").await;
    assert!(dashboard.contains(r#"id="status-yappointment">Key missing</span>"#), "{dashboard}");
    assert!(dashboard.contains("encryption key that was removed from the server and have been deleted"), "{dashboard}");
    assert_eq!(proxy_me(&second_address, &key).await.status(), StatusCode::CONFLICT);
}
