//! A timing relay in front of the sandbox, used only for the attribution pass of the connect
//! flow. The app is pointed at it as its vendor; it forwards every request to the sandbox and
//! times each one. A callback's vendor calls are the code exchange (whose body names the code)
//! and the account lookup (whose bearer token the exchange just issued), so both are charged to
//! the code, which the benchmark knows from the consent redirect. Subtracting them per request
//! leaves the callback's own time (including the loopback hop to the relay).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;

use crate::loadgen;

#[derive(Default)]
pub struct VendorTimer {
    /// Code → vendor time so far.
    by_code: Mutex<HashMap<String, Duration>>,
    /// Access token issued for a code → that code.
    code_of_token: Mutex<HashMap<String, String>>,
}

impl VendorTimer {
    /// The vendor time of the callback that redeemed `code`, once.
    pub fn take(&self, code: &str) -> Option<Duration> {
        lock(&self.by_code).remove(code)
    }

    fn charge(&self, code: &str, took: Duration) {
        *lock(&self.by_code).entry(code.to_owned()).or_default() += took;
    }

    /// Charges one forwarded call to the code it belongs to, if it belongs to one.
    fn record(&self, path: &str, authorization: Option<&str>, body: &[u8], answer: &[u8], took: Duration) {
        if path.ends_with("/oauth/token") {
            let request: Value = serde_json::from_slice(body).unwrap_or_default();
            if let Some(code) = request.get("code").and_then(Value::as_str) {
                self.charge(code, took);
                let issued: Value = serde_json::from_slice(answer).unwrap_or_default();
                if let Some(token) = issued.get("access_token").and_then(Value::as_str) {
                    lock(&self.code_of_token).insert(token.to_owned(), code.to_owned());
                }
            }
        } else if let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) {
            if let Some(code) = lock(&self.code_of_token).remove(token) {
                self.charge(&code, took);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

struct Relay {
    sandbox_url: String,
    client: reqwest::Client,
    timer: Arc<VendorTimer>,
}

pub struct RelayHandle {
    pub url: String,
    pub timer: Arc<VendorTimer>,
    server: ServerHandle,
}

impl RelayHandle {
    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

/// Starts the relay on a free loopback port, with the sandbox's worker count.
pub fn start(sandbox_url: &str) -> anyhow::Result<RelayHandle> {
    let timer = Arc::new(VendorTimer::default());
    let relay = web::Data::new(Relay {
        sandbox_url: sandbox_url.trim_end_matches('/').to_owned(),
        client: loadgen::client(false)?,
        timer: timer.clone(),
    });
    let server = HttpServer::new(move || App::new().app_data(relay.clone()).default_service(web::to(forward)))
        .workers(crate::harness::SANDBOX_WORKERS)
        .bind("127.0.0.1:0")?;
    let url = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(RelayHandle { url, timer, server: handle })
}

/// Headers that carry meaning for the sandbox in either direction; nothing hop-by-hop.
const REQUEST_HEADERS: [header::HeaderName; 3] = [header::CONTENT_TYPE, header::AUTHORIZATION, header::ACCEPT];
const RESPONSE_HEADERS: [header::HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::CACHE_CONTROL];

async fn forward(req: HttpRequest, body: web::Bytes, relay: web::Data<Relay>) -> HttpResponse {
    match relay_call(&req, body, &relay).await {
        Ok(response) => response,
        Err(e) => HttpResponse::BadGateway().body(format!("relay: {e:#}")),
    }
}

async fn relay_call(req: &HttpRequest, body: web::Bytes, relay: &Relay) -> anyhow::Result<HttpResponse> {
    // From the relay's first look at the request, so that its own forwarding work counts as the
    // vendor's, not the app's.
    let started = Instant::now();
    let url = format!("{}{}", relay.sandbox_url, req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())?;
    let mut outgoing = relay.client.request(method, url).body(body.clone());
    for name in &REQUEST_HEADERS {
        if let Some(value) = req.headers().get(name) {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = outgoing.send().await?;
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    let answer_body = answer.bytes().await?;
    let took = started.elapsed();

    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    relay.timer.record(req.path(), authorization, &body, &answer_body, took);

    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status)?);
    for name in &RESPONSE_HEADERS {
        if let Some(value) = headers.get(name.as_str()) {
            response.insert_header((name.clone(), value.as_bytes()));
        }
    }
    Ok(response.body(answer_body))
}
