//! The admins' own pages in real browsers: an invitation taken from one browser to another,
//! and a password change that signs the admin out of their other browser. Every page visited
//! passes `webdriver::check_page` (axe-core at desktop and phone widths, no sideways scroll).

use fantoccini::error::CmdError;
use fantoccini::{Client, Locator};

use crate::helpers::{spawn_app, PASSWORD};
use crate::webdriver::{check_page, expect_ok, failure, visit, wait_for_path, wait_for_text, Chromium};

async fn text(c: &Client, css: &str) -> Result<String, CmdError> {
    c.find(Locator::Css(css)).await?.text().await
}

async fn type_into(c: &Client, id: &str, value: &str) -> Result<(), CmdError> {
    c.find(Locator::Id(id)).await?.send_keys(value).await
}

/// Clicks, waits for the page at `path` and checks it.
async fn click_to(c: &Client, id: &str, path: &str) -> Result<(), CmdError> {
    c.find(Locator::Id(id)).await?.click().await?;
    wait_for_path(c, path).await?;
    check_page(c).await
}

async fn sign_in(c: &Client, address: &str, email: &str, password: &str) -> Result<(), CmdError> {
    visit(c, &format!("{address}/login")).await?;
    type_into(c, "email", email).await?;
    type_into(c, "password", password).await?;
    click_to(c, "sign-in", "/connections").await
}

fn expect(condition: bool, message: impl Into<String>) -> Result<(), CmdError> {
    if condition {
        Ok(())
    } else {
        Err(failure(message))
    }
}

#[tokio::test]
async fn an_invitation_opened_in_a_second_browser_lets_the_invitee_set_a_password_and_sign_in() {
    let app = spawn_app().await;
    // A long address must wrap inside its card on a phone, not push the page sideways.
    app.create_admin("Clinic A", "a.colleague.with.a.rather.long.address@clinic-a.test").await;
    let admin = Chromium::start().await;
    let invitee = Chromium::start().await;

    let result = async {
        sign_in(&admin, &app.address, "admin@clinic-a.test", PASSWORD).await?;
        click_to(&admin, "nav-admins", "/admins").await?;
        expect(admin.title().await? == "Admins · Clinic A · clinic-connect", "the admins page's title")?;
        type_into(&admin, "invite-email", "new.admin@clinic-a.test").await?;
        click_to(&admin, "invite", "/admins/invite").await?;
        let flash = text(&admin, "#flash").await?;
        expect(flash == "✓ Done: The invitation is ready. Send this link to new.admin@clinic-a.test.", flash)?;
        let link = admin.find(Locator::Id("invitation-link")).await?.prop("value").await?.unwrap_or_default();
        expect(link.starts_with(&format!("{}/invitation?token=", app.address)), link.clone())?;
        click_to(&admin, "done", "/admins").await?;
        let invitations = text(&admin, "#invitations").await?;
        expect(invitations.contains("new.admin@clinic-a.test"), invitations)?;

        // The second browser opens the link: the token leaves the address at once.
        invitee.goto(&link).await?;
        wait_for_path(&invitee, "/invitation").await?;
        check_page(&invitee).await?;
        expect(invitee.current_url().await?.query().is_none(), "the token is still in the address")?;
        expect(invitee.title().await? == "Become an admin of Clinic A · clinic-connect", invitee.title().await?)?;
        expect(text(&invitee, "#invitee").await? == "new.admin@clinic-a.test", "the invitee's email")?;
        // A mistyped confirmation is refused with a message, on the same page.
        type_into(&invitee, "new-password", "the invitee's password").await?;
        type_into(&invitee, "confirm-password", "the invitee's passwore").await?;
        invitee.find(Locator::Id("set-password")).await?.click().await?;
        wait_for_text(&invitee, "#form-error", "× Error: The password and its confirmation differ.").await?;
        check_page(&invitee).await?;
        type_into(&invitee, "new-password", "the invitee's password").await?;
        type_into(&invitee, "confirm-password", "the invitee's password").await?;
        click_to(&invitee, "set-password", "/login").await?;
        let flash = text(&invitee, "#flash").await?;
        expect(flash == "✓ Done: Your password is set. Sign in with your email and that password.", flash)?;

        // Then signs in, and is one of the clinic's admins.
        type_into(&invitee, "email", "new.admin@clinic-a.test").await?;
        type_into(&invitee, "password", "the invitee's password").await?;
        click_to(&invitee, "sign-in", "/connections").await?;
        click_to(&invitee, "nav-admins", "/admins").await?;
        let admins = text(&invitee, "#admins").await?;
        expect(admins.contains("admin@clinic-a.test") && admins.contains("new.admin@clinic-a.test"), admins)?;

        // The link was used: opened again, it says so.
        visit(&invitee, &link).await?;
        expect(text(&invitee, "h1").await? == "Invitation not valid", "a used link")?;

        // The first admin removes the new one, after a confirmation; Cancel first changes nothing.
        visit(&admin, &format!("{}/admins", app.address)).await?;
        let id = app.db.admin_by_email("new.admin@clinic-a.test").await.unwrap().unwrap().id;
        let confirm = format!("/admins/{id}/remove/confirm");
        click_to(&admin, &format!("remove-{id}"), &confirm).await?;
        expect(text(&admin, "h1").await? == "Remove new.admin@clinic-a.test?", "the confirmation names them")?;
        click_to(&admin, "cancel-remove", "/admins").await?;
        click_to(&admin, &format!("remove-{id}"), &confirm).await?;
        click_to(&admin, "confirm-remove", "/admins").await?;
        let flash = text(&admin, "#flash").await?;
        expect(flash.contains("new.admin@clinic-a.test is no longer an admin of Clinic A"), flash)?;
        // The removed admin's browser is signed out.
        invitee.goto(&format!("{}/connections", app.address)).await?;
        wait_for_path(&invitee, "/login").await?;
        check_page(&invitee).await
    }
    .await;
    admin.close().await;
    invitee.close().await;
    expect_ok(result);
}

