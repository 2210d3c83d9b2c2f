//! Sign-in throttling: at most `PER_EMAIL` failed sign-ins per email and `PER_CLIENT` per client
//! address in `WINDOW_SECONDS`; past either, every sign-in for that email or from that address
//! is refused — a right password included — until enough failures leave the window.
//!
//! The failures are counted in the database (`db::sign_in`), so the limits hold across
//! instances and restarts. The email is kept only as a lookup hash of its lower-cased form: the
//! table says how often an address was tried, not who. An unknown email counts exactly like a
//! known one, so the limit tells an attacker nothing about which emails exist.

use std::net::IpAddr;

use crate::client_addr::limit_key;
use crate::clock::UnixTime;
use crate::db::sign_in::Failures;
use crate::db::Db;
use crate::vault::lookup_hash;

pub const WINDOW_SECONDS: i64 = 15 * 60;
pub const PER_EMAIL: i64 = 5;
pub const PER_CLIENT: i64 = 20;

/// Who a sign-in attempt counts against: the email's hash and the client's limit key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    email_hash: String,
    client: String,
}

impl Attempt {
    pub fn new(email: &str, client: IpAddr) -> Self {
        Self { email_hash: lookup_hash(&email.trim().to_lowercase()), client: limit_key(client).to_string() }
    }

    /// `Some(seconds to wait)` when this attempt must be refused without looking at the password.
    pub async fn refused_for(&self, db: &Db, now: UnixTime) -> sqlx::Result<Option<i64>> {
        let (by_email, by_client) = db.sign_in_failures(&self.email_hash, &self.client, now - WINDOW_SECONDS).await?;
        Ok(wait(by_email, by_client, now))
    }

    pub async fn failed(&self, db: &Db, now: UnixTime) -> sqlx::Result<()> {
        db.record_sign_in_failure(&self.email_hash, &self.client, now).await
    }

    /// A success starts the email's count afresh; the address keeps its failures.
    pub async fn succeeded(&self, db: &Db) -> sqlx::Result<()> {
        db.clear_sign_in_failures(&self.email_hash).await
    }
}

/// How long until a sign-in may be tried again, given the failures in the window; `None` when
/// it may be tried now. The wait lasts until the oldest failure leaves the window.
pub fn wait(by_email: Failures, by_client: Failures, now: UnixTime) -> Option<i64> {
    let over = |f: Failures, limit: i64| {
        (f.count >= limit).then(|| f.oldest.map_or(WINDOW_SECONDS, |oldest| oldest + WINDOW_SECONDS - now).max(1))
    };
    match (over(by_email, PER_EMAIL), over(by_client, PER_CLIENT)) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).max(b.unwrap_or(0))),
    }
}

/// The wait in words for the sign-in page: whole minutes, rounded up.
pub fn in_words(seconds: i64) -> String {
    match (seconds.max(1) + 59) / 60 {
        1 => "1 minute".to_owned(),
        minutes => format!("{minutes} minutes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(count: i64, oldest: Option<UnixTime>) -> Failures {
        Failures { count, oldest }
    }

    #[test]
    fn under_both_limits_a_sign_in_may_be_tried() {
        assert_eq!(wait(failures(4, Some(100)), failures(19, Some(100)), 200), None);
        assert_eq!(wait(Failures::default(), Failures::default(), 200), None);
    }

    #[test]
    fn at_either_limit_the_wait_lasts_until_the_oldest_failure_leaves_the_window() {
        assert_eq!(wait(failures(5, Some(1000)), failures(5, Some(1000)), 1100), Some(WINDOW_SECONDS - 100));
        assert_eq!(wait(failures(0, None), failures(20, Some(1000)), 1010), Some(WINDOW_SECONDS - 10));
        // Both over: the longer wait.
        assert_eq!(wait(failures(5, Some(1000)), failures(20, Some(900)), 1000), Some(WINDOW_SECONDS));
        // Never less than a second, even at the window's edge.
        assert_eq!(wait(failures(5, Some(1000)), Failures::default(), 1000 + WINDOW_SECONDS), Some(1));
    }

    #[test]
    fn emails_count_whatever_their_case_and_spaces_and_ipv6_clients_by_their_slash_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let a = Attempt::new(" Admin@Clinic-A.test ", ip("2001:db8::1"));
        let b = Attempt::new("admin@clinic-a.test", ip("2001:db8::2"));
        assert_eq!(a, b);
        assert!(!a.email_hash.contains("admin"), "only a hash of the email is kept");
        assert_ne!(
            Attempt::new("admin@clinic-a.test", ip("192.0.2.1")),
            Attempt::new("admin@clinic-a.test", ip("192.0.2.2"))
        );
    }

    #[test]
    fn waits_are_said_in_whole_minutes() {
        assert_eq!(in_words(1), "1 minute");
        assert_eq!(in_words(60), "1 minute");
        assert_eq!(in_words(61), "2 minutes");
        assert_eq!(in_words(WINDOW_SECONDS), "15 minutes");
    }
}
