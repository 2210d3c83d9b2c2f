//! Qmatic: client credentials per region, raw HTTP Basic, X-ACCOUNT, space-separated scopes.

use super::docplanner::{raw_basic, urlencoded_basic};
use super::*;

const TOKEN_PATH: &str = "/qmatic/eu-west-1/oauth2/token";
const ACCOUNT: &str = "northsidehealth";
const BOOK: &str = "com.qmatic.saas.appointments/external.appointment.book";
const RESCHEDULE: &str = "com.qmatic.saas.appointments/external.appointment.reschedule";

fn form_body(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

/// A token request: Basic (raw) unless `basic` is None, `X-ACCOUNT` unless `account` is None.
fn token_post(path: &str, basic: Option<&str>, account: Option<&str>, body: &str) -> TestRequest {
    let mut req = TestRequest::post()
        .uri(path)
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(body.to_owned());
    if let Some(basic) = basic {
        req = req.insert_header(("authorization", basic.to_owned()));
    }
    if let Some(account) = account {
        req = req.insert_header(("x-account", account.to_owned()));
    }
    req
}

fn good_basic() -> String {
    raw_basic(QMATIC_CLIENT_ID, QMATIC_CLIENT_SECRET)
}

fn cc_body(scope: &str) -> String {
    form_body(&[("grant_type", "client_credentials"), ("scope", scope)])
}

fn branches(token: &str, account: Option<&str>) -> TestRequest {
    let mut req = TestRequest::get()
        .uri("/qmatic/eu-west-1/v1/branches")
        .insert_header(("authorization", format!("Bearer {token}")));
    if let Some(account) = account {
        req = req.insert_header(("x-account", account.to_owned()));
    }
    req
}

#[actix_web::test]
async fn happy_path_with_refresh() {
    let (logs, _guard) = capture_logs();
    let (_clock, control, data) = setup();
    let app = test::init_service(app(data)).await;

    let scope = format!("{BOOK} {RESCHEDULE}");
    let body = form_body(&[("grant_type", "client_credentials"), ("scope", &scope), ("x-account", ACCOUNT)]);
    let reply = send!(app, token_post(TOKEN_PATH, Some(&good_basic()), Some(ACCOUNT), &body));
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let tokens = reply.json();
    let mut keys: Vec<&String> = tokens.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["access_token", "expires_in", "refresh_token", "scope", "token_type"]);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["scope"], scope.as_str());
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("qm_at_"));
    assert!(refresh.starts_with("qm_rt_"));

    let listed = send!(app, branches(&access, Some(ACCOUNT)));
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json(), json!({"branches": [{"id": "br_1", "name": "Northside Health — Main Street"}]}));
    let no_account = send!(app, branches(&access, None));
    assert_eq!(no_account.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_account.json()["error_description"], "X-ACCOUNT header is required");
    assert_eq!(send!(app, branches(&access, Some("otherclinic"))).status, StatusCode::FORBIDDEN);
    assert_eq!(send!(app, branches("qm_at_nope", Some(ACCOUNT))).status, StatusCode::UNAUTHORIZED);
    let elsewhere = send!(
        app,
        TestRequest::get()
            .uri("/qmatic/us-east-1/v1/branches")
            .insert_header(("authorization", format!("Bearer {access}")))
            .insert_header(("x-account", ACCOUNT))
    );
    assert_eq!(elsewhere.status, StatusCode::UNAUTHORIZED);

    // Refresh: a new access token, the same refresh token, which keeps working.
    let refresh_body = form_body(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]);
    for _ in 0..2 {
        let renewed = send!(app, token_post(TOKEN_PATH, Some(&good_basic()), Some(ACCOUNT), &refresh_body));
        assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
        let renewed = renewed.json();
        assert_eq!(renewed["refresh_token"], refresh.as_str());
        assert_ne!(renewed["access_token"], access.as_str());
        assert_eq!(renewed["scope"], scope.as_str());
        assert_eq!(
            send!(app, branches(renewed["access_token"].as_str().unwrap(), Some(ACCOUNT))).status,
            StatusCode::OK
        );
    }
    // Refresh needs the client too, and the X-ACCOUNT.
    assert_eq!(send!(app, token_post(TOKEN_PATH, None, Some(ACCOUNT), &refresh_body)).status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send!(app, token_post(TOKEN_PATH, Some(&good_basic()), None, &refresh_body)).status,
        StatusCode::BAD_REQUEST
    );
    let unknown = form_body(&[("grant_type", "refresh_token"), ("refresh_token", "qm_rt_nope")]);
    let reply = send!(app, token_post(TOKEN_PATH, Some(&good_basic()), Some(ACCOUNT), &unknown));
    assert_eq!(reply.json()["error"], "invalid_grant");
    let wider = form_body(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("scope", "com.qmatic.saas.appointments/external.appointment.cancel"),
    ]);
    let reply = send!(app, token_post(TOKEN_PATH, Some(&good_basic()), Some(ACCOUNT), &wider));
    assert_eq!(reply.json()["error"], "invalid_scope");

    assert_eq!(control.requests_to("qmatic", "/eu-west-1/oauth2/token").len(), 7);
    let first = &control.requests_to("qmatic", "/eu-west-1/oauth2/token")[0];
    assert_eq!(first.header("x-account"), Some(ACCOUNT));
    assert_logs_hold_none(&logs, &[&access, &refresh, QMATIC_CLIENT_SECRET, &good_basic()[6..]]);
}

