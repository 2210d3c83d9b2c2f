//! "A valid access token for this connection": refreshed shortly before expiry, once among all
//! instances (a lease on the row, taken by compare-and-swap; an in-process lock only spares the
//! database the concurrent tries of one process), rotation stored in the same transaction as the
//! access token, and no transaction held across an HTTP call.
//!
//! What a refused refresh means depends on who is at fault (`VendorError::refusal_kind`): only
//! `invalid_grant` and its equivalents mean the clinic's grant is gone (tokens dropped, "reconnect
//! needed"); a refusal of the app's own registration (`invalid_client`, 401/403/404…) keeps the
//! tokens, serves the current access token while it is valid, backs off and recovers by itself;
//! a vendor that is down is retried with backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::SecretString;
use tokio::task::JoinError;

use crate::clock::{format_utc, UnixTime};
use crate::connections::{app_credentials, connection_binding, parameters_of, STATUS_CONNECTED, WORKER};
use crate::db::connections::{ConnectionRow, DueCursor, NewEvent, RefreshRecord, RefreshWrite};
use crate::db::health::HEALTH_LEASE_SUFFIX;
use crate::metrics::RefreshOutcome;
use crate::startup::AppState;
use crate::vault::{random_token, VaultError};
use crate::vendors::http::{ClientCredentials, RefusalKind, TokenSet, VendorError};
use crate::vendors::{Grant, Vendor};

pub const STATUS_RECONNECT_NEEDED: &str = "reconnect_needed";
pub const STATUS_KEY_MISSING: &str = "key_missing";
/// A live connection's trouble: the vendor is down (retrying) or refuses the app's registration.
pub const TROUBLE_VENDOR_DOWN: &str = "vendor_down";
pub const TROUBLE_APP_REFUSED: &str = "app_refused";

/// First wait after a failed refresh; doubles per failure up to `MAX_BACKOFF_SECONDS`.
const BASE_BACKOFF_SECONDS: i64 = 30;
const MAX_BACKOFF_SECONDS: i64 = 30 * 60;
/// Background refreshes in flight at once per instance; leases are taken when half of them have
/// finished. It also bounds what an instance that dies mid-storm leaves in doubt.
pub const BATCH_CONCURRENCY: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the connection is not connected")]
    NotConnected,
    #[error("the vendor no longer accepts this connection; it must be reconnected")]
    ReconnectNeeded,
    #[error("the vendor is unavailable ({0}) and the current token has expired")]
    Unavailable(String),
    #[error("the vendor refuses the app's registration ({0}) and the current token has expired")]
    AppRefused(String),
    #[error("the stored secrets were sealed under a key that is no longer configured")]
    KeyMissing,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for TokenError {
    fn from(e: sqlx::Error) -> Self {
        TokenError::Internal(anyhow::Error::new(e).context("database"))
    }
}

impl From<VaultError> for TokenError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::UnknownKey(_) => TokenError::KeyMissing,
            other => TokenError::Internal(anyhow::Error::new(other).context("vault")),
        }
    }
}

pub struct TokenService {
    locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Names this process in leases.
    owner: String,
    /// How long a lease lasts: longer than any vendor call may take.
    lease_seconds: i64,
}

impl TokenService {
    pub fn new(vendor_timeout_seconds: u64) -> anyhow::Result<Self> {
        let lease_seconds = i64::try_from(vendor_timeout_seconds).unwrap_or(60).saturating_mul(2).saturating_add(5);
        Ok(Self { locks: Mutex::new(HashMap::new()), owner: random_token(12)?, lease_seconds })
    }

