//! In a real browser: the throttled sign-in page, and an admin creating and revoking an API key.
//! Every page visited passes `webdriver::check_page` (axe-core at desktop and phone widths, no
//! sideways scrolling).

use clinic_connect::clock::Clock;
use clinic_connect::sign_in_throttle::{Attempt, WINDOW_SECONDS};
use fantoccini::{Client, Locator};

use crate::helpers::{spawn_app, PASSWORD};
use crate::webdriver::{check_page, expect_ok, failure, visit, wait_for_path, Chromium};

async fn text(c: &Client, css: &str) -> Result<String, fantoccini::error::CmdError> {
    c.find(Locator::Css(css)).await?.text().await
}

async fn sign_in(c: &Client) -> Result<(), fantoccini::error::CmdError> {
    c.find(Locator::Id("email")).await?.send_keys("admin@clinic-a.test").await?;
    c.find(Locator::Id("password")).await?.send_keys(PASSWORD).await?;
    c.find(Locator::Id("sign-in")).await?.click().await
}

#[tokio::test]
async fn a_throttled_sign_in_then_an_api_key_created_and_revoked_in_a_real_browser() {
    let app = spawn_app().await;
    // Five failures already counted against the admin's email.
    let attempt = Attempt::new("admin@clinic-a.test", "127.0.0.1".parse().unwrap());
    for _ in 0..5 {
        attempt.failed(&app.db, app.clock.now()).await.unwrap();
    }
    let c = Chromium::start().await;

    let result = async {
        visit(&c, &format!("{}/login", app.address)).await?;
        sign_in(&c).await?;
        wait_for_path(&c, "/login").await?;
        c.wait().for_element(Locator::Id("login-error")).await?;
        check_page(&c).await?;
        let said = text(&c, "#login-error").await?;
        if !said.contains("Too many failed sign-ins") || !said.contains("try again in 15 minutes") {
            return Err(failure(format!("the throttled sign-in said {said:?}")));
        }

        app.clock.advance(WINDOW_SECONDS);
        c.find(Locator::Id("password")).await?.send_keys(PASSWORD).await?;
        c.find(Locator::Id("sign-in")).await?.click().await?;
        wait_for_path(&c, "/connections").await?;
        check_page(&c).await?;

        c.find(Locator::Id("nav-api-keys")).await?.click().await?;
        wait_for_path(&c, "/api-keys").await?;
        check_page(&c).await?;
        c.find(Locator::Id("label")).await?.send_keys("booking system").await?;
        c.find(Locator::Id("create")).await?.click().await?;
        c.wait().for_element(Locator::Id("new-key")).await?;
        check_page(&c).await?;
        let key = c.find(Locator::Id("new-key")).await?.prop("value").await?.unwrap_or_default();
        if !key.starts_with("cck_") || c.current_url().await?.as_str().contains(&key) {
            return Err(failure(format!("the key {key:?} is not shown, or is in the address")));
        }

        let id = app.db.api_keys_of_clinic(1).await.unwrap()[0].id;
        c.find(Locator::Id(&format!("revoke-{id}"))).await?.click().await?;
        wait_for_path(&c, &format!("/api-keys/{id}/revoke")).await?;
        check_page(&c).await?;
        c.find(Locator::Id("confirm-revoke")).await?.click().await?;
        wait_for_path(&c, "/api-keys").await?;
        c.wait().for_element(Locator::Id("revoked-keys")).await?;
        check_page(&c).await?;
        let said = text(&c, "#flash").await?;
        if !said.contains("API key “booking system” revoked") {
            return Err(failure(format!("the revocation said {said:?}")));
        }
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    c.close().await;
    expect_ok(result);
}
