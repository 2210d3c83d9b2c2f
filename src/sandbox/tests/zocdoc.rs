//! Zocdoc: two environments, public SPA client + PKCE + audience, backend client
//! credentials + audience, anonymous-user tokens linked at sign-in.

use super::*;

const ZD_REDIRECT: &str = "http://127.0.0.1:8080/care/callback";
const EMAIL: &str = "pat.doe@example.com";
const READ_WRITE_OFFLINE: &str = "external.appointment.read external.appointment.write offline_access";

/// One environment as the tests see it.
struct Zd {
    prefix: &'static str,
    vendor: &'static str,
    spa: &'static str,
    backend: &'static str,
    secret: &'static str,
    user_audience: &'static str,
    api_audience: &'static str,
}

const SANDBOX_ENV: Zd = Zd {
    prefix: "/zocdoc-sandbox",
    vendor: "zocdoc-sandbox",
    spa: ZOCDOC_SANDBOX_SPA_CLIENT_ID,
    backend: ZOCDOC_SANDBOX_BACKEND_CLIENT_ID,
    secret: ZOCDOC_SANDBOX_BACKEND_CLIENT_SECRET,
    user_audience: ZOCDOC_SANDBOX_USER_AUDIENCE,
    api_audience: ZOCDOC_SANDBOX_API_AUDIENCE,
};

const PRODUCTION_ENV: Zd = Zd {
    prefix: "/zocdoc",
    vendor: "zocdoc",
    spa: ZOCDOC_SPA_CLIENT_ID,
    backend: ZOCDOC_BACKEND_CLIENT_ID,
    secret: ZOCDOC_BACKEND_CLIENT_SECRET,
    user_audience: ZOCDOC_USER_AUDIENCE,
    api_audience: ZOCDOC_API_AUDIENCE,
};

impl Zd {
    fn authorize(&self, params: &[(&str, &str)]) -> TestRequest {
        TestRequest::get().uri(&format!("{}/authorize?{}", self.prefix, serde_urlencoded::to_string(params).unwrap()))
    }

    fn params(&self, scope: &'static str) -> Vec<(&'static str, &'static str)> {
        vec![
            ("response_type", "code"),
            ("client_id", self.spa),
            ("redirect_uri", ZD_REDIRECT),
            ("scope", scope),
            ("audience", self.user_audience),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("state", STATE),
        ]
    }

    fn consent(&self, request: &str, decision: &str, email: Option<&str>) -> TestRequest {
        let mut pairs = vec![("request", request), ("decision", decision)];
        if let Some(email) = email {
            pairs.push(("email", email));
        }
        TestRequest::post()
            .uri(&format!("{}/consent", self.prefix))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(serde_urlencoded::to_string(pairs).unwrap())
    }

    fn token(&self, body: Value) -> TestRequest {
        TestRequest::post()
            .uri(&format!("{}/oauth/token", self.prefix))
            .insert_header(("content-type", "application/json"))
            .set_payload(body.to_string())
    }

    fn client_credentials(&self) -> Value {
        json!({
            "grant_type": "client_credentials",
            "client_id": self.backend,
            "client_secret": self.secret,
            "audience": self.api_audience,
        })
    }

    fn code_exchange(&self, code: &str) -> Value {
        json!({
            "grant_type": "authorization_code",
            "client_id": self.spa,
            "code": code,
            "redirect_uri": ZD_REDIRECT,
            "code_verifier": VERIFIER,
        })
    }

    fn refresh(&self, refresh_token: &str) -> Value {
        json!({"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": self.spa})
    }

    fn anonymous(&self, backend_token: &str, app_client_id: &str) -> TestRequest {
        TestRequest::post()
            .uri(&format!("{}/v1/token/anonymous-user", self.prefix))
            .insert_header(("authorization", format!("Bearer {backend_token}")))
            .insert_header(("content-type", "application/json"))
            .set_payload(json!({ "app_client_id": app_client_id }).to_string())
    }

    fn get(&self, path_and_query: &str, token: &str) -> TestRequest {
        TestRequest::get()
            .uri(&format!("{}{path_and_query}", self.prefix))
            .insert_header(("authorization", format!("Bearer {token}")))
    }
}

macro_rules! ok_json {
    ($app:expr, $req:expr) => {{
        let reply = send!($app, $req);
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.json()
    }};
}

/// A backend token, then an anonymous-user token: (backend, anonymous).
macro_rules! backend_and_anonymous {
    ($app:expr, $env:expr) => {{
        let backend =
            ok_json!($app, $env.token($env.client_credentials()))["access_token"].as_str().unwrap().to_owned();
        let anonymous = ok_json!($app, $env.anonymous(&backend, $env.spa))["access_token"].as_str().unwrap().to_owned();
        (backend, anonymous)
    }};
}

