//! A strict, in-process simulator of the appointment vendors.
//!
//! It runs as its own actix-web server on its own port. Each vendor lives under its own
//! path prefix (`/yappointment`, `/zocdoc` for Zocdoc production, `/zocdoc-sandbox` for
//! Zocdoc's sandbox environment, `/drchrono`, `/docplanner/{domain}`, `/qmatic/{region}`)
//! and behaves exactly as that vendor's documentation (`vendor-docs/`) says, refusing what
//! the real vendor would refuse. Tokens carry each vendor's recognisable prefix
//! (`yapp_at_`, `zd_at_`, `zd_cc_`, `zd_anon_`, `drc_at_`, `dp_at_`, `qm_at_`, ...). Tests drive it through
//! [`SandboxControl`]: every request is recorded (before any validation or injected
//! failure), and failures can be injected per vendor endpoint.
//!
//! The sandbox never logs a token, code, verifier, challenge, state, secret, anonymous
//! token or email: the only log line per request names the method, the matched route
//! pattern and the status.

mod authorize;
mod docplanner;
mod drchrono;
mod failure;
mod http;
mod pages;
mod pkce;
mod qmatic;
mod recorder;
mod redirect_uri;
#[cfg(test)]
mod tests;
mod tokens;
mod yappointment;
mod zocdoc;

