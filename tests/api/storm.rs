//! Refresh storms shared by two instances on one database: every connection refreshed exactly
//! once between them; and with one instance killed (SIGKILL) halfway, the other finishes every
//! connection, nothing is refreshed twice, and no connection still marked connected has lost a
//! rotation (the sandbox's reuse detection never fires).

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clinic_connect::clock::{Clock, SystemClock};
use clinic_connect::connections::connection_binding;
use clinic_connect::db::Db;
use clinic_connect::keys::generate_env_lines;
use clinic_connect::sandbox::{self, SandboxControl};
use clinic_connect::vault::Vault;
use clinic_connect::worker;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{seed_yappointment, spawn_app, test_database_url};

const STORM: usize = 10_000;

/// The refresh tokens presented to the sandbox's yAppointment since `from` (an index into its
/// requests), with how many times each was presented.
fn presented(sandbox: &SandboxControl, from: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for request in sandbox.requests_to("yappointment", "/oauth/token").into_iter().skip(from) {
        let Some(body) = request.json() else { continue };
        if body["grant_type"] == "refresh_token" {
            *seen.entry(body["refresh_token"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
        }
    }
    seen
}

#[tokio::test]
async fn a_storm_shared_by_two_instances_refreshes_every_connection_exactly_once() {
    let app = spawn_app().await;
    let (_, second) = app.second_app().await;
    let now = app.clock.now();
    let started = Instant::now();
    let ids = seed_yappointment(&app.db, &app.state.vault, &app.sandbox, STORM, now, now + 3600).await;
    let seeded = started.elapsed();
    let before = app.sandbox.requests_to("yappointment", "/oauth/token").len();
    app.clock.advance(3600 + 60);

    let started = Instant::now();
    let (first, other) = tokio::join!(worker::refresh_due(&app.state), worker::refresh_due(&second));
    eprintln!("storm of {STORM} on two instances: seeded in {seeded:?}, refreshed in {:?}", started.elapsed());
    // Should it fail, the warnings say why (a lease refused, a refresh not recorded…).
    let warnings = || {
        let logs = crate::helpers::captured_logs();
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(" WARN clinic_connect") || l.contains(" ERROR clinic_connect"))
            .collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    assert_eq!(first + other, STORM, "attempted between them: {first} + {other}; warnings:\n{}", warnings());

    let seen = presented(&app.sandbox, before);
    assert_eq!(seen.len(), STORM, "every connection's refresh token was presented");
    assert!(seen.values().all(|n| *n == 1), "none twice");
    assert_eq!(app.sandbox.refresh_reuse_detections(), 0);
    assert_eq!(app.db.count_due("yappointment", app.clock.now() + 5 * 60).await.unwrap(), 0);
    // Each stored refresh token is the live one the vendor rotated to.
    for clinic in ids.iter().step_by(97) {
        let row = app.db.connection(*clinic, "yappointment").await.unwrap().unwrap();
        let binding = connection_binding(*clinic, "yappointment", "refresh_token");
        let refresh = app.state.vault.open_str(row.refresh_token.as_ref().unwrap(), &binding).unwrap();
        assert!(app.sandbox.yappointment_refresh_token_is_live(refresh.expose_secret()));
    }
}

/// `clinic-connect serve` on this database with its worker every second, the sandbox elsewhere.
async fn start_binary(data_dir: &std::path::Path, database: Option<&str>, keys: &str, sandbox_url: &str) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clinic-connect"));
    command
        .arg("serve")
        .env_clear()
        .env("CLINIC_CONNECT_DATA_DIR", data_dir)
        .env("CLINIC_CONNECT_LISTEN", "127.0.0.1:0")
        .env("CLINIC_CONNECT_SANDBOX_URL", sandbox_url)
        // A short vendor timeout keeps the refresh lease short (2 × timeout + 5 s).
        .env("CLINIC_CONNECT_VENDOR_TIMEOUT_SECONDS", "2")
        .env("CLINIC_CONNECT_WORKER_INTERVAL_SECONDS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(url) = database {
        command.env("CLINIC_CONNECT_DATABASE_URL", url);
    }
    for line in keys.lines() {
        if let Some((k, v)) = line.split_once('=') {
            command.env(k, v);
        }
    }
    let mut child = command.spawn().expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("clinic-connect is running at ") {
                return;
            }
        }
        panic!("the binary exited before it was running");
    })
    .await
    .expect("the binary starts within a minute");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

