//! In a real browser: an admin who only looks at the dashboard learns that a connection broke
//! behind their back (found by the background health check) or that its key is missing after a
//! restart, follows the banner to what is wrong, opens its details, and mends it. Every page
//! visited passes `webdriver::check_page`.

use fantoccini::{Client, Locator};
use secrecy::{ExposeSecret, SecretString};

use clinic_connect::sandbox::{DOCPLANNER_CLIENT_ID, DOCPLANNER_CLIENT_SECRET, DOCPLANNER_DOMAIN};
use clinic_connect::startup::Application;
use clinic_connect::vault::Vault;
use clinic_connect::worker;

use crate::helpers::{spawn_app, PASSWORD};
use crate::webdriver::{check_page, expect_ok, failure, visit, wait_for_path, wait_for_text, Chromium};

type Result<T = ()> = std::result::Result<T, fantoccini::error::CmdError>;

async fn click_to(c: &Client, id: &str, path: &str) -> Result {
    c.find(Locator::Id(id)).await?.click().await?;
    wait_for_path(c, path).await?;
    check_page(c).await
}

async fn text(c: &Client, css: &str) -> Result<String> {
    c.find(Locator::Css(css)).await?.text().await
}

async fn sign_in(c: &Client, base: &str) -> Result {
    visit(c, &format!("{base}/connections")).await?;
    wait_for_path(c, "/login").await?;
    c.find(Locator::Id("email")).await?.send_keys("admin@clinic-a.test").await?;
    c.find(Locator::Id("password")).await?.send_keys(PASSWORD).await?;
    click_to(c, "sign-in", "/connections").await
}

/// Connects yAppointment from the dashboard, through the sandbox's consent page.
async fn connect_yappointment(c: &Client, base: &str) -> Result {
    visit(c, &format!("{base}/connections")).await?;
    c.find(Locator::Id("connect-yappointment")).await?.click().await?;
    c.wait().for_element(Locator::Id("approve")).await?;
    check_page(c).await?;
    c.find(Locator::Id("approve")).await?.click().await?;
    wait_for_text(c, "#status", "Connected").await?;
    check_page(c).await
}

/// Opens the problem's "Details" and checks the page with it open.
async fn open_details(c: &Client) -> Result<String> {
    c.find(Locator::Css("#problem-details summary")).await?.click().await?;
    let open: bool =
        serde_json::from_value(c.execute("return document.getElementById('problem-details').open;", vec![]).await?)
            .unwrap_or(false);
    if !open {
        return Err(failure("the Details disclosure did not open"));
    }
    check_page(c).await?;
    text(c, "#problem-details").await
}

