//! The real binary, killed with SIGKILL right after the vendor rotated a refresh token: after a
//! restart the connection works or says "Reconnect needed", and never replays a dead token.

use std::process::Stdio;
use std::time::Duration;

use clinic_connect::clock::SystemClock;
use clinic_connect::keys::generate_env_lines;
use clinic_connect::sandbox;
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{location, test_database_url, Browser};

const DEMO_EMAIL: &str = "admin@demo.clinic";
const DEMO_PASSWORD: &str = "demo-password-1234";

pub struct Running {
    pub child: Child,
    pub address: String,
}

/// Starts `clinic-connect serve` against the given sandbox (on this database, when it is not the
/// SQLite file in the data folder) and waits for its "running at" line.
pub async fn start(data_dir: &std::path::Path, database_url: Option<&str>, keys: &str, sandbox_url: &str) -> Running {
    start_with_worker(data_dir, database_url, keys, sandbox_url, "86400").await
}

/// As [`start`], with the background worker every `interval` seconds.
pub async fn start_with_worker(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    keys: &str,
    sandbox_url: &str,
    interval: &str,
) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clinic-connect"));
    command.arg("serve").env_clear().env("CLINIC_CONNECT_DATA_DIR", data_dir);
    if let Some(url) = database_url {
        command.env("CLINIC_CONNECT_DATABASE_URL", url);
    }
    command
        .env("CLINIC_CONNECT_LISTEN", "127.0.0.1:0")
        .env("CLINIC_CONNECT_SANDBOX_URL", sandbox_url)
        // A short vendor timeout keeps the refresh lease short (2 × timeout + 5 s).
        .env("CLINIC_CONNECT_VENDOR_TIMEOUT_SECONDS", "2")
        .env("CLINIC_CONNECT_WORKER_INTERVAL_SECONDS", interval)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for line in keys.lines() {
        if let Some((k, v)) = line.split_once('=') {
            command.env(k, v);
        }
    }
    let mut child = command.spawn().expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let address = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("clinic-connect is running at ") {
                return url.trim_end_matches('/').to_owned();
            }
        }
        panic!("the binary exited before it was running");
    })
    .await
    .expect("the binary starts within a minute");
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Running { child, address }
}