    /// This process's name in leases.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn lease_seconds(&self) -> i64 {
        self.lease_seconds
    }

    fn lock_for(&self, id: i64) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).entry(id).or_default().clone()
    }

    /// A valid access token for the clinic's connection at a vendor. `force` refreshes even a
    /// token that looks valid (after the vendor answered 401, or "Refresh now"); `actor` is who
    /// asked, for the history.
    pub async fn access_token(
        &self,
        state: &web::Data<AppState>,
        clinic_id: i64,
        vendor_id: &str,
        force: bool,
        actor: &str,
    ) -> Result<SecretString, TokenError> {
        let row = state.db.connection(clinic_id, vendor_id).await?.ok_or(TokenError::NotConnected)?;
        self.for_row(state, row, force, actor).await
    }

    pub async fn for_row(
        &self,
        state: &web::Data<AppState>,
        row: ConnectionRow,
        force: bool,
        actor: &str,
    ) -> Result<SecretString, TokenError> {
        self.obtain(state, row, force, false, actor).await
    }

    /// An admin's "Refresh now" (or "Check again now"): a refresh whatever the current token's
    /// expiry, even while automatic retries are backing off after a failure — the backoff spares
    /// the vendor a storm of automatic retries, not one person's deliberate click.
    pub async fn refresh_now(
        &self,
        state: &web::Data<AppState>,
        clinic_id: i64,
        vendor_id: &str,
        actor: &str,
    ) -> Result<SecretString, TokenError> {
        let row = state.db.connection(clinic_id, vendor_id).await?.ok_or(TokenError::NotConnected)?;
        self.obtain(state, row, true, true, actor).await
    }

    async fn obtain(
        &self,
        state: &web::Data<AppState>,
        row: ConnectionRow,
        force: bool,
        ignore_backoff: bool,
        actor: &str,
    ) -> Result<SecretString, TokenError> {
        let vendor = state.vendors.get(&row.vendor).ok_or(TokenError::NotConnected)?.clone();
        check_status(&row)?;
        let margin = vendor.profile.refresh_margin_seconds;
        if !force && is_fresh(&row, margin, state.clock.now()) {
            return open_access(state, &row);
        }
        let lock = self.lock_for(row.id);
        let _one_at_a_time = lock.lock().await;
        let mut current = state.db.connection_by_id(row.id).await?.ok_or(TokenError::NotConnected)?;
        check_status(&current)?;
        let now = state.clock.now();
        // Someone refreshed while we waited for the lock: theirs is as good as ours.
        if (current.version != row.version || !force) && is_fresh(&current, margin, now) {
            return open_access(state, &current);
        }
        if !ignore_backoff && current.next_refresh_at.is_some_and(|next| next > now) {
            return usable_or(state, &current, now);
        }
        // The lease: only one process of all instances refreshes a connection. Another holder is
        // waited for, a bounded number of times; it either stores new tokens (the version moves)
        // or its lease ends.
        let mut waits = 0;
        loop {
            let now = state.clock.now();
            // A lease nobody released: its holder died mid-refresh, and the vendor may or may not
            // have rotated the refresh token. Presenting a possibly rotated-out token would trip
            // the vendor's reuse detection, so a rotating vendor's connection asks to reconnect.
            // (A health check's lease says nothing was refreshed: see `db::health`.)
            let in_doubt = current.lease_owner.as_deref().is_some_and(|o| !o.ends_with(HEALTH_LEASE_SUFFIX))
                && current.lease_until.is_some_and(|until| until <= now);
            let until = now.saturating_add(self.lease_seconds);
            if state.db.acquire_lease(current.id, current.version, &self.owner, now, until).await? {
                if in_doubt && vendor.profile.rotates_refresh_tokens {
                    return self.interrupted(state, &current).await;
                }
                break;
            }
            waits += 1;
            if waits > 100 {
                return usable_or(state, &current, now);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let seen = current.version;
            current = state.db.connection_by_id(row.id).await?.ok_or(TokenError::NotConnected)?;
            check_status(&current)?;
            if current.version != seen && is_fresh(&current, margin, state.clock.now()) {
                return open_access(state, &current);
            }
        }
        // The refresh runs in a task of its own: a caller that goes away (a closed connection)
        // must not abandon a refresh halfway, with the vendor's answer unstored.
        let (task_state, task_vendor, actor) = (state.clone(), vendor.clone(), actor.to_owned());
        tokio::spawn(
            async move { task_state.tokens.refresh_under_lease(&task_state, &task_vendor, current, &actor).await },
        )
        .await
        .map_err(|e| TokenError::Internal(anyhow::anyhow!("refresh task: {e}")))?
    }

    /// A refresh of this connection was interrupted in a process that stopped.
    async fn interrupted(&self, state: &AppState, row: &ConnectionRow) -> Result<SecretString, TokenError> {
        let detail = "A token refresh was interrupted before its result was stored; the vendor may have \
                      rotated the refresh token, so reconnect to restore access";
        let record = RefreshRecord {
            id: row.id,
            clinic_id: row.clinic_id,
            vendor: &row.vendor,
            owner: &self.owner,
            write: RefreshWrite::GrantGone { detail: "refresh interrupted; its result is unknown" },
            event: Some(NewEvent { kind: "reconnect_needed", detail, actor: WORKER }),
            next_health_at: None,
            now: state.clock.now(),
        };
        state.db.record_refreshes(&[record]).await?;
        state.metrics.refresh(&row.vendor, RefreshOutcome::ReconnectNeeded);
        tracing::warn!(vendor = %row.vendor, clinic_id = row.clinic_id, "interrupted refresh found; reconnect needed");
        Err(TokenError::ReconnectNeeded)
    }

    async fn refresh_under_lease(
        &self,
        state: &AppState,
        vendor: &Vendor,
        row: ConnectionRow,
        actor: &str,
    ) -> Result<SecretString, TokenError> {
        let id = row.id;
        let attempt = match attempt(state, vendor, row).await {
            Ok(attempt) => attempt,
            Err(e) => {
                state.db.release_lease(id, &self.owner).await?;
                return Err(e);
            }
        };
        let stored = state.db.record_refreshes(&[self.record(&attempt, actor)]).await?;
        if stored.first() != Some(&true) {
            return Err(TokenError::Internal(anyhow::anyhow!("the refresh lease was lost")));
        }
        report(state, attempt)
    }

    /// A health check's refresh of a row this process leased (as [`Self::owner`]): written with
    /// the time of the next check, and with a history entry (the worker's) only when it failed.
    pub(crate) async fn refresh_for_health_check(
        &self,
        state: &AppState,
        vendor: &Vendor,
        row: ConnectionRow,
        next_health_at: UnixTime,
    ) -> Result<SecretString, TokenError> {
        let id = row.id;
        let attempt = match attempt(state, vendor, row).await {
            Ok(attempt) => attempt,
            Err(e) => {
                state.db.release_lease(id, &self.owner).await?;
                return Err(e);
            }
        };
        let mut record = self.record(&attempt, WORKER);
        record.next_health_at = Some(next_health_at);
        if matches!(attempt.outcome, Outcome::Refreshed { .. }) {
            record.event = None;
        }
        let stored = state.db.record_refreshes(&[record]).await?;
        if stored.first() != Some(&true) {
            return Err(TokenError::Internal(anyhow::anyhow!("the health check's lease was lost")));
        }
        report(state, attempt)
    }

    /// What a refresh came to, as the store writes it under this process's lease.
    fn record<'a>(&'a self, attempt: &'a Attempt, actor: &'a str) -> RefreshRecord<'a> {
        let Attempt { row, outcome, now, detail, technical, .. } = attempt;
        let (write, kind) = match outcome {
            // A rotating vendor's new refresh token is stored in the same transaction as the
            // access token; an answer without one keeps the stored one.
            Outcome::Refreshed { access, refresh, expires_at, .. } => (
                RefreshWrite::Refreshed {
                    access_token: access,
                    refresh_token: refresh.as_deref(),
                    expires_at: *expires_at,
                },
                "refreshed",
            ),
            Outcome::GrantGone(_) => (RefreshWrite::GrantGone { detail: technical }, "reconnect_needed"),
            Outcome::AppRefused { retry_at, .. } => (
                RefreshWrite::Trouble { trouble: TROUBLE_APP_REFUSED, detail: technical, retry_at: *retry_at },
                "app_refused",
            ),
            Outcome::VendorDown { retry_at, .. } => (
                RefreshWrite::Trouble { trouble: TROUBLE_VENDOR_DOWN, detail: technical, retry_at: *retry_at },
                "refresh_failed",
            ),
        };
        RefreshRecord {
            id: row.id,
            clinic_id: row.clinic_id,
            vendor: &row.vendor,
            owner: &self.owner,
            write,
            event: Some(NewEvent { kind, detail, actor }),
            next_health_at: None,
            now: *now,
        }
    }

    /// Refreshes every connection that has entered its vendor's refresh margin (the background
    /// worker's job), many at once: leases are taken a batch at a time in one statement, the
    /// vendor calls run concurrently, and whatever has come back is written down together in one
    /// transaction — one commit for many refreshes instead of one each. Returns how many were
    /// attempted.
    pub async fn refresh_due(&self, state: &web::Data<AppState>) -> usize {
        let mut attempted = 0;
        for vendor in state.vendors.all() {
            attempted += self.refresh_due_of(state, vendor).await;
        }
        attempted
    }

    async fn refresh_due_of(&self, state: &web::Data<AppState>, vendor: &Arc<Vendor>) -> usize {
        let mut running = FuturesUnordered::new();
        let (mut attempted, mut exhausted, mut cursor) = (0, false, DueCursor::START);
        loop {
            if !exhausted && running.len() <= BATCH_CONCURRENCY / 2 {
                let wanted = BATCH_CONCURRENCY - running.len();
                let now = state.clock.now();
                let horizon = now.saturating_add(vendor.profile.refresh_margin_seconds);
                let until = now.saturating_add(self.lease_seconds);
                match state.db.lease_due(&vendor.profile.id, horizon, now, &self.owner, until, wanted, cursor).await {
                    Ok(rows) => {
                        exhausted = rows.len() < wanted;
                        cursor = cursor.after(&rows);
                        attempted += rows.len();
                        for row in rows {
                            let (state, vendor) = (state.clone(), vendor.clone());
                            running.push(tokio::spawn(async move {
                                let id = row.id;
                                attempt(&state, &vendor, row).await.map_err(|e| (id, e))
                            }));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(vendor = %vendor.profile.id, cause = %e, "could not lease connections to refresh");
                        exhausted = true;
                    }
                }
            }
            let Some(first) = running.next().await else { break };
            let mut done = vec![first];
            while let Some(Some(next)) = running.next().now_or_never() {
                done.push(next);
            }
            self.record_all(state, done).await;
        }
        attempted
    }

    /// One transaction for a group of finished background refreshes.
    async fn record_all(&self, state: &AppState, done: Vec<Finished>) {
        let mut attempts = Vec::with_capacity(done.len());
        for finished in done {
            match finished {
                Ok(Ok(attempt)) => attempts.push(attempt),
                Ok(Err((id, e))) => {
                    tracing::warn!(connection_id = id, cause = %e, "background refresh could not be attempted");
                    if let Err(e) = state.db.release_lease(id, &self.owner).await {
                        tracing::warn!(connection_id = id, cause = %e, "could not give a refresh lease back");
                    }
                }
                // The lease stays and runs out: the connection is then handled as in doubt.
                Err(e) => tracing::error!(cause = %e, "a background refresh task failed"),
            }
        }
        if attempts.is_empty() {
            return;
        }
        let records: Vec<RefreshRecord<'_>> = attempts.iter().map(|a| self.record(a, WORKER)).collect();
        let stored = state.db.record_refreshes(&records).await;
        drop(records);
        match stored {
            Ok(stored) => {
                for (attempt, stored) in attempts.into_iter().zip(stored) {
                    if stored {
                        let (vendor, clinic_id) = (attempt.row.vendor.clone(), attempt.row.clinic_id);
                        if let Err(e) = report(state, attempt) {
                            tracing::info!(vendor = %vendor, clinic_id, cause = %e, "background refresh did not succeed");
                        }
                    } else {
                        tracing::error!(vendor = %attempt.row.vendor, clinic_id = attempt.row.clinic_id,
                            "refresh lease lost before its result was stored");
                    }
                }
            }
            // Their leases run out and the connections are then handled as in doubt.
            Err(e) => tracing::error!(count = attempts.len(), cause = %e, "could not store refreshed tokens"),
        }
    }
}