use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{middleware, web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context as _;
use ring::rand::SystemRandom;

use crate::clock::SharedClock;

pub use failure::{Endpoint, Failure};
pub use recorder::RecordedRequest;

use failure::FailureTable;
use recorder::Recorder;
use tokens::OAuthStore;

// --- yAppointment -------------------------------------------------------------------------

/// The client id the sandbox's yAppointment accepts.
pub const YAPPOINTMENT_CLIENT_ID: &str = "clinic-connect-sandbox";
/// The client secret the sandbox's yAppointment accepts. The `yapp_cs_` prefix lets tests
/// search logs and databases for it.
pub const YAPPOINTMENT_CLIENT_SECRET: &str = "yapp_cs_sandbox_9f3c1e7a5b2d4068";
/// The company whose admin grants consent in the sandbox.
pub const YAPPOINTMENT_COMPANY_NAME: &str = "Maple Street Clinic";
/// The stable id of that company, as `POST /api/v1/me` reports it.
pub const YAPPOINTMENT_COMPANY_ID: &str = "cmp_5f2a9c71d3e84b06";

// --- Zocdoc: `/zocdoc` simulates production, `/zocdoc-sandbox` Zocdoc's sandbox environment --

/// Production's public SPA client (authorization code + PKCE, no secret).
pub const ZOCDOC_SPA_CLIENT_ID: &str = "zd-spa-production";
/// The sandbox environment's public SPA client.
pub const ZOCDOC_SANDBOX_SPA_CLIENT_ID: &str = "zd-spa-sandbox";
/// Production's backend client (client credentials).
pub const ZOCDOC_BACKEND_CLIENT_ID: &str = "zd-backend-production";
pub const ZOCDOC_BACKEND_CLIENT_SECRET: &str = "zd_cs_production_5b8e1f2a7c9d4036";
/// The sandbox environment's backend client.
pub const ZOCDOC_SANDBOX_BACKEND_CLIENT_ID: &str = "zd-backend-sandbox";
pub const ZOCDOC_SANDBOX_BACKEND_CLIENT_SECRET: &str = "zd_cs_sandbox_0e7d3a9c4b1f6285";
/// The `audience` production's authorize endpoint requires.
pub const ZOCDOC_USER_AUDIENCE: &str = "DeveloperApiPatient";
/// The `audience` the sandbox environment's authorize endpoint requires.
pub const ZOCDOC_SANDBOX_USER_AUDIENCE: &str = "DeveloperApiPatient-Sandbox";
/// The `audience` of production's client-credentials requests.
pub const ZOCDOC_API_AUDIENCE: &str = "https://api-developer.zocdoc.com/";
/// The `audience` of the sandbox environment's client-credentials requests.
pub const ZOCDOC_SANDBOX_API_AUDIENCE: &str = "https://api-developer-sandbox.zocdoc.com/";

// --- DrChrono -----------------------------------------------------------------------------

/// DrChrono's confidential client.
pub const DRCHRONO_CLIENT_ID: &str = "drc-sandbox-client";
pub const DRCHRONO_CLIENT_SECRET: &str = "drc_cs_sandbox_7a4c2e9b1d5f3086";
/// Every scope DrChrono knows, in the order its documentation lists them.
pub const DRCHRONO_SCOPES: &[&str] = &[
    "labs:read",
    "labs:write",
    "messages:read",
    "messages:write",
    "patients:read",
    "patients:write",
    "patients:summary:read",
    "patients:summary:write",
    "settings:read",
    "settings:write",
    "tasks:read",
    "tasks:write",
    "user:read",
    "user:write",
    "billing:patient-payment:read",
    "billing:patient-payment:write",
    "billing:read",
    "billing:write",
    "calendar:read",
    "calendar:write",
    "clinical:read",
    "clinical:write",
];
/// The DrChrono user who grants consent in the sandbox.
pub const DRCHRONO_USERNAME: &str = "drrivera";

// --- Docplanner: `/docplanner/{domain}` -----------------------------------------------------

/// Docplanner's country domains (`https://www.{domain}/oauth/v2/token`).
pub const DOCPLANNER_DOMAINS: &[&str] = &[
    "znanylekarz.pl",
    "doctoralia.es",
    "doctoralia.com.br",
    "doctoralia.com.mx",
    "miodottore.it",
    "jameda.de",
    "doktortakvimi.com",
    "doctoralia.pt",
    "doctoralia.cl",
    "doctoralia.co",
];
/// The domain where the sandbox's test credentials are registered.
pub const DOCPLANNER_DOMAIN: &str = "znanylekarz.pl";
pub const DOCPLANNER_CLIENT_ID: &str = "dp-sandbox-clinic";
/// Contains `+`, `/` and `=`: a client that url-encodes it before Basic fails.
pub const DOCPLANNER_CLIENT_SECRET: &str = "dp_cs_Zn4+k/Q8=w7e";
/// The facility the test credentials belong to.
pub const DOCPLANNER_FACILITY_NAME: &str = "Centrum Medyczne Zdrowie";

// --- Qmatic Cloud Appointments: `/qmatic/{region}` ------------------------------------------

/// Qmatic's regions (`https://api.{region}.qmatic.io/oauth2/token`).
pub const QMATIC_REGIONS: &[&str] = &["eu-west-1", "eu-central-1", "us-east-1", "ap-southeast-2"];
/// The region where the sandbox's test credentials are registered.
pub const QMATIC_REGION: &str = "eu-west-1";
pub const QMATIC_CLIENT_ID: &str = "qm-sandbox-clinic";
/// Contains `/`, `+` and `=`: a client that url-encodes it before Basic fails.
pub const QMATIC_CLIENT_SECRET: &str = "qm_cs_9Rt/e+2Lx=";
/// The account name as the admin knows it; `X-ACCOUNT` is this lower-cased without spaces.
pub const QMATIC_ACCOUNT_NAME: &str = "Northside Health";
/// The scopes Qmatic grants.
pub const QMATIC_SCOPES: &[&str] = &[
    "com.qmatic.saas.appointments/external.appointment.book",
    "com.qmatic.saas.appointments/external.appointment.reschedule",
    "com.qmatic.saas.appointments/external.appointment.cancel",
];

/// Largest request body the sandbox reads; anything bigger is answered with 413.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// One simulated vendor, as the index page and the recorder know it.
pub(crate) struct VendorInfo {
    /// The recorder's vendor name: the first path segment.
    pub(crate) id: &'static str,
    /// `/{id}`.
    pub(crate) prefix: &'static str,
    /// Where its endpoints live, for people (`/docplanner/{domain}`).
    pub(crate) base: &'static str,
    pub(crate) summary: &'static str,
}

/// The simulated vendors.
pub(crate) const VENDORS: &[VendorInfo] = &[
    VendorInfo {
        id: yappointment::VENDOR,
        prefix: "/yappointment",
        base: "/yappointment",
        summary: "authorization code + PKCE (S256), confidential client, JSON token requests, \
                  rotating refresh tokens, revocation",
    },
    VendorInfo {
        id: zocdoc::PRODUCTION.vendor,
        prefix: zocdoc::PRODUCTION.prefix,
        base: zocdoc::PRODUCTION.prefix,
        summary: "Zocdoc production: public SPA client with authorization code + PKCE (S256 only) and an \
                  audience, anonymous-user tokens, backend client credentials with an audience, JSON bodies; \
                  providers with locations in their own time zones, availability, booking once per time with \
                  an Idempotency-Key and the write scope, cancellation",
    },
    VendorInfo {
        id: zocdoc::SANDBOX.vendor,
        prefix: zocdoc::SANDBOX.prefix,
        base: zocdoc::SANDBOX.prefix,
        summary: "Zocdoc's sandbox environment: as production, with its own credentials and audiences",
    },
    VendorInfo {
        id: drchrono::VENDOR,
        prefix: "/drchrono",
        base: "/drchrono",
        summary: "authorization code (confidential client, optional S256 PKCE), form bodies with the \
                  secret in the body, long scope list, rotating refresh tokens, revocation",
    },
    VendorInfo {
        id: docplanner::VENDOR,
        prefix: "/docplanner",
        base: "/docplanner/{domain}",
        summary: "client credentials per country domain, raw HTTP Basic, form body \
                  grant_type=client_credentials&scope=integration, token_type \"bearer\"",
    },
    VendorInfo {
        id: qmatic::VENDOR,
        prefix: "/qmatic",
        base: "/qmatic/{region}",
        summary: "Qmatic Cloud Appointments: client credentials per region, raw HTTP Basic, form body, \
                  X-ACCOUNT header, space-separated scopes, refresh tokens",
    },
];

/// A built, not yet running sandbox server.
pub struct Sandbox {
    pub port: u16,
    /// `http://{ip}:{port}` of the bound address.
    pub base_url: String,
    pub control: SandboxControl,
    /// Not yet spawned: the caller runs it, e.g. `tokio::spawn(sandbox.server)`.
    pub server: actix_web::dev::Server,
}

/// Binds `listen` (port 0 picks a free port) and returns the server without running it.
pub fn build(listen: &str, clock: SharedClock, workers: usize) -> anyhow::Result<Sandbox> {
    let listener = TcpListener::bind(listen).with_context(|| format!("binding the sandbox to {listen}"))?;
    let addr = listener.local_addr().context("reading the sandbox's bound address")?;

    let shared = Arc::new(Shared::new(clock));
    let data = web::Data::from(Arc::clone(&shared));

    let server = HttpServer::new(move || app(data.clone()))
        .workers(workers.max(1))
        .shutdown_timeout(1)
        .listen(listener)
        .context("starting the sandbox listener")?
        .run();

    Ok(Sandbox {
        port: addr.port(),
        base_url: format!("http://{addr}"),
        control: SandboxControl { inner: shared },
        server,
    })
}

/// The sandbox application: every vendor under its prefix, recorded and logged.
fn app(
    data: web::Data<Shared>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(data)
        .app_data(web::PayloadConfig::new(BODY_LIMIT))
        .wrap(middleware::from_fn(recorder::record_and_log))
        .route("/", web::get().to(index))
        .route("/credentials.json", web::get().to(credentials))
        .service(yappointment::scope())
        .service(zocdoc::scope(&zocdoc::PRODUCTION))
        .service(zocdoc::scope(&zocdoc::SANDBOX))
        .service(drchrono::scope())
        .service(docplanner::scope())
        .service(qmatic::scope())
        .default_service(web::to(not_found))
}

/// State shared by every worker of one sandbox.
pub(crate) struct Shared {
    pub(crate) clock: SharedClock,
    pub(crate) rng: SystemRandom,
    pub(crate) recorder: Recorder,
    pub(crate) failures: Mutex<FailureTable>,
    pub(crate) yappointment: Mutex<OAuthStore>,
    pub(crate) zocdoc: Mutex<OAuthStore>,
    pub(crate) zocdoc_sandbox: Mutex<OAuthStore>,
    /// (anonymous token, email) of every Zocdoc sign-in that linked an anonymous session.
    pub(crate) zocdoc_links: Mutex<Vec<(String, String)>>,
    /// Zocdoc's bookings, both environments.
    pub(crate) zocdoc_desk: Mutex<zocdoc::booking::Desk>,
    pub(crate) drchrono: Mutex<OAuthStore>,
    pub(crate) docplanner: Mutex<OAuthStore>,
    pub(crate) qmatic: Mutex<OAuthStore>,
    /// Answers to hold back after handling: (vendor, path, for how long, how many more).
    pub(crate) held: Mutex<Vec<(String, String, std::time::Duration, u32)>>,
    /// How many held answers were handled (the vendor's work done, e.g. a rotation) so far.
    pub(crate) held_handled: std::sync::atomic::AtomicUsize,
    /// The `iss` (RFC 9207) each vendor's consent adds to its redirects back, when set.
    pub(crate) issuers: Mutex<std::collections::HashMap<String, String>>,
}

/// Locks a mutex, ignoring poisoning (a panicking handler leaves consistent maps behind).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            rng: SystemRandom::new(),
            recorder: Recorder::default(),
            failures: Mutex::new(FailureTable::default()),
            yappointment: Mutex::new(OAuthStore::new(yappointment::PROFILE)),
            zocdoc: Mutex::new(OAuthStore::new(zocdoc::PROFILE)),
            zocdoc_sandbox: Mutex::new(OAuthStore::new(zocdoc::PROFILE)),
            zocdoc_links: Mutex::new(Vec::new()),
            zocdoc_desk: Mutex::new(zocdoc::booking::Desk::default()),
            drchrono: Mutex::new(OAuthStore::new(drchrono::PROFILE)),
            docplanner: Mutex::new(OAuthStore::new(docplanner::PROFILE)),
            qmatic: Mutex::new(OAuthStore::new(qmatic::PROFILE)),
            held: Mutex::new(Vec::new()),
            held_handled: std::sync::atomic::AtomicUsize::new(0),
            issuers: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The injected failure for this call of (vendor, endpoint), if any, as a response.
    pub(crate) async fn inject(&self, req: &HttpRequest, vendor: &str, endpoint: Endpoint) -> Option<HttpResponse> {
        let failure = lock(&self.failures).take(vendor, endpoint)?;
        tracing::info!(vendor, ?endpoint, kind = failure.kind(), "sandbox injecting failure");
        Some(failure::respond(failure, endpoint, req.path()).await)
    }
}

