//! A per-client-address limit on patients' searches, in this instance's memory: at most
//! `limit` in each `window` seconds. An IPv6 client counts by its /64 (one host usually has the
//! whole block). The table is bounded: when it is full of live windows, addresses not in it are
//! refused until windows end, so a flood from many addresses still cannot spend vendor calls.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::clock::UnixTime;

pub struct Limiter {
    limit: u32,
    window_seconds: i64,
    capacity: usize,
    /// Address → (window start, requests in it).
    windows: HashMap<IpAddr, (UnixTime, u32)>,
}

/// The key an address counts under.
fn bucket(addr: IpAddr) -> IpAddr {
    crate::client_addr::limit_key(addr)
}

impl Limiter {
    pub fn new(limit: u32, window_seconds: i64, capacity: usize) -> Self {
        Self { limit, window_seconds: window_seconds.max(1), capacity: capacity.max(1), windows: HashMap::new() }
    }

    /// Counts one request; `Err(seconds)` to wait when the address is over its limit.
    pub fn check(&mut self, addr: IpAddr, now: UnixTime) -> Result<(), i64> {
        let key = bucket(addr);
        let window = self.window_seconds;
        if !self.windows.contains_key(&key) && self.windows.len() >= self.capacity {
            self.windows.retain(|_, (start, _)| now - *start < window);
            if self.windows.len() >= self.capacity {
                let oldest = self.windows.values().map(|(start, _)| *start).min().unwrap_or(now);
                return Err((oldest + window - now).max(1));
            }
        }
        let entry = self.windows.entry(key).or_insert((now, 0));
        if now - entry.0 >= window || now < entry.0 {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return Err((entry.0 + window - now).max(1));
        }
        entry.1 += 1;
        Ok(())
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
    fn an_address_gets_its_limit_per_window_then_waits() {
        let mut l = Limiter::new(3, 60, 100);
        for _ in 0..3 {
            l.check(ip("192.0.2.1"), 1000).unwrap();
        }
        assert_eq!(l.check(ip("192.0.2.1"), 1010), Err(50));
        assert!(l.check(ip("192.0.2.2"), 1010).is_ok(), "another address has its own count");
        assert!(l.check(ip("::ffff:192.0.2.1"), 1059).is_err(), "the mapped form is the same client");
        assert!(l.check(ip("192.0.2.1"), 1060).is_ok(), "a new window");
    }

    #[test]
    fn ipv6_counts_by_slash_64() {
        let mut l = Limiter::new(1, 60, 100);
        l.check(ip("2001:db8:1:2::1"), 0).unwrap();
        assert!(l.check(ip("2001:db8:1:2:ffff::9"), 0).is_err());
        assert!(l.check(ip("2001:db8:1:3::1"), 0).is_ok());
    }

    #[test]
    fn a_full_table_refuses_newcomers_until_windows_end() {
        let mut l = Limiter::new(5, 60, 2);
        l.check(ip("192.0.2.1"), 0).unwrap();
        l.check(ip("192.0.2.2"), 10).unwrap();
        assert_eq!(l.check(ip("192.0.2.3"), 20), Err(40));
        assert!(l.check(ip("192.0.2.1"), 20).is_ok(), "known addresses keep their count");
        assert!(l.check(ip("192.0.2.3"), 60).is_ok(), "the oldest window ended");
        assert!(l.windows.len() <= 2);
    }
}
