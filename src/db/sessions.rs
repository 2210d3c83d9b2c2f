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
    pub async fn session(&self, id: &str, kind: &'static str) -> sqlx::Result<Option<SessionRow>> {
        let read = async {
            sqlx::query_as("SELECT state, created_at, idle_expires_at FROM sessions WHERE id = ? AND kind = ?")
                .bind(id)
                .bind(kind)
                .fetch_optional(&mut *self.fast().await?)
                .await
        };
        self.cached(&self.caches.sessions, (id.to_owned(), kind), read).await
    }

    pub async fn insert_session(
        &self,
        id: &str,
        kind: &str,
        state: &[u8],
        created_at: UnixTime,
        idle_expires_at: UnixTime,
    ) -> sqlx::Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("INSERT INTO sessions (id, kind, state, created_at, idle_expires_at) VALUES (?, ?, ?, ?, ?)")
            .bind(id)
            .bind(kind)
            .bind(state)
            .bind(created_at)
            .bind(idle_expires_at)
            .execute(&mut *self.fast().await?)
            .await
            .map(|_| ())
    }

    /// Replaces a live session's state; false when the row is gone.
    pub async fn update_session(&self, id: &str, state: &[u8], idle_expires_at: UnixTime) -> sqlx::Result<bool> {
        let _turn = self.write_turn().await;
        let done = sqlx::query("UPDATE sessions SET state = ?, idle_expires_at = ? WHERE id = ?")
            .bind(state)
            .bind(idle_expires_at)
            .bind(id)
            .execute(&mut *self.fast().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Pushes the idle deadline out, but only when it would move by more than `slack` seconds:
    /// a read-mostly page then costs no write.
    pub async fn touch_session(&self, id: &str, idle_expires_at: UnixTime, slack: i64) -> sqlx::Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE sessions SET idle_expires_at = ? WHERE id = ? AND idle_expires_at < ?")
            .bind(idle_expires_at)
            .bind(id)
            .bind(idle_expires_at - slack)
            .execute(&mut *self.fast().await?)
            .await
            .map(|_| ())
    }

    pub async fn delete_session(&self, id: &str) -> sqlx::Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM sessions WHERE id = ?").bind(id).execute(&mut *self.fast().await?).await.map(|_| ())
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
