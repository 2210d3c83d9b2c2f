//! yAppointment, end to end: connect, view, disconnect, and every way a callback can go wrong.

use clinic_connect::sandbox::{
    Endpoint, Failure, YAPPOINTMENT_CLIENT_ID, YAPPOINTMENT_CLIENT_SECRET, YAPPOINTMENT_COMPANY_NAME,
};
use reqwest::StatusCode;

use crate::helpers::{location, query_param, spawn_app, Browser};

#[tokio::test]
async fn connect_view_and_disconnect() {
    let app = spawn_app().await;
    app.login().await;

    let dashboard = app.browser.get_text("/connections").await;
    for vendor in ["zocdoc", "drchrono", "docplanner", "yappointment", "qmatic"] {
        assert!(dashboard.contains(&format!(r#"id="card-{vendor}""#)), "no card for {vendor}");
    }
    assert!(dashboard.contains(r#"id="connect-yappointment""#));

    // The browser is sent to the vendor with PKCE S256 and a long state.
    let authorize = app.browser.start_connect("yappointment").await;
    assert!(authorize.as_str().starts_with(&app.sandbox_url));
    assert_eq!(authorize.path(), "/yappointment/oauth/authorize");
    assert_eq!(query_param(&authorize, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(query_param(&authorize, "client_id").as_deref(), Some(YAPPOINTMENT_CLIENT_ID));
    assert_eq!(
        query_param(&authorize, "redirect_uri").unwrap(),
        format!("{}/connections/yappointment/callback", app.address)
    );
    assert!(query_param(&authorize, "state").unwrap().len() >= 22);

    // The consent page names the app and the scopes.
    let consent_page = app.browser.client.get(authorize.clone()).send().await.unwrap().text().await.unwrap();
    assert!(consent_page.contains("clinic-connect"));
    assert!(consent_page.contains("bookings:read") && consent_page.contains("customers:read"));

    let callback = app.browser.consent(&authorize, "approve").await;
    let response = app.browser.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/connections/yappointment");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");

    // The exchange spoke yAppointment's dialect: JSON with the secret in the body, the verifier.
    let exchanges = app.sandbox.requests_to("yappointment", "/oauth/token");
    assert_eq!(exchanges.len(), 1);
    let body = exchanges[0].json().expect("JSON body");
    assert_eq!(body["grant_type"], "authorization_code");
    assert_eq!(body["client_id"], YAPPOINTMENT_CLIENT_ID);
    assert_eq!(body["client_secret"], YAPPOINTMENT_CLIENT_SECRET);
    assert!(body["code_verifier"].as_str().unwrap().len() >= 43);
    assert!(exchanges[0].header("authorization").is_none());

    let detail = app.browser.get_text("/connections/yappointment").await;
    assert!(detail.contains(r#"<span id="status">Connected</span>"#), "{detail}");
    assert!(detail.contains(YAPPOINTMENT_COMPANY_NAME));
    assert!(detail.contains("bookings:read") && detail.contains("see the bookings customers made"));
    assert!(detail.contains(r#"id="expires-at""#));
    assert!(detail.contains("Connected to Maple Street Clinic"), "history shows the connection");

    let dashboard = app.browser.get_text("/connections").await;
    assert!(dashboard.contains(r#"<span class="status" id="status-yappointment">Connected</span>"#));

    // The token the app holds works at the vendor until disconnect revokes it.
    let me = app.sandbox.requests_to("yappointment", "/api/v1/me");
    let bearer = me[0].header("authorization").unwrap().to_owned();
    let me_url = format!("{}/yappointment/api/v1/me", app.sandbox_url);
    let probe = reqwest::Client::new();
    assert_eq!(probe.post(&me_url).header("authorization", &bearer).send().await.unwrap().status(), 200);

    let response = app.browser.disconnect("yappointment").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/connections/yappointment");
    let revocations = app.sandbox.requests_to("yappointment", "/oauth/revoke");
    assert!(!revocations.is_empty());
    let revoke = revocations[0].json().unwrap();
    assert_eq!(revoke["client_id"], YAPPOINTMENT_CLIENT_ID);
    assert_eq!(revoke["client_secret"], YAPPOINTMENT_CLIENT_SECRET);
    assert_eq!(probe.post(&me_url).header("authorization", &bearer).send().await.unwrap().status(), 401);

    let detail = app.browser.get_text("/connections/yappointment").await;
    assert!(detail.contains(r#"<span id="status">Not connected</span>"#));
    assert!(detail.contains("Disconnected from yAppointment."));
    assert!(detail.contains("Access revoked at the vendor"), "{detail}");
    assert_eq!(app.db.pending_revocation_count().await.unwrap(), 0, "nothing left to retry");
    assert!(!detail.contains(YAPPOINTMENT_COMPANY_NAME) || detail.contains("Connected to Maple Street Clinic"));
    let row = app.db.connection(1, "yappointment").await.unwrap().unwrap();
    assert!(row.access_token.is_none() && row.refresh_token.is_none());
    assert_eq!(app.sandbox.refresh_reuse_detections(), 0);
}

#[tokio::test]
async fn denying_at_the_consent_page_returns_to_a_clear_message() {
    let app = spawn_app().await;
    app.login().await;
    let authorize = app.browser.start_connect("yappointment").await;
    let callback = app.browser.consent(&authorize, "deny").await;
    assert_eq!(query_param(&callback, "error").as_deref(), Some("access_denied"));
    let response = app.browser.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/connections/yappointment");
    let detail = app.browser.get_text("/connections/yappointment").await;
    assert!(detail.contains("Access was not granted at yAppointment"), "{detail}");
    assert!(detail.contains("Not connected"));
    assert_eq!(app.token_requests(), 0);
}

async fn refused_callback(app: &crate::helpers::TestApp, browser: &Browser, url: &str) {
    let response = browser.get(url).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
    let page = response.text().await.unwrap();
    assert!(page.contains("Start the connection again") || page.contains("Start it again"), "{page}");
    assert_eq!(app.token_requests(), 0, "a refused callback must not reach the token endpoint");
}

#[tokio::test]
async fn callbacks_with_missing_unknown_expired_or_foreign_state_are_refused_before_any_exchange() {
    let app = spawn_app().await;
    app.login().await;
    let authorize = app.browser.start_connect("yappointment").await;
    let callback = app.browser.consent(&authorize, "approve").await;
    let code = query_param(&callback, "code").unwrap();
    let base = "/connections/yappointment/callback";

    refused_callback(&app, &app.browser, &format!("{base}?code={code}")).await;
    refused_callback(&app, &app.browser, &format!("{base}?code={code}&state=")).await;
    refused_callback(&app, &app.browser, &format!("{base}?code={code}&state=forged-state-value-0123456789")).await;

    // Another signed-in session presenting this session's state.
    let other = app.other_clinic_browser().await;
    refused_callback(&app, &other, callback.as_str()).await;
    let same_clinic = Browser::new(&app.address);
    same_clinic.login("admin@clinic-a.test", crate::helpers::PASSWORD).await;
    refused_callback(&app, &same_clinic, callback.as_str()).await;

    // The rightful session's flow was left alone by those attempts…
    let response = app.browser.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.token_requests(), 1);

    // …and a flow older than ten minutes is refused.
    let authorize = app.browser.start_connect("yappointment").await;
    let late = app.browser.consent(&authorize, "approve").await;
    app.clock.advance(10 * 60 + 1);
    let response = app.browser.get(late.as_str()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("expired"));
    assert_eq!(app.token_requests(), 1);
}

#[tokio::test]
async fn a_replayed_callback_is_refused_and_the_connection_is_unchanged() {
    let app = spawn_app().await;
    app.login().await;
    let authorize = app.browser.start_connect("yappointment").await;
    let callback = app.browser.consent(&authorize, "approve").await;
    assert_eq!(app.browser.get(callback.as_str()).await.status(), StatusCode::SEE_OTHER);
    let before = app.db.connection(1, "yappointment").await.unwrap().unwrap();

    let response = app.browser.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("already used"));
    assert_eq!(app.token_requests(), 1);
    let after = app.db.connection(1, "yappointment").await.unwrap().unwrap();
    assert_eq!(before.version, after.version);
    assert_eq!(before.access_token, after.access_token);
    assert!(app.browser.get_text("/connections/yappointment").await.contains(r#"<span id="status">Connected</span>"#));
}

#[tokio::test]
async fn a_failing_token_endpoint_stores_nothing_and_keeps_an_existing_connection() {
    let app = spawn_app().await;
    app.login().await;

    for failure in [Failure::Status(500), Failure::Malformed] {
        app.sandbox.set_failure("yappointment", Endpoint::Token, failure, Some(1));
        let authorize = app.browser.start_connect("yappointment").await;
        let callback = app.browser.consent(&authorize, "approve").await;
        let response = app.browser.get(callback.as_str()).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{failure:?}");
        let page = response.text().await.unwrap();
        assert!(page.contains("yAppointment") && page.contains("Nothing was changed"), "{page}");
        assert!(app.db.connection(1, "yappointment").await.unwrap().is_none(), "{failure:?} stored something");
    }
    let history = app.browser.get_text("/connections/yappointment").await;
    assert!(history.contains("Connection failed"));

    // With a connection in place, a failed reconnect leaves it exactly as it was.
    app.connect_yappointment().await;
    let before = app.db.connection(1, "yappointment").await.unwrap().unwrap();
    app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::Malformed, Some(1));
    let authorize = app.browser.start_connect("yappointment").await;
    let callback = app.browser.consent(&authorize, "approve").await;
    assert_eq!(app.browser.get(callback.as_str()).await.status(), StatusCode::BAD_GATEWAY);
    let after = app.db.connection(1, "yappointment").await.unwrap().unwrap();
    assert_eq!(before.version, after.version);
    assert_eq!(before.access_token, after.access_token);
    assert_eq!(after.status, "connected");
}

#[tokio::test]
async fn disconnect_needs_post_and_a_csrf_token() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;

    let response = app.browser.get("/connections/yappointment/disconnect").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let response = app.browser.post_form("/connections/yappointment/disconnect", &[]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app.browser.post_form("/connections/yappointment/disconnect", &[("csrf", "guess")]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app.browser.post_form("/connections/yappointment/connect", &[("csrf", "guess")]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    assert!(app.sandbox.requests_to("yappointment", "/oauth/revoke").is_empty());
    assert_eq!(app.db.connection(1, "yappointment").await.unwrap().unwrap().status, "connected");
}

#[tokio::test]
async fn one_clinic_cannot_see_or_touch_another_clinics_connection() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let other = app.other_clinic_browser().await;

    let detail = other.get_text("/connections/yappointment").await;
    assert!(detail.contains(r#"<span id="status">Not connected</span>"#));
    assert!(!detail.contains(YAPPOINTMENT_COMPANY_NAME));
    assert!(!other.get_text("/connections").await.contains(YAPPOINTMENT_COMPANY_NAME));

    // Nothing to disconnect for the other clinic: its confirmation page sends it back…
    let response = other.get("/connections/yappointment/disconnect/confirm").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(other.get_text("/connections/yappointment").await.contains("is not connected"));
    // …and a form posted anyway is refused.
    let response = other.post_disconnect("yappointment").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(app.sandbox.requests_to("yappointment", "/oauth/revoke").is_empty());
    assert_eq!(app.db.connection(1, "yappointment").await.unwrap().unwrap().status, "connected");
}

#[tokio::test]
async fn an_unreachable_vendor_gives_a_clear_error() {
    let app = spawn_app().await;
    app.login().await;
    app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::Status(503), None);
    let authorize = app.browser.start_connect("yappointment").await;
    let callback = app.browser.consent(&authorize, "approve").await;
    let response = app.browser.get(callback.as_str()).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(response.text().await.unwrap().contains("HTTP 503"));
}

#[tokio::test]
async fn disconnect_with_the_vendor_down_still_disconnects_here_and_says_so() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    app.sandbox.set_failure("yappointment", Endpoint::Revoke, Failure::Status(503), None);
    let response = app.browser.disconnect("yappointment").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let detail = app.browser.get_text("/connections/yappointment").await;
    assert!(detail.contains("Not connected"));
    assert!(detail.contains("Revocation at the vendor failed"), "{detail}");
    assert!(detail.contains("will be retried in the background"), "{detail}");
    let row = app.db.connection(1, "yappointment").await.unwrap().unwrap();
    assert!(row.access_token.is_none() && row.refresh_token.is_none());
}

#[tokio::test]
async fn an_unknown_vendor_is_not_found() {
    let app = spawn_app().await;
    app.login().await;
    assert_eq!(app.browser.get("/connections/acme").await.status(), StatusCode::NOT_FOUND);
    let csrf = app.browser.csrf("/connections").await;
    let response = app.browser.post_form("/connections/acme/connect", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
