//! The background task: keeps idle connections alive by refreshing them before they expire,
//! checks connections' health at their vendors (`crate::health`), retries revocations that failed
//! at disconnect, and sweeps expired sessions and flows. It stops when told to (on shutdown),
//! between rounds.

use std::time::Duration;

use actix_web::web;
use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::connections::WORKER;
use crate::session::{ABSOLUTE_TTL_SECONDS, ADMIN_KIND, PATIENT_ABSOLUTE_TTL_SECONDS, PATIENT_KIND};
use crate::startup::AppState;

/// Look this far ahead for interrupted refreshes: past the largest refresh margin plus a round.
const HORIZON_SECONDS: i64 = 15 * 60;
/// Interrupted refreshes resolved at once in one round.
const CONCURRENCY: usize = 16;
/// Failed sign-ins are kept this long (the throttling window, with room to spare).
const SIGN_IN_FAILURES_KEPT_SECONDS: i64 = 24 * 60 * 60;

pub fn spawn(state: web::Data<AppState>, every: Duration, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        // The first round comes one interval after start, not at once: nothing needs it sooner
        // (the proxy refreshes what it uses on demand, and the key check ran before serving), and
        // an app driven round by round (the tests, the benchmark) gets no round behind its back.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
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

/// One round of every background duty; tests call it directly. Every instance runs its own
/// rounds: refreshes and revocation retries are leased row by row, so no two instances do the
/// same one, and the purges are deletes that any instance may run.
pub async fn run_once(state: &web::Data<AppState>) {
    refresh_due(state).await;
    crate::health::check_due(state).await;
    crate::revocation::retry_due(state).await;
    let now = state.clock.now();
    for (kind, absolute) in [(ADMIN_KIND, ABSOLUTE_TTL_SECONDS), (PATIENT_KIND, PATIENT_ABSOLUTE_TTL_SECONDS)] {
        if let Err(e) = state.db.purge_sessions(kind, now, now - absolute).await {
            tracing::warn!(cause = %e, "could not purge sessions");
        }
    }
    if let Err(e) = state.db.purge_flows(now).await {
        tracing::warn!(cause = %e, "could not purge flows");
    }
    if let Err(e) = state.db.purge_sign_in_failures(now - SIGN_IN_FAILURES_KEPT_SECONDS).await {
        tracing::warn!(cause = %e, "could not purge old sign-in failures");
    }
    if let Err(e) = state.db.purge_invitations(now).await {
        tracing::warn!(cause = %e, "could not purge expired invitations");
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
            if let Err(e) = state.tokens.access_token(state, clinic_id, &vendor, false, WORKER).await {
                tracing::info!(vendor = %vendor, clinic_id, cause = %e, "background refresh did not succeed");
            }
        })
        .await;
    attempted
}
