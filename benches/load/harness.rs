//! Starts the sandbox and the app in this process, the way the integration tests do
//! (`tests/api/helpers.rs`), but with the app's production worker count and logging off; and a
//! second instance of the app on the same database (as `tests/api/storm.rs` does).

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::web;
use clinic_connect::clock::ManualClock;
use clinic_connect::db::Db;
use clinic_connect::keys::generate_env_lines;
use clinic_connect::sandbox::{self, SandboxControl};
use clinic_connect::settings::Settings;
use clinic_connect::startup::{AppState, Application};
use secrecy::SecretString;
use tokio::task::JoinHandle;
use url::Url;

use crate::engine::FreshDatabase;

/// The app's server threads, as in production (`Settings::from_env`).
pub const APP_WORKERS: usize = 2;
/// The simulated vendor gets as many as `clinic-connect sandbox` gives it.
pub const SANDBOX_WORKERS: usize = 2;

pub struct SandboxHandle {
    pub url: String,
    pub control: SandboxControl,
    server: ServerHandle,
}

impl SandboxHandle {
    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

pub fn start_sandbox(clock: Arc<ManualClock>) -> anyhow::Result<SandboxHandle> {
    let sandbox = sandbox::build("127.0.0.1:0", clock, SANDBOX_WORKERS)?;
    let server = sandbox.server.handle();
    tokio::spawn(sandbox.server);
    Ok(SandboxHandle { url: sandbox.base_url, control: sandbox.control, server })
}

/// A running in-process app on its own database.
pub struct AppHandle {
    /// `http://127.0.0.1:{port}`, without a trailing slash.
    pub url: String,
    pub state: web::Data<AppState>,
    pub db: Db,
    /// The `CLINIC_CONNECT_TOKEN_KEYS` / `_SESSION_KEY` lines: a second process on the same
    /// database (the child-process phase) needs the same keys to open what this one sealed.
    pub key_lines: String,
    /// What it was built with: a second instance on the same database uses the same.
    settings: Settings,
    clock: Arc<ManualClock>,
    server: ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
}

impl AppHandle {
    pub fn now(&self) -> i64 {
        self.state.clock.now()
    }

    /// Stops the server and its background worker and closes the database.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.stop(true).await;
        self.task.await??;
        Ok(())
    }

    /// Another instance on the same database, keys, clock and vendors.
    pub async fn second_instance(&self) -> anyhow::Result<AppHandle> {
        launch(self.settings.clone(), self.clock.clone(), self.key_lines.clone()).await
    }
}

/// Like `tests/api/helpers.rs::test_settings`, with the production worker count.
fn settings(key_lines: &str, database: &FreshDatabase, vendors_url: &str) -> anyhow::Result<Settings> {
    let keys: HashMap<String, String> =
        key_lines.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let mut settings = Settings::from_map(&keys)?;
    settings.listen = "127.0.0.1:0".into();
    settings.data_dir = database.path().to_owned();
    settings.database_url = database.url.clone().map(SecretString::from);
    settings.sandbox_listen = None;
    settings.sandbox_url = Some(Url::parse(&format!("{}/", vendors_url.trim_end_matches('/')))?);
    settings.workers = APP_WORKERS;
    settings.vendor_timeout_seconds = 10;
    // The benchmark runs the refresh rounds itself (`worker::refresh_due`); the worker's own
    // first round would come a day after start.
    settings.worker_interval_seconds = 24 * 60 * 60;
    Ok(settings)
}

/// Builds and starts the app on a fresh database, its vendors at `vendors_url`.
pub async fn start_app(
    clock: Arc<ManualClock>,
    database: &FreshDatabase,
    vendors_url: &str,
) -> anyhow::Result<AppHandle> {
    let key_lines = generate_env_lines()?;
    launch(settings(&key_lines, database, vendors_url)?, clock, key_lines).await
}

async fn launch(settings: Settings, clock: Arc<ManualClock>, key_lines: String) -> anyhow::Result<AppHandle> {
    let app = Application::build(settings.clone(), clock.clone()).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    let (state, db, server) = (app.state(), app.db().clone(), app.server_handle());
    let task = tokio::spawn(app.run_until_stopped());
    Ok(AppHandle { url, state, db, key_lines, settings, clock, server, task })
}
