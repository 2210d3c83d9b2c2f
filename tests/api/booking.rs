//! A patient books: browse anonymously, press a time, log in with Zocdoc only then, land on a
//! confirmation of the same time, book it once, see it, cancel it. And what goes wrong: the time
//! taken meanwhile, a double submit, a login without the write scope, a session that ended.

use clinic_connect::care::times::{parse_instant, Zone};
use clinic_connect::sandbox::{Endpoint, Failure};
use reqwest::{Response, StatusCode};
use url::Url;

use crate::helpers::{hidden_field, location, query_param, session_rows, spawn_app, Browser, TestApp};

const PREFIX: &str = "zocdoc-sandbox";
const EMAIL: &str = "pat@example.com";

/// The Book buttons' values on a page: `location id|Zocdoc's start time`.
fn slots(html: &str) -> Vec<String> {
    regex::Regex::new(r#"name="slot" value="([^"]+)""#).unwrap().captures_iter(html).map(|c| c[1].to_owned()).collect()
}

fn instant(slot: &str) -> i64 {
    parse_instant(slot.split_once('|').unwrap().1).unwrap()
}

fn location_of(slot: &str) -> &str {
    slot.split_once('|').unwrap().0
}

/// Presses a Book button of `html` (the page it came from).
async fn press(patient: &Browser, html: &str, slot: &str, reason: &str) -> Response {
    let csrf = hidden_field(html, "csrf").unwrap();
    let provider = hidden_field(html, "provider").unwrap();
    patient
        .post_form("/care/book", &[("csrf", &csrf), ("provider", &provider), ("slot", slot), ("reason", reason)])
        .await
}

/// Presses a time while not logged in; returns Zocdoc's authorize URL it led to.
async fn press_to_login(patient: &Browser, html: &str, slot: &str, reason: &str) -> Url {
    let response = press(patient, html, slot, reason).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", response.text().await.unwrap());
    Url::parse(&location(&response)).unwrap()
}

/// Approves at Zocdoc as `email` and follows the callback; returns where our app sent us.
async fn approve(patient: &Browser, authorize: &Url, email: &str) -> String {
    let callback = patient.consent_as(authorize, "approve", Some(email)).await;
    let response = patient.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    location(&response)
}

async fn confirm(patient: &Browser) -> Response {
    let csrf = patient.csrf("/care/book").await;
    patient.post_form("/care/book/confirm", &[("csrf", &csrf)]).await
}

fn bookings_of(app: &TestApp, email: &str) -> Vec<clinic_connect::sandbox::ZocdocBooking> {
    app.sandbox.zocdoc_bookings(PREFIX).into_iter().filter(|b| b.email == email).collect()
}

/// Booking requests the sandbox received: (bearer token, idempotency key).
fn booking_calls(app: &TestApp) -> Vec<(String, String)> {
    app.sandbox
        .requests_to(PREFIX, "/v1/appointments")
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            let bearer = r.header("authorization").unwrap_or_default().trim_start_matches("Bearer ").to_owned();
            (bearer, r.header("idempotency-key").unwrap_or_default().to_owned())
        })
        .collect()
}

/// Chooses the first time at Dr. Webb's, logs in through Zocdoc, and lands on the confirmation;
/// returns the slot chosen.
async fn choose_and_log_in(patient: &Browser, email: &str) -> String {
    choose_at_and_log_in(patient, "pr_10233", "vr_acne", email).await
}

async fn choose_at_and_log_in(patient: &Browser, provider: &str, reason: &str, email: &str) -> String {
    let html = patient.get_text(&format!("/care/providers/{provider}")).await;
    let slot = slots(&html)[0].clone();
    let authorize = press_to_login(patient, &html, &slot, reason).await;
    assert_eq!(approve(patient, &authorize, email).await, "/care/book");
    slot
}

