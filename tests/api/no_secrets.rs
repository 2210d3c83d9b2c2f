//! No token, code, verifier, state or client secret in the database files, the logs, our pages or
//! our URLs.

use clinic_connect::sandbox::{Endpoint, Failure};
use clinic_connect::sandbox::{
    DOCPLANNER_CLIENT_ID, DOCPLANNER_CLIENT_SECRET, DOCPLANNER_DOMAIN, QMATIC_ACCOUNT_NAME, QMATIC_CLIENT_ID,
    QMATIC_CLIENT_SECRET, QMATIC_REGION, YAPPOINTMENT_COMPANY_NAME,
};
use reqwest::StatusCode;

use crate::helpers::{captured_logs, location, query_param, spawn_app, TestApp};

/// Every token prefix the sandbox issues, and the prefixes of every client secret it knows.
const PREFIXES: [&str; 16] = [
    "yapp_at_", "yapp_rt_", "yapp_ac_", "yapp_cs_", "zd_at_", "zd_rt_", "zd_ac_", "zd_cc_", "zd_cs_", "drc_at_",
    "drc_rt_", "drc_ac_", "drc_cs_", "dp_at_", "qm_at_", "qm_rt_",
];

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every secret value the sandbox saw in this test's requests: tokens, codes, verifiers,
/// states, challenges, client secrets (in bodies and in Basic headers).
fn secrets_seen_by_the_sandbox(app: &TestApp) -> Vec<String> {
    let mut secrets = vec![DOCPLANNER_CLIENT_SECRET.to_owned(), QMATIC_CLIENT_SECRET.to_owned()];
    for request in app.sandbox.requests() {
        if let Some(auth) = request.header("authorization") {
            secrets.push(auth.trim_start_matches("Bearer ").trim_start_matches("Basic ").to_owned());
        }
        let mut fields: Vec<(String, String)> = request.form();
        if let Some(serde_json::Value::Object(map)) = request.json() {
            fields.extend(map.into_iter().filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned()))));
        }
        fields.extend(url::form_urlencoded::parse(request.query.as_bytes()).into_owned());
        for (k, v) in fields {
            if matches!(
                k.as_str(),
                "code" | "code_verifier" | "refresh_token" | "token" | "client_secret" | "state" | "code_challenge"
            ) {
                secrets.push(v);
            }
        }
    }
    secrets.retain(|s| s.len() >= 8);
    secrets.sort();
    secrets.dedup();
    secrets
}

pub(crate) async fn connect_every_vendor(app: &TestApp) {
    app.connect_yappointment().await;
    for (vendor, form) in [("drchrono", vec![]), ("zocdoc", vec![("environment", "sandbox")])] {
        let response = app.browser.connect_code_flow(vendor, &form).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{vendor}");
    }
    let docplanner = [
        ("client_id", DOCPLANNER_CLIENT_ID),
        ("client_secret", DOCPLANNER_CLIENT_SECRET),
        ("domain", DOCPLANNER_DOMAIN),
    ];
    assert_eq!(app.browser.submit_connect("docplanner", &docplanner).await.status(), StatusCode::SEE_OTHER);
    let qmatic = [
        ("client_id", QMATIC_CLIENT_ID),
        ("client_secret", QMATIC_CLIENT_SECRET),
        ("account_name", QMATIC_ACCOUNT_NAME),
        ("region", QMATIC_REGION),
        ("scopes", "com.qmatic.saas.appointments/external.appointment.book"),
    ];
    assert_eq!(app.browser.submit_connect("qmatic", &qmatic).await.status(), StatusCode::SEE_OTHER);
    for vendor in ["yappointment", "drchrono", "zocdoc", "docplanner", "qmatic"] {
        assert_eq!(app.db.connection(1, vendor).await.unwrap().unwrap().status, "connected", "{vendor}");
    }
}

#[tokio::test]
async fn the_database_files_hold_no_token_or_secret_in_plaintext() {
    let app = spawn_app().await;
    app.login().await;
    connect_every_vendor(&app).await;

    let bytes = app.database_bytes().await;
    // The search does read the files: the company name is stored in the clear.
    assert!(contains(&bytes, YAPPOINTMENT_COMPANY_NAME));
    for prefix in PREFIXES {
        assert!(!contains(&bytes, prefix), "{prefix} found in the database files");
    }
    let secrets = secrets_seen_by_the_sandbox(&app);
    for issued in ["yapp_at_", "drc_at_", "dp_at_"] {
        assert!(secrets.iter().any(|s| s.starts_with(issued)), "the test saw a {issued} token");
    }
    for secret in &secrets {
        assert!(!contains(&bytes, secret), "a secret the sandbox saw is in the database files");
    }
}

#[tokio::test]
async fn logs_pages_and_urls_carry_no_secret() {
    let app = spawn_app().await;
    app.login().await;

    // Every vendor, a denial, a failure, a replay and a disconnect, all logged at trace level.
    let authorize = app.browser.start_connect("yappointment").await;
    let callback = app.browser.consent(&authorize, "approve").await;
    let landing = app.browser.get(callback.as_str()).await;
    let landing_location = location(&landing);
    let replay = app.browser.get(callback.as_str()).await.text().await.unwrap();
    let denied = app.browser.consent(&app.browser.start_connect("drchrono").await, "deny").await;
    app.browser.get(denied.as_str()).await;
    app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::Malformed, Some(1));
    let failing = app.browser.consent(&app.browser.start_connect("yappointment").await, "approve").await;
    let failure_page = app.browser.get(failing.as_str()).await.text().await.unwrap();
    let wrong = [
        ("client_id", DOCPLANNER_CLIENT_ID),
        ("client_secret", "dp_cs_typed-wrong-secret"),
        ("domain", DOCPLANNER_DOMAIN),
    ];
    let wrong_page = app.browser.submit_connect("docplanner", &wrong).await.text().await.unwrap();
    app.browser.disconnect("yappointment").await;
    connect_every_vendor(&app).await;
    let mut pages = vec![replay, failure_page, wrong_page, landing_location.clone()];
    pages.push(app.browser.get_text("/connections").await);
    for vendor in ["yappointment", "drchrono", "zocdoc", "docplanner", "qmatic"] {
        pages.push(app.browser.get_text(&format!("/connections/{vendor}")).await);
        app.browser.disconnect(vendor).await;
        pages.push(app.browser.get_text(&format!("/connections/{vendor}")).await);
    }

    let mut secrets = secrets_seen_by_the_sandbox(&app);
    secrets.extend([query_param(&callback, "state").unwrap(), query_param(&callback, "code").unwrap()]);
    secrets.push("dp_cs_typed-wrong-secret".to_owned());
    assert!(secrets.iter().any(|s| s.starts_with("yapp_rt_") || s.starts_with("yapp_at_")));

    let logs = captured_logs();
    assert!(logs.contains("authorization started"), "the logs were captured");
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "captured at the most verbose level");
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
        for page in &pages {
            assert!(!page.contains(secret.as_str()), "a secret reached a page or our redirect");
        }
    }
    for prefix in PREFIXES {
        assert!(!logs.contains(prefix), "{prefix} reached the logs");
    }
    // Our own URLs never carry the code or the state onwards.
    assert_eq!(landing_location, "/connections/yappointment");
}
