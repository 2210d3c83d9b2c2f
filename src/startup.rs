//! Build is separate from run: `Application::build` binds and wires everything; tests build on
//! port 0 with their own database, clock and sandbox.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_session::config::{BrowserSession, CookieContentSecurity, TtlExtensionPolicy};
use actix_session::SessionMiddleware;
use actix_web::cookie::SameSite;
use actix_web::dev::{Server, Service};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use url::Url;

use crate::backend_tokens::BackendTokens;
use crate::care::public::PublicBrowsing;
use crate::client_addr::TrustedProxies;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::errors::AppError;
use crate::health::HealthChecks;
use crate::log_throttle::LogThrottle;
use crate::metrics::Metrics;
use crate::session::csrf_cookie::CsrfCookie;
use crate::session::store::DbSessionStore;
use crate::session::{
    ABSOLUTE_TTL_SECONDS, ADMIN_KIND, IDLE_TTL_SECONDS, PATIENT_ABSOLUTE_TTL_SECONDS, PATIENT_IDLE_TTL_SECONDS,
    PATIENT_KIND,
};
use crate::settings::{Mode, Settings};
use crate::tokens::TokenService;
use crate::vault::Vault;
use crate::vendors::http::{outbound_client, VendorClient, WorkerClient};
use crate::vendors::Vendors;
use crate::{keys, routes, worker};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Everything a handler may need, shared by all workers.
pub struct AppState {
    pub db: Db,
    pub vault: Arc<Vault>,
    pub vendors: Arc<Vendors>,
    pub http: VendorClient,
    pub clock: SharedClock,
    pub public_url: Url,
    pub mode: Mode,
    /// The simulated vendors' base URL, in development.
    pub sandbox_url: Option<Url>,
    pub backend_tokens: BackendTokens,
    pub tokens: TokenService,
    /// The Zocdoc environment patients browse and log in with.
    pub care_environment: String,
    pub metrics: Arc<Metrics>,
    /// The bearer token `/metrics` asks for in production.
    pub metrics_token: Option<secrecy::SecretString>,
    /// CSRF tokens for forms shown before any session exists.
    pub csrf_cookie: CsrfCookie,
    /// Whose `X-Forwarded-For` names the client (`client_addr`).
    pub trusted_proxies: TrustedProxies,
    /// Shown on the patients' pages.
    pub clinic_name: String,
    /// Patients' browsing without a session: its cache and its per-address limit.
    pub care: PublicBrowsing,
    /// The warning about an unknown API key: once a minute per client address, not per request.
    pub unknown_api_keys: LogThrottle,
    /// When connections' health is checked at their vendors.
    pub health: HealthChecks,
}

pub struct Application {
    state: web::Data<AppState>,
    port: u16,
    public_url: Url,
    db: Db,
    server: Server,
    shutdown: watch::Sender<bool>,
    worker: JoinHandle<()>,
}

/// Client addresses whose unknown-key warnings are tracked at once (see `LogThrottle`).
const UNKNOWN_KEY_ADDRESSES: usize = 4096;

pub const PRODUCTION_COOKIE: &str = "__Host-clinic-connect";
pub const DEVELOPMENT_COOKIE: &str = "clinic-connect";
pub const PRODUCTION_PATIENT_COOKIE: &str = "__Host-clinic-connect-care";
pub const DEVELOPMENT_PATIENT_COOKIE: &str = "clinic-connect-care";

/// Server-side sessions: the cookie holds only an opaque id (encrypted by the session key),
/// HttpOnly, SameSite=Lax (Strict would drop it on the vendor's redirect back), Secure and
/// `__Host-` in production; the idle limit is enforced by the store.
fn sessions(
    store: DbSessionStore,
    key: &actix_web::cookie::Key,
    cookie: &str,
    production: bool,
    idle_seconds: i64,
) -> SessionMiddleware<DbSessionStore> {
    SessionMiddleware::builder(store, key.clone())
        .cookie_name(cookie.to_owned())
        .cookie_secure(production)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_path("/".to_owned())
        .cookie_domain(None)
        .cookie_content_security(CookieContentSecurity::Private)
        .session_lifecycle(
            BrowserSession::default()
                .state_ttl(actix_web::cookie::time::Duration::seconds(idle_seconds))
                .state_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
        )
        .build()
}

