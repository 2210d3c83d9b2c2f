//! Counters and histograms for `GET /metrics`, in Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub enum RefreshOutcome {
    Success,
    ReconnectNeeded,
    /// The vendor refused the app's registration (tokens kept).
    AppRefused,
    Transient,
}

impl RefreshOutcome {
    fn label(self) -> &'static str {
        match self {
            RefreshOutcome::Success => "success",
            RefreshOutcome::ReconnectNeeded => "reconnect_needed",
            RefreshOutcome::AppRefused => "app_refused",
            RefreshOutcome::Transient => "transient_failure",
        }
    }
}

/// What a background health check of a connection came to (a refresh it made is also counted
/// among the refreshes, with its own outcome).
#[derive(Debug, Clone, Copy)]
pub enum HealthOutcome {
    /// The vendor's identity call accepted the connection's token.
    Passed,
    /// The check went on to refresh the connection (no identity call, or it failed).
    Refreshed,
    /// The connection was backing off after a failed refresh; its own retry will tell.
    BackingOff,
    /// Our own error (database, vault…): nothing was learnt about the vendor.
    Error,
}

impl HealthOutcome {
    fn label(self) -> &'static str {
        match self {
            HealthOutcome::Passed => "passed",
            HealthOutcome::Refreshed => "refreshed",
            HealthOutcome::BackingOff => "backing_off",
            HealthOutcome::Error => "error",
        }
    }
}

