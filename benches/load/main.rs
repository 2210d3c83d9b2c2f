//! `cargo bench --bench load`: the app and its sandbox on loopback, a fresh database of N
//! connections, and the load scenarios of BENCHMARKS.md — connect flows, proxy calls, dashboard
//! pages and a refresh storm — each also as a fraction of a trivial actix-web server's
//! requests/second, with memory and database size, held against the targets. Writes
//! `target/bench/load.json`.
//!
//! Without `--bench` (that is, under `cargo test --all-targets`) the same program runs as a short
//! smoke test: tiny N and windows, no targets judged, but every scenario must succeed.
//!
//! Knobs: `BENCH_N` (connections, 10000), `BENCH_SECONDS` (measured window per scenario, 6),
//! `BENCH_CONCURRENCY` (load tasks, 32), `BENCH_ADMINS` (virtual admins, 32). For profiling one
//! thing: `BENCH_ONLY` (comma-separated of storm, dashboard, proxy, flows), `BENCH_IN_PROCESS=0`
//! and `BENCH_CHILD=0` to skip a phase; a partial run writes `load-partial.json` instead.

mod baseline;
mod child;
mod flows;
mod harness;
mod loadgen;
mod memory;
mod report;
mod scenarios;
mod seed;
mod stats;
mod vendor_timer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clinic_connect::api::new_api_key;
use clinic_connect::auth::hash_password;
use clinic_connect::clock::ManualClock;
use clinic_connect::db::Db;
use secrecy::SecretString;
use serde_json::json;

use crate::flows::Admin;
use crate::harness::{AppHandle, SandboxHandle};
use crate::loadgen::{Plan, Request};
use crate::memory::{mib, Process};
use crate::report::{Report, Target};
use crate::scenarios::{Flows, Storm, Throughput};
use crate::stats::ms;

struct Config {
    smoke: bool,
    n: usize,
    plan: Plan,
    concurrency: usize,
    admins: usize,
    /// Scenarios to run; `None` for all.
    only: Option<Vec<String>>,
    in_process: bool,
    child: bool,
}

impl Config {
    fn from_env() -> Self {
        // `cargo bench` passes --bench; `cargo test` runs bench targets without it.
        if !std::env::args().any(|a| a == "--bench") {
            let plan = Plan { warmup: Duration::from_millis(100), measure: Duration::from_millis(400) };
            let (only, in_process, child) = (None, true, true);
            return Self { smoke: true, n: 20, plan, concurrency: 2, admins: 2, only, in_process, child };
        }
        let number =
            |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        Self {
            smoke: false,
            n: number("BENCH_N", 10_000) as usize,
            plan: Plan { warmup: Duration::from_secs(1), measure: Duration::from_secs(number("BENCH_SECONDS", 6)) },
            concurrency: number("BENCH_CONCURRENCY", 32) as usize,
            admins: number("BENCH_ADMINS", 32) as usize,
            only: std::env::var("BENCH_ONLY").ok().map(|v| v.split(',').map(|s| s.trim().to_owned()).collect()),
            in_process: number("BENCH_IN_PROCESS", 1) != 0,
            child: number("BENCH_CHILD", 1) != 0,
        }
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.iter().any(|s| s == scenario))
    }

    fn partial(&self) -> bool {
        self.only.is_some() || !self.in_process || !self.child
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "connections": self.n,
            "warmup_seconds": self.plan.warmup.as_secs_f64(),
            "measured_seconds_per_scenario": self.plan.measure.as_secs_f64(),
            "load_concurrency": self.concurrency,
            "virtual_admins": self.admins,
            "app_workers": harness::APP_WORKERS,
            "sandbox_workers": harness::SANDBOX_WORKERS,
            "load_generator_threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        })
    }
}

fn main() -> anyhow::Result<()> {
    let config = Config::from_env();
    // The load generator's runtime: one thread per core, like the app's two server workers.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(config))
}

/// Everything the phases share.
struct Bench {
    config: Config,
    clock: Arc<ManualClock>,
    sandbox: SandboxHandle,
    report: Report,
    api_key: String,
}

