//! The request path's writes: a pending flow added at "Connect", taken at the callback, and the
//! grant stored after the code exchange.
//!
//! They run on the writer thread ([`super::writer`]), to their end even if the request that asked
//! goes away, and the ones queued at the same moment are written together, each group as one
//! transaction sent to a connection's thread as one command from `BEGIN` to `COMMIT`: first the
//! pending flows, on a fast connection, answered as soon as they are committed; then the grants,
//! durably (`synchronous=FULL`, one fsync for all of them). If a group fails — one of its writes
//! is refused — each of its writes is done again on its own, so that it fails alone. What a write
//! stored is left in the read cache as stored (see [`super::cache`]).

use std::future::Future;
use std::pin::Pin;

use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, Row};
use tokio::sync::oneshot;

use super::connections::{ConnectionRow, EventRow, SealedGrant, ADD_EVENTS, STORE_GRANTS};
use super::flows::{FlowRow, NewFlow, INSERT_FLOWS, TAKE_FLOWS};
use super::Db;
use crate::clock::UnixTime;
use crate::vault::hex;

/// One write waiting on the writer thread, with the way to answer its asker.
pub(crate) struct Queued {
    db: Db,
    write: Write,
}

enum Write {
    Grant { grant: OwnedGrant, kind: String, detail: String, answer: oneshot::Sender<sqlx::Result<()>> },
    NewFlow { flow: OwnedFlow, answer: oneshot::Sender<sqlx::Result<()>> },
    TakeFlow { key: [String; 3], answer: oneshot::Sender<sqlx::Result<Option<FlowRow>>> },
}

impl Db {
    /// Stores a new grant for a clinic's connection and its history entry, in one transaction.
    pub async fn store_connected(&self, grant: &SealedGrant<'_>, kind: &str, detail: &str) -> sqlx::Result<()> {
        let (grant, kind, detail) = (OwnedGrant::from(grant), kind.to_owned(), detail.to_owned());
        let db = self.clone();
        self.hot_writes.batched(|answer| Queued { db, write: Write::Grant { grant, kind, detail, answer } }).await
    }

    pub async fn insert_flow(&self, flow: &NewFlow<'_>) -> sqlx::Result<()> {
        let (db, flow) = (self.clone(), OwnedFlow::from(flow));
        self.hot_writes.batched(|answer| Queued { db, write: Write::NewFlow { flow, answer } }).await
    }

    /// Takes the flow out, so a state can be used once even under concurrent callbacks. Only a
    /// flow of this session and this vendor is taken: a state presented on the wrong session or
    /// the wrong vendor's callback leaves the rightful flow in place.
    pub async fn take_flow(
        &self,
        state_hash: &str,
        session_binding: &str,
        vendor: &str,
    ) -> sqlx::Result<Option<FlowRow>> {
        let key = [state_hash.to_owned(), session_binding.to_owned(), vendor.to_owned()];
        let db = self.clone();
        self.hot_writes.batched(|answer| Queued { db, write: Write::TakeFlow { key, answer } }).await
    }
}

/// Writes a batch (see the module's documentation): the pending flows first, on a fast
/// connection, and answered at once; then the grants, durably. A flow's write then never waits
/// for a grant's fsync.
pub(crate) fn write_batch(batch: Vec<Queued>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let Some(db) = batch.first().map(|q| q.db.clone()) else { return };
        // Each kind in its order of arrival. (A take never waits behind the insert of its own
        // flow: the browser cannot come back before the insert was answered.)
        let (grants, flows): (Vec<Write>, Vec<Write>) =
            batch.into_iter().map(|q| q.write).partition(|w| matches!(w, Write::Grant { .. }));
        write_group(&db, flows).await;
        write_group(&db, grants).await;
    })
}

/// Writes `writes` in one transaction and answers each; if that fails, writes each on its own,
/// so that a refused write fails alone.
async fn write_group(db: &Db, writes: Vec<Write>) {
    if writes.len() > 1 {
        match write_together(db, &writes).await {
            Ok(returned) => {
                for (write, row) in writes.into_iter().zip(returned) {
                    answer(write, Ok(row));
                }
                return;
            }
            Err(e) => {
                tracing::debug!(cause = %e, writes = writes.len(), "a batch of writes failed; writing them one by one");
            }
        }
    }
    for write in writes {
        let result = write_together(db, std::slice::from_ref(&write)).await.map(|mut rows| rows.pop().flatten());
        answer(write, result);
    }
}

