//! The real binary as a child process, so that its memory is its own: the load generator and
//! the sandbox stay in this process. It serves the database the in-process phases built, with
//! the same keys, and talks to this process's sandbox (`CLINIC_CONNECT_SANDBOX_URL`).

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

    /// The app's cached reads so far, from its `/metrics`: (from memory, from SQLite).
    pub async fn cached_reads(&self) -> anyhow::Result<(u64, u64)> {
        let text = reqwest::Client::new().get(format!("{}/metrics", self.url)).send().await?.text().await?;
        let count = |source: &str| -> anyhow::Result<u64> {
            let prefix = format!("clinic_connect_cached_reads_total{{source=\"{source}\"}} ");
            let line = text.lines().find_map(|l| l.strip_prefix(&prefix));
            Ok(line.ok_or_else(|| anyhow::anyhow!("no {prefix} in /metrics"))?.trim().parse()?)
        };
        Ok((count("memory")?, count("database")?))
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// `clinic-connect serve` with logs at `warn`, its worker checking for due refreshes every
/// `worker_interval` seconds.
pub async fn start(
    binary: &Path,
    data_dir: &Path,
    key_lines: &str,
    sandbox_url: &str,
    worker_interval: u64,
) -> anyhow::Result<ChildApp> {
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
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let pid = child.id().ok_or_else(|| anyhow::anyhow!("the child exited at once"))?;
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
