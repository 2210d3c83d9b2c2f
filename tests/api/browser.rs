//! A real browser: headless Chromium through chromedriver, as an admin and as a patient would
//! use the app. Every page visited passes `webdriver::check_page` (axe-core at desktop and
//! phone widths, no sideways scrolling).

use fantoccini::{Client, Locator};

use clinic_connect::sandbox::{
    DOCPLANNER_CLIENT_ID, DOCPLANNER_CLIENT_SECRET, DOCPLANNER_DOMAIN, DOCPLANNER_FACILITY_NAME, DRCHRONO_USERNAME,
};

use crate::helpers::{spawn_app, PASSWORD};
use crate::webdriver::{check_page, expect_ok, failure, visit, wait_for_path, wait_for_text, Chromium};

/// Clicks, waits for the page at `path` and checks it.
async fn click_to(c: &Client, id: &str, path: &str) -> Result<(), fantoccini::error::CmdError> {
    c.find(Locator::Id(id)).await?.click().await?;
    wait_for_path(c, path).await?;
    check_page(c).await
}

async fn text(c: &Client, css: &str) -> Result<String, fantoccini::error::CmdError> {
    c.find(Locator::Css(css)).await?.text().await
}

/// The page keeps the signed-in header: the clinic, the admin, Sign out.
async fn assert_signed_in_header(c: &Client) -> Result<(), fantoccini::error::CmdError> {
    let who = (text(c, "header .clinic").await.ok(), text(c, "header .email").await.ok());
    let clinic_and_admin = (Some("Clinic A".to_owned()), Some("admin@clinic-a.test".to_owned()));
    if who != clinic_and_admin || c.find(Locator::Id("sign-out")).await.is_err() {
        return Err(failure(format!("{} lost the signed-in header ({who:?})", c.current_url().await?)));
    }
    Ok(())
}