/// A background refresh task's result: its attempt, or our own error for a connection id.
type Finished = Result<Result<Attempt, (i64, TokenError)>, JoinError>;

/// What a refresh came to at the vendor, sealed and ready to be written down.
struct Attempt {
    row: ConnectionRow,
    outcome: Outcome,
    /// The history entry's words.
    detail: String,
    /// A refusal's technical detail (HTTP status, the vendor's error code), for "Details".
    technical: String,
    now: UnixTime,
    started: std::time::Instant,
}

enum Outcome {
    Refreshed {
        token: SecretString,
        access: Vec<u8>,
        refresh: Option<Vec<u8>>,
        expires_at: Option<UnixTime>,
    },
    /// The clinic's grant is gone at the vendor.
    GrantGone(VendorError),
    /// The vendor refuses the app's registration; try again at `retry_at`.
    AppRefused {
        error: VendorError,
        retry_at: UnixTime,
    },
    /// The vendor is down or slow; try again at `retry_at`.
    VendorDown {
        error: VendorError,
        retry_at: UnixTime,
    },
}

/// The vendor call of a refresh under a lease, its answer sealed. An error is ours, not the
/// vendor's: nothing happened at the vendor that needs storing.
async fn attempt(state: &AppState, vendor: &Vendor, row: ConnectionRow) -> Result<Attempt, TokenError> {
    let started = std::time::Instant::now();
    let fetched = fetch(state, vendor, &row).await?;
    let now = state.clock.now();
    let name = &vendor.profile.name;
    let retry_at = |e: &VendorError| now.saturating_add(backoff_seconds(row.refresh_failures, e.retry_after()));
    let (outcome, detail) = match fetched {
        Ok(tokens) => {
            let binding = |column| connection_binding(row.clinic_id, &row.vendor, column);
            let access = state.vault.seal_str(&tokens.access_token, &binding("access_token"))?;
            let refresh = tokens
                .refresh_token
                .as_ref()
                .map(|t| state.vault.seal_str(t, &binding("refresh_token")))
                .transpose()?;
            let expires_at = tokens.expires_in.map(|s| now.saturating_add(s));
            let detail = match expires_at {
                Some(at) => format!("Access token refreshed; it expires {}", format_utc(at)),
                None => "Access token refreshed".to_owned(),
            };
            (Outcome::Refreshed { token: tokens.access_token, access, refresh, expires_at }, detail)
        }
        Err(e) => match e.refusal_kind() {
            RefusalKind::GrantGone => {
                let detail = format!("{name} no longer accepts the clinic's grant ({e}); reconnect to restore access");
                (Outcome::GrantGone(e), detail)
            }
            RefusalKind::AppRefused => {
                let at = retry_at(&e);
                let detail = format!(
                    "{name} refused this app's registration ({e}). The tokens are kept; the operator must fix the \
                     app's registration. Next attempt {}",
                    format_utc(at)
                );
                (Outcome::AppRefused { error: e, retry_at: at }, detail)
            }
            RefusalKind::Transient => {
                let at = retry_at(&e);
                let detail = format!("Refresh failed ({e}); next attempt in {} s", at - now);
                (Outcome::VendorDown { error: e, retry_at: at }, detail)
            }
        },
    };
    let technical = match &outcome {
        Outcome::AppRefused { error, .. } | Outcome::VendorDown { error, .. } | Outcome::GrantGone(error) => {
            error.to_string()
        }
        Outcome::Refreshed { .. } => String::new(),
    };
    Ok(Attempt { row, outcome, detail, technical, now, started })
}

