//! Connections (one per clinic and vendor), their history, and the refresh bookkeeping: the lease
//! that lets one process of all instances refresh a connection, and the writes that end it.

use sqlx::FromRow;

use super::revocations::NewRevocation;
use super::Db;
use crate::clock::UnixTime;

#[derive(Debug, Clone, FromRow)]
pub struct ConnectionRow {
    pub id: i64,
    pub clinic_id: i64,
    pub vendor: String,
    pub environment: String,
    pub status: String,
    pub access_token: Option<Vec<u8>>,
    pub refresh_token: Option<Vec<u8>>,
    pub token_type: Option<String>,
    pub scopes: String,
    pub expires_at: Option<UnixTime>,
    pub account_name: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Vec<u8>>,
    pub parameters: String,
    pub identity_retry: i64,
    pub refresh_failures: i64,
    pub next_refresh_at: Option<UnixTime>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<UnixTime>,
    pub version: i64,
    pub connected_at: Option<UnixTime>,
    pub updated_at: UnixTime,
    /// What is wrong with a live connection: `vendor_down` or `app_refused` (see the migration).
    pub trouble: Option<String>,
    pub trouble_detail: Option<String>,
    pub trouble_since: Option<UnixTime>,
    pub next_health_at: Option<UnixTime>,
}

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub at: UnixTime,
    pub kind: String,
    pub detail: String,
    /// `admin:<email>`, `worker`, `cli`; empty for entries from before it was recorded.
    pub actor: String,
}

/// A history entry to add.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    pub kind: &'a str,
    pub detail: &'a str,
    pub actor: &'a str,
}

/// A freshly issued set of tokens, already sealed by the vault.
pub struct SealedGrant<'a> {
    pub clinic_id: i64,
    pub vendor: &'a str,
    pub environment: &'a str,
    pub access_token: &'a [u8],
    pub refresh_token: Option<&'a [u8]>,
    pub token_type: &'a str,
    pub scopes: &'a str,
    pub expires_at: Option<UnixTime>,
    pub account_name: Option<&'a str>,
    pub identity_retry: bool,
    /// The clinic's own credentials, for client-credentials vendors.
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a [u8]>,
    /// JSON object of the admin's choices (domain, region, account name, scopes).
    pub parameters: &'a str,
    /// When the background health check first looks at the new connection; `None`: at once.
    pub next_health_at: Option<UnixTime>,
    pub now: UnixTime,
}

/// What a refresh (or a health check) came to, to be written under its lease.
pub enum RefreshWrite<'a> {
    /// New tokens; no refresh token keeps the stored one. Clears any trouble.
    Refreshed { access_token: &'a [u8], refresh_token: Option<&'a [u8]>, expires_at: Option<UnixTime> },
    /// The clinic's grant is gone (or in doubt): every token dropped, `reconnect_needed`;
    /// `detail` is the technical cause, kept for the admin's "Details".
    GrantGone { detail: &'a str },
    /// The tokens are kept and served while valid; `trouble` is `vendor_down` or `app_refused`,
    /// `detail` the technical cause; the next attempt waits until `retry_at`.
    Trouble { trouble: &'a str, detail: &'a str, retry_at: UnixTime },
}

/// Where a round of [`Db::lease_due`] has got to: the last row it leased, in (expiry, id) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueCursor {
    pub expires_at: UnixTime,
    pub id: i64,
}

impl DueCursor {
    /// Before every row.
    pub const START: DueCursor = DueCursor { expires_at: i64::MIN, id: i64::MIN };

    /// After the last of these rows (as `lease_due` returns them, in order).
    pub fn after(self, rows: &[ConnectionRow]) -> DueCursor {
        rows.last().and_then(|r| r.expires_at.map(|expires_at| DueCursor { expires_at, id: r.id })).unwrap_or(self)
    }
}

/// One refresh's result, with the history entry it adds.
pub struct RefreshRecord<'a> {
    pub id: i64,
    pub clinic_id: i64,
    pub vendor: &'a str,
    /// The lease holder writing it: nothing is written if the lease is no longer theirs.
    pub owner: &'a str,
    pub write: RefreshWrite<'a>,
    /// The history entry; none for a health check's refresh that went well (it would add one
    /// line per check and bury what happened).
    pub event: Option<NewEvent<'a>>,
    /// When a health check made this refresh: when the next one is due.
    pub next_health_at: Option<UnixTime>,
    pub now: UnixTime,
}