#[tokio::test]
async fn an_instance_killed_mid_storm_leaves_the_other_to_finish_with_nothing_refreshed_twice() {
    let sandbox = sandbox::build("127.0.0.1:0", std::sync::Arc::new(SystemClock), 2).unwrap();
    let control = sandbox.control.clone();
    let sandbox_url = format!("{}/", sandbox.base_url);
    tokio::spawn(sandbox.server);
    let data_dir = tempfile::tempdir().unwrap();
    let database = test_database_url().await;
    let keys = generate_env_lines().unwrap();
    let mut settings = clinic_connect::settings::Settings::from_map(
        &keys.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
    )
    .unwrap();
    settings.data_dir = data_dir.path().to_owned();
    settings.database_url = database.clone().map(SecretString::from);
    let db = Db::open(&settings.database()).await.unwrap();
    let vault = Vault::from_keyring(settings.token_keys.as_ref().unwrap()).unwrap();
    let now = SystemClock.now();
    // Every token already expired: both instances' workers start on the storm at once.
    let ids = seed_yappointment(&db, &vault, &control, STORM, now, now - 1).await;

    let mut first = start_binary(data_dir.path(), database.as_deref(), &keys, &sandbox_url).await;
    let _second = start_binary(data_dir.path(), database.as_deref(), &keys, &sandbox_url).await;
    // Halfway (or so), the first instance dies without a word.
    let deadline = Instant::now() + Duration::from_secs(120);
    while presented(&control, 0).len() < STORM / 3 {
        assert!(Instant::now() < deadline, "the storm did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let at_kill = presented(&control, 0).len();
    assert!(at_kill < STORM, "killed before the end ({at_kill})");

    // The survivor finishes: every connection refreshed, or — the few the dead instance had
    // asked the vendor about without writing the answer down — marked for reconnection.
    let deadline = Instant::now() + Duration::from_secs(180);
    let (mut connected, mut in_doubt) = (0, 0);
    loop {
        let due = db.count_due("yappointment", SystemClock.now()).await.unwrap();
        if due == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{due} connections left due");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for clinic in &ids {
        let row = db.connection(*clinic, "yappointment").await.unwrap().unwrap();
        match row.status.as_str() {
            "connected" => {
                connected += 1;
                // No rotation lost: what is stored is the token the vendor rotated to.
                let binding = connection_binding(*clinic, "yappointment", "refresh_token");
                let refresh = vault.open_str(row.refresh_token.as_ref().unwrap(), &binding).unwrap();
                assert!(control.yappointment_refresh_token_is_live(refresh.expose_secret()), "clinic {clinic}");
                assert!(row.expires_at.unwrap() > now, "clinic {clinic} refreshed");
            }
            "reconnect_needed" => {
                in_doubt += 1;
                let events = db.events(*clinic, "yappointment").await.unwrap();
                assert!(events[0].detail.contains("interrupted"), "{:?}", events[0]);
            }
            other => panic!("clinic {clinic} is {other}"),
        }
    }
    let seen = presented(&control, 0);
    assert!(seen.values().all(|n| *n == 1), "no refresh token presented twice");
    assert_eq!(control.refresh_reuse_detections(), 0, "no rotated-out token was ever presented");
    eprintln!("storm with a kill: {at_kill} presented at the kill, {connected} refreshed, {in_doubt} in doubt");
    assert_eq!(connected + in_doubt, STORM);
    // At most what one instance has in flight at once was in doubt when it died.
    assert!(in_doubt <= clinic_connect::tokens::BATCH_CONCURRENCY, "{in_doubt} in doubt");
    // Each connection still connected was refreshed once; one in doubt at most once.
    assert!(seen.len() >= connected && seen.len() <= STORM, "{} presented", seen.len());
}
