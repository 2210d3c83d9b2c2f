//! The background task: keeps idle connections alive by refreshing them before they expire,
//! retries revocations that failed at disconnect, and sweeps expired sessions and flows. It stops
//! when told to (on shutdown), between rounds.

use std::time::Duration;

use actix_web::web;
use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::connections::app_credentials;
use crate::db::revocations::PendingRevocation;
use crate::session::{ABSOLUTE_TTL_SECONDS, ADMIN_KIND, PATIENT_ABSOLUTE_TTL_SECONDS, PATIENT_KIND};
use crate::startup::AppState;
use crate::tokens::backoff_seconds;
use crate::vault::Binding;

/// Look this far ahead for interrupted refreshes: past the largest refresh margin plus a round.
const HORIZON_SECONDS: i64 = 15 * 60;
/// Interrupted refreshes resolved at once in one round.
const CONCURRENCY: usize = 16;
/// Attempts at a revocation before it is given up (and the history says so).
pub const MAX_REVOCATION_ATTEMPTS: i64 = 5;

pub fn spawn(state: web::Data<AppState>, every: Duration, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => run_once(&state).await,
                _ = shutdown.changed() => break,
            }
        }
        tracing::info!("background worker stopped");
    })
}

/// One round of every background duty; tests call it directly.
pub async fn run_once(state: &web::Data<AppState>) {
    refresh_due(state).await;
    retry_revocations(state).await;
    let now = state.clock.now();
    for (kind, absolute) in [(ADMIN_KIND, ABSOLUTE_TTL_SECONDS), (PATIENT_KIND, PATIENT_ABSOLUTE_TTL_SECONDS)] {
        if let Err(e) = state.db.purge_sessions(kind, now, now - absolute).await {
            tracing::warn!(cause = %e, "could not purge sessions");
        }
    }
    if let Err(e) = state.db.purge_flows(now).await {
        tracing::warn!(cause = %e, "could not purge flows");
    }
}

/// Refreshes every connection whose token enters its vendor's refresh margin; returns how many
/// it attempted.
pub async fn refresh_due(state: &web::Data<AppState>) -> usize {
    let mut attempted = state.tokens.refresh_due(state).await;
    // A lease left by a process that stopped mid-refresh goes through the path that knows what
    // an interrupted refresh means for its vendor.
    let now = state.clock.now();
    let abandoned = match state.db.abandoned_due(now + HORIZON_SECONDS, now).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(cause = %e, "could not list interrupted refreshes");
            return attempted;
        }
    };
    attempted += abandoned.len();
    stream::iter(abandoned)
        .for_each_concurrent(CONCURRENCY, |(_, clinic_id, vendor)| async move {
            if let Err(e) = state.tokens.access_token(state, clinic_id, &vendor, false).await {
                tracing::info!(vendor = %vendor, clinic_id, cause = %e, "background refresh did not succeed");
            }
        })
        .await;
    attempted
}

pub fn revocation_binding(reference: &str) -> Binding {
    Binding::new("pending_revocations", reference, "token")
}

pub async fn retry_revocations(state: &AppState) {
    let now = state.clock.now();
    let due = match state.db.due_revocations(now, 1000).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(cause = %e, "could not list pending revocations");
            return;
        }
    };
    for pending in due {
        if let Err(e) = retry_one(state, &pending).await {
            tracing::warn!(cause = %e, "revocation retry bookkeeping failed");
        }
    }
}

async fn retry_one(state: &AppState, pending: &PendingRevocation) -> anyhow::Result<()> {
    state.metrics.revocation_retry();
    let now = state.clock.now();
    let attempt = pending.attempts + 1;
    let outcome = async {
        let vendor = state.vendors.get(&pending.vendor).ok_or_else(|| anyhow::anyhow!("vendor gone"))?;
        let profile = &vendor.profile;
        let env = profile.environment(&pending.environment).ok_or_else(|| anyhow::anyhow!("environment gone"))?;
        let endpoints = vendor.endpoints(&env.name, &pending.parameters)?;
        let client = app_credentials(vendor, &env.name).map_err(|e| anyhow::anyhow!("{e}"))?;
        let token = state.vault.open_str(&pending.token, &revocation_binding(&pending.reference))?;
        state.http.revoke(profile, &endpoints, &client, &token).await.map_err(anyhow::Error::new)
    }
    .await;
    match outcome {
        Ok(()) => {
            state.db.delete_revocation(pending.id).await?;
            let detail = format!("Access revoked at the vendor on retry {attempt}");
            state.db.add_event(pending.clinic_id, &pending.vendor, "revoked", &detail, now).await?;
            tracing::info!(vendor = %pending.vendor, attempt, "revocation succeeded on retry");
        }
        Err(e) if attempt >= MAX_REVOCATION_ATTEMPTS => {
            state.db.delete_revocation(pending.id).await?;
            let detail =
                format!("Revocation at the vendor abandoned after {attempt} attempts ({e}); the token was discarded");
            state.db.add_event(pending.clinic_id, &pending.vendor, "revocation_abandoned", &detail, now).await?;
            tracing::warn!(vendor = %pending.vendor, attempt, cause = %e, "revocation abandoned");
        }
        Err(e) => {
            state.db.postpone_revocation(pending.id, now + backoff_seconds(pending.attempts, None)).await?;
            let detail = format!("Revocation retry {attempt} of {MAX_REVOCATION_ATTEMPTS} failed ({e})");
            state.db.add_event(pending.clinic_id, &pending.vendor, "revocation_failed", &detail, now).await?;
        }
    }
    Ok(())
}
