//! The measured scenarios. Each returns its numbers; `main` decides how they are reported.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use clinic_connect::clock::{Clock, ManualClock};
use clinic_connect::db::Db;
use clinic_connect::sandbox::SandboxControl;
use clinic_connect::worker;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::flows::{Admin, ConnectFlow, FlowSample};
use crate::harness::{AppHandle, SandboxHandle};
use crate::loadgen::{self, Op, Outcome, Paired, Plan, Request};
use crate::memory::{Process, Usage, Watch};
use crate::seed::{self, VENDOR};
use crate::statements::Counter;
use crate::stats::{ms, Summary};

pub struct Throughput {
    pub per_second: f64,
    pub latency: Summary,
    pub cost: Cost,
    /// SQL statements per request (warm-up included), when counted.
    pub statements: Option<f64>,
}

/// What the watched process spent during a scenario.
#[derive(Clone, Copy, Debug)]
pub struct Cost {
    /// RSS when the load started (after its sign-ins), in bytes.
    pub rss_start: u64,
    pub rss_peak: u64,
    /// CPU time per run (user + system, warm-up included), in microseconds.
    pub cpu_us_per_run: f64,
}

impl Cost {
    fn of(usage: Usage, runs: u64) -> Self {
        let cpu_us_per_run = usage.cpu_seconds * 1e6 / runs.max(1) as f64;
        Self { rss_start: usage.rss_start, rss_peak: usage.rss_peak, cpu_us_per_run }
    }

    pub fn json(&self) -> Value {
        json!({
            "rss_start_bytes": self.rss_start,
            "rss_peak_bytes": self.rss_peak,
            "cpu_us_per_run": self.cpu_us_per_run.round(),
        })
    }
}

impl Throughput {
    pub fn json(&self) -> Value {
        json!({
            "per_second": self.per_second.round(),
            "latency": self.latency.json(),
            "cost": self.cost.json(),
            "sql_statements_per_request": self.statements,
        })
    }
}

/// What one scenario was measured on: the watched process, and the app's statement counter.
#[derive(Clone, Copy)]
pub struct On<'a> {
    pub process: Process,
    pub counter: Option<&'a Counter>,
}

impl<'a> On<'a> {
    pub fn this(counter: &'a Counter) -> Self {
        Self { process: Process::This, counter: Some(counter) }
    }

    /// Not the app (the baseline, the sandbox alone).
    pub fn uncounted() -> Self {
        Self { process: Process::This, counter: None }
    }
}

/// Drives the ops for the plan, watching the process's memory and counting the app's
/// statements per run; fails on any failed run.
async fn measured<O: Op>(
    name: &str,
    ops: Vec<O>,
    plan: Plan,
    on: On<'_>,
) -> anyhow::Result<(Outcome<O::Sample>, Cost, Option<f64>)> {
    let before = match on.counter {
        Some(counter) => Some(counter.read().await?),
        None => None,
    };
    let watch = Watch::start(on.process);
    let outcome = loadgen::drive(ops, plan).await?;
    let usage = watch.finish().await;
    outcome.check(name)?;
    let statements = match (on.counter, before) {
        (Some(counter), Some(before)) => Some(counter.since(before).await? as f64 / outcome.runs.max(1) as f64),
        _ => None,
    };
    let cost = Cost::of(usage, outcome.runs);
    Ok((outcome, cost, statements))
}

/// The same request from `concurrency` tasks.
pub async fn requests(
    name: &str,
    request: Request,
    concurrency: usize,
    plan: Plan,
    on: On<'_>,
) -> anyhow::Result<Throughput> {
    // A client per task: one keep-alive connection each.
    let ops: Vec<Request> = (0..concurrency)
        .map(|_| Ok(Request { client: loadgen::client(false)?, ..request.clone() }))
        .collect::<anyhow::Result<_>>()?;
    let (outcome, cost, statements) = measured(name, ops, plan, on).await?;
    Ok(Throughput { per_second: outcome.per_second(), latency: Summary::of(outcome.samples), cost, statements })
}

/// The dashboard, each task a browser of its own signed in as the clinic's admin.
pub async fn dashboard(
    base: &str,
    email: &str,
    concurrency: usize,
    plan: Plan,
    on: On<'_>,
) -> anyhow::Result<Throughput> {
    let mut ops = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let admin = Admin::sign_in(base, email, seed::PASSWORD).await?;
        ops.push(Request::get(admin.client(), format!("{base}/connections")));
    }
    let (outcome, cost, statements) = measured("dashboard", ops, plan, on).await?;
    Ok(Throughput { per_second: outcome.per_second(), latency: Summary::of(outcome.samples), cost, statements })
}

pub fn proxy_request(app_url: &str, api_key: &str) -> anyhow::Result<Request> {
    Request::post(loadgen::client(false)?, format!("{app_url}/api/v1/connections/{VENDOR}/proxy/api/v1/me"))
        .bearer(api_key)
}

