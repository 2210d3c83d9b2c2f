//! `clinic-connect admin list | remove | reset-password`: the operator's view of every clinic's
//! admins, from the command line.

use anyhow::{bail, Context};
use clinic_connect::admins::{Email, NewPassword};
use clinic_connect::clock::{format_utc, SharedClock};
use clinic_connect::db::admins::Removal;
use clinic_connect::db::Db;
use secrecy::SecretString;

/// One line per admin, under a header; columns separated by tabs, so the output also reads
/// well in `cut` or a spreadsheet.
pub async fn list(db: &Db, clock: &SharedClock) -> anyhow::Result<()> {
    let admins = db.all_admins(clock.now()).await?;
    if admins.is_empty() {
        eprintln!("There are no admins yet: `clinic-connect admin create` makes one.");
        return Ok(());
    }
    println!("clinic\temail\tcreated\tlive sessions");
    for a in admins {
        println!("{}\t{}\t{}\t{}", a.clinic_name, a.email, format_utc(a.created_at), a.sessions);
    }
    Ok(())
}

pub async fn remove(db: &Db, email: &str) -> anyhow::Result<()> {
    let email = Email::parse(email).map_err(|problem| anyhow::anyhow!("--email: {problem}"))?;
    let admin = db.admin_by_email(email.as_str()).await?.with_context(|| format!("no admin has the email {email}"))?;
    match db.remove_admin(admin.clinic_id, admin.id).await? {
        Removal::Removed => {
            tracing::info!(admin_id = admin.id, actor = "cli", "admin removed");
            println!("Removed admin {} of clinic {}; their sessions ended.", admin.email, admin.clinic_name);
            Ok(())
        }
        Removal::LastAdmin => bail!(
            "{} is the last admin of clinic {}: a clinic keeps at least one admin (create another first)",
            admin.email,
            admin.clinic_name
        ),
        Removal::NotFound => bail!("no admin has the email {email} any more"),
    }
}

pub async fn reset_password(db: &Db, email: &str, password: SecretString) -> anyhow::Result<()> {
    let email = Email::parse(email).map_err(|problem| anyhow::anyhow!("--email: {problem}"))?;
    let password = NewPassword::parse(password).map_err(|problem| anyhow::anyhow!("{problem}"))?;
    let admin = db.admin_by_email(email.as_str()).await?.with_context(|| format!("no admin has the email {email}"))?;
    if !db.set_password(admin.id, &password.hash().await?, None).await? {
        bail!("no admin has the email {email} any more");
    }
    tracing::info!(admin_id = admin.id, actor = "cli", "admin password reset; their sessions ended");
    println!(
        "Set a new password for admin {} of clinic {}; every session of theirs ended.",
        admin.email, admin.clinic_name
    );
    Ok(())
}
