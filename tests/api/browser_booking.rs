//! A real browser books: headless Chromium searches anonymously, presses an open time, logs in
//! with Zocdoc only then, confirms the same time, finds it among the appointments and cancels
//! it; every page passes the browser tests' page checks (axe-core at desktop width and at 375 px,
//! no sideways scrolling on a phone).

use fantoccini::{Client, Locator};

use clinic_connect::care::times::{parse_instant, Zone};

use crate::helpers::spawn_app;
use crate::webdriver::{check_page, failure, wait_for_text, Chromium};

type Cmd<T> = Result<T, fantoccini::error::CmdError>;

fn failed(why: String) -> fantoccini::error::CmdError {
    failure(why)
}

/// The page checks every browser test runs (`what` names the step, for the reader).
async fn fits(c: &Client, what: &str) -> Cmd<()> {
    check_page(c).await.map_err(|e| failed(format!("{what}: {e}")))
}

async fn text_of(c: &Client, css: &str) -> Cmd<String> {
    c.wait().for_element(Locator::Css(css)).await?.text().await
}

#[tokio::test]
async fn a_patient_books_and_cancels_in_a_real_browser_on_a_small_screen() {
    let app = spawn_app().await;
    let c = Chromium::start().await;

    let result = async {
        c.set_window_size(375, 900).await?;
        c.goto(&format!("{}/care", app.address)).await?;
        assert_eq!(c.title().await?, "Find care · Demo Clinic");
        fits(&c, "search page").await?;
        c.wait().for_element(Locator::Id("specialty")).await?.send_keys("Dermatology").await?;
        c.find(Locator::Id("search")).await?.click().await?;
        c.wait().for_element(Locator::Id("results")).await?;
        fits(&c, "search results").await?;

        // The provider's page; the first open time.
        c.find(Locator::LinkText("Dr. Marcus Webb, MD")).await?.click().await?;
        let first = c.wait().for_element(Locator::Css("#provider button.time")).await?;
        fits(&c, "provider page").await?;
        let value = first.attr("value").await?.ok_or_else(|| failed("a time without a value".into()))?;
        let start = parse_instant(value.split_once('|').map(|(_, t)| t).unwrap_or_default())
            .ok_or_else(|| failed(format!("not a time: {value}")))?;
        let when = Zone::parse("America/New_York").when(start);
        first.click().await?;

        // Only now Zocdoc's login, on its own origin.
        let approve = c.wait().for_element(Locator::Id("approve")).await?;
        if !c.current_url().await?.as_str().starts_with(&app.sandbox_url) {
            return Err(failed("the login is not Zocdoc's".into()));
        }
        approve.click().await?;

        // Back on the confirmation of the same time, on a URL that holds nothing of it.
        wait_for_text(&c, "#choice-when", &when).await?;
        let url = c.current_url().await?;
        assert_eq!(url.path(), "/care/book");
        assert!(url.query().is_none());
        fits(&c, "confirmation").await?;
        c.find(Locator::Id("confirm-booking")).await?.click().await?;
        wait_for_text(&c, "#booked-when", &when).await?;
        assert_eq!(text_of(&c, "#booked-provider").await?, "Dr. Marcus Webb, MD");
        fits(&c, "booked page").await?;

        // Among the appointments; cancel it, with the confirmation step.
        c.find(Locator::Id("my-appointments")).await?.click().await?;
        c.wait().for_element(Locator::Id("appointments")).await?;
        fits(&c, "appointments").await?;
        let label = format!("Cancel the appointment with Dr. Marcus Webb, MD on {when}");
        c.find(Locator::Css(&format!("button[aria-label='{label}']"))).await?.click().await?;
        wait_for_text(&c, "#cancel-when", &when).await?;
        fits(&c, "cancel step").await?;
        c.find(Locator::Id("confirm-cancel")).await?.click().await?;
        let flash = text_of(&c, "#flash").await?;
        if !flash.contains("is cancelled") {
            return Err(failed(format!("flash: {flash}")));
        }
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    c.close().await;
    result.unwrap();
    let bookings = app.sandbox.zocdoc_bookings("zocdoc-sandbox");
    assert_eq!(bookings.len(), 1);
    assert!(bookings[0].cancelled);
    assert_eq!(app.sandbox.zocdoc_links().len(), 1, "the anonymous session was carried into the login");
}