fn error_of(reply: &Reply) -> (Option<String>, Option<String>) {
    (reply.location_param("error"), reply.location_param("error_description"))
}

#[actix_web::test]
async fn anonymous_browsing_then_sign_in_links_the_session() {
    let (logs, _guard) = capture_logs();
    let (clock, control, data) = setup();
    let app = test::init_service(app(data)).await;
    let env = SANDBOX_ENV;

    // The backend's client-credentials token.
    let backend = ok_json!(app, env.token(env.client_credentials()));
    assert_eq!(
        backend.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["access_token", "expires_in", "scope", "token_type"]
    );
    assert_eq!(backend["token_type"], "Bearer");
    assert_eq!(backend["expires_in"], 3600);
    assert_eq!(backend["scope"], "");
    let backend = backend["access_token"].as_str().unwrap().to_owned();
    assert!(backend.starts_with("zd_cc_"));

    // Anonymous-user tokens: one per end user, all different.
    let first = ok_json!(app, env.anonymous(&backend, env.spa));
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["expires_in"], 3600);
    assert_eq!(first.as_object().unwrap().len(), 3);
    let anonymous = first["access_token"].as_str().unwrap().to_owned();
    assert!(anonymous.starts_with("zd_anon_"));
    let other = ok_json!(app, env.anonymous(&backend, env.spa))["access_token"].as_str().unwrap().to_owned();
    assert_ne!(other, anonymous);

    // Browsing providers anonymously.
    let all = ok_json!(app, env.get("/v1/providers", &anonymous))["data"].as_array().unwrap().clone();
    assert_eq!(all.len(), 8);
    for p in &all {
        for field in ["provider_id", "full_name", "specialty", "next_availability"] {
            assert!(p[field].is_string(), "{field}");
        }
        assert!(p["location"]["city"].is_string() && p["location"]["state"].is_string());
    }
    let dentists = ok_json!(app, env.get("/v1/providers?specialty=DENTISTRY", &anonymous))["data"].clone();
    assert_eq!(dentists.as_array().unwrap().len(), 2);
    let chen = ok_json!(app, env.get("/v1/providers?q=chen&specialty=dent", &backend))["data"].clone();
    assert_eq!(chen.as_array().unwrap().len(), 1);
    assert_eq!(chen[0]["full_name"], "Dr. Sarah Chen, DDS");
    assert_eq!(ok_json!(app, env.get("/v1/providers?q=nobody", &anonymous))["data"], json!([]));
    assert_eq!(send!(app, TestRequest::get().uri("/zocdoc-sandbox/v1/providers")).status, StatusCode::UNAUTHORIZED);

    // Appointments need a signed-in user.
    for token in [&anonymous, &backend] {
        let refused = send!(app, env.get("/v1/appointments", token));
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(
            refused.json(),
            json!({"error": "insufficient_scope", "error_description": "a signed-in user's token is required"})
        );
    }

    // Sign-in with the anonymous token and a login hint.
    let params = [env.params(READ_WRITE_OFFLINE), vec![("login_hint", EMAIL)]].concat();
    let mut params: Vec<(&str, &str)> = params;
    params.push(("anonymous_token", &anonymous));
    let page = send!(app, env.authorize(&params));
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<title>Zocdoc (sandbox)</title>"));
    assert!(page.body.contains("Sandbox environment"));
    assert!(page.body.contains(&format!(r#"id="zocdoc-email" name="email" value="{EMAIL}""#)), "{}", page.body);
    assert!(page.body.contains("Allow offline access"));
    assert!(page.body.contains("See your Zocdoc appointments"));
    assert!(page.body.contains(r#"<form method="post" action="/zocdoc-sandbox/consent">"#));
    assert!(page
        .body
        .contains(r#"<button type="submit" name="decision" value="approve" id="approve">Approve</button>"#));
    for secret in [&anonymous, STATE, CHALLENGE] {
        assert!(!page.body.contains(secret));
    }
    let request = request_id(&page.body);
    // A wrong-looking email is refused without using the request up.
    for typed in ["not an email", "", "  "] {
        assert_eq!(send!(app, env.consent(&request, "approve", Some(typed))).status, StatusCode::BAD_REQUEST);
    }
    assert!(control.zocdoc_links().is_empty());
    // Without the field: the pre-filled login_hint, as a browser would have submitted it.
    let approved = send!(app, env.consent(&request, "approve", None));
    assert_eq!(approved.status, StatusCode::SEE_OTHER);
    assert!(approved.location().as_str().starts_with(ZD_REDIRECT));
    assert_eq!(approved.location_param("state").as_deref(), Some(STATE));
    let code = approved.location_param("code").unwrap();
    assert!(code.starts_with("zd_ac_"));
    assert_eq!(control.zocdoc_links(), vec![(anonymous.clone(), EMAIL.to_owned())]);

    // The code exchange: a public client, no secret.
    let tokens = ok_json!(app, env.token(env.code_exchange(&code)));
    let mut keys: Vec<&String> = tokens.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["access_token", "expires_in", "refresh_token", "scope", "token_type"]);
    assert_eq!(tokens["scope"], "external.appointment.read external.appointment.write");
    assert_eq!(tokens["expires_in"], 3600);
    let user = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(user.starts_with("zd_at_") && refresh.starts_with("zd_rt_"));

    let mine = ok_json!(app, env.get("/v1/appointments", &user));
    let data = mine["data"].as_array().unwrap();
    assert!((2..=3).contains(&data.len()));
    assert!(data.iter().all(|a| a["patient"]["email"] == EMAIL && a["provider"]["full_name"].is_string()));
    assert!(data.iter().all(|a| a["start_time"].is_string() && a["status"].is_string()));
    assert_eq!(mine["meta"]["anonymous_session_linked"], true);
    // A user token browses providers too.
    assert_eq!(send!(app, env.get("/v1/providers", &user)).status, StatusCode::OK);

    // Refresh: a new access token, no refresh_token field; the refresh token stays valid.
    for _ in 0..2 {
        let renewed = ok_json!(app, env.token(env.refresh(&refresh)));
        assert!(renewed.get("refresh_token").is_none(), "{renewed}");
        assert_eq!(renewed["scope"], "external.appointment.read external.appointment.write");
        let access = renewed["access_token"].as_str().unwrap();
        assert!(access.starts_with("zd_at_") && access != user);
        assert_eq!(send!(app, env.get("/v1/appointments", access)).status, StatusCode::OK);
    }
    // 15 days without use and the refresh token is dead.
    clock.advance(15 * 86_400 - 1);
    assert_eq!(send!(app, env.token(env.refresh(&refresh))).status, StatusCode::OK);
    clock.advance(15 * 86_400);
    let idle = send!(app, env.token(env.refresh(&refresh)));
    assert_eq!(idle.status, StatusCode::BAD_REQUEST);
    assert_eq!(idle.json()["error"], "invalid_grant");

    let calls = control.requests_to("zocdoc-sandbox", "/oauth/token");
    assert_eq!(calls.len(), 6);
    assert_eq!(calls[0].json().unwrap()["audience"], ZOCDOC_SANDBOX_API_AUDIENCE);
    assert!(control.requests_to("zocdoc", "/oauth/token").is_empty());
    assert_logs_hold_none(
        &logs,
        &[
            &backend, &anonymous, &other, &code, &user, &refresh, EMAIL, STATE, CHALLENGE, VERIFIER, &request,
            env.secret,
        ],
    );
}

#[actix_web::test]
async fn refresh_tokens_die_after_thirty_days_and_only_come_with_offline_access() {
    let (clock, _control, data) = setup();
    let app = test::init_service(app(data)).await;
    let env = PRODUCTION_ENV;

    // No offline_access: no refresh token.
    let page = send!(app, env.authorize(&env.params("external.appointment.read")));
    assert!(page.body.contains("Production"));
    assert!(page.body.contains(r#"value="patient@example.com""#));
    assert!(!page.body.contains("Allow offline access"));
    // No email field, no login_hint: the pre-filled sample patient.
    let code = send!(app, env.consent(&request_id(&page.body), "approve", None)).location_param("code").unwrap();
    let tokens = ok_json!(app, env.token(env.code_exchange(&code)));
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert_eq!(tokens["scope"], "external.appointment.read");
    let user = tokens["access_token"].as_str().unwrap().to_owned();
    let mine = ok_json!(app, env.get("/v1/appointments", &user));
    assert_eq!(mine["meta"]["anonymous_session_linked"], false);
    assert_eq!(mine["data"][0]["patient"]["email"], "patient@example.com");

    // A code used twice: invalid_grant, and its tokens are revoked.
    let replay = send!(app, env.token(env.code_exchange(&code)));
    assert_eq!(replay.json()["error"], "invalid_grant");
    assert_eq!(send!(app, env.get("/v1/appointments", &user)).status, StatusCode::UNAUTHORIZED);

    // Write-only: signed in, but no read scope.
    let page = send!(app, env.authorize(&env.params("external.appointment.write")));
    let code = send!(app, env.consent(&request_id(&page.body), "approve", Some(EMAIL))).location_param("code").unwrap();
    let write_only = ok_json!(app, env.token(env.code_exchange(&code)))["access_token"].as_str().unwrap().to_owned();
    let refused = send!(app, env.get("/v1/appointments", &write_only));
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.json()["error"], "insufficient_scope");

    // Used every 10 days, the refresh token still dies 30 days after sign-in.
    let page = send!(app, env.authorize(&env.params(READ_WRITE_OFFLINE)));
    let code = send!(app, env.consent(&request_id(&page.body), "approve", Some(EMAIL))).location_param("code").unwrap();
    let refresh = ok_json!(app, env.token(env.code_exchange(&code)))["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        clock.advance(10 * 86_400);
        assert_eq!(send!(app, env.token(env.refresh(&refresh))).status, StatusCode::OK);
    }
    clock.advance(10 * 86_400);
    assert_eq!(send!(app, env.token(env.refresh(&refresh))).json()["error"], "invalid_grant");

    // Access tokens last an hour. The typed email wins over the login_hint.
    let hinted = [env.params("external.appointment.read"), vec![("login_hint", "someone.else@example.com")]].concat();
    let page = send!(app, env.authorize(&hinted));
    let code = send!(app, env.consent(&request_id(&page.body), "approve", Some(EMAIL))).location_param("code").unwrap();
    let user = ok_json!(app, env.token(env.code_exchange(&code)))["access_token"].as_str().unwrap().to_owned();
    clock.advance(3599);
    assert_eq!(ok_json!(app, env.get("/v1/appointments", &user))["data"][0]["patient"]["email"], EMAIL);
    clock.advance(1);
    assert_eq!(send!(app, env.get("/v1/appointments", &user)).status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn authorize_refuses_with_error_description_and_state() {
    let (clock, _control, data) = setup();
    let app = test::init_service(app(data)).await;
    let env = SANDBOX_ENV;
    let good = env.params(READ_WRITE_OFFLINE);

    let cases = vec![
        (with(&good, "audience", None), "invalid_request", "audience"),
        (with(&good, "audience", Some(ZOCDOC_USER_AUDIENCE)), "invalid_request", "audience"),
        (with(&good, "audience", Some(ZOCDOC_SANDBOX_API_AUDIENCE)), "invalid_request", "audience"),
        (with(&good, "code_challenge_method", Some("plain")), "invalid_request", "S256"),
        (with(&good, "code_challenge_method", None), "invalid_request", "S256"),
        (with(&with(&good, "code_challenge", None), "code_challenge_method", None), "invalid_request", "PKCE"),
        (with(&good, "scope", Some("external.appointment.read openid")), "invalid_scope", "scope"),
        (with(&good, "scope", Some("external.appointment.read,offline_access")), "invalid_scope", "scope"),
        (with(&good, "scope", None), "invalid_scope", "scope"),
        (with(&good, "anonymous_token", Some("zd_anon_forged")), "invalid_request", "anonymous_token"),
        (with(&good, "response_type", Some("token")), "unsupported_response_type", "code"),
    ];
    for (params, error, mentions) in cases {
        let reply = send!(app, env.authorize(&params));
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{params:?}");
        assert!(reply.location().as_str().starts_with(ZD_REDIRECT));
        let (got, description) = error_of(&reply);
        assert_eq!(got.as_deref(), Some(error), "{params:?}");
        assert!(description.unwrap().contains(mentions), "{params:?}");
        assert_eq!(reply.location_param("state").as_deref(), Some(STATE));
    }

    // The other environment's SPA client, or a bad redirect URI: a page, no redirect.
    for params in [
        with(&good, "client_id", Some(ZOCDOC_SPA_CLIENT_ID)),
        with(&good, "client_id", Some(ZOCDOC_SANDBOX_BACKEND_CLIENT_ID)),
        with(&good, "redirect_uri", Some("http://evil.example.com/cb")),
    ] {
        let reply = send!(app, env.authorize(&params));
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{params:?}");
        assert!(reply.headers.get("location").is_none());
    }

    // Another environment's anonymous token is unknown here.
    let (_, production_anonymous) = backend_and_anonymous!(app, PRODUCTION_ENV);
    let mut params = good.clone();
    params.push(("anonymous_token", &production_anonymous));
    let reply = send!(app, env.authorize(&params));
    assert_eq!(reply.location_param("error").as_deref(), Some("invalid_request"));

    // An expired anonymous token is refused, at authorize and at consent.
    let (_, anonymous) = backend_and_anonymous!(app, env);
    clock.advance(3100);
    let mut params = good.clone();
    params.push(("anonymous_token", &anonymous));
    let page = send!(app, env.authorize(&params));
    assert_eq!(page.status, StatusCode::OK);
    clock.advance(550);
    let late = send!(app, env.consent(&request_id(&page.body), "approve", Some(EMAIL)));
    assert_eq!(late.status, StatusCode::SEE_OTHER);
    assert_eq!(late.location_param("error").as_deref(), Some("invalid_request"));
    assert!(late.location_param("error_description").unwrap().contains("anonymous_token"));
    assert_eq!(late.location_param("state").as_deref(), Some(STATE));
    assert!(late.location_param("code").is_none());
    let reply = send!(app, env.authorize(&params));
    assert_eq!(reply.location_param("error").as_deref(), Some("invalid_request"));

    // A login_hint that is no email, and no email typed: no sign-in.
    let page = send!(app, env.authorize(&with(&good, "login_hint", Some("not-an-email"))));
    let reply = send!(app, env.consent(&request_id(&page.body), "approve", None));
    assert_eq!(reply.location_param("error").as_deref(), Some("invalid_request"));
    assert!(reply.location_param("code").is_none());

    // Deny.
    let page = send!(app, env.authorize(&good));
    let denied = send!(app, env.consent(&request_id(&page.body), "deny", None));
    let (error, description) = error_of(&denied);
    assert_eq!(error.as_deref(), Some("access_denied"));
    assert!(description.is_some());
    assert_eq!(denied.location_param("state").as_deref(), Some(STATE));
}

#[actix_web::test]
async fn token_endpoint_refusals() {
    let (_clock, control, data) = setup();
    let app = test::init_service(app(data)).await;
    let env = SANDBOX_ENV;
    let expect = |reply: &Reply, status: StatusCode, error: &str, what: &str| {
        assert_eq!(reply.status, status, "{what}: {}", reply.body);
        assert_eq!(reply.json()["error"], error, "{what}");
    };

    // A form body.
    let form = send!(
        app,
        TestRequest::post()
            .uri("/zocdoc-sandbox/oauth/token")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(format!(
                "grant_type=client_credentials&client_id={}&client_secret={}&audience={}",
                env.backend, env.secret, env.api_audience
            ))
    );
    expect(&form, StatusCode::BAD_REQUEST, "invalid_request", "form body");
    // HTTP Basic.
    let basic = send!(
        app,
        env.token(json!({"grant_type": "client_credentials", "audience": env.api_audience}))
            .insert_header(("authorization", super::docplanner::raw_basic(env.backend, env.secret)))
    );
    expect(&basic, StatusCode::UNAUTHORIZED, "invalid_client", "Basic");

    // Client credentials: audience required and this environment's.
    let mut no_audience = env.client_credentials();
    no_audience.as_object_mut().unwrap().remove("audience");
    let reply = send!(app, env.token(no_audience));
    expect(&reply, StatusCode::BAD_REQUEST, "invalid_request", "no audience");
    assert!(reply.json()["error_description"].as_str().unwrap().contains("audience"));
    for audience in [ZOCDOC_API_AUDIENCE, ZOCDOC_SANDBOX_USER_AUDIENCE, "https://api-developer-sandbox.zocdoc.com"] {
        let mut wrong = env.client_credentials();
        wrong["audience"] = json!(audience);
        let reply = send!(app, env.token(wrong));
        expect(&reply, StatusCode::BAD_REQUEST, "invalid_request", audience);
        assert!(reply.json()["error_description"].as_str().unwrap().contains("audience"));
    }
    // The other environment's credentials (with its audience, or this one's).
    for audience in [ZOCDOC_API_AUDIENCE, ZOCDOC_SANDBOX_API_AUDIENCE] {
        let mut production = PRODUCTION_ENV.client_credentials();
        production["audience"] = json!(audience);
        expect(&send!(app, env.token(production)), StatusCode::UNAUTHORIZED, "invalid_client", audience);
    }
    let mut wrong_secret = env.client_credentials();
    wrong_secret["client_secret"] = json!("zd_cs_sandbox_wrong");
    expect(&send!(app, env.token(wrong_secret)), StatusCode::UNAUTHORIZED, "invalid_client", "wrong secret");
    // The SPA client has no secret to do client credentials with.
    let mut spa = env.client_credentials();
    spa["client_id"] = json!(env.spa);
    expect(&send!(app, env.token(spa)), StatusCode::UNAUTHORIZED, "invalid_client", "SPA client credentials");

    // The public client must not send a secret; the code survives the refusals.
    let page = send!(app, env.authorize(&env.params(READ_WRITE_OFFLINE)));
    let code = send!(app, env.consent(&request_id(&page.body), "approve", Some(EMAIL))).location_param("code").unwrap();
    let mut with_secret = env.code_exchange(&code);
    with_secret["client_secret"] = json!(env.secret);
    let reply = send!(app, env.token(with_secret));
    assert_eq!(
        reply.json(),
        json!({"error": "invalid_request", "error_description": "public SPA clients must not send a client_secret"})
    );
    let mut other_client = env.code_exchange(&code);
    other_client["client_id"] = json!(ZOCDOC_SPA_CLIENT_ID);
    expect(&send!(app, env.token(other_client)), StatusCode::UNAUTHORIZED, "invalid_client", "production SPA id");
    let mut bad_verifier = env.code_exchange(&code);
    bad_verifier["code_verifier"] = json!("a".repeat(43));
    expect(&send!(app, env.token(bad_verifier)), StatusCode::BAD_REQUEST, "invalid_grant", "bad verifier");
    // The sandbox environment's code is unknown to production.
    expect(
        &send!(app, PRODUCTION_ENV.token(PRODUCTION_ENV.code_exchange(&code))),
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "code at the other environment",
    );
    let tokens = ok_json!(app, env.token(env.code_exchange(&code)));
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let mut refresh_with_secret = env.refresh(refresh);
    refresh_with_secret["client_secret"] = json!(env.secret);
    expect(&send!(app, env.token(refresh_with_secret)), StatusCode::BAD_REQUEST, "invalid_request", "refresh secret");
    expect(
        &send!(app, env.token(json!({"grant_type": "password", "client_id": env.spa}))),
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
        "password",
    );

    // Anonymous-user tokens: only with this environment's backend token and SPA client id.
    let (backend, anonymous) = backend_and_anonymous!(app, env);
    let (production_backend, _) = backend_and_anonymous!(app, PRODUCTION_ENV);
    let user = tokens["access_token"].as_str().unwrap();
    for token in [anonymous.as_str(), user, production_backend.as_str(), "zd_cc_forged"] {
        let reply = send!(app, env.anonymous(token, env.spa));
        expect(&reply, StatusCode::UNAUTHORIZED, "invalid_token", token);
    }
    let no_bearer = send!(
        app,
        TestRequest::post()
            .uri("/zocdoc-sandbox/v1/token/anonymous-user")
            .insert_header(("content-type", "application/json"))
            .set_payload(json!({"app_client_id": env.spa}).to_string())
    );
    assert_eq!(no_bearer.status, StatusCode::UNAUTHORIZED);
    for app_client_id in [ZOCDOC_SPA_CLIENT_ID, env.backend, ""] {
        let reply = send!(app, env.anonymous(&backend, app_client_id));
        expect(&reply, StatusCode::BAD_REQUEST, "invalid_request", app_client_id);
    }
    let empty = send!(app, env.anonymous(&backend, env.spa).set_payload("{}"));
    expect(&empty, StatusCode::BAD_REQUEST, "invalid_request", "no app_client_id");
    let as_form = send!(
        app,
        env.anonymous(&backend, env.spa)
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(format!("app_client_id={}", env.spa))
    );
    expect(&as_form, StatusCode::BAD_REQUEST, "invalid_request", "form body");
    // Production's tokens do not work in the sandbox environment, and the other way round.
    assert_eq!(send!(app, env.get("/v1/providers", &production_backend)).status, StatusCode::UNAUTHORIZED);
    assert_eq!(send!(app, PRODUCTION_ENV.get("/v1/providers", &anonymous)).status, StatusCode::UNAUTHORIZED);
    assert_eq!(send!(app, PRODUCTION_ENV.get("/v1/providers", &production_backend)).status, StatusCode::OK);

    // Recorded per environment.
    assert_eq!(control.requests_to(PRODUCTION_ENV.vendor, "/oauth/token").len(), 2);
    assert!(control.requests_to(env.vendor, "/oauth/token").len() > 10);
    control.set_failure(env.vendor, Endpoint::Api, Failure::Status(503), Some(1));
    assert_eq!(send!(app, env.get("/v1/providers", &backend)).status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(send!(app, PRODUCTION_ENV.get("/v1/providers", &production_backend)).status, StatusCode::OK);
    assert_eq!(send!(app, env.get("/v1/providers", &backend)).status, StatusCode::OK);
}

/// A signed-in user's access token with these scopes.
macro_rules! user_token {
    ($app:expr, $env:expr, $scope:expr, $email:expr) => {{
        let page = send!($app, $env.authorize(&$env.params($scope)));
        let approved = send!($app, $env.consent(&request_id(&page.body), "approve", Some($email)));
        let code = approved.location_param("code").unwrap();
        ok_json!($app, $env.token($env.code_exchange(&code)))["access_token"].as_str().unwrap().to_owned()
    }};
}

impl Zd {
    fn book(&self, token: &str, key: Option<&str>, body: Value) -> TestRequest {
        let mut req = TestRequest::post()
            .uri(&format!("{}/v1/appointments", self.prefix))
            .insert_header(("authorization", format!("Bearer {token}")))
            .insert_header(("content-type", "application/json"))
            .set_payload(body.to_string());
        if let Some(key) = key {
            req = req.insert_header(("idempotency-key", key));
        }
        req
    }

    fn cancel(&self, token: &str, id: &str) -> TestRequest {
        TestRequest::post()
            .uri(&format!("{}/v1/appointments/{id}/cancel", self.prefix))
            .insert_header(("authorization", format!("Bearer {token}")))
    }
}

fn booking_body(location: &str, start: &str, reason: &str) -> Value {
    json!({"provider_location_id": location, "start_time": start, "visit_reason_id": reason})
}

#[actix_web::test]
async fn availability_booking_idempotency_and_cancellation() {
    let (logs, _guard) = capture_logs();
    let (clock, control, data) = setup();
    let app = test::init_service(app(data)).await;
    let env = SANDBOX_ENV;
    let (backend, anonymous) = backend_and_anonymous!(app, env);

    // Providers list their locations (with time zones) and visit reasons; one lookup by id.
    let bello = ok_json!(app, env.get("/v1/providers/pr_10234", &anonymous))["data"].clone();
    assert_eq!(bello["locations"].as_array().unwrap().len(), 2);
    assert_eq!(bello["locations"][1]["time_zone"], "America/Phoenix");
    assert_eq!(bello["visit_reasons"][0]["visit_reason_id"], "vr_skin_check");
    assert_eq!(send!(app, env.get("/v1/providers/pr_nobody", &anonymous)).status, StatusCode::NOT_FOUND);

    // Availability: any token of the environment, one or more locations, offsets of the zone.
    let path = "/v1/provider_locations/availability?provider_location_ids=pl_20234,pl_20239";
    for token in [&backend, &anonymous] {
        let found = ok_json!(app, env.get(path, token))["data"].clone();
        assert_eq!(found.as_array().unwrap().len(), 2);
        assert_eq!(found[1]["time_zone"], "America/Phoenix");
        let first = found[1]["timeslots"][0]["start_time"].as_str().unwrap();
        assert!(first.ends_with("-07:00"), "{first}");
    }
    for bad in [
        "/v1/provider_locations/availability",
        "/v1/provider_locations/availability?provider_location_ids=",
        "/v1/provider_locations/availability?provider_location_ids=pl_20231&start_date=tomorrow",
        "/v1/provider_locations/availability?provider_location_ids=pl_20231&start_date=2030-01-02&end_date=2030-01-01",
    ] {
        let reply = send!(app, env.get(bad, &anonymous));
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.json()["error"], "invalid_request");
    }
    let unknown = send!(app, env.get("/v1/provider_locations/availability?provider_location_ids=pl_x", &backend));
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(send!(app, TestRequest::get().uri(&format!("{}{path}", env.prefix))).status, StatusCode::UNAUTHORIZED);

    let open = control.zocdoc_open_times(env.vendor, "pl_20231");
    let start = crate::sandbox::zocdoc::booking::local_rfc3339(open[0], "America/New_York");
    let body = booking_body("pl_20231", &start, "vr_cleaning");

    // Booking needs a signed-in user with the write scope, and an Idempotency-Key.
    let reader = user_token!(app, env, "external.appointment.read", "reader@example.com");
    let user = user_token!(app, env, READ_WRITE_OFFLINE, EMAIL);
    for (token, what) in [(&backend, "backend"), (&anonymous, "anonymous"), (&reader, "read only")] {
        let refused = send!(app, env.book(token, Some("k1"), body.clone()));
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{what}");
        assert_eq!(refused.json()["error"], "insufficient_scope", "{what}");
    }
    assert!(send!(app, env.book(&reader, Some("k1"), body.clone())).json()["error_description"]
        .as_str()
        .unwrap()
        .contains("external.appointment.write"));
    for key in [None, Some(""), Some("with space")] {
        let refused = send!(app, env.book(&user, key, body.clone()));
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{key:?}");
        assert!(refused.json()["error_description"].as_str().unwrap().contains("Idempotency-Key"));
    }
    for (bad, status) in [
        (booking_body("pl_20231", &start, "vr_acne"), StatusCode::BAD_REQUEST),
        (booking_body("pl_nowhere", &start, "vr_cleaning"), StatusCode::NOT_FOUND),
        (booking_body("pl_20231", "next tuesday", "vr_cleaning"), StatusCode::BAD_REQUEST),
        (booking_body("pl_20231", "2001-01-01T09:00:00-05:00", "vr_cleaning"), StatusCode::CONFLICT),
    ] {
        assert_eq!(send!(app, env.book(&user, Some("bad"), bad.clone())).status, status, "{bad}");
    }
    assert!(control.zocdoc_bookings(env.vendor).is_empty());

    // Booked once; the same key again answers the same appointment; another key is refused.
    let first = send!(app, env.book(&user, Some("key-1"), body.clone()));
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let appointment = first.json()["data"].clone();
    assert_eq!(appointment["status"], "confirmed");
    assert_eq!(appointment["start_time"], start.as_str());
    assert_eq!(appointment["location"]["time_zone"], "America/New_York");
    assert_eq!(appointment["provider"]["full_name"], "Dr. Sarah Chen, DDS");
    assert_eq!(appointment["visit_reason"]["name"], "Cleaning");
    let again = send!(app, env.book(&user, Some("key-1"), body.clone()));
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["data"]["appointment_id"], appointment["appointment_id"]);
    let changed = send!(app, env.book(&user, Some("key-1"), booking_body("pl_20231", &start, "vr_tooth_pain")));
    assert_eq!(changed.status, StatusCode::UNPROCESSABLE_ENTITY);
    let taken = send!(app, env.book(&user, Some("key-2"), body.clone()));
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.json()["error"], "slot_unavailable");
    assert_eq!(control.zocdoc_bookings(env.vendor).len(), 1);
    assert!(!control.zocdoc_open_times(env.vendor, "pl_20231").contains(&open[0]));
    // The same instant written in UTC is the same time.
    let utc = crate::sandbox::http::rfc3339(open[0]);
    assert_eq!(
        send!(app, env.book(&user, Some("key-3"), booking_body("pl_20231", &utc, "vr_cleaning"))).status,
        StatusCode::CONFLICT
    );
    // Someone else cannot take it either; another open time they can.
    assert!(!control.zocdoc_take_slot(env.vendor, "pl_20231", open[0]));
    assert!(control.zocdoc_take_slot(env.vendor, "pl_20231", open[1]));

    // The user's appointments list it, in order, with the samples.
    let id = appointment["appointment_id"].as_str().unwrap().to_owned();
    let mine = ok_json!(app, env.get("/v1/appointments", &user))["data"].as_array().unwrap().clone();
    assert!(mine.iter().any(|a| a["appointment_id"] == id.as_str()));
    assert!(mine.iter().all(|a| a["patient"]["email"] == EMAIL));
    assert_eq!(send!(app, env.get("/v1/appointments", &reader)).status, StatusCode::OK);

    // Cancel: write scope, the owner only, once; the time opens again.
    assert_eq!(send!(app, env.cancel(&reader, &id)).status, StatusCode::FORBIDDEN);
    let other = user_token!(app, env, READ_WRITE_OFFLINE, "other@example.com");
    assert_eq!(send!(app, env.cancel(&other, &id)).status, StatusCode::NOT_FOUND);
    let cancelled = send!(app, env.cancel(&user, &id));
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.json()["data"]["status"], "cancelled");
    let twice = send!(app, env.cancel(&user, &id));
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert_eq!(twice.json()["error"], "already_cancelled");
    assert!(control.zocdoc_bookings(env.vendor)[0].cancelled);
    assert!(control.zocdoc_open_times(env.vendor, "pl_20231").contains(&open[0]));
    // A past sample appointment cannot be cancelled; a coming one can.
    let mine = ok_json!(app, env.get("/v1/appointments", &user))["data"].as_array().unwrap().clone();
    let past = mine.iter().find(|a| a["status"] == "completed").unwrap()["appointment_id"].as_str().unwrap().to_owned();
    assert_eq!(send!(app, env.cancel(&user, &past)).json()["error"], "appointment_in_past");
    let sample = mine.iter().find(|a| a["status"] == "confirmed" && a["appointment_id"] != id.as_str()).unwrap();
    let sample = sample["appointment_id"].as_str().unwrap().to_owned();
    assert_eq!(send!(app, env.cancel(&user, &sample)).status, StatusCode::OK);
    let mine = ok_json!(app, env.get("/v1/appointments", &user))["data"].as_array().unwrap().clone();
    assert_eq!(mine.iter().find(|a| a["appointment_id"] == sample.as_str()).unwrap()["status"], "cancelled");

    // Production's ledger is its own.
    assert!(control.zocdoc_bookings("zocdoc").is_empty());
    clock.advance(1);
    assert_logs_hold_none(&logs, &[&backend, &anonymous, &user, &reader, &other, EMAIL]);
}

#[actix_web::test]
async fn a_user_who_withholds_the_write_scope_cannot_book() {
    let (_clock, control, data) = setup();
    let app = test::init_service(app(data)).await;
    let env = SANDBOX_ENV;
    control.zocdoc_withhold_scope(Some("external.appointment.write"));
    let page = send!(app, env.authorize(&env.params(READ_WRITE_OFFLINE)));
    let code = send!(app, env.consent(&request_id(&page.body), "approve", Some(EMAIL))).location_param("code").unwrap();
    let tokens = ok_json!(app, env.token(env.code_exchange(&code)));
    assert_eq!(tokens["scope"], "external.appointment.read");
    let user = tokens["access_token"].as_str().unwrap().to_owned();
    let open = control.zocdoc_open_times(env.vendor, "pl_20233");
    let start = crate::sandbox::zocdoc::booking::local_rfc3339(open[0], "America/New_York");
    let refused = send!(app, env.book(&user, Some("k"), booking_body("pl_20233", &start, "vr_acne")));
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.json()["error"], "insufficient_scope");
    control.zocdoc_withhold_scope(None);
    let user = user_token!(app, env, READ_WRITE_OFFLINE, EMAIL);
    assert_eq!(
        send!(app, env.book(&user, Some("k"), booking_body("pl_20233", &start, "vr_acne"))).status,
        StatusCode::CREATED
    );
}
