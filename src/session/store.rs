//! actix-session's `SessionStore`, backed by the store (either engine) and sealed by the vault.
//!
//! The cookie carries only the session key. The row is stored under the key's SHA-256, so the
//! database alone cannot be replayed as cookies; the state is a vault record bound to that row.
//! Both limits are enforced here, on the server: 30 minutes idle, 12 hours from sign-in.

use std::collections::HashMap;
use std::sync::Arc;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use anyhow::anyhow;

use crate::clock::SharedClock;
use crate::db::sessions::SessionWrite;
use crate::db::Db;
use crate::memo::Memo;
use crate::vault::{lookup_hash, random_token, Binding, Vault};

/// Only push the idle deadline out when it would move by more than this: a page view then costs
/// no database write, at the price of up to a minute of idle-timeout precision.
const TOUCH_SLACK_SECONDS: i64 = 60;

#[derive(Clone)]
pub struct DbSessionStore {
    db: Db,
    vault: Arc<Vault>,
    clock: SharedClock,
    /// `admin` or `patient`: a session of one kind never loads as the other.
    kind: &'static str,
    absolute_ttl_seconds: i64,
    /// The idle deadline last read or written per session row, so that pushing it out costs a
    /// database write only when it would move by more than the slack.
    deadlines: Arc<Memo<String, i64>>,
}

/// Past this many remembered deadlines the memo starts over (it is only an optimisation).
const DEADLINE_MEMO_LIMIT: usize = 100_000;

/// A session's state as actix-session keeps it: each value is JSON text.
pub type State = HashMap<String, String>;

/// Whom a session's state says it is signed in as: its row names the admin, so that a password
/// change or "sign out everywhere" can end it.
fn signed_in_admin(state: &State) -> Option<i64> {
    state.get(crate::session::ADMIN_ID).and_then(|v| v.parse().ok())
}

/// The vault binding of a session's state: its row and its kind.
pub fn session_binding(id: &str, kind: &str) -> Binding {
    Binding::new("sessions", id, &format!("state/{kind}"))
}

/// Opens a session row's sealed state (to read it outside a request of that session: an admin's
/// list of their sessions).
pub fn open_state(vault: &Vault, id: &str, kind: &str, record: &[u8]) -> anyhow::Result<State> {
    let plain = vault.open(record, &session_binding(id, kind))?;
    Ok(serde_json::from_slice(&plain)?)
}

impl DbSessionStore {
    pub fn new(db: Db, vault: Arc<Vault>, clock: SharedClock, kind: &'static str, absolute_ttl_seconds: i64) -> Self {
        Self { db, vault, clock, kind, absolute_ttl_seconds, deadlines: Arc::new(Memo::new(DEADLINE_MEMO_LIMIT)) }
    }

    fn remember(&self, id: &str, deadline: i64) {
        self.deadlines.insert(id.to_owned(), deadline);
    }

    fn forget(&self, id: &str) {
        self.deadlines.remove(id);
    }

    fn remembered(&self, id: &str) -> Option<i64> {
        self.deadlines.get(id)
    }

    fn binding(&self, id: &str) -> Binding {
        session_binding(id, self.kind)
    }

    fn seal(&self, id: &str, state: &State) -> anyhow::Result<Vec<u8>> {
        let json = serde_json::to_vec(state)?;
        Ok(self.vault.seal(&json, &self.binding(id))?)
    }

    fn new_key() -> anyhow::Result<SessionKey> {
        // 48 random bytes: 384 bits, 64 characters.
        SessionKey::try_from(random_token(48)?).map_err(|e| anyhow!("{e}"))
    }

    async fn insert(&self, state: &State, ttl: &Duration) -> anyhow::Result<SessionKey> {
        let key = Self::new_key()?;
        let id = lookup_hash(key.as_ref());
        let now = self.clock.now();
        let sealed = self.seal(&id, state)?;
        let write = SessionWrite {
            id: &id,
            kind: self.kind,
            state: &sealed,
            admin_id: signed_in_admin(state),
            idle_expires_at: now + ttl.whole_seconds(),
        };
        self.db.insert_session(&write, now).await?;
        self.remember(&id, now + ttl.whole_seconds());
        Ok(key)
    }
}

/// The state a session loads as when the store cannot be read: actix-session answers a failed
/// load with an empty 500 that no page can replace, so the failure is carried into the request
/// instead, where `unavailable_page` answers it with a page that says so (and no handler runs).
pub const STORE_UNAVAILABLE: &str = "_store_unavailable";