#[tokio::test]
async fn an_admin_connects_and_disconnects_yappointment_and_docplanner_in_a_real_browser() {
    let app = spawn_app().await;
    let c = Chromium::start().await;

    let result = async {
        // Not signed in: sent to the sign-in page.
        visit(&c, &format!("{}/connections", app.address)).await?;
        assert_eq!(c.current_url().await?.path(), "/login");
        c.find(Locator::Id("email")).await?.send_keys("admin@clinic-a.test").await?;
        c.find(Locator::Id("password")).await?.send_keys(PASSWORD).await?;
        click_to(&c, "sign-in", "/connections").await?;
        assert_eq!(c.title().await?, "Connections · Clinic A · clinic-connect");
        assert_eq!(text(&c, "#view-yappointment, #connect-yappointment").await?, "Connect yAppointment");
        assert_eq!(text(&c, "#history-yappointment").await?, "yAppointment history");

        c.find(Locator::Id("connect-yappointment")).await?.click().await?;
        // The sandbox's consent page, on the vendor's origin.
        c.wait().for_element(Locator::Id("approve")).await?;
        check_page(&c).await?;
        assert!(c.current_url().await?.as_str().starts_with(&app.sandbox_url));
        assert!(c.source().await?.contains("bookings:read"));
        c.find(Locator::Id("approve")).await?.click().await?;

        // Back on our detail page, on a URL without the code, saying it worked.
        wait_for_text(&c, "#account-name", "Maple Street Clinic").await?;
        wait_for_text(&c, "#status", "Connected").await?;
        check_page(&c).await?;
        let url = c.current_url().await?;
        assert_eq!(url.path(), "/connections/yappointment");
        assert!(url.query().is_none());
        assert_eq!(c.title().await?, "yAppointment · Clinic A · clinic-connect");
        assert_eq!(text(&c, "#flash").await?, "✓ Done: Connected to yAppointment.");
        assert_eq!(c.find(Locator::Id("flash")).await?.attr("class").await?.as_deref(), Some("notice notice-success"));

        // Disconnect asks first; Cancel changes nothing.
        click_to(&c, "disconnect", "/connections/yappointment/disconnect/confirm").await?;
        assert_eq!(text(&c, "h1").await?, "Disconnect yAppointment?");
        let consequences = text(&c, "#consequences").await?;
        assert!(consequences.contains("revoke") && consequences.contains("deleted"), "{consequences}");
        assert!(consequences.contains("history is kept"), "{consequences}");
        click_to(&c, "cancel-disconnect", "/connections/yappointment").await?;
        wait_for_text(&c, "#status", "Connected").await?;
        click_to(&c, "disconnect", "/connections/yappointment/disconnect/confirm").await?;
        click_to(&c, "confirm-disconnect", "/connections/yappointment").await?;
        wait_for_text(&c, "#status", "Not connected").await?;
        assert_eq!(
            text(&c, "#flash").await?,
            "✓ Done: Disconnected from yAppointment. Access was revoked at yAppointment."
        );

        // A client-credentials vendor, through its form.
        visit(&c, &format!("{}/connections", app.address)).await?;
        click_to(&c, "connect-docplanner", "/connections/docplanner").await?;
        c.find(Locator::Id("field-client_id")).await?.send_keys(DOCPLANNER_CLIENT_ID).await?;
        c.find(Locator::Id("field-client_secret")).await?.send_keys(DOCPLANNER_CLIENT_SECRET).await?;
        c.find(Locator::Css(&format!("#field-domain option[value='{DOCPLANNER_DOMAIN}']"))).await?.click().await?;
        c.find(Locator::Css("#connect-form button[type=submit]")).await?.click().await?;
        wait_for_text(&c, "#account-name", DOCPLANNER_FACILITY_NAME).await?;
        wait_for_text(&c, "#status", "Connected").await?;
        check_page(&c).await?;
        assert!(!c.source().await?.contains(DOCPLANNER_CLIENT_SECRET));
        click_to(&c, "disconnect", "/connections/docplanner/disconnect/confirm").await?;
        let consequences = text(&c, "#consequences").await?;
        assert!(consequences.contains("offers no way to revoke"), "{consequences}");
        assert!(consequences.contains("client secret are deleted"), "{consequences}");
        click_to(&c, "confirm-disconnect", "/connections/docplanner").await?;
        wait_for_text(&c, "#status", "Not connected").await?;

        // Qmatic's form, permissions in words, stays inside its card.
        visit(&c, &format!("{}/connections/qmatic", app.address)).await?;
        let permissions = text(&c, "#connect-form fieldset").await?;
        assert!(permissions.contains("move appointments to another time"), "{permissions}");
        let spill: bool = serde_json::from_value(
            c.execute(
                r#"const card = document.querySelector(".connect").getBoundingClientRect();
                   return [...document.querySelectorAll(".connect *")]
                       .some(e => e.getBoundingClientRect().right > card.right + 0.5);"#,
                vec![],
            )
            .await?,
        )
        .unwrap();
        assert!(!spill, "something in Qmatic's form sticks out of its card");
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    c.close().await;
    expect_ok(result);
    assert_eq!(app.sandbox.requests_to("yappointment", "/oauth/token").len(), 1);
    assert!(!app.sandbox.requests_to("yappointment", "/oauth/revoke").is_empty());
}

#[tokio::test]
async fn error_pages_keep_the_signed_in_header_and_sign_out_says_so() {
    let app = spawn_app().await;
    let c = Chromium::start().await;

    let result = async {
        // Signed out, an unknown address is the app's page, pointing to the sign-in.
        visit(&c, &format!("{}/no-such-page", app.address)).await?;
        assert_eq!(text(&c, "h1").await?, "Page not found");
        assert!(c.find(Locator::Id("sign-out")).await.is_err());
        assert_eq!(text(&c, "#error-back").await?, "Go to the sign-in page");

        visit(&c, &format!("{}/login", app.address)).await?;
        c.find(Locator::Id("email")).await?.send_keys("admin@clinic-a.test").await?;
        c.find(Locator::Id("password")).await?.send_keys(PASSWORD).await?;
        click_to(&c, "sign-in", "/connections").await?;

        // DrChrono, with the permissions it asks for described in words.
        c.find(Locator::Id("connect-drchrono")).await?.click().await?;
        c.wait().for_element(Locator::Id("approve")).await?;
        check_page(&c).await?;
        c.find(Locator::Id("approve")).await?.click().await?;
        wait_for_text(&c, "#account-name", DRCHRONO_USERNAME).await?;
        check_page(&c).await?;
        let scopes = text(&c, "#scopes").await?;
        assert!(scopes.contains("book, move and cancel appointments calendar:write"), "{scopes}");
        visit(&c, &format!("{}/connections", app.address)).await?;
        assert_eq!(text(&c, "#view-drchrono").await?, "View DrChrono connection");

        // 404, 405 (a GET on a form's address), a forged callback: the app's pages, signed in.
        for (path, status_title) in [
            ("/connections/nope", "Page not found"),
            ("/connections/drchrono/disconnect", "Use the button on the page"),
            ("/connections/drchrono/callback?code=forged&state=forged", "Request refused"),
        ] {
            visit(&c, &format!("{}{path}", app.address)).await?;
            assert_eq!(text(&c, "h1").await?, status_title, "{path}");
            assert_signed_in_header(&c).await?;
            assert_eq!(c.title().await?, format!("{status_title} · Clinic A · clinic-connect"));
        }

        // A form whose CSRF token is not the session's.
        visit(&c, &format!("{}/connections/drchrono", app.address)).await?;
        let forge = "document.querySelector('form[action$=\"/refresh\"] input[name=csrf]').value = 'forged'";
        c.execute(forge, vec![]).await?;
        click_to(&c, "refresh-now", "/connections/drchrono/refresh").await?;
        assert_eq!(text(&c, "h1").await?, "Form expired");
        assert_signed_in_header(&c).await?;

        // Sign-out says so, with nothing secret in the address.
        click_to(&c, "sign-out", "/login").await?;
        assert_eq!(text(&c, "#flash").await?, "✓ Done: You signed out.");
        assert_eq!(c.current_url().await?.query(), Some("signed_out=1"));
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    c.close().await;
    expect_ok(result);
}

#[tokio::test]
async fn a_patient_searches_logs_in_with_zocdoc_sees_appointments_and_logs_out() {
    let app = spawn_app().await;
    let c = Chromium::start().await;

    let result = async {
        visit(&c, &format!("{}/care", app.address)).await?;
        c.find(Locator::Id("specialty")).await?.send_keys("Dermatology").await?;
        c.find(Locator::Id("search")).await?.click().await?;
        c.wait().for_element(Locator::Id("results")).await?;
        check_page(&c).await?;
        assert!(c.source().await?.contains("Dr. Marcus Webb, MD"));

        c.find(Locator::Id("care-email")).await?.send_keys("pat@example.com").await?;
        c.find(Locator::Id("care-login")).await?.click().await?;
        // Zocdoc's sign-in page, pre-filled with the email.
        c.wait().for_element(Locator::Id("approve")).await?;
        check_page(&c).await?;
        assert!(c.current_url().await?.as_str().starts_with(&app.sandbox_url));
        let email = c.find(Locator::Id("zocdoc-email")).await?.prop("value").await?;
        assert_eq!(email.as_deref(), Some("pat@example.com"));
        c.find(Locator::Id("approve")).await?.click().await?;

        // Back on the search, still showing the results, now logged in.
        c.wait().for_element(Locator::Id("my-appointments")).await?;
        check_page(&c).await?;
        let url = c.current_url().await?;
        assert_eq!(url.path(), "/care");
        assert_eq!(url.query(), Some("q=&specialty=Dermatology"), "the search the patient was on");
        assert!(c.source().await?.contains("Dr. Marcus Webb, MD"));

        c.find(Locator::Id("my-appointments")).await?.click().await?;
        c.wait().for_element(Locator::Id("appointments")).await?;
        check_page(&c).await?;
        c.find(Locator::Id("care-logout")).await?.click().await?;
        c.wait().for_element(Locator::Id("care-login")).await?;
        check_page(&c).await?;
        visit(&c, &format!("{}/care/appointments", app.address)).await?;
        c.wait().for_element(Locator::Id("appointments-problem")).await?;
        assert!(c.find(Locator::Id("appointments")).await.is_err(), "nothing private after logout");
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    c.close().await;
    expect_ok(result);
    assert_eq!(app.sandbox.zocdoc_links().len(), 1);
}
