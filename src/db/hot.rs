//! The request path's writes: a pending flow added at "Connect", taken at the callback, and the
//! grant stored after the code exchange.
//!
//! They run on the writer thread ([`super::writer`]), to their end even if the request that asked
//! goes away, and the ones queued at the same moment are written together: one transaction, sent
//! to the connection's thread as one command from `BEGIN` to `COMMIT` — durable
//! (`synchronous=FULL`, one fsync for all of them) when it holds a grant, on a fast connection
//! when it holds only pending flows. If the batch fails — one of its writes is refused — each write
//! is done again on its own, so that it fails alone.

use std::future::Future;
use std::pin::Pin;

use sqlx::{FromRow, Row};
use tokio::sync::oneshot;

use super::connections::{
    bind_event, bind_grant, ConnectionRow, EventRow, SealedGrant, SqliteQuery, ADD_EVENT, STORE_GRANT_RETURNING,
};
use super::flows::{FlowRow, NewFlow, INSERT_FLOW, TAKE_FLOW};
use super::Db;
use crate::clock::UnixTime;

/// Batches of up to this many writes keep their prepared statement.
const PREPARED_UP_TO: usize = 4;

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

/// Writes a batch (see the module's documentation).
pub(crate) fn write_batch(batch: Vec<Queued>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let Some(db) = batch.first().map(|q| q.db.clone()) else { return };
        let mut writes: Vec<Write> = batch.into_iter().map(|q| q.write).collect();
        // Grants, then new flows, then takes (each kind in its order of arrival): the batch's SQL
        // then depends only on how many of each there are, so that small batches reuse their
        // prepared statement. (A take never waits behind the insert of its own flow: the browser
        // cannot come back before the insert was answered.)
        writes.sort_by_key(|w| match w {
            Write::Grant { .. } => 0,
            Write::NewFlow { .. } => 1,
            Write::TakeFlow { .. } => 2,
        });
        if writes.len() > 1 {
            match write_together(&db, &writes).await {
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
            let result = write_together(&db, std::slice::from_ref(&write)).await.map(|mut rows| rows.pop().flatten());
            answer(write, result);
        }
    })
}

/// What a write of a batch returned: the flow a take took, the row a grant stored.
enum Returned {
    Flow(FlowRow),
    Connection(ConnectionRow),
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
async fn write_together(db: &Db, writes: &[Write]) -> sqlx::Result<Vec<Option<Returned>>> {
    let mut sql = String::from("BEGIN IMMEDIATE; ");
    for write in writes {
        sql.push_str(match write {
            Write::Grant { .. } => STORE_GRANT_RETURNING.as_str(),
            Write::NewFlow { .. } => INSERT_FLOW,
            Write::TakeFlow { .. } => TAKE_FLOW,
        });
        sql.push_str("; ");
        if matches!(write, Write::Grant { .. }) {
            sql.push_str(ADD_EVENT);
            sql.push_str("; ");
        }
    }
    sql.push_str("COMMIT");
    // Large batches are rare alike: not kept prepared, so they do not crowd the statement cache.
    let mut query = sqlx::query(&sql).persistent(writes.len() <= PREPARED_UP_TO);
    for (i, write) in writes.iter().enumerate() {
        query = match write {
            Write::Grant { grant, kind, detail, .. } => {
                let g = grant.sealed();
                let query = bind_grant(query, &g).bind(i as i64);
                bind_event(query, g.clinic_id, g.vendor, g.now, kind, detail)
            }
            Write::NewFlow { flow, .. } => flow.bind(query),
            Write::TakeFlow { key: [state_hash, session_binding, vendor], .. } => {
                query.bind(state_hash).bind(session_binding).bind(vendor).bind(i as i64)
            }
        };
    }
    let grants = || writes.iter().filter_map(|w| if let Write::Grant { grant, .. } = w { Some(grant) } else { None });
    // Pending flows are short-lived state: alone, they are written without an fsync (see `Db`).
    let durable = grants().next().is_some();
    let write = async {
        let mut conn = if durable { db.pool().await? } else { db.fast().await? };
        match query.fetch_all(&mut *conn).await {
            Ok(rows) => {
                let mut returned: Vec<Option<Returned>> = writes.iter().map(|_| None).collect();
                for row in rows {
                    let job: i64 = row.try_get("job")?;
                    let Some(i) = usize::try_from(job).ok().filter(|&i| i < writes.len()) else { continue };
                    returned[i] = Some(match writes[i] {
                        Write::Grant { .. } => Returned::Connection(ConnectionRow::from_row(&row)?),
                        _ => Returned::Flow(FlowRow::from_row(&row)?),
                    });
                }
                // Whether it committed a change: a batch of takes that found nothing commits
                // nothing, and must not claim a commit that was someone else's.
                let changed = durable
                    || returned.iter().any(Option::is_some)
                    || writes.iter().any(|w| matches!(w, Write::NewFlow { .. }));
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
            caches.stored_connection(seen, row.clone());
            let event = EventRow { at: grant.now, kind: kind.clone(), detail: detail.clone() };
            caches.added_history(seen, grant.clinic_id, &grant.vendor, event);
        }
    })
    .await
}

/// A [`NewFlow`] that owns its parts.
struct OwnedFlow {
    state_hash: String,
    session_binding: String,
    clinic_id: Option<i64>,
    return_to: Option<String>,
    vendor: String,
    environment: String,
    verifier: Vec<u8>,
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
            verifier: f.verifier.to_vec(),
            redirect_uri: f.redirect_uri.to_owned(),
            scopes: f.scopes.to_owned(),
            expires_at: f.expires_at,
        }
    }
}

