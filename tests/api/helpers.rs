//! Spawns the whole app on port 0 with a temp database, a manual clock and its own sandbox, and
//! drives it like a browser: cookies kept, redirects not followed.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use clinic_connect::auth::hash_password;
use clinic_connect::clock::ManualClock;
use clinic_connect::db::Db;
use clinic_connect::keys::generate_env_lines;
use clinic_connect::sandbox::{self, SandboxControl};
use clinic_connect::settings::Settings;
use clinic_connect::startup::{AppState, Application};
use reqwest::header::LOCATION;
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use tempfile::TempDir;
use url::Url;

pub const PASSWORD: &str = "correct horse battery staple";

/// Everything every test logs, at trace level, so a test can search it for secrets.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logging() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Everything at trace level, dependencies included: the binary additionally holds a few
        // wire-level dependencies at info, but the tests prove nothing leaks even without that.
        let buffer = log_buffer().clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_ansi(false)
            .with_writer(move || BufferWriter(buffer.clone()))
            .try_init();
    });
}

fn password_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password(&SecretString::from(PASSWORD)).unwrap()).clone()
}

pub struct TestApp {
    pub address: String,
    pub sandbox: SandboxControl,
    pub sandbox_url: String,
    pub clock: Arc<ManualClock>,
    pub db: Db,
    pub state: actix_web::web::Data<AppState>,
    /// What the app was built with: a second instance on the same database uses these.
    pub settings: Settings,
    pub data_dir: TempDir,
    /// Signed in as the admin of "Clinic A" once `login()` ran.
    pub browser: Browser,
}

/// Whether the suite runs on PostgreSQL (`CLINIC_CONNECT_TEST_ENGINE=postgres`, which
/// `./scripts/test` sets for its second pass) rather than SQLite.
pub fn on_postgres() -> bool {
    std::env::var("CLINIC_CONNECT_TEST_ENGINE").is_ok_and(|e| e == "postgres")
}

/// The throwaway PostgreSQL cluster `./scripts/test` starts (its `postgres` database's URL).
pub fn postgres_cluster() -> String {
    std::env::var("CLINIC_CONNECT_TEST_POSTGRES")
        .expect("CLINIC_CONNECT_TEST_POSTGRES is not set: run the tests with ./scripts/test, which starts PostgreSQL")
}

/// A fresh, empty database on the test cluster; its URL.
pub async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let cluster = postgres_cluster();
    let name =
        format!("cc_{}", clinic_connect::vault::random_token(12).unwrap().to_lowercase().replace(['-', '_'], "x"));
    let mut admin = sqlx::PgConnection::connect(&cluster).await.expect("the test cluster answers");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    let _ = admin.close().await;
    cluster.replacen("/postgres?", &format!("/{name}?"), 1)
}

/// The database URL a new test app uses: a fresh PostgreSQL database, or none (SQLite in the
/// app's data folder).
pub async fn test_database_url() -> Option<String> {
    if on_postgres() {
        Some(fresh_postgres_database().await)
    } else {
        None
    }
}

pub fn test_settings(data_dir: &std::path::Path, sandbox_url: &str) -> Settings {
    let keys = generate_env_lines().unwrap();
    let lines: std::collections::HashMap<String, String> =
        keys.lines().filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))).collect();
    let mut settings = Settings::from_map(&lines).unwrap();
    settings.listen = "127.0.0.1:0".into();
    settings.data_dir = data_dir.to_owned();
    settings.sandbox_listen = None;
    settings.sandbox_url = Some(Url::parse(&format!("{sandbox_url}/")).unwrap());
    settings.workers = 1;
    // A vendor that hangs is given up on quickly.
    settings.vendor_timeout_seconds = 2;
    // Tests run the background worker's rounds themselves (`worker::run_once`).
    settings.worker_interval_seconds = 24 * 60 * 60;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like `spawn_app`, with settings adjusted first (a configuration file, registrations…).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    init_logging();
    let clock = ManualClock::starting_now();
    let sandbox = sandbox::build("127.0.0.1:0", clock.clone(), 1).unwrap();
    let sandbox_url = sandbox.base_url.clone();
    let control = sandbox.control.clone();
    tokio::spawn(sandbox.server);

    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(data_dir.path(), &sandbox_url);
    settings.database_url = test_database_url().await.map(SecretString::from);
    adjust(&mut settings);
    let app = Application::build(settings.clone(), clock.clone()).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let db = app.db().clone();
    let state = app.state();
    tokio::spawn(app.run_until_stopped());

    let app = TestApp {
        browser: Browser::new(&address),
        address,
        sandbox: control,
        sandbox_url,
        clock,
        db,
        state,
        settings,
        data_dir,
    };
    app.create_admin("Clinic A", "admin@clinic-a.test").await;
    app
}

