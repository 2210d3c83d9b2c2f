//! What the admin is shown about a connection's state: one badge per state (its words, a mark
//! and a colour: never colour alone), which states need attention and in what order, and for
//! each broken state one plain sentence saying what happened and whose action fixes it, with the
//! technical detail kept apart for a "Details" disclosure.

use crate::clock::{format_utc, UnixTime};
use crate::connections::STATUS_CONNECTED;
use crate::db::connections::ConnectionRow;
use crate::tokens::{STATUS_KEY_MISSING, STATUS_RECONNECT_NEEDED, TROUBLE_APP_REFUSED};

/// A connection's state as the pages show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Connected,
    /// Connected, and a refresh (or a health check) holds its lease right now.
    Refreshing,
    /// Connected, but refreshes fail for a passing reason; retried with backoff.
    VendorDown,
    /// Connected, but the vendor refuses the app's registration (the tokens are kept).
    AppRefused,
    ReconnectNeeded,
    KeyMissing,
    NotConnected,
}

impl Status {
    /// From a row's stored status and trouble, and whether someone holds its lease now.
    pub fn of(status: &str, trouble: Option<&str>, leased: bool) -> Self {
        match (status, trouble) {
            (STATUS_RECONNECT_NEEDED, _) => Status::ReconnectNeeded,
            (STATUS_KEY_MISSING, _) => Status::KeyMissing,
            (STATUS_CONNECTED, Some(TROUBLE_APP_REFUSED)) => Status::AppRefused,
            // A trouble this version does not know is still trouble: shown as a passing one.
            (STATUS_CONNECTED, Some(_)) => Status::VendorDown,
            (STATUS_CONNECTED, None) if leased => Status::Refreshing,
            (STATUS_CONNECTED, None) => Status::Connected,
            _ => Status::NotConnected,
        }
    }

    pub fn of_row(row: Option<&ConnectionRow>, now: UnixTime) -> Self {
        match row {
            None => Status::NotConnected,
            Some(r) => {
                let leased = r.lease_owner.is_some() && r.lease_until.is_some_and(|until| until > now);
                Status::of(&r.status, r.trouble.as_deref(), leased)
            }
        }
    }

    /// The badge's words.
    pub fn label(self) -> &'static str {
        match self {
            Status::Connected => "Connected",
            Status::Refreshing => "Refreshing",
            Status::VendorDown => "Vendor down (retrying)",
            Status::AppRefused => "Vendor refuses the app",
            Status::ReconnectNeeded => "Reconnect needed",
            Status::KeyMissing => "Key missing",
            Status::NotConnected => "Not connected",
        }
    }

    /// The badge's mark, beside its words (hidden from screen readers: the words say it).
    pub fn icon(self) -> &'static str {
        match self {
            Status::Connected => "✓",
            Status::Refreshing => "↻",
            Status::VendorDown => "⚠",
            Status::AppRefused => "⊘",
            Status::ReconnectNeeded => "✕",
            Status::KeyMissing => "⚷",
            Status::NotConnected => "○",
        }
    }

    /// The badge's CSS class (its colour).
    pub fn class(self) -> &'static str {
        match self {
            Status::Connected => "badge-connected",
            Status::Refreshing => "badge-refreshing",
            Status::VendorDown => "badge-vendor-down",
            Status::AppRefused => "badge-app-refused",
            Status::ReconnectNeeded => "badge-reconnect-needed",
            Status::KeyMissing => "badge-key-missing",
            Status::NotConnected => "badge-not-connected",
        }
    }

    /// Something is wrong that an admin should know about.
    pub fn needs_attention(self) -> bool {
        matches!(self, Status::VendorDown | Status::AppRefused | Status::ReconnectNeeded | Status::KeyMissing)
    }

    /// Where it sorts: what stops the clinic's access first, then what will stop it, then
    /// everything else (in the vendors' order).
    pub fn rank(self) -> u8 {
        match self {
            Status::ReconnectNeeded => 0,
            Status::KeyMissing => 1,
            Status::AppRefused => 2,
            Status::VendorDown => 3,
            _ => 4,
        }
    }
}

/// Who acts to mend a broken connection, and with which button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    /// An admin connects the vendor again ("Reconnect DrChrono").
    Reconnect,
    /// Nobody needs to act (the vendor is down, or the operator is fixing the app's
    /// registration); an admin may check again now ("Check DrChrono again now").
    CheckAgain,
}

/// A broken connection, explained.
#[derive(Debug, Clone)]
pub struct Problem {
    /// One plain sentence: what happened and whose action fixes it.
    pub what: String,
    pub fix: Fix,
    /// Technical detail (the vendor's answer, times), for the "Details" disclosure.
    pub details: Vec<(String, String)>,
}

