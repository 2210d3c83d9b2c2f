//! Resident memory and CPU time from `/proc/{pid}`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Whose memory and CPU: this process (app, sandbox and load generator together) or a child's.
#[derive(Clone, Copy, Debug)]
pub enum Process {
    This,
    Child(u32),
}

impl Process {
    fn proc_dir(self) -> String {
        match self {
            Process::This => "/proc/self".to_owned(),
            Process::Child(pid) => format!("/proc/{pid}"),
        }
    }

    /// A `kB` field of `status` (`VmRSS`, `VmHWM`), in bytes.
    pub fn status_bytes(self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("{}/status", self.proc_dir())).ok()?;
        let line = status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
        let kb: u64 = line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    }

    pub fn rss(self) -> u64 {
        self.status_bytes("VmRSS").unwrap_or(0)
    }

    /// User + system CPU time so far, in seconds (`stat` fields 14 and 15, in USER_HZ = 100).
    pub fn cpu_seconds(self) -> f64 {
        let stat = std::fs::read_to_string(format!("{}/stat", self.proc_dir())).unwrap_or_default();
        // The command name may contain spaces; the fields after it may not.
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        (ticks(11) + ticks(12)) as f64 / 100.0
    }

    /// Resets the peak (`VmHWM`) to the current RSS (Linux ≥ 4.0), so that a phase's peak is
    /// its own. Without it, the sampled peak still stands.
    pub fn reset_peak(self) -> bool {
        std::fs::write(format!("{}/clear_refs", self.proc_dir()), "5").is_ok()
    }
}

/// What a process used during a phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// RSS when the phase started, in bytes.
    pub rss_start: u64,
    /// The highest RSS during the phase, in bytes.
    pub rss_peak: u64,
    /// CPU time the process spent during the phase.
    pub cpu_seconds: f64,
}

/// Watches a process during a phase. The highest RSS is sampled every few milliseconds, and
/// `VmHWM` (reset at the start) catches a spike between two samples.
pub struct Watch {
    process: Process,
    start: u64,
    cpu_start: f64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    hwm_reset: bool,
}

impl Watch {
    pub fn start(process: Process) -> Self {
        let cpu_start = process.cpu_seconds();
        let hwm_reset = process.reset_peak();
        let start = process.rss();
        let peak = Arc::new(AtomicU64::new(start));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(process.rss(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self { process, start, cpu_start, peak, stop, task, hwm_reset }
    }

    pub async fn finish(self) -> Usage {
        let cpu_seconds = self.process.cpu_seconds() - self.cpu_start;
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let sampled = self.peak.load(Ordering::Relaxed).max(self.process.rss());
        let hwm = if self.hwm_reset { self.process.status_bytes("VmHWM").unwrap_or(0) } else { 0 };
        Usage { rss_start: self.start, rss_peak: sampled.max(hwm), cpu_seconds }
    }
}

pub fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}
