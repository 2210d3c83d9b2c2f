//! Docplanner: client credentials per domain, raw HTTP Basic, an exact form body.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::*;

const TOKEN_PATH: &str = "/docplanner/znanylekarz.pl/oauth/v2/token";
const GOOD_BODY: &str = "grant_type=client_credentials&scope=integration";

/// `Basic base64(id:secret)`, exactly as `curl -u id:secret` sends it.
pub(super) fn raw_basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// What a client following RFC 6749 §2.3.1 (as the `oauth2` crate does) sends: id and
/// secret form-urlencoded before base64.
pub(super) fn urlencoded_basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    raw_basic(&enc(id), &enc(secret))
}

fn token_post(path: &str, authorization: Option<&str>, content_type: &str, body: &str) -> TestRequest {
    let mut req =
        TestRequest::post().uri(path).insert_header(("content-type", content_type)).set_payload(body.to_owned());
    if let Some(authorization) = authorization {
        req = req.insert_header(("authorization", authorization.to_owned()));
    }
    req
}

fn good_token(path: &str) -> TestRequest {
    token_post(
        path,
        Some(&raw_basic(DOCPLANNER_CLIENT_ID, DOCPLANNER_CLIENT_SECRET)),
        "application/x-www-form-urlencoded",
        GOOD_BODY,
    )
}

fn facilities(domain: &str, token: &str) -> TestRequest {
    TestRequest::get()
        .uri(&format!("/docplanner/{domain}/api/v3/integration/facilities"))
        .insert_header(("authorization", format!("Bearer {token}")))
}

#[actix_web::test]
async fn happy_path_answers_like_the_doc() {
    let (logs, _guard) = capture_logs();
    let (clock, control, data) = setup();
    let app = test::init_service(app(data)).await;

    let reply = send!(app, good_token(TOKEN_PATH));
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let body = reply.json();
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["access_token", "expires_in", "scope", "token_type"]);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], Value::Null);
    let token = body["access_token"].as_str().unwrap().to_owned();
    let hex = token.strip_prefix("dp_at_").unwrap();
    assert_eq!(hex.len(), 40);
    assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{token}");

    let listed = send!(app, facilities("znanylekarz.pl", &token));
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json(), json!({"_items": [{"id": "fac_2841", "name": DOCPLANNER_FACILITY_NAME}]}));
    // The token is valid at its own domain only.
    assert_eq!(send!(app, facilities("doctoralia.es", &token)).status, StatusCode::UNAUTHORIZED);
    assert_eq!(send!(app, facilities("example.com", &token)).status, StatusCode::NOT_FOUND);
    assert_eq!(send!(app, facilities("znanylekarz.pl", "dp_at_nope")).status, StatusCode::UNAUTHORIZED);
    // `expires_in` is what holds, not the prose's 24 hours.
    clock.advance(3599);
    assert_eq!(send!(app, facilities("znanylekarz.pl", &token)).status, StatusCode::OK);
    clock.advance(1);
    let expired = send!(app, facilities("znanylekarz.pl", &token));
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.json()["error"], "invalid_token");

    // A second token is a different one.
    let again = send!(app, good_token(TOKEN_PATH)).json();
    assert_ne!(again["access_token"], token.as_str());

    let recorded = control.requests_to("docplanner", "/znanylekarz.pl/oauth/v2/token");
    assert_eq!(recorded.len(), 2);
    assert_eq!(
        recorded[0].form(),
        vec![
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("scope".to_owned(), "integration".to_owned())
        ]
    );
    assert_eq!(control.requests_to("docplanner", "/znanylekarz.pl/api/v3/integration/facilities").len(), 4);
    assert_logs_hold_none(&logs, &[&token, hex, DOCPLANNER_CLIENT_SECRET, &STANDARD.encode(DOCPLANNER_CLIENT_SECRET)]);
}