async fn run(config: Config) -> anyhow::Result<()> {
    let clock = ManualClock::starting_now();
    let sandbox = harness::start_sandbox(clock.clone())?;
    let mut bench = Bench { config, clock, sandbox, report: Report::default(), api_key: String::new() };
    bench.report.section("machine", machine());
    bench.report.section("config", bench.config.json());
    println!("clinic-connect load benchmark{}", if bench.config.smoke { " (smoke run)" } else { "" });

    let data_dir = tempfile::tempdir()?;
    let app = harness::start_app(bench.clock.clone(), data_dir.path(), &bench.sandbox.url).await?;
    let clinic_one = bench.setup(&app).await?;
    let baseline = bench.baseline().await?;
    bench.in_process(&app, clinic_one, baseline).await?;
    let key_lines = app.key_lines.clone();
    app.stop().await?;
    if bench.config.child {
        bench.child_phase(data_dir.path().to_owned(), &key_lines).await?;
    }
    bench.sandbox.stop().await;

    bench.report.print(!bench.config.smoke);
    if bench.config.smoke {
        println!("smoke run: every scenario ran; targets are only judged under `cargo bench`");
        return Ok(());
    }
    let path = bench.report.write(if bench.config.partial() { "load-partial.json" } else { "load.json" })?;
    println!("JSON: {}", path.display());
    let misses = bench.report.misses();
    println!("{} MISS: {}", misses.len(), misses.join("; "));
    Ok(())
}

impl Bench {
    /// The scenarios on the app in this process. The storm goes first, while exactly N
    /// connections exist; the dashboard's setup then connects clinic 1's four other vendors.
    async fn in_process(&mut self, app: &AppHandle, clinic_one: i64, baseline: f64) -> anyhow::Result<()> {
        if self.config.in_process && self.config.wants("storm") {
            self.storm(app).await?;
        }
        // The child phase's dashboard needs them too.
        Admin::sign_in(&app.url, &seed::admin_email(1), seed::PASSWORD).await?.connect_other_vendors().await?;
        if self.config.in_process && self.config.wants("dashboard") {
            self.dashboard(app, clinic_one, baseline).await?;
        }
        if self.config.in_process && self.config.wants("proxy") {
            self.proxy(app, clinic_one, baseline).await?;
        }
        if self.config.in_process && self.config.wants("flows") {
            self.connect_flows(app, baseline).await?;
        }
        Ok(())
    }

    fn plan(&self) -> Plan {
        self.config.plan
    }

    /// Clinics 2..=admins+1 are the virtual admins' (clinic 1 is the dashboard's and the proxy's).
    fn flow_clinics(&self) -> Vec<usize> {
        (2..=self.config.admins + 1).collect()
    }

    /// N connections, admins, an API key; the database's size and the idle memory. Returns
    /// clinic 1's id.
    async fn setup(&mut self, app: &AppHandle) -> anyhow::Result<i64> {
        let n = self.config.n.max(self.config.admins + 1);
        let seeded = seed::connections(app, &self.sandbox.url, n).await?;
        let started = Instant::now();
        let now = app.now();
        let hash = hash_password(&SecretString::from(seed::PASSWORD))?;
        let admin_clinics: Vec<(usize, i64)> =
            (1..=self.config.admins + 1).map(|i| (i, seeded.clinic_ids[i - 1])).collect();
        seed::admins(&app.db, &admin_clinics, &hash, now).await?;
        let (key, key_hash) = new_api_key()?;
        app.db
            .insert_api_key(seeded.clinic_ids[0], &key_hash, "bench", now)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the bench key label is taken"))?;
        self.api_key = key;
        self.config.n = n;

        let db_bytes = memory::database_bytes(&app.db).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = Process::This.rss();
        println!("setup: {n} connections in {:.1} s", seeded.took.as_secs_f64());

        let per_connection = db_bytes as f64 / n as f64;
        self.report
            .section("setup", json!({ "connections": n, "seconds": (seeded.took + started.elapsed()).as_secs_f64() }));
        self.report.section(
            "database",
            json!({
                "bytes_after_checkpoint": db_bytes,
                "bytes_per_connection": per_connection.round(),
            }),
        );
        self.report.heading(&format!("database ({n} connections, after a WAL checkpoint)"));
        self.report.row("database bytes per connection", format!("{per_connection:.0} B"), None, None);
        self.report.section("in_process_idle_rss_bytes", json!(idle));
        self.report.heading("memory, in process (app + sandbox + load generator share it)");
        self.report.row("RSS idle after setup (in process)", format!("{} MiB", mib(idle)), None, None);
        Ok(seeded.clinic_ids[0])
    }

