//! What an admin sees of a connection's state: a badge per state (words, mark and colour),
//! broken connections first, a banner on every admin page counting them, one plain sentence per
//! broken state saying what happened and whose action fixes it, the one button that fixes it,
//! the technical detail under "Details", a reconnect form that starts from what was stored, and
//! a history that says who did each thing.

use clinic_connect::clock::Clock;
use clinic_connect::db::connections::NewEvent;
use clinic_connect::sandbox::{
    Endpoint, Failure, DOCPLANNER_CLIENT_ID, DOCPLANNER_CLIENT_SECRET, DOCPLANNER_DOMAIN, QMATIC_ACCOUNT_NAME,
    QMATIC_CLIENT_ID, QMATIC_CLIENT_SECRET, QMATIC_REGION,
};
use reqwest::StatusCode;

use crate::helpers::{hidden_field, spawn_app, Browser, TestApp};

async fn connect(app: &TestApp, vendor: &str, form: &[(&str, &str)]) {
    let response = app.browser.connect_code_flow(vendor, form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{vendor}");
}

async fn connect_docplanner(browser: &Browser) {
    let form = [
        ("client_id", DOCPLANNER_CLIENT_ID),
        ("client_secret", DOCPLANNER_CLIENT_SECRET),
        ("domain", DOCPLANNER_DOMAIN),
    ];
    assert_eq!(browser.submit_connect("docplanner", &form).await.status(), StatusCode::SEE_OTHER);
}

async fn connect_qmatic(browser: &Browser) {
    let form = [
        ("client_id", QMATIC_CLIENT_ID),
        ("client_secret", QMATIC_CLIENT_SECRET),
        ("account_name", QMATIC_ACCOUNT_NAME),
        ("region", QMATIC_REGION),
        ("scopes", "com.qmatic.saas.appointments/external.appointment.book"),
    ];
    assert_eq!(browser.submit_connect("qmatic", &form).await.status(), StatusCode::SEE_OTHER);
}

/// "Refresh now" on a vendor's page.
async fn refresh_now(browser: &Browser, vendor: &str) -> String {
    let csrf = browser.csrf(&format!("/connections/{vendor}")).await;
    let response = browser.post_form(&format!("/connections/{vendor}/refresh"), &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    browser.get_text(&format!("/connections/{vendor}")).await
}

/// Clinic A with one connection in each state an admin can meet: yAppointment's grant is gone,
/// Docplanner's key is missing, DrChrono refuses the app, Zocdoc is down, and Qmatic is being
/// refreshed by another instance right now.
async fn every_state(app: &TestApp) {
    app.login().await;
    connect(app, "yappointment", &[]).await;
    connect(app, "drchrono", &[]).await;
    connect(app, "zocdoc", &[("environment", "production")]).await;
    connect_docplanner(&app.browser).await;
    connect_qmatic(&app.browser).await;

    app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::InvalidGrant, Some(1));
    refresh_now(&app.browser, "yappointment").await;
    app.sandbox.set_failure("drchrono", Endpoint::Token, Failure::Error(401, "invalid_client"), Some(1));
    refresh_now(&app.browser, "drchrono").await;
    app.sandbox.set_failure("zocdoc", Endpoint::Token, Failure::Status(503), Some(1));
    refresh_now(&app.browser, "zocdoc").await;
    // As the start-up check leaves a connection whose key was removed.
    let row = app.db.connection(1, "docplanner").await.unwrap().unwrap();
    let event = NewEvent { kind: "key_missing", detail: "sealed under key `k0ld`, which is gone", actor: "worker" };
    assert!(app.db.mark_key_missing_keeping_secrets(row.id, row.version, &event, app.clock.now()).await.unwrap());
    let row = app.db.connection(1, "qmatic").await.unwrap().unwrap();
    let now = app.clock.now();
    assert!(app.db.acquire_lease(row.id, row.version, "elsewhere", now, now + 30).await.unwrap());
}

/// The position of a vendor's card on the dashboard.
fn card_at(dashboard: &str, vendor: &str) -> usize {
    dashboard.find(&format!(r#"id="card-{vendor}""#)).unwrap_or_else(|| panic!("no card for {vendor}"))
}

fn badge(vendor: &str, class: &str, icon: &str, label: &str) -> String {
    format!(
        r#"<p class="badge {class}"><span class="badge-icon" aria-hidden="true">{icon}</span> <span class="status" id="status-{vendor}">{label}</span></p>"#
    )
}

#[tokio::test]
async fn every_state_has_its_own_badge_and_broken_connections_come_first() {
    let app = spawn_app().await;
    every_state(&app).await;
    let dashboard = app.browser.get_text("/connections").await;
    for expected in [
        badge("yappointment", "badge-reconnect-needed", "✕", "Reconnect needed"),
        badge("docplanner", "badge-key-missing", "⚷", "Key missing"),
        badge("drchrono", "badge-app-refused", "⊘", "Vendor refuses the app"),
        badge("zocdoc", "badge-vendor-down", "⚠", "Vendor down (retrying)"),
        badge("qmatic", "badge-refreshing", "↻", "Refreshing"),
    ] {
        assert!(dashboard.contains(&expected), "{expected}\n{dashboard}");
    }
    let order: Vec<usize> =
        ["yappointment", "docplanner", "drchrono", "zocdoc", "qmatic"].iter().map(|v| card_at(&dashboard, v)).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "the most urgent first: {order:?}");

    // Another clinic: connected and not connected, nothing to attend to.
    let b = app.other_clinic_browser().await;
    let response = b.connect_code_flow("yappointment", &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let theirs = b.get_text("/connections").await;
    assert!(theirs.contains(&badge("yappointment", "badge-connected", "✓", "Connected")), "{theirs}");
    assert!(theirs.contains(&badge("drchrono", "badge-not-connected", "○", "Not connected")), "{theirs}");
    assert!(!theirs.contains(r#"id="attention""#), "{theirs}");
    assert!(!theirs.contains("<!--attention-->"), "the marker never reaches a page");

    // The detail page's badge, too.
    let detail = app.browser.get_text("/connections/drchrono").await;
    assert!(
        detail.contains(r#"<span class="badge badge-app-refused"><span class="badge-icon" aria-hidden="true">⊘</span> <span id="status">Vendor refuses the app</span></span>"#),
        "{detail}"
    );
}

#[tokio::test]
async fn a_banner_on_every_admin_page_counts_the_broken_connections_and_links_to_the_first() {
    let app = spawn_app().await;
    every_state(&app).await;
    for path in [
        "/connections",
        "/connections/qmatic",
        "/connections/zocdoc",
        "/connections/drchrono/disconnect/confirm",
        "/connections/no-such-vendor",
        "/connections/yappointment/disconnect",
    ] {
        let page = app.browser.get_text(path).await;
        assert!(
            page.contains(r#"<strong id="attention-count">4 connections need attention.</strong>"#),
            "{path}: {page}"
        );
        assert!(page.contains("yAppointment: Reconnect needed, and 3 more."), "{path}: {page}");
        assert!(
            page.contains(
                r#"<a href="/connections/yappointment" id="attention-first">See what to do about yAppointment</a>"#
            ),
            "{path}: {page}"
        );
        assert_eq!(page.matches(r#"id="attention""#).count(), 1, "{path}");
    }
    // Not for anyone signed out, nor on the patients' pages.
    let stranger = Browser::new(&app.address);
    for path in ["/login", "/connections/no-such-vendor", "/care"] {
        let page = stranger.get_text(path).await;
        assert!(!page.contains(r#"id="attention""#) && !page.contains("<!--attention-->"), "{path}: {page}");
    }
    // Mended connections leave the count.
    app.connect_yappointment().await;
    let page = app.browser.get_text("/connections").await;
    assert!(page.contains("3 connections need attention."), "{page}");
    assert!(page.contains(r#"<a href="/connections/docplanner" id="attention-first">"#), "{page}");
}

/// The page's problem section, split at its "Details": (headline part, details part).
fn problem(page: &str) -> (String, String) {
    let start = page.find(r#"<section class="problem"#).expect("a problem section");
    let section = &page[start..start + page[start..].find("</section>").unwrap()];
    match section.split_once("<details") {
        Some((headline, details)) => (headline.to_owned(), details.to_owned()),
        None => (section.to_owned(), String::new()),
    }
}

#[tokio::test]
async fn each_broken_state_says_what_happened_who_fixes_it_and_offers_the_one_button() {
    let app = spawn_app().await;
    every_state(&app).await;

    let page = app.browser.get_text("/connections/yappointment").await;
    let (headline, details) = problem(&page);
    assert!(headline.contains("yAppointment no longer accepts this connection"), "{headline}");
    assert!(headline.contains("an admin of the clinic must reconnect it"), "{headline}");
    assert!(headline.contains(r#"id="connect-yappointment">Reconnect yAppointment</button>"#), "{headline}");
    assert!(!headline.contains("invalid_grant") && details.contains("invalid_grant"), "{page}");
    assert!(details.contains("<summary>Details</summary>"), "{details}");

    let page = app.browser.get_text("/connections/docplanner").await;
    let (headline, details) = problem(&page);
    assert!(headline.contains("the encryption key they were sealed with was removed"), "{headline}");
    assert!(headline.contains("the operator can put the key back, or an admin can reconnect Docplanner"), "{headline}");
    assert!(headline.contains(r#"id="connect-docplanner">Reconnect Docplanner</button>"#), "{headline}");
    assert!(headline.contains(&format!(r#"id="field-client_id" value="{DOCPLANNER_CLIENT_ID}""#)), "{headline}");
    assert!(!headline.contains("k0ld") && details.contains("k0ld"), "{page}");

    let page = app.browser.get_text("/connections/drchrono").await;
    let (headline, details) = problem(&page);
    assert!(headline.contains("refuses this app&#39;s own registration"), "{headline}");
    assert!(headline.contains("operator must fix the app&#39;s registration at DrChrono"), "{headline}");
    assert!(headline.contains("current access still works until"), "{headline}");
    assert!(headline.contains(r#"id="check-now">Check DrChrono again now</button>"#), "{headline}");
    assert!(!page.contains(r#"id="refresh-now""#), "one button, not two");
    for technical in ["invalid_client", "HTTP 401"] {
        assert!(!headline.contains(technical) && details.contains(technical), "{technical}: {page}");
    }
    assert!(details.contains("Next automatic attempt"), "{details}");

    let page = app.browser.get_text("/connections/zocdoc").await;
    let (headline, details) = problem(&page);
    assert!(headline.contains("Zocdoc could not be reached or had trouble"), "{headline}");
    assert!(headline.contains("nobody needs to act unless this lasts"), "{headline}");
    assert!(headline.contains(r#"id="check-now">Check Zocdoc again now</button>"#), "{headline}");
    assert!(!headline.contains("503") && details.contains("HTTP 503"), "{page}");

    // Nothing is wrong with Qmatic: no problem, the everyday button.
    let page = app.browser.get_text("/connections/qmatic").await;
    assert!(!page.contains(r#"<section class="problem"#) && page.contains(r#"id="refresh-now""#), "{page}");

    // The dashboard offers the same buttons, named for what they do.
    let dashboard = app.browser.get_text("/connections").await;
    for button in [
        r#"id="reconnect-yappointment">Reconnect yAppointment</button>"#,
        r#"id="reconnect-docplanner">Reconnect Docplanner…</a>"#,
        r#"id="check-drchrono">Check DrChrono again now</button>"#,
        r#"id="check-zocdoc">Check Zocdoc again now</button>"#,
    ] {
        assert!(dashboard.contains(button), "{button}\n{dashboard}");
    }
    assert!(!dashboard.contains("invalid_client") && !dashboard.contains("HTTP 503"), "{dashboard}");
}

#[tokio::test]
async fn check_again_now_tries_at_once_and_says_how_it_went_in_plain_words() {
    let app = spawn_app().await;
    app.login().await;
    connect(&app, "drchrono", &[]).await;
    app.sandbox.set_failure("drchrono", Endpoint::Token, Failure::Error(401, "invalid_client"), Some(2));
    let page = refresh_now(&app.browser, "drchrono").await;
    assert!(page.contains(r#"id="status">Vendor refuses the app</span>"#), "{page}");
    // Still refused, during the backoff: tried anyway, and said plainly.
    let tokens_before = app.sandbox.requests_to("drchrono", "/o/token/").len();
    let page = refresh_now(&app.browser, "drchrono").await;
    assert_eq!(app.sandbox.requests_to("drchrono", "/o/token/").len(), tokens_before + 1, "not held back");
    let flash = &page[page.find(r#"id="flash""#).unwrap()..];
    let flash = &flash[..flash.find("</div>").unwrap()];
    assert!(flash.contains("DrChrono still refuses this app&#39;s registration"), "{flash}");
    assert!(!flash.contains("invalid_client") && !flash.contains("401"), "{flash}");
    // The operator fixed it: the next check mends it at once.
    let page = refresh_now(&app.browser, "drchrono").await;
    assert!(page.contains("The DrChrono access token was refreshed."), "{page}");
    assert!(page.contains(r#"id="status">Connected</span>"#) && !page.contains(r#"id="attention""#), "{page}");
}

#[tokio::test]
async fn the_clinics_own_credentials_refused_ask_for_a_reconnect_that_starts_from_what_was_stored() {
    let app = spawn_app().await;
    app.login().await;
    connect_docplanner(&app.browser).await;
    connect_qmatic(&app.browser).await;

    // Docplanner refuses the clinic's credentials: theirs to mend, by reconnecting.
    app.sandbox.set_failure("docplanner", Endpoint::Token, Failure::Error(401, "invalid_client"), Some(1));
    let page = refresh_now(&app.browser, "docplanner").await;
    let (headline, _) = problem(&page);
    assert!(headline.contains("Docplanner no longer accepts the clinic&#39;s client credentials"), "{headline}");
    assert!(headline.contains("an admin must reconnect it with the clinic&#39;s current Docplanner credentials"));
    assert!(headline.contains(&format!(r#"id="field-client_id" value="{DOCPLANNER_CLIENT_ID}""#)), "{headline}");
    assert!(headline.contains(&format!(r#"<option value="{DOCPLANNER_DOMAIN}" selected>"#)), "{headline}");
    assert!(headline.contains(
        r#"<input type="password" name="client_secret" id="field-client_secret" autocomplete="off" required>"#
    ));
    assert!(!page.contains(DOCPLANNER_CLIENT_SECRET));
    let dashboard = app.browser.get_text("/connections").await;
    assert!(dashboard.contains(r#"id="reconnect-docplanner">Reconnect Docplanner…</a>"#), "{dashboard}");

    // Qmatic's grant is gone: the account name, region and permissions chosen come back.
    app.sandbox.set_failure("qmatic", Endpoint::Token, Failure::InvalidGrant, Some(1));
    let page = refresh_now(&app.browser, "qmatic").await;
    assert!(page.contains(r#"id="status">Reconnect needed</span>"#), "{page}");
    assert!(page.contains(&format!(r#"id="field-client_id" value="{QMATIC_CLIENT_ID}""#)), "{page}");
    assert!(page.contains(&format!(r#"id="field-account_name" value="{QMATIC_ACCOUNT_NAME}""#)), "{page}");
    assert!(page.contains(&format!(r#"<option value="{QMATIC_REGION}" selected>"#)), "{page}");
    assert!(page.contains(r#"value="com.qmatic.saas.appointments/external.appointment.book" checked>"#), "{page}");
    assert!(!page.contains(r#"value="com.qmatic.saas.appointments/external.appointment.cancel" checked>"#), "{page}");
    assert!(!page.contains(QMATIC_CLIENT_SECRET));

    // The pre-filled form, with the secret typed again, reconnects.
    let csrf = hidden_field(&page, "csrf").unwrap();
    let form = [
        ("csrf", csrf.as_str()),
        ("client_id", QMATIC_CLIENT_ID),
        ("client_secret", QMATIC_CLIENT_SECRET),
        ("account_name", QMATIC_ACCOUNT_NAME),
        ("region", QMATIC_REGION),
        ("scopes", "com.qmatic.saas.appointments/external.appointment.book"),
    ];
    assert_eq!(app.browser.post_form("/connections/qmatic/connect", &form).await.status(), StatusCode::SEE_OTHER);
    let page = app.browser.get_text("/connections/qmatic").await;
    assert!(page.contains("Reconnected to Qmatic Cloud Appointments."), "{page}");
}

#[tokio::test]
async fn the_history_says_who_did_each_thing() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    // The clinic's systems: a proxied call refused once refreshes the token.
    let key = app.api_key(1).await;
    app.sandbox.set_failure("yappointment", Endpoint::Identity, Failure::Status(401), Some(1));
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/connections/yappointment/proxy/api/v1/me", app.address))
        .bearer_auth(&key)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The background worker: a refresh before expiry.
    app.clock.advance(3600 - 100);
    clinic_connect::worker::run_once(&app.state).await;
    // The command line: `keys rotate` with a keyring that lost the key.
    let only_new = clinic_connect::vault::Vault::from_keyring(&secrecy::SecretString::from(
        clinic_connect::vault::Vault::generate_key_entry().unwrap(),
    ))
    .unwrap();
    let clock: clinic_connect::clock::SharedClock = app.clock.clone();
    clinic_connect::rotation::rotate(&app.db, &only_new, &clock).await.unwrap();

    app.login().await;
    let page = app.browser.get_text("/connections/yappointment").await;
    assert!(page.contains(r#"<th scope="col">Who</th>"#), "{page}");
    let who: Vec<String> = regex::Regex::new(r#"<td>([^<]*)</td><td class="who">([^<]*)</td>"#)
        .unwrap()
        .captures_iter(&page)
        .map(|c| format!("{}: {}", &c[1], &c[2]))
        .collect();
    assert_eq!(
        who,
        [
            "Key missing: Command line",
            "Token refreshed: Background worker",
            "Token refreshed: Clinic&#39;s systems (API)",
            "Connected: admin@clinic-a.test",
        ],
        "{page}"
    );
    // `keys rotate` deleted what it could not read: only a reconnect mends it now.
    assert!(page.contains("and have been deleted, so an admin must reconnect yAppointment."), "{page}");
}
