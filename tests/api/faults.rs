//! A vendor that rate-limits, hangs, answers too much or answers nonsense: the connection keeps
//! its tokens, the current token serves while valid, and nothing is lost.

use clinic_connect::clock::Clock;
use clinic_connect::connections::connection_binding;
use clinic_connect::sandbox::{Endpoint, Failure, YAPPOINTMENT_COMPANY_NAME};
use clinic_connect::worker;
use reqwest::StatusCode;
use secrecy::ExposeSecret;

use crate::helpers::{spawn_app, TestApp};

fn refreshes(app: &TestApp) -> usize {
    app.sandbox
        .requests_to("yappointment", "/oauth/token")
        .into_iter()
        .filter_map(|r| r.json())
        .filter(|b| b["grant_type"] == "refresh_token")
        .count()
}

async fn proxy_me(app: &TestApp, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/v1/connections/yappointment/proxy/api/v1/me", app.address))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
}

/// The bearer token of the vendor call the proxy made last.
fn last_bearer(app: &TestApp) -> String {
    let calls = app.sandbox.requests_to("yappointment", "/api/v1/me");
    calls.last().unwrap().header("authorization").unwrap().to_owned()
}

/// The stored tokens, decrypted: (access, refresh).
async fn stored_tokens(app: &TestApp) -> (String, String) {
    let row = app.db.connection(1, "yappointment").await.unwrap().unwrap();
    assert_eq!(row.status, "connected");
    let open = |sealed: &Option<Vec<u8>>, column| {
        let binding = connection_binding(1, "yappointment", column);
        app.state.vault.open_str(sealed.as_ref().unwrap(), &binding).unwrap().expose_secret().to_owned()
    };
    (open(&row.access_token, "access_token"), open(&row.refresh_token, "refresh_token"))
}

/// Connected, with an API key; the clock inside the refresh margin (5 min), 200 s before expiry.
async fn connected_near_expiry() -> (TestApp, String) {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let key = app.api_key(1).await;
    app.clock.advance(3600 - 200);
    (app, key)
}

async fn history(app: &TestApp) -> String {
    app.login().await; // the admin's session idled out meanwhile
    app.browser.get_text("/connections/yappointment").await
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_while_the_current_token_serves() {
    let (app, key) = connected_near_expiry().await;
    let (access, refresh) = stored_tokens(&app).await;
    app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::RateLimited("90"), Some(1));
    worker::run_once(&app.state).await;
    assert_eq!(refreshes(&app), 1);
    assert_eq!(stored_tokens(&app).await, (access.clone(), refresh.clone()), "the tokens are kept");

    // 60 s on: past our own first backoff (at most 36 s), not past the vendor's 90 s.
    app.clock.advance(60);
    worker::run_once(&app.state).await;
    let response = proxy_me(&app, &key).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["name"], YAPPOINTMENT_COMPANY_NAME);
    assert_eq!(last_bearer(&app), format!("Bearer {access}"), "the current token serves");
    assert_eq!(refreshes(&app), 1, "the vendor's Retry-After is honoured by the worker and by callers");

    app.clock.advance(35);
    worker::run_once(&app.state).await;
    assert_eq!(refreshes(&app), 2);
    let (new_access, _) = stored_tokens(&app).await;
    assert_ne!(new_access, access);
    let detail = history(&app).await;
    assert!(detail.contains("HTTP 429") && detail.contains("next attempt in 90 s"), "{detail}");
    assert_eq!(app.sandbox.refresh_reuse_detections(), 0);
}

#[tokio::test]
async fn an_absurd_or_dated_retry_after_is_capped_or_measured_against_the_vendors_date() {
    let (app, _key) = connected_near_expiry().await;
    app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::RateLimited("9223372036854775807999"), Some(1));
    worker::run_once(&app.state).await;
    let detail = history(&app).await;
    assert!(detail.contains("next attempt in 3600 s"), "{detail}");

    // An HTTP-date two minutes after the sandbox's own Date header (it runs on the real clock).
    let (app, _key) = connected_near_expiry().await;
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(120);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let date: &'static str = Box::leak(at.format(&format).unwrap().into_boxed_str());
    app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::RateLimited(date), Some(1));
    worker::run_once(&app.state).await;
    let detail = history(&app).await;
    let wait: i64 =
        regex::Regex::new(r"next attempt in (\d+) s").unwrap().captures(&detail).unwrap()[1].parse().unwrap();
    assert!((115..=121).contains(&wait), "{wait}");
}

#[tokio::test]
async fn a_hanging_token_endpoint_times_out_and_loses_nothing() {
    let (app, key) = connected_near_expiry().await;
    let before = stored_tokens(&app).await;
    app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::Hang, Some(1));
    let started = std::time::Instant::now();
    worker::run_once(&app.state).await;
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_secs(2), "the vendor timeout is 2 s: {took:?}");
    assert!(took < std::time::Duration::from_secs(10), "and it is honoured: {took:?}");
    assert_eq!(refreshes(&app), 1);
    assert_eq!(stored_tokens(&app).await, before, "nothing lost, nothing half-stored");
    assert_eq!(proxy_me(&app, &key).await.status(), StatusCode::OK);
    assert_eq!(last_bearer(&app), format!("Bearer {}", before.0));

    app.clock.advance(60);
    worker::run_once(&app.state).await;
    assert_eq!(refreshes(&app), 2);
    assert_ne!(stored_tokens(&app).await.0, before.0);
    assert_eq!(app.sandbox.refresh_reuse_detections(), 0, "the refresh token survived the hang");
    let detail = history(&app).await;
    assert!(detail.contains("timed out"), "{detail}");
}

