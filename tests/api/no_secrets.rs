//! No token, code, verifier, state or client secret in the database files, the logs, our pages or
//! our URLs.

use clinic_connect::sandbox::{
    Endpoint, Failure, YAPPOINTMENT_CLIENT_SECRET, YAPPOINTMENT_COMPANY_NAME,
};

use crate::helpers::{captured_logs, location, query_param, spawn_app, TestApp};

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every secret value the sandbox saw or issued in this test's requests.
fn secrets_seen_by_the_sandbox(app: &TestApp) -> Vec<String> {
    let mut secrets = vec![YAPPOINTMENT_CLIENT_SECRET.to_owned()];
    for request in app.sandbox.requests() {
        if let Some(auth) = request.header("authorization") {
            secrets.push(auth.trim_start_matches("Bearer ").to_owned());
        }
        if let Some(json) = request.json() {
            for field in [
                "code",
                "code_verifier",
                "refresh_token",
                "token",
                "client_secret",
            ] {
                if let Some(v) = json[field].as_str() {
                    secrets.push(v.to_owned());
                }
            }
        }
        let query: Vec<(String, String)> = url::form_urlencoded::parse(request.query.as_bytes())
            .into_owned()
            .collect();
        for (k, v) in query {
            if k == "state" || k == "code_challenge" {
                secrets.push(v);
            }
        }
    }
    secrets.sort();
    secrets.dedup();
    secrets
}

#[tokio::test]
async fn the_database_files_hold_no_token_in_plaintext() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;

    let bytes = app.database_bytes();
    // The search does read the files: the company name is stored in the clear.
    assert!(contains(&bytes, YAPPOINTMENT_COMPANY_NAME));
    for prefix in ["yapp_at_", "yapp_rt_", "yapp_ac_", "yapp_cs_"] {
        assert!(
            !contains(&bytes, prefix),
            "{prefix} found in the database files"
        );
    }
    let secrets = secrets_seen_by_the_sandbox(&app);
    assert!(
        secrets.iter().any(|s| s.starts_with("yapp_at_")),
        "the test saw the issued access token"
    );
    for secret in &secrets {
        assert!(
            !contains(&bytes, secret),
            "a secret the sandbox saw is in the database files"
        );
    }
}

#[tokio::test]
async fn logs_pages_and_urls_carry_no_secret() {
    let app = spawn_app().await;
    app.login().await;

    // The happy path, a denial, a failure, a replay and a disconnect, all logged at trace level.
    let authorize = app.browser.start_connect("yappointment").await;
    let callback = app.browser.consent(&authorize, "approve").await;
    let landing = app.browser.get(callback.as_str()).await;
    let landing_location = location(&landing);
    let replay = app
        .browser
        .get(callback.as_str())
        .await
        .text()
        .await
        .unwrap();
    let denied = app
        .browser
        .consent(&app.browser.start_connect("yappointment").await, "deny")
        .await;
    app.browser.get(denied.as_str()).await;
    app.sandbox
        .set_failure("yappointment", Endpoint::Token, Failure::Malformed, Some(1));
    let failing = app
        .browser
        .consent(&app.browser.start_connect("yappointment").await, "approve")
        .await;
    let failure_page = app
        .browser
        .get(failing.as_str())
        .await
        .text()
        .await
        .unwrap();
    let detail = app.browser.get_text("/connections/yappointment").await;
    let dashboard = app.browser.get_text("/connections").await;
    app.browser.disconnect("yappointment").await;
    let after = app.browser.get_text("/connections/yappointment").await;

    let state = query_param(&callback, "state").unwrap();
    let code = query_param(&callback, "code").unwrap();
    let mut secrets = secrets_seen_by_the_sandbox(&app);
    secrets.extend([state, code]);
    assert!(secrets
        .iter()
        .any(|s| s.starts_with("yapp_rt_") || s.starts_with("yapp_at_")));

    let logs = captured_logs();
    assert!(
        logs.contains("authorization started"),
        "the logs were captured"
    );
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "captured at the most verbose level"
    );
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
        for page in [
            &replay,
            &failure_page,
            &detail,
            &dashboard,
            &after,
            &landing_location,
        ] {
            assert!(
                !page.contains(secret.as_str()),
                "a secret reached a page or our redirect"
            );
        }
    }
    for prefix in ["yapp_at_", "yapp_rt_", "yapp_ac_", "yapp_cs_"] {
        assert!(!logs.contains(prefix), "{prefix} reached the logs");
    }
    // Our own URLs never carry the code or the state onwards.
    assert_eq!(landing_location, "/connections/yappointment");
}