    async fn baseline(&mut self) -> anyhow::Result<f64> {
        let server = baseline::start()?;
        let request = Request::get(loadgen::client(false)?, server.url.clone());
        let measured =
            scenarios::requests("baseline", request, self.config.concurrency, self.plan(), Process::This).await?;
        server.stop().await;
        self.report.section("baseline", measured.json());
        self.report.heading(&format!("baseline: trivial actix-web server, {} workers", harness::APP_WORKERS));
        self.report.row("baseline requests/s", format!("{:.0}/s", measured.per_second), Some(1.0), None);
        latency_row(&mut self.report, "baseline latency", &measured);
        usage_row(&mut self.report, "baseline (in process, mostly the load generator)", measured.cost, None);
        Ok(measured.per_second)
    }

    async fn storm(&mut self, app: &AppHandle) -> anyhow::Result<()> {
        let storm = scenarios::refresh_storm(app, &self.sandbox, &self.clock, self.config.n).await?;
        anyhow::ensure!(!self.config.smoke || storm.clean(), "smoke: the storm was not clean: {}", storm.json());
        self.report.section("refresh_storm", storm.json());
        self.storm_rows("refresh storm, in process (worker::refresh_due)", &storm, true);
        Ok(())
    }

    fn storm_rows(&mut self, heading: &str, storm: &Storm, in_process: bool) {
        let n = storm.connections;
        let place = if in_process { "in process" } else { "app alone" };
        self.report.heading(heading);
        let seconds = storm.took.as_secs_f64();
        self.report.row(
            &format!("time to refresh all {n} ({place})"),
            format!("{seconds:.2} s ({:.0}/s)", n as f64 / seconds),
            None,
            Some(Target::below(seconds, 5.0, "s")),
        );
        self.report.row(
            &format!("refresh requests at the sandbox ({place})"),
            format!(
                "{} ({} distinct tokens, {} reuse, {} left due)",
                storm.refresh_requests, storm.distinct_refresh_tokens, storm.reuse_detections, storm.left_due
            ),
            None,
            Some(Target { text: format!("= {n}, no duplicates"), pass: storm.clean() }),
        );
        let limit = if in_process { None } else { Some(100.0) };
        usage_row(&mut self.report, &format!("storm ({place})"), storm.cost, limit);
    }

    async fn dashboard(&mut self, app: &AppHandle, clinic_id: i64, baseline: f64) -> anyhow::Result<()> {
        let rows = app.db.connections_of_clinic(clinic_id).await?;
        anyhow::ensure!(rows.iter().filter(|r| r.status == "connected").count() == 5, "clinic 1 lacks a connection");
        let measured =
            scenarios::dashboard(&app.url, &seed::admin_email(1), self.config.concurrency, self.plan(), Process::This)
                .await?;
        self.report.section("dashboard", measured.json());
        self.report.heading("dashboard: GET /connections, a clinic with 5 connections");
        self.report.row(
            "dashboard pages/s",
            format!("{:.0}/s", measured.per_second),
            Some(measured.per_second / baseline),
            Some(Target::at_least(measured.per_second, 10_000.0, "/s")),
        );
        latency_row(&mut self.report, "dashboard latency", &measured);
        usage_row(&mut self.report, "dashboard (in process)", measured.cost, None);
        Ok(())
    }

