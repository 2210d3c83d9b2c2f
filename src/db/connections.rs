//! Connections (one per clinic and vendor) and their history.

use std::sync::Arc;

use sqlx::sqlite::SqliteConnection;
use sqlx::FromRow;

use super::{Db, WriteTx};
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
}

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub at: UnixTime,
    pub kind: String,
    pub detail: String,
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
    pub now: UnixTime,
}

const COLUMNS: &str = "id, clinic_id, vendor, environment, status, access_token, refresh_token, token_type, scopes,
     expires_at, account_name, client_id, client_secret, parameters, identity_retry, refresh_failures, next_refresh_at, lease_owner, lease_until, version,
     connected_at, updated_at";

/// A vendor's rows to lease for refresh (see `Db::lease_due`).
const DUE_IDS: &str = "SELECT id FROM connections
     WHERE vendor = ? AND status = 'connected' AND access_token IS NOT NULL
       AND expires_at IS NOT NULL AND expires_at <= ? AND lease_owner IS NULL
       AND (next_refresh_at IS NULL OR next_refresh_at <= ?)
     ORDER BY expires_at LIMIT ?";

fn lease_due_sql() -> String {
    format!("UPDATE connections SET lease_owner = ?, lease_until = ? WHERE id IN ({DUE_IDS}) RETURNING {COLUMNS}")
}

const ABANDONED_DUE: &str = "SELECT id, clinic_id, vendor FROM connections
     WHERE status = 'connected' AND expires_at IS NOT NULL AND expires_at <= ?
       AND lease_owner IS NOT NULL AND lease_until <= ?
       AND (next_refresh_at IS NULL OR next_refresh_at <= ?)
     ORDER BY expires_at";

/// What a new grant does to an existing connection row: it replaces the tokens, the scopes and
/// the choices, starts the refresh bookkeeping over and moves the version on.
macro_rules! upsert_grant {
    () => {
        "ON CONFLICT (clinic_id, vendor) DO UPDATE SET
        environment = excluded.environment, status = 'connected',
        access_token = excluded.access_token, refresh_token = excluded.refresh_token,
        token_type = excluded.token_type, scopes = excluded.scopes, expires_at = excluded.expires_at,
        account_name = excluded.account_name, identity_retry = excluded.identity_retry,
        client_id = excluded.client_id, client_secret = excluded.client_secret,
        parameters = excluded.parameters, version = connections.version + 1,
        refresh_failures = 0, next_refresh_at = NULL, lease_owner = NULL, lease_until = NULL,
        connected_at = excluded.connected_at, updated_at = excluded.updated_at"
    };
}

const STORE_GRANT: &str = concat!(
    "INSERT INTO connections
       (clinic_id, vendor, environment, status, access_token, refresh_token, token_type, scopes,
        expires_at, account_name, identity_retry, client_id, client_secret, parameters, version,
        connected_at, updated_at)
     VALUES (?, ?, ?, 'connected', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?) ",
    upsert_grant!()
);

/// [`STORE_GRANT`] for the rows of a JSON array (bytes in hex), returning each row as stored,
/// marked `returned = 'grant'`.
pub(super) static STORE_GRANTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO connections
           (clinic_id, vendor, environment, status, access_token, refresh_token, token_type, scopes,
            expires_at, account_name, identity_retry, client_id, client_secret, parameters, version,
            connected_at, updated_at)
         SELECT value->>'clinic_id', value->>'vendor', value->>'environment', 'connected',
                unhex(value->>'access_token'), unhex(value->>'refresh_token'), value->>'token_type',
                value->>'scopes', value->>'expires_at', value->>'account_name', value->>'identity_retry',
                value->>'client_id', unhex(value->>'client_secret'), value->>'parameters', 1,
                value->>'now', value->>'now'
           FROM json_each(?) WHERE true ORDER BY key
         {}
         RETURNING 'grant' AS returned, {COLUMNS}",
        upsert_grant!()
    )
});

/// History entries from a JSON array of `[clinic_id, vendor, at, kind, detail]`, in its order.
pub(super) const ADD_EVENTS: &str = "INSERT INTO connection_events (clinic_id, vendor, at, kind, detail)
     SELECT value->>0, value->>1, value->>2, value->>3, value->>4 FROM json_each(?) ORDER BY key";

/// How many history entries of a connection are read, newest first.
pub const HISTORY_SHOWN: usize = 50;

