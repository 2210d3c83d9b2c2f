//! `clinic-connect`: the web app, its admin tools, and the vendor sandbox.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use clinic_connect::admins::{Email, NewPassword};
use clinic_connect::api_keys::{self, KeyLabel, KeyView};
use clinic_connect::auth::{hash_password, MIN_PASSWORD_LEN};
use clinic_connect::clock::{SharedClock, SystemClock};
use clinic_connect::db::Db;
use clinic_connect::settings::{settings_help, Settings};
use clinic_connect::startup::Application;
use clinic_connect::{keys, rotation, sandbox, telemetry};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

mod admin_cli;

/// Under `-h`: where the settings are explained.
const SETTINGS_POINTER: &str =
    "Settings come from the environment: `--help` lists every variable, its default and meaning.";

#[derive(Parser)]
#[command(
    name = "clinic-connect",
    version,
    about = "Holds a clinic's appointment-vendor connections, server-side.",
    after_help = SETTINGS_POINTER,
    after_long_help = settings_help()
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web app (the default). In development it also starts the sandbox vendors.
    #[command(after_help = SETTINGS_POINTER, after_long_help = settings_help())]
    Serve,
    /// Manage admins.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage service API keys.
    Apikey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Move the store to another database.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Run only the vendor sandbox.
    Sandbox,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Copy every row of the SQLite database (CLINIC_CONNECT_DATA_DIR, or CLINIC_CONNECT_DATABASE_URL)
    /// into an empty PostgreSQL database, then check the counts and that a sample of every sealed
    /// value opens with CLINIC_CONNECT_TOKEN_KEYS. Stop the app first: writes made during the copy
    /// are not copied.
    Copy {
        /// The empty PostgreSQL database, `postgres://…` (sslmode= in the URL as in production);
        /// may come from the environment instead, to keep a password off the command line.
        #[arg(long, env = "CLINIC_CONNECT_COPY_TO", hide_env_values = true)]
        to: String,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin of a clinic (creating the clinic if needed); the password is read from stdin.
    Create {
        /// The clinic's name (1–200 characters); a clinic of that name is created if there is none.
        #[arg(long)]
        clinic: String,
        /// The new admin's email, which they sign in with.
        #[arg(long)]
        email: String,
    },
    /// List every admin of every clinic: clinic, email, when added, live sessions.
    List,
    /// Remove an admin; their sessions end at once. A clinic's last admin is never removed.
    Remove {
        /// The email of the admin to remove.
        #[arg(long)]
        email: String,
    },
    /// Set an admin's password (read from stdin, like `admin create`); every session of theirs ends.
    ResetPassword {
        /// The email of the admin whose password is set.
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a fresh token keyring and session key, as environment lines.
    Generate,
    /// Re-encrypt every stored secret under the newest key of CLINIC_CONNECT_TOKEN_KEYS; safe
    /// while the app serves (with the same keyring).
    Rotate,
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a service API key for a clinic's own systems; it is shown once.
    Create {
        /// The clinic's name, as its admins were created with.
        #[arg(long)]
        clinic: String,
        /// Which system uses the key (1–60 characters); unique among the clinic's live keys.
        #[arg(long, default_value = "service")]
        label: String,
    },
    /// List a clinic's API keys: label, created, last used, revoked (never a key itself).
    List {
        /// The clinic's name, as its admins were created with.
        #[arg(long)]
        clinic: String,
    },
    /// Revoke a clinic's live API key: every request with it is refused from now on, on every instance.
    Revoke {
        /// The clinic's name, as its admins were created with.
        #[arg(long)]
        clinic: String,
        /// The label of the key to revoke (as `apikey list` shows it).
        #[arg(long)]
        label: String,
    },
}

const DEMO_CLINIC: &str = "Demo Clinic";
const DEMO_EMAIL: &str = "admin@demo.clinic";
const DEMO_PASSWORD: &str = "demo-password-1234";

fn main() {
    // Before the runtime starts any thread.
    keep_large_blocks_out_of_the_heap();
    telemetry::init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(Cli::parse())));
    if let Err(e) = result {
        eprintln!("clinic-connect: {e:#}");
        std::process::exit(1);
    }
}

