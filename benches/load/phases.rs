//! One engine's run: a fresh database of N connections, the scenarios on the app in this
//! process, then the release binary as a child process on the same database. Every figure goes
//! into that engine's column of the report.

use std::sync::Arc;
use std::time::Instant;

use clinic_connect::api::new_api_key;
use clinic_connect::auth::hash_password;
use clinic_connect::clock::ManualClock;
use clinic_connect::db::Db;
use secrecy::SecretString;
use serde_json::json;

use crate::engine::{Cluster, Engine, FreshDatabase};
use crate::flows::Admin;
use crate::harness::{self, AppHandle, SandboxHandle};
use crate::loadgen::{self, Plan, Request};
use crate::memory::mib;
use crate::report::{Report, Target};
use crate::scenarios::{self, Cost, Flows, On, Storm, Throughput};
use crate::statements::Counter;
use crate::stats::{ms, Summary};
use crate::{baseline, child, seed, Config};

/// Clinic 1 is the dashboard's and the proxy's (five connections, an API key); clinic 2's admin
/// runs the connect flows.
const DASHBOARD_CLINIC: usize = 1;
const FLOW_CLINIC: usize = 2;

/// What each engine is held to (issue 13, "Speed after the change").
struct Targets {
    dashboard_per_second: f64,
    proxy_share_of_baseline: f64,
}

fn targets(engine: Engine) -> Targets {
    match engine {
        Engine::Sqlite => Targets { dashboard_per_second: 5_000.0, proxy_share_of_baseline: 0.25 },
        Engine::Postgres => Targets { dashboard_per_second: 3_000.0, proxy_share_of_baseline: 0.15 },
    }
}

struct Phases<'a> {
    engine: Engine,
    config: &'a Config,
    report: &'a mut Report,
    clock: Arc<ManualClock>,
    sandbox: SandboxHandle,
    api_key: String,
    n: usize,
}

pub async fn run(
    engine: Engine,
    config: &Config,
    cluster: Option<&Cluster>,
    report: &mut Report,
) -> anyhow::Result<()> {
    println!("== {}", engine.title());
    // Each engine has its own vendors and clock, so that nothing one engine's run left behind
    // (grants, recorded requests, the clock moved on by storms) is seen by the other's.
    let clock = ManualClock::starting_now();
    let sandbox = harness::start_sandbox(clock.clone())?;
    let database = FreshDatabase::new(engine, cluster).await?;
    let app = harness::start_app(clock.clone(), &database, &sandbox.url).await?;
    let mut phases = Phases { engine, config, report, clock, sandbox, api_key: String::new(), n: config.n };
    let clinic_one = phases.setup(&app).await?;
    phases.in_process(&app, clinic_one).await?;
    let key_lines = app.key_lines.clone();
    app.stop().await?;
    if config.child {
        phases.child_phase(&database, &key_lines).await?;
    }
    phases.sandbox.stop().await;
    Ok(())
}