async fn refresh_now(admin: &Browser) -> String {
    let csrf = admin.csrf("/connections/yappointment").await;
    let response = admin.post_form("/connections/yappointment/refresh", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    admin.get_text("/connections/yappointment").await
}

#[tokio::test]
async fn killed_mid_rotation_the_connection_works_or_asks_to_reconnect_after_restart() {
    let sandbox = sandbox::build("127.0.0.1:0", std::sync::Arc::new(SystemClock), 1).unwrap();
    let control = sandbox.control.clone();
    let sandbox_url = format!("{}/", sandbox.base_url);
    tokio::spawn(sandbox.server);
    let data_dir = tempfile::tempdir().unwrap();
    let database = test_database_url().await;
    let keys = generate_env_lines().unwrap();

    let first = start(data_dir.path(), database.as_deref(), &keys, &sandbox_url).await;
    let admin = Browser::new(&first.address);
    admin.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    let authorize = admin.start_connect("yappointment").await;
    let callback = admin.consent(&authorize, "approve").await;
    assert_eq!(location(&admin.get(callback.as_str()).await), "/connections/yappointment");

    // The vendor rotates the refresh token, and its answer is held back; the app is killed
    // as soon as the rotation has happened.
    control.hold_answers("yappointment", "/oauth/token", Duration::from_secs(30), 1);
    let csrf = admin.csrf("/connections/yappointment").await;
    let pending = {
        let client = admin.client.clone();
        let url = format!("{}/connections/yappointment/refresh", first.address);
        tokio::spawn(async move { client.post(url).form(&[("csrf", csrf)]).send().await })
    };
    let mut child = first.child;
    for _ in 0..2000 {
        if control.held_answers_handled() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(control.held_answers_handled(), 1, "the vendor rotated the refresh token");
    child.kill().await.unwrap(); // SIGKILL
    let _ = pending.await;

    // Restarted on the same database: the connection keeps working with what it has…
    let second = start(data_dir.path(), database.as_deref(), &keys, &sandbox_url).await;
    let admin = Browser::new(&second.address);
    admin.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    let page = admin.get_text("/connections/yappointment").await;
    // (Shown as being refreshed while the dead process's lease lasts.)
    assert!(
        page.contains(r#"<span id="status">Connected</span>"#)
            || page.contains(r#"<span id="status">Refreshing</span>"#),
        "{page}"
    );

    // …and once the dead process's lease has run out, a refresh does not replay the
    // possibly rotated-out refresh token: the connection asks to be reconnected.
    let mut last = String::new();
    for _ in 0..40 {
        last = refresh_now(&admin).await;
        if last.contains(r#"<span id="status">Reconnect needed</span>"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(last.contains(r#"<span id="status">Reconnect needed</span>"#), "{last}");
    assert!(last.contains("refresh was interrupted"), "{last}");
    assert_eq!(control.refresh_reuse_detections(), 0, "the dead refresh token was never presented");

    // Reconnecting restores it.
    let authorize = admin.start_connect("yappointment").await;
    let callback = admin.consent(&authorize, "approve").await;
    assert_eq!(admin.get(callback.as_str()).await.status(), StatusCode::SEE_OTHER);
    let page = admin.get_text("/connections/yappointment").await;
    assert!(page.contains(r#"<span id="status">Connected</span>"#));
    drop(second);
}

/// The vendor revokes, and the app is killed before it writes that down: after a restart the
/// connection is disconnected (the disconnect was committed, with its revocations queued, before
/// the vendor was called) and the queued revocations are retried by the worker until the vendor
/// confirms them (revoking a token twice is harmless: RFC 7009 answers 200 for a dead token).
#[tokio::test]
async fn killed_between_the_vendors_revocation_and_our_record_of_it_the_connection_stays_disconnected() {
    let sandbox = sandbox::build("127.0.0.1:0", std::sync::Arc::new(SystemClock), 1).unwrap();
    let control = sandbox.control.clone();
    let sandbox_url = format!("{}/", sandbox.base_url);
    tokio::spawn(sandbox.server);
    let data_dir = tempfile::tempdir().unwrap();
    let database = test_database_url().await;
    let keys = generate_env_lines().unwrap();

    let first = start(data_dir.path(), database.as_deref(), &keys, &sandbox_url).await;
    let admin = Browser::new(&first.address);
    admin.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    let authorize = admin.start_connect("yappointment").await;
    let callback = admin.consent(&authorize, "approve").await;
    assert_eq!(location(&admin.get(callback.as_str()).await), "/connections/yappointment");
    let bearer = control.requests_to("yappointment", "/api/v1/me")[0].header("authorization").unwrap().to_owned();

    // The vendor revokes the first token and its answer is held back; the app dies meanwhile.
    control.hold_answers("yappointment", "/oauth/revoke", Duration::from_secs(30), 1);
    let csrf = admin.csrf("/connections/yappointment").await;
    let pending = {
        let client = admin.client.clone();
        let url = format!("{}/connections/yappointment/disconnect", first.address);
        tokio::spawn(async move { client.post(url).form(&[("csrf", csrf)]).send().await })
    };
    let mut child = first.child;
    for _ in 0..2000 {
        if control.held_answers_handled() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(control.held_answers_handled(), 1, "the vendor revoked");
    child.kill().await.unwrap(); // SIGKILL
    let _ = pending.await;

    // Restarted (its worker every second): never "Connected" with dead tokens.
    let second = start_with_worker(data_dir.path(), database.as_deref(), &keys, &sandbox_url, "1").await;
    let admin = Browser::new(&second.address);
    admin.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    let page = admin.get_text("/connections/yappointment").await;
    assert!(page.contains(r#"<span id="status">Not connected</span>"#), "{page}");
    // The revocations the dead process had in hand are retried once their lease runs out.
    let mut last = String::new();
    for _ in 0..60 {
        last = admin.get_text("/connections/yappointment").await;
        if last.contains("Access revoked at the vendor on attempt") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(last.contains("Access revoked at the vendor on attempt"), "{last}");
    let probe = reqwest::Client::new()
        .post(format!("{sandbox_url}yappointment/api/v1/me"))
        .header("authorization", bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), StatusCode::UNAUTHORIZED, "the token is dead at the vendor");
    drop(second);
}
