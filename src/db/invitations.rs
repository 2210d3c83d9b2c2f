//! A clinic's pending invitations, as its admins see and cancel them. Creating and accepting one
//! is in `admins`.

use sqlx::FromRow;

use super::Db;
use crate::clock::UnixTime;

/// An invitation not yet used, as the clinic's admin page lists it.
#[derive(Debug, Clone, FromRow)]
pub struct PendingInvitation {
    pub email: String,
    /// Who invited them (none when that admin has since been removed, or it came from elsewhere).
    pub invited_by: Option<String>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

impl Db {
    /// A clinic's live invitations, newest first.
    pub async fn invitations_of_clinic(&self, clinic_id: i64, now: UnixTime) -> sqlx::Result<Vec<PendingInvitation>> {
        on_engine!(self, |pool| sqlx::query_as(
            "SELECT i.email, a.email AS invited_by, i.created_at, i.expires_at
               FROM admin_invitations i LEFT JOIN admins a ON a.id = i.invited_by
              WHERE i.clinic_id = $1 AND i.expires_at > $2
              ORDER BY i.created_at DESC, i.email"
        )
        .bind(clinic_id)
        .bind(now)
        .fetch_all(pool)
        .await)
    }

    /// Cancels a clinic's invitation of this address (whatever its case); whether there was one.
    pub async fn cancel_invitation(&self, clinic_id: i64, email: &str) -> sqlx::Result<bool> {
        Ok(transaction!(self, |tx| {
            sqlx::query("DELETE FROM admin_invitations WHERE clinic_id = $1 AND lower(email) = lower($2)")
                .bind(clinic_id)
                .bind(email)
                .execute(tx.c())
                .await?
                .rows_affected()
                > 0
        }))
    }
}