    async fn proxy(&mut self, app: &AppHandle, clinic_id: i64, baseline: f64) -> anyhow::Result<()> {
        let token = scenarios::access_token(app, clinic_id).await?;
        let proxy = scenarios::proxy_request(&app.url, &self.api_key)?;
        let direct = scenarios::direct_request(&self.sandbox.url, &token)?;
        let c = self.config.concurrency;
        let proxied = scenarios::requests("proxy", proxy.clone(), c, self.plan(), Process::This).await?;
        let straight = scenarios::requests("direct", direct.clone(), c, self.plan(), Process::This).await?;
        let added = scenarios::added_latency(direct, proxy, self.plan()).await?;
        self.report.section(
            "proxy",
            json!({ "proxied": proxied.json(), "direct": straight.json(), "added_latency_one_at_a_time": added.json() }),
        );
        self.report.heading("proxy: POST /api/v1/connections/yappointment/proxy/api/v1/me");
        let ratio = proxied.per_second / baseline;
        self.report.row(
            "proxy calls/s",
            format!("{:.0}/s", proxied.per_second),
            Some(ratio),
            Some(Target { text: "≥ 30 % of baseline".into(), pass: ratio >= 0.30 }),
        );
        usage_row(&mut self.report, "proxy (in process, with the sandbox)", proxied.cost, None);
        self.report.row(
            "sandbox /api/v1/me called directly",
            format!("{:.0}/s", straight.per_second),
            Some(straight.per_second / baseline),
            None,
        );
        self.report.row("added latency p50, one call at a time", format!("{:.3} ms", added.p50_ms()), None, None);
        self.report.row(
            "added latency p99, one call at a time",
            format!("{:.3} ms", added.p99_ms()),
            None,
            Some(Target::below(added.p99_ms(), 2.0, "ms")),
        );
        self.report.row(
            &format!("proxied vs direct p50/p99 at {c} in flight"),
            format!(
                "{:.2}/{:.2} vs {:.2}/{:.2} ms",
                ms(proxied.latency.p50),
                ms(proxied.latency.p99),
                ms(straight.latency.p50),
                ms(straight.latency.p99)
            ),
            None,
            None,
        );
        Ok(())
    }

    async fn connect_flows(&mut self, app: &AppHandle, baseline: f64) -> anyhow::Result<()> {
        let ops = scenarios::flow_ops(&app.url, &self.flow_clinics(), None).await?;
        let flows = scenarios::connect_flows(ops, self.plan(), Process::This).await?;
        // One admin alone: the flow's own latency, without queueing behind 31 others.
        let alone =
            scenarios::connect_flows(scenarios::flow_ops(&app.url, &[2], None).await?, self.plan(), Process::This)
                .await?;
        let attributed = self.attribution_pass(&self.flow_clinics()).await?;
        let at_rate = self.fewest_admins_at_target_rate(app).await?;
        let at_rate_attributed = self.attribution_pass(&(2..=at_rate.0 + 1).collect::<Vec<_>>()).await?;
        self.report.section(
            "connect_flows",
            json!({
                "measured": flows.json(),
                "one_admin_alone": alone.json(),
                "attribution_pass": attributed.json(),
                "fewest_admins_at_1000_per_second": {
                    "admins": at_rate.0,
                    "flows": at_rate.1.json(),
                    "attribution_pass": at_rate_attributed.json(),
                },
            }),
        );
        self.report.heading(&format!("connect flows: {} virtual admins at once", self.config.admins));
        self.report.row(
            "connect flows/s",
            format!("{:.0}/s", flows.per_second),
            Some(flows.per_second / baseline),
            Some(Target::at_least(flows.per_second, 1000.0, "/s")),
        );
        summary_row(&mut self.report, "app part p50/p99 (connect+callback+detail)", flows.app_part, None);
        summary_row(&mut self.report, "POST connect p50/p99", flows.connect, None);
        summary_row(&mut self.report, "GET callback p50/p99 (with its vendor calls)", flows.callback, None);
        summary_row(&mut self.report, "GET detail p50/p99", flows.detail, None);
        let (p50, p99) = (ms(alone.app_part.p50), ms(alone.app_part.p99));
        let value = format!("{p50:.2}/{p99:.2} ms ({:.0} flows/s)", alone.per_second);
        self.report.row("one admin alone: app part p50/p99", value, None, None);
        summary_row(&mut self.report, "one admin alone: callback p50/p99", alone.callback, None);
        self.report.row(
            "attribution pass (vendor via a timing relay)",
            format!("{:.0} flows/s", attributed.per_second),
            None,
            None,
        );
        if let (Some(vendor), Some(callback), Some(app_part)) =
            (attributed.vendor, attributed.callback_without_vendor, attributed.app_part_without_vendor)
        {
            summary_row(&mut self.report, "  vendor calls inside the callback p50/p99", vendor, None);
            summary_row(&mut self.report, "  callback without its vendor calls p50/p99", callback, None);
            summary_row(&mut self.report, "  app part without vendor calls p50/p99", app_part, None);
        }
        // The latency target is judged at the target rate: in a closed loop, 32 admins at X
        // flows/s spend 32/X s per flow (Little's law), so at 32 the figure above is their queue.
        let (admins, at) = at_rate;
        self.report.row(
            "fewest admins reaching 1000 flows/s",
            format!("{admins} admins: {:.0} flows/s", at.per_second),
            Some(at.per_second / baseline),
            Some(Target::at_least(at.per_second, 1000.0, "/s")),
        );
        summary_row(&mut self.report, "  there: app part with its vendor calls p50/p99", at.app_part, None);
        self.report.row(
            "  there: attribution pass",
            format!("{admins} admins: {:.0} flows/s", at_rate_attributed.per_second),
            None,
            None,
        );
        if let (Some(vendor), Some(app_part)) = (at_rate_attributed.vendor, at_rate_attributed.app_part_without_vendor)
        {
            summary_row(&mut self.report, "  there: vendor calls inside the callback p50/p99", vendor, None);
            summary_row(
                &mut self.report,
                "  there: app part without vendor calls p50/p99",
                app_part,
                Some(Target::below(ms(app_part.p99), 10.0, "ms")),
            );
        }
        usage_row(&mut self.report, "connect flows (in process)", flows.cost, None);
        Ok(())
    }

