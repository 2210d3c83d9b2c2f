//! Failed sign-ins, counted per (hashed) email and per client address over a window. They live
//! in the database so that the limits hold across instances and restarts.

use super::Db;
use crate::clock::UnixTime;

/// Failed sign-ins since a moment, and the oldest of them (when the window frees a place).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    pub count: i64,
    pub oldest: Option<UnixTime>,
}

impl Db {
    /// Failures since `since` for this email and for this client address, in one statement.
    pub async fn sign_in_failures(
        &self,
        email_hash: &str,
        client: &str,
        since: UnixTime,
    ) -> sqlx::Result<(Failures, Failures)> {
        let (by_email, email_oldest, by_client, client_oldest): (i64, Option<UnixTime>, i64, Option<UnixTime>) =
            on_engine!(self, |pool| sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM sign_in_failures WHERE email_hash = $1 AND at > $3),
                        (SELECT MIN(at) FROM sign_in_failures WHERE email_hash = $1 AND at > $3),
                        (SELECT COUNT(*) FROM sign_in_failures WHERE client = $2 AND at > $3),
                        (SELECT MIN(at) FROM sign_in_failures WHERE client = $2 AND at > $3)"
            )
            .bind(email_hash)
            .bind(client)
            .bind(since)
            .fetch_one(pool)
            .await)?;
        Ok((Failures { count: by_email, oldest: email_oldest }, Failures { count: by_client, oldest: client_oldest }))
    }

    pub async fn record_sign_in_failure(&self, email_hash: &str, client: &str, now: UnixTime) -> sqlx::Result<()> {
        transaction!(self, |tx| {
            sqlx::query("INSERT INTO sign_in_failures (email_hash, client, at) VALUES ($1, $2, $3)")
                .bind(email_hash)
                .bind(client)
                .bind(now)
                .execute(tx.c())
                .await?;
        });
        Ok(())
    }

    /// A successful sign-in resets its email's count; the failures still count against the client
    /// addresses they came from (their email is forgotten, the rows stay until purged).
    pub async fn clear_sign_in_failures(&self, email_hash: &str) -> sqlx::Result<()> {
        transaction!(self, |tx| {
            sqlx::query("UPDATE sign_in_failures SET email_hash = '' WHERE email_hash = $1")
                .bind(email_hash)
                .execute(tx.c())
                .await?;
        });
        Ok(())
    }

    pub async fn purge_sign_in_failures(&self, before: UnixTime) -> sqlx::Result<u64> {
        Ok(transaction!(self, |tx| {
            sqlx::query("DELETE FROM sign_in_failures WHERE at <= $1")
                .bind(before)
                .execute(tx.c())
                .await?
                .rows_affected()
        }))
    }
}