/// Once written down: the metrics, the log line, and what the caller gets.
fn report(state: &AppState, attempt: Attempt) -> Result<SecretString, TokenError> {
    let Attempt { row, outcome, now, started, .. } = attempt;
    let took = started.elapsed();
    match outcome {
        Outcome::Refreshed { token, .. } => {
            state.metrics.refresh(&row.vendor, RefreshOutcome::Success);
            tracing::info!(vendor = %row.vendor, clinic_id = row.clinic_id, micros = took.as_micros() as u64, "token refreshed");
            Ok(token)
        }
        Outcome::GrantGone(e) => {
            state.metrics.refresh(&row.vendor, RefreshOutcome::ReconnectNeeded);
            tracing::warn!(vendor = %row.vendor, clinic_id = row.clinic_id, cause = %e, "refresh refused: the grant is gone; reconnect needed");
            Err(TokenError::ReconnectNeeded)
        }
        Outcome::AppRefused { error, .. } => {
            state.metrics.refresh(&row.vendor, RefreshOutcome::AppRefused);
            tracing::error!(vendor = %row.vendor, clinic_id = row.clinic_id, cause = %error,
                "refresh refused: the vendor refuses the app's registration; tokens kept, backing off");
            usable_or_else(state, &row, now, || TokenError::AppRefused(error.to_string()))
        }
        Outcome::VendorDown { error, .. } => {
            state.metrics.refresh(&row.vendor, RefreshOutcome::Transient);
            tracing::warn!(vendor = %row.vendor, clinic_id = row.clinic_id, cause = %error, "refresh failed; backing off");
            usable_or_else(state, &row, now, || TokenError::Unavailable(error.to_string()))
        }
    }
}