    /// The connect flows with 4, 6, 8… admins, up to the first count that reaches 1,000 flows/s
    /// (or 32): the app part's latency at the target rate rather than at saturation. It includes
    /// the callback's vendor calls, so it is an upper bound of the app's own part.
    async fn fewest_admins_at_target_rate(&self, app: &AppHandle) -> anyhow::Result<(usize, Flows)> {
        let steps: &[usize] = if self.config.smoke { &[2] } else { &[4, 6, 8, 12, 16, 24, 32] };
        let mut last = None;
        for &admins in steps.iter().filter(|&&a| a <= self.config.admins) {
            let clinics: Vec<usize> = (2..=admins + 1).collect();
            let flows = scenarios::connect_flows(
                scenarios::flow_ops(&app.url, &clinics, None).await?,
                self.plan(),
                Process::This,
            )
            .await?;
            let reached = flows.per_second >= 1000.0;
            last = Some((admins, flows));
            if reached {
                break;
            }
        }
        last.ok_or_else(|| anyhow::anyhow!("no admins to run connect flows with"))
    }

    /// The connect flow again on a second app whose vendor is the timing relay, so that each
    /// callback's vendor calls can be subtracted from it.
    async fn attribution_pass(&self, flow_clinics: &[usize]) -> anyhow::Result<Flows> {
        let relay = vendor_timer::start(&self.sandbox.url)?;
        let dir = tempfile::tempdir()?;
        let app = harness::start_app(self.clock.clone(), dir.path(), &relay.url).await?;
        let now = app.now();
        let ids = seed::clinics(&app.db, self.config.admins + 1, now).await?;
        let hash = hash_password(&SecretString::from(seed::PASSWORD))?;
        let clinics: Vec<(usize, i64)> = flow_clinics.iter().map(|&i| (i, ids[i - 1])).collect();
        seed::admins(&app.db, &clinics, &hash, now).await?;
        let ops = scenarios::flow_ops(&app.url, flow_clinics, Some(relay.timer.clone())).await?;
        let flows = scenarios::connect_flows(ops, self.plan(), Process::This).await?;
        app.stop().await?;
        relay.stop().await;
        Ok(flows)
    }

