//! An admin's own account: the devices they are signed in on (end one, or all but this one),
//! and a password change, which needs the current password and signs out every other device.

use reqwest::StatusCode;

use clinic_connect::session::store::open_state;
use clinic_connect::session::ADMIN_KIND;

use crate::admins::{flash, kind, notice};
use crate::helpers::{location, spawn_app, Browser, TestApp, PASSWORD};

const FIREFOX_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const EDGE_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0";

/// A browser that says it is `user_agent`, signed in as clinic A's admin (on `base`).
async fn signed_in_as(base: &str, user_agent: &str, password: &str) -> Browser {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .user_agent(user_agent)
        .build()
        .unwrap();
    let browser = Browser { base: base.to_owned(), client };
    browser.login("admin@clinic-a.test", password).await;
    browser
}

/// The session handles the account page's forms carry, in the page's order.
fn handles(html: &str) -> Vec<String> {
    let re = regex::Regex::new(r#"name="session" value="([^"]+)""#).unwrap();
    re.captures_iter(html).map(|c| c[1].to_owned()).collect()
}

fn devices(html: &str) -> Vec<String> {
    let re = regex::Regex::new(r#"<strong class="device">([^<]+)</strong>( <span class="tag">this device</span>)?"#)
        .unwrap();
    re.captures_iter(html).map(|c| format!("{}{}", &c[1], if c.get(2).is_some() { " (this)" } else { "" })).collect()
}

async fn change_password(browser: &Browser, current: &str, new: &str, again: &str) -> reqwest::Response {
    let csrf = browser.csrf("/account/password").await;
    let form =
        [("csrf", csrf.as_str()), ("current_password", current), ("new_password", new), ("confirm_password", again)];
    browser.post_form("/account/password", &form).await
}

async fn session_ids(app: &TestApp) -> Vec<String> {
    let now = clinic_connect::clock::Clock::now(&*app.clock);
    app.db.sessions_of_admin(1, now).await.unwrap().into_iter().map(|s| s.id).collect()
}

#[tokio::test]
async fn the_account_page_lists_the_devices_this_admin_is_signed_in_on() {
    let app = spawn_app().await;
    let laptop = signed_in_as(&app.address, FIREFOX_LINUX, PASSWORD).await;
    app.clock.advance(120);
    let phone = signed_in_as(&app.address, SAFARI_IPHONE, PASSWORD).await;
    // Another admin's sessions are not theirs.
    app.other_clinic_browser().await;

    let page = phone.get_text("/account").await;
    assert!(page.contains("<title>Your account · Clinic A · clinic-connect</title>"), "{page}");
    assert!(page.contains(">Signed in on 2 devices</h2>"), "{page}");
    assert_eq!(devices(&page), ["Safari on iPhone (this)", "Firefox on Linux"], "newest first");
    assert!(page.contains(r#"id="end-others""#));
    // Forms name a session by a handle, never by its id.
    let ids = session_ids(&app).await;
    assert_eq!(ids.len(), 2);
    assert_eq!(handles(&page).len(), 1, "only the other device can be ended from here");
    assert!(ids.iter().all(|id| !page.contains(id.as_str())));

    // Only the summary is kept in the (sealed) state: not the User-Agent.
    let now = clinic_connect::clock::Clock::now(&*app.clock);
    for row in app.db.sessions_of_admin(1, now).await.unwrap() {
        let state = open_state(&app.state.vault, &row.id, ADMIN_KIND, &row.state).unwrap();
        let all: String = state.values().cloned().collect();
        assert!(!all.contains("Mozilla") && !all.contains("Gecko"), "{all}");
    }

    // Without a User-Agent: an unknown device.
    let page = laptop.get_text("/account").await;
    assert_eq!(devices(&page), ["Safari on iPhone", "Firefox on Linux (this)"]);
    app.login().await;
    assert!(app.browser.get_text("/account").await.contains("Unknown device"));
}

#[tokio::test]
async fn an_admin_ends_one_other_session_or_every_other_one() {
    let app = spawn_app().await;
    let second = app.second_instance().await;
    let here = signed_in_as(&app.address, FIREFOX_LINUX, PASSWORD).await;
    let phone = signed_in_as(&second, SAFARI_IPHONE, PASSWORD).await;
    let tablet = signed_in_as(&second, EDGE_WINDOWS, PASSWORD).await;

    // End the phone's session from here.
    let page = here.get_text("/account").await;
    assert!(page.contains(">Signed in on 3 devices</h2>"), "{page}");
    let order = devices(&page);
    let phone_at = order.iter().filter(|d| !d.ends_with("(this)")).position(|d| d == "Safari on iPhone").unwrap();
    let handle = handles(&page)[phone_at].clone();
    let csrf = here.csrf("/account").await;
    let response = here.post_form("/account/sessions/end", &[("csrf", &csrf), ("session", &handle)]).await;
    assert_eq!(location(&response), "/account");
    let page = here.get_text("/account").await;
    let (notice_kind, text) = flash(&page).unwrap();
    assert_eq!(notice_kind, "success");
    assert!(text.starts_with("Signed out on Safari on iPhone (signed in "), "{text}");
    assert_eq!(location(&phone.get("/connections").await), "/login", "ended on the other instance at once");
    assert_eq!(tablet.get("/connections").await.status(), StatusCode::OK);
    // Ending it again, or a made-up handle, says it had ended.
    here.post_form("/account/sessions/end", &[("csrf", &csrf), ("session", &handle)]).await;
    assert_eq!(flash(&here.get_text("/account").await), kind("neutral", "That session had already ended."));
    here.post_form("/account/sessions/end", &[("csrf", &csrf), ("session", "nonsense")]).await;
    assert_eq!(flash(&here.get_text("/account").await), kind("neutral", "That session had already ended."));

    // Sign out everywhere else: the tablet goes, this one stays.
    let response = here.post_form("/account/sessions/end-others", &[("csrf", &csrf)]).await;
    assert_eq!(location(&response), "/account");
    let page = here.get_text("/account").await;
    assert_eq!(flash(&page), kind("success", "Signed out on 1 other device."));
    assert!(page.contains(">Signed in on 1 device</h2>") && page.contains(r#"id="only-here""#), "{page}");
    assert_eq!(location(&tablet.get("/connections").await), "/login");
    assert_eq!(here.get("/connections").await.status(), StatusCode::OK);
    here.post_form("/account/sessions/end-others", &[("csrf", &csrf)]).await;
    assert_eq!(flash(&here.get_text("/account").await), kind("neutral", "You were not signed in anywhere else."));
}

#[tokio::test]
async fn this_devices_own_session_is_not_ended_from_the_list() {
    let app = spawn_app().await;
    app.login().await;
    let page = app.browser.get_text("/account").await;
    assert!(handles(&page).is_empty(), "no form ends this device's session: {page}");
    // Even a form made up with this session's handle: the handle is found among the rows.
    let now = clinic_connect::clock::Clock::now(&*app.clock);
    let id = &app.db.sessions_of_admin(1, now).await.unwrap()[0].id;
    let own = clinic_connect::vault::lookup_hash(&format!("session-handle/v1/{id}"))[..32].to_owned();
    let csrf = app.browser.csrf("/account").await;
    app.browser.post_form("/account/sessions/end", &[("csrf", &csrf), ("session", &own)]).await;
    assert_eq!(
        flash(&app.browser.get_text("/account").await),
        kind("neutral", "That is this device: to end this session, use Sign out.")
    );
    assert_eq!(app.browser.get("/connections").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_signs_out_every_other_device() {
    let app = spawn_app().await;
    let second = app.second_instance().await;
    let here = signed_in_as(&app.address, FIREFOX_LINUX, PASSWORD).await;
    let elsewhere = signed_in_as(&second, SAFARI_IPHONE, PASSWORD).await;
    let new = "a brand new password";

    let page = here.get_text("/account/password").await;
    assert!(page.contains("<title>Change your password · Clinic A · clinic-connect</title>"), "{page}");
    for (current, new, again, message) in [
        ("wrong password!", new, new, "Your current password is not that. Nothing was changed."),
        (PASSWORD, "too short", "too short", "The password must be at least 12 characters long. Nothing was changed."),
        (
            PASSWORD,
            new,
            "something else entirely",
            "The new password and its confirmation differ. Nothing was changed.",
        ),
        (PASSWORD, PASSWORD, PASSWORD, "The new password is the one you have now. Choose another."),
    ] {
        let response = change_password(&here, current, new, again).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{message}");
        let page = response.text().await.unwrap();
        assert_eq!(notice(&page, "form-error"), kind("error", message));
        // What was typed is never shown back.
        assert!(!page.contains(current) && !page.contains(again), "{page}");
    }
    assert_eq!(elsewhere.get("/connections").await.status(), StatusCode::OK, "nothing changed");

    let response = change_password(&here, PASSWORD, new, new).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account");
    let page = here.get_text("/account").await;
    assert_eq!(flash(&page), kind("success", "Your password was changed, and you were signed out on 1 other device."));
    assert!(page.contains(">Signed in on 1 device</h2>"), "{page}");
    // The other device is signed out, on its instance, at once; this one carries on.
    assert_eq!(location(&elsewhere.get("/connections").await), "/login");
    assert_eq!(here.get("/connections").await.status(), StatusCode::OK);
    // The old password no longer signs in; the new one does.
    let fresh = Browser::new(&app.address);
    assert_eq!(fresh.try_login("admin@clinic-a.test", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    fresh.login("admin@clinic-a.test", new).await;
    let hash = app.db.admin_password_hash(1).await.unwrap().unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains(new));

    let newer = "yet another new password";
    change_password(&fresh, new, newer, newer).await;
    assert_eq!(
        flash(&fresh.get_text("/account").await),
        kind("success", "Your password was changed, and you were signed out on 1 other device.")
    );
    assert_eq!(location(&here.get("/connections").await), "/login");
    // With no other device, it says only that it was changed.
    let response = change_password(&fresh, newer, new, new).await;
    assert_eq!(location(&response), "/account");
    assert_eq!(flash(&fresh.get_text("/account").await), kind("success", "Your password was changed."));
}