impl TestApp {
    pub async fn create_admin(&self, clinic: &str, email: &str) {
        let now = clinic_connect::clock::Clock::now(&*self.clock);
        let clinic_id = self.db.ensure_clinic(clinic, now).await.unwrap();
        self.db.insert_admin(clinic_id, email, &password_hash(), now).await.unwrap();
    }

    /// A second browser, signed in as the admin of another clinic.
    pub async fn other_clinic_browser(&self) -> Browser {
        self.create_admin("Clinic B", "admin@clinic-b.test").await;
        let b = Browser::new(&self.address);
        b.login("admin@clinic-b.test", PASSWORD).await;
        b
    }

    /// Signs clinic A's admin in (again, if the session ended; not if it is still live).
    pub async fn login(&self) {
        if self.browser.get("/connections").await.status() == StatusCode::OK {
            return;
        }
        self.browser.login("admin@clinic-a.test", PASSWORD).await;
    }

    /// A second instance of the app on the same database, keys, clock and sandbox; its address.
    pub async fn second_instance(&self) -> String {
        self.second_app().await.0
    }

    /// A second instance, with its services (to drive its background worker).
    pub async fn second_app(&self) -> (String, actix_web::web::Data<AppState>) {
        let second = Application::build(self.settings.clone(), self.clock.clone()).await.unwrap();
        let address = format!("http://127.0.0.1:{}", second.port());
        let state = second.state();
        tokio::spawn(second.run_until_stopped());
        (address, state)
    }

    /// A service API key of a clinic, as `clinic-connect apikey create` makes one.
    pub async fn api_key(&self, clinic_id: i64) -> String {
        let (key, hash) = clinic_connect::api::new_api_key().unwrap();
        let now = clinic_connect::clock::Clock::now(&*self.clock);
        let label = format!("test {}", &hash[..8]);
        self.db.insert_api_key(clinic_id, &hash, &label, now).await.unwrap().expect("a fresh label");
        key
    }

    pub fn token_requests(&self) -> usize {
        self.sandbox.requests_to("yappointment", "/oauth/token").len()
    }

    /// The full happy path for yAppointment: connect, approve, callback.
    pub async fn connect_yappointment(&self) {
        let authorize = self.browser.start_connect("yappointment").await;
        let callback = self.browser.consent(&authorize, "approve").await;
        let response = self.browser.get(callback.as_str()).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", response.text().await.unwrap());
        assert_eq!(location(&response), "/connections/yappointment");
    }

    /// What a search for plaintext secrets at rest looks through: on SQLite every file of the
    /// database (the main file, its -wal and -shm, freed pages included); on PostgreSQL, which
    /// has no file of ours to scan, every value of every row of every table, through SQL.
    pub async fn database_bytes(&self) -> Vec<u8> {
        let mut all = self.db.every_stored_value().await.unwrap();
        if !on_postgres() {
            for entry in std::fs::read_dir(self.data_dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.file_name().unwrap().to_string_lossy().starts_with("clinic-connect.db") {
                    all.extend(std::fs::read(&path).unwrap());
                }
            }
        }
        all
    }
}