#[tokio::test]
async fn the_whole_journey_anonymous_to_booked_to_cancelled_with_the_choice_kept_across_the_login() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    let mut ours: Vec<String> = Vec::new();

    // Anonymous: search, then the provider's page, times in the office's zone.
    let results = patient.get_text("/care?specialty=Dermatology").await;
    assert!(results.contains("Dr. Marcus Webb, MD"));
    assert!(!slots(&results).is_empty(), "open times on the results");
    assert!(results.contains("Times in Eastern Time (America/New_York)"));
    let html = patient.get_text("/care/providers/pr_10233").await;
    assert!(html.contains("<title>Dr. Marcus Webb, MD · Demo Clinic</title>"), "the clinic's name in the tab title");
    assert!(html.contains("450 Lexington Ave, New York, NY 10017"));
    let slot = slots(&html)[0].clone();
    let start = instant(&slot);
    let zone = Zone::parse("America/New_York");
    assert!(html.contains(&zone.time(start)), "{}", zone.time(start));
    assert_eq!(session_rows(&app).await, 0);

    // Book: the choice goes into a new session, and Zocdoc's login starts with the anonymous token.
    let press = press(&patient, &html, &slot, "vr_acne").await;
    assert_eq!(press.status(), StatusCode::SEE_OTHER);
    let authorize = Url::parse(&location(&press)).unwrap();
    assert!(authorize.as_str().starts_with(&app.sandbox_url));
    assert!(query_param(&authorize, "anonymous_token").unwrap().starts_with("zd_anon_"));
    assert!(query_param(&authorize, "scope").unwrap().split(' ').any(|s| s == "external.appointment.write"));
    assert_eq!(session_rows(&app).await, 1);
    let landed = approve(&patient, &authorize, EMAIL).await;
    assert_eq!(landed, "/care/book");
    ours.push(landed);

    // The confirmation holds the same time, in the office's zone, with the zone named.
    let response = patient.get("/care/book").await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains("Dr. Marcus Webb, MD"));
    assert!(page.contains(&zone.when(start)), "{}", zone.when(start));
    assert!(page.contains("Eastern Time (America/New_York)"));
    assert!(page.contains("450 Lexington Ave, New York, NY 10017"));
    assert!(page.contains("Acne"));
    assert!(page.contains(r#"id="confirm-booking""#));

    let booked = confirm(&patient).await;
    assert_eq!(booked.status(), StatusCode::SEE_OTHER);
    ours.push(location(&booked));
    assert_eq!(location(&booked), "/care/booked");
    let page = patient.get_text("/care/booked").await;
    assert!(page.contains("You are booked") && page.contains(&zone.when(start)));
    assert!(page.contains("450 Lexington Ave") && page.contains(r#"id="how-to-cancel""#));

    // Booked once at Zocdoc, with the user token and an idempotency key.
    let mine = bookings_of(&app, EMAIL);
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].provider_location_id.as_str(), mine[0].start), (location_of(&slot), start));
    assert_eq!(mine[0].visit_reason_id, "vr_acne");
    let calls = booking_calls(&app);
    assert_eq!(calls.len(), 1);
    assert!(calls[0].0.starts_with("zd_at_"));
    assert!(calls[0].1.len() >= 16);

    // Among the appointments, in local time; cancel it, with a confirmation step.
    let page = patient.get_text("/care/appointments").await;
    assert!(page.contains(&zone.when(start)));
    let id = mine[0].appointment_id.clone();
    assert!(page.contains(&format!(r#"name="appointment" value="{id}""#)));
    let csrf = hidden_field(&page, "csrf").unwrap();
    let step = patient.post_form("/care/appointments/cancel", &[("csrf", &csrf), ("appointment", &id)]).await;
    assert_eq!(step.status(), StatusCode::OK);
    let step = step.text().await.unwrap();
    assert!(step.contains("Cancel this appointment?") && step.contains(&zone.when(start)));
    assert!(!bookings_of(&app, EMAIL)[0].cancelled, "asking is not cancelling");
    let csrf = hidden_field(&step, "csrf").unwrap();
    let done = patient.post_form("/care/appointments/cancel/confirm", &[("csrf", &csrf), ("appointment", &id)]).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    ours.push(location(&done));
    assert!(bookings_of(&app, EMAIL)[0].cancelled, "reflected at Zocdoc");
    let page = patient.get_text("/care/appointments").await;
    assert!(page.contains("is cancelled"));
    assert!(!page.contains(&format!(r#"value="{id}""#)), "no longer offered for cancelling");
    // Without CSRF, nothing is cancelled or booked.
    let other_id = app.sandbox.zocdoc_bookings(PREFIX).len();
    for (path, form) in [
        ("/care/appointments/cancel/confirm", vec![("appointment", id.as_str())]),
        ("/care/book/confirm", vec![]),
        ("/care/book", vec![("provider", "pr_10233"), ("slot", slot.as_str()), ("reason", "vr_acne")]),
    ] {
        assert_eq!(patient.post_form(path, &form).await.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(app.sandbox.zocdoc_bookings(PREFIX).len(), other_id);

    // No token and no slot of ours in a URL of ours.
    let anonymous = app.sandbox.zocdoc_links()[0].0.clone();
    let user = calls[0].0.clone();
    let raw_time = slot.split_once('|').unwrap().1.to_owned();
    for url in &ours {
        for secret in [anonymous.as_str(), user.as_str(), raw_time.as_str(), location_of(&slot), "zd_"] {
            assert!(!url.contains(secret), "{url} carries {secret}");
        }
    }
    // Nor in a log line: neither token, nor the idempotency key.
    let logs = crate::helpers::captured_logs();
    for secret in [anonymous.as_str(), user.as_str(), calls[0].1.as_str()] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

#[tokio::test]
async fn a_time_taken_during_the_login_offers_the_nearest_other_times_and_books_nothing() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    let html = patient.get_text("/care/providers/pr_10233").await;
    let slot = slots(&html)[1].clone();
    let authorize = press_to_login(&patient, &html, &slot, "vr_skin_check").await;
    // Someone else books that time while the patient logs in.
    assert!(app.sandbox.zocdoc_take_slot(PREFIX, location_of(&slot), instant(&slot)));
    assert_eq!(approve(&patient, &authorize, EMAIL).await, "/care/book");

    let response = patient.get("/care/book").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let page = response.text().await.unwrap();
    assert!(page.contains("That time is no longer available") && page.contains("Nothing was booked"));
    let others = slots(&page);
    assert!(!others.is_empty() && others.len() <= 6, "{}", others.len());
    assert!(!others.contains(&slot));
    assert!(others.iter().all(|s| location_of(s) == location_of(&slot)), "the same provider");
    // The nearest ones: the time before it and the ones after it.
    assert!(others.iter().any(|s| instant(s) > instant(&slot)));
    assert!(page.contains(r#"<option value="vr_skin_check" selected>"#), "the visit reason is kept");
    // Confirming anyway is refused by Zocdoc: the same page, nothing booked.
    let response = confirm(&patient).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(response.text().await.unwrap().contains("Nothing was booked"));
    assert!(bookings_of(&app, EMAIL).is_empty());

    // Another of the offered times books at once (the patient is logged in now).
    let pressed = press(&patient, &page, &others[0], "vr_skin_check").await;
    assert_eq!(location(&pressed), "/care/book");
    assert_eq!(confirm(&patient).await.status(), StatusCode::SEE_OTHER);
    let mine = bookings_of(&app, EMAIL);
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].start, instant(&others[0]));
}

#[tokio::test]
async fn a_double_submit_or_a_retry_books_once() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    choose_and_log_in(&patient, EMAIL).await;
    let csrf = patient.csrf("/care/book").await;
    let form = [("csrf", csrf.as_str())];
    let (first, second) =
        tokio::join!(patient.post_form("/care/book/confirm", &form), patient.post_form("/care/book/confirm", &form));
    for response in [&first, &second] {
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(response), "/care/booked");
    }
    // A third press, later: shown the booking, nothing sent to Zocdoc.
    let calls = booking_calls(&app).len();
    let third = patient.post_form("/care/book/confirm", &form).await;
    assert_eq!(location(&third), "/care/booked");
    assert_eq!(booking_calls(&app).len(), calls);
    assert_eq!(bookings_of(&app, EMAIL).len(), 1, "Zocdoc has one booking");
    let keys: Vec<String> = booking_calls(&app).into_iter().map(|(_, key)| key).collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "every attempt carries the same key");

    // Zocdoc books but its answer never arrives (our call times out): pressing again books
    // nothing more, and shows the booking.
    let other = Browser::new(&app.address);
    choose_at_and_log_in(&other, "pr_10231", "vr_cleaning", "other@example.com").await;
    app.sandbox.hold_answers(PREFIX, "/v1/appointments", std::time::Duration::from_secs(4), 1);
    let lost = confirm(&other).await;
    assert_eq!(lost.status(), StatusCode::BAD_GATEWAY);
    let page = lost.text().await.unwrap();
    assert!(page.contains("Press Book this appointment again"), "{page}");
    assert_eq!(bookings_of(&app, "other@example.com").len(), 1, "Zocdoc did book it");
    let retried = confirm(&other).await;
    assert_eq!(location(&retried), "/care/booked");
    assert_eq!(bookings_of(&app, "other@example.com").len(), 1, "booked once");
    let calls = booking_calls(&app);
    let (a, b) = (&calls[calls.len() - 2], &calls[calls.len() - 1]);
    assert_eq!(a.1, b.1, "the retry carried the same key");
}

#[tokio::test]
async fn a_login_without_the_write_scope_is_told_clearly_and_books_nothing() {
    let app = spawn_app().await;
    app.sandbox.zocdoc_withhold_scope(Some("external.appointment.write"));
    let patient = Browser::new(&app.address);
    let slot = choose_and_log_in(&patient, EMAIL).await;
    let response = confirm(&patient).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let page = response.text().await.unwrap();
    assert!(page.contains("did not give this app permission to book"), "{page}");
    assert!(page.contains("nothing was booked"));
    assert!(app.sandbox.zocdoc_bookings(PREFIX).is_empty());
    // The choice is kept: logging in again and allowing booking books the same time.
    app.sandbox.zocdoc_withhold_scope(None);
    let csrf = patient.csrf("/care/book").await;
    let again = patient.post_form("/care/login", &[("csrf", &csrf), ("return_to", "/care/book")]).await;
    let authorize = Url::parse(&location(&again)).unwrap();
    assert_eq!(approve(&patient, &authorize, EMAIL).await, "/care/book");
    assert_eq!(confirm(&patient).await.status(), StatusCode::SEE_OTHER);
    let mine = bookings_of(&app, EMAIL);
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].start, instant(&slot));
}

#[tokio::test]
async fn an_ended_session_at_confirm_books_nothing_and_says_the_choice_is_gone() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    choose_and_log_in(&patient, EMAIL).await;
    let csrf = patient.csrf("/care/book").await;
    app.clock.advance(31 * 60);
    let response = patient.post_form("/care/book/confirm", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "the form's token went with the session");
    let page = response.text().await.unwrap();
    assert!(page.contains("Your session ended") && page.contains("Nothing was booked"), "{page}");
    assert!(booking_calls(&app).is_empty());
    let response = patient.get("/care/book").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "the choice is gone");
    assert!(response.text().await.unwrap().contains("no chosen time"));

    // Starting again books once.
    let slot = choose_and_log_in(&patient, EMAIL).await;
    assert_eq!(confirm(&patient).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(bookings_of(&app, EMAIL).len(), 1);
    assert_eq!(bookings_of(&app, EMAIL)[0].start, instant(&slot));
}

#[tokio::test]
async fn an_ended_zocdoc_login_at_confirm_asks_to_log_in_again_and_keeps_the_choice() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    let slot = choose_and_log_in(&patient, EMAIL).await;
    // Zocdoc stops refreshing the patient's token; the session stays active past its hour.
    app.sandbox.set_failure(PREFIX, Endpoint::Token, Failure::InvalidGrant, None);
    for _ in 0..3 {
        app.clock.advance(25 * 60);
        patient.get("/care/book").await;
    }
    let response = confirm(&patient).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let page = response.text().await.unwrap();
    assert!(page.contains("Log in again to book; the time you chose is kept"), "{page}");
    let zone = Zone::parse("America/New_York");
    assert!(page.contains(&zone.when(instant(&slot))), "the same choice");
    assert!(booking_calls(&app).is_empty());
    app.sandbox.clear_failures();

    let csrf = hidden_field(&page, "csrf").unwrap();
    let again = patient.post_form("/care/login", &[("csrf", &csrf), ("return_to", "/care/book")]).await;
    let authorize = Url::parse(&location(&again)).unwrap();
    assert_eq!(approve(&patient, &authorize, EMAIL).await, "/care/book");
    assert!(patient.get_text("/care/book").await.contains(&zone.when(instant(&slot))));
    assert_eq!(confirm(&patient).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(bookings_of(&app, EMAIL).len(), 1);
}

#[tokio::test]
async fn times_are_shown_in_the_offices_zone_across_a_daylight_saving_change() {
    let app = spawn_app().await;
    // Friday 2027-03-12, noon UTC: daylight saving time starts in Chicago on Sunday the 14th;
    // Phoenix keeps standard time.
    let friday = parse_instant("2027-03-12T12:00:00Z").unwrap();
    app.clock.advance(friday - clinic_connect::clock::Clock::now(&*app.clock));
    let patient = Browser::new(&app.address);
    let html = patient.get_text("/care/providers/pr_10234").await;
    assert!(html.contains("Times in Central Time (America/Chicago)"));
    assert!(html.contains("Times in Mountain Time, no daylight saving (America/Phoenix)"));
    let all = slots(&html);
    let chicago: Vec<&String> = all.iter().filter(|s| location_of(s) == "pl_20234").collect();
    let phoenix: Vec<&String> = all.iter().filter(|s| location_of(s) == "pl_20239").collect();
    let monday = parse_instant("2027-03-15T00:00:00Z").unwrap();
    let before = chicago.iter().find(|s| instant(s) < monday).unwrap();
    let after = chicago.iter().find(|s| instant(s) > monday).unwrap();
    // Zocdoc's own offsets: -06:00 before the change, -05:00 after; Phoenix -07:00 throughout.
    assert!(before.ends_with("-06:00") && after.ends_with("-05:00"), "{before} {after}");
    assert!(phoenix.iter().all(|s| s.ends_with("-07:00")));
    let central = Zone::parse("America/Chicago");
    assert!(central.time(instant(before)).ends_with("CST") && central.time(instant(after)).ends_with("CDT"));
    for s in [before, after] {
        assert!(html.contains(&format!("{}</button>", central.time(instant(s)))), "{s}");
    }
    assert!(html.contains("Friday, March 12") && html.contains("Monday, March 15"));
    assert!(!html.contains("Saturday, March 13") && !html.contains("Sunday, March 14"));

    // Booking the time after the change keeps the instant and shows it in the office's zone.
    let authorize = press_to_login(&patient, &html, after, "vr_skin_check").await;
    assert_eq!(approve(&patient, &authorize, EMAIL).await, "/care/book");
    let page = patient.get_text("/care/book").await;
    assert!(page.contains(&central.when(instant(after))), "{}", central.when(instant(after)));
    assert!(page.contains("CDT"));
    assert_eq!(confirm(&patient).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(bookings_of(&app, EMAIL)[0].start, instant(after));
    assert!(patient.get_text("/care/appointments").await.contains(&central.when(instant(after))));
}
