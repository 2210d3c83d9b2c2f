//! A strict, in-process simulator of the appointment vendors.
//!
//! It runs as its own actix-web server on its own port. Each vendor lives under its own
//! path prefix (`/yappointment/...`) and behaves exactly as that vendor's documentation
//! says, refusing what the real vendor would refuse. Tests drive it through
//! [`SandboxControl`]: every request is recorded (before any validation or injected
//! failure), and failures can be injected per vendor endpoint.
//!
//! The sandbox never logs a token, code, verifier, challenge, state or secret: the only
//! log line per request names the method, the matched route pattern and the status.

mod failure;
mod http;
mod pages;
mod pkce;
mod recorder;
mod redirect_uri;
#[cfg(test)]
mod tests;
mod tokens;
mod yappointment;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{middleware, web, App, HttpResponse, HttpServer};
use anyhow::Context as _;
use ring::rand::SystemRandom;

use crate::clock::SharedClock;

pub use failure::{Endpoint, Failure};
pub use recorder::RecordedRequest;

use failure::FailureTable;
use recorder::Recorder;
use tokens::OAuthStore;

/// The client id the sandbox's yAppointment accepts.
pub const YAPPOINTMENT_CLIENT_ID: &str = "clinic-connect-sandbox";
/// The client secret the sandbox's yAppointment accepts. The `yapp_cs_` prefix lets tests
/// search logs and databases for it.
pub const YAPPOINTMENT_CLIENT_SECRET: &str = "yapp_cs_sandbox_9f3c1e7a5b2d4068";
/// The company whose admin grants consent in the sandbox.
pub const YAPPOINTMENT_COMPANY_NAME: &str = "Maple Street Clinic";
/// The stable id of that company, as `POST /api/v1/me` reports it.
pub const YAPPOINTMENT_COMPANY_ID: &str = "cmp_5f2a9c71d3e84b06";

/// Largest request body the sandbox reads; anything bigger is answered with 413.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// The simulated vendors: (id, path prefix, what it simulates).
pub(crate) const VENDORS: &[(&str, &str, &str)] = &[(
    yappointment::VENDOR,
    "/yappointment",
    "authorization code + PKCE (S256), confidential client, JSON token requests, \
     rotating refresh tokens, revocation",
)];

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
    let listener =
        TcpListener::bind(listen).with_context(|| format!("binding the sandbox to {listen}"))?;
    let addr = listener
        .local_addr()
        .context("reading the sandbox's bound address")?;

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
        .default_service(web::to(not_found))
}

/// State shared by every worker of one sandbox.
pub(crate) struct Shared {
    pub(crate) clock: SharedClock,
    pub(crate) rng: SystemRandom,
    pub(crate) recorder: Recorder,
    pub(crate) failures: Mutex<FailureTable>,
    pub(crate) yappointment: Mutex<OAuthStore>,
}

impl Shared {
    fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            rng: SystemRandom::new(),
            recorder: Recorder::default(),
            failures: Mutex::new(FailureTable::default()),
            yappointment: Mutex::new(OAuthStore::new(yappointment::PROFILE)),
        }
    }

    /// The injected failure for this call of (vendor, endpoint), if any, as a response.
    pub(crate) async fn inject(&self, vendor: &str, endpoint: Endpoint) -> Option<HttpResponse> {
        let failure = self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(vendor, endpoint)?;
        tracing::info!(
            vendor,
            ?endpoint,
            kind = failure.kind(),
            "sandbox injecting failure"
        );
        Some(failure::respond(failure, endpoint).await)
    }
}

/// Test handle on a running sandbox: what it received, and which failures to inject.
#[derive(Clone)]
pub struct SandboxControl {
    inner: Arc<Shared>,
}

impl SandboxControl {
    /// Every request received, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.recorder.all()
    }

    /// Requests for one vendor whose path (relative to the vendor prefix, without the query
    /// string) equals `path`, e.g. `("yappointment", "/oauth/token")`.
    pub fn requests_to(&self, vendor: &str, path: &str) -> Vec<RecordedRequest> {
        self.inner.recorder.matching(vendor, path)
    }

    /// From now on, answer (vendor, endpoint) with `failure`: until cleared (`None`) or for
    /// the next `n` calls only (`Some(n)`). Replaces an earlier failure for that endpoint.
    pub fn set_failure(
        &self,
        vendor: &str,
        endpoint: Endpoint,
        failure: Failure,
        times: Option<u32>,
    ) {
        self.inner
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set(vendor, endpoint, failure, times);
    }

    /// Removes every injected failure.
    pub fn clear_failures(&self) {
        self.inner
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// How many times a rotated-out refresh token was presented (each time the grant it
    /// belonged to was revoked).
    pub fn refresh_reuse_detections(&self) -> usize {
        self.inner
            .yappointment
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reuse_detections()
    }
}

async fn index() -> HttpResponse {
    pages::index(VENDORS)
}

/// Test credentials that client-credentials vendors accept. None yet.
async fn credentials() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({}))
}

async fn not_found() -> HttpResponse {
    http::json_error(
        actix_web::http::StatusCode::NOT_FOUND,
        "not_found",
        "no such sandbox endpoint",
    )
}