pub fn direct_request(sandbox_url: &str, access_token: &str) -> anyhow::Result<Request> {
    Request::post(loadgen::client(false)?, format!("{sandbox_url}/{VENDOR}/api/v1/me")).bearer(access_token)
}

/// The connection's current access token, as the proxy itself would get it.
pub async fn access_token(app: &AppHandle, clinic_id: i64) -> anyhow::Result<String> {
    let token = app.state.tokens.access_token(&app.state, clinic_id, VENDOR, false, "bench").await?;
    Ok(token.expose_secret().to_owned())
}

pub struct AddedLatency {
    pub direct: Summary,
    pub proxied: Summary,
}

impl AddedLatency {
    pub fn p50_ms(&self) -> f64 {
        ms(self.proxied.p50) - ms(self.direct.p50)
    }

    pub fn p99_ms(&self) -> f64 {
        ms(self.proxied.p99) - ms(self.direct.p99)
    }

    pub fn json(&self) -> Value {
        json!({
            "direct": self.direct.json(),
            "proxied": self.proxied.json(),
            "added_p50_ms": self.p50_ms(),
            "added_p99_ms": self.p99_ms(),
        })
    }
}

/// Direct and proxied calls in alternation from one task: what the proxy adds to a call,
/// without queueing behind other calls.
pub async fn added_latency(direct: Request, proxied: Request, plan: Plan) -> anyhow::Result<AddedLatency> {
    let (outcome, _, _) = measured("proxy latency", vec![Paired::new(direct, proxied)], plan, On::uncounted()).await?;
    let (direct, proxied): (Vec<Duration>, Vec<Duration>) = outcome.samples.into_iter().unzip();
    Ok(AddedLatency { direct: Summary::of(direct), proxied: Summary::of(proxied) })
}

pub struct Flows {
    pub per_second: f64,
    pub app_part: Summary,
    pub connect: Summary,
    pub callback: Summary,
    pub detail: Summary,
    pub cost: Cost,
    /// SQL statements per flow (warm-up included), when counted.
    pub statements: Option<f64>,
}

impl Flows {
    pub fn json(&self) -> Value {
        json!({
            "per_second": self.per_second.round(),
            "app_part": self.app_part.json(),
            "connect": self.connect.json(),
            "callback_with_its_vendor_calls": self.callback.json(),
            "detail": self.detail.json(),
            "cost": self.cost.json(),
            "sql_statements_per_flow": self.statements,
        })
    }
}

/// The connect flow again and again by one admin (of clinic `clinic`, by number) alone: the
/// flow's own latency, without queueing behind other admins.
pub async fn connect_flows(base: &str, clinic: usize, plan: Plan, on: On<'_>) -> anyhow::Result<Flows> {
    let admin = Admin::sign_in(base, &seed::admin_email(clinic), seed::PASSWORD).await?;
    let (outcome, cost, statements) = measured("connect flows", vec![ConnectFlow { admin }], plan, on).await?;
    let per_second = outcome.per_second();
    let samples = outcome.samples;
    let pick = |f: fn(&FlowSample) -> Duration| Summary::of(samples.iter().map(f).collect());
    Ok(Flows {
        per_second,
        app_part: pick(FlowSample::app_part),
        connect: pick(|s| s.connect),
        callback: pick(|s| s.callback),
        detail: pick(|s| s.detail),
        cost,
        statements,
    })
}

pub struct Storm {
    pub connections: usize,
    /// The instances that shared it.
    pub instances: usize,
    /// Refreshes the workers' rounds attempted, all together (in process).
    pub attempted: Option<usize>,
    pub took: Duration,
    /// Refresh-token grants the sandbox received during the storm.
    pub refresh_requests: usize,
    pub distinct_refresh_tokens: usize,
    pub reuse_detections: usize,
    /// Connections still due afterwards.
    pub left_due: usize,
    pub cost: Cost,
    /// SQL statements per refresh, all instances together (the child's: with its worker's other
    /// duties in the same rounds).
    pub statements: f64,
}

impl Storm {
    /// Exactly one refresh per connection (none twice), no reuse detected, none left due.
    pub fn clean(&self) -> bool {
        self.refresh_requests == self.connections
            && self.distinct_refresh_tokens == self.connections
            && self.reuse_detections == 0
            && self.left_due == 0
    }

    pub fn json(&self) -> Value {
        json!({
            "connections": self.connections,
            "instances": self.instances,
            "attempted_by_the_rounds": self.attempted,
            "seconds": self.took.as_secs_f64(),
            "refreshes_per_second": (self.connections as f64 / self.took.as_secs_f64()).round(),
            "refresh_requests_at_sandbox": self.refresh_requests,
            "distinct_refresh_tokens_presented": self.distinct_refresh_tokens,
            "refresh_token_reuse_detections": self.reuse_detections,
            "left_due": self.left_due,
            "cost": self.cost.json(),
            "sql_statements_per_refresh": self.statements,
        })
    }
}

