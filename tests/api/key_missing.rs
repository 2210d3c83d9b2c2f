//! A key removed from the keyring is noticed at start-up: every connection with a secret sealed
//! under it is marked "key missing" at once (with a history entry, once even when several
//! instances start together), one warning gives the count, and `/readyz` stays ready but says
//! `degraded`, with the count.

use clinic_connect::sandbox::{DOCPLANNER_CLIENT_ID, DOCPLANNER_CLIENT_SECRET, DOCPLANNER_DOMAIN};
use clinic_connect::settings::Settings;
use clinic_connect::startup::Application;
use clinic_connect::vault::Vault;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use crate::helpers::{captured_logs, spawn_app, Browser, TestApp, PASSWORD};

const WARNING: &str = "connections hold secrets sealed under keys that are not in CLINIC_CONNECT_TOKEN_KEYS";

/// Clinic A with yAppointment and Docplanner connected.
async fn two_connections() -> TestApp {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let form = [
        ("client_id", DOCPLANNER_CLIENT_ID),
        ("client_secret", DOCPLANNER_CLIENT_SECRET),
        ("domain", DOCPLANNER_DOMAIN),
    ];
    assert_eq!(app.browser.submit_connect("docplanner", &form).await.status(), StatusCode::SEE_OTHER);
    app
}

/// The app's settings with a keyring that has only a new key: the old one was removed.
fn without_the_old_key(app: &TestApp) -> (Settings, String) {
    let old = app.settings.token_keys.as_ref().unwrap().expose_secret().to_owned();
    let old_id = old.split(':').next().unwrap().to_owned();
    let mut settings = app.settings.clone();
    settings.token_keys = Some(SecretString::from(Vault::generate_key_entry().unwrap()));
    (settings, old_id)
}

async fn start(settings: Settings, app: &TestApp) -> String {
    let instance = Application::build(settings, app.clock.clone()).await.unwrap();
    let address = format!("http://127.0.0.1:{}", instance.port());
    tokio::spawn(instance.run_until_stopped());
    address
}