impl Db {
    pub async fn connection(&self, clinic_id: i64, vendor: &str) -> sqlx::Result<Option<ConnectionRow>> {
        let read = async {
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM connections WHERE clinic_id = ? AND vendor = ?"))
                .bind(clinic_id)
                .bind(vendor)
                .fetch_optional(&mut *self.fast().await?)
                .await
        };
        self.cached(&self.caches.connections, (clinic_id, vendor.to_owned()), read).await
    }

    pub async fn connections_of_clinic(&self, clinic_id: i64) -> sqlx::Result<Vec<ConnectionRow>> {
        let read = async {
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM connections WHERE clinic_id = ?"))
                .bind(clinic_id)
                .fetch_all(&mut *self.fast().await?)
                .await
        };
        self.cached(&self.caches.clinic_connections, clinic_id, read).await
    }

    /// Stores a new grant for the clinic's connection at a vendor, creating the row if needed.
    pub async fn store_grant(tx: &mut WriteTx, grant: &SealedGrant<'_>) -> sqlx::Result<()> {
        sqlx::query(STORE_GRANT)
            .bind(grant.clinic_id)
            .bind(grant.vendor)
            .bind(grant.environment)
            .bind(grant.access_token)
            .bind(grant.refresh_token)
            .bind(grant.token_type)
            .bind(grant.scopes)
            .bind(grant.expires_at)
            .bind(grant.account_name)
            .bind(grant.identity_retry)
            .bind(grant.client_id)
            .bind(grant.client_secret)
            .bind(grant.parameters)
            .bind(grant.now)
            .bind(grant.now)
            .execute(tx.writing_connection(grant.clinic_id, grant.vendor))
            .await
            .map(|_| ())
    }

    /// Records the account a connection belongs to, once a later lookup succeeded.
    pub async fn set_account(&self, connection_id: i64, account_name: Option<&str>, retry: bool) -> sqlx::Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE connections SET account_name = COALESCE(?, account_name), identity_retry = ? WHERE id = ?")
            .bind(account_name)
            .bind(retry)
            .bind(connection_id)
            .execute(&mut *self.pool().await?)
            .await
            .map(|_| ())
    }

    /// Removes every token and secret of a connection and sets its status; the row and its
    /// history stay. False when the row had changed since it was read (`version`).
    pub async fn clear_grant(
        tx: &mut SqliteConnection,
        connection_id: i64,
        version: i64,
        status: &str,
        now: UnixTime,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE connections SET status = ?, access_token = NULL, refresh_token = NULL, client_secret = NULL,
                    expires_at = NULL, refresh_failures = 0, next_refresh_at = NULL, lease_owner = NULL,
                    lease_until = NULL, version = version + 1, updated_at = ?
              WHERE id = ? AND version = ?",
        )
        .bind(status)
        .bind(now)
        .bind(connection_id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn add_event_in(
        tx: &mut WriteTx,
        clinic_id: i64,
        vendor: &str,
        kind: &str,
        detail: &str,
        now: UnixTime,
    ) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO connection_events (clinic_id, vendor, at, kind, detail) VALUES (?, ?, ?, ?, ?)")
            .bind(clinic_id)
            .bind(vendor)
            .bind(now)
            .bind(kind)
            .bind(detail)
            .execute(tx.writing_history(clinic_id, vendor))
            .await
            .map(|_| ())
    }

    pub async fn add_event(
        &self,
        clinic_id: i64,
        vendor: &str,
        kind: &str,
        detail: &str,
        now: UnixTime,
    ) -> sqlx::Result<()> {
        let mut tx = self.begin().await?;
        Self::add_event_in(&mut tx, clinic_id, vendor, kind, detail, now).await?;
        tx.commit().await
    }

    /// The newest [`HISTORY_SHOWN`] entries of a connection's history, newest first.
    pub async fn events(&self, clinic_id: i64, vendor: &str) -> sqlx::Result<Arc<Vec<EventRow>>> {
        let read = async {
            sqlx::query_as(
                "SELECT at, kind, detail FROM connection_events WHERE clinic_id = ? AND vendor = ?
                  ORDER BY id DESC LIMIT ?",
            )
            .bind(clinic_id)
            .bind(vendor)
            .bind(HISTORY_SHOWN as i64)
            .fetch_all(&mut *self.fast().await?)
            .await
            .map(Arc::new)
        };
        self.cached(&self.caches.history, (clinic_id, vendor.to_owned()), read).await
    }
}

/// Refresh bookkeeping: the lease that lets one process at a time refresh a connection, and the
/// writes that end it.
impl Db {
    pub async fn connection_by_id(&self, id: i64) -> sqlx::Result<Option<ConnectionRow>> {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM connections WHERE id = ?"))
            .bind(id)
            .fetch_optional(&mut *self.fast().await?)
            .await
    }

