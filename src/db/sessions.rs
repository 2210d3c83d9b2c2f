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

impl Db {
    pub async fn session(&self, id: &str, kind: &str) -> sqlx::Result<Option<SessionRow>> {
        let read = async {
            sqlx::query_as("SELECT state, created_at, idle_expires_at FROM sessions WHERE id = ? AND kind = ?")
                .bind(id)
                .bind(kind)
                .fetch_optional(&mut *self.fast().await?)
                .await
        };
        self.cached(&self.caches.sessions, (id.to_owned(), kind.to_owned()), read).await
    }

    /// Adds a session; this process's caches then hold it as written.
    pub async fn insert_session(
        &self,
        id: &str,
        kind: &str,
        state: &[u8],
        created_at: UnixTime,
        idle_expires_at: UnixTime,
    ) -> sqlx::Result<()> {
        let write = async {
            sqlx::query("INSERT INTO sessions (id, kind, state, created_at, idle_expires_at) VALUES (?, ?, ?, ?, ?)")
                .bind(id)
                .bind(kind)
                .bind(state)
                .bind(created_at)
                .bind(idle_expires_at)
                .execute(&mut *self.fast().await?)
                .await?;
            Ok(((), true))
        };
        self.own_write(write, |caches, seen, _| {
            caches.stored_session(
                seen,
                id,
                kind,
                Some(SessionRow { state: state.to_vec(), created_at, idle_expires_at }),
            );
        })
        .await
    }

    /// Replaces a live session's state; false when the row is gone.
    pub async fn update_session(
        &self,
        id: &str,
        kind: &str,
        state: &[u8],
        idle_expires_at: UnixTime,
    ) -> sqlx::Result<bool> {
        let write = async {
            let created_at: Option<UnixTime> = sqlx::query_scalar(
                "UPDATE sessions SET state = ?, idle_expires_at = ? WHERE id = ? AND kind = ? RETURNING created_at",
            )
            .bind(state)
            .bind(idle_expires_at)
            .bind(id)
            .bind(kind)
            .fetch_optional(&mut *self.fast().await?)
            .await?;
            Ok((created_at, created_at.is_some()))
        };
        let created_at = self
            .own_write(write, |caches, seen, created_at| {
                if let Some(created_at) = *created_at {
                    let row = SessionRow { state: state.to_vec(), created_at, idle_expires_at };
                    caches.stored_session(seen, id, kind, Some(row));
                }
            })
            .await?;
        Ok(created_at.is_some())
    }

    /// Pushes the idle deadline out, but only when it would move by more than `slack` seconds:
    /// a read-mostly page then costs no write.
    pub async fn touch_session(&self, id: &str, kind: &str, idle_expires_at: UnixTime, slack: i64) -> sqlx::Result<()> {
        let write = async {
            let done = sqlx::query(
                "UPDATE sessions SET idle_expires_at = ? WHERE id = ? AND kind = ? AND idle_expires_at < ?",
            )
            .bind(idle_expires_at)
            .bind(id)
            .bind(kind)
            .bind(idle_expires_at - slack)
            .execute(&mut *self.fast().await?)
            .await?;
            Ok(((), done.rows_affected() > 0))
        };
        self.own_write(write, |caches, _, _| caches.sessions.forget(&(id.to_owned(), kind.to_owned()))).await
    }

    pub async fn delete_session(&self, id: &str, kind: &str) -> sqlx::Result<()> {
        let write = async {
            let done = sqlx::query("DELETE FROM sessions WHERE id = ? AND kind = ?")
                .bind(id)
                .bind(kind)
                .execute(&mut *self.fast().await?)
                .await?;
            Ok(((), done.rows_affected() > 0))
        };
        self.own_write(write, |caches, seen, _| caches.stored_session(seen, id, kind, None)).await
    }

    /// Removes sessions of a kind past their idle deadline or created before `created_before`.
    pub async fn purge_sessions(&self, kind: &str, now: UnixTime, created_before: UnixTime) -> sqlx::Result<u64> {
        let _turn = self.write_turn().await;
        let done = sqlx::query("DELETE FROM sessions WHERE kind = ? AND (idle_expires_at <= ? OR created_at <= ?)")
            .bind(kind)
            .bind(now)
            .bind(created_before)
            .execute(&mut *self.fast().await?)
            .await?;
        Ok(done.rows_affected())
    }
}