#[tokio::test]
async fn a_token_answer_over_the_body_cap_is_refused_and_loses_nothing() {
    let (app, key) = connected_near_expiry().await;
    let before = stored_tokens(&app).await;
    for (round, failure) in [Failure::Oversized, Failure::OversizedStream].into_iter().enumerate() {
        app.sandbox.set_failure("yappointment", Endpoint::Token, failure, Some(1));
        worker::run_once(&app.state).await;
        assert_eq!(refreshes(&app), round + 1);
        assert_eq!(stored_tokens(&app).await, before, "{failure:?}");
        assert_eq!(proxy_me(&app, &key).await.status(), StatusCode::OK);
        // Past the backoff, whatever its jitter.
        let row = app.db.connection(1, "yappointment").await.unwrap().unwrap();
        app.clock.advance(row.next_refresh_at.unwrap() - app.clock.now());
    }
    let detail = history(&app).await;
    assert!(detail.contains("exceeded 262144 bytes"), "{detail}");
    worker::run_once(&app.state).await;
    assert_ne!(stored_tokens(&app).await.0, before.0, "the next answer of a normal size is taken");

    // At connect time: a clear page, nothing stored.
    let app = spawn_app().await;
    app.login().await;
    app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::OversizedStream, Some(1));
    let authorize = app.browser.start_connect("yappointment").await;
    let callback = app.browser.consent(&authorize, "approve").await;
    let response = app.browser.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(response.text().await.unwrap().contains("answer we could not use"));
    assert!(app.db.connection(1, "yappointment").await.unwrap().is_none());
}

#[tokio::test]
async fn a_proxied_answer_over_the_body_cap_is_a_clear_502() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let key = app.api_key(1).await;
    for failure in [Failure::Oversized, Failure::OversizedStream] {
        app.sandbox.set_failure("yappointment", Endpoint::Identity, failure, Some(1));
        let response = proxy_me(&app, &key).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{failure:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "too_large", "{failure:?}");
    }
    assert_eq!(proxy_me(&app, &key).await.status(), StatusCode::OK);
}

const ABSURD_EXPIRES_IN: [&str; 4] = [
    r#"{"access_token":"yapp_at_absurd","token_type":"Bearer","expires_in":9223372036854775807,"refresh_token":"yapp_rt_absurd"}"#,
    r#"{"access_token":"yapp_at_absurd","token_type":"Bearer","expires_in":1e308,"refresh_token":"yapp_rt_absurd"}"#,
    r#"{"access_token":"yapp_at_absurd","token_type":"Bearer","expires_in":0,"refresh_token":"yapp_rt_absurd"}"#,
    r#"{"access_token":"yapp_at_absurd","token_type":"Bearer","expires_in":-3600,"refresh_token":"yapp_rt_absurd"}"#,
];

#[tokio::test]
async fn an_absurd_expires_in_is_a_malformed_answer_at_connect_and_at_refresh() {
    let app = spawn_app().await;
    app.login().await;
    for body in ABSURD_EXPIRES_IN {
        app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::Body(200, body), Some(1));
        let authorize = app.browser.start_connect("yappointment").await;
        let callback = app.browser.consent(&authorize, "approve").await;
        let response = app.browser.get(callback.as_str()).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{body}");
        assert!(app.db.connection(1, "yappointment").await.unwrap().is_none(), "{body}");
    }

    let (app, key) = connected_near_expiry().await;
    for (round, body) in ABSURD_EXPIRES_IN.into_iter().enumerate() {
        let before = stored_tokens(&app).await;
        app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::Body(200, body), Some(1));
        worker::run_once(&app.state).await;
        assert_eq!(refreshes(&app), 2 * round + 1);
        assert_eq!(stored_tokens(&app).await, before, "{body}");
        assert_eq!(proxy_me(&app, &key).await.status(), StatusCode::OK, "{body}");
        // A first failure backs off for about 30 s; then the next answer, a sound one, is taken.
        app.clock.advance(40);
        worker::run_once(&app.state).await;
        assert_eq!(refreshes(&app), 2 * round + 2);
        let after = stored_tokens(&app).await;
        assert_ne!(after.0, before.0, "{body}");
        let row = app.db.connection(1, "yappointment").await.unwrap().unwrap();
        assert_eq!(row.expires_at, Some(app.clock.now() + 3600), "{body}");
        app.clock.advance(3600 - 200);
    }
    let detail = history(&app).await;
    assert!(detail.contains("expires_in is not a whole number of seconds"), "{detail}");
}