    /// Takes the refresh lease if the row is still at `version` and nobody else holds a live lease.
    pub async fn acquire_lease(
        &self,
        id: i64,
        version: i64,
        owner: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> sqlx::Result<bool> {
        let _turn = self.write_turn().await;
        let done = sqlx::query(
            "UPDATE connections SET lease_owner = ?, lease_until = ?
              WHERE id = ? AND version = ? AND status = 'connected' AND (lease_until IS NULL OR lease_until <= ?)",
        )
        .bind(owner)
        .bind(until)
        .bind(id)
        .bind(version)
        .bind(now)
        .execute(&mut *self.fast().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores refreshed tokens under the lease; `refresh_token` None keeps the stored one.
    #[allow(clippy::too_many_arguments)]
    pub async fn store_refreshed(
        tx: &mut SqliteConnection,
        id: i64,
        owner: &str,
        access_token: &[u8],
        refresh_token: Option<&[u8]>,
        expires_at: Option<UnixTime>,
        client_secret: Option<&[u8]>,
        now: UnixTime,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE connections SET access_token = ?, refresh_token = COALESCE(?, refresh_token), expires_at = ?,
                    client_secret = COALESCE(?, client_secret), refresh_failures = 0, next_refresh_at = NULL,
                    lease_owner = NULL, lease_until = NULL, version = version + 1, updated_at = ?
              WHERE id = ? AND lease_owner = ?",
        )
        .bind(access_token)
        .bind(refresh_token)
        .bind(expires_at)
        .bind(client_secret)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A refresh failed in passing: count it, set when to try next, give the lease back.
    pub async fn refresh_failed(
        tx: &mut SqliteConnection,
        id: i64,
        owner: &str,
        next_refresh_at: UnixTime,
        now: UnixTime,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE connections SET refresh_failures = refresh_failures + 1, next_refresh_at = ?,
                    lease_owner = NULL, lease_until = NULL, updated_at = ?
              WHERE id = ? AND lease_owner = ?",
        )
        .bind(next_refresh_at)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map(|_| ())
    }

    /// The vendor no longer accepts the grant: keep the row and its history, drop the tokens.
    pub async fn mark_reconnect_needed(
        tx: &mut SqliteConnection,
        id: i64,
        owner: &str,
        now: UnixTime,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE connections SET status = 'reconnect_needed', access_token = NULL, refresh_token = NULL,
                    expires_at = NULL, lease_owner = NULL, lease_until = NULL, version = version + 1, updated_at = ?
              WHERE id = ? AND lease_owner = ?",
        )
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn release_lease(&self, id: i64, owner: &str) -> sqlx::Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE connections SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?")
            .bind(id)
            .bind(owner)
            .execute(&mut *self.fast().await?)
            .await
            .map(|_| ())
    }

    /// Leases up to `limit` of a vendor's connected rows whose token expires before `horizon`,
    /// that nobody holds a lease on and that are not backing off, in one statement; returns them
    /// as leased. (A row whose lease ran out is not taken here: its last refresh may have
    /// happened at the vendor without being stored, see `TokenService::for_row`.)
    #[allow(clippy::too_many_arguments)]
    pub async fn lease_due(
        &self,
        vendor: &str,
        horizon: UnixTime,
        now: UnixTime,
        owner: &str,
        until: UnixTime,
        limit: usize,
    ) -> sqlx::Result<Vec<ConnectionRow>> {
        let _turn = self.write_turn().await;
        sqlx::query_as(&lease_due_sql())
            .bind(owner)
            .bind(until)
            .bind(vendor)
            .bind(horizon)
            .bind(now)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *self.fast().await?)
            .await
    }

    /// Due rows (as in `due_for_refresh`) whose lease ran out without being released: the
    /// process refreshing them stopped halfway.
    pub async fn abandoned_due(&self, horizon: UnixTime, now: UnixTime) -> sqlx::Result<Vec<(i64, i64, String)>> {
        sqlx::query_as(ABANDONED_DUE).bind(horizon).bind(now).bind(now).fetch_all(&mut *self.fast().await?).await
    }