/// Tokens the sandbox issued, as a token endpoint's answer carries them.
pub struct SandboxGrant {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: i64,
}

impl std::fmt::Debug for SandboxGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxGrant").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

/// Test handle on a running sandbox: what it received, and which failures to inject.
#[derive(Clone)]
pub struct SandboxControl {
    inner: Arc<Shared>,
}

impl SandboxControl {
    /// Handles the next `times` requests to (vendor, path) fully (a token endpoint rotates, a
    /// grant is issued) and then holds the answer back for `hold`: a client that dies meanwhile
    /// never learns what the vendor did.
    pub fn hold_answers(&self, vendor: &str, path: &str, hold: std::time::Duration, times: u32) {
        lock(&self.inner.held).push((vendor.to_owned(), path.to_owned(), hold, times));
    }

    /// How many held answers have been handled by the vendor so far.
    pub fn held_answers_handled(&self) -> usize {
        self.inner.held_handled.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every request received, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.recorder.all()
    }

    /// Requests for one vendor whose path (relative to the vendor prefix, i.e. the first path
    /// segment, without the query string) equals `path`, e.g. `("yappointment",
    /// "/oauth/token")`, `("zocdoc-sandbox", "/oauth/token")`, `("docplanner",
    /// "/znanylekarz.pl/oauth/v2/token")` or `("qmatic", "/eu-west-1/oauth2/token")`.
    pub fn requests_to(&self, vendor: &str, path: &str) -> Vec<RecordedRequest> {
        self.inner.recorder.matching(vendor, path)
    }