#[tokio::test]
async fn a_password_change_signs_the_admin_out_of_their_other_browser() {
    let app = spawn_app().await;
    let here = Chromium::start().await;
    let other = Chromium::start().await;
    let new = "a brand new password";

    let result = async {
        sign_in(&other, &app.address, "admin@clinic-a.test", PASSWORD).await?;
        sign_in(&here, &app.address, "admin@clinic-a.test", PASSWORD).await?;
        click_to(&here, "nav-account", "/account").await?;
        expect(text(&here, "#devices-heading").await? == "Signed in on 2 devices", "two devices")?;
        let devices = text(&here, "#devices").await?;
        expect(devices.matches("Chrome on Linux").count() >= 2 && devices.contains("this device"), devices)?;

        click_to(&here, "change-password", "/account/password").await?;
        // The wrong current password changes nothing.
        type_into(&here, "current-password", "not my password").await?;
        type_into(&here, "new-password", new).await?;
        type_into(&here, "confirm-password", new).await?;
        here.find(Locator::Id("save-password")).await?.click().await?;
        let problem = "× Error: Your current password is not that. Nothing was changed.";
        wait_for_text(&here, "#form-error", problem).await?;
        check_page(&here).await?;

        type_into(&here, "current-password", PASSWORD).await?;
        type_into(&here, "new-password", new).await?;
        type_into(&here, "confirm-password", new).await?;
        click_to(&here, "save-password", "/account").await?;
        let flash = text(&here, "#flash").await?;
        expect(flash == "✓ Done: Your password was changed, and you were signed out on 1 other device.", flash)?;
        expect(text(&here, "#devices-heading").await? == "Signed in on 1 device", "one device left")?;

        // The other browser is signed out; this one carries on.
        other.goto(&format!("{}/connections", app.address)).await?;
        wait_for_path(&other, "/login").await?;
        check_page(&other).await?;
        // It signs in with the new password, and "Sign out everywhere else" ends it again.
        type_into(&other, "email", "admin@clinic-a.test").await?;
        type_into(&other, "password", new).await?;
        click_to(&other, "sign-in", "/connections").await?;
        visit(&here, &format!("{}/account", app.address)).await?;
        click_to(&here, "end-others", "/account").await?;
        let flash = text(&here, "#flash").await?;
        expect(flash == "✓ Done: Signed out on 1 other device.", flash)?;
        other.goto(&format!("{}/admins", app.address)).await?;
        wait_for_path(&other, "/login").await
    }
    .await;
    here.close().await;
    other.close().await;
    expect_ok(result);
}