#[actix_web::test]
async fn every_scope_alone_and_all_together() {
    let (_clock, _control, data) = setup();
    let app = test::init_service(app(data)).await;
    let mut all = Vec::new();
    for scope in QMATIC_SCOPES {
        all.push(*scope);
        let reply = send!(app, token_post(TOKEN_PATH, Some(&good_basic()), Some(ACCOUNT), &cc_body(scope)));
        assert_eq!(reply.status, StatusCode::OK, "{scope}");
        assert_eq!(reply.json()["scope"], *scope);
    }
    let joined = all.join(" ");
    let reply = send!(app, token_post(TOKEN_PATH, Some(&good_basic()), Some(ACCOUNT), &cc_body(&joined)));
    assert_eq!(reply.json()["scope"], joined.as_str());
    // A space encoded as %20 is the same form.
    let body = format!("grant_type=client_credentials&scope={}", joined.replace(' ', "%20"));
    let reply = send!(app, token_post(TOKEN_PATH, Some(&good_basic()), Some(ACCOUNT), &body));
    assert_eq!(reply.status, StatusCode::OK);
}

#[actix_web::test]
async fn refuses_what_qmatic_refuses() {
    let (_clock, control, data) = setup();
    let app = test::init_service(app(data)).await;
    let basic = good_basic();
    let good = cc_body(BOOK);
    let expect = |reply: &Reply, status: StatusCode, error: &str, what: &str| {
        assert_eq!(reply.status, status, "{what}: {}", reply.body);
        assert_eq!(reply.json()["error"], error, "{what}");
    };

    // X-ACCOUNT: missing, not normalised, unknown.
    let reply = send!(app, token_post(TOKEN_PATH, Some(&basic), None, &good));
    expect(&reply, StatusCode::BAD_REQUEST, "invalid_request", "missing X-ACCOUNT");
    assert_eq!(reply.json()["error_description"], "X-ACCOUNT header is required");
    for raw in ["Northside Health", "northside health", "NorthsideHealth", "NORTHSIDEHEALTH", "northside\thealth"] {
        let reply = send!(app, token_post(TOKEN_PATH, Some(&basic), Some(raw), &good));
        expect(&reply, StatusCode::BAD_REQUEST, "invalid_request", raw);
        assert_eq!(
            reply.json()["error_description"],
            "X-ACCOUNT must be the account name lower-cased with spaces removed",
            "{raw}"
        );
    }
    let reply = send!(app, token_post(TOKEN_PATH, Some(&basic), Some("southsidehealth"), &good));
    expect(&reply, StatusCode::UNAUTHORIZED, "invalid_client", "unknown account");
    // The optional x-account field must match the header.
    let mismatched = form_body(&[("grant_type", "client_credentials"), ("scope", BOOK), ("x-account", "other")]);
    let reply = send!(app, token_post(TOKEN_PATH, Some(&basic), Some(ACCOUNT), &mismatched));
    expect(&reply, StatusCode::BAD_REQUEST, "invalid_request", "x-account field");

    // Client authentication: raw Basic only.
    let encoded = urlencoded_basic(QMATIC_CLIENT_ID, QMATIC_CLIENT_SECRET);
    assert_ne!(encoded, basic);
    let reply = send!(app, token_post(TOKEN_PATH, Some(&encoded), Some(ACCOUNT), &good));
    expect(&reply, StatusCode::UNAUTHORIZED, "invalid_client", "url-encoded Basic");
    let reply = send!(app, token_post(TOKEN_PATH, None, Some(ACCOUNT), &good));
    expect(&reply, StatusCode::UNAUTHORIZED, "invalid_client", "no Basic");
    let in_body = form_body(&[
        ("grant_type", "client_credentials"),
        ("scope", BOOK),
        ("client_id", QMATIC_CLIENT_ID),
        ("client_secret", QMATIC_CLIENT_SECRET),
    ]);
    let reply = send!(app, token_post(TOKEN_PATH, None, Some(ACCOUNT), &in_body));
    expect(&reply, StatusCode::BAD_REQUEST, "invalid_request", "credentials in the body");
    assert!(reply.json()["error_description"].as_str().unwrap().contains("HTTP Basic"));

    // Form only.
    let reply = send!(
        app,
        token_post(TOKEN_PATH, Some(&basic), Some(ACCOUNT), r#"{"grant_type":"client_credentials"}"#)
            .insert_header(("content-type", "application/json"))
    );
    expect(&reply, StatusCode::BAD_REQUEST, "invalid_request", "JSON body");

    // Scopes: space-separated known ones only.
    for scope in [
        format!("{BOOK},{RESCHEDULE}"),
        format!("{BOOK}  {RESCHEDULE}"),
        format!("{BOOK} "),
        "com.qmatic.saas.appointments/external.appointment.delete".to_owned(),
        "external.appointment.book".to_owned(),
        String::new(),
    ] {
        let reply = send!(app, token_post(TOKEN_PATH, Some(&basic), Some(ACCOUNT), &cc_body(&scope)));
        expect(&reply, StatusCode::BAD_REQUEST, "invalid_scope", &scope);
    }
    let no_scope = form_body(&[("grant_type", "client_credentials")]);
    let reply = send!(app, token_post(TOKEN_PATH, Some(&basic), Some(ACCOUNT), &no_scope));
    expect(&reply, StatusCode::BAD_REQUEST, "invalid_scope", "no scope");
    let password = form_body(&[("grant_type", "password"), ("scope", BOOK)]);
    let reply = send!(app, token_post(TOKEN_PATH, Some(&basic), Some(ACCOUNT), &password));
    expect(&reply, StatusCode::BAD_REQUEST, "unsupported_grant_type", "password grant");

    // Regions: unknown → 404; known but not where the credentials live → invalid_client.
    let reply = send!(app, token_post("/qmatic/mars-north-1/oauth2/token", Some(&basic), Some(ACCOUNT), &good));
    expect(&reply, StatusCode::NOT_FOUND, "not_found", "unknown region");
    for region in QMATIC_REGIONS.iter().filter(|r| **r != QMATIC_REGION) {
        let path = format!("/qmatic/{region}/oauth2/token");
        let reply = send!(app, token_post(&path, Some(&basic), Some(ACCOUNT), &good));
        expect(&reply, StatusCode::UNAUTHORIZED, "invalid_client", region);
    }
    assert_eq!(control.requests_to("qmatic", "/mars-north-1/oauth2/token").len(), 1);

    control.set_failure("qmatic", Endpoint::Token, Failure::Redirect, Some(1));
    let reply = send!(app, token_post(TOKEN_PATH, Some(&basic), Some(ACCOUNT), &good));
    assert_eq!(reply.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(reply.location().as_str(), "https://api.eu-west-1.qmatic.io/oauth2/token");
    assert_eq!(send!(app, token_post(TOKEN_PATH, Some(&basic), Some(ACCOUNT), &good)).status, StatusCode::OK);
}
