//! Revoking a disconnected connection's tokens at its vendor. A disconnect first commits the
//! connection as disconnected together with a queue of its tokens to revoke (sealed, see
//! `Db::disconnect`), and only then calls the vendor: whatever happens to this process, the
//! connection is never shown as connected with dead tokens, and a revocation that did not happen
//! (or whose success was not written down) is retried by the background worker of any instance,
//! a bounded number of times. Revoking a token the vendor already revoked is harmless (RFC 7009
//! §2.2: the vendor answers 200).

use crate::connections::app_credentials;
use crate::db::connections::NewEvent;
use crate::db::revocations::{PendingRevocation, RevocationEnd};
use crate::startup::AppState;
use crate::tokens::backoff_seconds;
use crate::vault::Binding;

/// Attempts at a revocation before it is given up (and the history says so).
pub const MAX_ATTEMPTS: i64 = 5;

pub fn binding(reference: &str) -> Binding {
    Binding::new("pending_revocations", reference, "token")
}

/// How a disconnect's own attempt at its revocations went.
pub enum Outcome {
    Revoked,
    /// Kept for the worker; the first error, in words.
    Postponed(String),
}

/// The vendor call for one queued revocation.
async fn revoke(state: &AppState, pending: &PendingRevocation) -> anyhow::Result<()> {
    let vendor = state.vendors.get(&pending.vendor).ok_or_else(|| anyhow::anyhow!("vendor gone"))?;
    let profile = &vendor.profile;
    let env = profile.environment(&pending.environment).ok_or_else(|| anyhow::anyhow!("environment gone"))?;
    let endpoints = vendor.endpoints(&env.name, &pending.parameters)?;
    let client = app_credentials(vendor, &env.name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = state.vault.open_str(&pending.token, &binding(&pending.reference))?;
    state.http.revoke(profile, &endpoints, &client, &token).await.map_err(anyhow::Error::new)
}

/// A disconnect's first attempt at the revocations it queued (and leased to this process): each
/// token in turn, the refresh token first. One history entry says how it went.
pub async fn attempt_queued(state: &AppState, queued: &[PendingRevocation], actor: &str) -> anyhow::Result<Outcome> {
    let owner = state.tokens.owner();
    let now = state.clock.now();
    let mut failure = None;
    for (i, pending) in queued.iter().enumerate() {
        let last = i + 1 == queued.len();
        match revoke(state, pending).await {
            Ok(()) => {
                let event = NewEvent { kind: "revoked", detail: "Access revoked at the vendor", actor };
                let say = (last && failure.is_none()).then_some(&event);
                state.db.end_revocation(pending.id, owner, RevocationEnd::Done, say, now).await?;
            }
            Err(e) => {
                let first = failure.is_none();
                let detail = format!(
                    "Revocation at the vendor failed ({e}); it will be retried up to {} more times",
                    MAX_ATTEMPTS - 1
                );
                let event = NewEvent { kind: "revocation_failed", detail: &detail, actor };
                let retry_at = now.saturating_add(backoff_seconds(0, None));
                let say = first.then_some(&event);
                state.db.end_revocation(pending.id, owner, RevocationEnd::Later(retry_at), say, now).await?;
                failure.get_or_insert(e.to_string());
            }
        }
    }
    Ok(failure.map_or(Outcome::Revoked, Outcome::Postponed))
}

/// The worker's round: every due revocation that no other instance is attempting, leased first.
pub async fn retry_due(state: &AppState) {
    let owner = state.tokens.owner();
    let now = state.clock.now();
    let until = now.saturating_add(state.tokens.lease_seconds());
    let due = match state.db.lease_due_revocations(now, owner, until, 1000).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(cause = %e, "could not lease pending revocations");
            return;
        }
    };
    for pending in due {
        if let Err(e) = retry_one(state, &pending, owner).await {
            tracing::warn!(cause = %e, "revocation retry bookkeeping failed");
        }
    }
}

async fn retry_one(state: &AppState, pending: &PendingRevocation, owner: &str) -> anyhow::Result<()> {
    state.metrics.revocation_retry();
    let now = state.clock.now();
    let attempt = pending.attempts + 1;
    let (end, kind, detail) = match revoke(state, pending).await {
        Ok(()) => {
            tracing::info!(vendor = %pending.vendor, attempt, "revocation succeeded on retry");
            (RevocationEnd::Done, "revoked", format!("Access revoked at the vendor on attempt {attempt}"))
        }
        Err(e) if attempt >= MAX_ATTEMPTS => {
            tracing::warn!(vendor = %pending.vendor, attempt, cause = %e, "revocation abandoned");
            (
                RevocationEnd::Done,
                "revocation_abandoned",
                format!("Revocation at the vendor abandoned after {attempt} attempts ({e}); the token was discarded"),
            )
        }
        Err(e) => (
            RevocationEnd::Later(now.saturating_add(backoff_seconds(pending.attempts, None))),
            "revocation_failed",
            format!("Revocation attempt {attempt} of {MAX_ATTEMPTS} failed ({e})"),
        ),
    };
    let event = NewEvent { kind, detail: &detail, actor: crate::connections::WORKER };
    if !state.db.end_revocation(pending.id, owner, end, Some(&event), now).await? {
        tracing::warn!(vendor = %pending.vendor, "a revocation's lease ran out before its outcome was written");
    }
    Ok(())
}