    /// From now on, answer (vendor, endpoint) with `failure`: until cleared (`None`) or for
    /// the next `n` calls only (`Some(n)`). Replaces an earlier failure for that endpoint.
    pub fn set_failure(&self, vendor: &str, endpoint: Endpoint, failure: Failure, times: Option<u32>) {
        lock(&self.inner.failures).set(vendor, endpoint, failure, times);
    }

    /// From now on, a vendor's consent (by recorder id: `yappointment`, `zocdoc-sandbox`…) adds
    /// `iss` with this value to its redirects back, code or error alike (RFC 9207); `None`
    /// stops it. The real vendors' documentation promises no `iss`, so by default none is sent.
    pub fn send_issuer(&self, vendor: &str, iss: Option<&str>) {
        let mut issuers = lock(&self.inner.issuers);
        match iss {
            Some(iss) => issuers.insert(vendor.to_owned(), iss.to_owned()),
            None => issuers.remove(vendor),
        };
    }

    /// Revokes every grant the vendor (by recorder id: `yappointment`, `zocdoc`,
    /// `zocdoc-sandbox`, `drchrono`, `docplanner`, `qmatic`) has issued, behind the app's back,
    /// as an app uninstalled at the vendor would be: every token issued so far stops working
    /// (new client-credentials grants are still issued). Returns how many grants were live.
    pub fn revoke_all_grants(&self, vendor: &str) -> usize {
        let store = match vendor {
            "yappointment" => &self.inner.yappointment,
            "zocdoc" => &self.inner.zocdoc,
            "zocdoc-sandbox" => &self.inner.zocdoc_sandbox,
            "drchrono" => &self.inner.drchrono,
            "docplanner" => &self.inner.docplanner,
            "qmatic" => &self.inner.qmatic,
            _ => return 0,
        };
        let revoked = lock(store).revoke_all();
        tracing::info!(vendor, revoked, "sandbox revoked every grant");
        revoked
    }

