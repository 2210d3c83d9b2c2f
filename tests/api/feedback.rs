//! What the admin is told: a message of the right kind after every action, a confirmation
//! before a disconnect, and error pages in the site's layout that keep the signed-in header.

use clinic_connect::sandbox::{Endpoint, Failure};
use reqwest::header::{ALLOW, CONTENT_TYPE};
use reqwest::StatusCode;

use crate::helpers::{hidden_field, location, spawn_app};

/// The kind and text of the page's message (`<div class="notice notice-KIND" id="flash" …>`).
fn flash(html: &str) -> Option<(String, String)> {
    let re = regex::Regex::new(
        r#"<div class="notice notice-(\w+)" id="flash" role="\w+">.*?<strong class="notice-label">[^<]*</strong> ([^<]*)</div>"#,
    )
    .unwrap();
    re.captures(html).map(|c| (c[1].to_owned(), c[2].to_owned()))
}

fn kind_and_text(kind: &str, text: &str) -> Option<(String, String)> {
    Some((kind.to_owned(), text.to_owned()))
}

#[tokio::test]
async fn every_action_says_how_it_went_with_its_kind() {
    let app = spawn_app().await;
    app.login().await;

    // OAuth connect.
    app.connect_yappointment().await;
    let detail = app.browser.get_text("/connections/yappointment").await;
    assert_eq!(flash(&detail), kind_and_text("success", "Connected to yAppointment."), "{detail}");
    // Shown once.
    assert_eq!(flash(&app.browser.get_text("/connections/yappointment").await), None);

    // Refresh now.
    let csrf = app.browser.csrf("/connections/yappointment").await;
    app.browser.post_form("/connections/yappointment/refresh", &[("csrf", &csrf)]).await;
    let detail = app.browser.get_text("/connections/yappointment").await;
    assert_eq!(flash(&detail), kind_and_text("success", "The yAppointment access token was refreshed."));

    // Disconnect with the vendor unreachable: done here, but a warning.
    app.sandbox.set_failure("yappointment", Endpoint::Revoke, Failure::Status(503), Some(1));
    app.browser.disconnect("yappointment").await;
    let (kind, text) = flash(&app.browser.get_text("/connections/yappointment").await).unwrap();
    assert_eq!(kind, "warning", "{text}");
    assert!(text.starts_with("Disconnected here."), "{text}");

    // A refresh the vendor refuses is an error, told as one.
    app.connect_yappointment().await;
    app.sandbox.set_failure("yappointment", Endpoint::Token, Failure::InvalidGrant, Some(1));
    app.browser.post_form("/connections/yappointment/refresh", &[("csrf", &csrf)]).await;
    let (kind, text) = flash(&app.browser.get_text("/connections/yappointment").await).unwrap();
    assert_eq!(kind, "error", "{text}");

    // Disconnecting what the vendor already dropped: nothing held, nothing claimed revoked.
    let page = app.browser.get_text("/connections/yappointment/disconnect/confirm").await;
    assert!(page.contains("so there is nothing to revoke there"), "{page}");
    app.browser.disconnect("yappointment").await;
    let detail = app.browser.get_text("/connections/yappointment").await;
    assert_eq!(flash(&detail), kind_and_text("success", "Disconnected from yAppointment."), "{detail}");

    // Consent denied at the vendor: a warning, nothing changed.
    let authorize = app.browser.start_connect("drchrono").await;
    let callback = app.browser.consent(&authorize, "deny").await;
    app.browser.get(callback.as_str()).await;
    let detail = app.browser.get_text("/connections/drchrono").await;
    assert_eq!(flash(&detail), kind_and_text("warning", "Access was not granted at DrChrono. Nothing was changed."));
}

#[tokio::test]
async fn sign_out_says_so_on_the_sign_in_page_with_nothing_secret_in_the_address() {
    let app = spawn_app().await;
    app.login().await;
    let csrf = app.browser.csrf("/connections").await;
    let response = app.browser.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login?signed_out=1");
    let page = app.browser.get_text(&location(&response)).await;
    assert_eq!(flash(&page), kind_and_text("success", "You signed out."));
    // Only that address says it.
    assert_eq!(flash(&app.browser.get_text("/login").await), None);
    assert_eq!(flash(&app.browser.get_text("/login?signed_out=yes").await), None);
}

