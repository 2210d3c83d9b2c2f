//! Broken connections found without waiting for a click: every live connection is checked at its
//! vendor in the background, about every `CLINIC_CONNECT_HEALTH_INTERVAL_SECONDS`, and again when
//! a proxied call is refused twice.
//!
//! A check is one cheap authenticated call: the vendor's identity call with the current access
//! token where the vendor has one; where it has none, where the token is refused or expired, or
//! where the connection is already in trouble, a token refresh — whose refusal is classified as
//! any refresh's is (the clinic's grant is gone, the vendor refuses the app, the vendor is down)
//! and written to the history by the worker. A check that passes leaves no history entry.
//!
//! Each connection's next check is spread over a window around the interval, so a thousand
//! connections made at once are not checked at once; a check is claimed with the row's lease,
//! so several instances never check one connection at the same time (see `db::health`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::web;
use futures_util::stream::{FuturesUnordered, StreamExt};
use ring::rand::{SecureRandom, SystemRandom};

use crate::clock::UnixTime;
use crate::connections::connection_binding;
use crate::db::connections::ConnectionRow;
use crate::db::health::HEALTH_LEASE_SUFFIX;
use crate::metrics::HealthOutcome;
use crate::startup::AppState;
use crate::tokens::TokenError;
use crate::vendors::http::VendorError;
use crate::vendors::Vendor;

/// Checks in flight at once per instance; more are leased when half of them have finished.
const CONCURRENCY: usize = 16;
/// A connection is checked on demand (after a proxied call refused twice) at most this often by
/// one instance: a client retrying a refused call must not turn each retry into vendor calls.
const ON_DEMAND_GAP_SECONDS: i64 = 60;

/// The schedule of health checks, and this instance's memory of its on-demand checks.
pub struct HealthChecks {
    interval: i64,
    on_demand: Mutex<HashMap<i64, UnixTime>>,
    rng: SystemRandom,
}

impl HealthChecks {
    pub fn new(interval_seconds: u64) -> Self {
        Self {
            interval: i64::try_from(interval_seconds).unwrap_or(i64::MAX).max(1),
            on_demand: Mutex::new(HashMap::new()),
            rng: SystemRandom::new(),
        }
    }

    /// The interval's length, in seconds.
    pub fn interval(&self) -> i64 {
        self.interval
    }

    /// When a connection checked (or connected) at `now` is checked next: somewhere between
    /// three quarters and five quarters of the interval later, at random, so that connections
    /// made together drift apart instead of being checked together for ever.
    pub fn next_at(&self, now: UnixTime) -> UnixTime {
        let mut bytes = [0u8; 4];
        let unit = if self.rng.fill(&mut bytes).is_ok() {
            f64::from(u32::from_le_bytes(bytes)) / 4_294_967_295.0
        } else {
            0.5
        };
        spread(now, self.interval, unit)
    }

    /// Whether this instance may check a connection on demand now (and notes that it does).
    fn may_check_on_demand(&self, connection_id: i64, now: UnixTime) -> bool {
        let mut last = self.on_demand.lock().unwrap_or_else(|e| e.into_inner());
        // Forget what no longer limits anything, so the map stays as small as the busy set.
        last.retain(|_, at| now - *at < ON_DEMAND_GAP_SECONDS);
        if last.contains_key(&connection_id) {
            return false;
        }
        last.insert(connection_id, now);
        true
    }

    /// This process's lease owner name while it checks a connection.
    fn owner(state: &AppState) -> String {
        format!("{}{HEALTH_LEASE_SUFFIX}", state.tokens.owner())
    }
}

/// `now` plus the interval scaled by 0.75 + `unit` / 2 (`unit` in 0..=1).
fn spread(now: UnixTime, interval: i64, unit: f64) -> UnixTime {
    let scale = 0.75 + unit.clamp(0.0, 1.0) / 2.0;
    // An interval is at most a week (settings), so this fits an i64 comfortably.
    now.saturating_add((interval as f64 * scale).round() as i64)
}

/// Checks every live connection whose check is due (the worker's round); returns how many.
pub async fn check_due(state: &web::Data<AppState>) -> usize {
    let owner = HealthChecks::owner(state);
    let mut running = FuturesUnordered::new();
    let (mut checked, mut exhausted) = (0, false);
    loop {
        if !exhausted && running.len() <= CONCURRENCY / 2 {
            let wanted = CONCURRENCY - running.len();
            let now = state.clock.now();
            let until = now.saturating_add(state.tokens.lease_seconds());
            match state.db.lease_health_checks(now, &owner, until, wanted).await {
                Ok(rows) => {
                    exhausted = rows.len() < wanted;
                    checked += rows.len();
                    for row in rows {
                        let (state, owner) = (state.clone(), owner.clone());
                        running.push(tokio::spawn(async move { check(&state, row, &owner).await }));
                    }
                }
                Err(e) => {
                    tracing::warn!(cause = %e, "could not lease connections to check");
                    exhausted = true;
                }
            }
        }
        match running.next().await {
            Some(Ok(())) => {}
            // Its lease runs out, and a later round checks the connection again.
            Some(Err(e)) => tracing::error!(cause = %e, "a health check task failed"),
            None => break,
        }
    }
    checked
}

