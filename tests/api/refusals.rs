//! What a vendor's refusal means, read by the app's own client from each sandbox vendor: a
//! revoked, expired or already-used refresh token is "grant gone" (RFC 6749 §5.2
//! `invalid_grant`, as every vendor's docs have it); the app's own registration refused, or a
//! misrouted URL, is "app refused"; a vendor in trouble is "transient".

use clinic_connect::connections::connection_binding;
use clinic_connect::sandbox::{
    Endpoint, Failure, QMATIC_ACCOUNT_NAME, QMATIC_CLIENT_ID, QMATIC_CLIENT_SECRET, QMATIC_REGION,
};
use clinic_connect::vendors::http::{ClientCredentials, RefusalKind, TokenSet, VendorError};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use crate::helpers::{spawn_app, TestApp};

/// The stored refresh token of clinic 1's connection, decrypted, and its environment.
async fn refresh_token_of(app: &TestApp, vendor: &str) -> (SecretString, String) {
    let row = app.db.connection(1, vendor).await.unwrap().unwrap();
    let binding = connection_binding(1, vendor, "refresh_token");
    (app.state.vault.open_str(row.refresh_token.as_ref().unwrap(), &binding).unwrap(), row.environment)
}

/// A refresh-token grant, sent by the app's own vendor client with the app's registration.
async fn refresh(
    app: &TestApp,
    vendor: &str,
    environment: &str,
    parameters: &str,
    client: Option<(&str, &str)>,
    token: &SecretString,
) -> Result<TokenSet, VendorError> {
    let vendor = app.state.vendors.get(vendor).unwrap().clone();
    let endpoints = vendor.endpoints(environment, parameters).unwrap();
    let registration = vendor.registration(environment);
    let secret = client.map(|(_, s)| SecretString::from(s));
    let credentials = match client {
        Some((id, _)) => ClientCredentials { client_id: id, client_secret: secret.as_ref(), auth: None },
        None => {
            let r = registration.unwrap();
            ClientCredentials { client_id: &r.client_id, client_secret: r.client_secret.as_ref(), auth: None }
        }
    };
    app.state.http.refresh(&vendor.profile, &endpoints, &credentials, token).await
}

fn kind(result: Result<TokenSet, VendorError>) -> RefusalKind {
    match result {
        Ok(_) => panic!("the vendor accepted the refresh"),
        Err(e) => e.refusal_kind(),
    }
}

async fn revoke(app: &TestApp, vendor: &str, environment: &str, token: &SecretString) {
    let v = app.state.vendors.get(vendor).unwrap().clone();
    let endpoints = v.endpoints(environment, "{}").unwrap();
    let r = v.registration(environment).unwrap();
    let credentials =
        ClientCredentials { client_id: &r.client_id, client_secret: r.client_secret.as_ref(), auth: None };
    app.state.http.revoke(&v.profile, &endpoints, &credentials, token).await.unwrap();
}