/// argon2id allocates 19 MiB per verification. glibc raises its mmap threshold after freeing
/// the first such block, so later ones come from a thread's heap and stay resident there after
/// `free` (one per blocking thread that ever verified a password: hundreds of MiB). A fixed
/// 1 MiB threshold keeps large blocks in `mmap`, returned to the system when freed.
///
/// glibc also gives threads that allocate at the same moment heaps ("arenas") of their own, up
/// to eight per core, each keeping what was freed in it. The server workers, the blocking pool
/// and SQLite's connection threads made that 2–5 MiB of idle memory more or less from one start
/// to the next (idle on a database of 10,000 connections: 25.4–30.3 MiB); two arenas, one per
/// core of the machine this is sized for, held it at 23.2–25.7 MiB (seven starts) with the same
/// pages/s.
fn keep_large_blocks_out_of_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; it is called once, from `main`, before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let clock: SharedClock = Arc::new(SystemClock);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(Settings::from_env()?, clock).await,
        Command::Sandbox => {
            let settings = Settings::from_env()?;
            if settings.mode.is_production() {
                bail!("the sandbox does not run in production");
            }
            let listen = settings.sandbox_listen.unwrap_or_else(|| "127.0.0.1:8090".to_owned());
            let sandbox = sandbox::build(&listen, clock, 2)?;
            println!("Sandbox vendors at {}", sandbox.base_url);
            Ok(sandbox.server.await?)
        }
        Command::Keys { command: KeysCommand::Generate } => {
            print!("{}", keys::generate_env_lines()?);
            Ok(())
        }
        Command::Db { command: DbCommand::Copy { to } } => {
            let settings = Settings::from_env()?;
            let keys = keys::load(&settings)?;
            let source = Db::open(&settings.database()).await?;
            let mut target = settings.database();
            target.url = SecretString::from(to);
            let copied = clinic_connect::store_copy::copy(&source, &target, &keys.vault).await?;
            print!("{}", copied.report);
            println!("Copied; every count matches, and {} sealed records open in the copy.", copied.opened);
            Ok(())
        }
        Command::Keys { command: KeysCommand::Rotate } => {
            let settings = Settings::from_env()?;
            let keys = keys::load(&settings)?;
            let db = Db::open(&settings.database()).await?;
            let report = rotation::rotate(&db, &keys.vault, &clock).await?;
            println!("Key rotation to `{}`: {report}", keys.vault.current_key_id());
            if !report.key_missing.is_empty() {
                println!(
                    "These connections could not be re-encrypted: their secrets are under a key no longer in \
                     CLINIC_CONNECT_TOKEN_KEYS. They now show \"Key missing\"; each clinic's admin must reconnect them:"
                );
                for connection in &report.key_missing {
                    println!("  {connection}");
                }
            }
            Ok(())
        }
        Command::Apikey { command } => apikey(command, clock).await,
        Command::Admin { command: AdminCommand::Create { clinic, email } } => {
            let settings = Settings::from_env()?;
            create_admin(&settings, &clinic, &email, read_password()?, clock).await
        }
        Command::Admin { command: AdminCommand::List } => admin_cli::list(&open_db().await?, &clock).await,
        Command::Admin { command: AdminCommand::Remove { email } } => {
            admin_cli::remove(&open_db().await?, &email).await
        }
        Command::Admin { command: AdminCommand::ResetPassword { email } } => {
            let password = read_password()?;
            admin_cli::reset_password(&open_db().await?, &email, password).await
        }
    }
}

/// `clinic-connect apikey …`: the same keys as the clinic admin's "API keys" page.
async fn apikey(command: ApiKeyCommand, clock: SharedClock) -> anyhow::Result<()> {
    let clinic = match &command {
        ApiKeyCommand::Create { clinic, .. }
        | ApiKeyCommand::List { clinic }
        | ApiKeyCommand::Revoke { clinic, .. } => clinic.trim().to_owned(),
    };
    let settings = Settings::from_env()?;
    let db = Db::open(&settings.database()).await?;
    let clinic_id = db.clinic_id(&clinic).await?.with_context(|| format!("no clinic named {clinic}"))?;
    match command {
        ApiKeyCommand::Create { label, .. } => {
            let label = KeyLabel::parse(&label).map_err(|why| anyhow::anyhow!("--label: {why}"))?;
            let key = match api_keys::create(&db, clinic_id, &label, clock.now()).await {
                Ok(key) => key,
                Err(api_keys::CreateError::LabelTaken) => bail!(
                    "clinic {clinic} already has a live API key labelled {}; revoke it first or pick another label",
                    label.as_str()
                ),
                Err(e) => return Err(e.into()),
            };
            println!("{}", key.expose_secret());
            eprintln!("This key is shown once; store it in the clinic's system's secret store.");
        }
        ApiKeyCommand::List { .. } => {
            let keys: Vec<KeyView> = db.api_keys_of_clinic(clinic_id).await?.iter().map(KeyView::of).collect();
            if keys.is_empty() {
                eprintln!("Clinic {clinic} has no API keys.");
            } else {
                print!("{}", api_keys::table(&keys));
            }
        }
        ApiKeyCommand::Revoke { label, .. } => {
            let label = label.trim();
            if db.revoke_api_key(clinic_id, label, clock.now()).await? == 0 {
                bail!("clinic {clinic} has no live API key labelled {label} (see `clinic-connect apikey list`)");
            }
            println!(
                "Revoked the API key labelled {label} of clinic {clinic}: requests with it are refused from now on."
            );
        }
    }
    Ok(())
}