#[tokio::test]
async fn disconnect_asks_first_and_only_the_confirmed_post_acts() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;

    let detail = app.browser.get_text("/connections/yappointment").await;
    assert!(detail.contains(r#"href="/connections/yappointment/disconnect/confirm""#), "{detail}");
    assert!(!detail.contains(r#"action="/connections/yappointment/disconnect""#), "no one-click disconnect");

    let page = app.browser.get_text("/connections/yappointment/disconnect/confirm").await;
    assert!(page.contains("<h1>Disconnect yAppointment?</h1>"), "{page}");
    assert!(page.contains("asks yAppointment to revoke its access"), "{page}");
    assert!(page.contains("The stored tokens are deleted"), "{page}");
    assert!(page.contains("history is kept"), "{page}");
    assert!(page
        .contains(r#"<a class="button secondary" href="/connections/yappointment" id="cancel-disconnect">Cancel</a>"#));
    assert!(page.contains(r#"<form method="post" action="/connections/yappointment/disconnect""#));
    assert!(hidden_field(&page, "csrf").is_some());
    // Looking at the confirmation changed nothing.
    assert!(app.sandbox.requests_to("yappointment", "/oauth/revoke").is_empty());
    assert_eq!(app.db.connection(1, "yappointment").await.unwrap().unwrap().status, "connected");

    let response = app.browser.disconnect("yappointment").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.db.connection(1, "yappointment").await.unwrap().unwrap().status, "disconnected");
    let detail = app.browser.get_text("/connections/yappointment").await;
    assert_eq!(
        flash(&detail),
        kind_and_text("success", "Disconnected from yAppointment. Access was revoked at yAppointment.")
    );

    // Nothing left to disconnect: the confirmation sends the admin back with a neutral note.
    let response = app.browser.get("/connections/yappointment/disconnect/confirm").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/connections/yappointment");
    let detail = app.browser.get_text("/connections/yappointment").await;
    assert_eq!(
        flash(&detail),
        kind_and_text("neutral", "yAppointment is not connected, so there is nothing to disconnect.")
    );
}

#[tokio::test]
async fn a_vendor_without_revocation_says_what_stays_valid() {
    let app = spawn_app().await;
    app.login().await;
    let response = app.browser.connect_code_flow("zocdoc", &[("environment", "sandbox")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = app.browser.get_text("/connections/zocdoc/disconnect/confirm").await;
    assert!(page.contains("Zocdoc offers no way to revoke access from here"), "{page}");
    assert!(page.contains("stays valid until it expires ("), "{page}");
}

#[tokio::test]
async fn error_pages_are_the_apps_and_keep_the_signed_in_header() {
    let app = spawn_app().await;

    // Signed out: the site's layout, no header, a way to the sign-in.
    let response = app.browser.get("/no-such-page").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let page = response.text().await.unwrap();
    assert!(page.contains("<title>Page not found · clinic-connect</title>"), "{page}");
    assert!(page.contains(r#"href="/static/style.css""#) && !page.contains(r#"id="sign-out""#));
    assert!(page.contains(r#"<a href="/login" id="error-back">"#), "{page}");

    app.login().await;
    let signed_in = |page: &str| {
        page.contains(r#"<span class="clinic">Clinic A</span>"#)
            && page.contains(r#"<span class="email">admin@clinic-a.test</span>"#)
            && page.contains(r#"id="sign-out""#)
            && hidden_field(page, "csrf").is_some()
    };

    let response = app.browser.get("/connections/nope").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let page = response.text().await.unwrap();
    assert!(signed_in(&page), "{page}");
    assert!(page.contains("<title>Page not found · Clinic A · clinic-connect</title>"), "{page}");

    // A GET on a form's address: 405 with Allow, and a page rather than a blank one.
    for path in ["/connections/yappointment/disconnect", "/connections/yappointment/refresh", "/logout"] {
        let response = app.browser.get(path).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(response.headers()[ALLOW], "POST");
        let page = response.text().await.unwrap();
        assert!(signed_in(&page), "{path}: {page}");
        assert!(page.contains("Use the button on the page"), "{page}");
    }

    // A forged callback.
    let response = app.browser.get("/connections/yappointment/callback?code=forged&state=forged").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(signed_in(&page) && page.contains("does not match a connection you started"), "{page}");
    assert!(!page.contains("forged"), "nothing from the address is echoed");

    // A form without the session's CSRF token.
    let response = app.browser.post_form("/connections/yappointment/refresh", &[("csrf", "guess")]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let page = response.text().await.unwrap();
    assert!(signed_in(&page) && page.contains("Form expired"), "{page}");
}

#[tokio::test]
async fn a_patients_get_on_a_form_address_points_back_to_the_search() {
    let app = spawn_app().await;
    let response = app.browser.get("/care/logout").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[ALLOW], "POST");
    let page = response.text().await.unwrap();
    assert!(page.contains(r#"<a href="/care" id="error-back">Back to the search</a>"#), "{page}");
    assert!(!page.contains("/connections"), "{page}");
}

#[tokio::test]
async fn pages_name_the_clinic_in_the_title_and_the_vendor_in_links() {
    let app = spawn_app().await;
    app.login().await;
    let dashboard = app.browser.get_text("/connections").await;
    assert!(dashboard.contains("<title>Connections · Clinic A · clinic-connect</title>"));
    assert!(dashboard.contains(r#"<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">"#));
    assert!(dashboard.contains(r#"id="history-drchrono">DrChrono history</a>"#), "{dashboard}");
    assert!(!dashboard.contains(">History<"), "every link names its vendor");
    // Unconnected cards say what connecting does for the clinic, not the grant type.
    assert!(!dashboard.contains("client credentials") && !dashboard.contains("authorization code"));

    app.connect_yappointment().await;
    let dashboard = app.browser.get_text("/connections").await;
    assert!(dashboard.contains(r#"id="view-yappointment">View yAppointment connection</a>"#), "{dashboard}");
    let detail = app.browser.get_text("/connections/yappointment").await;
    assert!(detail.contains("<title>yAppointment · Clinic A · clinic-connect</title>"));
    assert!(detail.contains("<h2>yAppointment history</h2>"));
}

#[tokio::test]
async fn the_favicon_is_served_by_the_app() {
    let app = spawn_app().await;
    let response = app.browser.get("/static/favicon.svg").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "image/svg+xml");
    assert!(response.text().await.unwrap().starts_with("<svg"));
    let response = app.browser.get("/favicon.ico").await;
    assert_eq!(location(&response), "/static/favicon.svg");
}
