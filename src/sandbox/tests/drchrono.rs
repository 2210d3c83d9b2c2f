//! DrChrono: confidential authorization code, form bodies with the secret in the body,
//! optional S256 PKCE, rotating refresh tokens, 403 for a missing scope.

use super::*;

const DRC_REDIRECT: &str = "http://127.0.0.1:8080/connections/drchrono/callback";

fn drc_authorize(params: &[(&str, &str)]) -> String {
    format!("/drchrono/o/authorize/?{}", serde_urlencoded::to_string(params).unwrap())
}

fn drc_params(scope: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("response_type", "code"),
        ("client_id", DRCHRONO_CLIENT_ID),
        ("redirect_uri", DRC_REDIRECT),
        ("scope", scope),
        ("state", STATE),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
}

fn drc_consent(request: &str, decision: &str) -> TestRequest {
    TestRequest::post()
        .uri("/drchrono/o/consent/")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(format!("request={request}&decision={decision}"))
}

fn drc_form(path: &str, pairs: &[(&str, &str)]) -> TestRequest {
    TestRequest::post()
        .uri(path)
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(serde_urlencoded::to_string(pairs).unwrap())
}

fn drc_code_exchange(code: &str, verifier: Option<&str>) -> TestRequest {
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", DRC_REDIRECT),
        ("client_id", DRCHRONO_CLIENT_ID),
        ("client_secret", DRCHRONO_CLIENT_SECRET),
    ];
    if let Some(verifier) = verifier {
        pairs.push(("code_verifier", verifier));
    }
    drc_form("/drchrono/o/token/", &pairs)
}

fn drc_refresh(refresh_token: &str) -> TestRequest {
    drc_form(
        "/drchrono/o/token/",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", DRCHRONO_CLIENT_ID),
            ("client_secret", DRCHRONO_CLIENT_SECRET),
        ],
    )
}

fn drc_api(path: &str, token: &str) -> TestRequest {
    TestRequest::get().uri(&format!("/drchrono/api/{path}")).insert_header(("authorization", format!("Bearer {token}")))
}

/// Consent for `params`, approved: the code.
macro_rules! drc_code {
    ($app:expr, $params:expr) => {{
        let page = send!($app, TestRequest::get().uri(&drc_authorize(&$params)));
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let approved = send!($app, drc_consent(&request_id(&page.body), "approve"));
        assert_eq!(approved.status, StatusCode::SEE_OTHER);
        approved.location_param("code").unwrap()
    }};
}