/// The explanation of a row's state, if it is broken. `own_credentials`: the connection uses the
/// clinic's own client credentials (Docplanner, Qmatic), so a refused registration is theirs to
/// fix by reconnecting, not the operator's.
pub fn problem(
    status: Status,
    vendor: &str,
    row: Option<&ConnectionRow>,
    own_credentials: bool,
    now: UnixTime,
) -> Option<Problem> {
    let row = row?;
    let until = match row.expires_at {
        Some(at) if at > now => format!("the clinic's current access still works until {}", format_utc(at)),
        Some(_) => "the clinic's current access has expired, so calls to it fail meanwhile".to_owned(),
        None => "the clinic's current access still works".to_owned(),
    };
    let (what, fix) = match status {
        Status::ReconnectNeeded => (
            format!(
                "{vendor} no longer accepts this connection (access was withdrawn or has expired at {vendor}), so an \
                 admin of the clinic must reconnect it."
            ),
            Fix::Reconnect,
        ),
        // Kept when the start-up check marked it (the key may come back); deleted by `keys rotate`.
        Status::KeyMissing if holds_secrets(row) => (
            format!(
                "The stored {vendor} secrets cannot be read because the encryption key they were sealed with was \
                 removed from the server: the operator can put the key back, or an admin can reconnect {vendor}."
            ),
            Fix::Reconnect,
        ),
        Status::KeyMissing => (
            format!(
                "The stored {vendor} secrets were sealed with an encryption key that was removed from the server \
                 and have been deleted, so an admin must reconnect {vendor}."
            ),
            Fix::Reconnect,
        ),
        Status::AppRefused if own_credentials => (
            format!(
                "{vendor} no longer accepts the clinic's client credentials, so the connection cannot be renewed \
                 ({until}): an admin must reconnect it with the clinic's current {vendor} credentials."
            ),
            Fix::Reconnect,
        ),
        Status::AppRefused => (
            format!(
                "{vendor} refuses this app's own registration, so the connection cannot be renewed ({until}): the \
                 server's operator must fix the app's registration at {vendor}, and the connection then recovers by \
                 itself."
            ),
            Fix::CheckAgain,
        ),
        Status::VendorDown => (
            format!(
                "{vendor} could not be reached or had trouble when the connection was last renewed ({until}); it is \
                 retried automatically, so nobody needs to act unless this lasts."
            ),
            Fix::CheckAgain,
        ),
        Status::Connected | Status::Refreshing | Status::NotConnected => return None,
    };
    Some(Problem { what, fix, details: details(status, row) })
}

fn holds_secrets(row: &ConnectionRow) -> bool {
    row.access_token.is_some() || row.refresh_token.is_some() || row.client_secret.is_some()
}

fn details(status: Status, row: &ConnectionRow) -> Vec<(String, String)> {
    let mut details = Vec::new();
    if let Some(since) = row.trouble_since {
        details.push(("Since".to_owned(), format_utc(since)));
    }
    if let Some(detail) = row.trouble_detail.as_deref().filter(|d| !d.is_empty()) {
        let label = match status {
            Status::KeyMissing => "Cause",
            _ => "Vendor's answer",
        };
        details.push((label.to_owned(), detail.to_owned()));
    }
    if matches!(status, Status::AppRefused | Status::VendorDown) {
        if row.refresh_failures > 0 {
            details.push(("Failed renewals in a row".to_owned(), row.refresh_failures.to_string()));
        }
        if let Some(at) = row.next_refresh_at {
            details.push(("Next automatic attempt".to_owned(), format_utc(at)));
        }
    }
    details
}

/// Who did something, in a connection's history, in words (see `connections::admin_actor`).
pub fn actor_label(actor: &str) -> String {
    match actor {
        crate::connections::WORKER => "Background worker".to_owned(),
        crate::connections::CLI => "Command line".to_owned(),
        crate::connections::API => "Clinic's systems (API)".to_owned(),
        "" => "Not recorded".to_owned(),
        other => other.strip_prefix("admin:").unwrap_or(other).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Status; 7] = [
        Status::Connected,
        Status::Refreshing,
        Status::VendorDown,
        Status::AppRefused,
        Status::ReconnectNeeded,
        Status::KeyMissing,
        Status::NotConnected,
    ];

    #[test]
    fn every_state_has_its_own_words_mark_and_colour() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[i + 1..] {
                assert_ne!(a.label(), b.label());
                assert_ne!(a.icon(), b.icon());
                assert_ne!(a.class(), b.class());
            }
        }
    }

    #[test]
    fn the_stored_state_and_a_live_lease_decide_the_badge() {
        assert_eq!(Status::of("connected", None, false), Status::Connected);
        assert_eq!(Status::of("connected", None, true), Status::Refreshing);
        assert_eq!(Status::of("connected", Some("vendor_down"), true), Status::VendorDown);
        assert_eq!(Status::of("connected", Some("app_refused"), false), Status::AppRefused);
        assert_eq!(Status::of("reconnect_needed", None, false), Status::ReconnectNeeded);
        assert_eq!(Status::of("key_missing", None, false), Status::KeyMissing);
        assert_eq!(Status::of("disconnected", None, false), Status::NotConnected);
        let broken: Vec<Status> = ALL.into_iter().filter(|s| s.needs_attention()).collect();
        assert_eq!(broken, [Status::VendorDown, Status::AppRefused, Status::ReconnectNeeded, Status::KeyMissing]);
        assert!(broken.iter().all(|s| s.rank() < Status::Connected.rank()));
    }

    #[test]
    fn who_did_it_is_said_in_words() {
        assert_eq!(actor_label("admin:a@clinic.test"), "a@clinic.test");
        assert_eq!(actor_label("worker"), "Background worker");
        assert_eq!(actor_label("cli"), "Command line");
        assert_eq!(actor_label("api"), "Clinic's systems (API)");
        assert_eq!(actor_label(""), "Not recorded");
    }
}