/// Every column of a connection row, as [`ConnectionRow`] reads them.
pub(super) const COLUMNS: &str =
    "id, clinic_id, vendor, environment, status, access_token, refresh_token, token_type, scopes,
     expires_at, account_name, client_id, client_secret, parameters, identity_retry, refresh_failures,
     next_refresh_at, lease_owner, lease_until, version, connected_at, updated_at, trouble, trouble_detail,
     trouble_since, next_health_at";

/// A vendor's connected rows whose token expires before the horizon, that nobody holds a lease
/// on and that are not backing off (`$1` vendor, `$2` horizon, `$3` now).
const DUE: &str = "vendor = $1 AND status = 'connected' AND access_token IS NOT NULL
       AND expires_at IS NOT NULL AND expires_at <= $2 AND lease_owner IS NULL
       AND (next_refresh_at IS NULL OR next_refresh_at <= $3)";

/// Due rows whose lease ran out without being released: the process refreshing them stopped.
const ABANDONED_DUE: &str = "SELECT id, clinic_id, vendor FROM connections
     WHERE status = 'connected' AND expires_at IS NOT NULL AND expires_at <= $1
       AND lease_owner IS NOT NULL AND lease_until <= $2
       AND (next_refresh_at IS NULL OR next_refresh_at <= $2)
     ORDER BY expires_at";

const STORE_GRANT: &str = "INSERT INTO connections
       (clinic_id, vendor, environment, status, access_token, refresh_token, token_type, scopes,
        expires_at, account_name, identity_retry, client_id, client_secret, parameters, version,
        connected_at, updated_at, next_health_at)
     VALUES ($1, $2, $3, 'connected', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, $14, $14, COALESCE($15, $14))
     ON CONFLICT (clinic_id, vendor) DO UPDATE SET
        environment = excluded.environment, status = 'connected',
        access_token = excluded.access_token, refresh_token = excluded.refresh_token,
        token_type = excluded.token_type, scopes = excluded.scopes, expires_at = excluded.expires_at,
        account_name = excluded.account_name, identity_retry = excluded.identity_retry,
        client_id = excluded.client_id, client_secret = excluded.client_secret,
        parameters = excluded.parameters, version = connections.version + 1,
        refresh_failures = 0, next_refresh_at = NULL, lease_owner = NULL, lease_until = NULL,
        trouble = NULL, trouble_detail = NULL, trouble_since = NULL, next_health_at = excluded.next_health_at,
        connected_at = excluded.connected_at, updated_at = excluded.updated_at";

pub(super) const ADD_EVENT: &str =
    "INSERT INTO connection_events (clinic_id, vendor, at, kind, detail, actor) VALUES ($1, $2, $3, $4, $5, $6)";

/// How many history entries of a connection are read, newest first.
pub const HISTORY_SHOWN: i64 = 50;

/// Adds a history entry inside a transaction.
macro_rules! add_event {
    ($tx:ident, $clinic_id:expr, $vendor:expr, $event:expr, $now:expr) => {{
        let event: &NewEvent<'_> = $event;
        sqlx::query(ADD_EVENT)
            .bind($clinic_id)
            .bind($vendor)
            .bind($now)
            .bind(event.kind)
            .bind(event.detail)
            .bind(event.actor)
            .execute($tx.c())
            .await?;
    }};
}

/// Stores a grant (and its history entry) inside a transaction; evaluates to the row as stored.
macro_rules! store_grant {
    ($tx:ident, $g:expr, $event:expr) => {{
        let g: &SealedGrant<'_> = $g;
        let row: ConnectionRow = sqlx::query_as(&format!("{STORE_GRANT} RETURNING {COLUMNS}"))
            .bind(g.clinic_id)
            .bind(g.vendor)
            .bind(g.environment)
            .bind(g.access_token)
            .bind(g.refresh_token)
            .bind(g.token_type)
            .bind(g.scopes)
            .bind(g.expires_at)
            .bind(g.account_name)
            .bind(i64::from(g.identity_retry))
            .bind(g.client_id)
            .bind(g.client_secret)
            .bind(g.parameters)
            .bind(g.now)
            .bind(g.next_health_at)
            .fetch_one($tx.c())
            .await?;
        add_event!($tx, g.clinic_id, g.vendor, $event, g.now);
        row
    }};
}