impl OwnedFlow {
    /// Binds `INSERT_FLOW`'s parameters, in order.
    fn bind<'q>(&'q self, query: SqliteQuery<'q>) -> SqliteQuery<'q> {
        query
            .bind(&self.state_hash)
            .bind(&self.session_binding)
            .bind(self.clinic_id)
            .bind(self.return_to.as_deref())
            .bind(&self.vendor)
            .bind(&self.environment)
            .bind(&self.verifier)
            .bind(&self.redirect_uri)
            .bind(&self.scopes)
            .bind(self.expires_at)
    }
}

/// A [`SealedGrant`] that owns its parts.
struct OwnedGrant {
    clinic_id: i64,
    vendor: String,
    environment: String,
    access_token: Vec<u8>,
    refresh_token: Option<Vec<u8>>,
    token_type: String,
    scopes: String,
    expires_at: Option<UnixTime>,
    account_name: Option<String>,
    identity_retry: bool,
    client_id: Option<String>,
    client_secret: Option<Vec<u8>>,
    parameters: String,
    now: UnixTime,
}

impl From<&SealedGrant<'_>> for OwnedGrant {
    fn from(g: &SealedGrant<'_>) -> Self {
        Self {
            clinic_id: g.clinic_id,
            vendor: g.vendor.to_owned(),
            environment: g.environment.to_owned(),
            access_token: g.access_token.to_vec(),
            refresh_token: g.refresh_token.map(<[u8]>::to_vec),
            token_type: g.token_type.to_owned(),
            scopes: g.scopes.to_owned(),
            expires_at: g.expires_at,
            account_name: g.account_name.map(str::to_owned),
            identity_retry: g.identity_retry,
            client_id: g.client_id.map(str::to_owned),
            client_secret: g.client_secret.map(<[u8]>::to_vec),
            parameters: g.parameters.to_owned(),
            now: g.now,
        }
    }
}

impl OwnedGrant {
    fn sealed(&self) -> SealedGrant<'_> {
        SealedGrant {
            clinic_id: self.clinic_id,
            vendor: &self.vendor,
            environment: &self.environment,
            access_token: &self.access_token,
            refresh_token: self.refresh_token.as_deref(),
            token_type: &self.token_type,
            scopes: &self.scopes,
            expires_at: self.expires_at,
            account_name: self.account_name.as_deref(),
            identity_retry: self.identity_retry,
            client_id: self.client_id.as_deref(),
            client_secret: self.client_secret.as_deref(),
            parameters: &self.parameters,
            now: self.now,
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

        // A batch with a refused grant: written again one by one, each answered for itself.
        let bad = grant(clinic + 99, b"sealed");
        let (refused, taken, again) = together(
            &db,
            futures_util::future::join3(
                db.store_connected(&bad, "connected", "refused"),
                db.take_flow("h2", "binding", "zocdoc"),
                db.take_flow("h2", "binding", "zocdoc"),
            ),
        )
        .await;
        assert!(refused.is_err());
        assert!(taken.unwrap().is_some(), "the flow inserted by the first batch is taken once");
        assert!(again.unwrap().is_none());
    }
}
