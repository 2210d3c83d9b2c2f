//! Patients: anonymous search, Zocdoc login carrying the anonymous session, appointments,
//! logout, Zocdoc's session limits, safe return paths, and no token anywhere a browser sees.

use clinic_connect::sandbox::{Endpoint, Failure, ZOCDOC_SANDBOX_SPA_CLIENT_ID, ZOCDOC_SANDBOX_USER_AUDIENCE};
use reqwest::header::SET_COOKIE;
use reqwest::StatusCode;
use url::Url;

use crate::helpers::{captured_logs, hidden_field, location, query_param, spawn_app, Browser, TestApp};

const PREFIX: &str = "zocdoc-sandbox";

/// Bearer tokens the sandbox saw on an API path, in order.
fn bearers(app: &TestApp, path: &str) -> Vec<String> {
    app.sandbox
        .requests_to(PREFIX, path)
        .iter()
        .filter_map(|r| r.header("authorization").map(|a| a.trim_start_matches("Bearer ").to_owned()))
        .collect()
}

/// Clicks "Log in with Zocdoc" on a care page; returns Zocdoc's authorize URL.
async fn start_login(patient: &Browser, page: &str, email: &str) -> Url {
    let html = patient.get_text(page).await;
    let csrf = hidden_field(&html, "csrf").unwrap();
    let return_to = hidden_field(&html, "return_to").unwrap();
    let response =
        patient.post_form("/care/login", &[("csrf", &csrf), ("return_to", &return_to), ("email", email)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", response.text().await.unwrap());
    Url::parse(&location(&response)).unwrap()
}

/// Searches, logs in at the sandbox as `email`, follows the callback; returns where it landed.
async fn log_in(patient: &Browser, email: &str) -> String {
    let authorize = start_login(patient, "/care?specialty=Dermatology", email).await;
    let callback = patient.consent_as(&authorize, "approve", Some(email)).await;
    let response = patient.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    location(&response)
}

#[tokio::test]
async fn anonymous_search_uses_this_browsers_own_anonymous_token() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    let page = patient.get_text("/care?specialty=Dermatology").await;
    assert!(page.contains("Dr. Marcus Webb, MD") && page.contains("Dr. Aisha Bello, MD"), "{page}");
    assert!(!page.contains("Dr. Sarah Chen"));
    assert!(page.contains("New York, NY"));
    let page = patient.get_text("/care?q=Chen").await;
    assert!(page.contains("Dr. Sarah Chen, DDS"));

    let anonymous = app.sandbox.requests_to(PREFIX, "/v1/token/anonymous-user");
    assert_eq!(anonymous.len(), 1, "fetched once per browser session");
    assert!(anonymous[0].header("authorization").unwrap().starts_with("Bearer zd_cc_"), "with the backend token");
    assert_eq!(anonymous[0].json().unwrap()["app_client_id"], ZOCDOC_SANDBOX_SPA_CLIENT_ID);
    let used = bearers(&app, "/v1/providers");
    assert_eq!(used.len(), 2);
    assert!(used.iter().all(|t| t.starts_with("zd_anon_") && *t == used[0]));
}

#[tokio::test]
async fn two_browsers_get_two_anonymous_tokens_and_share_one_backend_token() {
    let app = spawn_app().await;
    let (a, b) = (Browser::new(&app.address), Browser::new(&app.address));
    a.get_text("/care?q=Dr").await;
    b.get_text("/care?q=Dr").await;
    let used = bearers(&app, "/v1/providers");
    assert_eq!(used.len(), 2);
    assert_ne!(used[0], used[1]);
    assert_eq!(app.sandbox.requests_to(PREFIX, "/oauth/token").len(), 1, "one backend token, cached");
}

#[tokio::test]
async fn login_carries_the_anonymous_token_and_the_search_survives() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    patient.get_text("/care?specialty=Dermatology").await;
    let anonymous = bearers(&app, "/v1/providers")[0].clone();

    let authorize = start_login(&patient, "/care?specialty=Dermatology", "pat@example.com").await;
    assert_eq!(authorize.path(), format!("/{PREFIX}/authorize"));
    assert_eq!(query_param(&authorize, "anonymous_token").as_deref(), Some(anonymous.as_str()));
    assert_eq!(query_param(&authorize, "login_hint").as_deref(), Some("pat@example.com"));
    assert_eq!(query_param(&authorize, "audience").as_deref(), Some(ZOCDOC_SANDBOX_USER_AUDIENCE));
    assert_eq!(query_param(&authorize, "client_id").as_deref(), Some(ZOCDOC_SANDBOX_SPA_CLIENT_ID));
    assert_eq!(query_param(&authorize, "code_challenge_method").as_deref(), Some("S256"));
    assert!(query_param(&authorize, "scope").unwrap().split(' ').any(|s| s == "offline_access"));
    assert!(query_param(&authorize, "redirect_uri").unwrap().ends_with("/care/callback"));
    // The sign-in page offers the hinted email.
    let signin = patient.client.get(authorize.clone()).send().await.unwrap().text().await.unwrap();
    assert!(signin.contains("pat@example.com"));

    let callback = patient.consent_as(&authorize, "approve", Some("pat@example.com")).await;
    let response = patient.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/care?specialty=Dermatology");
    let exchange = app.sandbox.requests_to(PREFIX, "/oauth/token");
    let body = exchange.last().unwrap().json().unwrap();
    assert_eq!(body["grant_type"], "authorization_code");
    assert!(body.get("client_secret").is_none());

    // The sandbox linked the anonymous session to the account.
    assert!(app.sandbox.zocdoc_links().contains(&(anonymous.clone(), "pat@example.com".to_owned())));
    let page = patient.get_text("/care?specialty=Dermatology").await;
    assert!(page.contains("You are logged in with Zocdoc"));
    assert!(page.contains("Dr. Marcus Webb, MD"), "the search is still there");
    assert!(page.contains(r#"id="my-appointments""#));
    // Logged in, searches go with the patient's own token; the anonymous one is dropped.
    let last = bearers(&app, "/v1/providers").pop().unwrap();
    assert!(last.starts_with("zd_at_"), "{last}");
}

#[tokio::test]
async fn appointments_after_login_and_nothing_private_after_logout() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    let before = patient.get("/care/appointments").await;
    assert_eq!(before.status(), StatusCode::UNAUTHORIZED);
    assert!(before.text().await.unwrap().contains("Log in with Zocdoc to see your appointments"));

    log_in(&patient, "pat@example.com").await;
    let response = patient.get("/care/appointments").await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains(r#"id="appointments""#), "{page}");
    assert!(bearers(&app, "/v1/appointments").iter().all(|t| t.starts_with("zd_at_")));

    let csrf = hidden_field(&page, "csrf").unwrap();
    let response = patient.post_form("/care/logout", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/care");
    // "Back" to the appointments page: nothing private, and every page says no-store.
    let response = patient.get("/care/appointments").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let page = response.text().await.unwrap();
    assert!(!page.contains(r#"id="appointments""#) && !page.contains("apt_"));
    assert_eq!(bearers(&app, "/v1/appointments").len(), 1, "no call with a discarded token");
}

#[tokio::test]
async fn an_anonymous_token_from_an_api_call_never_reaches_appointments() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    patient.get_text("/care?q=Dr").await;
    let response = patient.get("/care/appointments").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(app.sandbox.requests_to(PREFIX, "/v1/appointments").is_empty());
}

#[tokio::test]
async fn patient_sessions_idle_out_after_thirty_minutes() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    log_in(&patient, "pat@example.com").await;
    app.clock.advance(29 * 60);
    assert_eq!(patient.get("/care/appointments").await.status(), StatusCode::OK);
    app.clock.advance(31 * 60);
    let response = patient.get("/care/appointments").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.text().await.unwrap().contains("Log in"));
}

#[tokio::test]
async fn patient_sessions_end_after_one_day_and_stay_fresh_until_then() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    log_in(&patient, "pat@example.com").await;
    // Active every 20 minutes for a day: the hourly access token is refreshed in between.
    for _ in 0..(24 * 3 - 1) {
        app.clock.advance(20 * 60);
        assert_eq!(patient.get("/care/appointments").await.status(), StatusCode::OK);
    }
    let refreshes = app
        .sandbox
        .requests_to(PREFIX, "/oauth/token")
        .iter()
        .filter(|r| r.json().is_some_and(|b| b["grant_type"] == "refresh_token"))
        .count();
    assert!(refreshes >= 20, "{refreshes}");
    app.clock.advance(20 * 60);
    let response = patient.get("/care/appointments").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "asked to log in again after a day");
}