    /// The real binary as a child process on the same database: its own memory, idle and under
    /// each load, and the refresh storm run by its own background worker.
    async fn child_phase(&mut self, data_dir: PathBuf, key_lines: &str) -> anyhow::Result<()> {
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_clinic-connect"));
        let db = Db::open(&clinic_connect::db::Config::sqlite(&data_dir.join("clinic-connect.db"))).await?;
        let child = child::start(&binary, &data_dir, key_lines, &self.sandbox.url, 1).await?;
        println!("child process: pid {} at {}", child.pid, child.url);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle = child.process().rss();
        self.report.heading("the app alone: the clinic-connect binary as a child process");
        self.report.row("RSS idle", format!("{} MiB", mib(idle)), None, Some(megabytes_below(idle, 30.0)));
        let (c, plan, process) = (self.config.concurrency, self.plan(), child.process());
        let mut section = serde_json::Map::new();
        section.insert("idle_rss_bytes".into(), json!(idle));
        if self.config.wants("dashboard") {
            let measured = scenarios::dashboard(&child.url, &seed::admin_email(1), c, plan, process).await?;
            self.child_rows("dashboard", &measured);
            section.insert("dashboard".into(), measured.json());
        }
        if self.config.wants("proxy") {
            let proxy = scenarios::proxy_request(&child.url, &self.api_key)?;
            let measured = scenarios::requests("proxy (child)", proxy, c, plan, process).await?;
            self.child_rows("proxy", &measured);
            section.insert("proxy".into(), measured.json());
        }
        if self.config.wants("flows") {
            let ops = scenarios::flow_ops(&child.url, &self.flow_clinics(), None).await?;
            let before = child.cached_reads().await?;
            let flows = scenarios::connect_flows(ops, plan, process).await?;
            let after = child.cached_reads().await?;
            self.report.row("connect flows/s (app alone)", format!("{:.0}/s", flows.per_second), None, None);
            let (memory, database) = (after.0 - before.0, after.1 - before.1);
            let share = 100.0 * memory as f64 / (memory + database).max(1) as f64;
            let value = format!("{share:.1} % of {} (sessions, admins, connections, history)", memory + database);
            self.report.row("connect flows (app alone): cached reads from memory", value, None, None);
            section.insert("connect_flows_cached_reads".into(), json!({"memory": memory, "database": database}));
            usage_row(&mut self.report, "connect flows (app alone)", flows.cost, Some(100.0));
            section.insert("connect_flows".into(), flows.json());
        }
        if self.config.wants("storm") {
            let n = self.config.n;
            let storm = scenarios::child_refresh_storm(&db, &self.sandbox, &self.clock, process, n).await?;
            anyhow::ensure!(!self.config.smoke || storm.clean(), "smoke: the child's storm: {}", storm.json());
            self.storm_rows("refresh storm in the child, by its own worker (every 1 s)", &storm, false);
            section.insert("refresh_storm".into(), storm.json());
        }
        section.insert("rss_after_everything_bytes".into(), json!(process.rss()));
        child.stop().await?;
        db.close().await;
        self.report.section("child_process", serde_json::Value::Object(section));
        Ok(())
    }

    fn child_rows(&mut self, name: &str, measured: &Throughput) {
        self.report.row(&format!("{name} requests/s (app alone)"), format!("{:.0}/s", measured.per_second), None, None);
        usage_row(&mut self.report, &format!("{name} (app alone)"), measured.cost, Some(100.0));
    }
}

/// RSS "start → peak" (the peak held against `limit_mb` when given), and CPU per run.
fn usage_row(report: &mut Report, name: &str, cost: scenarios::Cost, limit_mb: Option<f64>) {
    let peak = mib(cost.rss_peak);
    let target = limit_mb.map(|limit| megabytes_below(cost.rss_peak, limit));
    let value = format!("{} → {peak} MiB, {:.0} µs CPU/run", mib(cost.rss_start), cost.cpu_us_per_run);
    report.row(&format!("{name}: RSS start → peak, CPU"), value, None, target);
}

/// The targets are in MB (10^6 bytes); the figures are shown in MiB.
fn megabytes_below(bytes: u64, limit_mb: f64) -> Target {
    Target::below(bytes as f64 / 1e6, limit_mb, "MB")
}

fn latency_row(report: &mut Report, name: &str, measured: &Throughput) {
    summary_row(report, &format!("{name} p50/p99"), measured.latency, None);
}

fn summary_row(report: &mut Report, name: &str, summary: stats::Summary, target: Option<Target>) {
    report.row(name, format!("{:.2}/{:.2} ms", ms(summary.p50), ms(summary.p99)), None, target);
}

/// nproc, memory, CPU model and the source revision, for the record.
fn machine() -> serde_json::Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let field = |text: &str, name: &str| {
        text.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_owned())
    };
    let cpuinfo = read("/proc/cpuinfo");
    let meminfo = read("/proc/meminfo");
    // Which source was measured; absent when git is not there.
    let revision = std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    json!({
        "source_revision": revision,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu_model": field(&cpuinfo, "model name"),
        "memory": field(&meminfo, "MemTotal"),
    })
}
