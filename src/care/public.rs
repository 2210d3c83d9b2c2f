//! What browsing without a session may cost: results of public searches and provider pages are
//! kept for a minute (a few thousand of them) and shared by every visitor, and each client
//! address may search only so often. Counted in `/metrics`.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::cache::TtlCache;
use super::limit::Limiter;
use super::zocdoc::{Provider, Slot};
use crate::clock::UnixTime;
use crate::metrics::Metrics;

/// How long a public answer is reused.
pub const CACHE_SECONDS: i64 = 60;
/// How many public answers are kept at most.
pub const CACHE_ENTRIES: usize = 4096;
/// How many providers and open times they may hold in all (about 100 bytes each).
pub const CACHE_WEIGHT: usize = 500_000;
/// Searches (and provider pages) per client address per minute.
pub const SEARCHES_PER_MINUTE: u32 = 30;
/// Addresses tracked at once by the limit.
const LIMIT_ENTRIES: usize = 65_536;

/// Providers and their open times, as one page shows them.
#[derive(Debug, Default)]
pub struct Found {
    pub providers: Vec<Provider>,
    pub slots: Vec<Slot>,
}

pub struct PublicBrowsing {
    cache: Mutex<TtlCache<Found>>,
    limiter: Mutex<Limiter>,
    metrics: Arc<Metrics>,
}

impl PublicBrowsing {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            cache: Mutex::new(TtlCache::new(CACHE_ENTRIES, CACHE_WEIGHT, CACHE_SECONDS)),
            limiter: Mutex::new(Limiter::new(SEARCHES_PER_MINUTE, 60, LIMIT_ENTRIES)),
            metrics,
        }
    }

    /// Counts a search by this address; `Err(seconds to wait)` when it is over the limit.
    pub fn allow_search(&self, addr: IpAddr, now: UnixTime) -> Result<(), i64> {
        let verdict = self.limiter.lock().unwrap_or_else(|e| e.into_inner()).check(addr, now);
        if verdict.is_err() {
            self.metrics.care_search_refused();
        }
        verdict
    }

    pub fn cached(&self, key: &str, now: UnixTime) -> Option<Arc<Found>> {
        let found = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(key, now);
        self.metrics.care_search_cache(found.is_some());
        found
    }

    pub fn remember(&self, key: String, found: Arc<Found>, now: UnixTime) {
        let weight = 1 + found.providers.len() + found.slots.len();
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, found, weight, now);
    }

    /// One call to Zocdoc made for browsing without a session.
    pub fn zocdoc_call(&self) {
        self.metrics.care_public_zocdoc_call();
    }
}

/// The cache key of a search: case, surrounding and repeated spaces do not make another search.
pub fn search_key(query: &str, specialty: &str) -> String {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    format!("search\n{}\n{}", norm(query), norm(specialty))
}

pub fn provider_key(id: &str) -> String {
    format!("provider\n{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_keys_are_normalised() {
        assert_eq!(search_key("  Dr  Chen ", "DENTISTRY"), search_key("dr chen", "dentistry"));
        assert_ne!(search_key("chen", ""), search_key("", "chen"));
        assert_ne!(search_key("pr_1", ""), provider_key("pr_1"));
    }
}
