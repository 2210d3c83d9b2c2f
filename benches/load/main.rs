//! `cargo bench --bench load`: the app and its sandbox on loopback, and for each engine — SQLite,
//! then PostgreSQL — a fresh database of N connections and the load scenarios of BENCHMARKS.md:
//! a refresh storm (and on PostgreSQL the same storm shared by two instances), dashboard pages,
//! proxy calls against the same run's constant-string baseline, one admin's connect flows, and
//! the release binary's memory under each load. Every scenario also counts the SQL statements
//! it cost per request. Both engines' figures are printed side by side and written to
//! `target/bench/load.json`.
//!
//! PostgreSQL runs on a throwaway cluster the bench starts itself (`scripts/postgres init`, which
//! installs postgresql when missing) and always destroys, also when the run fails or panics.
//!
//! Without `--bench` (that is, under `cargo test --all-targets`) the same program runs as a short
//! smoke test: tiny N and windows, both engines, no targets judged, but every scenario must
//! succeed and every storm must refresh each connection exactly once.
//!
//! Knobs: `BENCH_N` (connections, 10000), `BENCH_SECONDS` (measured window per scenario, 6),
//! `BENCH_CONCURRENCY` (load tasks, 32). For profiling one thing: `BENCH_ENGINES` (`sqlite`,
//! `postgres` or both), `BENCH_ONLY` (comma-separated of storm, dashboard, proxy, flow),
//! `BENCH_IN_PROCESS=0` and `BENCH_CHILD=0` to skip a phase; a partial run writes
//! `load-partial.json` instead.

mod baseline;
mod child;
mod engine;
mod flows;
mod harness;
mod loadgen;
mod memory;
mod phases;
mod report;
mod scenarios;
mod seed;
mod statements;
mod stats;

use std::time::Duration;

use serde_json::json;

use crate::engine::{Cluster, Engine};
use crate::loadgen::Plan;
use crate::report::Report;

pub struct Config {
    smoke: bool,
    n: usize,
    plan: Plan,
    concurrency: usize,
    engines: Vec<Engine>,
    /// Scenarios to run; `None` for all.
    only: Option<Vec<String>>,
    in_process: bool,
    child: bool,
}

impl Config {
    fn from_env() -> anyhow::Result<Self> {
        let list = |name: &str| {
            std::env::var(name).ok().map(|v| v.split(',').map(|s| s.trim().to_owned()).collect::<Vec<_>>())
        };
        let engines = match list("BENCH_ENGINES") {
            None => Engine::ALL.to_vec(),
            Some(names) => names
                .iter()
                .map(|n| Engine::ALL.into_iter().find(|e| e.id() == n).ok_or_else(|| anyhow::anyhow!("no engine {n}")))
                .collect::<anyhow::Result<_>>()?,
        };
        // `cargo bench` passes --bench; `cargo test` runs bench targets without it.
        if !std::env::args().any(|a| a == "--bench") {
            let plan = Plan { warmup: Duration::from_millis(100), measure: Duration::from_millis(300) };
            let (only, in_process, child) = (None, true, true);
            return Ok(Self { smoke: true, n: 20, plan, concurrency: 2, engines, only, in_process, child });
        }
        let number =
            |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        Ok(Self {
            smoke: false,
            n: number("BENCH_N", 10_000) as usize,
            plan: Plan { warmup: Duration::from_secs(1), measure: Duration::from_secs(number("BENCH_SECONDS", 6)) },
            concurrency: number("BENCH_CONCURRENCY", 32) as usize,
            engines,
            only: list("BENCH_ONLY"),
            in_process: number("BENCH_IN_PROCESS", 1) != 0,
            child: number("BENCH_CHILD", 1) != 0,
        })
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.iter().any(|s| s == scenario))
    }

    fn partial(&self) -> bool {
        self.only.is_some() || !self.in_process || !self.child || self.engines.len() < Engine::ALL.len()
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "connections": self.n,
            "engines": self.engines.iter().map(|e| e.id()).collect::<Vec<_>>(),
            "warmup_seconds": self.plan.warmup.as_secs_f64(),
            "measured_seconds_per_scenario": self.plan.measure.as_secs_f64(),
            "load_concurrency": self.concurrency,
            "app_workers": harness::APP_WORKERS,
            "sandbox_workers": harness::SANDBOX_WORKERS,
            "load_generator_threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        })
    }
}

fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    // Made before the runtime and dropped after it: whatever happens in the run (an error, a
    // panic unwinding through `main`, Ctrl-C), the cluster is destroyed on the way out.
    let cluster = if config.engines.contains(&Engine::Postgres) { Some(Cluster::start()?) } else { None };
    // The load generator's runtime: one thread per core, like the app's two server workers.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        tokio::select! {
            result = run(config, cluster.as_ref()) => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    // The apps' pools go before their cluster does.
    drop(runtime);
    drop(cluster);
    result
}

async fn run(config: Config, cluster: Option<&Cluster>) -> anyhow::Result<()> {
    let mut report = Report::default();
    report.section(None, "machine", machine());
    report.section(None, "config", config.json());
    println!("clinic-connect load benchmark{}", if config.smoke { " (smoke run)" } else { "" });
    for engine in &config.engines {
        phases::run(*engine, &config, cluster, &mut report).await?;
    }

    report.print(!config.smoke);
    if config.smoke {
        println!("smoke run: every scenario ran on both engines; targets are only judged under `cargo bench`");
        return Ok(());
    }
    let path = report.write(if config.partial() { "load-partial.json" } else { "load.json" })?;
    println!("JSON: {}", path.display());
    let misses = report.misses();
    println!("{} MISS: {}", misses.len(), misses.join("; "));
    Ok(())
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