/// What a write of a batch returned: the flow a take took, the row a grant stored.
enum Returned {
    Flow(FlowRow),
    Connection(Box<ConnectionRow>),
}

/// Sends each asker its answer; a taken flow goes to the take that asked for it.
fn answer(write: Write, result: sqlx::Result<Option<Returned>>) {
    match write {
        Write::Grant { answer, .. } | Write::NewFlow { answer, .. } => {
            let _ = answer.send(result.map(|_| ()));
        }
        Write::TakeFlow { answer, .. } => {
            let flow = result.map(|row| match row {
                Some(Returned::Flow(flow)) => Some(flow),
                _ => None,
            });
            let _ = answer.send(flow);
        }
    }
}

/// Writes `writes` in one transaction; returns, for each write, what it returned.
///
/// Each kind of write is one statement, whatever the number of its rows: the rows travel as one
/// JSON array parameter (bytes in hex), so that every batch is one of eight prepared statements
/// instead of SQL parsed anew for each batch size.
async fn write_together(db: &Db, writes: &[Write]) -> sqlx::Result<Vec<Option<Returned>>> {
    let mut grants = Vec::new();
    let mut events = Vec::new();
    let mut flows = Vec::new();
    let mut takes = Vec::new();
    for write in writes {
        match write {
            Write::Grant { grant, kind, detail, .. } => {
                grants.push(grant);
                events.push((grant.clinic_id, grant.vendor.as_str(), grant.now, kind.as_str(), detail.as_str()));
            }
            Write::NewFlow { flow, .. } => flows.push(flow),
            Write::TakeFlow { key, .. } => takes.push(key),
        }
    }
    let mut sql = String::from("BEGIN IMMEDIATE; ");
    let mut query_args = Vec::new();
    if !grants.is_empty() {
        sql.push_str(&STORE_GRANTS);
        sql.push_str("; ");
        sql.push_str(ADD_EVENTS);
        sql.push_str("; ");
        query_args.push(json(&grants)?);
        query_args.push(json(&events)?);
    }
    if !flows.is_empty() {
        sql.push_str(INSERT_FLOWS);
        sql.push_str("; ");
        query_args.push(json(&flows)?);
    }
    if !takes.is_empty() {
        sql.push_str(TAKE_FLOWS);
        sql.push_str("; ");
        query_args.push(json(&takes)?);
    }
    sql.push_str("COMMIT");
    let mut query = sqlx::query(&sql);
    for arg in &query_args {
        query = query.bind(arg);
    }
    // Pending flows are short-lived state: alone, they are written without an fsync (see `Db`).
    let durable = !grants.is_empty();
    let write = async {
        let mut conn = if durable { db.pool().await? } else { db.fast().await? };
        match query.fetch_all(&mut *conn).await {
            Ok(rows) => {
                let returned = match_returned(writes, &rows)?;
                // Whether it committed a change: a batch of takes that found nothing commits
                // nothing, and must not claim a commit that was someone else's.
                let changed = durable || !flows.is_empty() || returned.iter().any(Option::is_some);
                Ok((returned, changed))
            }
            Err(e) => {
                // Whatever ran of it is undone before the connection is lent again (when nothing
                // had begun, SQLite just says so).
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(e)
            }
        }
    };
    // Flows are read by no cached read. A grant changes its connection's row, which the caches
    // then hold as stored, and adds to its history.
    db.own_write(write, |caches, seen, returned| {
        for (write, row) in writes.iter().zip(returned) {
            let (Write::Grant { grant, kind, detail, .. }, Some(Returned::Connection(row))) = (write, row) else {
                continue;
            };
            caches.stored_connection(seen, (**row).clone());
            let event = EventRow { at: grant.now, kind: kind.clone(), detail: detail.clone() };
            caches.added_history(seen, grant.clinic_id, &grant.vendor, event);
        }
    })
    .await
}

/// A batch statement's JSON parameter.
fn json(rows: &impl serde::Serialize) -> sqlx::Result<String> {
    serde_json::to_string(rows).map_err(|e| sqlx::Error::Encode(e.into()))
}