/// The vendor call of a refresh: a refresh grant for code-flow connections, a new
/// client-credentials grant for the others. The outer error is ours, the inner the vendor's.
async fn fetch(
    state: &AppState,
    vendor: &Vendor,
    row: &ConnectionRow,
) -> Result<Result<TokenSet, VendorError>, TokenError> {
    let profile = &vendor.profile;
    let env = profile.environment(&row.environment).ok_or(TokenError::NotConnected)?;
    let params = parameters_of(row);
    let endpoints = vendor.endpoints(&env.name, &row.parameters)?;
    let binding = |column| connection_binding(row.clinic_id, &row.vendor, column);
    match profile.grant {
        Grant::AuthorizationCode => {
            let Some(sealed) = &row.refresh_token else {
                return Ok(Err(VendorError::Refused {
                    status: 400,
                    error: Some("invalid_grant".into()),
                    retry_after: None,
                }));
            };
            let refresh_token = state.vault.open_str(sealed, &binding("refresh_token"))?;
            let client =
                app_credentials(vendor, &env.name).map_err(|e| TokenError::Internal(anyhow::anyhow!("{e}")))?;
            Ok(state.http.refresh(profile, &endpoints, &client, &refresh_token).await)
        }
        Grant::ClientCredentials => {
            let secret =
                row.client_secret.as_ref().map(|s| state.vault.open_str(s, &binding("client_secret"))).transpose()?;
            let client_id = row.client_id.clone().unwrap_or_default();
            let client = ClientCredentials { client_id: &client_id, client_secret: secret.as_ref(), auth: None };
            let scopes = params.get("scopes").cloned().unwrap_or_else(|| profile.scopes.join(" "));
            Ok(state.http.client_credentials(profile, &endpoints, &client, &scopes, env.api_audience.as_deref()).await)
        }
    }
}

