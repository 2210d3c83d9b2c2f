//! The operator's TOML file: overrides without recompiling, new vendors of an existing shape, and
//! a clear refusal of a bad file.

use clinic_connect::clock::ManualClock;
use clinic_connect::sandbox::{YAPPOINTMENT_CLIENT_ID, YAPPOINTMENT_CLIENT_SECRET};
use clinic_connect::startup::Application;
use reqwest::StatusCode;

use crate::helpers::{query_param, spawn_app_with, test_settings};

fn write(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("vendors.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_bad_file_is_refused_at_startup_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "[vendors.drchrono.environments.production]\ntoken_url = \"not a url\"\n");
    let mut settings = test_settings(dir.path(), "http://127.0.0.1:1");
    settings.config_path = Some(path.clone());
    let err = format!("{:#}", Application::build(settings, ManualClock::starting_now()).await.err().unwrap());
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("vendors.drchrono.environments.production.token_url"), "{err}");
    assert!(err.contains("not a URL"), "{err}");
}

#[tokio::test]
async fn overridden_scopes_are_requested_and_a_403_names_the_missing_permission() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "[vendors.drchrono]\nscopes = [\"calendar:read\", \"patients:read\"]\n");
    let app = spawn_app_with(|s| s.config_path = Some(path)).await;
    app.login().await;
    let authorize = app.browser.start_connect("drchrono").await;
    assert_eq!(query_param(&authorize, "scope").as_deref(), Some("calendar:read patients:read"));
    let callback = app.browser.consent(&authorize, "approve").await;
    assert_eq!(app.browser.get(callback.as_str()).await.status(), StatusCode::SEE_OTHER);
    let detail = app.browser.get_text("/connections/drchrono").await;
    assert!(detail.contains(r#"<span id="status">Connected</span>"#));
    assert!(detail.contains("lacks the `user:read` permission"), "{detail}");
}

#[tokio::test]
async fn a_new_vendor_of_an_existing_shape_connects_without_recompiling() {
    let dir = tempfile::tempdir().unwrap();
    // The sandbox's yAppointment stands in for "Acme Booking", a vendor of the same shape.
    let app = spawn_app_with(|s| {
        let base = s.sandbox_url.clone().unwrap();
        let y = |p: &str| base.join(&format!("yappointment/{p}")).unwrap().to_string();
        let text = format!(
            "[vendors.acme]\nlike = \"yappointment\"\nname = \"Acme Booking\"\nclient_id = \"{YAPPOINTMENT_CLIENT_ID}\"\n\
             [vendors.acme.environments.production]\nauthorize_url = \"{}\"\ntoken_url = \"{}\"\nrevoke_url = \"{}\"\napi_base = \"{}\"\n",
            y("oauth/authorize"),
            y("oauth/token"),
            y("oauth/revoke"),
            y("")
        );
        s.config_path = Some(write(dir.path(), &text));
        s.client_variables.insert("CLINIC_CONNECT_ACME_CLIENT_SECRET".into(), YAPPOINTMENT_CLIENT_SECRET.into());
    })
    .await;
    app.login().await;
    let dashboard = app.browser.get_text("/connections").await;
    assert!(dashboard.contains(r#"id="card-acme""#) && dashboard.contains("Acme Booking"));

    let authorize = app.browser.start_connect("acme").await;
    assert_eq!(authorize.path(), "/yappointment/oauth/authorize");
    assert!(query_param(&authorize, "redirect_uri").unwrap().ends_with("/connections/acme/callback"));
    let callback = app.browser.consent(&authorize, "approve").await;
    assert_eq!(app.browser.get(callback.as_str()).await.status(), StatusCode::SEE_OTHER);
    let detail = app.browser.get_text("/connections/acme").await;
    assert!(detail.contains(r#"<span id="status">Connected</span>"#), "{detail}");
    assert!(detail.contains("Maple Street Clinic"));
}