    /// Connected rows whose token expires before `horizon` and that are not backing off.
    pub async fn due_for_refresh(
        &self,
        horizon: UnixTime,
        now: UnixTime,
        limit: i64,
    ) -> sqlx::Result<Vec<(i64, i64, String)>> {
        sqlx::query_as(
            "SELECT id, clinic_id, vendor FROM connections
              WHERE status = 'connected' AND expires_at IS NOT NULL AND expires_at <= ?
                AND (next_refresh_at IS NULL OR next_refresh_at <= ?)
              ORDER BY expires_at LIMIT ?",
        )
        .bind(horizon)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *self.fast().await?)
        .await
    }

    /// (vendor, status, count) over every clinic, for /metrics.
    pub async fn connection_counts(&self) -> sqlx::Result<Vec<(String, String, i64)>> {
        sqlx::query_as(
            "SELECT vendor, status, COUNT(*) FROM connections GROUP BY vendor, status ORDER BY vendor, status",
        )
        .fetch_all(&mut *self.fast().await?)
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::Db;
    use crate::db::fixtures::grant;

    /// SQLite's plan for a query, one line per step.
    async fn plan(db: &Db, sql: &str) -> String {
        let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
            .fetch_all(&mut *db.fast().await.unwrap())
            .await
            .unwrap();
        rows.into_iter().map(|(_, _, _, detail)| detail).collect::<Vec<_>>().join("\n")
    }

    #[tokio::test]
    async fn the_workers_round_reads_only_due_and_leased_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("plan.db")).await.unwrap();
        let due = plan(&db, &super::lease_due_sql()).await;
        assert!(due.contains("USING INDEX connections_due"), "{due}");
        let abandoned = plan(&db, super::ABANDONED_DUE).await;
        assert!(abandoned.contains("USING INDEX connections_leased"), "{abandoned}");
    }

    #[tokio::test]
    async fn a_grant_and_its_history_are_stored_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("store.db")).await.unwrap();
        let clinic = db.ensure_clinic("c", 1).await.unwrap();
        assert!(db.connection(clinic, "drchrono").await.unwrap().is_none());

        db.store_connected(&grant(clinic, b"first"), "connected", "Connected to Dr. A").await.unwrap();
        let row = db.connection(clinic, "drchrono").await.unwrap().expect("stored, and not the cached absence");
        assert_eq!((row.access_token.as_deref(), row.version), (Some(b"first".as_slice()), 1));
        db.store_connected(&grant(clinic, b"second"), "connected", "again").await.unwrap();
        let row = db.connection(clinic, "drchrono").await.unwrap().unwrap();
        assert_eq!((row.access_token.as_deref(), row.version), (Some(b"second".as_slice()), 2));
        assert_eq!(db.events(clinic, "drchrono").await.unwrap().len(), 2);

        // A clinic that does not exist: the grant is refused, its history entry is not written,
        // and the connection is left outside any transaction for the next write.
        assert!(db.store_connected(&grant(clinic + 99, b"x"), "connected", "nope").await.is_err());
        assert!(db.events(clinic + 99, "drchrono").await.unwrap().is_empty());
        for _ in 0..2 {
            db.store_connected(&grant(clinic, b"third"), "connected", "after").await.unwrap();
        }
        assert_eq!(db.events(clinic, "drchrono").await.unwrap().len(), 4);
        let other = Db::open(&dir.path().join("store.db")).await.unwrap();
        let row = other.connection(clinic, "drchrono").await.unwrap().unwrap();
        assert_eq!(row.access_token.as_deref(), Some(b"third".as_slice()), "committed, seen by another handle");
    }

    #[tokio::test]
    async fn grants_queued_together_share_a_commit_and_a_refused_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("batch.db")).await.unwrap();
        let (a, b) = (db.ensure_clinic("a", 1).await.unwrap(), db.ensure_clinic("b", 1).await.unwrap());
        // Hold the writer thread so that the grants queue up behind it.
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        let held = db.hot_writes.run(async move {
            let _ = hold.await;
            Ok(())
        });
        let (ga, gb, bad) = (grant(a, b"ta"), grant(b, b"tb"), grant(b + 99, b"tx"));
        let stores = futures_util::future::join3(
            db.store_connected(&ga, "connected", "a"),
            db.store_connected(&bad, "connected", "refused"),
            db.store_connected(&gb, "connected", "b"),
        );
        let release_later = async {
            tokio::task::yield_now().await;
            release.send(()).unwrap();
            held.await.unwrap();
        };
        let ((ra, rbad, rb), ()) = futures_util::future::join(stores, release_later).await;
        assert!(ra.is_ok() && rb.is_ok(), "{ra:?} {rb:?}");
        assert!(rbad.is_err());
        for (clinic, token) in [(a, b"ta"), (b, b"tb")] {
            let row = db.connection(clinic, "drchrono").await.unwrap().unwrap();
            assert_eq!(row.access_token.as_deref(), Some(token.as_slice()));
            assert_eq!(db.events(clinic, "drchrono").await.unwrap().len(), 1, "each history entry once");
        }
    }
}