impl SessionStore for DbSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<State>, LoadError> {
        let id = lookup_hash(session_key.as_ref());
        let row = match self.db.session(&id, self.kind).await {
            Ok(row) => row,
            Err(e) => {
                tracing::error!(cause = %e, "the session store cannot be read");
                return Ok(Some(State::from([(STORE_UNAVAILABLE.to_owned(), "true".to_owned())])));
            }
        };
        let Some(row) = row else {
            return Ok(None);
        };
        let now = self.clock.now();
        if now >= row.idle_expires_at || now >= row.created_at + self.absolute_ttl_seconds {
            tracing::info!("session expired; removed");
            self.forget(&id);
            self.db.delete_session(&id, self.kind).await.map_err(|e| LoadError::Other(e.into()))?;
            return Ok(None);
        }
        self.remember(&id, row.idle_expires_at);
        let plain = match self.vault.open(&row.state, &self.binding(&id)) {
            Ok(plain) => plain,
            Err(error) => {
                // Fail closed: a session that does not open is no session.
                tracing::warn!(%error, "session state does not open; treating as signed out");
                return Ok(None);
            }
        };
        serde_json::from_slice(&plain).map(Some).map_err(|e| LoadError::Deserialization(e.into()))
    }

    async fn save(&self, session_state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        self.insert(&session_state, ttl).await.map_err(SaveError::Other)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let id = lookup_hash(session_key.as_ref());
        let sealed = self.seal(&id, &session_state).map_err(UpdateError::Serialization)?;
        let idle_expires_at = self.clock.now() + ttl.whole_seconds();
        let write = SessionWrite {
            id: &id,
            kind: self.kind,
            state: &sealed,
            admin_id: signed_in_admin(&session_state),
            idle_expires_at,
        };
        let updated = self.db.update_session(&write).await.map_err(|e| UpdateError::Other(e.into()))?;
        if updated {
            self.remember(&id, idle_expires_at);
            Ok(session_key)
        } else {
            // The row expired or was removed meanwhile (a sign-out elsewhere, a password change,
            // the admin removed): start a new session rather than revive it, and not signed in.
            let mut session_state = session_state;
            session_state.remove(crate::session::ADMIN_ID);
            session_state.remove(crate::session::BINDING);
            session_state.remove(crate::session::DEVICE);
            self.insert(&session_state, ttl).await.map_err(UpdateError::Other)
        }
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        let id = lookup_hash(session_key.as_ref());
        let idle_expires_at = self.clock.now() + ttl.whole_seconds();
        if self.remembered(&id).is_some_and(|known| idle_expires_at - known <= TOUCH_SLACK_SECONDS) {
            return Ok(());
        }
        // Best effort: a deadline not pushed out costs the session some idle time, while an error
        // here would replace the page just served with an empty one.
        match self.db.touch_session(&id, self.kind, idle_expires_at, TOUCH_SLACK_SECONDS).await {
            Ok(()) => self.remember(&id, idle_expires_at),
            Err(e) => tracing::warn!(cause = %e, "a session's idle deadline could not be pushed out"),
        }
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        let id = lookup_hash(session_key.as_ref());
        self.forget(&id);
        Ok(self.db.delete_session(&id, self.kind).await?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::session::{ADMIN_ID, ADMIN_KIND, BINDING, DEVICE};
    use secrecy::SecretString;

    #[tokio::test]
    async fn a_session_ended_while_a_request_was_under_way_is_not_signed_in_again_by_its_write() {
        let (db, _dir) = crate::db::fixtures::sqlite().await;
        let clinic = db.ensure_clinic("Clinic", 1).await.unwrap();
        let admin = db.insert_admin(clinic, "a@clinic.test", "hash", 1).await.unwrap();
        let vault = Arc::new(Vault::from_keyring(&SecretString::from(Vault::generate_key_entry().unwrap())).unwrap());
        let store = DbSessionStore::new(db.clone(), vault, ManualClock::starting_now(), ADMIN_KIND, 3600);
        let state: State = [
            (ADMIN_ID.to_owned(), admin.to_string()),
            (BINDING.to_owned(), "\"binding\"".to_owned()),
            (DEVICE.to_owned(), "\"Firefox on Linux\"".to_owned()),
            ("notice".to_owned(), "\"kept\"".to_owned()),
        ]
        .into();
        let ttl = Duration::seconds(1800);
        let key = store.save(state.clone(), &ttl).await.unwrap();
        assert!(store.load(&key).await.unwrap().is_some());

        // A password change elsewhere ends the session; then the request that had loaded it
        // writes its state back.
        assert!(db.set_password(admin, "new hash", None).await.unwrap());
        let key = store.update(key, state, &ttl).await.unwrap();

        let revived = store.load(&key).await.unwrap().unwrap();
        assert!(!revived.contains_key(ADMIN_ID) && !revived.contains_key(BINDING), "{revived:?}");
        assert_eq!(revived.get("notice").map(String::as_str), Some("\"kept\""));
        assert!(db.sessions_of_admin(admin, 0).await.unwrap().is_empty(), "no session names the admin");
    }
}