#[tokio::test]
async fn a_connection_broken_behind_the_admins_back_shows_reconnect_needed_after_a_health_pass() {
    let app = spawn_app().await;
    let c = Chromium::start().await;
    let result = async {
        sign_in(&c, &app.address).await?;
        connect_yappointment(&c, &app.address).await?;
        visit(&c, &format!("{}/connections", app.address)).await?;
        assert_eq!(text(&c, "#status-yappointment").await?, "Connected");
        assert!(c.find(Locator::Id("attention")).await.is_err());

        // The app is uninstalled at yAppointment; nobody here clicks anything. The background
        // health check runs in its time.
        assert_eq!(app.sandbox.revoke_all_grants("yappointment"), 1);
        app.clock.advance(900 * 5 / 4 + 1);
        worker::run_once(&app.state).await;

        // The admin comes back to the dashboard: it already says so, and the banner leads on.
        visit(&c, &format!("{}/connections", app.address)).await?;
        assert_eq!(text(&c, "#status-yappointment").await?, "Reconnect needed");
        assert_eq!(text(&c, "#attention-count").await?, "1 connection needs attention.");
        let first_card = c.find(Locator::Css(".cards > li")).await?.attr("id").await?;
        assert_eq!(first_card.as_deref(), Some("card-yappointment"), "broken first");
        click_to(&c, "attention-first", "/connections/yappointment").await?;
        assert_eq!(text(&c, "#status").await?, "Reconnect needed");
        let what = text(&c, "#problem-what").await?;
        assert!(what.contains("no longer accepts this connection") && what.contains("must reconnect"), "{what}");
        assert!(!what.contains("invalid_grant"), "{what}");
        let details = open_details(&c).await?;
        assert!(details.contains("invalid_grant"), "{details}");
        let history = text(&c, "#history").await?;
        assert!(history.contains("Reconnect needed Background worker"), "{history}");

        // The one button mends it.
        assert_eq!(text(&c, "#connect-yappointment").await?, "Reconnect yAppointment");
        c.find(Locator::Id("connect-yappointment")).await?.click().await?;
        c.wait().for_element(Locator::Id("approve")).await?;
        check_page(&c).await?;
        c.find(Locator::Id("approve")).await?.click().await?;
        wait_for_text(&c, "#status", "Connected").await?;
        check_page(&c).await?;
        assert_eq!(text(&c, "#flash").await?, "✓ Done: Reconnected to yAppointment.");
        assert!(c.find(Locator::Id("attention")).await.is_err(), "the banner is gone");
        Ok(())
    }
    .await;
    c.close().await;
    expect_ok(result);
}

#[tokio::test]
async fn a_removed_key_shows_key_missing_right_after_a_restart() {
    let app = spawn_app().await;
    let c = Chromium::start().await;
    let result = async {
        sign_in(&c, &app.address).await?;
        connect_yappointment(&c, &app.address).await?;
        visit(&c, &format!("{}/connections/docplanner", app.address)).await?;
        c.find(Locator::Id("field-client_id")).await?.send_keys(DOCPLANNER_CLIENT_ID).await?;
        c.find(Locator::Id("field-client_secret")).await?.send_keys(DOCPLANNER_CLIENT_SECRET).await?;
        c.find(Locator::Css(&format!("#field-domain option[value='{DOCPLANNER_DOMAIN}']"))).await?.click().await?;
        c.find(Locator::Css("#connect-form button[type=submit]")).await?.click().await?;
        wait_for_text(&c, "#status", "Connected").await?;
        check_page(&c).await?;

        // The app restarts on the same database with a keyring that lost the old key.
        let mut settings = app.settings.clone();
        settings.token_keys = Some(SecretString::from(Vault::generate_key_entry().unwrap()));
        let old_id = app.settings.token_keys.as_ref().unwrap().expose_secret().split(':').next().unwrap().to_owned();
        let restarted = Application::build(settings, app.clock.clone()).await.unwrap();
        let base = format!("http://127.0.0.1:{}", restarted.port());
        tokio::spawn(restarted.run_until_stopped());

        // Sessions were sealed under the old key too: signing in again, the dashboard says it.
        sign_in(&c, &base).await?;
        assert_eq!(text(&c, "#status-yappointment").await?, "Key missing");
        assert_eq!(text(&c, "#status-docplanner").await?, "Key missing");
        assert_eq!(text(&c, "#attention-count").await?, "2 connections need attention.");
        click_to(&c, "attention-first", "/connections/docplanner").await?;
        let what = text(&c, "#problem-what").await?;
        assert!(what.contains("encryption key") && what.contains("operator can put the key back"), "{what}");
        // The reconnect form keeps what is not secret.
        let client_id = c.find(Locator::Id("field-client_id")).await?.prop("value").await?;
        assert_eq!(client_id.as_deref(), Some(DOCPLANNER_CLIENT_ID));
        let secret = c.find(Locator::Id("field-client_secret")).await?.prop("value").await?;
        assert_eq!(secret.as_deref(), Some(""));
        let details = open_details(&c).await?;
        assert!(details.contains(&old_id), "{details}");
        Ok(())
    }
    .await;
    c.close().await;
    expect_ok(result);
}