const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    total: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    /// Refreshes by (vendor, outcome).
    refreshes: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Health checks by (vendor, outcome).
    health_checks: Mutex<BTreeMap<(String, &'static str), u64>>,
    revocation_retries: AtomicU64,
    proxied: AtomicU64,
    care_cache_hits: AtomicU64,
    care_cache_misses: AtomicU64,
    care_searches_refused: AtomicU64,
    care_public_calls: AtomicU64,
    vendor_latency: Mutex<BTreeMap<(String, &'static str), Histogram>>,
}

impl Metrics {
    pub fn refresh(&self, vendor: &str, outcome: RefreshOutcome) {
        let mut map = self.refreshes.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((vendor.to_owned(), outcome.label())).or_default() += 1;
    }

    pub fn health_check(&self, vendor: &str, outcome: HealthOutcome) {
        let mut map = self.health_checks.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((vendor.to_owned(), outcome.label())).or_default() += 1;
    }

    pub fn revocation_retry(&self) {
        self.revocation_retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn proxied(&self) {
        self.proxied.fetch_add(1, Ordering::Relaxed);
    }

    /// A patients' search (or provider page) without a session, served from the cache or not.
    pub fn care_search_cache(&self, hit: bool) {
        let counter = if hit { &self.care_cache_hits } else { &self.care_cache_misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A patients' search refused by the per-address limit.
    pub fn care_search_refused(&self) {
        self.care_searches_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A Zocdoc call made for browsing without a session (with the app's backend token).
    pub fn care_public_zocdoc_call(&self) {
        self.care_public_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// One vendor call: `operation` is token, revoke, identity or api.
    pub fn vendor_call(&self, vendor: &str, operation: &'static str, took: Duration) {
        let seconds = took.as_secs_f64();
        let mut map = self.vendor_latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = map.entry((vendor.to_owned(), operation)).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.total += 1;
        h.sum += seconds;
    }

    /// The text exposition, with the gauges read from the database by the caller.
    pub fn render(
        &self,
        connections: &[(String, String, i64)],
        pending_revocations: i64,
        sql_statements: u64,
    ) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP clinic_connect_connections Connections by vendor and status (a live connection's trouble, \
             vendor_down or app_refused, in place of `connected`)."
        );
        let _ = writeln!(out, "# TYPE clinic_connect_connections gauge");
        for (vendor, status, count) in connections {
            let _ = writeln!(out, "clinic_connect_connections{{vendor=\"{vendor}\",status=\"{status}\"}} {count}");
        }
        let _ = writeln!(out, "# HELP clinic_connect_refreshes_total Token refreshes by vendor and outcome.");
        let _ = writeln!(out, "# TYPE clinic_connect_refreshes_total counter");
        for ((vendor, outcome), count) in self.refreshes.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ =
                writeln!(out, "clinic_connect_refreshes_total{{vendor=\"{vendor}\",outcome=\"{outcome}\"}} {count}");
        }
        let _ =
            writeln!(out, "# HELP clinic_connect_health_checks_total Background health checks by vendor and outcome.");
        let _ = writeln!(out, "# TYPE clinic_connect_health_checks_total counter");
        for ((vendor, outcome), count) in self.health_checks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "clinic_connect_health_checks_total{{vendor=\"{vendor}\",outcome=\"{outcome}\"}} {count}"
            );
        }
        let _ = writeln!(out, "# HELP clinic_connect_revocations_pending Revocations waiting to be retried.");
        let _ = writeln!(out, "# TYPE clinic_connect_revocations_pending gauge");
        let _ = writeln!(out, "clinic_connect_revocations_pending {pending_revocations}");
        let _ =
            writeln!(out, "# HELP clinic_connect_revocation_retries_total Revocation attempts made after a failure.");
        let _ = writeln!(out, "# TYPE clinic_connect_revocation_retries_total counter");
        let _ = writeln!(
            out,
            "clinic_connect_revocation_retries_total {}",
            self.revocation_retries.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP clinic_connect_proxied_requests_total Requests forwarded through the API proxy.");
        let _ = writeln!(out, "# TYPE clinic_connect_proxied_requests_total counter");
        let _ = writeln!(out, "clinic_connect_proxied_requests_total {}", self.proxied.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP clinic_connect_sql_statements_total SQL statements this instance sent (BEGIN and COMMIT included)."
        );
        let _ = writeln!(out, "# TYPE clinic_connect_sql_statements_total counter");
        let _ = writeln!(out, "clinic_connect_sql_statements_total {sql_statements}");
        let _ = writeln!(
            out,
            "# HELP clinic_connect_care_search_cache_total Patients' searches and provider pages without a session, by \
             whether the cache answered."
        );
        let _ = writeln!(out, "# TYPE clinic_connect_care_search_cache_total counter");
        for (result, counter) in [("hit", &self.care_cache_hits), ("miss", &self.care_cache_misses)] {
            let _ = writeln!(
                out,
                "clinic_connect_care_search_cache_total{{result=\"{result}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP clinic_connect_care_searches_refused_total Patients' searches refused by the per-address limit."
        );
        let _ = writeln!(out, "# TYPE clinic_connect_care_searches_refused_total counter");
        let _ = writeln!(
            out,
            "clinic_connect_care_searches_refused_total {}",
            self.care_searches_refused.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP clinic_connect_care_public_zocdoc_calls_total Zocdoc calls made for browsing without a session."
        );
        let _ = writeln!(out, "# TYPE clinic_connect_care_public_zocdoc_calls_total counter");
        let _ = writeln!(
            out,
            "clinic_connect_care_public_zocdoc_calls_total {}",
            self.care_public_calls.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP clinic_connect_vendor_request_seconds Latency of calls to vendors.");
        let _ = writeln!(out, "# TYPE clinic_connect_vendor_request_seconds histogram");
        let map = self.vendor_latency.lock().unwrap_or_else(|e| e.into_inner());
        for ((vendor, operation), h) in map.iter() {
            let labels = format!("vendor=\"{vendor}\",operation=\"{operation}\"");
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let _ =
                    writeln!(out, "clinic_connect_vendor_request_seconds_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "clinic_connect_vendor_request_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.total);
            let _ = writeln!(out, "clinic_connect_vendor_request_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "clinic_connect_vendor_request_seconds_count{{{labels}}} {}", h.total);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_cumulative_buckets() {
        let m = Metrics::default();
        m.refresh("yappointment", RefreshOutcome::Success);
        m.health_check("drchrono", HealthOutcome::Passed);
        m.vendor_call("yappointment", "token", Duration::from_millis(20));
        m.care_search_cache(true);
        m.care_search_cache(false);
        m.care_search_cache(false);
        m.care_search_refused();
        m.care_public_zocdoc_call();
        m.vendor_call("yappointment", "token", Duration::from_millis(300));
        let text = m.render(&[("yappointment".into(), "connected".into(), 3)], 1, 7);
        assert!(text.contains("clinic_connect_connections{vendor=\"yappointment\",status=\"connected\"} 3"));
        assert!(text.contains("clinic_connect_refreshes_total{vendor=\"yappointment\",outcome=\"success\"} 1"));
        assert!(text.contains("clinic_connect_health_checks_total{vendor=\"drchrono\",outcome=\"passed\"} 1"));
        assert!(text.contains("clinic_connect_revocations_pending 1"));
        assert!(text.contains("clinic_connect_sql_statements_total 7"));
        assert!(text.contains("clinic_connect_care_search_cache_total{result=\"hit\"} 1"));
        assert!(text.contains("clinic_connect_care_search_cache_total{result=\"miss\"} 2"));
        assert!(text.contains("clinic_connect_care_searches_refused_total 1"));
        assert!(text.contains("clinic_connect_care_public_zocdoc_calls_total 1"));
        assert!(text.contains("operation=\"token\",le=\"0.025\"} 1"));
        assert!(text.contains("operation=\"token\",le=\"0.5\"} 2"));
        assert!(
            text.contains("clinic_connect_vendor_request_seconds_count{vendor=\"yappointment\",operation=\"token\"} 2")
        );
    }
}
