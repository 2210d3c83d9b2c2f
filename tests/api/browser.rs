//! A real browser: headless Chromium through chromedriver signs in, connects yAppointment through
//! the sandbox consent page, sees the company name, and disconnects.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::{Child, Command};

use clinic_connect::sandbox::{
    DOCPLANNER_CLIENT_ID, DOCPLANNER_CLIENT_SECRET, DOCPLANNER_DOMAIN, DOCPLANNER_FACILITY_NAME,
};

use crate::helpers::{spawn_app, PASSWORD};

pub(crate) struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A fresh Chromium profile folder. Dropping it also ends any Chromium still running on it (a
/// test that failed before closing its session), found by the folder's unique path.
pub(crate) struct Profile(tempfile::TempDir);

impl Profile {
    pub(crate) fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let pattern = format!("user-data-dir={}", self.0.path().display());
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f", "--"])
            .arg(pattern)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub(crate) async fn start_chromedriver() -> Driver {
    let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
    let port = free_port();
    let child = Command::new(&binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary} ({e}); the README's test command installs chromium-driver"));
    let url = format!("http://127.0.0.1:{port}");
    // Wait until chromedriver answers its status endpoint (bounded: 200 × 50 ms).
    let probe = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = probe.get(format!("{url}/status")).send().await {
            if r.status().is_success() {
                return Driver { child, url };
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not come up on {url}");
}

pub(crate) async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("chromedriver starts a headless Chromium session")
}

/// Waits until the element shows `expected` (a page navigation may still be under way: the old
/// page's element can be found, or go stale, in between). Bounded: 200 × 50 ms. Returns an
/// error rather than panicking, so the browser session is still closed on failure.
pub(crate) async fn wait_for_text(c: &Client, css: &str, expected: &str) -> Result<(), fantoccini::error::CmdError> {
    let mut last = String::new();
    for _ in 0..200 {
        if let Ok(element) = c.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                if text == expected {
                    return Ok(());
                }
                last = text;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(fantoccini::error::CmdError::NotW3C(serde_json::json!(format!(
        "{css} never showed {expected:?} (last: {last:?})"
    ))))
}

#[tokio::test]
async fn an_admin_connects_and_disconnects_yappointment_and_docplanner_in_a_real_browser() {
    let app = spawn_app().await;
    let driver = start_chromedriver().await;
    let profile = Profile::new();
    let c = browser(&driver, profile.path()).await;

    let result = async {
        c.goto(&format!("{}/connections", app.address)).await?;
        // Not signed in: sent to the sign-in page.
        c.wait().for_element(Locator::Id("email")).await?.send_keys("admin@clinic-a.test").await?;
        c.find(Locator::Id("password")).await?.send_keys(PASSWORD).await?;
        c.find(Locator::Id("sign-in")).await?.click().await?;

        c.wait().for_element(Locator::Id("connect-yappointment")).await?.click().await?;
        // The sandbox's consent page, on the vendor's origin.
        let approve = c.wait().for_element(Locator::Id("approve")).await?;
        assert!(c.current_url().await?.as_str().starts_with(&app.sandbox_url));
        assert!(c.source().await?.contains("bookings:read"));
        approve.click().await?;

        // Back on our detail page, on a URL without the code.
        wait_for_text(&c, "#account-name", "Maple Street Clinic").await?;
        wait_for_text(&c, "#status", "Connected").await?;
        let url = c.current_url().await?;
        assert_eq!(url.path(), "/connections/yappointment");
        assert!(url.query().is_none());

        c.find(Locator::Id("disconnect")).await?.click().await?;
        wait_for_text(&c, "#status", "Not connected").await?;

        // A client-credentials vendor, through its form.
        c.goto(&format!("{}/connections", app.address)).await?;
        c.wait().for_element(Locator::Id("connect-docplanner")).await?.click().await?;
        c.wait().for_element(Locator::Id("field-client_id")).await?.send_keys(DOCPLANNER_CLIENT_ID).await?;
        c.find(Locator::Id("field-client_secret")).await?.send_keys(DOCPLANNER_CLIENT_SECRET).await?;
        c.find(Locator::Css(&format!("#field-domain option[value='{DOCPLANNER_DOMAIN}']"))).await?.click().await?;
        c.find(Locator::Css("#connect-form button[type=submit]")).await?.click().await?;
        wait_for_text(&c, "#account-name", DOCPLANNER_FACILITY_NAME).await?;
        wait_for_text(&c, "#status", "Connected").await?;
        assert!(!c.source().await?.contains(DOCPLANNER_CLIENT_SECRET));
        c.find(Locator::Id("disconnect")).await?.click().await?;
        wait_for_text(&c, "#status", "Not connected").await?;
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = c.close().await;
    result.unwrap();
    assert_eq!(app.sandbox.requests_to("yappointment", "/oauth/token").len(), 1);
    assert!(!app.sandbox.requests_to("yappointment", "/oauth/revoke").is_empty());
}

#[tokio::test]
async fn a_patient_searches_logs_in_with_zocdoc_sees_appointments_and_logs_out() {
    let app = spawn_app().await;
    let driver = start_chromedriver().await;
    let profile = Profile::new();
    let c = browser(&driver, profile.path()).await;

    let result = async {
        c.goto(&format!("{}/care", app.address)).await?;
        c.wait().for_element(Locator::Id("specialty")).await?.send_keys("Dermatology").await?;
        c.find(Locator::Id("search")).await?.click().await?;
        c.wait().for_element(Locator::Id("results")).await?;
        assert!(c.source().await?.contains("Dr. Marcus Webb, MD"));

        c.find(Locator::Id("care-email")).await?.send_keys("pat@example.com").await?;
        c.find(Locator::Id("care-login")).await?.click().await?;
        // Zocdoc's sign-in page, pre-filled with the email.
        let approve = c.wait().for_element(Locator::Id("approve")).await?;
        assert!(c.current_url().await?.as_str().starts_with(&app.sandbox_url));
        let email = c.find(Locator::Id("zocdoc-email")).await?.prop("value").await?;
        assert_eq!(email.as_deref(), Some("pat@example.com"));
        approve.click().await?;

        // Back on the search, still showing the results, now logged in.
        c.wait().for_element(Locator::Id("my-appointments")).await?;
        let url = c.current_url().await?;
        assert_eq!(url.path(), "/care");
        assert_eq!(url.query(), Some("q=&specialty=Dermatology"), "the search the patient was on");
        assert!(c.source().await?.contains("Dr. Marcus Webb, MD"));

        c.find(Locator::Id("my-appointments")).await?.click().await?;
        c.wait().for_element(Locator::Id("appointments")).await?;
        c.find(Locator::Id("care-logout")).await?.click().await?;
        c.wait().for_element(Locator::Id("care-login")).await?;
        c.goto(&format!("{}/care/appointments", app.address)).await?;
        c.wait().for_element(Locator::Id("appointments-problem")).await?;
        assert!(c.find(Locator::Id("appointments")).await.is_err(), "nothing private after logout");
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = c.close().await;
    result.unwrap();
    assert_eq!(app.sandbox.zocdoc_links().len(), 1);
}