/// The sandbox's refresh-token grants recorded at or after sandbox time `since`:
/// (count, distinct refresh tokens).
fn refresh_requests(sandbox: &SandboxControl, since: i64) -> (usize, usize) {
    let refreshes: Vec<String> = sandbox
        .requests_to(VENDOR, "/oauth/token")
        .into_iter()
        .filter(|r| r.at >= since)
        .filter_map(|r| r.json())
        .filter(|body| body["grant_type"] == "refresh_token")
        .map(|body| body["refresh_token"].as_str().unwrap_or_default().to_owned())
        .collect();
    let distinct: HashSet<&String> = refreshes.iter().collect();
    (refreshes.len(), distinct.len())
}

/// Every token expires at once (the clock moves past their hour); one worker round on each of
/// the instances (on the same database) at once refreshes them all between them.
pub async fn refresh_storm(
    instances: &[&AppHandle],
    sandbox: &SandboxHandle,
    clock: &ManualClock,
    expected: usize,
) -> anyhow::Result<Storm> {
    let first = instances.first().ok_or_else(|| anyhow::anyhow!("a storm without an instance"))?;
    clock.advance(3600 + 60);
    let since = clock.now();
    let reuse_before = sandbox.control.refresh_reuse_detections();
    let counter = Counter::InProcess(instances.iter().map(|app| app.db.clone()).collect());
    let statements_before = counter.read().await?;
    let watch = Watch::start(Process::This);
    let started = Instant::now();
    let rounds = instances.iter().map(|app| worker::refresh_due(&app.state));
    let listed: usize = futures_util::future::join_all(rounds).await.into_iter().sum();
    let took = started.elapsed();
    let usage = watch.finish().await;
    let statements = counter.since(statements_before).await? as f64 / expected.max(1) as f64;
    let (refresh_requests, distinct_refresh_tokens) = refresh_requests(&sandbox.control, since);
    let left_due = first.db.count_due(VENDOR, clock.now() + 5 * 60).await? as usize;
    Ok(Storm {
        connections: expected,
        instances: instances.len(),
        attempted: Some(listed),
        took,
        refresh_requests,
        distinct_refresh_tokens,
        reuse_detections: sandbox.control.refresh_reuse_detections() - reuse_before,
        left_due,
        cost: Cost::of(usage, expected as u64),
        statements,
    })
}

/// yAppointment connections whose token expires within the refresh margin, by the system clock.
async fn due_count(db: &Db, now: i64) -> anyhow::Result<i64> {
    Ok(db.count_due(VENDOR, now + 5 * 60).await?)
}

/// The same storm in the real binary: its tokens are marked expired in the database, and its
/// own background worker (every second) finds and refreshes them. Timed from the first refresh
/// seen to the last, polling the database (through `db`, this process's own connection to it).
pub async fn child_refresh_storm(
    db: &Db,
    sandbox: &SandboxHandle,
    clock: &ManualClock,
    on: On<'_>,
    expected: usize,
) -> anyhow::Result<Storm> {
    // Sandbox time moves on, so that what it records from here on can be told apart.
    clock.advance(60);
    let since = clock.now();
    let reuse_before = sandbox.control.refresh_reuse_detections();
    let now = clinic_connect::clock::SystemClock.now();
    let statements_before = match on.counter {
        Some(counter) => counter.read().await?,
        None => 0,
    };
    let watch = Watch::start(on.process);
    let expired = db.expire_tokens(VENDOR, now - 1).await? as usize;
    anyhow::ensure!(expired == expected, "{expired} connections expired, not {expected}");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut first_progress = None;
    let finished = loop {
        let due = due_count(db, now).await?;
        let at = Instant::now();
        if first_progress.is_none() && (due as usize) < expected {
            first_progress = Some(at);
        }
        if due == 0 {
            break at;
        }
        anyhow::ensure!(at < deadline, "the child's storm did not finish: {due} connections still due");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let usage = watch.finish().await;
    let statements = match on.counter {
        Some(counter) => counter.since(statements_before).await? as f64 / expected.max(1) as f64,
        None => 0.0,
    };
    let (refresh_requests, distinct_refresh_tokens) = refresh_requests(&sandbox.control, since);
    Ok(Storm {
        connections: expected,
        instances: 1,
        attempted: None,
        took: finished - first_progress.unwrap_or(finished),
        refresh_requests,
        distinct_refresh_tokens,
        reuse_detections: sandbox.control.refresh_reuse_detections() - reuse_before,
        left_due: due_count(db, now).await? as usize,
        cost: Cost::of(usage, expected as u64),
        statements,
    })
}
