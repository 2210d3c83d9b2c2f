//! The backend API for the clinic's own systems: API keys, connection status, the proxy.

use clinic_connect::sandbox::YAPPOINTMENT_COMPANY_NAME;
use reqwest::StatusCode;

use crate::helpers::{spawn_app, TestApp};

/// POST to the yAppointment proxy with an API key.
async fn proxy(app: &TestApp, key: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/v1/connections/yappointment/proxy/{path}", app.address))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn connection_status_as_json() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let key = app.api_key(1).await;
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/connections", app.address))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    let list = body["connections"].as_array().unwrap();
    assert_eq!(list.len(), 5);
    let y = list.iter().find(|c| c["vendor"] == "yappointment").unwrap();
    assert_eq!(y["status"], "connected");
    assert_eq!(y["account"], YAPPOINTMENT_COMPANY_NAME);
    assert!(!body.to_string().contains("yapp_"));
}

#[tokio::test]
async fn a_bad_api_key_is_401_and_another_clinics_connection_is_404() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let client = reqwest::Client::new();
    for auth in [None, Some("Bearer nope"), Some("Bearer cck_forged"), Some("Basic abc")] {
        let mut request = client.get(format!("{}/api/v1/connections", app.address));
        if let Some(a) = auth {
            request = request.header("authorization", a);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let proxied = client
            .post(format!("{}/api/v1/connections/yappointment/proxy/api/v1/me", app.address))
            .header("authorization", auth.unwrap_or(""))
            .send()
            .await
            .unwrap();
        assert_eq!(proxied.status(), StatusCode::UNAUTHORIZED);
    }
    assert!(app.sandbox.requests_to("yappointment", "/api/v1/me").len() == 1, "only the connect's identity call");

    app.create_admin("Clinic B", "admin@clinic-b.test").await;
    let other = app.api_key(2).await;
    let response = proxy(&app, &other, "api/v1/me").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_proxy_forwards_with_the_token_strips_caller_credentials_and_never_echoes_a_token() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let key = app.api_key(1).await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/connections/yappointment/proxy/api/v1/bookings?page=1", app.address))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("cookie", "stolen=1")
        .header("x-forwarded-for", "10.0.0.1")
        .header("connection", "x-custom")
        .header("x-custom", "hop")
        .body(r#"{"filter":{"status":"confirmed"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = format!("{:?}", response.headers());
    let body = response.text().await.unwrap();
    assert!(body.contains("confirmed"));
    assert!(!body.contains("yapp_") && !headers.contains("yapp_"));

    let forwarded = app.sandbox.requests_to("yappointment", "/api/v1/bookings");
    let forwarded = forwarded.last().unwrap();
    assert!(forwarded.header("authorization").unwrap().starts_with("Bearer yapp_at_"));
    assert!(forwarded.header("cookie").is_none());
    assert!(forwarded.header("x-custom").is_none());
    assert!(forwarded.header("x-forwarded-for").is_none());
    assert_eq!(forwarded.query, "page=1");
    assert!(!forwarded.header("authorization").unwrap().contains(&key));
}

#[tokio::test]
async fn the_proxy_refreshes_once_and_retries_once_on_a_401() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let key = app.api_key(1).await;
    // The vendor stops accepting the current token (as after a revocation on its side) while
    // the refresh token still works.
    app.sandbox.set_failure(
        "yappointment",
        clinic_connect::sandbox::Endpoint::Identity,
        clinic_connect::sandbox::Failure::Status(401),
        Some(1),
    );
    let response = proxy(&app, &key, "api/v1/me").await;
    assert_eq!(response.status(), StatusCode::OK);
    let refreshes = app
        .sandbox
        .requests_to("yappointment", "/oauth/token")
        .into_iter()
        .filter(|r| r.json().is_some_and(|b| b["grant_type"] == "refresh_token"))
        .count();
    assert_eq!(refreshes, 1);
    assert_eq!(app.sandbox.requests_to("yappointment", "/api/v1/me").len(), 3, "connect, the 401, the retry");

    // A vendor that keeps answering 401 gets one retry, not a loop.
    app.sandbox.set_failure(
        "yappointment",
        clinic_connect::sandbox::Endpoint::Identity,
        clinic_connect::sandbox::Failure::Status(401),
        None,
    );
    let response = proxy(&app, &key, "api/v1/me").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.sandbox.requests_to("yappointment", "/api/v1/me").len(), 5);
}

