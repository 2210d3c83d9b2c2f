//! PostgreSQL restarting while the app serves: requests fail cleanly (quickly, with a clear
//! answer) while it is down, and the app recovers by itself, without a restart of its own.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use secrecy::SecretString;

use crate::helpers::spawn_app_with;

/// A PostgreSQL cluster of this test's own (the suite's is shared with other tests, which a
/// restart would disturb), removed when dropped.
struct Cluster {
    dir: String,
}

impl Cluster {
    fn script(&self, command: &str) -> String {
        let out = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres"))
            .args([command, &self.dir])
            .output()
            .unwrap();
        assert!(out.status.success(), "scripts/postgres {command}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres"))
            .args(["destroy", &self.dir])
            .output();
    }
}

async fn proxy_me(base: &str, key: &str) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/connections/yappointment/proxy/api/v1/me"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body("{}")
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn a_postgres_restart_under_load_fails_requests_cleanly_and_the_app_recovers_by_itself() {
    let suffix = clinic_connect::vault::random_token(8).unwrap().replace(['-', '_'], "x");
    let cluster = Cluster { dir: format!("/tmp/clinic-connect-restart-{suffix}") };
    let url = cluster.script("init");
    let app = spawn_app_with(|s| {
        s.database_url = Some(SecretString::from(url));
        s.database_timeout_seconds = 2;
    })
    .await;
    app.login().await;
    app.connect_yappointment().await;
    let key = app.api_key(1).await;

    // Load: calls keep coming from several clients the whole time.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (address, key, stop) = (app.address.clone(), key.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    seen.push(proxy_me(&address, &key).await.0);
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(proxy_me(&app.address, &key).await.0, StatusCode::OK);

    cluster.script("stop");
    // While it is down: a clear answer within the database timeout, nothing hangs.
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = proxy_me(&app.address, &key).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("\"unavailable\""), "{body}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        let page = app.browser.get("/connections").await;
        assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
        let text = page.text().await.unwrap();
        assert!(text.contains("its data cannot be reached. Nothing was changed"), "{text}");
        let readiness = app.browser.get("/readyz").await;
        assert_eq!(readiness.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    cluster.script("start");
    // The app reconnects by itself: within a bounded number of tries, every call works again.
    let mut recovered = false;
    for _ in 0..60 {
        if proxy_me(&app.address, &key).await.0 == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "the app did not recover after PostgreSQL came back");
    for _ in 0..10 {
        assert_eq!(proxy_me(&app.address, &key).await.0, StatusCode::OK);
    }
    let page = app.browser.get("/connections").await;
    assert_eq!(page.status(), StatusCode::OK, "the admin's session survived in the database");
    assert_eq!(app.browser.get("/readyz").await.status(), StatusCode::OK);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut statuses = Vec::new();
    for task in load {
        statuses.extend(task.await.unwrap());
    }
    // Every answer under load was a success or a clean 503, never a hang or a 5xx of another kind.
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::SERVICE_UNAVAILABLE), "{statuses:?}");
    assert!(statuses.contains(&StatusCode::SERVICE_UNAVAILABLE) && statuses.contains(&StatusCode::OK));
}