/// The store the settings name; these commands look at an existing one and never create it.
async fn open_db() -> anyhow::Result<Db> {
    let settings = Settings::from_env()?;
    if settings.database_in_data_dir() && !settings.database_path().exists() {
        bail!(
            "there is no database at {} (set CLINIC_CONNECT_DATA_DIR or CLINIC_CONNECT_DATABASE_URL)",
            settings.database_path().display()
        );
    }
    Db::open(&settings.database()).await
}

async fn serve(mut settings: Settings, clock: SharedClock) -> anyhow::Result<()> {
    let mut sandbox_server = None;
    if let (Some(listen), false) = (&settings.sandbox_listen, settings.mode.is_production()) {
        let sandbox = sandbox::build(listen, clock.clone(), 1)?;
        settings.sandbox_url = Some(Url::parse(&format!("{}/", sandbox.base_url))?);
        println!("Sandbox vendors at {}", sandbox.base_url);
        sandbox_server = Some(sandbox.server);
    }
    let development = !settings.mode.is_production();
    let app = Application::build(settings.clone(), clock.clone()).await?;
    if development {
        ensure_demo_admin(app.db(), &clock).await?;
        println!("clinic-connect is running at {}", app.public_url());
        println!("Sign in as {DEMO_EMAIL} with password {DEMO_PASSWORD} (development only)");
    } else {
        tracing::info!(url = %app.public_url(), "clinic-connect is running");
    }
    // The server stops on Ctrl-C or SIGTERM; then the worker and the sandbox stop too.
    match sandbox_server {
        Some(sandbox) => {
            let sandbox_handle = sandbox.handle();
            tokio::spawn(sandbox);
            let result = app.run_until_stopped().await;
            sandbox_handle.stop(true).await;
            Ok(result?)
        }
        None => Ok(app.run_until_stopped().await?),
    }
}

async fn ensure_demo_admin(db: &Db, clock: &SharedClock) -> anyhow::Result<()> {
    if db.admin_exists(DEMO_EMAIL).await? {
        return Ok(());
    }
    let clinic = db.ensure_clinic(DEMO_CLINIC, clock.now()).await?;
    let hash = hash_password(&SecretString::from(DEMO_PASSWORD))?;
    db.insert_admin(clinic, DEMO_EMAIL, &hash, clock.now()).await?;
    Ok(())
}

fn read_password() -> anyhow::Result<SecretString> {
    if std::io::stdin().is_terminal() {
        eprintln!("Password (at least {MIN_PASSWORD_LEN} characters), then Enter:");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
    Ok(SecretString::from(line.trim_end_matches(['\r', '\n']).to_owned()))
}

async fn create_admin(
    settings: &Settings,
    clinic: &str,
    email: &str,
    password: SecretString,
    clock: SharedClock,
) -> anyhow::Result<()> {
    let clinic = clinic.trim();
    if clinic.is_empty() || clinic.chars().count() > 200 {
        bail!("--clinic must be 1–200 characters");
    }
    let email = Email::parse(email).map_err(|problem| anyhow::anyhow!("--email: {problem}"))?;
    let password = NewPassword::parse(password).map_err(|problem| anyhow::anyhow!("{problem}"))?;
    clinic_connect::files::create_data_dir(&settings.data_dir)?;
    let db = Db::open(&settings.database()).await?;
    if db.admin_exists(email.as_str()).await? {
        bail!("an admin with the email {email} already exists");
    }
    let clinic_id = db.ensure_clinic(clinic, clock.now()).await?;
    db.insert_admin(clinic_id, email.as_str(), &password.hash().await?, clock.now()).await?;
    println!("Created admin {email} of clinic {clinic}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_apikey_flag_says_what_it_is() {
        let cli = Cli::command();
        let apikey = cli.find_subcommand("apikey").into_iter().flat_map(|c| c.get_subcommands());
        let mut flags = 0;
        for command in apikey {
            assert!(command.get_about().is_some(), "apikey {} has no description", command.get_name());
            for arg in command.get_arguments().filter(|a| a.get_long().is_some()) {
                flags += 1;
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                assert!(help.len() > 10, "apikey {} --{} has no description", command.get_name(), arg.get_id());
            }
        }
        assert_eq!(flags, 5, "create (clinic, label), list (clinic), revoke (clinic, label)");
    }

    #[test]
    fn help_lists_every_setting_under_serve_and_at_the_top() {
        for args in [&["clinic-connect", "serve", "--help"][..], &["clinic-connect", "--help"][..]] {
            let Err(help) = Cli::try_parse_from(args) else { panic!("{args:?} prints help") };
            let help = help.to_string();
            for setting in clinic_connect::settings::SETTINGS {
                for name in setting.names {
                    assert!(help.contains(name), "{args:?} does not list {name}:\n{help}");
                }
            }
        }
        let Err(short) = Cli::try_parse_from(["clinic-connect", "serve", "-h"]) else { panic!("-h prints help") };
        assert!(short.to_string().contains("--help` lists every variable"), "{short}");
    }
}