/// A cookie-keeping client that does not follow redirects.
pub struct Browser {
    pub base: String,
    pub client: reqwest::Client,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        let client =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap();
        Self { base: base.to_owned(), client }
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_text(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.client.post(self.url(path)).form(form).send().await.unwrap()
    }

    /// The CSRF token a page of this session carries.
    pub async fn csrf(&self, page: &str) -> String {
        let html = self.get_text(page).await;
        hidden_field(&html, "csrf").unwrap_or_else(|| panic!("no csrf field on {page}: {html}"))
    }

    pub async fn login(&self, email: &str, password: &str) {
        let response = self.try_login(email, password).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "sign-in failed");
        assert_eq!(location(&response), "/connections");
    }

    pub async fn try_login(&self, email: &str, password: &str) -> Response {
        let csrf = self.csrf("/login").await;
        self.post_form("/login", &[("email", email), ("password", password), ("csrf", &csrf)]).await
    }

    /// POST connect; returns the vendor authorize URL we were sent to.
    pub async fn start_connect(&self, vendor: &str) -> Url {
        let csrf = self.csrf("/connections").await;
        let response = self.post_form(&format!("/connections/{vendor}/connect"), &[("csrf", &csrf)]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", response.text().await.unwrap());
        Url::parse(&location(&response)).unwrap()
    }

    /// Answers a sandbox consent page; returns where the vendor sends the browser back to.
    pub async fn consent(&self, authorize: &Url, decision: &str) -> Url {
        self.consent_as(authorize, decision, None).await
    }

    /// Like `consent`, signing in at the vendor with this email where its page asks for one.
    pub async fn consent_as(&self, authorize: &Url, decision: &str, email: Option<&str>) -> Url {
        let page = self.client.get(authorize.clone()).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{authorize}");
        let html = page.text().await.unwrap();
        let request = hidden_field(&html, "request").expect("consent page has a request field");
        let action = regex::Regex::new(r#"<form[^>]*action="([^"]+)""#).unwrap().captures(&html).unwrap()[1].to_owned();
        let consent = authorize.join(&action).unwrap();
        let mut form = vec![("request", request.as_str()), ("decision", decision)];
        if let Some(email) = email {
            form.push(("email", email));
        }
        let response = self.client.post(consent).form(&form).send().await.unwrap();
        assert!(response.status().is_redirection(), "consent answered {}", response.status());
        Url::parse(&location(&response)).unwrap()
    }

    /// Connect, consent and callback for a code-flow vendor; returns the callback's answer.
    pub async fn connect_code_flow(&self, vendor: &str, form: &[(&str, &str)]) -> Response {
        let authorize = self.start_connect_with(vendor, form).await;
        let callback = self.consent(&authorize, "approve").await;
        self.get(callback.as_str()).await
    }

    /// POST connect with extra fields; returns the vendor authorize URL we were sent to.
    pub async fn start_connect_with(&self, vendor: &str, form: &[(&str, &str)]) -> Url {
        let response = self.submit_connect(vendor, form).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", response.text().await.unwrap());
        Url::parse(&location(&response)).unwrap()
    }

    /// POST the connect form of a vendor's page with these fields (and the CSRF token).
    pub async fn submit_connect(&self, vendor: &str, form: &[(&str, &str)]) -> Response {
        let csrf = self.csrf(&format!("/connections/{vendor}")).await;
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post_form(&format!("/connections/{vendor}/connect"), &fields).await
    }

    /// Disconnects as a person does: the detail page's link, the confirmation page (which says
    /// what will happen and offers Cancel), then its form.
    pub async fn disconnect(&self, vendor: &str) -> Response {
        let confirm = format!("/connections/{vendor}/disconnect/confirm");
        let detail = self.get_text(&format!("/connections/{vendor}")).await;
        assert!(detail.contains(&format!(r#"href="{confirm}""#)), "no link to disconnect {vendor}: {detail}");
        let page = self.get(&confirm).await;
        assert_eq!(page.status(), StatusCode::OK, "the confirmation page of {vendor}");
        let html = page.text().await.unwrap();
        assert!(html.contains(&format!(r#"<form method="post" action="/connections/{vendor}/disconnect""#)), "{html}");
        assert!(html.contains(r#"id="cancel-disconnect""#) && html.contains("history is kept"), "{html}");
        let csrf = hidden_field(&html, "csrf").unwrap();
        self.post_disconnect_with(vendor, &csrf).await
    }

    /// POSTs the disconnect form without the pages before it (an old tab, a forged form), with
    /// this session's CSRF token.
    pub async fn post_disconnect(&self, vendor: &str) -> Response {
        let csrf = self.csrf(&format!("/connections/{vendor}")).await;
        self.post_disconnect_with(vendor, &csrf).await
    }

    async fn post_disconnect_with(&self, vendor: &str, csrf: &str) -> Response {
        self.post_form(&format!("/connections/{vendor}/disconnect"), &[("csrf", csrf)]).await
    }
}

pub fn location(response: &Response) -> String {
    response.headers().get(LOCATION).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let re = regex::Regex::new(&format!(r#"name="{name}" value="([^"]*)""#)).unwrap();
    re.captures(html).map(|c| c[1].to_owned())
}

pub fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// How many session rows (admins' and patients') the app's store holds.
pub async fn session_rows(app: &TestApp) -> i64 {
    app.db.session_count().await.unwrap()
}

/// `n` new clinics, each with a live yAppointment connection holding a real sandbox grant, sealed
/// and stored as a connect stores one (all in one transaction, for speed); the token expires at
/// `expires_at`. Their clinic ids.
pub async fn seed_yappointment(
    db: &Db,
    vault: &clinic_connect::vault::Vault,
    sandbox: &SandboxControl,
    n: usize,
    now: i64,
    expires_at: i64,
) -> Vec<i64> {
    use clinic_connect::connections::connection_binding;
    use clinic_connect::db::connections::{NewEvent, SealedGrant};
    let names: Vec<String> = (0..n).map(|i| format!("Seeded clinic {i:05} {}", &generate_suffix())).collect();
    let ids = db.ensure_clinics(&names, now).await.unwrap();
    let grants = sandbox.yappointment_grants(n);
    assert_eq!(grants.len(), n);
    let sealed: Vec<(i64, Vec<u8>, Vec<u8>)> = ids
        .iter()
        .zip(&grants)
        .map(|(clinic, grant)| {
            let binding = |column| connection_binding(*clinic, "yappointment", column);
            let access =
                vault.seal_str(&SecretString::from(grant.access_token.clone()), &binding("access_token")).unwrap();
            let refresh = grant.refresh_token.clone().unwrap();
            let refresh = vault.seal_str(&SecretString::from(refresh), &binding("refresh_token")).unwrap();
            (*clinic, access, refresh)
        })
        .collect();
    let rows: Vec<(SealedGrant<'_>, NewEvent<'_>)> = sealed
        .iter()
        .map(|(clinic, access, refresh)| {
            let grant = SealedGrant {
                clinic_id: *clinic,
                vendor: "yappointment",
                environment: "production",
                access_token: access,
                refresh_token: Some(refresh),
                token_type: "Bearer",
                scopes: "bookings:read services:read calendars:read customers:read",
                expires_at: Some(expires_at),
                account_name: Some(clinic_connect::sandbox::YAPPOINTMENT_COMPANY_NAME),
                identity_retry: false,
                client_id: None,
                client_secret: None,
                parameters: "{}",
                next_health_at: None,
                now,
            };
            (grant, NewEvent { kind: "connected", detail: "Connected (seeded)", actor: "test" })
        })
        .collect();
    for chunk in rows.chunks(2_000) {
        db.store_grants(chunk).await.unwrap();
    }
    ids
}

fn generate_suffix() -> String {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| clinic_connect::vault::random_token(6).unwrap()).clone()
}
