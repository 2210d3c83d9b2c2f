//! Patients: anonymous search, Zocdoc login carrying the anonymous session, appointments,
//! logout, Zocdoc's session limits, safe return paths, and no token anywhere a browser sees.

use clinic_connect::sandbox::{Endpoint, Failure, ZOCDOC_SANDBOX_SPA_CLIENT_ID, ZOCDOC_SANDBOX_USER_AUDIENCE};
use reqwest::header::SET_COOKIE;
use reqwest::StatusCode;
use url::Url;

use crate::helpers::{captured_logs, hidden_field, location, query_param, session_rows, spawn_app, Browser, TestApp};

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

/// Presses "Log in with Zocdoc" and denies at Zocdoc: the patient now has a session with its
/// own anonymous token, and is back on `page`.
async fn start_session(patient: &Browser, page: &str) {
    let authorize = start_login(patient, page, "").await;
    let callback = patient.consent(&authorize, "deny").await;
    let response = patient.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn browsing_without_a_session_uses_the_backend_token_and_a_session_its_own_anonymous_token() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    let page = patient.get_text("/care?specialty=Dermatology").await;
    assert!(page.contains("Dr. Marcus Webb, MD") && page.contains("Dr. Aisha Bello, MD"), "{page}");
    assert!(!page.contains("Dr. Sarah Chen"));
    assert!(page.contains("New York, NY"));
    let page = patient.get_text("/care?q=Chen").await;
    assert!(page.contains("Dr. Sarah Chen, DDS"));
    // No session yet: the app's backend token, no anonymous token, no session row.
    assert!(app.sandbox.requests_to(PREFIX, "/v1/token/anonymous-user").is_empty());
    let used = bearers(&app, "/v1/providers");
    assert_eq!(used.len(), 2);
    assert!(used.iter().all(|t| t.starts_with("zd_cc_")), "{used:?}");
    assert_eq!(session_rows(&app).await, 0);

    // The patient acts (Log in, then changes their mind): a session with its own anonymous
    // token, fetched once, with the backend token.
    start_session(&patient, "/care?q=Chen").await;
    assert_eq!(session_rows(&app).await, 1);
    patient.get_text("/care?specialty=Dermatology").await;
    patient.get_text("/care?q=Chen").await;
    let anonymous = app.sandbox.requests_to(PREFIX, "/v1/token/anonymous-user");
    assert_eq!(anonymous.len(), 1, "fetched once per browser session");
    assert!(anonymous[0].header("authorization").unwrap().starts_with("Bearer zd_cc_"), "with the backend token");
    assert_eq!(anonymous[0].json().unwrap()["app_client_id"], ZOCDOC_SANDBOX_SPA_CLIENT_ID);
    let used = bearers(&app, "/v1/providers")[2..].to_vec();
    assert_eq!(used.len(), 2);
    assert!(used.iter().all(|t| t.starts_with("zd_anon_") && *t == used[0]), "{used:?}");
}

#[tokio::test]
async fn two_browsers_with_sessions_get_two_anonymous_tokens_and_share_one_backend_token() {
    let app = spawn_app().await;
    let (a, b) = (Browser::new(&app.address), Browser::new(&app.address));
    start_session(&a, "/care").await;
    start_session(&b, "/care").await;
    a.get_text("/care?q=Dr").await;
    b.get_text("/care?q=Dr").await;
    let used = bearers(&app, "/v1/providers");
    assert_eq!(used.len(), 2);
    assert!(used.iter().all(|t| t.starts_with("zd_anon_")));
    assert_ne!(used[0], used[1]);
    assert_eq!(app.sandbox.requests_to(PREFIX, "/oauth/token").len(), 1, "one backend token, cached");
}