#[actix_web::test]
async fn full_flow_with_every_scope() {
    let (logs, _guard) = capture_logs();
    let (clock, control, data) = setup();
    let app = test::init_service(app(data)).await;
    let all_scopes: &'static str = Box::leak(DRCHRONO_SCOPES.join(" ").into_boxed_str());

    let page = send!(app, TestRequest::get().uri(&drc_authorize(&drc_params(all_scopes))));
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<title>DrChrono (sandbox)</title>"));
    assert!(page.body.contains(DRCHRONO_USERNAME));
    assert!(page.body.contains("billing:patient-payment:write"));
    assert!(page.body.contains(r#"<form method="post" action="/drchrono/o/consent/">"#));
    assert!(page
        .body
        .contains(r#"<button type="submit" name="decision" value="approve" id="approve">Approve</button>"#));
    assert!(!page.body.contains(STATE) && !page.body.contains(CHALLENGE));
    let request = request_id(&page.body);
    let approved = send!(app, drc_consent(&request, "approve"));
    assert_eq!(approved.location_param("state").as_deref(), Some(STATE));
    let code = approved.location_param("code").unwrap();
    assert!(code.starts_with("drc_ac_"));

    let tokens = send!(app, drc_code_exchange(&code, Some(VERIFIER)));
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    let tokens = tokens.json();
    let mut keys: Vec<&String> = tokens.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["access_token", "expires_in", "refresh_token", "scope", "token_type"]);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 172_800);
    assert_eq!(tokens["scope"], all_scopes);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("drc_at_") && refresh.starts_with("drc_rt_"));

    let me = send!(app, drc_api("users/current", &access));
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        me.json(),
        json!({"id": 9301, "username": "drrivera", "practice_group": 4410, "doctor": 7102, "is_doctor": true, "is_staff": false})
    );
    let appointments = send!(app, drc_api("appointments", &access));
    assert_eq!(appointments.status, StatusCode::OK);
    assert_eq!(appointments.json()["results"].as_array().unwrap().len(), 3);

    // Refresh rotates: the old refresh token is dead, but the grant lives on.
    let rotated = send!(app, drc_refresh(&refresh));
    assert_eq!(rotated.status, StatusCode::OK);
    let rotated = rotated.json();
    let access2 = rotated["access_token"].as_str().unwrap().to_owned();
    let refresh2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    assert_eq!(rotated["scope"], all_scopes);
    let reused = send!(app, drc_refresh(&refresh));
    assert_eq!(reused.status, StatusCode::BAD_REQUEST);
    assert_eq!(reused.json()["error"], "invalid_grant");
    assert_eq!(send!(app, drc_api("users/current", &access2)).status, StatusCode::OK);
    let rotated_again = send!(app, drc_refresh(&refresh2));
    assert_eq!(rotated_again.status, StatusCode::OK);
    let refresh3 = rotated_again.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(control.refresh_reuse_detections(), 0);

    // Access tokens live 48 hours.
    clock.advance(172_799);
    assert_eq!(send!(app, drc_api("users/current", &access2)).status, StatusCode::OK);
    clock.advance(1);
    let expired = send!(app, drc_api("users/current", &access2));
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.json()["detail"], "Invalid token.");
    assert!(expired.headers.get("www-authenticate").is_some());

    // Revocation kills the grant.
    let fresh = send!(app, drc_refresh(&refresh3)).json();
    let access4 = fresh["access_token"].as_str().unwrap().to_owned();
    let revoke = |token: &str| {
        drc_form(
            "/drchrono/o/revoke_token/",
            &[("token", token), ("client_id", DRCHRONO_CLIENT_ID), ("client_secret", DRCHRONO_CLIENT_SECRET)],
        )
    };
    let revoked = send!(app, revoke(&access4));
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(send!(app, drc_api("users/current", &access4)).status, StatusCode::UNAUTHORIZED);
    assert_eq!(send!(app, drc_refresh(fresh["refresh_token"].as_str().unwrap())).json()["error"], "invalid_grant");
    assert_eq!(send!(app, revoke("drc_at_unknown")).status, StatusCode::OK);
    let revoke_basic = send!(
        app,
        drc_form("/drchrono/o/revoke_token/", &[("token", "x")])
            .insert_header(("authorization", super::docplanner::raw_basic(DRCHRONO_CLIENT_ID, DRCHRONO_CLIENT_SECRET)))
    );
    assert_eq!(revoke_basic.status, StatusCode::UNAUTHORIZED);
    let revoke_wrong = send!(
        app,
        drc_form(
            "/drchrono/o/revoke_token/",
            &[("token", "x"), ("client_id", DRCHRONO_CLIENT_ID), ("client_secret", "no")]
        )
    );
    assert_eq!(revoke_wrong.status, StatusCode::UNAUTHORIZED);

    assert_eq!(control.requests_to("drchrono", "/o/token/").len(), 6);
    assert_eq!(control.requests_to("drchrono", "/o/revoke_token/").len(), 4);
    assert_logs_hold_none(
        &logs,
        &[&code, &access, &refresh, &refresh2, &access4, DRCHRONO_CLIENT_SECRET, STATE, CHALLENGE, VERIFIER, &request],
    );
}

#[actix_web::test]
async fn pkce_is_optional_but_s256_only() {
    let (_clock, _control, data) = setup();
    let app = test::init_service(app(data)).await;
    let with_pkce = drc_params("user:read");
    let without_pkce = with(&with(&with_pkce, "code_challenge", None), "code_challenge_method", None);

    // Without PKCE: no verifier at the token endpoint, and none may be sent.
    let code = drc_code!(app, without_pkce);
    let stray = send!(app, drc_code_exchange(&code, Some(VERIFIER)));
    assert_eq!(stray.json()["error"], "invalid_grant");
    assert_eq!(send!(app, drc_code_exchange(&code, None)).status, StatusCode::OK);

    // With PKCE: the verifier is required and checked.
    let code = drc_code!(app, with_pkce);
    assert_eq!(send!(app, drc_code_exchange(&code, None)).json()["error"], "invalid_grant");
    assert_eq!(send!(app, drc_code_exchange(&code, Some(&"a".repeat(43)))).json()["error"], "invalid_grant");
    assert_eq!(send!(app, drc_code_exchange(&code, Some(VERIFIER))).status, StatusCode::OK);
    // A code used twice.
    assert_eq!(send!(app, drc_code_exchange(&code, Some(VERIFIER))).json()["error"], "invalid_grant");

    for (params, error) in [
        (with(&with_pkce, "code_challenge_method", Some("plain")), "invalid_request"),
        (with(&with_pkce, "code_challenge_method", None), "invalid_request"),
        (with(&without_pkce, "code_challenge_method", Some("S256")), "invalid_request"),
        (with(&with_pkce, "code_challenge", Some("short")), "invalid_request"),
        (with(&with_pkce, "scope", Some("user:read user:admin")), "invalid_scope"),
        (with(&with_pkce, "scope", Some("user:read,calendar:read")), "invalid_scope"),
        (with(&with_pkce, "scope", None), "invalid_scope"),
        (with(&with_pkce, "response_type", Some("token")), "unsupported_response_type"),
    ] {
        let reply = send!(app, TestRequest::get().uri(&drc_authorize(&params)));
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{params:?}");
        assert!(reply.location().as_str().starts_with(DRC_REDIRECT));
        assert_eq!(reply.location_param("error").as_deref(), Some(error), "{params:?}");
        assert_eq!(reply.location_param("state").as_deref(), Some(STATE));
    }
    let plain =
        send!(app, TestRequest::get().uri(&drc_authorize(&with(&with_pkce, "code_challenge_method", Some("plain")))));
    assert!(plain.location_param("error_description").unwrap().contains("S256"));
    for params in [with(&with_pkce, "client_id", Some(YAPPOINTMENT_CLIENT_ID)), with(&with_pkce, "redirect_uri", None)]
    {
        let reply = send!(app, TestRequest::get().uri(&drc_authorize(&params)));
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(reply.headers.get("location").is_none());
    }
    // The documented paths end with a slash.
    assert_eq!(send!(app, TestRequest::get().uri("/drchrono/o/authorize")).status, StatusCode::NOT_FOUND);
    // Deny.
    let page = send!(app, TestRequest::get().uri(&drc_authorize(&with_pkce)));
    let denied = send!(app, drc_consent(&request_id(&page.body), "deny"));
    assert_eq!(denied.location_param("error").as_deref(), Some("access_denied"));
}