/// Gives each returned row to the write it belongs to: a taken flow to the first take of its
/// state, session and vendor (a replayed state in the same batch gets nothing); a stored row to
/// the last grant of its clinic and vendor (two in one batch: the second is what is stored).
fn match_returned(writes: &[Write], rows: &[SqliteRow]) -> sqlx::Result<Vec<Option<Returned>>> {
    let mut returned: Vec<Option<Returned>> = writes.iter().map(|_| None).collect();
    for row in rows {
        let kind: &str = row.try_get("returned")?;
        if kind == "grant" {
            let stored = ConnectionRow::from_row(row)?;
            let slot = writes.iter().rposition(
                |w| matches!(w, Write::Grant { grant, .. } if grant.clinic_id == stored.clinic_id && grant.vendor == stored.vendor),
            );
            if let Some(i) = slot {
                let newer = match &returned[i] {
                    Some(Returned::Connection(held)) => stored.version > held.version,
                    _ => true,
                };
                if newer {
                    returned[i] = Some(Returned::Connection(Box::new(stored)));
                }
            }
        } else {
            let key: [String; 3] =
                [row.try_get("state_hash")?, row.try_get("session_binding")?, row.try_get("vendor")?];
            let slot = writes.iter().enumerate().position(|(i, w)| {
                returned[i].is_none() && matches!(w, Write::TakeFlow { key: asked, .. } if *asked == key)
            });
            if let Some(i) = slot {
                returned[i] = Some(Returned::Flow(FlowRow::from_row(row)?));
            }
        }
    }
    Ok(returned)
}

/// A [`NewFlow`] that owns its parts: a row of [`INSERT_FLOWS`]' JSON parameter (bytes in hex).
#[derive(serde::Serialize)]
struct OwnedFlow {
    state_hash: String,
    session_binding: String,
    clinic_id: Option<i64>,
    return_to: Option<String>,
    vendor: String,
    environment: String,
    verifier: String,
    redirect_uri: String,
    scopes: String,
    expires_at: UnixTime,
}

impl From<&NewFlow<'_>> for OwnedFlow {
    fn from(f: &NewFlow<'_>) -> Self {
        Self {
            state_hash: f.state_hash.to_owned(),
            session_binding: f.session_binding.to_owned(),
            clinic_id: f.clinic_id,
            return_to: f.return_to.map(str::to_owned),
            vendor: f.vendor.to_owned(),
            environment: f.environment.to_owned(),
            verifier: hex(f.verifier),
            redirect_uri: f.redirect_uri.to_owned(),
            scopes: f.scopes.to_owned(),
            expires_at: f.expires_at,
        }
    }
}

/// A [`SealedGrant`] that owns its parts: a row of [`STORE_GRANTS`]' JSON parameter (bytes in
/// hex).
#[derive(serde::Serialize)]
struct OwnedGrant {
    clinic_id: i64,
    vendor: String,
    environment: String,
    access_token: String,
    refresh_token: Option<String>,
    token_type: String,
    scopes: String,
    expires_at: Option<UnixTime>,
    account_name: Option<String>,
    identity_retry: bool,
    client_id: Option<String>,
    client_secret: Option<String>,
    parameters: String,
    now: UnixTime,
}

