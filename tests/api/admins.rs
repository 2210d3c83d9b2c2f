//! The clinic's admins: the list, invitations (a link shown once, valid 48 hours, used once),
//! and removal (asked first, never oneself or the last, their sessions end everywhere).

use reqwest::StatusCode;

use crate::helpers::{captured_logs, hidden_field, location, spawn_app, Browser, TestApp, PASSWORD};

/// The kind and text of a page's message with this id.
pub fn notice(html: &str, id: &str) -> Option<(String, String)> {
    let re = regex::Regex::new(&format!(
        r#"<div class="notice notice-(\w+)" id="{id}" role="\w+">.*?<strong class="notice-label">[^<]*</strong> ([^<]*)</div>"#
    ))
    .unwrap();
    re.captures(html).map(|c| (c[1].to_owned(), html_unescape(&c[2])))
}

fn html_unescape(text: &str) -> String {
    text.replace("&#x27;", "'").replace("&#39;", "'").replace("&quot;", "\"").replace("&amp;", "&")
}

pub fn flash(html: &str) -> Option<(String, String)> {
    notice(html, "flash")
}

pub fn kind(kind: &str, text: &str) -> Option<(String, String)> {
    Some((kind.to_owned(), text.to_owned()))
}

/// The invitation link an invited page shows.
pub fn invitation_link(html: &str) -> String {
    let re =
        regex::Regex::new(r#"id="invitation-link" class="link-box" rows="3" readonly>([^<]+)</textarea>"#).unwrap();
    re.captures(html).unwrap_or_else(|| panic!("no invitation link: {html}"))[1].replace("&amp;", "&")
}

/// Clinic A's admin invites `email`; the invited page's HTML.
pub async fn invite(app: &TestApp, email: &str) -> String {
    let csrf = app.browser.csrf("/admins").await;
    let response = app.browser.post_form("/admins/invite", &[("csrf", &csrf), ("email", email)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// Opens an invitation link in a browser: it is sent on to `/invitation`.
async fn open_link(browser: &Browser, link: &str) -> reqwest::Response {
    let response = browser.get(link).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{link}");
    assert_eq!(location(&response), "/invitation", "the token leaves the address");
    browser.get("/invitation").await
}

/// Chooses a password on the invitation page.
async fn set_password(browser: &Browser, password: &str, again: &str) -> reqwest::Response {
    let csrf = browser.csrf("/invitation").await;
    browser.post_form("/invitation", &[("csrf", &csrf), ("new_password", password), ("confirm_password", again)]).await
}

fn admin_ids(html: &str) -> Vec<String> {
    let re = regex::Regex::new(r#"<strong class="admin-email">([^<]+)</strong>"#).unwrap();
    re.captures_iter(html).map(|c| c[1].to_owned()).collect()
}

#[tokio::test]
async fn the_admins_page_lists_the_clinics_own_admins_with_their_sessions() {
    let app = spawn_app().await;
    app.create_admin("Clinic A", "second@clinic-a.test").await;
    let other = app.other_clinic_browser().await;
    app.login().await;

    let page = app.browser.get_text("/admins").await;
    assert_eq!(admin_ids(&page), ["admin@clinic-a.test", "second@clinic-a.test"], "{page}");
    assert!(page.contains("<title>Admins · Clinic A · clinic-connect</title>"), "{page}");
    assert!(page.contains(r#"<span class="tag">you</span>"#));
    assert!(page.contains("signed in on 1 device") && page.contains("not signed in"), "{page}");
    // Oneself cannot be removed from here; the other admin can.
    assert!(!page.contains(r#"href="/admins/1/remove/confirm""#), "{page}");
    assert!(page.contains(">Remove second@clinic-a.test…</a>"), "{page}");
    // Clinic B sees only its own.
    assert_eq!(admin_ids(&other.get_text("/admins").await), ["admin@clinic-b.test"]);
    // Signed out: sent to sign in.
    assert_eq!(location(&Browser::new(&app.address).get("/admins").await), "/login");
}

#[tokio::test]
async fn an_invitation_link_is_shown_once_works_once_and_makes_an_admin() {
    let app = spawn_app().await;
    app.login().await;
    let invited = invite(&app, " New.Admin@clinic-a.test ").await;
    assert_eq!(
        flash(&invited),
        kind("success", "The invitation is ready. Send this link to New.Admin@clinic-a.test."),
        "{invited}"
    );
    let link = invitation_link(&invited);
    assert!(link.starts_with(&format!("{}/invitation?token=", app.address)), "{link}");
    let token = link.split("token=").nth(1).unwrap().to_owned();
    assert!(invited.contains("This is the only time it is shown"), "{invited}");

    // Only its hash is stored; neither the logs nor the admins page carry it.
    assert!(!app.database_bytes().await.windows(token.len()).any(|w| w == token.as_bytes()));
    let admins = app.browser.get_text("/admins").await;
    assert!(!admins.contains(&token));
    assert!(admins.contains("New.Admin@clinic-a.test") && admins.contains("Invited by admin@clinic-a.test"));

    // The invitee, in a browser of their own.
    let invitee = Browser::new(&app.address);
    let page = open_link(&invitee, &link).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("Become an admin of Clinic A") && page.contains("New.Admin@clinic-a.test"), "{page}");
    assert!(!page.contains(&token), "the page does not repeat the token");

    // Passwords that will not do are refused, with a message, and the invitation stays usable.
    let short = set_password(&invitee, "too short", "too short").await;
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    let short = short.text().await.unwrap();
    assert_eq!(notice(&short, "form-error"), kind("error", "The password must be at least 12 characters long."));
    let differ = set_password(&invitee, "a long enough password", "another long password").await;
    assert_eq!(differ.status(), StatusCode::BAD_REQUEST);
    assert!(differ.text().await.unwrap().contains("The password and its confirmation differ."));

    let done = set_password(&invitee, "the invitee's own password", "the invitee's own password").await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&done), "/login?password_set=1");
    let login = invitee.get_text("/login?password_set=1").await;
    assert_eq!(
        notice(&login, "flash"),
        kind("success", "Your password is set. Sign in with your email and that password.")
    );
    invitee.login("new.admin@clinic-a.test", "the invitee's own password").await;
    let admins = invitee.get_text("/admins").await;
    assert_eq!(admin_ids(&admins), ["admin@clinic-a.test", "New.Admin@clinic-a.test"]);
    assert!(!admins.contains("Open invitations"), "the invitation is used up: {admins}");

    // Used once: the link, or its page, no longer works, in any browser.
    for browser in [&invitee, &Browser::new(&app.address)] {
        let again = browser.get(&link).await;
        assert_eq!(again.status(), StatusCode::NOT_FOUND);
        assert!(again.text().await.unwrap().contains("Invitation not valid"));
    }
    assert_eq!(invitee.get("/invitation").await.status(), StatusCode::NOT_FOUND);
    let logs = captured_logs();
    // The test's own HTTP client logs the cookies it receives (the invitation cookie holds the
    // token in the invitee's browser): those lines are the browser's, not the app's.
    let carrying: Vec<&str> = logs.lines().filter(|l| l.contains(&token) && !l.contains(" cookie_store::")).collect();
    assert!(carrying.is_empty(), "no log line carries the token: {carrying:#?}");
}

#[tokio::test]
async fn an_invitation_expires_after_48_hours() {
    let app = spawn_app().await;
    app.login().await;
    let link = invitation_link(&invite(&app, "late@clinic-a.test").await);
    let invitee = Browser::new(&app.address);
    assert_eq!(open_link(&invitee, &link).await.status(), StatusCode::OK);

    app.clock.advance(48 * 60 * 60 - 1);
    let csrf = invitee.csrf("/invitation").await;
    app.clock.advance(1);
    let page = invitee.get("/invitation").await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(page.text().await.unwrap().contains("links work for 48 hours"));
    let form = [
        ("csrf", csrf.as_str()),
        ("new_password", "a long enough password"),
        ("confirm_password", "a long enough password"),
    ];
    let refused = invitee.post_form("/invitation", &form).await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    assert!(!app.db.admin_exists("late@clinic-a.test").await.unwrap());
    assert_eq!(Browser::new(&app.address).get(&link).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_bad_address_an_existing_admin_or_a_forged_link_is_refused_with_a_message() {
    let app = spawn_app().await;
    app.create_admin("Clinic B", "admin@clinic-b.test").await;
    app.login().await;
    for (email, status, message) in [
        (
            "not an address",
            StatusCode::BAD_REQUEST,
            "That is not an email address: it needs a name, an @ and a domain, without spaces.",
        ),
        ("", StatusCode::BAD_REQUEST, "Enter an email address."),
        (
            "ADMIN@clinic-b.test",
            StatusCode::CONFLICT,
            "ADMIN@clinic-b.test is already an admin, so there is nobody to invite.",
        ),
    ] {
        let csrf = app.browser.csrf("/admins").await;
        let response = app.browser.post_form("/admins/invite", &[("csrf", &csrf), ("email", email)]).await;
        assert_eq!(response.status(), status, "{email}");
        let page = response.text().await.unwrap();
        assert_eq!(notice(&page, "form-error"), kind("error", message), "{email}");
    }
    assert!(app.db.invitations_of_clinic(1, 0).await.unwrap().is_empty());

    let stranger = Browser::new(&app.address);
    for link in
        ["/invitation?token=nonsense", "/invitation?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "/invitation"]
    {
        let page = stranger.get(link).await;
        assert_eq!(page.status(), StatusCode::NOT_FOUND, "{link}");
        assert!(page.text().await.unwrap().contains("This invitation link does not work"), "{link}");
    }
}

#[tokio::test]
async fn a_new_invitation_replaces_the_earlier_one_and_either_can_be_cancelled() {
    let app = spawn_app().await;
    app.login().await;
    let first = invitation_link(&invite(&app, "twice@clinic-a.test").await);
    let second = invitation_link(&invite(&app, "Twice@clinic-a.test").await);
    assert_ne!(first, second);
    let stranger = Browser::new(&app.address);
    assert_eq!(stranger.get(&first).await.status(), StatusCode::NOT_FOUND, "replaced");
    let admins = app.browser.get_text("/admins").await;
    assert_eq!(admins.matches("Cancel the invitation for").count(), 1, "{admins}");

    let csrf = app.browser.csrf("/admins").await;
    let form = [("csrf", csrf.as_str()), ("email", "twice@clinic-a.test")];
    let response = app.browser.post_form("/admins/invitations/cancel", &form).await;
    assert_eq!(location(&response), "/admins");
    let admins = app.browser.get_text("/admins").await;
    assert_eq!(
        flash(&admins),
        kind("success", "The invitation for twice@clinic-a.test was cancelled: its link no longer works.")
    );
    assert_eq!(stranger.get(&second).await.status(), StatusCode::NOT_FOUND, "cancelled");
    // Cancelling again says there is nothing to cancel.
    app.browser.post_form("/admins/invitations/cancel", &form).await;
    assert_eq!(flash(&app.browser.get_text("/admins").await).unwrap().0, "neutral");
}

#[tokio::test]
async fn an_invitation_to_another_clinics_admin_cannot_be_used_and_a_clinic_cancels_only_its_own() {
    let app = spawn_app().await;
    let other = app.other_clinic_browser().await;
    app.login().await;
    let link = invitation_link(&invite(&app, "both@clinic.test").await);
    // Clinic B cannot cancel clinic A's invitation.
    let csrf = other.csrf("/admins").await;
    other.post_form("/admins/invitations/cancel", &[("csrf", &csrf), ("email", "both@clinic.test")]).await;
    assert_eq!(app.db.invitations_of_clinic(1, 0).await.unwrap().len(), 1);

    // Meanwhile the address became an admin elsewhere: the invitation is then of no use.
    app.create_admin("Clinic B", "both@clinic.test").await;
    let invitee = Browser::new(&app.address);
    assert_eq!(open_link(&invitee, &link).await.status(), StatusCode::OK);
    let response = set_password(&invitee, "a long enough password", "a long enough password").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(response.text().await.unwrap().contains("already an admin"));
    assert_eq!(app.db.admin_by_email("both@clinic.test").await.unwrap().unwrap().clinic_name, "Clinic B");
}

#[tokio::test]
async fn removing_an_admin_asks_first_and_signs_them_out_on_every_instance() {
    let app = spawn_app().await;
    app.create_admin("Clinic A", "leaving@clinic-a.test").await;
    let leaving_id = app.db.admin_by_email("leaving@clinic-a.test").await.unwrap().unwrap().id;
    let second = app.second_instance().await;
    let leaving = Browser::new(&second);
    leaving.login("leaving@clinic-a.test", PASSWORD).await;
    app.login().await;

    // The confirmation names them and says what happens; it changes nothing.
    let confirm = format!("/admins/{leaving_id}/remove/confirm");
    let page = app.browser.get_text(&confirm).await;
    assert!(page.contains("<h1>Remove leaving@clinic-a.test?</h1>"), "{page}");
    assert!(page.contains("signed out of the 1 device they are signed in on"), "{page}");
    assert!(page.contains(r#"id="cancel-remove""#));
    assert_eq!(leaving.get("/connections").await.status(), StatusCode::OK);
    // Only a POST acts.
    assert_eq!(app.browser.get(&format!("/admins/{leaving_id}/remove")).await.status(), StatusCode::METHOD_NOT_ALLOWED);

    let csrf = hidden_field(&page, "csrf").unwrap();
    let response = app.browser.post_form(&format!("/admins/{leaving_id}/remove"), &[("csrf", &csrf)]).await;
    assert_eq!(location(&response), "/admins");
    let admins = app.browser.get_text("/admins").await;
    assert_eq!(
        flash(&admins),
        kind("success", "leaving@clinic-a.test is no longer an admin of Clinic A: they were signed out everywhere.")
    );
    assert_eq!(admin_ids(&admins), ["admin@clinic-a.test"]);
    // Signed out on the other instance at once, and unable to sign in again.
    assert_eq!(location(&leaving.get("/connections").await), "/login");
    assert_eq!(leaving.try_login("leaving@clinic-a.test", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    // Removing them again says so.
    app.browser.post_form(&format!("/admins/{leaving_id}/remove"), &[("csrf", &csrf)]).await;
    assert_eq!(flash(&app.browser.get_text("/admins").await), kind("neutral", "That admin had already been removed."));
    assert_eq!(app.browser.get(&confirm).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_admin_cannot_remove_themselves_nor_another_clinics_admin() {
    let app = spawn_app().await;
    app.create_admin("Clinic A", "second@clinic-a.test").await;
    let other = app.other_clinic_browser().await;
    let b_id = app.db.admin_by_email("admin@clinic-b.test").await.unwrap().unwrap().id;
    app.login().await;

    // Oneself: the confirmation page sends back with the reason, and the POST does nothing.
    let response = app.browser.get("/admins/1/remove/confirm").await;
    assert_eq!(location(&response), "/admins");
    let message = "You cannot remove yourself. Another admin of the clinic can, or you can change your password.";
    assert_eq!(flash(&app.browser.get_text("/admins").await), kind("error", message));
    let csrf = app.browser.csrf("/admins").await;
    app.browser.post_form("/admins/1/remove", &[("csrf", &csrf)]).await;
    assert_eq!(flash(&app.browser.get_text("/admins").await), kind("error", message));
    assert!(app.db.admin(1).await.unwrap().is_some());

    // Another clinic's admin is not found from here.
    assert_eq!(app.browser.get(&format!("/admins/{b_id}/remove/confirm")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.browser.get("/admins/nonsense/remove/confirm").await.status(), StatusCode::NOT_FOUND);
    app.browser.post_form(&format!("/admins/{b_id}/remove"), &[("csrf", &csrf)]).await;
    assert!(app.db.admin(b_id).await.unwrap().is_some());
    assert_eq!(other.get("/connections").await.status(), StatusCode::OK);
}
