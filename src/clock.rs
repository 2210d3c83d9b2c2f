//! Time comes from a clock passed in, so expiry logic can be tested without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use time::OffsetDateTime;

/// Seconds since the Unix epoch. Everything we store or compare is whole seconds.
pub type UnixTime = i64;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixTime;
}

pub type SharedClock = Arc<dyn Clock>;

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        OffsetDateTime::now_utc().unix_timestamp()
    }
}

/// A clock that only moves when told to. Used by tests and the benchmark; never by `serve`.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    pub fn starting_now() -> Arc<Self> {
        Arc::new(Self { now: AtomicI64::new(SystemClock.now()) })
    }

    pub fn advance(&self, seconds: i64) {
        self.now.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.now.load(Ordering::SeqCst)
    }
}

/// Renders a stored time for people: `2026-11-22 09:41 UTC`.
pub fn format_utc(t: UnixTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&format).ok())
        .unwrap_or_else(|| "unknown".to_owned())
}