    /// Removes every injected failure.
    pub fn clear_failures(&self) {
        lock(&self.inner.failures).clear();
    }

    /// A company admin's consent to the sandbox's own yAppointment client, `n` times over, as the
    /// consent page and the code exchange would give it, without their round trips: for tests
    /// and the benchmark that need many real connections. Tokens as a token request returns them.
    pub fn yappointment_grants(&self, n: usize) -> Vec<SandboxGrant> {
        let now = self.inner.clock.now();
        let mut store = lock(&self.inner.yappointment);
        let mut grants = Vec::with_capacity(n);
        for _ in 0..n {
            let direct = tokens::DirectGrant {
                client_id: YAPPOINTMENT_CLIENT_ID,
                kind: tokens::GrantKind::User,
                scopes: yappointment::SCOPES.iter().map(|(scope, _)| (*scope).to_owned()).collect(),
                subject: None,
                audience: None,
                access_prefix: yappointment::PROFILE.access_prefix,
                with_refresh: true,
            };
            if let Ok(issued) = store.issue_direct(&self.inner.rng, direct, now) {
                grants.push(SandboxGrant {
                    access_token: issued.access_token,
                    refresh_token: issued.refresh_token,
                    expires_in: issued.expires_in,
                });
            }
        }
        grants
    }

    /// Whether a yAppointment refresh token is live (issued, not rotated out, not revoked): a
    /// connection whose stored refresh token is not live has lost a rotation.
    pub fn yappointment_refresh_token_is_live(&self, token: &str) -> bool {
        lock(&self.inner.yappointment).refresh_token_is_live(token)
    }

