//! Clinics, their admins, and invitations to become one.

use sqlx::FromRow;

use super::Db;
use crate::clock::UnixTime;

#[derive(Debug, Clone, FromRow)]
pub struct AdminRow {
    pub id: i64,
    pub clinic_id: i64,
    pub clinic_name: String,
    pub email: String,
}

#[derive(FromRow)]
pub struct Credentials {
    pub id: i64,
    pub password_hash: String,
}

/// An admin as the clinic's admin list shows them.
#[derive(Debug, Clone, FromRow)]
pub struct AdminListed {
    pub id: i64,
    pub clinic_name: String,
    pub email: String,
    pub created_at: UnixTime,
    /// Live sessions signed in as this admin.
    pub sessions: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct Invitation {
    pub clinic_id: i64,
    pub clinic_name: String,
    pub email: String,
    pub expires_at: UnixTime,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Refused: a clinic keeps at least one admin.
    LastAdmin,
    NotFound,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Acceptance {
    /// The new admin's id.
    Accepted(i64),
    /// Unknown, used or expired.
    Invalid,
    /// Someone already is an admin with this email.
    EmailTaken,
}

const ADMIN: &str = "SELECT a.id, a.clinic_id, c.name AS clinic_name, a.email
       FROM admins a JOIN clinics c ON c.id = a.clinic_id";

/// Admins with how many live sessions each has (`$1` is now).
const LISTED: &str = "SELECT a.id, c.name AS clinic_name, a.email, a.created_at,
            (SELECT COUNT(*) FROM sessions s WHERE s.admin_id = a.id AND s.idle_expires_at > $1) AS sessions
       FROM admins a JOIN clinics c ON c.id = a.clinic_id";

impl Db {
    /// The clinic's id, creating the clinic if it does not exist.
    pub async fn ensure_clinic(&self, name: &str, now: UnixTime) -> sqlx::Result<i64> {
        Ok(transaction!(self, |tx| {
            sqlx::query("INSERT INTO clinics (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(now)
                .execute(tx.c())
                .await?;
            sqlx::query_scalar::<_, i64>("SELECT id FROM clinics WHERE name = $1").bind(name).fetch_one(tx.c()).await?
        }))
    }

    pub async fn clinic_name(&self, id: i64) -> sqlx::Result<Option<String>> {
        on_engine!(self, |pool| sqlx::query_scalar("SELECT name FROM clinics WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await)
    }

    pub async fn clinic_id(&self, name: &str) -> sqlx::Result<Option<i64>> {
        on_engine!(self, |pool| sqlx::query_scalar("SELECT id FROM clinics WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await)
    }

    pub async fn insert_admin(
        &self,
        clinic_id: i64,
        email: &str,
        password_hash: &str,
        now: UnixTime,
    ) -> sqlx::Result<i64> {
        Ok(transaction!(self, |tx| {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO admins (clinic_id, email, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(clinic_id)
            .bind(email)
            .bind(password_hash)
            .bind(now)
            .fetch_one(tx.c())
            .await?
        }))
    }

    /// Whether an admin has this email, whatever its case.
    pub async fn admin_exists(&self, email: &str) -> sqlx::Result<bool> {
        let found: Option<i64> =
            on_engine!(self, |pool| sqlx::query_scalar("SELECT id FROM admins WHERE lower(email) = lower($1)")
                .bind(email)
                .fetch_optional(pool)
                .await)?;
        Ok(found.is_some())
    }

    pub async fn admin_credentials(&self, email: &str) -> sqlx::Result<Option<Credentials>> {
        on_engine!(self, |pool| sqlx::query_as("SELECT id, password_hash FROM admins WHERE lower(email) = lower($1)")
            .bind(email)
            .fetch_optional(pool)
            .await)
    }

    pub async fn admin_password_hash(&self, id: i64) -> sqlx::Result<Option<String>> {
        on_engine!(self, |pool| sqlx::query_scalar("SELECT password_hash FROM admins WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await)
    }

    pub async fn admin(&self, id: i64) -> sqlx::Result<Option<AdminRow>> {
        on_engine!(self, |pool| sqlx::query_as(&format!("{ADMIN} WHERE a.id = $1")).bind(id).fetch_optional(pool).await)
    }

    pub async fn admin_by_email(&self, email: &str) -> sqlx::Result<Option<AdminRow>> {
        on_engine!(self, |pool| sqlx::query_as(&format!("{ADMIN} WHERE lower(a.email) = lower($1)"))
            .bind(email)
            .fetch_optional(pool)
            .await)
    }

    /// A clinic's admins, oldest first.
    pub async fn admins_of_clinic(&self, clinic_id: i64, now: UnixTime) -> sqlx::Result<Vec<AdminListed>> {
        on_engine!(self, |pool| sqlx::query_as(&format!("{LISTED} WHERE a.clinic_id = $2 ORDER BY a.created_at, a.id"))
            .bind(now)
            .bind(clinic_id)
            .fetch_all(pool)
            .await)
    }

    /// Every admin of every clinic, for the operator.
    pub async fn all_admins(&self, now: UnixTime) -> sqlx::Result<Vec<AdminListed>> {
        on_engine!(self, |pool| sqlx::query_as(&format!("{LISTED} ORDER BY c.name, a.email"))
            .bind(now)
            .fetch_all(pool)
            .await)
    }

    /// Removes an admin of a clinic (their sessions end with them), unless they are its last.
    pub async fn remove_admin(&self, clinic_id: i64, admin_id: i64) -> sqlx::Result<Removal> {
        Ok(transaction!(self, |tx| {
            // Locks the clinic's row (a no-op write) so that two removals at once on PostgreSQL
            // cannot both see "two admins left"; SQLite's one writer already serialises them.
            sqlx::query("UPDATE clinics SET name = name WHERE id = $1").bind(clinic_id).execute(tx.c()).await?;
            let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admins WHERE clinic_id = $1")
                .bind(clinic_id)
                .fetch_one(tx.c())
                .await?;
            let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM admins WHERE id = $1 AND clinic_id = $2")
                .bind(admin_id)
                .bind(clinic_id)
                .fetch_optional(tx.c())
                .await?;
            match exists {
                None => Removal::NotFound,
                Some(_) if admins <= 1 => Removal::LastAdmin,
                Some(_) => {
                    sqlx::query("DELETE FROM admins WHERE id = $1").bind(admin_id).execute(tx.c()).await?;
                    Removal::Removed
                }
            }
        }))
    }

    /// Sets an admin's password and ends every session of theirs but `keep` (the one that made
    /// the change, if any). False when there is no such admin.
    pub async fn set_password(&self, admin_id: i64, password_hash: &str, keep: Option<&str>) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            let done = sqlx::query("UPDATE admins SET password_hash = $1 WHERE id = $2")
                .bind(password_hash)
                .bind(admin_id)
                .execute(tx.c())
                .await?;
            sqlx::query("DELETE FROM sessions WHERE admin_id = $1 AND id <> $2")
                .bind(admin_id)
                .bind(keep.unwrap_or(""))
                .execute(tx.c())
                .await?;
            done.rows_affected() == 1
        }))
    }

    /// Invites someone to become an admin of a clinic (replacing an earlier invitation of theirs
    /// to it); only the hash of the link's token is stored.
    pub async fn create_invitation(
        &self,
        token_hash: &str,
        clinic_id: i64,
        email: &str,
        invited_by: Option<i64>,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> sqlx::Result<()> {
        transaction!(self, |tx| {
            // A new invitation to the same address replaces the earlier one: one live link each.
            sqlx::query("DELETE FROM admin_invitations WHERE clinic_id = $1 AND lower(email) = lower($2)")
                .bind(clinic_id)
                .bind(email)
                .execute(tx.c())
                .await?;
            sqlx::query(
                "INSERT INTO admin_invitations (token_hash, clinic_id, email, invited_by, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(token_hash)
            .bind(clinic_id)
            .bind(email)
            .bind(invited_by)
            .bind(now)
            .bind(expires_at)
            .execute(tx.c())
            .await?;
        });
        Ok(())
    }

    /// A live invitation.
    pub async fn invitation(&self, token_hash: &str, now: UnixTime) -> sqlx::Result<Option<Invitation>> {
        on_engine!(self, |pool| sqlx::query_as(
            "SELECT i.clinic_id, c.name AS clinic_name, i.email, i.expires_at
               FROM admin_invitations i JOIN clinics c ON c.id = i.clinic_id
              WHERE i.token_hash = $1 AND i.expires_at > $2"
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(pool)
        .await)
    }

    /// Uses an invitation once: the invitee becomes an admin with this password.
    pub async fn accept_invitation(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: UnixTime,
    ) -> sqlx::Result<Acceptance> {
        Ok(transaction!(self, |tx| {
            let taken: Option<(i64, String)> = sqlx::query_as(
                "DELETE FROM admin_invitations WHERE token_hash = $1 AND expires_at > $2 RETURNING clinic_id, email",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(tx.c())
            .await?;
            match taken {
                None => Acceptance::Invalid,
                Some((clinic_id, email)) => {
                    let existing: Option<i64> =
                        sqlx::query_scalar("SELECT id FROM admins WHERE lower(email) = lower($1)")
                            .bind(&email)
                            .fetch_optional(tx.c())
                            .await?;
                    if existing.is_some() {
                        Acceptance::EmailTaken
                    } else {
                        let id = sqlx::query_scalar(
                            "INSERT INTO admins (clinic_id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)
                             RETURNING id",
                        )
                        .bind(clinic_id)
                        .bind(&email)
                        .bind(password_hash)
                        .bind(now)
                        .fetch_one(tx.c())
                        .await?;
                        Acceptance::Accepted(id)
                    }
                }
            }
        }))
    }

    pub async fn purge_invitations(&self, now: UnixTime) -> sqlx::Result<u64> {
        Ok(transaction!(self, |tx| {
            sqlx::query("DELETE FROM admin_invitations WHERE expires_at <= $1")
                .bind(now)
                .execute(tx.c())
                .await?
                .rows_affected()
        }))
    }
}
