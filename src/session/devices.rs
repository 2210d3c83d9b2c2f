//! An admin's live sessions as the devices they are signed in on: when each started, when it
//! was last active, what it is ("Firefox on Windows"), and which one is this one.
//!
//! Each row's sealed state is opened to read its device and its binding: the binding (a random
//! value per sign-in) is how the current session finds its own row, since a request never learns
//! its session's key. Pages name a session by a handle derived from its row id, never by the id.

use actix_session::Session;

use crate::clock::UnixTime;
use crate::db::Db;
use crate::errors::AppError;
use crate::session::store::{open_state, State};
use crate::session::{ABSOLUTE_TTL_SECONDS, ADMIN_KIND, BINDING, DEVICE, IDLE_TTL_SECONDS};
use crate::vault::{constant_time_eq, lookup_hash, Vault};

/// One device an admin is signed in on.
#[derive(Debug, Clone)]
pub struct Device {
    /// What a page's form names it by.
    pub handle: String,
    pub description: String,
    pub started_at: UnixTime,
    pub last_active_at: UnixTime,
    /// This request's own session.
    pub current: bool,
}

/// An admin's devices, and the row ids behind their handles.
pub struct Devices {
    pub devices: Vec<Device>,
    rows: Vec<(String, String)>,
}

impl Devices {
    /// The row id of this request's own session, when it is among them.
    pub fn current_id(&self) -> Option<&str> {
        let current = self.devices.iter().find(|d| d.current)?;
        self.id_of(&current.handle)
    }

    /// The row id behind a handle a form sent back.
    pub fn id_of(&self, handle: &str) -> Option<&str> {
        self.rows.iter().find(|(h, _)| h == handle).map(|(_, id)| id.as_str())
    }

    pub fn find(&self, handle: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.handle == handle)
    }
}

/// A row's handle: not its id (the SHA-256 of a session key), but a hash of it with a label,
/// which says nothing about the key and cannot be used as a session's id anywhere.
fn handle(id: &str) -> String {
    lookup_hash(&format!("session-handle/v1/{id}"))[..32].to_owned()
}

/// A JSON-text value of a session's state, as the string it holds.
fn text(state: &State, key: &str) -> Option<String> {
    state.get(key).and_then(|v| serde_json::from_str(v).ok())
}

/// The admin's live sessions (idle and absolute limits both), newest first; the one whose
/// binding is `session`'s is marked current.
pub async fn of_admin(
    db: &Db,
    vault: &Vault,
    now: UnixTime,
    admin_id: i64,
    session: &Session,
) -> Result<Devices, AppError> {
    let own_binding = crate::session::binding(session)?;
    let mut devices = Vec::new();
    let mut rows = Vec::new();
    for row in db.sessions_of_admin(admin_id, now).await? {
        if row.created_at + ABSOLUTE_TTL_SECONDS <= now {
            continue;
        }
        let state = match open_state(vault, &row.id, ADMIN_KIND, &row.state) {
            Ok(state) => state,
            Err(error) => {
                // Such a session cannot be used either (it loads as signed out): not a device.
                tracing::warn!(%error, "a session's state does not open; left out of the admin's devices");
                continue;
            }
        };
        let binding = text(&state, BINDING).unwrap_or_default();
        let handle = handle(&row.id);
        devices.push(Device {
            handle: handle.clone(),
            description: text(&state, DEVICE).unwrap_or_else(|| crate::device::UNKNOWN.to_owned()),
            started_at: row.created_at,
            // The idle deadline is pushed out by each request (to within a minute).
            last_active_at: (row.idle_expires_at - IDLE_TTL_SECONDS).max(row.created_at),
            current: !binding.is_empty() && constant_time_eq(binding.as_bytes(), own_binding.as_bytes()),
        });
        rows.push((handle, row.id));
    }
    Ok(Devices { devices, rows })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_is_stable_short_and_not_the_id() {
        let id = lookup_hash("a session key");
        assert_eq!(handle(&id), handle(&id));
        assert_eq!(handle(&id).len(), 32);
        assert!(!id.contains(&handle(&id)));
        assert_ne!(handle(&id), handle(&lookup_hash("another key")));
    }
}