impl Phases<'_> {
    fn plan(&self) -> Plan {
        self.config.plan
    }

    fn row(&mut self, name: &str, value: String, target: Option<Target>) {
        self.report.row(self.engine, name, value, target);
    }

    fn section(&mut self, key: &str, value: serde_json::Value) {
        self.report.section(Some(self.engine), key, value);
    }

    /// N connections, the two admins, clinic 1's API key. Returns clinic 1's id.
    async fn setup(&mut self, app: &AppHandle) -> anyhow::Result<i64> {
        let n = self.n.max(FLOW_CLINIC);
        let seeded = seed::connections(app, &self.sandbox.control, n).await?;
        let started = Instant::now();
        let now = app.now();
        let hash = hash_password(&SecretString::from(seed::PASSWORD))?;
        let admin_clinics: Vec<(usize, i64)> =
            [DASHBOARD_CLINIC, FLOW_CLINIC].iter().map(|&i| (i, seeded.clinic_ids[i - 1])).collect();
        seed::admins(&app.db, &admin_clinics, &hash, now).await?;
        let (key, key_hash) = new_api_key()?;
        let clinic_one = seeded.clinic_ids[DASHBOARD_CLINIC - 1];
        app.db
            .insert_api_key(clinic_one, &key_hash, "bench", now)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the bench key label is taken"))?;
        self.api_key = key;
        self.n = n;
        let took = seeded.took + started.elapsed();
        println!("setup: {n} connections in {:.1} s", took.as_secs_f64());
        let bytes = app.db.database_bytes().await?;
        self.section("setup", json!({ "connections": n, "seconds": took.as_secs_f64(), "database_bytes": bytes }));
        self.report.heading(&format!("setup: {n} connections, seeded (not measured)"));
        self.row("seeding time", format!("{:.1} s", took.as_secs_f64()), None);
        // PostgreSQL's figure includes its catalogs (about 7.5 MB for an empty database).
        self.row("database size after seeding", format!("{:.1} MiB", mib(u64::try_from(bytes).unwrap_or(0))), None);
        Ok(clinic_one)
    }

    /// The scenarios on the app in this process. The storms go first, while exactly N
    /// connections exist; then clinic 1 connects its four other vendors (the child phase's
    /// dashboard needs them too).
    async fn in_process(&mut self, app: &AppHandle, clinic_one: i64) -> anyhow::Result<()> {
        let run = |scenario: &str| self.config.in_process && self.config.wants(scenario);
        let (storm, dashboard, proxy, flow) = (run("storm"), run("dashboard"), run("proxy"), run("flow"));
        if storm {
            self.storm(app).await?;
            if self.engine == Engine::Postgres {
                self.shared_storm(app).await?;
            }
        }
        Admin::sign_in(&app.url, &seed::admin_email(DASHBOARD_CLINIC), seed::PASSWORD)
            .await?
            .connect_other_vendors()
            .await?;
        if dashboard {
            self.dashboard(app, clinic_one).await?;
        }
        if proxy {
            self.proxy(app, clinic_one).await?;
        }
        if flow {
            self.connect_flows(app).await?;
        }
        Ok(())
    }

    async fn storm(&mut self, app: &AppHandle) -> anyhow::Result<()> {
        let storm = scenarios::refresh_storm(&[app], &self.sandbox, &self.clock, self.n).await?;
        self.check_clean(&storm, "storm")?;
        self.section("refresh_storm", storm.json());
        self.storm_rows("refresh storm, one instance in process (worker::refresh_due)", &storm, "in process");
        Ok(())
    }

    /// The storm once more, shared by two instances on the same database, both running
    /// `worker::refresh_due` at once (as `tests/api/storm.rs` does).
    async fn shared_storm(&mut self, app: &AppHandle) -> anyhow::Result<()> {
        let second = app.second_instance().await?;
        let storm = scenarios::refresh_storm(&[app, &second], &self.sandbox, &self.clock, self.n).await?;
        second.stop().await?;
        self.check_clean(&storm, "shared storm")?;
        self.section("refresh_storm_two_instances", storm.json());
        self.storm_rows("refresh storm shared by two instances in process", &storm, "two instances");
        Ok(())
    }

    fn check_clean(&self, storm: &Storm, name: &str) -> anyhow::Result<()> {
        anyhow::ensure!(!self.config.smoke || storm.clean(), "smoke: the {name} was not clean: {}", storm.json());
        Ok(())
    }

    fn storm_rows(&mut self, heading: &str, storm: &Storm, place: &str) {
        let n = storm.connections;
        self.report.heading(heading);
        let seconds = storm.took.as_secs_f64();
        self.row(
            &format!("time to refresh all {n} ({place})"),
            format!("{seconds:.2} s ({:.0}/s)", n as f64 / seconds),
            Some(Target::below(seconds, 5.0, "s")),
        );
        self.row(
            &format!("refreshes at the sandbox ({place})"),
            format!(
                "{} ({} distinct, {} reuse, {} left due)",
                storm.refresh_requests, storm.distinct_refresh_tokens, storm.reuse_detections, storm.left_due
            ),
            Some(Target { text: format!("= {n}, none twice"), pass: storm.clean() }),
        );
        self.row(&format!("SQL statements per refresh ({place})"), format!("{:.2}", storm.statements), None);
        let limit = (place == "app alone").then_some(100.0);
        self.usage_row(&format!("storm ({place})"), storm.cost, limit);
    }

    async fn dashboard(&mut self, app: &AppHandle, clinic_id: i64) -> anyhow::Result<()> {
        let rows = app.db.connections_of_clinic(clinic_id).await?;
        anyhow::ensure!(rows.iter().filter(|r| r.status == "connected").count() == 5, "clinic 1 lacks a connection");
        let counter = Counter::of(&app.db);
        let email = seed::admin_email(DASHBOARD_CLINIC);
        let measured =
            scenarios::dashboard(&app.url, &email, self.config.concurrency, self.plan(), On::this(&counter)).await?;
        self.section("dashboard", measured.json());
        self.report.heading("dashboard: GET /connections, a clinic with 5 connections");
        let target = targets(self.engine).dashboard_per_second;
        self.row(
            "dashboard pages/s",
            format!("{:.0}/s", measured.per_second),
            Some(Target::at_least(measured.per_second, target, "/s")),
        );
        self.summary_row("dashboard latency p50/p99", measured.latency);
        self.statements_row("SQL statements per page", measured.statements);
        self.usage_row("dashboard (in process)", measured.cost, None);
        Ok(())
    }

    /// The constant-string server's requests/s, measured just before the proxy's.
    async fn baseline(&mut self) -> anyhow::Result<f64> {
        let server = baseline::start()?;
        let request = Request::get(loadgen::client(false)?, server.url.clone());
        let measured =
            scenarios::requests("baseline", request, self.config.concurrency, self.plan(), On::uncounted()).await?;
        server.stop().await;
        self.section("baseline", measured.json());
        self.row(
            &format!("baseline: constant string, {} workers", harness::APP_WORKERS),
            format!("{:.0}/s", measured.per_second),
            None,
        );
        Ok(measured.per_second)
    }

    async fn proxy(&mut self, app: &AppHandle, clinic_id: i64) -> anyhow::Result<()> {
        self.report.heading("proxy: POST /api/v1/connections/yappointment/proxy/api/v1/me");
        let baseline = self.baseline().await?;
        let token = scenarios::access_token(app, clinic_id).await?;
        let proxy = scenarios::proxy_request(&app.url, &self.api_key)?;
        let direct = scenarios::direct_request(&self.sandbox.url, &token)?;
        let (c, plan) = (self.config.concurrency, self.plan());
        let counter = Counter::of(&app.db);
        let proxied = scenarios::requests("proxy", proxy.clone(), c, plan, On::this(&counter)).await?;
        let straight = scenarios::requests("direct", direct.clone(), c, plan, On::uncounted()).await?;
        let added = scenarios::added_latency(direct, proxy, plan).await?;
        self.section(
            "proxy",
            json!({
                "baseline_per_second": baseline.round(),
                "proxied": proxied.json(),
                "direct": straight.json(),
                "added_latency_one_at_a_time": added.json(),
            }),
        );
        let share = proxied.per_second / baseline;
        let target = targets(self.engine).proxy_share_of_baseline;
        self.row(
            "proxy calls/s (÷ baseline)",
            format!("{:.0}/s ({:.1} %)", proxied.per_second, share * 100.0),
            Some(Target { text: format!("≥ {:.0} % of baseline", target * 100.0), pass: share >= target }),
        );
        self.statements_row("SQL statements per proxy call", proxied.statements);
        self.row(
            "sandbox /api/v1/me called directly (÷ baseline)",
            format!("{:.0}/s ({:.1} %)", straight.per_second, straight.per_second / baseline * 100.0),
            None,
        );
        self.row("added latency p50, one call at a time", format!("{:.3} ms", added.p50_ms()), None);
        self.row(
            "added latency p99, one call at a time",
            format!("{:.3} ms", added.p99_ms()),
            Some(Target::below(added.p99_ms(), 1.0, "ms")),
        );
        self.row(
            &format!("proxied vs direct p50/p99 at {c} in flight"),
            format!(
                "{:.2}/{:.2} vs {:.2}/{:.2} ms",
                ms(proxied.latency.p50),
                ms(proxied.latency.p99),
                ms(straight.latency.p50),
                ms(straight.latency.p99)
            ),
            None,
        );
        self.usage_row("proxy (in process, with the sandbox)", proxied.cost, None);
        Ok(())
    }

    async fn connect_flows(&mut self, app: &AppHandle) -> anyhow::Result<()> {
        let counter = Counter::of(&app.db);
        let flows = scenarios::connect_flows(&app.url, FLOW_CLINIC, self.plan(), On::this(&counter)).await?;
        self.section("connect_flow_one_admin", flows.json());
        self.report.heading("connect flow, one admin alone: POST connect, GET callback, GET detail");
        self.flow_rows(&flows, "");
        Ok(())
    }

    fn flow_rows(&mut self, flows: &Flows, place: &str) {
        self.row(&format!("connect flows/s{place}"), format!("{:.0}/s", flows.per_second), None);
        let p99 = ms(flows.app_part.p99);
        let value = format!("{:.2}/{p99:.2} ms", ms(flows.app_part.p50));
        let target = place.is_empty().then(|| Target::below(p99, 5.0, "ms"));
        self.row(&format!("app part p50/p99, its vendor calls included{place}"), value, target);
        if place.is_empty() {
            self.summary_row("  POST connect p50/p99", flows.connect);
            self.summary_row("  GET callback p50/p99 (with its 2 vendor calls)", flows.callback);
            self.summary_row("  GET detail p50/p99", flows.detail);
        }
        self.statements_row(&format!("SQL statements per flow{place}"), flows.statements);
    }

    /// The release binary as a child process on the same database: its memory idle and under
    /// each load, its statements from its `/metrics`; then, restarted with its worker every
    /// second, the refresh storm done by its own worker.
    async fn child_phase(&mut self, database: &FreshDatabase, key_lines: &str) -> anyhow::Result<()> {
        let url = database.url.as_deref();
        let sandbox_url = self.sandbox.url.clone();
        // Its worker idle (a round a day, the first a day after start), so that the statements
        // counted are the load's.
        let child = child::start(database.path(), url, key_lines, &sandbox_url, 24 * 60 * 60).await?;
        println!("child process: pid {} at {}", child.pid, child.url);
        // Idle: once its start-up work is over.
        let counter = Counter::child(&child.url).await?;
        let process = child.process();
        let idle = process.rss();
        self.report.heading("the app alone: the release binary as a child process");
        self.row("RSS idle", format!("{} MiB", mib(idle)), Some(megabytes_below(idle, 30.0)));
        let on = On { process, counter: Some(&counter) };
        let (c, plan) = (self.config.concurrency, self.plan());
        let mut section = serde_json::Map::new();
        section.insert("idle_rss_bytes".into(), json!(idle));
        if self.config.wants("dashboard") {
            let email = seed::admin_email(DASHBOARD_CLINIC);
            let measured = scenarios::dashboard(&child.url, &email, c, plan, on).await?;
            self.child_rows("dashboard", "page", &measured);
            section.insert("dashboard".into(), measured.json());
        }
        if self.config.wants("proxy") {
            let proxy = scenarios::proxy_request(&child.url, &self.api_key)?;
            let measured = scenarios::requests("proxy (child)", proxy, c, plan, on).await?;
            self.child_rows("proxy", "call", &measured);
            section.insert("proxy".into(), measured.json());
        }
        if self.config.wants("flow") {
            let flows = scenarios::connect_flows(&child.url, FLOW_CLINIC, plan, on).await?;
            self.flow_rows(&flows, " (app alone)");
            self.usage_row("connect flow (app alone)", flows.cost, Some(100.0));
            section.insert("connect_flow_one_admin".into(), flows.json());
        }
        section.insert("rss_after_loads_bytes".into(), json!(process.rss()));
        child.stop().await?;
        if self.config.wants("storm") {
            let storm = self.child_storm(database, key_lines).await?;
            section.insert("refresh_storm".into(), storm.json());
        }
        self.section("child_process", serde_json::Value::Object(section));
        Ok(())
    }

    async fn child_storm(&mut self, database: &FreshDatabase, key_lines: &str) -> anyhow::Result<Storm> {
        let url = database.url.as_deref();
        let child = child::start(database.path(), url, key_lines, &self.sandbox.url.clone(), 1).await?;
        let counter = Counter::child(&child.url).await?;
        let on = On { process: child.process(), counter: Some(&counter) };
        // This process's own connection to the database, to expire the tokens and watch them.
        let mut config = clinic_connect::db::Config::sqlite(&database.path().join("clinic-connect.db"));
        if let Some(url) = url {
            config.url = SecretString::from(url.to_owned());
        }
        let db = Db::open(&config).await?;
        let storm = scenarios::child_refresh_storm(&db, &self.sandbox, &self.clock, on, self.n).await;
        db.close().await;
        child.stop().await?;
        let storm = storm?;
        self.check_clean(&storm, "child's storm")?;
        self.storm_rows("refresh storm in the child, by its own worker (every 1 s)", &storm, "app alone");
        Ok(storm)
    }

    fn child_rows(&mut self, name: &str, unit: &str, measured: &Throughput) {
        self.row(&format!("{name} requests/s (app alone)"), format!("{:.0}/s", measured.per_second), None);
        self.statements_row(&format!("SQL statements per {unit} (app alone)"), measured.statements);
        self.usage_row(&format!("{name} (app alone)"), measured.cost, Some(100.0));
    }

    /// RSS "start → peak" (the peak held against `limit_mb` when given), and CPU per run.
    fn usage_row(&mut self, name: &str, cost: Cost, limit_mb: Option<f64>) {
        let peak = mib(cost.rss_peak);
        let target = limit_mb.map(|limit| megabytes_below(cost.rss_peak, limit));
        let value = format!("{} → {peak} MiB, {:.0} µs CPU/run", mib(cost.rss_start), cost.cpu_us_per_run);
        self.row(&format!("{name}: RSS start → peak, CPU"), value, target);
    }

    fn summary_row(&mut self, name: &str, summary: Summary) {
        self.row(name, format!("{:.2}/{:.2} ms", ms(summary.p50), ms(summary.p99)), None);
    }

    fn statements_row(&mut self, name: &str, per_request: Option<f64>) {
        self.row(name, per_request.map(|s| format!("{s:.2}")).unwrap_or_else(|| "—".into()), None);
    }
}

/// The targets are in MB (10^6 bytes); the figures are shown in MiB.
fn megabytes_below(bytes: u64, limit_mb: f64) -> Target {
    Target::below(bytes as f64 / 1e6, limit_mb, "MB")
}