#[tokio::test]
async fn return_paths_that_could_leave_the_site_are_refused() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    let html = patient.get_text("/care").await;
    let csrf = hidden_field(&html, "csrf").unwrap();
    for bad in [
        "//evil.example",
        "/\\evil.example",
        "%2F%2Fevil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "javascript:alert(1)",
        "https://evil.example/care",
        "/care?next=%2F%2Fevil.example",
        "/connections",
    ] {
        let response = patient.post_form("/care/login", &[("csrf", &csrf), ("return_to", bad)]).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    assert!(app.sandbox.requests_to(PREFIX, "/authorize").is_empty());
    let response = patient.post_form("/care/login", &[("csrf", &csrf), ("return_to", "/care?q=Chen")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_patient_never_reaches_an_admin_page() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    log_in(&patient, "pat@example.com").await;
    let response = patient.get("/connections").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login");

    // The patient's session id under the admin cookie's name loads nothing either.
    let other = Browser::new(&app.address);
    let authorize = start_login(&other, "/care", "pat2@example.com").await;
    let callback = other.consent_as(&authorize, "approve", Some("pat2@example.com")).await;
    let landing = other.get(callback.as_str()).await;
    let value = landing
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("clinic-connect-care="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .expect("the login renews the patient's session cookie");
    let bare = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let as_admin = bare
        .get(format!("{}/connections", app.address))
        .header("cookie", format!("clinic-connect={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(as_admin.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&as_admin), "/login");
    let as_patient = bare
        .get(format!("{}/care/appointments", app.address))
        .header("cookie", format!("clinic-connect-care={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(as_patient.status(), StatusCode::OK, "the same value is a live patient session");
}

#[tokio::test]
async fn a_denied_login_keeps_the_search_working() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    let authorize = start_login(&patient, "/care?q=Chen", "").await;
    let callback = patient.consent(&authorize, "deny").await;
    let response = patient.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/care?q=Chen");
    let page = patient.get_text("/care?q=Chen").await;
    assert!(page.contains("You did not log in with Zocdoc"));
    assert!(page.contains("Dr. Sarah Chen, DDS"));
}

#[tokio::test]
async fn zocdoc_down_or_a_refused_token_gives_a_clear_message() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    app.sandbox.set_failure(PREFIX, Endpoint::Api, Failure::Status(503), Some(1));
    let response = patient.get("/care?q=Dr").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("Search is unavailable right now"));
    // Then it works again, and a token Zocdoc stops accepting is replaced once.
    assert!(patient.get_text("/care?q=Dr").await.contains("Dr. Sarah Chen"));
    let issued = || app.sandbox.requests_to(PREFIX, "/v1/token/anonymous-user").len();
    let before = issued();
    app.sandbox.set_failure(PREFIX, Endpoint::Api, Failure::Status(401), Some(1));
    assert!(patient.get_text("/care?q=Dr").await.contains("Dr. Sarah Chen"));
    assert_eq!(issued(), before + 1);
    // An expired anonymous token is replaced too (the session stays active meanwhile).
    for _ in 0..4 {
        app.clock.advance(20 * 60);
        assert!(patient.get_text("/care?q=Dr").await.contains("Dr. Sarah Chen"));
    }
    assert_eq!(issued(), before + 2);
    // A forged callback is refused with a clear page.
    let response = patient.get("/care/callback?code=zd_ac_forged&state=forged-state-0123456789").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("does not match a login started in this browser"));
}

#[tokio::test]
async fn no_anonymous_or_user_token_in_pages_cookies_our_urls_or_logs() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    let mut seen = Vec::new();
    let response = patient.get("/care?q=Dr").await;
    seen.push(format!("{:?}", response.headers()));
    seen.push(response.text().await.unwrap());
    let authorize = start_login(&patient, "/care?q=Dr", "pat@example.com").await;
    let callback = patient.consent_as(&authorize, "approve", Some("pat@example.com")).await;
    let landing = patient.get(callback.as_str()).await;
    seen.push(format!("{:?}", landing.headers()));
    for page in ["/care?q=Dr", "/care/appointments"] {
        let r = patient.get(page).await;
        seen.push(format!("{:?}", r.headers()));
        seen.push(r.text().await.unwrap());
    }
    // Active past the access token's hour: the user token is refreshed.
    for _ in 0..3 {
        app.clock.advance(22 * 60);
        let r = patient.get("/care/appointments").await;
        assert_eq!(r.status(), StatusCode::OK);
        seen.push(format!("{:?}", r.headers()));
        seen.push(r.text().await.unwrap());
    }

    let mut tokens: Vec<String> = bearers(&app, "/v1/providers");
    tokens.extend(bearers(&app, "/v1/appointments"));
    for r in app.sandbox.requests_to(PREFIX, "/oauth/token") {
        if let Some(t) = r.json().and_then(|b| b["refresh_token"].as_str().map(str::to_owned)) {
            tokens.push(t);
        }
    }
    assert!(tokens.iter().any(|t| t.starts_with("zd_anon_")));
    assert!(tokens.iter().any(|t| t.starts_with("zd_at_")));
    assert!(tokens.iter().any(|t| t.starts_with("zd_rt_")));
    let logs = captured_logs();
    for token in &tokens {
        assert!(!logs.contains(token.as_str()), "a patient token reached the logs");
        for s in &seen {
            assert!(!s.contains(token.as_str()), "a patient token reached a page, cookie or header");
        }
    }
    assert!(!location(&landing).contains("zd_"), "our redirect after login carries no token");
    for prefix in ["zd_anon_", "zd_at_", "zd_rt_", "zd_ac_"] {
        assert!(!logs.contains(prefix), "{prefix} in the logs");
    }
}