fn check_status(row: &ConnectionRow) -> Result<(), TokenError> {
    match row.status.as_str() {
        STATUS_CONNECTED => Ok(()),
        STATUS_RECONNECT_NEEDED => Err(TokenError::ReconnectNeeded),
        STATUS_KEY_MISSING => Err(TokenError::KeyMissing),
        _ => Err(TokenError::NotConnected),
    }
}

/// Valid for longer than the vendor's refresh margin (a token without expiry is always fresh).
pub fn is_fresh(row: &ConnectionRow, margin: i64, now: UnixTime) -> bool {
    row.access_token.is_some() && row.expires_at.is_none_or(|at| now < at.saturating_sub(margin))
}

fn open_access(state: &AppState, row: &ConnectionRow) -> Result<SecretString, TokenError> {
    let sealed = row.access_token.as_ref().ok_or(TokenError::NotConnected)?;
    Ok(state.vault.open_str(sealed, &connection_binding(row.clinic_id, &row.vendor, "access_token"))?)
}

/// The current token while it is still valid, while a refresh is not possible right now (backing
/// off, or another process holds the lease); otherwise why not.
fn usable_or(state: &AppState, row: &ConnectionRow, now: UnixTime) -> Result<SecretString, TokenError> {
    usable_or_else(state, row, now, || match row.trouble.as_deref() {
        Some(TROUBLE_APP_REFUSED) => TokenError::AppRefused(row.trouble_detail.clone().unwrap_or_default()),
        _ => TokenError::Unavailable("backing off after a failed refresh".to_owned()),
    })
}

fn usable_or_else(
    state: &AppState,
    row: &ConnectionRow,
    now: UnixTime,
    otherwise: impl FnOnce() -> TokenError,
) -> Result<SecretString, TokenError> {
    if row.access_token.is_some() && row.expires_at.is_none_or(|at| now < at) {
        open_access(state, row)
    } else {
        Err(otherwise())
    }
}

/// Exponential backoff with ±20 % jitter, at least what the vendor's `Retry-After` asked for.
pub fn backoff_seconds(failures: i64, retry_after: Option<i64>) -> i64 {
    let exponent = failures.clamp(0, 10) as u32;
    let base = (BASE_BACKOFF_SECONDS.saturating_mul(1 << exponent)).min(MAX_BACKOFF_SECONDS);
    let mut byte = [0u8; 1];
    let jitter = if SystemRandom::new().fill(&mut byte).is_ok() { i64::from(byte[0]) - 128 } else { 0 };
    let jittered = base + base * jitter / 640; // ±20 %
    jittered.max(retry_after.unwrap_or(0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        for _ in 0..100 {
            let first = backoff_seconds(0, None);
            assert!((24..=36).contains(&first), "{first}");
            let fourth = backoff_seconds(3, None);
            assert!((192..=288).contains(&fourth), "{fourth}");
            assert!(backoff_seconds(50, None) <= MAX_BACKOFF_SECONDS * 6 / 5);
            assert!(backoff_seconds(0, Some(600)) >= 600);
        }
    }
}