#[actix_web::test]
async fn token_endpoint_takes_forms_with_the_secret_in_the_body() {
    let (_clock, _control, data) = setup();
    let app = test::init_service(app(data)).await;
    let code = drc_code!(app, drc_params("user:read"));

    let json_body = send!(
        app,
        TestRequest::post()
            .uri("/drchrono/o/token/")
            .insert_header(("content-type", "application/json"))
            .set_payload(
                json!({"grant_type": "authorization_code", "code": code, "redirect_uri": DRC_REDIRECT,
                       "client_id": DRCHRONO_CLIENT_ID, "client_secret": DRCHRONO_CLIENT_SECRET, "code_verifier": VERIFIER})
                .to_string()
            )
    );
    assert_eq!(json_body.status, StatusCode::BAD_REQUEST);
    assert_eq!(json_body.json()["error"], "invalid_request");

    let basic = send!(
        app,
        drc_form(
            "/drchrono/o/token/",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", DRC_REDIRECT),
                ("code_verifier", VERIFIER)
            ]
        )
        .insert_header(("authorization", super::docplanner::raw_basic(DRCHRONO_CLIENT_ID, DRCHRONO_CLIENT_SECRET)))
    );
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        basic.json(),
        json!({"error": "invalid_client", "error_description": "send client credentials in the form body"})
    );

    let wrong = send!(
        app,
        drc_form(
            "/drchrono/o/token/",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", DRC_REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_id", DRCHRONO_CLIENT_ID),
                ("client_secret", "drc_cs_wrong"),
            ]
        )
    );
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json()["error"], "invalid_client");
    let password = send!(
        app,
        drc_form(
            "/drchrono/o/token/",
            &[("grant_type", "password"), ("client_id", DRCHRONO_CLIENT_ID), ("client_secret", DRCHRONO_CLIENT_SECRET)]
        )
    );
    assert_eq!(password.json()["error"], "unsupported_grant_type");
    // None of that used the code up.
    assert_eq!(send!(app, drc_code_exchange(&code, Some(VERIFIER))).status, StatusCode::OK);
}

#[actix_web::test]
async fn missing_scopes_are_403() {
    let (_clock, control, data) = setup();
    let app = test::init_service(app(data)).await;

    let code = drc_code!(app, drc_params("calendar:read patients:read"));
    let calendar_only = send!(app, drc_code_exchange(&code, Some(VERIFIER))).json();
    let token = calendar_only["access_token"].as_str().unwrap().to_owned();
    assert_eq!(calendar_only["scope"], "calendar:read patients:read");
    let me = send!(app, drc_api("users/current", &token));
    assert_eq!(me.status, StatusCode::FORBIDDEN);
    assert_eq!(me.json(), json!({"detail": "You do not have permission to perform this action."}));
    assert_eq!(send!(app, drc_api("appointments", &token)).status, StatusCode::OK);

    let code = drc_code!(app, drc_params("user:read"));
    let user_only = send!(app, drc_code_exchange(&code, Some(VERIFIER))).json();
    let token = user_only["access_token"].as_str().unwrap().to_owned();
    assert_eq!(send!(app, drc_api("users/current", &token)).status, StatusCode::OK);
    let appointments = send!(app, drc_api("appointments", &token));
    assert_eq!(appointments.status, StatusCode::FORBIDDEN);
    assert_eq!(appointments.json()["detail"], "You do not have permission to perform this action.");

    let anonymous = send!(app, TestRequest::get().uri("/drchrono/api/users/current"));
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["detail"], "Authentication credentials were not provided.");

    control.set_failure("drchrono", Endpoint::Identity, Failure::Status(500), Some(1));
    assert_eq!(send!(app, drc_api("users/current", &token)).status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(send!(app, drc_api("users/current", &token)).status, StatusCode::OK);
    assert_eq!(control.requests_to("drchrono", "/api/users/current").len(), 5);
}
