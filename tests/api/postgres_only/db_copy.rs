//! `clinic-connect db copy --to postgres://…`: a SQLite database with connections of all five
//! vendors, sessions, pending revocations and API keys, copied by the real binary into an empty
//! PostgreSQL database, which an instance then serves: every connection, the copied API key and
//! the admin's copied session work there.

use clinic_connect::sandbox::{Endpoint, Failure, QMATIC_REGION};
use clinic_connect::startup::Application;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use crate::helpers::{fresh_postgres_database, spawn_app_with, Browser, TestApp, PASSWORD};
use crate::no_secrets::connect_every_vendor;

/// Runs `clinic-connect db copy` on the app's SQLite database, with its keys.
async fn db_copy(app: &TestApp, to: &str) -> std::process::Output {
    let keys = app.settings.token_keys.as_ref().unwrap().expose_secret().to_owned();
    let session_key = app.settings.session_key.as_ref().unwrap().expose_secret().to_owned();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_clinic-connect"))
        .args(["db", "copy", "--to", to])
        .env_clear()
        .env("CLINIC_CONNECT_DATA_DIR", app.data_dir.path())
        .env("CLINIC_CONNECT_TOKEN_KEYS", keys)
        .env("CLINIC_CONNECT_SESSION_KEY", session_key)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap()
}

/// A proxied call to each vendor's API with the clinic's key, as its systems make them.
async fn proxy(base: &str, key: &str, vendor: &str, method: reqwest::Method, path: &str) -> StatusCode {
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}/api/v1/connections/{vendor}/proxy/{path}"))
        .bearer_auth(key);
    if vendor == "yappointment" {
        request = request.header("content-type", "application/json").body("{}");
    }
    request.send().await.unwrap().status()
}

const CALLS: [(&str, &str, &str); 5] = [
    ("yappointment", "POST", "api/v1/me"),
    ("drchrono", "GET", "api/users/current"),
    ("zocdoc", "GET", "v1/appointments"),
    ("docplanner", "GET", "api/v3/integration/facilities"),
    ("qmatic", "GET", "v1/branches"),
];

#[tokio::test]
async fn a_sqlite_database_moves_into_postgres_and_keeps_serving() {
    // On SQLite, whichever engine the suite runs on.
    let app = spawn_app_with(|s| s.database_url = None).await;
    assert_eq!(app.db.engine(), "sqlite");
    app.login().await;
    connect_every_vendor(&app).await;
    let key = app.api_key(1).await;
    for (vendor, method, path) in CALLS {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        assert_eq!(proxy(&app.address, &key, vendor, method, path).await, StatusCode::OK, "{vendor} before the copy");
    }
    // Another clinic disconnected while its vendor could not revoke: revocations are pending.
    let other = app.other_clinic_browser().await;
    let authorize = other.start_connect("yappointment").await;
    let callback = other.consent(&authorize, "approve").await;
    assert_eq!(other.get(callback.as_str()).await.status(), StatusCode::SEE_OTHER);
    app.sandbox.set_failure("yappointment", Endpoint::Revoke, Failure::Status(503), None);
    assert_eq!(other.disconnect("yappointment").await.status(), StatusCode::SEE_OTHER);
    app.sandbox.clear_failures();
    let pending = app.db.pending_revocation_count().await.unwrap();
    assert!(pending >= 1, "{pending}");
    let source_counts = app.db.table_counts().await.unwrap();

    let target = fresh_postgres_database().await;
    let output = db_copy(&app, &target).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("every count matches"), "{stdout}");
    assert!(!stdout.contains("postgres://"), "the target's URL is not printed");

    // A target that is not empty is refused, and left as it was.
    let again = db_copy(&app, &target).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"), "{}", String::from_utf8_lossy(&again.stderr));

    // An instance on PostgreSQL serves every connection with the copied key…
    let mut settings = app.settings.clone();
    settings.database_url = Some(SecretString::from(target));
    let moved = Application::build(settings, app.clock.clone()).await.unwrap();
    let (moved_db, address) = (moved.db().clone(), format!("http://127.0.0.1:{}", moved.port()));
    tokio::spawn(moved.run_until_stopped());
    assert_eq!(moved_db.engine(), "postgres");
    assert_eq!(moved_db.table_counts().await.unwrap(), source_counts);
    assert_eq!(moved_db.pending_revocation_count().await.unwrap(), pending);
    for (vendor, method, path) in CALLS {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        assert_eq!(proxy(&address, &key, vendor, method, path).await, StatusCode::OK, "{vendor} after the copy");
    }
    let qmatic = app.sandbox.requests_to("qmatic", &format!("/{QMATIC_REGION}/v1/branches"));
    assert!(qmatic.last().unwrap().header("x-account").is_some(), "the stored parameters came along");
    // …the admin's session (the same cookie, sealed state copied byte for byte)…
    let dashboard = app.browser.client.get(format!("{address}/connections")).send().await.unwrap();
    assert_eq!(dashboard.status(), StatusCode::OK);
    assert!(dashboard.text().await.unwrap().contains("admin@clinic-a.test"));
    // …and sign-in, with the copied password hash; ids go on past the copied ones.
    let fresh = Browser::new(&address);
    fresh.login("admin@clinic-b.test", PASSWORD).await;
    let new_clinic = moved_db.ensure_clinic("Clinic C", 1).await.unwrap();
    assert!(new_clinic > 2, "{new_clinic}");
}
