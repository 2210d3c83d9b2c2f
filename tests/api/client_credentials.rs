//! Docplanner and Qmatic: the admin types the clinic's credentials; we check them at once with
//! the vendor, in its dialect, and store them sealed.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clinic_connect::clock::Clock;
use clinic_connect::sandbox::{
    Endpoint, Failure, DOCPLANNER_CLIENT_ID, DOCPLANNER_CLIENT_SECRET, DOCPLANNER_DOMAIN, DOCPLANNER_FACILITY_NAME,
    QMATIC_ACCOUNT_NAME, QMATIC_CLIENT_ID, QMATIC_CLIENT_SECRET, QMATIC_REGION,
};
use reqwest::StatusCode;

use crate::helpers::{location, spawn_app, TestApp};

const BOOK: &str = "com.qmatic.saas.appointments/external.appointment.book";
const CANCEL: &str = "com.qmatic.saas.appointments/external.appointment.cancel";

fn raw_basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

async fn connect_docplanner(app: &TestApp, secret: &str, domain: &str) -> reqwest::Response {
    app.browser
        .submit_connect(
            "docplanner",
            &[("client_id", DOCPLANNER_CLIENT_ID), ("client_secret", secret), ("domain", domain)],
        )
        .await
}

async fn connect_qmatic(app: &TestApp, secret: &str, account: &str, scopes: &[&str]) -> reqwest::Response {
    let mut form = vec![
        ("client_id", QMATIC_CLIENT_ID),
        ("client_secret", secret),
        ("account_name", account),
        ("region", QMATIC_REGION),
    ];
    form.extend(scopes.iter().map(|s| ("scopes", *s)));
    app.browser.submit_connect("qmatic", &form).await
}

