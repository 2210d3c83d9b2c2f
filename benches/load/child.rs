//! The real binary as a child process, so that its memory is its own: the load generator and
//! the sandbox stay in this process. It serves the database the in-process phases built (on
//! either engine), with the same keys, and talks to this process's sandbox
//! (`CLINIC_CONNECT_SANDBOX_URL`).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::memory::Process;

pub struct ChildApp {
    /// `http://127.0.0.1:{port}`, without a trailing slash.
    pub url: String,
    pub pid: u32,
    child: Child,
}

impl ChildApp {
    pub fn process(&self) -> Process {
        Process::Child(self.pid)
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// `clinic-connect serve` with logs at `warn`, on the database in `data_dir` or at
/// `database_url`, its worker checking for due refreshes every `worker_interval` seconds.
pub async fn start(
    data_dir: &Path,
    database_url: Option<&str>,
    key_lines: &str,
    sandbox_url: &str,
    worker_interval: u64,
) -> anyhow::Result<ChildApp> {
    let binary = env!("CARGO_BIN_EXE_clinic-connect");
    // For profiling: the child's `RUST_LOG`, and then every line it logs is shown.
    let log = std::env::var("BENCH_CHILD_LOG").ok();
    let show_all = log.is_some();
    let mut command = Command::new(binary);
    command.arg("serve");
    for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("CLINIC_CONNECT_")) {
        command.env_remove(name);
    }
    for (name, value) in key_lines.lines().filter_map(|l| l.split_once('=')) {
        command.env(name, value);
    }
    command
        .env("CLINIC_CONNECT_LISTEN", "127.0.0.1:0")
        .env("CLINIC_CONNECT_DATA_DIR", data_dir)
        .env("CLINIC_CONNECT_SANDBOX_URL", format!("{}/", sandbox_url.trim_end_matches('/')))
        .env("CLINIC_CONNECT_WORKER_INTERVAL_SECONDS", worker_interval.to_string())
        .env("CLINIC_CONNECT_VENDOR_TIMEOUT_SECONDS", "10")
        .env("RUST_LOG", log.as_deref().unwrap_or("warn"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Ok(pool) = std::env::var("BENCH_CHILD_POOL") {
        command.env("CLINIC_CONNECT_DATABASE_MAX_CONNECTIONS", pool);
    }
    if let Some(url) = database_url {
        command.env("CLINIC_CONNECT_DATABASE_URL", url);
    }
    let mut child = command.spawn()?;
    let pid = child.id().ok_or_else(|| anyhow::anyhow!("the child exited at once"))?;
    // Its warnings and errors are shown; the start-up lines some dependencies log at `info`
    // whatever `RUST_LOG` says are not (unless `BENCH_CHILD_LOG` asks for its logs).
    let stderr = child.stderr.take().ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if show_all || line.contains(" WARN ") || line.contains(" ERROR ") {
                eprintln!("child: {line}");
            }
        }
    });
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix("clinic-connect is running at ") {
                return Ok(url.trim().trim_end_matches('/').to_owned());
            }
        }
        anyhow::bail!("the child closed its output before it was running")
    })
    .await??;
    // Keep reading, so that the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(ChildApp { url, pid, child })
}
