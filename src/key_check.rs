//! At start-up: connections whose stored secrets are sealed under a key that is no longer in the
//! keyring (`CLINIC_CONNECT_TOKEN_KEYS`). Each record's header names its key, so this needs no
//! decryption. Such connections are marked "key missing" at once, with a history entry, and one
//! warning says how many there are; `/readyz` then reports the app as degraded. Without it they
//! would look connected until something needed their tokens, and then blame the vendor.
//!
//! The sealed values are kept: a key left out of the keyring by mistake in a deploy costs no
//! clinic its connection. Put back, the next start finds the connections readable again and
//! restores them. (`keys rotate` is different: run without a key, it deletes what that key
//! sealed.) Several instances may start at once: each mark is a compare-and-swap on the row's
//! version, so a row is marked (and its history written) once.

use std::collections::BTreeSet;

use crate::clock::UnixTime;
use crate::connections::WORKER;
use crate::db::connections::NewEvent;
use crate::db::key_check::SealedRow;
use crate::db::Db;
use crate::tokens::STATUS_KEY_MISSING;
use crate::vault::Vault;

/// How many times a row that changed under us is read again before it is left for later.
const ATTEMPTS: usize = 10;

/// The ids of the missing keys a connection's sealed columns name (empty: every one opens).
fn missing_keys(vault: &Vault, row: &SealedRow) -> BTreeSet<String> {
    [&row.access_token, &row.refresh_token, &row.client_secret]
        .into_iter()
        .flatten()
        .filter_map(|record| Vault::key_id_of(record).ok())
        .filter(|id| !vault.has_key(id))
        .collect()
}

/// Marks every connection holding a secret under a missing key, and restores those marked
/// earlier whose keys are back; returns how many connections are under a missing key now.
pub async fn mark_unreadable_connections(db: &Db, vault: &Vault, now: UnixTime) -> anyhow::Result<usize> {
    let (mut missing_count, mut restored) = (0, 0);
    let mut keys = BTreeSet::new();
    for row in db.sealed_rows().await? {
        let missing = missing_keys(vault, &row);
        match (row.status == STATUS_KEY_MISSING, missing.is_empty()) {
            (false, true) => {}
            (true, true) => restored += usize::from(restore(db, vault, row, now).await?),
            (already, false) => {
                missing_count += 1;
                keys.extend(missing.iter().cloned());
                if !already {
                    mark(db, vault, row, &missing, now).await?;
                }
            }
        }
    }
    if missing_count > 0 {
        let keys: Vec<String> = keys.into_iter().collect();
        tracing::warn!(
            connections = missing_count,
            missing_keys = keys.join(","),
            "connections hold secrets sealed under keys that are not in CLINIC_CONNECT_TOKEN_KEYS; they are marked \
             \"key missing\": put the keys back and restart, or have the clinics reconnect them"
        );
    }
    if restored > 0 {
        tracing::info!(connections = restored, "connections marked \"key missing\" are readable again; restored");
    }
    Ok(missing_count)
}

async fn mark(
    db: &Db,
    vault: &Vault,
    mut row: SealedRow,
    missing: &BTreeSet<String>,
    now: UnixTime,
) -> anyhow::Result<()> {
    let names: Vec<String> = missing.iter().map(|k| format!("`{k}`")).collect();
    let detail = format!(
        "The stored secrets are sealed under the encryption key {}, which is not configured on the server \
         (CLINIC_CONNECT_TOKEN_KEYS); they are kept, and work again if the key is put back",
        names.join(", ")
    );
    let event = NewEvent { kind: "key_missing", detail: &detail, actor: WORKER };
    for _ in 0..ATTEMPTS {
        if db.mark_key_missing_keeping_secrets(row.id, row.version, &event, now).await? {
            return Ok(());
        }
        // Changed meanwhile: marked by another instance starting too, reconnected, or refreshed
        // under a configured key. Look again.
        match db.sealed_row(row.id).await? {
            Some(current) if current.status != STATUS_KEY_MISSING && !missing_keys(vault, &current).is_empty() => {
                row = current
            }
            _ => return Ok(()),
        }
    }
    tracing::warn!(connection_id = row.id, "a connection under a missing key kept changing; not marked now");
    Ok(())
}

/// Whether this instance restored the row (another may have, at the same moment).
async fn restore(db: &Db, vault: &Vault, mut row: SealedRow, now: UnixTime) -> anyhow::Result<bool> {
    let event = NewEvent {
        kind: "key_found",
        detail: "The encryption key of the stored secrets is configured again; the connection is restored",
        actor: WORKER,
    };
    for _ in 0..ATTEMPTS {
        // Its health is checked in the next round: the tokens may have expired meanwhile.
        if db.key_found_again(row.id, row.version, &event, now, now).await? {
            return Ok(true);
        }
        match db.sealed_row(row.id).await? {
            Some(current) if current.status == STATUS_KEY_MISSING && missing_keys(vault, &current).is_empty() => {
                row = current
            }
            _ => return Ok(false),
        }
    }
    Ok(false)
}
