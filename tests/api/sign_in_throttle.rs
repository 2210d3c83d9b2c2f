//! Sign-in throttling: 5 failures per email and 20 per client address in 15 minutes, counted in
//! the database (shared by instances, kept across restarts); past a limit even the right
//! password gets 429 with Retry-After until the window passes.

use clinic_connect::client_addr::TrustedProxies;
use clinic_connect::startup::Application;
use reqwest::header::RETRY_AFTER;
use reqwest::{Response, StatusCode};

use crate::helpers::{location, spawn_app, spawn_app_with, Browser, PASSWORD};

const ADMIN: &str = "admin@clinic-a.test";
const WINDOW: i64 = 15 * 60;

fn retry_after(response: &Response) -> i64 {
    response.headers().get(RETRY_AFTER).expect("Retry-After").to_str().unwrap().parse().unwrap()
}

/// A 429 that says so on the page, in words, with the sign-in form to try again later.
async fn assert_throttled(response: Response) -> i64 {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&response);
    let page = response.text().await.unwrap();
    assert!(page.contains("Too many failed sign-ins"), "{page}");
    assert!(page.contains("try again in"), "{page}");
    assert!(page.contains(r#"id="sign-in""#), "the form is still there: {page}");
    wait
}

/// A sign-in attempt through a trusted proxy that says the client is `client`.
async fn login_from(browser: &Browser, client: &str, email: &str, password: &str) -> Response {
    let csrf = browser.csrf("/login").await;
    browser
        .client
        .post(format!("{}/login", browser.base))
        .header("x-forwarded-for", client)
        .form(&[("email", email), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn five_wrong_passwords_refuse_even_the_right_one_until_the_window_passes() {
    let app = spawn_app().await;
    for i in 0..5 {
        let response = app.browser.try_login(ADMIN, &format!("wrong password {i}")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // The email is only counted; the right password does not get past the limit.
    let wait = assert_throttled(app.browser.try_login(ADMIN, PASSWORD).await).await;
    assert_eq!(wait, WINDOW);
    // The case of the email makes no difference.
    assert_throttled(app.browser.try_login("ADMIN@Clinic-A.test", PASSWORD).await).await;
    assert_eq!(app.browser.get("/connections").await.status(), StatusCode::SEE_OTHER, "not signed in");
    // Refused attempts are not failures: they do not prolong the wait.
    app.clock.advance(10);
    for _ in 0..5 {
        assert_eq!(assert_throttled(app.browser.try_login(ADMIN, "wrong again").await).await, WINDOW - 10);
    }
    app.clock.advance(WINDOW - 11);
    assert_eq!(assert_throttled(app.browser.try_login(ADMIN, PASSWORD).await).await, 1);
    app.clock.advance(1);
    let response = app.browser.try_login(ADMIN, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/connections");
}

#[tokio::test]
async fn a_success_resets_the_emails_count() {
    let app = spawn_app().await;
    for _ in 0..4 {
        assert_eq!(app.browser.try_login(ADMIN, "wrong password").await.status(), StatusCode::UNAUTHORIZED);
    }
    // Each success in a browser of its own (a signed-in one is sent past the sign-in page).
    assert_eq!(Browser::new(&app.address).try_login(ADMIN, PASSWORD).await.status(), StatusCode::SEE_OTHER);
    for _ in 0..4 {
        assert_eq!(app.browser.try_login(ADMIN, "wrong password").await.status(), StatusCode::UNAUTHORIZED);
    }
    let response = Browser::new(&app.address).try_login(ADMIN, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "4 since the success");
    for _ in 0..5 {
        assert_eq!(app.browser.try_login(ADMIN, "wrong password").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_throttled(app.browser.try_login(ADMIN, PASSWORD).await).await;
}

#[tokio::test]
async fn an_unknown_email_is_counted_like_a_known_one() {
    let app = spawn_app().await;
    for _ in 0..5 {
        let response = app.browser.try_login("nobody@clinic-a.test", PASSWORD).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_throttled(app.browser.try_login("nobody@clinic-a.test", PASSWORD).await).await;
    // Another email from the same address is still under both limits.
    assert_eq!(app.browser.try_login(ADMIN, PASSWORD).await.status(), StatusCode::SEE_OTHER);
    // The email tried is stored only as a hash.
    let stored = app.database_bytes().await;
    assert!(!String::from_utf8_lossy(&stored).to_lowercase().contains("nobody@clinic-a.test"));
}

#[tokio::test]
async fn twenty_failures_from_one_address_refuse_every_email_from_it() {
    let app = spawn_app().await;
    let started = clinic_connect::clock::Clock::now(&*app.clock);
    for i in 0..20 {
        // Spread over the window: the wait ends when the first of them leaves it.
        if i == 10 {
            app.clock.advance(60);
        }
        let response = app.browser.try_login(&format!("guess{i}@clinic-a.test"), "a guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let wait = assert_throttled(app.browser.try_login(ADMIN, PASSWORD).await).await;
    let now = clinic_connect::clock::Clock::now(&*app.clock);
    assert_eq!(wait, started + WINDOW - now);
    app.clock.advance(wait);
    assert_eq!(app.browser.try_login(ADMIN, PASSWORD).await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_counted() {
    let app = spawn_app_with(|s| s.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap()).await;
    let browser = Browser::new(&app.address);
    for i in 0..20 {
        let response = login_from(&browser, "203.0.113.50", &format!("guess{i}@clinic-a.test"), "a guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    assert_throttled(login_from(&browser, "203.0.113.50", ADMIN, PASSWORD).await).await;
    // An address the client wrote itself, left of what our proxy saw, changes nothing.
    assert_throttled(login_from(&browser, "198.51.100.1, 203.0.113.50", ADMIN, PASSWORD).await).await;
    // Another client behind the same proxy has its own count.
    let response = login_from(&browser, "203.0.113.51", ADMIN, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn without_trusted_proxies_a_forwarded_address_is_not_believed() {
    let app = spawn_app().await;
    let browser = Browser::new(&app.address);
    for i in 0..20 {
        let response = login_from(&browser, &format!("203.0.113.{i}"), &format!("guess{i}@clinic-a.test"), "x").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // All twenty came from the socket peer, whatever the header claimed.
    assert_throttled(login_from(&browser, "203.0.113.99", ADMIN, PASSWORD).await).await;
}

#[tokio::test]
async fn the_counts_are_shared_by_instances_and_kept_across_a_restart() {
    let app = spawn_app().await;
    let second = Browser::new(&app.second_instance().await);
    for i in 0..2 {
        assert_eq!(app.browser.try_login(ADMIN, "wrong password").await.status(), StatusCode::UNAUTHORIZED, "{i}");
        assert_eq!(second.try_login(ADMIN, "wrong password").await.status(), StatusCode::UNAUTHORIZED, "{i}");
    }
    // A third instance fails once more, and stops.
    let third = Application::build(app.settings.clone(), app.clock.clone()).await.unwrap();
    let third_handle = third.server_handle();
    let third_browser = Browser::new(&format!("http://127.0.0.1:{}", third.port()));
    let running = tokio::spawn(third.run_until_stopped());
    assert_eq!(third_browser.try_login(ADMIN, "wrong password").await.status(), StatusCode::UNAUTHORIZED);
    third_handle.stop(true).await;
    running.await.unwrap().unwrap();

    // Five failures in all, over three instances: every instance refuses, and so does one
    // started afresh (nothing of the count lived in an instance's memory).
    assert_throttled(app.browser.try_login(ADMIN, PASSWORD).await).await;
    assert_throttled(second.try_login(ADMIN, PASSWORD).await).await;
    let restarted = Application::build(app.settings.clone(), app.clock.clone()).await.unwrap();
    let restarted_browser = Browser::new(&format!("http://127.0.0.1:{}", restarted.port()));
    tokio::spawn(restarted.run_until_stopped());
    assert_throttled(restarted_browser.try_login(ADMIN, PASSWORD).await).await;
    // A success on one instance resets the email's count for all of them.
    app.clock.advance(WINDOW);
    for _ in 0..4 {
        assert_eq!(restarted_browser.try_login(ADMIN, "wrong password").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(second.try_login(ADMIN, PASSWORD).await.status(), StatusCode::SEE_OTHER);
    for _ in 0..4 {
        assert_eq!(app.browser.try_login(ADMIN, "wrong password").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(restarted_browser.try_login(ADMIN, PASSWORD).await.status(), StatusCode::SEE_OTHER, "4, not 8");
}
