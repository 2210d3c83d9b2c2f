//! Writing what a group of refreshes (or health checks) came to, in one transaction, each row
//! only under its lease. A refresh storm writes thousands of these a second, so the common case
//! — new tokens — is one `UPDATE … FROM (VALUES …)` for the whole group and its history entries
//! one multi-row `INSERT`: four statements a group (with `BEGIN` and `COMMIT`) instead of two a
//! refresh. Both engines name the columns of a `VALUES` list `column1`, `column2`…, and sqlx
//! sends each parameter with its type, so the text is the same on both.

use super::connections::{NewEvent, RefreshRecord, RefreshWrite};
use super::Db;

/// Parameters per row of [`refreshed_sql`]: id, owner, access token, refresh token, expiry,
/// now, next health check.
const REFRESHED_PARAMS: usize = 7;
/// Parameters per row of [`events_sql`].
const EVENT_PARAMS: usize = 6;

/// `($1, $2, …), ($k+1, …), …`: `rows` rows of `width` parameters.
fn values(rows: usize, width: usize) -> String {
    let row = |r: usize| {
        let params: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
        format!("({})", params.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

/// New tokens for `rows` connections, each written only while its lease is the writer's;
/// returns the ids written. No refresh token keeps the stored one; any trouble is cleared.
fn refreshed_sql(rows: usize) -> String {
    format!(
        "UPDATE connections SET access_token = v.column3, refresh_token = COALESCE(v.column4, refresh_token),
                expires_at = v.column5, refresh_failures = 0, next_refresh_at = NULL, lease_owner = NULL,
                lease_until = NULL, trouble = NULL, trouble_detail = NULL, trouble_since = NULL,
                next_health_at = COALESCE(v.column7, next_health_at), version = version + 1, updated_at = v.column6
           FROM (VALUES {}) AS v
          WHERE connections.id = v.column1 AND connections.lease_owner = v.column2
          RETURNING id",
        values(rows, REFRESHED_PARAMS)
    )
}

fn events_sql(rows: usize) -> String {
    format!(
        "INSERT INTO connection_events (clinic_id, vendor, at, kind, detail, actor) VALUES {}",
        values(rows, EVENT_PARAMS)
    )
}

impl Db {
    /// Writes what a group of refreshes came to, in one transaction: each under its lease (a row
    /// whose lease is no longer the writer's is left alone: false), with its history entry.
    pub async fn record_refreshes(&self, records: &[RefreshRecord<'_>]) -> sqlx::Result<Vec<bool>> {
        let refreshed: Vec<&RefreshRecord<'_>> =
            records.iter().filter(|r| matches!(r.write, RefreshWrite::Refreshed { .. })).collect();
        let refreshed_sql = refreshed_sql(refreshed.len());
        Ok(transaction!(self, |tx| {
            let mut written: Vec<i64> = Vec::with_capacity(records.len());
            if !refreshed.is_empty() {
                let mut query = sqlx::query_scalar::<_, i64>(&refreshed_sql);
                for r in &refreshed {
                    let RefreshWrite::Refreshed { access_token, refresh_token, expires_at } = &r.write else {
                        continue;
                    };
                    query = query
                        .bind(r.id)
                        .bind(r.owner)
                        .bind(*access_token)
                        .bind(*refresh_token)
                        .bind(*expires_at)
                        .bind(r.now)
                        .bind(r.next_health_at);
                }
                written.extend(query.fetch_all(tx.c()).await?);
            }
            for r in records {
                let done = match &r.write {
                    RefreshWrite::Refreshed { .. } => continue,
                    // The cause stays in `trouble_detail` (and the time in `trouble_since`) for the
                    // admin's "Details"; `trouble` itself only describes live connections.
                    RefreshWrite::GrantGone { detail } => sqlx::query(
                        "UPDATE connections SET status = 'reconnect_needed', access_token = NULL, refresh_token = NULL,
                                expires_at = NULL, lease_owner = NULL, lease_until = NULL, trouble = NULL,
                                trouble_detail = $4, trouble_since = $1, next_health_at = NULL,
                                version = version + 1, updated_at = $1
                          WHERE id = $2 AND lease_owner = $3",
                    )
                    .bind(r.now)
                    .bind(r.id)
                    .bind(r.owner)
                    .bind(*detail)
                    .execute(tx.c())
                    .await?,
                    RefreshWrite::Trouble { trouble, detail, retry_at } => {
                        sqlx::query(
                            "UPDATE connections SET refresh_failures = refresh_failures + 1, next_refresh_at = $1,
                                trouble_since = CASE WHEN trouble = $2 THEN trouble_since ELSE $3 END,
                                trouble = $2, trouble_detail = $4, lease_owner = NULL, lease_until = NULL,
                                next_health_at = COALESCE($7, next_health_at), updated_at = $3
                          WHERE id = $5 AND lease_owner = $6",
                        )
                        .bind(*retry_at)
                        .bind(*trouble)
                        .bind(r.now)
                        .bind(*detail)
                        .bind(r.id)
                        .bind(r.owner)
                        .bind(r.next_health_at)
                        .execute(tx.c())
                        .await?
                    }
                };
                if done.rows_affected() == 1 {
                    written.push(r.id);
                }
            }
            let stored: Vec<bool> = records.iter().map(|r| written.contains(&r.id)).collect();
            let events: Vec<(&RefreshRecord<'_>, &NewEvent<'_>)> = records
                .iter()
                .zip(&stored)
                .filter_map(|(r, stored)| r.event.as_ref().filter(|_| *stored).map(|e| (r, e)))
                .collect();
            if !events.is_empty() {
                let sql = events_sql(events.len());
                let mut query = sqlx::query(&sql);
                for (r, event) in &events {
                    query = query
                        .bind(r.clinic_id)
                        .bind(r.vendor)
                        .bind(r.now)
                        .bind(event.kind)
                        .bind(event.detail)
                        .bind(event.actor);
                }
                query.execute(tx.c()).await?;
            }
            stored
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::db::fixtures::{event, grant, sqlite};

    #[test]
    fn a_group_is_one_statement_with_numbered_rows() {
        assert_eq!(values(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert!(refreshed_sql(2).contains("VALUES ($1, $2, $3, $4, $5, $6, $7), ($8, $9, $10, $11, $12, $13, $14)"));
    }

    #[tokio::test]
    async fn a_group_writes_each_row_under_its_own_lease_and_the_history_of_the_written_ones() {
        let (db, _dir) = sqlite().await;
        let mut rows = Vec::new();
        for i in 0..4 {
            let clinic = db.ensure_clinic(&format!("c{i}"), 1).await.unwrap();
            let row = db.store_grant(&grant(clinic, b"old"), &event("connected")).await.unwrap();
            // The last one's lease is someone else's.
            let owner = if i == 3 { "other" } else { "me" };
            assert!(db.acquire_lease(row.id, row.version, owner, 10, 40).await.unwrap());
            rows.push(row);
        }
        let record = |i: usize, write| RefreshRecord {
            id: rows[i].id,
            clinic_id: rows[i].clinic_id,
            vendor: "drchrono",
            owner: "me",
            write,
            event: Some(event("after")),
            next_health_at: Some(500 + i as i64),
            now: 12,
        };
        let records = [
            record(
                0,
                RefreshWrite::Refreshed { access_token: b"new0", refresh_token: Some(b"r0"), expires_at: Some(99) },
            ),
            record(1, RefreshWrite::Trouble { trouble: "vendor_down", detail: "down", retry_at: 70 }),
            record(2, RefreshWrite::Refreshed { access_token: b"new2", refresh_token: None, expires_at: None }),
            record(3, RefreshWrite::Refreshed { access_token: b"new3", refresh_token: None, expires_at: Some(99) }),
        ];
        let before = db.statements();
        assert_eq!(db.record_refreshes(&records).await.unwrap(), [true, true, true, false]);
        assert_eq!(db.statements() - before, 5, "BEGIN, the refreshed rows, the trouble, the history, COMMIT");

        let row = |i: usize| {
            let db = db.clone();
            let id = rows[i].id;
            async move { db.connection_by_id(id).await.unwrap().unwrap() }
        };
        let first = row(0).await;
        assert_eq!(
            (first.access_token.as_deref(), first.refresh_token.as_deref()),
            (Some(b"new0".as_slice()), Some(b"r0".as_slice()))
        );
        assert_eq!((first.expires_at, first.next_health_at, first.lease_owner.as_deref()), (Some(99), Some(500), None));
        assert_eq!((first.version, first.updated_at), (rows[0].version + 1, 12));
        let kept = row(2).await;
        assert_eq!(
            (kept.access_token.as_deref(), kept.refresh_token.as_deref()),
            (Some(b"new2".as_slice()), Some(b"sealed-refresh".as_slice()))
        );
        assert_eq!(kept.expires_at, None);
        let troubled = row(1).await;
        assert_eq!((troubled.trouble.as_deref(), troubled.next_refresh_at), (Some("vendor_down"), Some(70)));
        let theirs = row(3).await;
        assert_eq!(
            (theirs.access_token.as_deref(), theirs.lease_owner.as_deref()),
            (Some(b"old".as_slice()), Some("other"))
        );
        for (i, entries) in [(0, 2), (1, 2), (2, 2), (3, 1)] {
            assert_eq!(db.events(rows[i].clinic_id, "drchrono").await.unwrap().len(), entries, "row {i}");
        }
    }
}
