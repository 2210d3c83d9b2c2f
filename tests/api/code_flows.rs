//! Zocdoc and DrChrono in their own dialects, and what must hold across code-flow vendors:
//! mix-up protection and several pending flows at once.

use clinic_connect::sandbox::{
    Endpoint, Failure, DRCHRONO_CLIENT_ID, DRCHRONO_CLIENT_SECRET, DRCHRONO_USERNAME, ZOCDOC_SANDBOX_SPA_CLIENT_ID,
    ZOCDOC_SANDBOX_USER_AUDIENCE, ZOCDOC_SPA_CLIENT_ID, ZOCDOC_USER_AUDIENCE,
};
use reqwest::StatusCode;

use crate::helpers::{location, query_param, spawn_app};

#[tokio::test]
async fn zocdoc_connects_on_the_public_spa_client_in_either_environment() {
    let app = spawn_app().await;
    app.login().await;

    for (environment, prefix, client_id, audience) in [
        ("sandbox", "zocdoc-sandbox", ZOCDOC_SANDBOX_SPA_CLIENT_ID, ZOCDOC_SANDBOX_USER_AUDIENCE),
        ("production", "zocdoc", ZOCDOC_SPA_CLIENT_ID, ZOCDOC_USER_AUDIENCE),
    ] {
        let authorize = app.browser.start_connect_with("zocdoc", &[("environment", environment)]).await;
        assert_eq!(authorize.path(), format!("/{prefix}/authorize"));
        assert_eq!(query_param(&authorize, "audience").as_deref(), Some(audience));
        assert_eq!(query_param(&authorize, "client_id").as_deref(), Some(client_id));
        assert_eq!(query_param(&authorize, "login_hint").as_deref(), Some("admin@clinic-a.test"));
        assert_eq!(query_param(&authorize, "code_challenge_method").as_deref(), Some("S256"));
        let scope = query_param(&authorize, "scope").unwrap();
        assert_eq!(scope, "external.appointment.read external.appointment.write offline_access");

        // The sign-in page offers the admin's email.
        let page = app.browser.client.get(authorize.clone()).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("admin@clinic-a.test"));

        let callback = app.browser.consent(&authorize, "approve").await;
        let response = app.browser.get(callback.as_str()).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{environment}");

        // Exchange: JSON, client_id and no secret, at this environment's host.
        let exchange = app.sandbox.requests_to(prefix, "/oauth/token");
        let body = exchange.last().unwrap().json().expect("JSON");
        assert_eq!(body["grant_type"], "authorization_code");
        assert_eq!(body["client_id"], client_id);
        assert!(body.get("client_secret").is_none());
        assert!(exchange.last().unwrap().header("authorization").is_none());

        let detail = app.browser.get_text("/connections/zocdoc").await;
        assert!(detail.contains(r#"<span id="status">Connected</span>"#), "{detail}");
        assert!(detail.contains(&format!(r#"<dd id="environment">{environment}</dd>"#)));
        assert!(detail.contains("external.appointment.read"));
        let row = app.db.connection(1, "zocdoc").await.unwrap().unwrap();
        assert!(row.refresh_token.is_some(), "offline_access yields a refresh token");
        assert_eq!(row.environment, environment);

        // Zocdoc documents no revocation: disconnect deletes what we hold.
        let response = app.browser.disconnect("zocdoc").await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let detail = app.browser.get_text("/connections/zocdoc").await;
        assert!(detail.contains("Not connected"));
        assert!(detail.contains("stored tokens and secrets were deleted"));
    }
}

#[tokio::test]
async fn a_zocdoc_error_redirect_shows_a_clear_page() {
    let app = spawn_app().await;
    app.login().await;
    let authorize = app.browser.start_connect_with("zocdoc", &[("environment", "sandbox")]).await;
    let callback = app.browser.consent(&authorize, "deny").await;
    assert!(query_param(&callback, "error").is_some());
    let response = app.browser.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let detail = app.browser.get_text("/connections/zocdoc").await;
    assert!(detail.contains("Access was not granted at Zocdoc"), "{detail}");

    // An error the vendor names with a description is shown, escaped.
    let authorize = app.browser.start_connect_with("zocdoc", &[("environment", "sandbox")]).await;
    let state = query_param(&authorize, "state").unwrap();
    let forged = format!(
        "/connections/zocdoc/callback?error=server_error&error_description=%3Cb%3EZocdoc+is+busy%3C%2Fb%3E&state={state}"
    );
    assert_eq!(app.browser.get(&forged).await.status(), StatusCode::SEE_OTHER);
    let detail = app.browser.get_text("/connections/zocdoc").await;
    assert!(detail.contains("server_error") && detail.contains("&#60;b&#62;Zocdoc is busy"), "{detail}");
    assert!(app.sandbox.requests_to("zocdoc-sandbox", "/oauth/token").is_empty());
}

#[tokio::test]
async fn an_unknown_zocdoc_environment_is_refused() {
    let app = spawn_app().await;
    app.login().await;
    let response = app.browser.submit_connect("zocdoc", &[("environment", "staging")]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_zocdoc_backend_token_is_fetched_once_and_shared_until_near_expiry() {
    let app = spawn_app().await;
    let state = app.state.clone();
    let vendor = state.vendors.get("zocdoc").unwrap().clone();
    let fetches = (0..10).map(|_| {
        let (state, vendor) = (state.clone(), vendor.clone());
        async move { state.backend_tokens.token(&state, &vendor, "sandbox").await.unwrap() }
    });
    let tokens = futures_util::future::join_all(fetches).await;
    use secrecy::ExposeSecret;
    assert!(tokens.iter().all(|t| t.expose_secret() == tokens[0].expose_secret()));
    let requests = app.sandbox.requests_to("zocdoc-sandbox", "/oauth/token");
    assert_eq!(requests.len(), 1);
    let body = requests[0].json().unwrap();
    assert_eq!(body["grant_type"], "client_credentials");
    assert_eq!(body["audience"], clinic_connect::sandbox::ZOCDOC_SANDBOX_API_AUDIENCE);

    app.clock.advance(3600 - 60);
    let renewed = state.backend_tokens.token(&state, &vendor, "sandbox").await.unwrap();
    assert_ne!(renewed.expose_secret(), tokens[0].expose_secret());
    assert_eq!(app.sandbox.requests_to("zocdoc-sandbox", "/oauth/token").len(), 2);
}

#[tokio::test]
async fn drchrono_speaks_form_bodies_with_the_secret_inside_and_shows_the_user() {
    let app = spawn_app().await;
    app.login().await;
    let authorize = app.browser.start_connect("drchrono").await;
    assert_eq!(authorize.path(), "/drchrono/o/authorize/");
    let scope = query_param(&authorize, "scope").unwrap();
    // The least an appointment integration needs, not DrChrono's whole list.
    assert_eq!(scope, "calendar:read calendar:write patients:read user:read");
    let callback = app.browser.consent(&authorize, "approve").await;
    assert_eq!(app.browser.get(callback.as_str()).await.status(), StatusCode::SEE_OTHER);

    let exchange = &app.sandbox.requests_to("drchrono", "/o/token/")[0];
    assert_eq!(exchange.header("content-type"), Some("application/x-www-form-urlencoded"));
    let form = exchange.form();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("client_id"), Some(DRCHRONO_CLIENT_ID));
    assert_eq!(get("client_secret"), Some(DRCHRONO_CLIENT_SECRET));
    assert!(get("code_verifier").is_some());
    assert!(exchange.header("authorization").is_none());

    let detail = app.browser.get_text("/connections/drchrono").await;
    assert!(detail.contains(&format!(r#"<dd id="account-name">{DRCHRONO_USERNAME}</dd>"#)), "{detail}");

    let response = app.browser.disconnect("drchrono").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let revoke = app.sandbox.requests_to("drchrono", "/o/revoke_token/");
    assert!(!revoke.is_empty());
    assert_eq!(revoke[0].header("content-type"), Some("application/x-www-form-urlencoded"));
}

#[tokio::test]
async fn drchrono_down_during_the_account_lookup_connects_and_looks_again_later() {
    let app = spawn_app().await;
    app.login().await;
    app.sandbox.set_failure("drchrono", Endpoint::Identity, Failure::Status(503), Some(1));
    let response = app.browser.connect_code_flow("drchrono", &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // The first view retries the lookup, which now succeeds.
    let detail = app.browser.get_text("/connections/drchrono").await;
    assert!(detail.contains("could not tell us the account name yet"), "{detail}");
    assert!(detail.contains(&format!(r#"<dd id="account-name">{DRCHRONO_USERNAME}</dd>"#)), "{detail}");
    assert_eq!(app.sandbox.requests_to("drchrono", "/api/users/current").len(), 2);
    // Known now: no more lookups.
    app.browser.get_text("/connections/drchrono").await;
    assert_eq!(app.sandbox.requests_to("drchrono", "/api/users/current").len(), 2);
}

#[tokio::test]
async fn drchrono_token_endpoint_down_is_a_clear_error() {
    let app = spawn_app().await;
    app.login().await;
    app.sandbox.set_failure("drchrono", Endpoint::Token, Failure::Status(502), None);
    let response = app.browser.connect_code_flow("drchrono", &[]).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(response.text().await.unwrap().contains("DrChrono"));
    assert!(app.db.connection(1, "drchrono").await.unwrap().is_none());
}

#[tokio::test]
async fn a_state_issued_for_one_vendor_is_refused_on_another_vendors_callback() {
    let app = spawn_app().await;
    app.login().await;
    let authorize = app.browser.start_connect("yappointment").await;
    let callback = app.browser.consent(&authorize, "approve").await;
    let mixed = callback.as_str().replace("/connections/yappointment/callback", "/connections/drchrono/callback");
    let response = app.browser.get(&mixed).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(app.sandbox.requests_to("drchrono", "/o/token/").is_empty());
    assert!(app.sandbox.requests_to("yappointment", "/oauth/token").is_empty());
    // The rightful callback still completes.
    assert_eq!(app.browser.get(callback.as_str()).await.status(), StatusCode::SEE_OTHER);
    assert!(app.db.connection(1, "drchrono").await.unwrap().is_none());
    assert_eq!(app.db.connection(1, "yappointment").await.unwrap().unwrap().status, "connected");
}

#[tokio::test]
async fn two_pending_flows_in_two_tabs_both_complete() {
    let app = spawn_app().await;
    app.login().await;
    let first = app.browser.start_connect("yappointment").await;
    let second = app.browser.start_connect("drchrono").await;
    let third = app.browser.start_connect_with("zocdoc", &[("environment", "sandbox")]).await;
    // Completed in another order than started.
    for authorize in [&second, &third, &first] {
        let callback = app.browser.consent(authorize, "approve").await;
        let response = app.browser.get(callback.as_str()).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{authorize}");
        assert!(location(&response).starts_with("/connections/"));
    }
    for vendor in ["yappointment", "drchrono", "zocdoc"] {
        assert_eq!(app.db.connection(1, vendor).await.unwrap().unwrap().status, "connected", "{vendor}");
    }
}