#[actix_web::test]
async fn refuses_what_docplanner_refuses() {
    let (_clock, control, data) = setup();
    let app = test::init_service(app(data)).await;
    let form = "application/x-www-form-urlencoded";
    let basic = raw_basic(DOCPLANNER_CLIENT_ID, DOCPLANNER_CLIENT_SECRET);

    // The url-encoded Basic that RFC 6749 §2.3.1 clients send: the secret has + / =.
    let encoded = urlencoded_basic(DOCPLANNER_CLIENT_ID, DOCPLANNER_CLIENT_SECRET);
    assert_ne!(encoded, basic);
    let reply = send!(app, token_post(TOKEN_PATH, Some(&encoded), form, GOOD_BODY));
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");
    assert!(reply.headers.get("www-authenticate").unwrap().to_str().unwrap().starts_with("Basic"));

    // Credentials in the body, with or without Basic.
    let in_body = format!("{GOOD_BODY}&client_id={DOCPLANNER_CLIENT_ID}&client_secret=dp_cs_Zn4%2Bk%2FQ8%3Dw7e");
    for authorization in [None, Some(basic.as_str())] {
        let reply = send!(app, token_post(TOKEN_PATH, authorization, form, &in_body));
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.json()["error"], "invalid_request");
        assert!(reply.json()["error_description"].as_str().unwrap().contains("HTTP Basic"));
    }

    // No client authentication at all.
    let reply = send!(app, token_post(TOKEN_PATH, None, form, GOOD_BODY));
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");
    // A wrong secret.
    let reply =
        send!(app, token_post(TOKEN_PATH, Some(&raw_basic(DOCPLANNER_CLIENT_ID, "dp_cs_wrong")), form, GOOD_BODY));
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // JSON instead of a form.
    let reply = send!(
        app,
        token_post(
            TOKEN_PATH,
            Some(&basic),
            "application/json",
            r#"{"grant_type":"client_credentials","scope":"integration"}"#
        )
    );
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_request");

    // Scope and grant type.
    for (body, error) in [
        ("grant_type=client_credentials&scope=integration+extra", "invalid_scope"),
        ("grant_type=client_credentials&scope=read", "invalid_scope"),
        ("grant_type=client_credentials", "invalid_scope"),
        ("grant_type=password&scope=integration", "unsupported_grant_type"),
        ("scope=integration", "invalid_request"),
        ("grant_type=client_credentials&scope=integration&scope=integration", "invalid_request"),
    ] {
        let reply = send!(app, token_post(TOKEN_PATH, Some(&basic), form, body));
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.json()["error"], error, "{body}");
    }

    // An unknown domain is not there at all; another known domain does not know these
    // credentials.
    let reply = send!(app, good_token("/docplanner/example.com/oauth/v2/token"));
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["error"], "not_found");
    for domain in DOCPLANNER_DOMAINS.iter().filter(|d| **d != DOCPLANNER_DOMAIN) {
        let reply = send!(app, good_token(&format!("/docplanner/{domain}/oauth/v2/token")));
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{domain}");
        assert_eq!(reply.json()["error"], "invalid_client", "{domain}");
    }
    assert_eq!(send!(app, TestRequest::get().uri(TOKEN_PATH)).status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(control.requests_to("docplanner", "/doctoralia.es/oauth/v2/token").len(), 1);
}

#[actix_web::test]
async fn injected_redirect_points_at_https() {
    let (_clock, control, data) = setup();
    let app = test::init_service(app(data)).await;
    control.set_failure("docplanner", Endpoint::Token, Failure::Redirect, Some(1));
    let reply = send!(app, good_token("/docplanner/doctoralia.es/oauth/v2/token"));
    assert_eq!(reply.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(reply.location().as_str(), "https://www.doctoralia.es/oauth/v2/token");
    // Only once.
    assert_eq!(send!(app, good_token(TOKEN_PATH)).status, StatusCode::OK);

    control.set_failure("docplanner", Endpoint::Identity, Failure::Redirect, None);
    let reply = send!(app, facilities("znanylekarz.pl", "x"));
    assert_eq!(reply.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(reply.location().as_str(), "https://www.znanylekarz.pl/api/v3/integration/facilities");
    // Other vendors redirect to https too.
    control.set_failure("yappointment", Endpoint::Token, Failure::Redirect, None);
    let reply = send!(app, token_request(json!({})));
    assert_eq!(reply.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(reply.location().scheme(), "https");
}