#[tokio::test]
async fn login_carries_the_anonymous_token_and_the_search_survives() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    patient.get_text("/care?specialty=Dermatology").await;

    let authorize = start_login(&patient, "/care?specialty=Dermatology", "pat@example.com").await;
    let issued = app.sandbox.requests_to(PREFIX, "/v1/token/anonymous-user");
    assert_eq!(issued.len(), 1, "the anonymous token is fetched when the patient logs in");
    let anonymous = query_param(&authorize, "anonymous_token").unwrap();
    assert!(anonymous.starts_with("zd_anon_"));
    assert_eq!(authorize.path(), format!("/{PREFIX}/authorize"));
    assert_eq!(query_param(&authorize, "login_hint").as_deref(), Some("pat@example.com"));
    assert_eq!(query_param(&authorize, "audience").as_deref(), Some(ZOCDOC_SANDBOX_USER_AUDIENCE));
    assert_eq!(query_param(&authorize, "client_id").as_deref(), Some(ZOCDOC_SANDBOX_SPA_CLIENT_ID));
    assert_eq!(query_param(&authorize, "code_challenge_method").as_deref(), Some("S256"));
    let scopes = query_param(&authorize, "scope").unwrap();
    assert!(scopes.split(' ').any(|s| s == "offline_access"));
    assert!(scopes.split(' ').any(|s| s == "external.appointment.write"), "the login asks for booking");
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
async fn patient_sign_in_rotates_the_csrf_token() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    let before_session = patient.csrf("/care").await;
    let authorize = start_login(&patient, "/care", "pat@example.com").await;
    // The session began with a token of its own, not the cookie's.
    let in_session = patient.csrf("/care/appointments").await;
    assert_ne!(in_session, before_session);
    let callback = patient.consent_as(&authorize, "approve", Some("pat@example.com")).await;
    patient.get(callback.as_str()).await;
    let after = patient.csrf("/care/appointments").await;
    assert_ne!(after, in_session, "a new token at sign-in");
    // The tokens from before the sign-in no longer work.
    for old in [&before_session, &in_session] {
        let response = patient.post_form("/care/logout", &[("csrf", old.as_str())]).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    let response = patient.post_form("/care/logout", &[("csrf", after.as_str())]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
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
    // Then it works again (a failure is not cached).
    assert!(patient.get_text("/care?q=Dr").await.contains("Dr. Sarah Chen"));
    // With a session, a token Zocdoc stops accepting is replaced once.
    start_session(&patient, "/care").await;
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
    tokens.extend(app.sandbox.zocdoc_links().into_iter().map(|(anonymous, _)| anonymous));
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

/// A value of `/metrics`, by its full name with labels.
async fn metric(app: &TestApp, name: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", app.address)).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// Zocdoc calls made for browsing: searches, provider lookups and availability.
fn browsing_calls(app: &TestApp) -> usize {
    app.sandbox.requests_to(PREFIX, "/v1/providers").len()
        + app
            .sandbox
            .requests()
            .iter()
            .filter(|r| {
                r.vendor == PREFIX
                    && (r.path.starts_with("/v1/providers/") || r.path == "/v1/provider_locations/availability")
            })
            .count()
}

#[tokio::test]
async fn a_thousand_cookieless_requests_create_no_session_and_a_bounded_number_of_zocdoc_calls() {
    let app = spawn_app().await;
    // A crawler: no cookies kept, one address, varied queries and pages.
    let crawler = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let queries = [
        "q=Chen",
        "q=chen",
        "q=++CHEN",
        "specialty=Dermatology",
        "q=Dr",
        "q=Webb",
        "specialty=Pediatrics",
        "q=Novak&specialty=dent",
        "q=nobody",
        "q=Raman",
    ];
    let (mut searches, mut ok, mut refused) = (0, 0, 0);
    for i in 0..1000 {
        let path = match i % 20 {
            0 => "/login".to_owned(),
            1 => "/care".to_owned(),
            2 => "/care/appointments".to_owned(),
            3 => "/care/providers/pr_10231".to_owned(),
            _ => format!("/care?{}", queries[i % queries.len()]),
        };
        let counted = path.starts_with("/care?") || path.starts_with("/care/providers/");
        let response = crawler.get(format!("{}{path}", app.address)).send().await.unwrap();
        let status = response.status();
        let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<i64>().unwrap());
        let body = response.text().await.unwrap();
        if counted {
            searches += 1;
            if status == StatusCode::TOO_MANY_REQUESTS {
                refused += 1;
                assert!((1..=60).contains(&retry_after.unwrap()), "{retry_after:?}");
                assert!(body.contains("wait") || body.contains("Too many requests"), "{body}");
            } else {
                assert!(status.is_success(), "{path}: {status}");
                ok += 1;
            }
        }
    }
    assert_eq!(ok, 30, "30 searches a minute per address");
    assert_eq!(refused, searches - 30);
    assert_eq!(session_rows(&app).await, 0, "no session row for anyone who did nothing");
    assert!(app.sandbox.requests_to(PREFIX, "/v1/token/anonymous-user").is_empty());
    // Three spellings of "Chen" are one search; at most two calls (providers, availability)
    // for each distinct search or provider page, and one backend token for all.
    let calls = browsing_calls(&app);
    assert!(calls <= 2 * 9, "{calls} Zocdoc calls");
    assert_eq!(app.sandbox.requests_to(PREFIX, "/oauth/token").len(), 1);
    assert_eq!(metric(&app, "clinic_connect_care_public_zocdoc_calls_total").await, calls as u64);
    let hits = metric(&app, "clinic_connect_care_search_cache_total{result=\"hit\"}").await;
    let misses = metric(&app, "clinic_connect_care_search_cache_total{result=\"miss\"}").await;
    assert_eq!(hits + misses, 30);
    assert!(hits >= 20, "{hits} hits");
    assert_eq!(metric(&app, "clinic_connect_care_searches_refused_total").await, refused as u64);

    // A minute later the address may search again; the cached answers have expired.
    app.clock.advance(61);
    let response = crawler.get(format!("{}/care?q=Chen", app.address)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("Dr. Sarah Chen, DDS"));
    assert_eq!(browsing_calls(&app), calls + 2);
    assert_eq!(session_rows(&app).await, 0);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.trusted_proxies = clinic_connect::client_addr::TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    let client = reqwest::Client::new();
    let search = |forwarded: &'static str| {
        client.get(format!("{}/care?q=Chen", app.address)).header("x-forwarded-for", forwarded).send()
    };
    for _ in 0..30 {
        assert_eq!(search("203.0.113.5").await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(search("203.0.113.5").await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    // Entries the client wrote itself, left of what our proxy saw, change nothing.
    assert_eq!(search("198.51.100.7, 203.0.113.5").await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(search("203.0.113.6").await.unwrap().status(), StatusCode::OK, "another client");
}

#[tokio::test]
async fn without_trusted_proxies_x_forwarded_for_is_ignored() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    for i in 0..31 {
        let status = client
            .get(format!("{}/care?q=Chen", app.address))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap()
            .status();
        let expected = if i < 30 { StatusCode::OK } else { StatusCode::TOO_MANY_REQUESTS };
        assert_eq!(status, expected, "request {i}");
    }
}

#[tokio::test]
async fn the_sign_in_form_creates_no_session_row_and_its_token_is_checked_against_the_cookie() {
    let app = spawn_app().await;
    let visitor = Browser::new(&app.address);
    for _ in 0..20 {
        assert_eq!(visitor.get("/login").await.status(), StatusCode::OK);
    }
    let page = reqwest::get(format!("{}/login", app.address)).await.unwrap();
    let cookie = page.headers().get(SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    assert!(cookie.starts_with("clinic-connect-csrf="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
    assert_eq!(session_rows(&app).await, 0);

    // The form's token alone (no cookie), or another browser's token: refused, no row.
    let token = visitor.csrf("/login").await;
    let bare = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = bare
        .post(format!("{}/login", app.address))
        .form(&[("email", "admin@clinic-a.test"), ("password", crate::helpers::PASSWORD), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let other = Browser::new(&app.address);
    other.get("/login").await;
    let response = other
        .post_form(
            "/login",
            &[("email", "admin@clinic-a.test"), ("password", crate::helpers::PASSWORD), ("csrf", &token)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // A wrong password shows the form again, still without a session row.
    let response = visitor.try_login("admin@clinic-a.test", "wrong password, surely").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(session_rows(&app).await, 0);
    // The right one signs in: one row, and the session's own token takes over.
    visitor.login("admin@clinic-a.test", crate::helpers::PASSWORD).await;
    assert_eq!(session_rows(&app).await, 1);
    let session_token = visitor.csrf("/connections").await;
    assert_ne!(session_token, token);
}

#[tokio::test]
async fn cookieless_care_pages_create_no_session_row_until_the_patient_acts() {
    let app = spawn_app().await;
    let patient = Browser::new(&app.address);
    for page in ["/care", "/care?q=Chen", "/care/providers/pr_10233", "/care/appointments", "/care/booked"] {
        let response = patient.get(page).await;
        assert!(response.status().as_u16() < 500, "{page}: {}", response.status());
    }
    // A form without a valid token changes nothing either.
    let response = patient.post_form("/care/login", &[("csrf", "forged"), ("return_to", "/care")]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(session_rows(&app).await, 0);
    assert!(app.sandbox.requests_to(PREFIX, "/v1/token/anonymous-user").is_empty());
    start_login(&patient, "/care", "").await;
    assert_eq!(session_rows(&app).await, 1);
}