#[tokio::test]
async fn a_restart_without_the_old_key_marks_its_connections_at_once_and_says_so() {
    let app = two_connections().await;
    let (settings, old_id) = without_the_old_key(&app);
    let address = start(settings, &app).await;

    // Marked before anything asked for them; what they hold is kept, in case the key comes back.
    for vendor in ["yappointment", "docplanner"] {
        let row = app.db.connection(1, vendor).await.unwrap().unwrap();
        assert_eq!(row.status, "key_missing", "{vendor}");
        assert!(row.access_token.is_some(), "{vendor}: kept");
        let events = app.db.events(1, vendor).await.unwrap();
        assert_eq!((events[0].kind.as_str(), events[0].actor.as_str()), ("key_missing", "worker"), "{vendor}");
        assert!(events[0].detail.contains(&old_id), "{}", events[0].detail);
    }
    // One warning, with the count.
    let logs = captured_logs();
    let warnings: Vec<&str> = logs.lines().filter(|l| l.contains(WARNING) && l.contains(&old_id)).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("WARN") && warnings[0].contains("connections=2"), "{}", warnings[0]);

    // Ready, but degraded, with the count.
    let ready = reqwest::get(format!("{address}/readyz")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["key_missing"], 2, "{body}");

    // The admin signs in again (the session was sealed under the old key too) and sees it.
    let admin = Browser::new(&address);
    admin.login("admin@clinic-a.test", PASSWORD).await;
    let dashboard = admin.get_text("/connections").await;
    for vendor in ["yappointment", "docplanner"] {
        assert!(dashboard.contains(&format!(r#"id="status-{vendor}">Key missing</span>"#)), "{dashboard}");
    }
    assert!(dashboard.contains("2 connections need attention."), "{dashboard}");
    // The reconnect form starts from everything stored that is not secret.
    let detail = admin.get_text("/connections/docplanner").await;
    assert!(detail.contains(&format!(r#"id="field-client_id" value="{DOCPLANNER_CLIENT_ID}""#)), "{detail}");
    assert!(detail.contains(&format!(r#"<option value="{DOCPLANNER_DOMAIN}" selected>"#)), "{detail}");
    assert!(detail.contains(r#"id="connect-docplanner">Reconnect Docplanner</button>"#), "{detail}");
    assert!(!detail.contains(DOCPLANNER_CLIENT_SECRET));

    // Reconnecting mends it, and readiness is whole again.
    let csrf = crate::helpers::hidden_field(&detail, "csrf").unwrap();
    let form = [
        ("csrf", csrf.as_str()),
        ("client_id", DOCPLANNER_CLIENT_ID),
        ("client_secret", DOCPLANNER_CLIENT_SECRET),
        ("domain", DOCPLANNER_DOMAIN),
    ];
    assert_eq!(admin.post_form("/connections/docplanner/connect", &form).await.status(), StatusCode::SEE_OTHER);
    let body: serde_json::Value = reqwest::get(format!("{address}/readyz")).await.unwrap().json().await.unwrap();
    assert_eq!((body["status"].as_str(), body["key_missing"].as_i64()), (Some("degraded"), Some(1)), "{body}");
}

#[tokio::test]
async fn a_key_put_back_brings_the_connections_back_at_the_next_start() {
    let app = two_connections().await;
    let key = app.api_key(1).await;
    let (without, _) = without_the_old_key(&app);
    let degraded = start(without, &app).await;
    let proxy = |base: String| {
        let key = key.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/api/v1/connections/yappointment/proxy/api/v1/me"))
                .bearer_auth(key)
                .body("{}")
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(proxy(degraded).await, StatusCode::CONFLICT, "fails closed meanwhile");

    // The operator notices and puts the key back (keeping the new one first).
    let mut settings = app.settings.clone();
    let old = app.settings.token_keys.as_ref().unwrap().expose_secret().to_owned();
    settings.token_keys = Some(SecretString::from(format!("{},{old}", Vault::generate_key_entry().unwrap())));
    let restored = start(settings, &app).await;
    for vendor in ["yappointment", "docplanner"] {
        let row = app.db.connection(1, vendor).await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.trouble_detail), ("connected", None), "{vendor}");
        let events = app.db.events(1, vendor).await.unwrap();
        assert_eq!((events[0].kind.as_str(), events[0].actor.as_str()), ("key_found", "worker"), "{vendor}");
    }
    assert_eq!(proxy(restored.clone()).await, StatusCode::OK, "the kept tokens serve again");
    let body: serde_json::Value = reqwest::get(format!("{restored}/readyz")).await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
}

#[tokio::test]
async fn instances_starting_together_mark_each_connection_once() {
    let app = two_connections().await;
    let (settings, _) = without_the_old_key(&app);
    let events_before = app.db.events(1, "yappointment").await.unwrap().len();
    let (first, second) = tokio::join!(
        Application::build(settings.clone(), app.clock.clone()),
        Application::build(settings, app.clock.clone())
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    for vendor in ["yappointment", "docplanner"] {
        let events = app.db.events(1, vendor).await.unwrap();
        assert_eq!(events.iter().filter(|e| e.kind == "key_missing").count(), 1, "{vendor}: marked once");
    }
    assert_eq!(app.db.events(1, "yappointment").await.unwrap().len(), events_before + 1);
    tokio::spawn(first.run_until_stopped());
    tokio::spawn(second.run_until_stopped());
}

#[tokio::test]
async fn a_key_kept_for_decryption_marks_nothing() {
    let app = two_connections().await;
    let old = app.settings.token_keys.as_ref().unwrap().expose_secret().to_owned();
    let mut settings = app.settings.clone();
    settings.token_keys = Some(SecretString::from(format!("{},{old}", Vault::generate_key_entry().unwrap())));
    let address = start(settings, &app).await;
    for vendor in ["yappointment", "docplanner"] {
        assert_eq!(app.db.connection(1, vendor).await.unwrap().unwrap().status, "connected", "{vendor}");
    }
    let body: serde_json::Value = reqwest::get(format!("{address}/readyz")).await.unwrap().json().await.unwrap();
    assert_eq!((body["status"].as_str(), body["key_missing"].as_i64()), (Some("ready"), Some(0)));
}