impl From<&SealedGrant<'_>> for OwnedGrant {
    fn from(g: &SealedGrant<'_>) -> Self {
        Self {
            clinic_id: g.clinic_id,
            vendor: g.vendor.to_owned(),
            environment: g.environment.to_owned(),
            access_token: hex(g.access_token),
            refresh_token: g.refresh_token.map(hex),
            token_type: g.token_type.to_owned(),
            scopes: g.scopes.to_owned(),
            expires_at: g.expires_at,
            account_name: g.account_name.map(str::to_owned),
            identity_retry: g.identity_retry,
            client_id: g.client_id.map(str::to_owned),
            client_secret: g.client_secret.map(hex),
            parameters: g.parameters.to_owned(),
            now: g.now,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::db::fixtures::{flow, grant};

    /// Runs `writes` queued together behind a held writer thread, so that they form one batch.
    async fn together<F: Future>(db: &Db, writes: F) -> F::Output {
        let (release, hold) = oneshot::channel::<()>();
        let held = db.hot_writes.run(async move {
            let _ = hold.await;
            Ok(())
        });
        let release_later = async {
            tokio::task::yield_now().await;
            release.send(()).unwrap();
            held.await.unwrap();
        };
        futures_util::future::join(writes, release_later).await.0
    }

    #[tokio::test]
    async fn a_flow_is_taken_once_in_a_batch_and_when_the_batch_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("hot.db")).await.unwrap();
        let clinic = db.ensure_clinic("c", 1).await.unwrap();
        db.insert_flow(&flow("h1")).await.unwrap();
        // A batch that commits: the first take gets the flow, the replayed one nothing.
        let (new, first, replay) = together(
            &db,
            futures_util::future::join3(
                db.insert_flow(&flow("h2")),
                db.take_flow("h1", "binding", "zocdoc"),
                db.take_flow("h1", "binding", "zocdoc"),
            ),
        )
        .await;
        new.unwrap();
        assert_eq!(first.unwrap().expect("taken").environment, "production");
        assert!(replay.unwrap().is_none(), "a state is used once");
        assert!(db.take_flow("h1", "other-session", "zocdoc").await.unwrap().is_none());

        // A batch with a refused write (a state that exists already): written again one by one,
        // each answered for itself; a refused grant alongside fails alone too.
        let bad = grant(clinic + 99, b"sealed");
        let (refused, (taken, again), refused_grant) = together(
            &db,
            futures_util::future::join3(
                db.insert_flow(&flow("h2")),
                futures_util::future::join(
                    db.take_flow("h2", "binding", "zocdoc"),
                    db.take_flow("h2", "binding", "zocdoc"),
                ),
                db.store_connected(&bad, "connected", "refused"),
            ),
        )
        .await;
        assert!(refused.is_err(), "a state is never stored twice");
        assert!(refused_grant.is_err());
        assert!(taken.unwrap().is_some(), "the flow inserted by the first batch is taken once");
        assert!(again.unwrap().is_none());
    }

    #[tokio::test]
    async fn flows_are_answered_before_the_grants_queued_with_them_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("hot.db")).await.unwrap();
        let clinic = db.ensure_clinic("c", 1).await.unwrap();
        let order = std::sync::Mutex::new(Vec::new());
        let note = |what: &'static str| order.lock().unwrap().push(what);
        let g = grant(clinic, b"sealed");
        let new_flow = flow("h1");
        let (stored, inserted) = together(
            &db,
            futures_util::future::join(
                async { db.store_connected(&g, "connected", "ok").await.map(|()| note("grant")) },
                async { db.insert_flow(&new_flow).await.map(|()| note("flow")) },
            ),
        )
        .await;
        stored.unwrap();
        inserted.unwrap();
        assert_eq!(*order.lock().unwrap(), ["flow", "grant"], "the flow does not wait for the grant's fsync");
    }

    #[tokio::test]
    async fn a_batch_stores_every_row_exactly_and_the_last_grant_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hot.db");
        let db = Db::open(&path).await.unwrap();
        let clinic = db.ensure_clinic("c", 1).await.unwrap();
        let first = grant(clinic, b"\x00\xffone");
        let second = SealedGrant {
            access_token: b"two",
            refresh_token: None,
            client_id: Some("cid"),
            client_secret: Some(b"\x01secret\x00"),
            expires_at: None,
            account_name: Some("Dr. \"Ö\" \\ 🦷 '; --"),
            identity_retry: true,
            ..grant(clinic, b"")
        };
        let new_flow =
            NewFlow { verifier: b"\x00\x01\xfe", clinic_id: Some(clinic), return_to: Some("/care"), ..flow("h3") };
        let (one, two, inserted) = together(
            &db,
            futures_util::future::join3(
                db.store_connected(&first, "connected", "one"),
                db.store_connected(&second, "connected", "two"),
                db.insert_flow(&new_flow),
            ),
        )
        .await;
        one.unwrap();
        two.unwrap();
        inserted.unwrap();
        // Read through another handle: what SQLite holds, not what this one cached.
        let other = Db::open(&path).await.unwrap();
        let row = other.connection(clinic, "drchrono").await.unwrap().unwrap();
        assert_eq!(row.access_token.as_deref(), Some(b"two".as_slice()));
        assert_eq!((row.refresh_token, row.expires_at, row.version), (None, None, 2));
        assert_eq!((row.account_name.as_deref(), row.identity_retry), (Some("Dr. \"Ö\" \\ 🦷 '; --"), 1));
        assert_eq!(
            (row.client_id.as_deref(), row.client_secret.as_deref()),
            (Some("cid"), Some(b"\x01secret\x00".as_slice()))
        );
        let cached = db.connection(clinic, "drchrono").await.unwrap().unwrap();
        assert_eq!((cached.version, cached.access_token), (2, row.access_token));
        let history: Vec<String> =
            other.events(clinic, "drchrono").await.unwrap().iter().map(|e| e.detail.clone()).collect();
        assert_eq!(history, ["two", "one"], "newest first, in the order asked");
        let taken = db.take_flow("h3", "binding", "zocdoc").await.unwrap().expect("inserted");
        assert_eq!(taken.verifier, b"\x00\x01\xfe");
        assert_eq!((taken.clinic_id, taken.return_to.as_deref()), (Some(clinic), Some("/care")));
    }
}
