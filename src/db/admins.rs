//! Clinics and their admins.

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

impl Db {
    /// Returns the clinic's id, creating it if it does not exist.
    pub async fn ensure_clinic(&self, name: &str, now: UnixTime) -> sqlx::Result<i64> {
        sqlx::query("INSERT INTO clinics (name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING")
            .bind(name)
            .bind(now)
            .execute(&mut *self.pool().await?)
            .await?;
        sqlx::query_scalar("SELECT id FROM clinics WHERE name = ?").bind(name).fetch_one(&mut *self.pool().await?).await
    }

    pub async fn insert_admin(
        &self,
        clinic_id: i64,
        email: &str,
        password_hash: &str,
        now: UnixTime,
    ) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO admins (clinic_id, email, password_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(clinic_id)
        .bind(email)
        .bind(password_hash)
        .bind(now)
        .fetch_one(&mut *self.pool().await?)
        .await
    }

    pub async fn admin_exists(&self, email: &str) -> sqlx::Result<bool> {
        sqlx::query_scalar("SELECT EXISTS(SELECT 1 FROM admins WHERE email = ?)")
            .bind(email)
            .fetch_one(&mut *self.pool().await?)
            .await
    }

    pub async fn admin_credentials(&self, email: &str) -> sqlx::Result<Option<Credentials>> {
        sqlx::query_as("SELECT id, password_hash FROM admins WHERE email = ?")
            .bind(email)
            .fetch_optional(&mut *self.fast().await?)
            .await
    }

    pub async fn admin(&self, id: i64) -> sqlx::Result<Option<AdminRow>> {
        let read = async {
            sqlx::query_as(
                "SELECT a.id, a.clinic_id, c.name AS clinic_name, a.email
                   FROM admins a JOIN clinics c ON c.id = a.clinic_id WHERE a.id = ?",
            )
            .bind(id)
            .fetch_optional(&mut *self.fast().await?)
            .await
        };
        self.cached(&self.caches.admins, id, read).await
    }
}
