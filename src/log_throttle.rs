//! At most one log line per client address per period, for warnings a flood could repeat
//! thousands of times a second (an unknown API key, tried in a loop). Lines are only
//! information, so this lives in each instance's memory: several instances may each write one.
//!
//! The table is bounded: when it is full of addresses still in their period, a newcomer's line
//! is dropped, so a flood from many addresses costs at most `capacity` lines per period.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::client_addr::limit_key;
use crate::clock::UnixTime;

pub struct LogThrottle {
    period_seconds: i64,
    capacity: usize,
    /// Limit key → (when its last line was written, lines held back since).
    last: Mutex<HashMap<IpAddr, (UnixTime, u64)>>,
}

impl LogThrottle {
    pub fn new(period_seconds: i64, capacity: usize) -> Self {
        Self { period_seconds: period_seconds.max(1), capacity: capacity.max(1), last: Mutex::new(HashMap::new()) }
    }

    /// `Some(lines held back since this address's last line)` when a line may be written now.
    pub fn allow(&self, addr: IpAddr, now: UnixTime) -> Option<u64> {
        let key = limit_key(addr);
        let period = self.period_seconds;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if !last.contains_key(&key) && last.len() >= self.capacity {
            last.retain(|_, (at, _)| now - *at < period && now >= *at);
            if last.len() >= self.capacity {
                return None;
            }
        }
        let entry = last.entry(key).or_insert((now - period, 0));
        if now - entry.0 < period && now >= entry.0 {
            entry.1 += 1;
            return None;
        }
        let held_back = entry.1;
        *entry = (now, 0);
        Some(held_back)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_line_per_address_per_period_and_the_next_says_how_many_were_held_back() {
        let t = LogThrottle::new(60, 100);
        assert_eq!(t.allow(ip("192.0.2.1"), 1000), Some(0));
        for s in 1..60 {
            assert_eq!(t.allow(ip("192.0.2.1"), 1000 + s), None);
        }
        assert_eq!(t.allow(ip("192.0.2.2"), 1030), Some(0), "another address has its own line");
        assert_eq!(t.allow(ip("192.0.2.1"), 1060), Some(59));
        assert_eq!(t.allow(ip("192.0.2.1"), 1061), None);
    }

    #[test]
    fn a_full_table_drops_newcomers_lines_until_periods_end() {
        let t = LogThrottle::new(60, 2);
        assert!(t.allow(ip("192.0.2.1"), 0).is_some());
        assert!(t.allow(ip("192.0.2.2"), 10).is_some());
        assert_eq!(t.allow(ip("192.0.2.3"), 20), None);
        assert!(t.allow(ip("192.0.2.3"), 60).is_some(), "the first address's period ended");
        assert!(t.last.lock().unwrap().len() <= 2);
    }

    #[test]
    fn a_clock_that_goes_back_does_not_silence_an_address() {
        let t = LogThrottle::new(60, 10);
        assert!(t.allow(ip("192.0.2.1"), 1000).is_some());
        assert!(t.allow(ip("192.0.2.1"), 900).is_some());
    }
}
