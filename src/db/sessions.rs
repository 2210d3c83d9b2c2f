//! Server-side session rows. The id is a hash of the cookie's key; the state is a vault record.

use sqlx::FromRow;

use super::Db;
use crate::clock::UnixTime;

#[derive(Clone, FromRow)]
pub struct SessionRow {
    pub state: Vec<u8>,
    pub created_at: UnixTime,
    pub idle_expires_at: UnixTime,
}

/// One of an admin's sessions, for "signed in on 2 devices".
#[derive(Clone, FromRow)]
pub struct AdminSession {
    pub id: String,
    pub state: Vec<u8>,
    pub created_at: UnixTime,
    pub idle_expires_at: UnixTime,
}

/// A session to write: `admin_id` is whom it is signed in as (none for patients and sign-in pages).
pub struct SessionWrite<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub state: &'a [u8],
    pub admin_id: Option<i64>,
    pub idle_expires_at: UnixTime,
}

impl Db {
    pub async fn session(&self, id: &str, kind: &str) -> sqlx::Result<Option<SessionRow>> {
        on_engine!(self, |pool| sqlx::query_as(
            "SELECT state, created_at, idle_expires_at FROM sessions WHERE id = $1 AND kind = $2"
        )
        .bind(id)
        .bind(kind)
        .fetch_optional(pool)
        .await)
    }

    pub async fn insert_session(&self, s: &SessionWrite<'_>, created_at: UnixTime) -> sqlx::Result<()> {
        transaction!(self, |tx| {
            sqlx::query(
                "INSERT INTO sessions (id, kind, state, created_at, idle_expires_at, admin_id)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(s.id)
            .bind(s.kind)
            .bind(s.state)
            .bind(created_at)
            .bind(s.idle_expires_at)
            .bind(s.admin_id)
            .execute(tx.c())
            .await?;
        });
        Ok(())
    }

    /// Replaces a live session's state; false when the row is gone.
    pub async fn update_session(&self, s: &SessionWrite<'_>) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            sqlx::query(
                "UPDATE sessions SET state = $1, idle_expires_at = $2, admin_id = $3 WHERE id = $4 AND kind = $5",
            )
            .bind(s.state)
            .bind(s.idle_expires_at)
            .bind(s.admin_id)
            .bind(s.id)
            .bind(s.kind)
            .execute(tx.c())
            .await?
            .rows_affected()
                == 1
        }))
    }

    /// Pushes the idle deadline out, but only when it would move by more than `slack` seconds.
    pub async fn touch_session(&self, id: &str, kind: &str, idle_expires_at: UnixTime, slack: i64) -> sqlx::Result<()> {
        transaction!(self, |tx| {
            sqlx::query(
                "UPDATE sessions SET idle_expires_at = $1 WHERE id = $2 AND kind = $3 AND idle_expires_at < $4",
            )
            .bind(idle_expires_at)
            .bind(id)
            .bind(kind)
            .bind(idle_expires_at - slack)
            .execute(tx.c())
            .await?;
        });
        Ok(())
    }

    pub async fn delete_session(&self, id: &str, kind: &str) -> sqlx::Result<()> {
        transaction!(self, |tx| {
            sqlx::query("DELETE FROM sessions WHERE id = $1 AND kind = $2").bind(id).bind(kind).execute(tx.c()).await?;
        });
        Ok(())
    }

    /// Removes sessions of a kind past their idle deadline or created before `created_before`.
    pub async fn purge_sessions(&self, kind: &str, now: UnixTime, created_before: UnixTime) -> sqlx::Result<u64> {
        Ok(transaction!(self, |tx| {
            sqlx::query("DELETE FROM sessions WHERE kind = $1 AND (idle_expires_at <= $2 OR created_at <= $3)")
                .bind(kind)
                .bind(now)
                .bind(created_before)
                .execute(tx.c())
                .await?
                .rows_affected()
        }))
    }

    /// An admin's live sessions, newest first.
    pub async fn sessions_of_admin(&self, admin_id: i64, now: UnixTime) -> sqlx::Result<Vec<AdminSession>> {
        on_engine!(self, |pool| sqlx::query_as(
            "SELECT id, state, created_at, idle_expires_at FROM sessions
              WHERE admin_id = $1 AND idle_expires_at > $2 ORDER BY created_at DESC, id"
        )
        .bind(admin_id)
        .bind(now)
        .fetch_all(pool)
        .await)
    }

    /// Ends every session of an admin but `keep`; how many ended.
    pub async fn end_other_sessions(&self, admin_id: i64, keep: &str) -> sqlx::Result<u64> {
        Ok(transaction!(self, |tx| {
            sqlx::query("DELETE FROM sessions WHERE admin_id = $1 AND id <> $2")
                .bind(admin_id)
                .bind(keep)
                .execute(tx.c())
                .await?
                .rows_affected()
        }))
    }

    /// Ends one of an admin's sessions (only theirs); whether it existed.
    pub async fn end_admin_session(&self, admin_id: i64, id: &str) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            sqlx::query("DELETE FROM sessions WHERE admin_id = $1 AND id = $2")
                .bind(admin_id)
                .bind(id)
                .execute(tx.c())
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// How many session rows there are, of every kind.
    pub async fn session_count(&self) -> sqlx::Result<i64> {
        on_engine!(self, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM sessions").fetch_one(pool).await)
    }
}