impl Application {
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        settings.check_production()?;
        let vendors = Arc::new(Vendors::build(&settings)?);
        let keys = keys::load(&settings)?;
        crate::files::create_data_dir(&settings.data_dir)?;
        let db = Db::open(&settings.database()).await?;
        let listener =
            TcpListener::bind(&settings.listen).with_context(|| format!("cannot listen on {}", settings.listen))?;
        let address = listener.local_addr()?;
        let public_url = match &settings.public_url {
            Some(url) => url.clone(),
            None => {
                let host =
                    if address.ip().is_unspecified() { "127.0.0.1".to_owned() } else { address.ip().to_string() };
                Url::parse(&format!("http://{host}:{}/", address.port()))?
            }
        };
        let vault = Arc::new(keys.vault);
        // Before anything is served: a connection whose secrets no configured key opens says so
        // at once, instead of looking connected until something needs it.
        crate::key_check::mark_unreadable_connections(&db, &vault, clock.now()).await?;
        let metrics = Arc::new(Metrics::default());
        let csrf_cookie = CsrfCookie::new(&keys.session_key, settings.mode.is_production())?;
        if settings.mode.is_production() && settings.clinic_name == crate::settings::DEFAULT_PRODUCTION_CLINIC_NAME {
            tracing::warn!(
                "CLINIC_CONNECT_CLINIC_NAME is not set: patients' pages say \"{}\"",
                crate::settings::DEFAULT_PRODUCTION_CLINIC_NAME
            );
        }
        let state = web::Data::new(AppState {
            db: db.clone(),
            vault: vault.clone(),
            vendors,
            http: VendorClient::new(Duration::from_secs(settings.vendor_timeout_seconds.max(1)), metrics.clone())?,
            clock: clock.clone(),
            public_url: public_url.clone(),
            mode: settings.mode,
            sandbox_url: settings.sandbox_url.clone(),
            backend_tokens: BackendTokens::default(),
            care_environment: settings.care_environment.clone(),
            tokens: TokenService::new(settings.vendor_timeout_seconds.max(1))?,
            care: PublicBrowsing::new(metrics.clone()),
            metrics,
            metrics_token: settings.metrics_token.clone(),
            csrf_cookie,
            trusted_proxies: settings.trusted_proxies.clone(),
            clinic_name: settings.clinic_name.clone(),
            unknown_api_keys: LogThrottle::new(60, UNKNOWN_KEY_ADDRESSES),
            health: HealthChecks::new(settings.health_interval_seconds),
        });
        let admin_store =
            DbSessionStore::new(db.clone(), vault.clone(), clock.clone(), ADMIN_KIND, ABSOLUTE_TTL_SECONDS);
        let patient_store =
            DbSessionStore::new(db.clone(), vault, clock.clone(), PATIENT_KIND, PATIENT_ABSOLUTE_TTL_SECONDS);
        let production = settings.mode.is_production();
        let state_handle = state.clone();
        let session_key = keys.session_key;
        let timeout = Duration::from_secs(settings.vendor_timeout_seconds.max(1));
        let worker_clients = (0..settings.workers.max(1))
            .map(|_| outbound_client(timeout).map(|c| web::Data::new(WorkerClient(c))))
            .collect::<Result<Vec<_>, _>>()?;
        let next_worker = Arc::new(AtomicUsize::new(0));
        let server = HttpServer::new(move || {
            let worker_client =
                worker_clients[next_worker.fetch_add(1, Ordering::Relaxed) % worker_clients.len()].clone();
            let admin_cookie = if production { PRODUCTION_COOKIE } else { DEVELOPMENT_COOKIE };
            let patient_cookie = if production { PRODUCTION_PATIENT_COOKIE } else { DEVELOPMENT_PATIENT_COOKIE };
            let admin_sessions =
                sessions(admin_store.clone(), &session_key, admin_cookie, production, IDLE_TTL_SECONDS);
            let patient_sessions =
                sessions(patient_store.clone(), &session_key, patient_cookie, production, PATIENT_IDLE_TTL_SECONDS);
            App::new()
                .app_data(state.clone())
                .app_data(worker_client)
                .app_data(web::FormConfig::default().limit(16 * 1024).error_handler(|_, _| {
                    AppError::BadRequest("The form could not be read. Go back, reload the page and try again.".into())
                        .into()
                }))
                .app_data(web::QueryConfig::default().error_handler(|_, _| {
                    AppError::BadRequest("The address has parameters that could not be read.".into()).into()
                }))
                .configure(routes::configure_sessionless)
                // Patients and admins have separate sessions (own cookie, own kind of row, own
                // limits): each page request passes through exactly one of the two.
                .service(
                    web::scope("/care")
                        .wrap(actix_web::middleware::from_fn(routes::error_pages::store_available))
                        .wrap(patient_sessions)
                        .configure(crate::care::routes::configure),
                )
                .service(
                    web::scope("")
                        // Inside the session (wrapped first): error pages read who is signed in.
                        .wrap(actix_web::middleware::from_fn(routes::error_pages::signed_in_header))
                        // Outside the error pages (which it marks too), inside the session.
                        .wrap(actix_web::middleware::from_fn(routes::attention::banner))
                        .wrap(actix_web::middleware::from_fn(routes::error_pages::store_available))
                        .wrap(admin_sessions)
                        .configure(routes::configure)
                        .default_service(web::to(|| async { Err::<actix_web::HttpResponse, _>(AppError::NotFound) })),
                )
                .wrap(security_headers(production))
                .wrap_fn(|req, srv| {
                    // Method, path and status only: a query string may carry a code or a state.
                    let method = req.method().clone();
                    let path = req.path().to_owned();
                    let started = Instant::now();
                    let response = srv.call(req);
                    async move {
                        let response = match response.await {
                            Ok(response) => response,
                            // An error outside any handler: the session middleware's, when the
                            // store cannot be read or written (actix-session answers an empty 500).
                            // A page that says what to do instead; the cause goes to the log.
                            Err(e) => {
                                tracing::error!(%method, %path, cause = %e, "request failed outside its handler");
                                let status = e.as_response_error().status_code();
                                return Err(if status.is_server_error() { AppError::Incomplete.into() } else { e });
                            }
                        };
                        tracing::info!(
                            %method,
                            %path,
                            status = response.status().as_u16(),
                            micros = started.elapsed().as_micros() as u64,
                            "request"
                        );
                        Ok(response)
                    }
                })
        })
        .workers(settings.workers.max(1))
        .shutdown_timeout(5)
        .listen(listener)?
        .run();

        let (shutdown, shutdown_rx) = watch::channel(false);
        let worker = worker::spawn(
            state_handle.clone(),
            Duration::from_secs(settings.worker_interval_seconds.max(1)),
            shutdown_rx,
        );
        Ok(Self { state: state_handle, port: address.port(), public_url, db, server, shutdown, worker })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn public_url(&self) -> &Url {
        &self.public_url
    }

    /// The services the handlers use, for tests and tools that drive them directly.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Serves until the server stops (Ctrl-C, SIGTERM, or its handle), then stops the
    /// background worker and waits for it.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let _ = self.shutdown.send(true);
        let _ = self.worker.await;
        self.db.close().await;
        result
    }

    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// On every response (a handler's own value wins). In production also HSTS: the app is only
/// ever reached over https there, and a browser that once saw it never tries plain http again.
fn security_headers(production: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"));
    if production {
        headers.add(("Strict-Transport-Security", HSTS))
    } else {
        headers
    }
}

/// A year, subdomains included.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";