impl Db {
    pub async fn connection(&self, clinic_id: i64, vendor: &str) -> sqlx::Result<Option<ConnectionRow>> {
        on_engine!(self, |pool| sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM connections WHERE clinic_id = $1 AND vendor = $2"
        ))
        .bind(clinic_id)
        .bind(vendor)
        .fetch_optional(pool)
        .await)
    }

    pub async fn connections_of_clinic(&self, clinic_id: i64) -> sqlx::Result<Vec<ConnectionRow>> {
        on_engine!(self, |pool| sqlx::query_as(&format!("SELECT {COLUMNS} FROM connections WHERE clinic_id = $1"))
            .bind(clinic_id)
            .fetch_all(pool)
            .await)
    }

    pub async fn connection_by_id(&self, id: i64) -> sqlx::Result<Option<ConnectionRow>> {
        on_engine!(self, |pool| sqlx::query_as(&format!("SELECT {COLUMNS} FROM connections WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await)
    }

    /// Stores a new grant for the clinic's connection at a vendor (creating the row if needed) and
    /// its history entry, in one transaction; returns the row as stored.
    pub async fn store_grant(&self, grant: &SealedGrant<'_>, event: &NewEvent<'_>) -> sqlx::Result<ConnectionRow> {
        Ok(transaction!(self, |tx| store_grant!(tx, grant, event)))
    }

    /// Many grants in one transaction (seeding a benchmark or a test fixture).
    pub async fn store_grants(&self, grants: &[(SealedGrant<'_>, NewEvent<'_>)]) -> sqlx::Result<()> {
        transaction!(self, |tx| {
            for (grant, event) in grants {
                store_grant!(tx, grant, event);
            }
        });
        Ok(())
    }

    /// Records the account a connection belongs to, once a later lookup succeeded, with its
    /// history entry if any.
    pub async fn set_account(
        &self,
        connection_id: i64,
        account_name: Option<&str>,
        retry: bool,
        event: Option<&NewEvent<'_>>,
        now: UnixTime,
    ) -> sqlx::Result<()> {
        transaction!(self, |tx| {
            let owner: Option<(i64, String)> = sqlx::query_as(
                "UPDATE connections SET account_name = COALESCE($1, account_name), identity_retry = $2 WHERE id = $3
                 RETURNING clinic_id, vendor",
            )
            .bind(account_name)
            .bind(i64::from(retry))
            .bind(connection_id)
            .fetch_optional(tx.c())
            .await?;
            if let (Some((clinic_id, vendor)), Some(event)) = (owner, event) {
                add_event!(tx, clinic_id, &vendor, event, now);
            }
        });
        Ok(())
    }

    pub async fn add_event(
        &self,
        clinic_id: i64,
        vendor: &str,
        event: &NewEvent<'_>,
        now: UnixTime,
    ) -> sqlx::Result<()> {
        transaction!(self, |tx| add_event!(tx, clinic_id, vendor, event, now));
        Ok(())
    }

    /// The newest [`HISTORY_SHOWN`] entries of a connection's history, newest first.
    pub async fn events(&self, clinic_id: i64, vendor: &str) -> sqlx::Result<Vec<EventRow>> {
        on_engine!(self, |pool| sqlx::query_as(
            "SELECT at, kind, detail, actor FROM connection_events WHERE clinic_id = $1 AND vendor = $2
              ORDER BY id DESC LIMIT $3"
        )
        .bind(clinic_id)
        .bind(vendor)
        .bind(HISTORY_SHOWN)
        .fetch_all(pool)
        .await)
    }

    /// Disconnects: every token and secret removed (the row and its history stay), the tokens to
    /// revoke at the vendor queued (sealed, leased to `owner` until `lease_until` so that this
    /// process tries them first), and the history entry — one transaction, before any vendor
    /// call, so that a process that dies afterwards leaves a disconnected connection and
    /// revocations for any instance to retry. `None` when the row changed since it was read.
    #[allow(clippy::too_many_arguments)]
    pub async fn disconnect(
        &self,
        connection_id: i64,
        version: i64,
        revocations: &[NewRevocation<'_>],
        owner: &str,
        lease_until: UnixTime,
        event: &NewEvent<'_>,
        now: UnixTime,
    ) -> sqlx::Result<Option<Vec<i64>>> {
        Ok(transaction!(self, |tx| {
            let cleared: Option<(i64, String)> = sqlx::query_as(
                "UPDATE connections SET status = 'disconnected', access_token = NULL, refresh_token = NULL,
                        client_secret = NULL, expires_at = NULL, refresh_failures = 0, next_refresh_at = NULL,
                        lease_owner = NULL, lease_until = NULL, trouble = NULL, trouble_detail = NULL,
                        trouble_since = NULL, next_health_at = NULL, version = version + 1, updated_at = $1
                  WHERE id = $2 AND version = $3
                 RETURNING clinic_id, vendor",
            )
            .bind(now)
            .bind(connection_id)
            .bind(version)
            .fetch_optional(tx.c())
            .await?;
            match cleared {
                None => None,
                Some((clinic_id, vendor)) => {
                    let mut queued = Vec::with_capacity(revocations.len());
                    for r in revocations {
                        let id: i64 = sqlx::query_scalar(
                            "INSERT INTO pending_revocations
                               (ref, clinic_id, vendor, environment, parameters, token, next_attempt_at, lease_owner,
                                lease_until)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                        )
                        .bind(r.reference)
                        .bind(clinic_id)
                        .bind(&vendor)
                        .bind(r.environment)
                        .bind(r.parameters)
                        .bind(r.token)
                        .bind(now)
                        .bind(owner)
                        .bind(lease_until)
                        .fetch_one(tx.c())
                        .await?;
                        queued.push(id);
                    }
                    add_event!(tx, clinic_id, &vendor, event, now);
                    Some(queued)
                }
            }
        }))
    }

    /// Takes the refresh lease if the row is still at `version`, connected, and nobody else holds
    /// a live lease: a compare-and-swap in one `UPDATE`, so exactly one of all instances wins.
    pub async fn acquire_lease(
        &self,
        id: i64,
        version: i64,
        owner: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            sqlx::query(
                "UPDATE connections SET lease_owner = $1, lease_until = $2
                  WHERE id = $3 AND version = $4 AND status = 'connected'
                    AND (lease_until IS NULL OR lease_until <= $5)",
            )
            .bind(owner)
            .bind(until)
            .bind(id)
            .bind(version)
            .bind(now)
            .execute(tx.c())
            .await?
            .rows_affected()
                == 1
        }))
    }

    pub async fn release_lease(&self, id: i64, owner: &str) -> sqlx::Result<()> {
        transaction!(self, |tx| {
            sqlx::query(
                "UPDATE connections SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2",
            )
            .bind(id)
            .bind(owner)
            .execute(tx.c())
            .await?;
        });
        Ok(())
    }

    /// Leases up to `limit` of a vendor's due rows (see [`DUE`]) that come after `after` in
    /// (expiry, id) order, in one statement, and returns them as leased. A round walks the due
    /// rows once, each batch starting where the last one ended: on PostgreSQL the rows a round has
    /// already leased and refreshed leave dead versions at the front of the index, which a scan
    /// from the start would wade through again for every batch. The candidates are locked as they
    /// are chosen (PostgreSQL re-checks a locked row against the conditions; rows another instance
    /// holds are skipped) and SQLite writes one statement at a time, so a row is never leased
    /// twice. (A row whose lease ran out is not taken here: its last refresh may have happened at
    /// the vendor without being stored, see `TokenService::for_row`.)
    #[allow(clippy::too_many_arguments)]
    pub async fn lease_due(
        &self,
        vendor: &str,
        horizon: UnixTime,
        now: UnixTime,
        owner: &str,
        until: UnixTime,
        limit: usize,
        after: DueCursor,
    ) -> sqlx::Result<Vec<ConnectionRow>> {
        // The candidates are chosen once, in a CTE (PostgreSQL materialises one that locks rows):
        // a locking subquery inside `IN (…)` may be run again for every row it is compared with.
        // The cursor is one row-value comparison: PostgreSQL starts its scan of `connections_due`
        // (vendor, expires_at, id) right at it. A storm's tokens often share one expiry, and a
        // cursor that bounded the scan by the expiry alone made every batch walk past all the
        // rows of that expiry it had already leased — on PostgreSQL each a heap visit, 4 ms a
        // batch at 10,000 such rows. (SQLite seeks to the expiry and tests the id, its rowid, on
        // each index entry without visiting the row.)
        let sql = format!(
            "WITH due AS (SELECT id AS due_id FROM connections
                           WHERE {DUE} AND (expires_at, id) > ($7, $8)
                           ORDER BY expires_at, id LIMIT $6 {})
             UPDATE connections SET lease_owner = $4, lease_until = $5 WHERE id IN (SELECT due_id FROM due)
             RETURNING {COLUMNS}",
            self.skip_locked()
        );
        let mut rows: Vec<ConnectionRow> = transaction!(self, |tx| {
            sqlx::query_as(&sql)
                .bind(vendor)
                .bind(horizon)
                .bind(now)
                .bind(owner)
                .bind(until)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .bind(after.expires_at)
                .bind(after.id)
                .fetch_all(tx.c())
                .await?
        });
        rows.sort_by_key(|r| (r.expires_at, r.id));
        Ok(rows)
    }

    /// Due rows whose refresh lease ran out without being released.
    pub async fn abandoned_due(&self, horizon: UnixTime, now: UnixTime) -> sqlx::Result<Vec<(i64, i64, String)>> {
        on_engine!(self, |pool| sqlx::query_as(ABANDONED_DUE).bind(horizon).bind(now).fetch_all(pool).await)
    }

    /// A row whose records no configured key opens: it fails closed until reconnected. The
    /// entry's words are also kept as the row's technical detail. A compare-and-swap on
    /// `version`: false when the row changed meanwhile (another instance may have marked it).
    pub async fn mark_key_missing(
        &self,
        id: i64,
        version: i64,
        event: &NewEvent<'_>,
        now: UnixTime,
    ) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            let marked: Option<(i64, String)> = sqlx::query_as(
                "UPDATE connections SET status = 'key_missing', access_token = NULL, refresh_token = NULL,
                        client_secret = NULL, expires_at = NULL, lease_owner = NULL, lease_until = NULL,
                        trouble = NULL, trouble_detail = $4, trouble_since = $1, next_health_at = NULL,
                        version = version + 1, updated_at = $1
                  WHERE id = $2 AND version = $3
                 RETURNING clinic_id, vendor",
            )
            .bind(now)
            .bind(id)
            .bind(version)
            .bind(event.detail)
            .fetch_optional(tx.c())
            .await?;
            match marked {
                Some((clinic_id, vendor)) => {
                    add_event!(tx, clinic_id, &vendor, event, now);
                    true
                }
                None => false,
            }
        }))
    }

    /// (vendor, state, count) over every clinic, for /metrics: the state is the status, or a live
    /// connection's trouble (`vendor_down`, `app_refused`).
    pub async fn connection_counts(&self) -> sqlx::Result<Vec<(String, String, i64)>> {
        on_engine!(self, |pool| {
            sqlx::query_as(
            "SELECT vendor, CASE WHEN status = 'connected' AND trouble IS NOT NULL THEN trouble ELSE status END AS state,
                    COUNT(*) AS n
               FROM connections GROUP BY 1, 2 ORDER BY 1, 2"
        )
        .fetch_all(pool)
        .await
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::db::fixtures::{event, grant, sqlite};

    #[tokio::test]
    async fn the_workers_round_reads_only_due_and_leased_rows() {
        let (db, _dir) = sqlite().await;
        let plan = |sql: String| {
            let db = db.clone();
            async move {
                let rows: Vec<(i64, i64, i64, String)> =
                    on_engine!(db, |pool| sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}")).fetch_all(pool).await)
                        .unwrap();
                rows.into_iter().map(|(_, _, _, detail)| detail).collect::<Vec<_>>().join("\n")
            }
        };
        let due = plan(format!("SELECT id FROM connections WHERE {DUE} ORDER BY expires_at LIMIT 5")).await;
        assert!(due.contains("USING INDEX connections_due"), "{due}");
        // A round's later batches start the index scan at the cursor's expiry, in index order
        // (SQLite does not seek on the id, its rowid, but tests it on the index entry).
        let next = format!(
            "SELECT id FROM connections WHERE {DUE} AND (expires_at, id) > ($7, $8) ORDER BY expires_at, id LIMIT $6"
        );
        let next = plan(next).await;
        assert!(next.contains("USING INDEX connections_due (vendor=? AND expires_at>?"), "{next}");
        assert!(!next.contains("TEMP B-TREE"), "{next}");
        let abandoned = plan(ABANDONED_DUE.to_owned()).await;
        assert!(abandoned.contains("USING INDEX connections_leased"), "{abandoned}");
    }

    #[tokio::test]
    async fn a_grant_and_its_history_are_stored_together_or_not_at_all() {
        let (db, _dir) = sqlite().await;
        let clinic = db.ensure_clinic("c", 1).await.unwrap();
        assert!(db.connection(clinic, "drchrono").await.unwrap().is_none());
        let stored = db.store_grant(&grant(clinic, b"first"), &event("Connected to Dr. A")).await.unwrap();
        assert_eq!((stored.access_token.as_deref(), stored.version), (Some(b"first".as_slice()), 1));
        let stored = db.store_grant(&grant(clinic, b"second"), &event("again")).await.unwrap();
        assert_eq!((stored.access_token.as_deref(), stored.version), (Some(b"second".as_slice()), 2));
        assert_eq!(db.events(clinic, "drchrono").await.unwrap().len(), 2);

        // A clinic that does not exist: the grant is refused and its history entry not written.
        assert!(db.store_grant(&grant(clinic + 99, b"x"), &event("nope")).await.is_err());
        assert!(db.events(clinic + 99, "drchrono").await.unwrap().is_empty());
        db.store_grant(&grant(clinic, b"third"), &event("after")).await.unwrap();
        assert_eq!(db.events(clinic, "drchrono").await.unwrap().len(), 3);
        let row = db.connection(clinic, "drchrono").await.unwrap().unwrap();
        assert_eq!(row.access_token.as_deref(), Some(b"third".as_slice()));
    }

    #[tokio::test]
    async fn two_rounds_at_once_lease_every_due_row_between_them_when_all_share_one_expiry() {
        let (db, _dir) = sqlite().await;
        // 300 rows with one expiry (the fixture's): each round's cursor is inside that expiry.
        let expected = 300;
        for i in 0..expected {
            let clinic = db.ensure_clinic(&format!("c{i}"), 1).await.unwrap();
            db.store_grant(&grant(clinic, b"t"), &event("connected")).await.unwrap();
        }
        let (mut cursors, mut done, mut leased) = ([DueCursor::START; 2], [false; 2], [0_usize; 2]);
        let mut turn = 0;
        while done.iter().any(|d| !d) {
            turn = (turn + 1) % 2;
            if done[turn] {
                continue;
            }
            let owner = ["a", "b"][turn];
            let rows = db.lease_due("drchrono", 2_000, 10, owner, 100, 32, cursors[turn]).await.unwrap();
            cursors[turn] = cursors[turn].after(&rows);
            leased[turn] += rows.len();
            done[turn] = rows.len() < 32;
        }
        assert_eq!(leased[0] + leased[1], expected);
    }

    #[tokio::test]
    async fn a_lease_is_taken_once_and_only_its_holder_writes_the_result() {
        let (db, _dir) = sqlite().await;
        let clinic = db.ensure_clinic("c", 1).await.unwrap();
        let row = db.store_grant(&grant(clinic, b"t"), &event("connected")).await.unwrap();
        assert!(db.acquire_lease(row.id, row.version, "a", 10, 40).await.unwrap());
        assert!(!db.acquire_lease(row.id, row.version, "b", 11, 41).await.unwrap(), "a live lease is not taken");
        let by = |owner| RefreshRecord {
            id: row.id,
            clinic_id: clinic,
            vendor: "drchrono",
            owner,
            write: RefreshWrite::Refreshed { access_token: b"new", refresh_token: None, expires_at: Some(99) },
            event: Some(event("refreshed")),
            next_health_at: None,
            now: 12,
        };
        assert_eq!(db.record_refreshes(&[by("b")]).await.unwrap(), [false]);
        assert_eq!(db.record_refreshes(&[by("a")]).await.unwrap(), [true]);
        let now = db.connection_by_id(row.id).await.unwrap().unwrap();
        assert_eq!(
            (now.access_token.as_deref(), now.refresh_token.as_deref()),
            (Some(b"new".as_slice()), Some(b"sealed-refresh".as_slice()))
        );
        assert_eq!((now.version, now.lease_owner), (row.version + 1, None));
        // A stale version is refused even with no lease held.
        assert!(!db.acquire_lease(row.id, row.version, "b", 13, 43).await.unwrap());
    }
}