#[tokio::test]
async fn rotating_vendors_answer_a_used_or_revoked_refresh_token_with_grant_gone() {
    let app = spawn_app().await;
    app.login().await;
    for vendor in ["yappointment", "drchrono"] {
        let response = app.browser.connect_code_flow(vendor, &[]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{vendor}");
        let (first, env) = refresh_token_of(&app, vendor).await;
        let second = refresh(&app, vendor, &env, "{}", None, &first).await.unwrap().refresh_token.unwrap();
        assert_ne!(second.expose_secret(), first.expose_secret(), "{vendor} rotates");
        // Already used.
        assert_eq!(kind(refresh(&app, vendor, &env, "{}", None, &first).await), RefusalKind::GrantGone, "{vendor}");

        // Revoked: a fresh grant, revoked at the vendor as a disconnect does.
        let response = app.browser.connect_code_flow(vendor, &[]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{vendor}");
        let (token, env) = refresh_token_of(&app, vendor).await;
        revoke(&app, vendor, &env, &token).await;
        assert_eq!(kind(refresh(&app, vendor, &env, "{}", None, &token).await), RefusalKind::GrantGone, "{vendor}");
    }
    // yAppointment's reuse detection revoked the whole grant: its newest token is gone too.
    assert!(app.sandbox.refresh_reuse_detections() >= 1);
}

#[tokio::test]
async fn zocdoc_answers_an_expired_refresh_token_with_grant_gone_in_both_environments() {
    const DAY: i64 = 24 * 60 * 60;
    let app = spawn_app().await;
    for environment in ["production", "sandbox"] {
        app.login().await;
        let response = app.browser.connect_code_flow("zocdoc", &[("environment", environment)]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{environment}");
        let (token, env) = refresh_token_of(&app, "zocdoc").await;
        assert_eq!(env, environment);
        // Idle for more than 15 days.
        app.clock.advance(15 * DAY + 1);
        assert_eq!(kind(refresh(&app, "zocdoc", &env, "{}", None, &token).await), RefusalKind::GrantGone);

        // Used every two weeks, it still dies 30 days after the sign-in.
        app.login().await;
        let response = app.browser.connect_code_flow("zocdoc", &[("environment", environment)]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{environment}");
        let (token, env) = refresh_token_of(&app, "zocdoc").await;
        for _ in 0..2 {
            app.clock.advance(14 * DAY);
            refresh(&app, "zocdoc", &env, "{}", None, &token).await.unwrap();
        }
        app.clock.advance(2 * DAY);
        assert_eq!(kind(refresh(&app, "zocdoc", &env, "{}", None, &token).await), RefusalKind::GrantGone);
    }
}

#[tokio::test]
async fn qmatic_answers_an_unknown_refresh_token_with_grant_gone() {
    // Qmatic documents no revocation and no refresh-token expiry; a token it does not know
    // (revoked on its side, from another account) is the case left, and it is invalid_grant.
    let app = spawn_app().await;
    let params = serde_json::json!({ "account_name": QMATIC_ACCOUNT_NAME, "region": QMATIC_REGION }).to_string();
    let vendor = app.state.vendors.get("qmatic").unwrap().clone();
    let env = vendor.profile.default_environment().unwrap().name.clone();
    let endpoints = vendor.endpoints(&env, &params).unwrap();
    let secret = SecretString::from(QMATIC_CLIENT_SECRET);
    let credentials = ClientCredentials { client_id: QMATIC_CLIENT_ID, client_secret: Some(&secret), auth: None };
    let scope = vendor.profile.scopes.join(" ");
    let issued =
        app.state.http.client_credentials(&vendor.profile, &endpoints, &credentials, &scope, None).await.unwrap();
    let token = issued.refresh_token.unwrap();
    let client = Some((QMATIC_CLIENT_ID, QMATIC_CLIENT_SECRET));
    refresh(&app, "qmatic", &env, &params, client, &token).await.unwrap();
    let unknown = SecretString::from("qm_rt_unknown");
    assert_eq!(kind(refresh(&app, "qmatic", &env, &params, client, &unknown).await), RefusalKind::GrantGone);
}

#[tokio::test]
async fn injected_token_endpoint_answers_are_classified_end_to_end() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let (token, env) = refresh_token_of(&app, "yappointment").await;
    let cases = [
        (Failure::InvalidGrant, RefusalKind::GrantGone),
        (Failure::Error(401, "invalid_grant"), RefusalKind::GrantGone),
        (Failure::Error(401, "invalid_client"), RefusalKind::AppRefused),
        (Failure::Error(400, "invalid_client"), RefusalKind::AppRefused),
        (Failure::Error(400, "unauthorized_client"), RefusalKind::AppRefused),
        (Failure::Error(400, "some_new_code"), RefusalKind::AppRefused),
        (Failure::Status(401), RefusalKind::AppRefused),
        (Failure::Status(403), RefusalKind::AppRefused),
        (Failure::Status(404), RefusalKind::AppRefused),
        (Failure::Page(404), RefusalKind::AppRefused),
        (Failure::Page(403), RefusalKind::AppRefused),
        (Failure::RateLimited("5"), RefusalKind::Transient),
        (Failure::Status(408), RefusalKind::Transient),
        (Failure::Status(500), RefusalKind::Transient),
        (Failure::Status(503), RefusalKind::Transient),
        (Failure::Page(502), RefusalKind::Transient),
        (Failure::Malformed, RefusalKind::Transient),
        (Failure::Redirect, RefusalKind::Transient),
        (Failure::Oversized, RefusalKind::Transient),
        (Failure::OversizedStream, RefusalKind::Transient),
        (Failure::Hang, RefusalKind::Transient),
    ];
    for (failure, expected) in cases {
        app.sandbox.set_failure("yappointment", Endpoint::Token, failure, Some(1));
        let got = kind(refresh(&app, "yappointment", &env, "{}", None, &token).await);
        assert_eq!(got, expected, "{failure:?}");
    }
    // None of them touched the grant: the refresh token still works.
    refresh(&app, "yappointment", &env, "{}", None, &token).await.unwrap();
}
