//! The background health check's bookkeeping: which live connections are due for a check, the
//! lease that lets one process of all instances check a connection, and what needs an admin's
//! attention.
//!
//! A health check holds the row's usual lease (`lease_owner`, `lease_until`), so a check and a
//! refresh never run at once, under its process's name with [`HEALTH_LEASE_SUFFIX`]: a check that
//! dies mid-way leaves a lease that says nothing was refreshed, unlike a refresh's, which leaves
//! the connection in doubt (its vendor may have rotated the refresh token).

use super::connections::{ConnectionRow, COLUMNS};
use super::Db;
use crate::clock::UnixTime;

/// Ends the lease owner's name while a health check (not a refresh) holds the row.
pub const HEALTH_LEASE_SUFFIX: &str = "/health";

/// Live rows whose check is due (`$1` now) and that nobody holds, or whose holder was a health
/// check that stopped. (Every live row has a time: a grant is stored with one, or with its time
/// of connection, and the migration gave one to rows made before checks were scheduled.)
const HEALTH_DUE: &str = "status = 'connected' AND next_health_at <= $1
       AND (lease_owner IS NULL OR (lease_until <= $1 AND lease_owner LIKE '%/health'))";

/// One of a clinic's connections that needs attention: its vendor, status and trouble.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Attention {
    pub vendor: String,
    pub status: String,
    pub trouble: Option<String>,
}

/// Which connections need attention (`c` the connection), as [`Attention::of`] says it too.
const NEEDS_ATTENTION: &str =
    "(c.status IN ('reconnect_needed', 'key_missing') OR (c.status = 'connected' AND c.trouble IS NOT NULL))";

impl Attention {
    /// The connection as the banner sees it, when it needs attention (the same test as
    /// [`NEEDS_ATTENTION`], for a row already read).
    pub fn of(row: &ConnectionRow) -> Option<Attention> {
        let needs = matches!(row.status.as_str(), "reconnect_needed" | "key_missing")
            || (row.status == "connected" && row.trouble.is_some());
        needs.then(|| Attention {
            vendor: row.vendor.clone(),
            status: row.status.clone(),
            trouble: row.trouble.clone(),
        })
    }
}