#[tokio::test]
async fn docplanner_connects_with_raw_basic_a_form_body_and_the_domain() {
    let app = spawn_app().await;
    app.login().await;
    let form_page = app.browser.get_text("/connections/docplanner").await;
    assert!(form_page.contains(r#"id="credentials-hint""#), "development says where the test credentials are");
    assert!(form_page.contains("/credentials.json"));

    let response = connect_docplanner(&app, DOCPLANNER_CLIENT_SECRET, DOCPLANNER_DOMAIN).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", response.text().await.unwrap());
    assert_eq!(location(&response), "/connections/docplanner");

    let token = &app.sandbox.requests_to("docplanner", &format!("/{DOCPLANNER_DOMAIN}/oauth/v2/token"))[0];
    // Plain base64(id:secret): the secret's + / = are not form-encoded first.
    assert_eq!(token.header("authorization").unwrap(), raw_basic(DOCPLANNER_CLIENT_ID, DOCPLANNER_CLIENT_SECRET));
    assert_eq!(token.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(token.body, "grant_type=client_credentials&scope=integration");

    let detail = app.browser.get_text("/connections/docplanner").await;
    assert!(detail.contains(r#"<span id="status">Connected</span>"#), "{detail}");
    assert!(detail.contains(DOCPLANNER_FACILITY_NAME));
    assert!(detail.contains(DOCPLANNER_DOMAIN));
    assert!(detail.contains("Set (stored encrypted, never shown)"));
    assert!(!detail.contains(DOCPLANNER_CLIENT_SECRET));
    // `expires_in` (3600) wins over the prose's 24 hours.
    let row = app.db.connection(1, "docplanner").await.unwrap().unwrap();
    let now = clinic_connect::clock::Clock::now(&*app.clock);
    assert_eq!(row.expires_at, Some(now + 3600));
    assert_eq!(row.token_type.as_deref(), Some("Bearer"));

    let response = app.browser.disconnect("docplanner").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let row = app.db.connection(1, "docplanner").await.unwrap().unwrap();
    assert!(row.client_secret.is_none() && row.access_token.is_none());
}

#[tokio::test]
async fn docplanner_wrong_credentials_or_domain_show_a_message_and_store_nothing() {
    let app = spawn_app().await;
    app.login().await;

    let response = connect_docplanner(&app, "dp_cs_wrong-secret", DOCPLANNER_DOMAIN).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(page.contains(r#"id="form-error""#) && page.contains("did not accept these credentials"), "{page}");
    assert!(page.contains(&format!(r#"value="{DOCPLANNER_CLIENT_ID}""#)), "typed values are kept");
    assert!(!page.contains("dp_cs_wrong-secret"), "the secret is never shown again");

    // A domain the credentials were not issued for.
    let response = connect_docplanner(&app, DOCPLANNER_CLIENT_SECRET, "doctoralia.es").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A domain that is not Docplanner's at all never leaves the app.
    let before = app.sandbox.requests().len();
    let response = connect_docplanner(&app, DOCPLANNER_CLIENT_SECRET, "evil.example").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.sandbox.requests().len(), before);

    assert!(app.db.connection(1, "docplanner").await.unwrap().is_none());
}

#[tokio::test]
async fn docplanner_down_or_redirecting_is_refused_and_stores_nothing() {
    let app = spawn_app().await;
    app.login().await;
    for failure in [Failure::Status(503), Failure::Redirect, Failure::Malformed, Failure::Hang] {
        app.sandbox.set_failure("docplanner", Endpoint::Token, failure, Some(1));
        let response = connect_docplanner(&app, DOCPLANNER_CLIENT_SECRET, DOCPLANNER_DOMAIN).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{failure:?}");
        assert!(response.text().await.unwrap().contains("Docplanner"));
        assert!(app.db.connection(1, "docplanner").await.unwrap().is_none(), "{failure:?}");
    }
    // Exactly one request per attempt: the redirect was not followed.
    assert_eq!(app.sandbox.requests_to("docplanner", &format!("/{DOCPLANNER_DOMAIN}/oauth/v2/token")).len(), 4);
}

#[tokio::test]
async fn qmatic_sends_a_normalised_x_account_and_space_separated_scopes() {
    let app = spawn_app().await;
    app.login().await;
    let response = connect_qmatic(&app, QMATIC_CLIENT_SECRET, QMATIC_ACCOUNT_NAME, &[BOOK, CANCEL]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", response.text().await.unwrap());

    let token = &app.sandbox.requests_to("qmatic", &format!("/{QMATIC_REGION}/oauth2/token"))[0];
    assert_eq!(token.header("x-account"), Some("northsidehealth"));
    assert_eq!(token.header("authorization").unwrap(), raw_basic(QMATIC_CLIENT_ID, QMATIC_CLIENT_SECRET));
    let form = token.form();
    assert!(form.contains(&("grant_type".to_owned(), "client_credentials".to_owned())));
    assert!(form.contains(&("scope".to_owned(), format!("{BOOK} {CANCEL}"))));

    let detail = app.browser.get_text("/connections/qmatic").await;
    assert!(detail.contains(r#"<span id="status">Connected</span>"#));
    assert!(detail.contains(QMATIC_ACCOUNT_NAME) && detail.contains(QMATIC_REGION));
    assert!(detail.contains("book appointments") && detail.contains("cancel appointments"));
    assert!(!detail.contains("move appointments to another time"));
    let row = app.db.connection(1, "qmatic").await.unwrap().unwrap();
    assert!(row.refresh_token.is_some(), "Qmatic's refresh token is kept, sealed");
}

#[tokio::test]
async fn qmatic_wrong_credentials_wrong_account_no_scopes_and_down() {
    let app = spawn_app().await;
    app.login().await;
    let response = connect_qmatic(&app, "qm_cs_wrong", QMATIC_ACCOUNT_NAME, &[BOOK]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("did not accept these credentials"));

    let response = connect_qmatic(&app, QMATIC_CLIENT_SECRET, "Southside Health", &[BOOK]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let before = app.sandbox.requests().len();
    let response = connect_qmatic(&app, QMATIC_CLIENT_SECRET, QMATIC_ACCOUNT_NAME, &[]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("Choose at least one"));
    assert_eq!(app.sandbox.requests().len(), before, "an incomplete form never reaches Qmatic");

    app.sandbox.set_failure("qmatic", Endpoint::Token, Failure::Status(500), Some(1));
    let response = connect_qmatic(&app, QMATIC_CLIENT_SECRET, QMATIC_ACCOUNT_NAME, &[BOOK]).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(app.db.connection(1, "qmatic").await.unwrap().is_none());
}

#[tokio::test]
async fn connect_forms_need_the_csrf_token() {
    let app = spawn_app().await;
    app.login().await;
    let response = app
        .browser
        .post_form(
            "/connections/docplanner/connect",
            &[
                ("client_id", DOCPLANNER_CLIENT_ID),
                ("client_secret", DOCPLANNER_CLIENT_SECRET),
                ("domain", DOCPLANNER_DOMAIN),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(app.sandbox.requests().is_empty());
}

/// Twenty proxy calls at once on an expired client-credentials token: one new token is fetched
/// with the clinic's credentials, and every call is served with it.
async fn single_flight(app: &TestApp, vendor: &str, host_part: &str, token_path: &str, api_path: &str) {
    let key = app.api_key(1).await;
    let before = app.sandbox.requests_to(vendor, token_path).len();
    app.clock.advance(3600 + 60);
    let calls = (0..20).map(|_| {
        let key = key.clone();
        let url = format!("{}/api/v1/connections/{vendor}/proxy/{api_path}", app.address);
        async move { reqwest::Client::new().get(url).bearer_auth(key).send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    let tokens = app.sandbox.requests_to(vendor, token_path);
    assert_eq!(tokens.len() - before, 1, "one token request for twenty calls");
    let served: std::collections::HashSet<String> = app
        .sandbox
        .requests_to(vendor, &format!("/{host_part}/{api_path}"))
        .iter()
        .rev()
        .take(20)
        .map(|r| r.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(served.len(), 1, "every call carried the one new token");
    let row = app.db.connection(1, vendor).await.unwrap().unwrap();
    assert!(row.expires_at.unwrap() > app.clock.now() + 3000, "the new token was stored");
}

#[tokio::test]
async fn docplanner_fetches_one_new_token_for_many_concurrent_calls() {
    let app = spawn_app().await;
    app.login().await;
    let response = connect_docplanner(&app, DOCPLANNER_CLIENT_SECRET, DOCPLANNER_DOMAIN).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let token_path = format!("/{DOCPLANNER_DOMAIN}/oauth/v2/token");
    single_flight(&app, "docplanner", DOCPLANNER_DOMAIN, &token_path, "api/v3/integration/facilities").await;
}

#[tokio::test]
async fn qmatic_fetches_one_new_token_for_many_concurrent_calls() {
    let app = spawn_app().await;
    app.login().await;
    let response = connect_qmatic(&app, QMATIC_CLIENT_SECRET, QMATIC_ACCOUNT_NAME, &[BOOK]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let token_path = format!("/{QMATIC_REGION}/oauth2/token");
    single_flight(&app, "qmatic", QMATIC_REGION, &token_path, "v1/branches").await;
}
