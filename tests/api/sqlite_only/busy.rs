//! Another process holds SQLite's one write lock for longer than the busy timeout: a write gets
//! a clear answer (503, "nothing was changed, try again"), a log line with the cause, loses
//! nothing, and the same request works once the lock is released. Reads go on meanwhile (WAL).

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{captured_logs, spawn_app_with};

#[tokio::test]
async fn a_write_lock_held_by_another_process_past_the_busy_timeout_loses_nothing() {
    let app = spawn_app_with(|s| {
        s.database_url = None;
        s.database_timeout_seconds = 1;
    })
    .await;
    app.login().await;
    app.connect_yappointment().await;
    let before = app.db.connection(1, "yappointment").await.unwrap().unwrap();
    // The connect's message is shown (and taken out of the session) before the lock is taken.
    assert_eq!(app.browser.get("/connections/yappointment").await.status(), StatusCode::OK);

    // A second process takes the write lock and keeps it for three seconds.
    let path = app.settings.database_path();
    let script = "import sqlite3, sys, time\n\
                  c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                  c.execute('BEGIN IMMEDIATE')\n\
                  print('locked', flush=True)\n\
                  time.sleep(3)\n\
                  c.execute('ROLLBACK')\n";
    let mut holder = tokio::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (it holds the lock from a second process)");
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("locked"));

    // Reads go on: WAL readers do not wait for the writer.
    assert_eq!(app.browser.get("/connections/yappointment").await.status(), StatusCode::OK);
    // A write waits out the busy timeout, then says so; nothing was changed.
    let response = app.browser.disconnect("yappointment").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let page = response.text().await.unwrap();
    assert!(page.contains("Nothing was changed; please try again in a moment"), "{page}");
    assert!(captured_logs().contains("database is locked"), "the log line names the cause");
    let after = app.db.connection(1, "yappointment").await.unwrap().unwrap();
    assert_eq!((after.status.as_str(), after.version), ("connected", before.version));
    assert!(app.sandbox.requests_to("yappointment", "/oauth/revoke").is_empty(), "nothing revoked either");

    // Once the other process lets go, the same request works.
    tokio::time::timeout(Duration::from_secs(10), holder.wait()).await.unwrap().unwrap();
    let response = app.browser.disconnect("yappointment").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.db.connection(1, "yappointment").await.unwrap().unwrap().status, "disconnected");
}