/// Checks a connection now because a proxied call with its token was refused twice (the token
/// was refreshed in between): the vendor may have dropped the grant. At most once a minute per
/// connection and instance; nothing happens if another check or refresh holds the connection.
pub async fn check_after_refusals(state: &web::Data<AppState>, connection_id: i64) {
    let now = state.clock.now();
    if !state.health.may_check_on_demand(connection_id, now) {
        return;
    }
    let owner = HealthChecks::owner(state);
    let until = now.saturating_add(state.tokens.lease_seconds());
    match state.db.lease_health_check_of(connection_id, now, &owner, until).await {
        Ok(Some(row)) => {
            tracing::info!(vendor = %row.vendor, clinic_id = row.clinic_id, "checking a connection whose token was refused twice");
            check(state, row, &owner).await;
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(connection_id, cause = %e, "could not lease a connection to check"),
    }
}

/// One check of a row leased to `owner`. It always ends by giving the lease back (or handing it
/// to the refresh, which gives it back).
async fn check(state: &web::Data<AppState>, row: ConnectionRow, owner: &str) {
    let (id, vendor_id, clinic_id) = (row.id, row.vendor.clone(), row.clinic_id);
    let outcome = match state.vendors.get(&row.vendor).cloned() {
        Some(vendor) => check_at_vendor(state, &vendor, row, owner).await,
        // A vendor the configuration no longer has: nothing to ask.
        None => Ok(HealthOutcome::Passed),
    };
    let outcome = outcome.unwrap_or_else(|e| {
        tracing::warn!(vendor = %vendor_id, clinic_id, cause = %e, "health check could not be made");
        HealthOutcome::Error
    });
    if !matches!(outcome, HealthOutcome::Refreshed) {
        // A refresh wrote its own result and the next check, and gave its lease back; every
        // other check ends here.
        let next = state.health.next_at(state.clock.now());
        if let Err(e) = state.db.finish_health_check(id, owner, next).await {
            tracing::warn!(connection_id = id, cause = %e, "could not end a health check");
        }
    }
    state.metrics.health_check(&vendor_id, outcome);
}

async fn check_at_vendor(
    state: &web::Data<AppState>,
    vendor: &Arc<Vendor>,
    row: ConnectionRow,
    owner: &str,
) -> Result<HealthOutcome, TokenError> {
    let now = state.clock.now();
    if row.trouble.is_some() {
        // Already in trouble: the refresh is what failed, so the refresh is what to try — unless
        // it is backing off, when its own retry comes soon enough.
        if row.next_refresh_at.is_some_and(|at| at > now) {
            return Ok(HealthOutcome::BackingOff);
        }
        return refresh(state, vendor, row, owner).await;
    }
    let token_valid = row.access_token.is_some() && row.expires_at.is_none_or(|at| now < at);
    if vendor.profile.identity.is_some() && token_valid {
        match identity(state, vendor, &row).await? {
            Ok(()) => return Ok(HealthOutcome::Passed),
            Err(e) => tracing::info!(vendor = %row.vendor, clinic_id = row.clinic_id, cause = %e,
                "health check: the identity call failed; refreshing the connection"),
        }
    }
    refresh(state, vendor, row, owner).await
}

/// The vendor's identity call with the current access token. A 403 passes: the vendor knows the
/// token (it lacks a permission, which connecting already reported). The outer error is ours.
async fn identity(
    state: &AppState,
    vendor: &Vendor,
    row: &ConnectionRow,
) -> Result<Result<(), VendorError>, TokenError> {
    let profile = &vendor.profile;
    let env = profile.environment(&row.environment).ok_or(TokenError::NotConnected)?;
    let endpoints = vendor.endpoints(&env.name, &row.parameters)?;
    let sealed = row.access_token.as_ref().ok_or(TokenError::NotConnected)?;
    let token = state.vault.open_str(sealed, &connection_binding(row.clinic_id, &row.vendor, "access_token"))?;
    Ok(match state.http.identity(profile, &endpoints, &token).await {
        Ok(_) | Err(VendorError::Refused { status: 403, .. }) => Ok(()),
        Err(e) => Err(e),
    })
}

/// The check's refresh: the lease passes from the check to the refresh (a refresh that stops
/// half-way must leave the connection in doubt), which writes its result and the next check.
async fn refresh(
    state: &AppState,
    vendor: &Vendor,
    row: ConnectionRow,
    owner: &str,
) -> Result<HealthOutcome, TokenError> {
    let now = state.clock.now();
    let until = now.saturating_add(state.tokens.lease_seconds());
    if !state.db.hand_over_lease(row.id, owner, state.tokens.owner(), until).await? {
        return Err(TokenError::Internal(anyhow::anyhow!("the health check's lease was lost")));
    }
    let next = state.health.next_at(now);
    match state.tokens.refresh_for_health_check(state, vendor, row, next).await {
        // Whatever the vendor said is written down and counted among the refreshes.
        Ok(_) | Err(TokenError::ReconnectNeeded | TokenError::AppRefused(_) | TokenError::Unavailable(_)) => {
            Ok(HealthOutcome::Refreshed)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_check_is_spread_around_the_interval() {
        assert_eq!(spread(1000, 900, 0.0), 1000 + 675);
        assert_eq!(spread(1000, 900, 0.5), 1000 + 900);
        assert_eq!(spread(1000, 900, 1.0), 1000 + 1125);
        let checks = HealthChecks::new(900);
        let times: Vec<i64> = (0..200).map(|_| checks.next_at(0)).collect();
        assert!(times.iter().all(|t| (675..=1125).contains(t)), "{times:?}");
        // Spread out, not one time for all.
        let distinct: std::collections::BTreeSet<_> = times.iter().collect();
        assert!(distinct.len() > 50, "{}", distinct.len());
    }

    #[test]
    fn an_on_demand_check_waits_a_minute_per_connection() {
        let checks = HealthChecks::new(900);
        assert!(checks.may_check_on_demand(1, 100));
        assert!(!checks.may_check_on_demand(1, 159));
        assert!(checks.may_check_on_demand(2, 159));
        assert!(checks.may_check_on_demand(1, 160));
    }
}
