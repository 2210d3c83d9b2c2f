//! Admin sign-in and the server-side session: renewal, logout, tampering, idle and absolute limits.

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;

use crate::helpers::{location, spawn_app, Browser, TestApp, PASSWORD};

const COOKIE_NAME: &str = "clinic-connect";

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{COOKIE_NAME}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// A client without a cookie jar: the test sets the Cookie header itself.
fn bare_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn dashboard_with_cookie(address: &str, cookie: &str) -> reqwest::Response {
    bare_client().get(format!("{address}/connections")).header(COOKIE, cookie).send().await.unwrap()
}

/// Signs clinic A's admin in through the app's browser; the new session cookie.
async fn sign_in_cookie(app: &TestApp) -> String {
    let csrf = app.browser.csrf("/login").await;
    let response = app
        .browser
        .post_form("/login", &[("email", "admin@clinic-a.test"), ("password", PASSWORD), ("csrf", &csrf)])
        .await;
    session_cookie(&response).unwrap()
}

#[tokio::test]
async fn pages_need_a_signed_in_admin() {
    let app = spawn_app().await;
    for path in ["/connections", "/connections/yappointment"] {
        let response = app.browser.get(path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&response), "/login");
    }
}

#[tokio::test]
async fn a_wrong_password_or_unknown_email_is_refused_with_a_message() {
    let app = spawn_app().await;
    for (email, password) in [("admin@clinic-a.test", "wrong password!"), ("nobody@clinic-a.test", PASSWORD)] {
        let response = app.browser.try_login(email, password).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.text().await.unwrap().contains("do not match an admin"));
    }
    assert_eq!(app.browser.get("/connections").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn sign_in_needs_the_forms_csrf_token() {
    let app = spawn_app().await;
    app.browser.get("/login").await;
    let response = app
        .browser
        .post_form("/login", &[("email", "admin@clinic-a.test"), ("password", PASSWORD), ("csrf", "nope")])
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_session_cookie_is_opaque_http_only_lax_and_renewed_at_sign_in() {
    let app = spawn_app().await;
    let page = app.browser.get("/login").await;
    // The form's CSRF token is in a signed cookie: showing the form starts no session.
    assert!(session_cookie(&page).is_none(), "the login page starts no session");
    let csrf = crate::helpers::hidden_field(&page.text().await.unwrap(), "csrf").unwrap();
    let form = [("email", "admin@clinic-a.test"), ("password", PASSWORD), ("csrf", csrf.as_str())];
    let response = app.browser.post_form("/login", &form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let before = session_cookie(&response).expect("sign-in sets a session cookie");
    let raw = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{COOKIE_NAME}=")))
        .unwrap()
        .to_owned();
    assert!(raw.contains("HttpOnly"), "{raw}");
    assert!(raw.contains("SameSite=Lax"), "{raw}");
    assert!(raw.contains("Path=/"), "{raw}");

    // Signing in again over a live session renews its id.
    let response = app.browser.post_form("/login", &form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let after = session_cookie(&response).expect("sign-in sets a new session cookie");
    assert_ne!(before, after);
    // The earlier session id grants nothing.
    let response = dashboard_with_cookie(&app.address, &before).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(dashboard_with_cookie(&app.address, &after).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_tampered_or_garbage_session_cookie_is_treated_as_signed_out() {
    let app = spawn_app().await;
    let cookie = sign_in_cookie(&app).await;
    assert_eq!(dashboard_with_cookie(&app.address, &cookie).await.status(), StatusCode::OK);

    let (name, value) = cookie.split_once('=').unwrap();
    let mut bytes = value.as_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{name}={}", String::from_utf8(bytes).unwrap());
    for cookie in [tampered, format!("{name}=garbage"), format!("{name}="), format!("{name}=%%%%")] {
        let response = dashboard_with_cookie(&app.address, &cookie).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{cookie}");
        assert_eq!(location(&response), "/login");
    }
}

#[tokio::test]
async fn logout_destroys_the_session_on_the_server() {
    let app = spawn_app().await;
    let cookie = sign_in_cookie(&app).await;

    assert_eq!(app.browser.get("/logout").await.status(), StatusCode::METHOD_NOT_ALLOWED);
    let csrf = app.browser.csrf("/connections").await;
    let response = app.browser.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login?signed_out=1");

    // Replaying the old cookie after logout finds no session.
    let response = dashboard_with_cookie(&app.address, &cookie).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn logout_on_one_instance_ends_the_session_on_another_at_once() {
    let app = spawn_app().await;
    let cookie = sign_in_cookie(&app).await;
    // A second instance on the same database serves the session, so its memory holds it.
    let second_address = app.second_instance().await;
    for _ in 0..3 {
        assert_eq!(dashboard_with_cookie(&second_address, &cookie).await.status(), StatusCode::OK);
    }

    let csrf = app.browser.csrf("/connections").await;
    assert_eq!(app.browser.post_form("/logout", &[("csrf", &csrf)]).await.status(), StatusCode::SEE_OTHER);

    let response = dashboard_with_cookie(&second_address, &cookie).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "the other instance still knew the session");
    assert_eq!(location(&response), "/login");
}

#[tokio::test]
async fn sessions_end_after_thirty_idle_minutes() {
    let app = spawn_app().await;
    app.login().await;
    app.clock.advance(29 * 60);
    assert_eq!(app.browser.get("/connections").await.status(), StatusCode::OK);
    app.clock.advance(29 * 60);
    assert_eq!(app.browser.get("/connections").await.status(), StatusCode::OK, "activity extends the session");
    app.clock.advance(31 * 60);
    let response = app.browser.get("/connections").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login");
}

#[tokio::test]
async fn sessions_end_twelve_hours_after_sign_in_however_active() {
    let app = spawn_app().await;
    app.login().await;
    for _ in 0..(12 * 60 / 20 - 1) {
        app.clock.advance(20 * 60);
        assert_eq!(app.browser.get("/connections").await.status(), StatusCode::OK);
    }
    app.clock.advance(20 * 60);
    let response = app.browser.get("/connections").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login");
}

#[tokio::test]
async fn a_second_browser_has_its_own_session() {
    let app = spawn_app().await;
    app.login().await;
    let other = Browser::new(&app.address);
    assert_eq!(other.get("/connections").await.status(), StatusCode::SEE_OTHER);
}