#[tokio::test]
async fn proxy_paths_cannot_escape_the_vendor_api() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let key = app.api_key(1).await;
    // Traversals, and the vendor's own OAuth endpoints under the API host.
    for tail in
        ["..%2Foauth%2Ftoken", "%2e%2e/oauth/token", "api/v1/%2e%2e/%2e%2e/oauth/token", "oauth/token", "oauth/revoke"]
    {
        let response = proxy(&app, &key, tail).await;
        assert!(response.status().is_client_error(), "{tail}: {}", response.status());
    }
    assert_eq!(
        app.sandbox.requests_to("yappointment", "/oauth/token").len(),
        1,
        "only the connect exchange: {:?}",
        app.sandbox
            .requests_to("yappointment", "/oauth/token")
            .iter()
            .map(|r| (r.path.clone(), r.body.clone()))
            .collect::<Vec<_>>()
    );
    let big = vec![b'x'; 2 * 1024 * 1024];
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/connections/yappointment/proxy/api/v1/bookings", app.address))
        .bearer_auth(&key)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// A request of any method to the yAppointment proxy, the path sent exactly as written.
async fn proxy_raw(app: &TestApp, key: &str, method: &str, tail: &str) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    reqwest::Client::new()
        .request(method, format!("{}/api/v1/connections/yappointment/proxy/{tail}", app.address))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_vendors_oauth_endpoints_are_refused_in_any_spelling() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let key = app.api_key(1).await;
    let before = app.sandbox.requests().len();
    for tail in [
        "OAUTH/TOKEN",
        "OAuth/Token",
        "oauth/token;x",
        "oauth/token;x=1/",
        "oauth/token/",
        "oauth/revoke/",
        "OAUTH/REVOKE;jsessionid=1",
        "oauth/%74oken",
        "oauth%2Ftoken",
        "%6Fauth/token",
        "oauth/%2574oken",
        "api/%2e%2e/oauth/token",
        "oauth//token",
        "oauth/./token",
        "oauth/token%3Bx",
    ] {
        let response = proxy_raw(&app, &key, "POST", tail).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{tail}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "bad_path", "{tail}");
    }
    assert_eq!(app.sandbox.requests().len(), before, "nothing reached the vendor");
    // An API path that merely starts alike still goes through.
    assert_eq!(proxy_raw(&app, &key, "POST", "api/v1/me").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn only_the_six_api_methods_are_forwarded() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let key = app.api_key(1).await;
    let before = app.sandbox.requests().len();
    for method in ["OPTIONS", "TRACE", "PROPFIND", "LOCK", "MKCOL", "PURGE", "get"] {
        let response = proxy_raw(&app, &key, method, "api/v1/me").await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(response.headers()["allow"], "GET, HEAD, POST, PUT, PATCH, DELETE", "{method}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "method_not_allowed", "{method}");
    }
    assert_eq!(app.sandbox.requests().len(), before, "nothing reached the vendor");
    for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] {
        // The vendor itself may refuse the method; what matters is that the call reached it.
        proxy_raw(&app, &key, method, "api/v1/bookings").await;
        let seen = app.sandbox.requests_to("yappointment", "/api/v1/bookings");
        assert_eq!(seen.last().unwrap().method, method, "{method} reached the vendor");
    }
    // Without a key the method is never looked at: 401 first.
    let response = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            format!("{}/api/v1/connections/yappointment/proxy/api/v1/me", app.address),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn control_characters_and_nul_in_the_path_are_refused() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    let key = app.api_key(1).await;
    let before = app.sandbox.requests().len();
    for tail in [
        "api/v1/me%00",
        "api/%00/me",
        "%00",
        "api/v1/me%0A",
        "api/v1/me%0d%0aX-Injected:%201",
        "api/v1/%09me",
        "api/v1/me%1F",
        "api/v1/me%7f",
        "api/v1/me%2500",
    ] {
        let response = proxy_raw(&app, &key, "POST", tail).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{tail}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "bad_path", "{tail}");
    }
    assert_eq!(app.sandbox.requests().len(), before, "nothing reached the vendor");
}