impl Db {
    /// Leases up to `limit` rows due for a health check to `owner` (which ends in
    /// [`HEALTH_LEASE_SUFFIX`]) until `until`, in one statement, and returns them as leased; the
    /// candidates are locked as they are chosen (skipped while another instance's transaction holds
    /// them, on PostgreSQL; SQLite writes one statement at a time), so no two instances check one
    /// row at once.
    pub async fn lease_health_checks(
        &self,
        now: UnixTime,
        owner: &str,
        until: UnixTime,
        limit: usize,
    ) -> sqlx::Result<Vec<ConnectionRow>> {
        // As `Db::lease_due`: the candidates chosen once, in a CTE, and locked as they are chosen.
        let sql = format!(
            "WITH due AS (SELECT id AS due_id FROM connections WHERE {HEALTH_DUE}
                          ORDER BY next_health_at LIMIT $4 {})
             UPDATE connections SET lease_owner = $2, lease_until = $3 WHERE id IN (SELECT due_id FROM due)
             RETURNING {COLUMNS}",
            self.skip_locked()
        );
        Ok(transaction!(self, |tx| {
            sqlx::query_as(&sql)
                .bind(now)
                .bind(owner)
                .bind(until)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(tx.c())
                .await?
        }))
    }

    /// Leases one live row for a health check now, whenever its next check is due (a proxied
    /// call was refused twice); `None` when it is not live or someone holds it.
    pub async fn lease_health_check_of(
        &self,
        id: i64,
        now: UnixTime,
        owner: &str,
        until: UnixTime,
    ) -> sqlx::Result<Option<ConnectionRow>> {
        let sql = format!(
            "UPDATE connections SET lease_owner = $2, lease_until = $3
              WHERE id = $4 AND status = 'connected'
                AND (lease_owner IS NULL OR (lease_until <= $1 AND lease_owner LIKE '%/health'))
             RETURNING {COLUMNS}"
        );
        Ok(transaction!(self, |tx| {
            sqlx::query_as(&sql).bind(now).bind(owner).bind(until).bind(id).fetch_optional(tx.c()).await?
        }))
    }

    /// Passes a lease from one holder to another (a health check that goes on to refresh the
    /// connection becomes its refresh's holder); false when `from` no longer holds it.
    pub async fn hand_over_lease(&self, id: i64, from: &str, to: &str, until: UnixTime) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            sqlx::query("UPDATE connections SET lease_owner = $3, lease_until = $4 WHERE id = $1 AND lease_owner = $2")
                .bind(id)
                .bind(from)
                .bind(to)
                .bind(until)
                .execute(tx.c())
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// Ends a health check that changed nothing: the next check set and the lease given back.
    /// A check that gave its lease up on the way (a refresh that could not be attempted) still
    /// sets the next check, so that a connection it cannot check is not retried every round.
    /// False when someone else holds the row now.
    pub async fn finish_health_check(&self, id: i64, owner: &str, next_health_at: UnixTime) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            sqlx::query(
                "UPDATE connections SET next_health_at = $3,
                        lease_owner = CASE WHEN lease_owner = $2 THEN NULL ELSE lease_owner END,
                        lease_until = CASE WHEN lease_owner = $2 THEN NULL ELSE lease_until END
                  WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $2)",
            )
            .bind(id)
            .bind(owner)
            .bind(next_health_at)
            .execute(tx.c())
            .await?
            .rows_affected()
                == 1
        }))
    }

    /// The connections of an admin's clinic that need attention: the vendor no longer accepts
    /// them, their key is missing, or a live one is in trouble. One statement, from the admin's
    /// id, for the banner every admin page shows.
    pub async fn attention_of_admin(&self, admin_id: i64) -> sqlx::Result<Vec<Attention>> {
        let sql = format!(
            "SELECT c.vendor, c.status, c.trouble FROM connections c JOIN admins a ON a.clinic_id = c.clinic_id
              WHERE a.id = $1 AND {NEEDS_ATTENTION}"
        );
        on_engine!(self, |pool| sqlx::query_as(&sql).bind(admin_id).fetch_all(pool).await)
    }

    /// How many connections (of every clinic) are marked "key missing", for `/readyz`.
    pub async fn key_missing_count(&self) -> sqlx::Result<i64> {
        on_engine!(self, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM connections WHERE status = 'key_missing'")
            .fetch_one(pool)
            .await)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::{Attention, HEALTH_DUE};
    use crate::db::connections::{RefreshRecord, RefreshWrite};
    use crate::db::fixtures::{event, grant, sqlite};

    #[tokio::test]
    async fn a_round_reads_only_the_live_rows_due_through_their_index() {
        let (db, _dir) = sqlite().await;
        let sql =
            format!("EXPLAIN QUERY PLAN SELECT id FROM connections WHERE {HEALTH_DUE} ORDER BY next_health_at LIMIT 5");
        let rows: Vec<(i64, i64, i64, String)> =
            on_engine!(db, |pool| sqlx::query_as(&sql).bind(1_i64).fetch_all(pool).await).unwrap();
        let plan = rows.into_iter().map(|(_, _, _, detail)| detail).collect::<Vec<_>>().join("\n");
        assert!(plan.contains("SEARCH connections USING INDEX connections_health (next_health_at<?)"), "{plan}");
    }

    #[tokio::test]
    async fn a_due_row_is_leased_once_and_a_stopped_check_does_not_hold_it_for_ever() {
        let (db, _dir) = sqlite().await;
        let clinic = db.ensure_clinic("c", 1).await.unwrap();
        let mut g = grant(clinic, b"t");
        g.next_health_at = Some(100);
        let row = db.store_grant(&g, &event("connected")).await.unwrap();
        assert!(db.lease_health_checks(99, "a/health", 130, 10).await.unwrap().is_empty(), "not due yet");
        let leased = db.lease_health_checks(100, "a/health", 130, 10).await.unwrap();
        assert_eq!(leased.iter().map(|r| r.id).collect::<Vec<_>>(), [row.id]);
        assert!(db.lease_health_checks(101, "b/health", 131, 10).await.unwrap().is_empty(), "held");
        assert!(db.lease_health_check_of(row.id, 101, "b/health", 131).await.unwrap().is_none(), "held");
        // The holder stopped: once its lease ran out, another instance checks the row.
        let taken = db.lease_health_checks(130, "b/health", 160, 10).await.unwrap();
        assert_eq!(taken.len(), 1);
        assert!(!db.finish_health_check(row.id, "a/health", 1000).await.unwrap(), "no longer a's");
        assert_eq!(db.connection_by_id(row.id).await.unwrap().unwrap().lease_owner.as_deref(), Some("b/health"));
        assert!(db.finish_health_check(row.id, "b/health", 1000).await.unwrap());
        assert!(db.lease_health_checks(999, "c/health", 1030, 10).await.unwrap().is_empty());
        assert!(db.lease_health_check_of(row.id, 999, "c/health", 1030).await.unwrap().is_some(), "on demand");
    }

    #[tokio::test]
    async fn a_refresh_left_in_doubt_is_not_taken_for_a_health_check() {
        let (db, _dir) = sqlite().await;
        let clinic = db.ensure_clinic("c", 1).await.unwrap();
        let mut g = grant(clinic, b"t");
        g.next_health_at = Some(100);
        let row = db.store_grant(&g, &event("connected")).await.unwrap();
        assert!(db.acquire_lease(row.id, row.version, "refresher", 50, 60).await.unwrap());
        // Its lease ran out: whether the vendor rotated the refresh token is unknown, so only the
        // refresh path (which knows what that means for the vendor) may take the row.
        assert!(db.lease_health_checks(200, "a/health", 230, 10).await.unwrap().is_empty());
        assert!(db.lease_health_check_of(row.id, 200, "a/health", 230).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_check_that_refreshes_hands_its_lease_over_and_sets_the_next_check() {
        let (db, _dir) = sqlite().await;
        let clinic = db.ensure_clinic("c", 1).await.unwrap();
        let row = db.store_grant(&grant(clinic, b"t"), &event("connected")).await.unwrap();
        let leased = db.lease_health_check_of(row.id, 10, "p/health", 40).await.unwrap().unwrap();
        assert!(!db.hand_over_lease(leased.id, "q/health", "q", 45).await.unwrap());
        assert!(db.hand_over_lease(leased.id, "p/health", "p", 45).await.unwrap());
        let record = RefreshRecord {
            id: row.id,
            clinic_id: clinic,
            vendor: "drchrono",
            owner: "p",
            write: RefreshWrite::Refreshed { access_token: b"new", refresh_token: None, expires_at: Some(99) },
            event: None,
            next_health_at: Some(900),
            now: 12,
        };
        assert_eq!(db.record_refreshes(&[record]).await.unwrap(), [true]);
        let now = db.connection_by_id(row.id).await.unwrap().unwrap();
        assert_eq!((now.next_health_at, now.lease_owner), (Some(900), None));
        assert_eq!(db.events(clinic, "drchrono").await.unwrap().len(), 1, "a check that went well adds no entry");
    }

    #[tokio::test]
    async fn attention_lists_only_the_admins_clinics_broken_connections() {
        let (db, _dir) = sqlite().await;
        let a = db.ensure_clinic("a", 1).await.unwrap();
        let b = db.ensure_clinic("b", 1).await.unwrap();
        let admin = db.insert_admin(a, "x@a.test", "hash", 1).await.unwrap();
        let row = db.store_grant(&grant(a, b"t"), &event("connected")).await.unwrap();
        db.store_grant(&grant(b, b"t"), &event("connected")).await.unwrap();
        assert!(db.attention_of_admin(admin).await.unwrap().is_empty());
        assert!(db.mark_key_missing(row.id, row.version, &event("key gone"), 5).await.unwrap());
        let listed = db.attention_of_admin(admin).await.unwrap();
        assert_eq!(
            listed.iter().map(|r| (r.vendor.as_str(), r.status.as_str())).collect::<Vec<_>>(),
            [("drchrono", "key_missing")]
        );
        assert_eq!(db.key_missing_count().await.unwrap(), 1);
        let marked = db.connection_by_id(row.id).await.unwrap().unwrap();
        assert_eq!((marked.trouble_detail.as_deref(), marked.trouble_since), (Some("key gone"), Some(5)));
    }

    #[tokio::test]
    async fn attention_from_rows_already_read_agrees_with_the_statement() {
        let (db, _dir) = sqlite().await;
        let clinic = db.ensure_clinic("a", 1).await.unwrap();
        let admin = db.insert_admin(clinic, "x@a.test", "hash", 1).await.unwrap();
        let mut g = grant(clinic, b"t");
        let agree = || async {
            let from_sql = db.attention_of_admin(admin).await.unwrap();
            let (_, rows) = db.admin_with_connections(admin).await.unwrap().unwrap();
            let from_rows: Vec<Attention> = rows.iter().filter_map(Attention::of).collect();
            let key = |a: &Attention| (a.vendor.clone(), a.status.clone(), a.trouble.clone());
            let (mut x, mut y): (Vec<_>, Vec<_>) =
                (from_sql.iter().map(key).collect(), from_rows.iter().map(key).collect());
            x.sort();
            y.sort();
            assert_eq!(x, y);
            x.len()
        };
        for vendor in ["drchrono", "zocdoc", "qmatic", "docplanner"] {
            g.vendor = vendor;
            db.store_grant(&g, &event("connected")).await.unwrap();
        }
        assert_eq!(agree().await, 0);
        let row = db.connection(clinic, "drchrono").await.unwrap().unwrap();
        assert!(db.mark_key_missing(row.id, row.version, &event("key gone"), 5).await.unwrap());
        let trouble = RefreshRecord {
            id: db.connection(clinic, "zocdoc").await.unwrap().unwrap().id,
            clinic_id: clinic,
            vendor: "zocdoc",
            owner: "w",
            write: RefreshWrite::Trouble { trouble: "vendor_down", detail: "down", retry_at: 9 },
            event: None,
            next_health_at: None,
            now: 6,
        };
        let leased = db.connection(clinic, "zocdoc").await.unwrap().unwrap();
        assert!(db.acquire_lease(leased.id, leased.version, "w", 6, 60).await.unwrap());
        assert_eq!(db.record_refreshes(&[trouble]).await.unwrap(), [true]);
        let qmatic = db.connection(clinic, "qmatic").await.unwrap().unwrap();
        db.disconnect(qmatic.id, qmatic.version, &[], "w", 60, &event("gone"), 7).await.unwrap().unwrap();
        assert_eq!(agree().await, 2, "key missing and in trouble; not the disconnected or the healthy one");
    }
}
