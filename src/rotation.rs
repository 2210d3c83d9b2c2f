//! `clinic-connect keys rotate`: re-encrypts every stored secret under the newest key while the
//! app keeps serving. Each row is rewritten only if it did not change meanwhile (a version or
//! value check), and re-read and retried when it did. A row that no configured key opens fails
//! closed: connections become "key missing" (the admin reconnects), sessions and flows end.

use crate::clock::SharedClock;
use crate::connections::{connection_binding, CLI};
use crate::db::connections::NewEvent;
use crate::db::Db;
use crate::revocation::binding as revocation_binding;
use crate::vault::{Binding, Vault, VaultError};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RotationReport {
    pub resealed: usize,
    pub already_current: usize,
    pub unreadable: usize,
    /// The connections it could not re-seal (now "key missing"), so the operator can tell each
    /// clinic which vendor to reconnect.
    pub key_missing: Vec<ConnectionName>,
}

/// A connection as an operator names it: its clinic and its vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionName {
    pub clinic: String,
    pub vendor: String,
}

impl std::fmt::Display for ConnectionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "clinic {:?}, vendor {}", self.clinic, self.vendor)
    }
}

impl std::fmt::Display for RotationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} records re-encrypted, {} already under the newest key, {} unreadable (failed closed)",
            self.resealed, self.already_current, self.unreadable
        )
    }
}

enum Reseal {
    Current,
    New(Vec<u8>),
    Unreadable,
}

fn reseal(vault: &Vault, record: &[u8], binding: &Binding) -> anyhow::Result<Reseal> {
    if Vault::key_id_of(record).ok().as_deref() == Some(vault.current_key_id()) {
        return Ok(Reseal::Current);
    }
    match vault.open(record, binding) {
        Ok(plain) => Ok(Reseal::New(vault.seal(&plain, binding)?)),
        Err(VaultError::UnknownKey(_) | VaultError::Unsealed | VaultError::Malformed) => Ok(Reseal::Unreadable),
        Err(e) => Err(e.into()),
    }
}

pub async fn rotate(db: &Db, vault: &Vault, clock: &SharedClock) -> anyhow::Result<RotationReport> {
    let mut report = RotationReport::default();
    for row in db.sealed_connections().await? {
        let mut id_version = (row.id, row.version);
        // A concurrent write bumps the version: re-read and try again, a bounded number of times.
        for _ in 0..10 {
            let Some(current) = db.sealed_connection(id_version.0).await? else { break };
            let columns = [
                ("access_token", &current.access_token),
                ("refresh_token", &current.refresh_token),
                ("client_secret", &current.client_secret),
            ];
            let mut out: Vec<Option<Vec<u8>>> = Vec::new();
            let (mut changed, mut unreadable) = (0, false);
            for (column, record) in columns {
                match record {
                    None => out.push(None),
                    Some(r) => match reseal(vault, r, &connection_binding(current.clinic_id, &current.vendor, column))?
                    {
                        Reseal::Current => out.push(Some(r.clone())),
                        Reseal::New(n) => {
                            changed += 1;
                            out.push(Some(n));
                        }
                        Reseal::Unreadable => unreadable = true,
                    },
                }
            }
            let written = if unreadable {
                let event = NewEvent {
                    kind: "key_missing",
                    detail: "Stored secrets were sealed under a key that is no longer configured; reconnect to restore access",
                    actor: CLI,
                };
                let done = db.mark_key_missing(current.id, current.version, &event, clock.now()).await?;
                if done {
                    report.unreadable += 1;
                    let clinic = db.clinic_name(current.clinic_id).await?;
                    report.key_missing.push(ConnectionName {
                        clinic: clinic.unwrap_or_else(|| format!("#{}", current.clinic_id)),
                        vendor: current.vendor.clone(),
                    });
                }
                done
            } else if changed == 0 {
                report.already_current += 1;
                true
            } else {
                let done = db
                    .reseal_connection(
                        current.id,
                        current.version,
                        out[0].as_deref(),
                        out[1].as_deref(),
                        out[2].as_deref(),
                    )
                    .await?;
                if done {
                    report.resealed += changed;
                }
                done
            };
            if written {
                break;
            }
            id_version = (current.id, current.version);
        }
    }
    for (id, kind, state) in db.sealed_sessions().await? {
        match reseal(vault, &state, &crate::session::store::session_binding(&id, &kind))? {
            Reseal::Current => report.already_current += 1,
            Reseal::New(n) => {
                if db.reseal_session(&id, &state, &n).await? {
                    report.resealed += 1;
                }
            }
            Reseal::Unreadable => {
                db.delete_session(&id, &kind).await?;
                report.unreadable += 1;
            }
        }
    }
    for (hash, verifier) in db.sealed_flows().await? {
        match reseal(vault, &verifier, &Binding::new("oauth_flows", &hash, "verifier"))? {
            Reseal::Current => report.already_current += 1,
            Reseal::New(n) => {
                if db.reseal_flow(&hash, &verifier, &n).await? {
                    report.resealed += 1;
                }
            }
            Reseal::Unreadable => {
                db.delete_flow(&hash).await?;
                report.unreadable += 1;
            }
        }
    }
    for (id, reference, token) in db.sealed_revocations().await? {
        match reseal(vault, &token, &revocation_binding(&reference))? {
            Reseal::Current => report.already_current += 1,
            Reseal::New(n) => {
                if db.reseal_revocation(id, &token, &n).await? {
                    report.resealed += 1;
                }
            }
            Reseal::Unreadable => {
                db.delete_revocation(id).await?;
                report.unreadable += 1;
            }
        }
    }
    Ok(report)
}
