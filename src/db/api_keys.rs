//! Service API keys: only their SHA-256 is stored.

use super::Db;
use crate::clock::UnixTime;

impl Db {
    pub async fn insert_api_key(
        &self,
        clinic_id: i64,
        key_hash: &str,
        label: &str,
        now: UnixTime,
    ) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO api_keys (clinic_id, key_hash, label, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(clinic_id)
        .bind(key_hash)
        .bind(label)
        .bind(now)
        .fetch_one(&mut *self.pool().await?)
        .await
    }

    /// The clinic a key belongs to.
    pub async fn api_key_clinic(&self, key_hash: &str) -> sqlx::Result<Option<i64>> {
        let read = async {
            sqlx::query_scalar("SELECT clinic_id FROM api_keys WHERE key_hash = ?")
                .bind(key_hash)
                .fetch_optional(&mut *self.fast().await?)
                .await
        };
        self.cached(&self.caches.api_keys, key_hash.to_owned(), read).await
    }

    pub async fn clinic_id(&self, name: &str) -> sqlx::Result<Option<i64>> {
        sqlx::query_scalar("SELECT id FROM clinics WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *self.pool().await?)
            .await
    }
}
