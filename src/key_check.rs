//! At start-up: connections whose stored secrets are sealed under a key that is no longer in the
//! keyring (`CLINIC_CONNECT_TOKEN_KEYS`). Each record's header names its key, so this needs no
//! decryption. Such connections are marked "key missing" at once, with a history entry, and one
//! warning says how many there are; `/readyz` then reports the app as degraded. Without it they
//! would look connected until something needed their tokens, and then blame the vendor.
//!
//! Several instances may start at once: each mark is a compare-and-swap on the row's version, so
//! a row is marked (and its history written) once.

use std::collections::BTreeSet;

use crate::clock::UnixTime;
use crate::connections::WORKER;
use crate::db::connections::NewEvent;
use crate::db::rotation::SealedConnection;
use crate::db::Db;
use crate::vault::Vault;

/// How many times a row that changed under us is read again before it is left for later.
const ATTEMPTS: usize = 10;

/// The ids of the missing keys a connection's sealed columns name (empty: every one opens).
fn missing_keys(vault: &Vault, row: &SealedConnection) -> BTreeSet<String> {
    [&row.access_token, &row.refresh_token, &row.client_secret]
        .into_iter()
        .flatten()
        .filter_map(|record| Vault::key_id_of(record).ok())
        .filter(|id| !vault.has_key(id))
        .collect()
}

/// Marks every connection holding a secret under a missing key; returns how many there were
/// (marked here or, at the same moment, by another instance).
pub async fn mark_unreadable_connections(db: &Db, vault: &Vault, now: UnixTime) -> anyhow::Result<usize> {
    let mut found = 0;
    let mut keys = BTreeSet::new();
    for row in db.sealed_connections().await? {
        let missing = missing_keys(vault, &row);
        if missing.is_empty() {
            continue;
        }
        found += 1;
        keys.extend(missing.iter().cloned());
        mark(db, vault, row, &missing, now).await?;
    }
    if found > 0 {
        let keys: Vec<String> = keys.into_iter().collect();
        tracing::warn!(
            connections = found,
            missing_keys = keys.join(","),
            "connections hold secrets sealed under keys that are not in CLINIC_CONNECT_TOKEN_KEYS; they are marked \
             \"key missing\": put the keys back and restart, or have the clinics reconnect them"
        );
    }
    Ok(found)
}

async fn mark(
    db: &Db,
    vault: &Vault,
    mut row: SealedConnection,
    missing: &BTreeSet<String>,
    now: UnixTime,
) -> anyhow::Result<()> {
    let names: Vec<String> = missing.iter().map(|k| format!("`{k}`")).collect();
    let detail = format!(
        "The stored secrets are sealed under the encryption key {}, which is no longer configured on the server \
         (CLINIC_CONNECT_TOKEN_KEYS)",
        names.join(", ")
    );
    let event = NewEvent { kind: "key_missing", detail: &detail, actor: WORKER };
    for _ in 0..ATTEMPTS {
        if db.mark_key_missing(row.id, row.version, &event, now).await? {
            return Ok(());
        }
        // Changed meanwhile: marked by another instance starting too (its columns are then
        // cleared), reconnected, or refreshed under a configured key. Look again.
        match db.sealed_connection(row.id).await? {
            Some(current) if !missing_keys(vault, &current).is_empty() => row = current,
            _ => return Ok(()),
        }
    }
    tracing::warn!(connection_id = row.id, "a connection under a missing key kept changing; not marked now");
    Ok(())
}
