//! The operator's commands, run as the real binary on the test app's database: `admin create |
//! list | remove | reset-password`, `keys rotate` naming what it could not re-seal, every flag
//! described in `--help`, and logs without colour codes when they do not go to a terminal.

use std::process::Stdio;

use reqwest::StatusCode;
use secrecy::ExposeSecret;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::helpers::{location, spawn_app, Browser, TestApp, PASSWORD};

struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `clinic-connect <args>` on the app's database (its SQLite file, or its PostgreSQL
/// database), with `stdin` as its standard input and these extra variables.
async fn run(app: &TestApp, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clinic-connect"));
    command.args(args).env_clear().env("CLINIC_CONNECT_DATA_DIR", app.data_dir.path()).env("RUST_LOG", "info");
    if let Some(url) = &app.settings.database_url {
        command.env("CLINIC_CONNECT_DATABASE_URL", url.expose_secret());
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    Output {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn listed(stdout: &str) -> Vec<Vec<String>> {
    stdout.lines().skip(1).map(|l| l.split('\t').map(str::to_owned).collect()).collect()
}

#[tokio::test]
async fn admin_list_shows_every_clinics_admins_with_their_live_sessions() {
    let app = spawn_app().await;
    app.login().await;
    app.other_clinic_browser().await;
    let phone = Browser::new(&app.address);
    phone.login("admin@clinic-a.test", PASSWORD).await;

    let out = run(&app, &["admin", "list"], "", &[]).await;
    assert!(out.success, "{}", out.stderr);
    assert_eq!(out.stdout.lines().next(), Some("clinic\temail\tcreated\tlive sessions"));
    let rows = listed(&out.stdout);
    assert_eq!(rows.len(), 2, "{}", out.stdout);
    assert_eq!(
        (rows[0][0].as_str(), rows[0][1].as_str(), rows[0][3].as_str()),
        ("Clinic A", "admin@clinic-a.test", "2")
    );
    assert!(rows[0][2].ends_with(" UTC"), "{:?}", rows[0]);
    assert_eq!(
        (rows[1][0].as_str(), rows[1][1].as_str(), rows[1][3].as_str()),
        ("Clinic B", "admin@clinic-b.test", "1")
    );
}

#[tokio::test]
async fn admin_remove_ends_their_sessions_and_refuses_a_clinics_last_admin() {
    let app = spawn_app().await;
    let created = run(
        &app,
        &["admin", "create", "--clinic", "Clinic A", "--email", "second@clinic-a.test"],
        &format!("{PASSWORD}\n"),
        &[],
    )
    .await;
    assert!(created.success, "{}", created.stderr);
    let second = Browser::new(&app.address);
    second.login("second@clinic-a.test", PASSWORD).await;

    let removed = run(&app, &["admin", "remove", "--email", "Second@clinic-a.test"], "", &[]).await;
    assert!(removed.success, "{}", removed.stderr);
    assert!(removed.stdout.contains("Removed admin second@clinic-a.test of clinic Clinic A"), "{}", removed.stdout);
    assert_eq!(location(&second.get("/connections").await), "/login", "their session ended");
    assert_eq!(second.try_login("second@clinic-a.test", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);

    let last = run(&app, &["admin", "remove", "--email", "admin@clinic-a.test"], "", &[]).await;
    assert!(!last.success);
    assert!(last.stderr.contains("admin@clinic-a.test is the last admin of clinic Clinic A"), "{}", last.stderr);
    assert!(app.db.admin_exists("admin@clinic-a.test").await.unwrap());

    let unknown = run(&app, &["admin", "remove", "--email", "nobody@clinic-a.test"], "", &[]).await;
    assert!(!unknown.success);
    assert!(unknown.stderr.contains("no admin has the email nobody@clinic-a.test"), "{}", unknown.stderr);
}

#[tokio::test]
async fn admin_reset_password_reads_stdin_and_ends_every_session_of_theirs() {
    let app = spawn_app().await;
    app.login().await;
    let other = app.other_clinic_browser().await;
    let new = "a password set by the operator";

    let short = run(&app, &["admin", "reset-password", "--email", "admin@clinic-a.test"], "too short\n", &[]).await;
    assert!(!short.success);
    assert!(short.stderr.contains("at least 12 characters"), "{}", short.stderr);
    assert_eq!(app.browser.get("/connections").await.status(), StatusCode::OK, "nothing changed");

    let reset =
        run(&app, &["admin", "reset-password", "--email", "admin@clinic-a.test"], &format!("{new}\n"), &[]).await;
    assert!(reset.success, "{}", reset.stderr);
    assert!(reset.stdout.contains("every session of theirs ended"), "{}", reset.stdout);
    assert!(!reset.stdout.contains(new) && !reset.stderr.contains(new), "the password is never printed");
    assert_eq!(location(&app.browser.get("/connections").await), "/login");
    assert_eq!(other.get("/connections").await.status(), StatusCode::OK, "another admin's session stays");
    assert_eq!(app.browser.try_login("admin@clinic-a.test", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    app.browser.login("admin@clinic-a.test", new).await;

    let unknown =
        run(&app, &["admin", "reset-password", "--email", "nobody@clinic-a.test"], &format!("{new}\n"), &[]).await;
    assert!(!unknown.success);
    assert!(unknown.stderr.contains("no admin has the email nobody@clinic-a.test"), "{}", unknown.stderr);
}

#[tokio::test]
async fn keys_rotate_names_the_connections_it_could_not_re_seal() {
    let app = spawn_app().await;
    app.login().await;
    app.connect_yappointment().await;
    // A keyring without the key the connection was sealed under.
    let keys = clinic_connect::keys::generate_env_lines().unwrap();
    let env: Vec<(&str, &str)> = keys.lines().filter_map(|l| l.split_once('=')).collect();

    let out = run(&app, &["keys", "rotate"], "", &env).await;
    assert!(out.success, "{}", out.stderr);
    assert!(out.stdout.contains("could not be re-encrypted"), "{}", out.stdout);
    assert!(out.stdout.contains(r#"  clinic "Clinic A", vendor yappointment"#), "{}", out.stdout);
    assert_eq!(app.db.connection(1, "yappointment").await.unwrap().unwrap().status, "key_missing");
}

#[tokio::test]
async fn logs_carry_no_colour_codes_when_they_are_not_written_to_a_terminal() {
    let app = spawn_app().await;
    app.create_admin("Clinic A", "second@clinic-a.test").await;
    let out = run(&app, &["admin", "remove", "--email", "second@clinic-a.test"], "", &[]).await;
    assert!(out.success, "{}", out.stderr);
    // Logs go to standard error; standard output keeps only what the command says.
    let line = out.stderr.lines().find(|l| l.contains("admin removed")).unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(line.contains("INFO"), "{line}");
    assert!(!out.stdout.contains("admin removed"), "{}", out.stdout);
    assert!(!out.stdout.contains('\u{1b}') && !out.stderr.contains('\u{1b}'), "{:?}", out.stderr);
}

/// The options of a `--help` text: each with the words that describe it.
fn options(help: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut in_options = false;
    for line in help.lines() {
        if line == "Options:" {
            in_options = true;
            continue;
        }
        if in_options {
            let trimmed = line.trim_start();
            if trimmed.starts_with('-') {
                // `  -h, --help  Print help` or `      --email <EMAIL>  The email…`
                let (flag, description) = trimmed.split_once("  ").unwrap_or((trimmed, ""));
                found.push((flag.trim().to_owned(), description.trim().to_owned()));
            } else if let (Some(last), false) = (found.last_mut(), trimmed.is_empty()) {
                // A description on the next line (clap does that for long ones).
                if last.1.is_empty() {
                    last.1 = trimmed.to_owned();
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn every_flag_of_the_admin_and_keys_commands_has_a_description() {
    let app = spawn_app().await;
    for command in [
        &["admin"][..],
        &["admin", "create"],
        &["admin", "list"],
        &["admin", "remove"],
        &["admin", "reset-password"],
        &["keys"],
        &["keys", "generate"],
        &["keys", "rotate"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let out = run(&app, &args, "", &[]).await;
        assert!(out.success, "{command:?}: {}", out.stderr);
        let options = options(&out.stdout);
        assert!(options.iter().any(|(flag, _)| flag.contains("--help")), "{command:?}: {}", out.stdout);
        for (flag, description) in options {
            assert!(!description.is_empty(), "{command:?} {flag} has no description:\n{}", out.stdout);
        }
    }
    let help = run(&app, &["admin", "create", "--help"], "", &[]).await.stdout;
    assert!(help.contains("--clinic <CLINIC>") && help.contains("--email <EMAIL>"), "{help}");
}
