//! Service API keys as the clinic admin and the operator manage them: the "API keys" page
//! (create, shown once; revoke, after a confirmation), `clinic-connect apikey list|create|revoke`,
//! revocation holding at once on every instance, and unknown keys logged once a minute per
//! client address. No key ever reaches a log, an address or the database in clear.

use std::process::Output;

use clinic_connect::client_addr::TrustedProxies;
use reqwest::header::LOCATION;
use reqwest::{Response, StatusCode};

use crate::helpers::{captured_logs, location, on_postgres, spawn_app, spawn_app_with, Browser, TestApp};

/// The key a creation page shows, once.
fn shown_key(page: &str) -> String {
    let re = regex::Regex::new(r#"id="new-key" value="(cck_[^"]+)""#).unwrap();
    re.captures(page).unwrap_or_else(|| panic!("no new key on the page: {page}"))[1].to_owned()
}

async fn create_key(browser: &Browser, label: &str) -> Response {
    let csrf = browser.csrf("/api-keys").await;
    browser.post_form("/api-keys", &[("label", label), ("csrf", &csrf)]).await
}

/// `GET /api/v1/connections` at `address` with this key; its status.
async fn status_with(address: &str, key: &str) -> StatusCode {
    reqwest::Client::new().get(format!("{address}/api/v1/connections")).bearer_auth(key).send().await.unwrap().status()
}

fn notice(page: &str) -> String {
    let re = regex::Regex::new(r#"(?s)<div class="notice (notice-[a-z]+)" id="flash"[^>]*>(.*?)</div>"#).unwrap();
    re.captures(page).map(|c| format!("{}: {}", &c[1], &c[2])).unwrap_or_default()
}

#[tokio::test]
async fn an_admin_creates_a_key_that_is_shown_once_and_never_again() {
    let app = spawn_app().await;
    app.login().await;
    let dashboard = app.browser.get_text("/connections").await;
    assert!(dashboard.contains(r#"<a href="/api-keys" id="nav-api-keys">API keys</a>"#), "{dashboard}");
    let empty = app.browser.get_text("/api-keys").await;
    assert!(empty.contains(r#"id="no-live-keys""#), "{empty}");

    let response = create_key(&app.browser, "  booking system ").await;
    // The page that shows the key is the answer to the form itself: no redirect, so the key is
    // in no address.
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(LOCATION).is_none());
    assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
    let page = response.text().await.unwrap();
    let key = shown_key(&page);
    assert_eq!(page.matches(&key).count(), 1, "shown once, in its field only: {page}");
    assert!(page.contains("shown only this once"), "{page}");
    assert!(page.contains(r#"class="notice notice-warning" id="store-it""#), "the warning has a kind: {page}");
    assert!(notice(&page).starts_with("notice-success"), "{page}");

    // It works, and the list says it was used — without showing it again.
    assert_eq!(status_with(&app.address, &key).await, StatusCode::OK);
    let list = app.browser.get_text("/api-keys").await;
    assert!(!list.contains(&key));
    assert!(!list.contains(&key[4..12]), "not even a part of it");
    assert!(list.contains("<h3>booking system</h3>"), "{list}");
    assert!(!list.contains(r#"id="new-key""#));
    assert!(!list.contains("<dd>never</dd>"), "its use is noted: {list}");

    // A second live key with the same label is refused, and so is an empty label; nothing is created.
    let response = create_key(&app.browser, "booking system").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let page = response.text().await.unwrap();
    assert!(page.contains("already labelled “booking system”"), "{page}");
    assert!(!page.contains(r#"id="new-key""#));
    let response = create_key(&app.browser, "   ").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains(r#"class="notice notice-error" id="form-error""#));
    assert_eq!(app.db.api_keys_of_clinic(1).await.unwrap().len(), 1);

    // Nowhere in the logs, nor in clear in the database.
    assert!(!captured_logs().contains(&key));
    assert!(!String::from_utf8_lossy(&app.database_bytes().await).contains(&key));
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_on_every_instance() {
    let app = spawn_app().await;
    app.login().await;
    let key = shown_key(&create_key(&app.browser, "crm").await.text().await.unwrap());
    let other = shown_key(&create_key(&app.browser, "booking system").await.text().await.unwrap());
    let second = app.second_instance().await;
    for address in [&app.address, &second] {
        assert_eq!(status_with(address, &key).await, StatusCode::OK);
    }
    let id = app.db.api_keys_of_clinic(1).await.unwrap().into_iter().find(|k| k.label == "crm").unwrap().id;

    // Revoking asks first, naming the key and what will happen; the page itself changes nothing.
    let list = app.browser.get_text("/api-keys").await;
    assert!(list.contains(&format!(r#"href="/api-keys/{id}/revoke" id="revoke-{id}">Revoke “crm”…</a>"#)), "{list}");
    let confirm = app.browser.get_text(&format!("/api-keys/{id}/revoke")).await;
    assert!(confirm.contains("Revoke API key “crm”?"), "{confirm}");
    assert!(confirm.contains("It cannot be undone"), "{confirm}");
    assert!(confirm.contains(r#"id="cancel-revoke""#));
    assert_eq!(status_with(&second, &key).await, StatusCode::OK);
    // Without the form's CSRF token nothing happens.
    let forged = app.browser.post_form(&format!("/api-keys/{id}/revoke"), &[("csrf", "forged")]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(status_with(&second, &key).await, StatusCode::OK);

    let csrf = crate::helpers::hidden_field(&confirm, "csrf").unwrap();
    let response = app.browser.post_form(&format!("/api-keys/{id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/api-keys");
    // At once, on the other instance too (it keeps nothing about keys in memory).
    assert_eq!(status_with(&second, &key).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_with(&app.address, &key).await, StatusCode::UNAUTHORIZED);
    let proxied = reqwest::Client::new()
        .get(format!("{second}/api/v1/connections/yappointment/proxy/api/v1/me"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), StatusCode::UNAUTHORIZED);
    // The clinic's other key still works.
    assert_eq!(status_with(&second, &other).await, StatusCode::OK);

    let list = app.browser.get_text("/api-keys").await;
    assert!(notice(&list).contains("notice-success"), "{list}");
    assert!(notice(&list).contains("API key “crm” revoked"), "{list}");
    assert!(list.contains(r#"id="revoked-keys""#) && list.contains("<dt>Revoked</dt>"), "{list}");
    assert!(!list.contains(&format!(r#"id="revoke-{id}""#)), "a revoked key offers no revoke button");

    // Revoking it again says there is nothing to revoke.
    let again = app.browser.post_form(&format!("/api-keys/{id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!(location(&again), "/api-keys");
    assert!(notice(&app.browser.get_text("/api-keys").await).contains("notice-neutral"));

    // Another clinic's admin can neither see nor revoke this clinic's keys.
    let other_id =
        app.db.api_keys_of_clinic(1).await.unwrap().into_iter().find(|k| k.label == "booking system").unwrap().id;
    let intruder = app.other_clinic_browser().await;
    assert!(!intruder.get_text("/api-keys").await.contains("<h3>booking system</h3>"));
    let csrf = intruder.csrf("/api-keys").await;
    let response = intruder.post_form(&format!("/api-keys/{other_id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!(location(&response), "/api-keys");
    assert_eq!(status_with(&second, &other).await, StatusCode::OK);

    assert!(!captured_logs().contains(&key) && !captured_logs().contains(&other));
}

/// `GET /api/v1/connections` with a key that does not exist, through our trusted proxy for `client`.
async fn unknown_key_from(address: &str, client: &str, path: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{address}{path}"))
        .bearer_auth("cck_not-a-key-anyone-issued-0123456789")
        .header("x-forwarded-for", client)
        .send()
        .await
        .unwrap()
        .status()
}

fn unknown_key_lines(client: &str) -> Vec<String> {
    captured_logs()
        .lines()
        .filter(|l| l.contains("unknown or revoked key") && l.contains(&format!("client={client} ")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn unknown_keys_are_logged_once_a_minute_per_client_address() {
    let app = spawn_app_with(|s| s.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap()).await;
    // Addresses no other test uses: the log buffer is shared by every test.
    let (first, second) = ("192.0.2.211", "192.0.2.212");
    for i in 0..10 {
        let path = if i % 2 == 0 { "/api/v1/connections" } else { "/api/v1/connections/yappointment/proxy/api/v1/me" };
        assert_eq!(unknown_key_from(&app.address, first, path).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(unknown_key_lines(first).len(), 1, "{:?}", unknown_key_lines(first));
    assert_eq!(unknown_key_from(&app.address, second, "/api/v1/connections").await, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_key_lines(second).len(), 1, "another address has its own line");

    app.clock.advance(59);
    unknown_key_from(&app.address, first, "/api/v1/connections").await;
    assert_eq!(unknown_key_lines(first).len(), 1);
    app.clock.advance(1);
    unknown_key_from(&app.address, first, "/api/v1/connections").await;
    let lines = unknown_key_lines(first);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains("held_back=10"), "the next line says how many were held back: {lines:?}");
    assert!(!captured_logs().contains("cck_not-a-key-anyone-issued"));
}

/// Runs `clinic-connect` with these arguments against the test app's database.
async fn cli(app: &TestApp, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_clinic-connect"));
    command.args(args).env_clear().env("CLINIC_CONNECT_DATA_DIR", app.data_dir.path());
    if on_postgres() {
        let url = app.settings.database_url.as_ref().unwrap();
        command.env("CLINIC_CONNECT_DATABASE_URL", secrecy::ExposeSecret::expose_secret(url));
    }
    command.output().await.unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn the_cli_lists_and_revokes_a_clinics_keys() {
    let app = spawn_app().await;
    app.login().await;
    let from_page = shown_key(&create_key(&app.browser, "booking system").await.text().await.unwrap());

    let created = cli(&app, &["apikey", "create", "--clinic", "Clinic A", "--label", "crm"]).await;
    assert!(created.status.success(), "{}", stderr(&created));
    // Only the key on stdout, so that a script can take it as it is.
    let key = stdout(&created).trim_end().to_owned();
    assert!(key.starts_with("cck_") && !key.contains('\n'), "{key:?}");
    assert!(stderr(&created).contains("shown once"));
    assert_eq!(status_with(&app.address, &key).await, StatusCode::OK);

    let listed = cli(&app, &["apikey", "list", "--clinic", "Clinic A"]).await;
    assert!(listed.status.success(), "{}", stderr(&listed));
    let table = stdout(&listed);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("LABEL") && lines[0].contains("LAST USED") && lines[0].ends_with("REVOKED"));
    let crm = lines.iter().find(|l| l.starts_with("crm ")).unwrap_or_else(|| panic!("{table}"));
    assert!(crm.ends_with(" -") && !crm.contains("never"), "live, and used: {crm}");
    let booking = lines.iter().find(|l| l.starts_with("booking system ")).unwrap_or_else(|| panic!("{table}"));
    assert!(booking.contains("never"), "{booking}");
    assert!(!table.contains(&key) && !table.contains(&from_page), "never a key: {table}");

    let revoked = cli(&app, &["apikey", "revoke", "--clinic", "Clinic A", "--label", "crm"]).await;
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(stdout(&revoked).contains("Revoked the API key labelled crm"));
    assert_eq!(status_with(&app.address, &key).await, StatusCode::UNAUTHORIZED, "at once, in the running app");
    assert_eq!(status_with(&app.address, &from_page).await, StatusCode::OK);
    let table = stdout(&cli(&app, &["apikey", "list", "--clinic", "Clinic A"]).await);
    let crm = table.lines().find(|l| l.starts_with("crm ")).unwrap().to_owned();
    assert!(crm.ends_with(" UTC"), "the revocation's date: {crm}");
    // The page shows the CLI's revocation too.
    assert!(app.browser.get_text("/api-keys").await.contains(r#"id="revoked-keys""#));

    // A label with no live key, or an unknown clinic, is an error that says so.
    let again = cli(&app, &["apikey", "revoke", "--clinic", "Clinic A", "--label", "crm"]).await;
    assert!(!again.status.success());
    assert!(stderr(&again).contains("no live API key labelled crm"), "{}", stderr(&again));
    let nowhere = cli(&app, &["apikey", "list", "--clinic", "No Such Clinic"]).await;
    assert!(!nowhere.status.success());
    assert!(stderr(&nowhere).contains("no clinic named No Such Clinic"), "{}", stderr(&nowhere));
    let bad = cli(&app, &["apikey", "create", "--clinic", "Clinic A", "--label", " "]).await;
    assert!(!bad.status.success() && stderr(&bad).contains("--label"), "{}", stderr(&bad));
}