    /// How many times a rotated-out refresh token was presented (each time the grant it
    /// belonged to was revoked).
    pub fn refresh_reuse_detections(&self) -> usize {
        lock(&self.inner.yappointment).reuse_detections()
    }

    /// Every Zocdoc sign-in (either environment) approved with an `anonymous_token`, as
    /// (anonymous token, email), newest last.
    pub fn zocdoc_links(&self) -> Vec<(String, String)> {
        lock(&self.inner.zocdoc_links).clone()
    }

    fn zocdoc_env(environment: &str) -> &'static zocdoc::Env {
        if environment == zocdoc::PRODUCTION.vendor {
            &zocdoc::PRODUCTION
        } else {
            &zocdoc::SANDBOX
        }
    }

    /// Books a Zocdoc time as another patient, in environment `zocdoc` or `zocdoc-sandbox`
    /// (`start` in Unix seconds). False when the time is not open.
    pub fn zocdoc_take_slot(&self, environment: &str, provider_location_id: &str, start: i64) -> bool {
        zocdoc::booking::take_as_someone_else(&self.inner, Self::zocdoc_env(environment), provider_location_id, start)
    }

    /// Every booking made at Zocdoc's `environment`, cancelled ones included, oldest first.
    pub fn zocdoc_bookings(&self, environment: &str) -> Vec<ZocdocBooking> {
        let mut desk = lock(&self.inner.zocdoc_desk);
        desk.ledger(Self::zocdoc_env(environment))
            .bookings
            .iter()
            .map(|b| ZocdocBooking {
                appointment_id: b.id.clone(),
                email: b.email.clone(),
                provider_location_id: b.location_id.to_owned(),
                visit_reason_id: b.visit_reason_id.to_owned(),
                start: b.start,
                cancelled: b.status == zocdoc::booking::Status::Cancelled,
            })
            .collect()
    }

    /// The open times (Unix seconds) of a Zocdoc location, as its availability answers them now.
    pub fn zocdoc_open_times(&self, environment: &str, provider_location_id: &str) -> Vec<i64> {
        let now = self.inner.clock.now();
        zocdoc::booking::open_times_of(&self.inner, Self::zocdoc_env(environment), provider_location_id, now)
    }

    /// From now on, Zocdoc sign-ins do not grant `scope` (a user who withheld it); `None` undoes.
    pub fn zocdoc_withhold_scope(&self, scope: Option<&str>) {
        lock(&self.inner.zocdoc_desk).withheld_scope = scope.map(str::to_owned);
    }
}

/// One booking at the simulated Zocdoc, as tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZocdocBooking {
    pub appointment_id: String,
    pub email: String,
    pub provider_location_id: String,
    pub visit_reason_id: String,
    /// Unix seconds.
    pub start: i64,
    pub cancelled: bool,
}

async fn index() -> HttpResponse {
    pages::index(VENDORS)
}

/// Test credentials that the client-credentials vendors accept here.
async fn credentials() -> HttpResponse {
    http::json(
        actix_web::http::StatusCode::OK,
        &serde_json::json!({
            "docplanner": {
                "client_id": DOCPLANNER_CLIENT_ID,
                "client_secret": DOCPLANNER_CLIENT_SECRET,
                "domain": DOCPLANNER_DOMAIN,
                "domains": DOCPLANNER_DOMAINS,
            },
            "qmatic": {
                "client_id": QMATIC_CLIENT_ID,
                "client_secret": QMATIC_CLIENT_SECRET,
                "account_name": QMATIC_ACCOUNT_NAME,
                "region": QMATIC_REGION,
                "regions": QMATIC_REGIONS,
                "scopes": QMATIC_SCOPES,
            },
        }),
    )
}

async fn not_found() -> HttpResponse {
    http::json_error(actix_web::http::StatusCode::NOT_FOUND, "not_found", "no such sandbox endpoint")
}
