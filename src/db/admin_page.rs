//! What every admin page reads about who is signed in, in one statement: the admin, their
//! clinic, and the clinic's connections (at most one per vendor). The dashboard lists the
//! connections, a connection's page shows its own, and every page's attention banner is drawn
//! from them, so a dashboard page costs this statement and the session's read.

use sqlx::{FromRow, Row};

use super::admins::AdminRow;
use super::connections::ConnectionRow;
use super::Db;

impl Db {
    /// The admin with this id and their clinic's connections; `None` when there is no such
    /// admin (removed meanwhile).
    pub async fn admin_with_connections(&self, id: i64) -> sqlx::Result<Option<(AdminRow, Vec<ConnectionRow>)>> {
        // The admin's columns are renamed so that the connection's own (`id`, `clinic_id`…)
        // keep their names for `ConnectionRow`; a clinic without connections gives one row
        // whose connection columns are all null.
        let sql = "SELECT a.id AS admin_id, a.clinic_id AS admin_clinic_id, l.name AS admin_clinic_name,
                          a.email AS admin_email, c.*
                     FROM admins a JOIN clinics l ON l.id = a.clinic_id
                     LEFT JOIN connections c ON c.clinic_id = a.clinic_id
                    WHERE a.id = $1";
        on_engine!(self, |pool| {
            let rows = sqlx::query(sql).bind(id).fetch_all(pool).await?;
            let Some(first) = rows.first() else { return Ok(None) };
            let admin = AdminRow {
                id: first.try_get("admin_id")?,
                clinic_id: first.try_get("admin_clinic_id")?,
                clinic_name: first.try_get("admin_clinic_name")?,
                email: first.try_get("admin_email")?,
            };
            let mut connections = Vec::with_capacity(rows.len());
            for row in &rows {
                if row.try_get::<Option<i64>, _>("id")?.is_some() {
                    connections.push(ConnectionRow::from_row(row)?);
                }
            }
            Ok(Some((admin, connections)))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::db::fixtures::{event, grant, sqlite};

    #[tokio::test]
    async fn an_admin_comes_with_their_clinics_connections_and_no_one_elses() {
        let (db, _dir) = sqlite().await;
        let clinic = db.ensure_clinic("Clinic", 1).await.unwrap();
        let other = db.ensure_clinic("Other", 1).await.unwrap();
        let admin = db.insert_admin(clinic, "a@clinic.test", "hash", 1).await.unwrap();
        let (row, connections) = db.admin_with_connections(admin).await.unwrap().unwrap();
        assert_eq!(
            (row.id, row.clinic_id, row.clinic_name.as_str(), row.email.as_str()),
            (admin, clinic, "Clinic", "a@clinic.test")
        );
        assert!(connections.is_empty());

        db.store_grant(&grant(clinic, b"mine"), &event("connected")).await.unwrap();
        db.store_grant(&grant(other, b"theirs"), &event("connected")).await.unwrap();
        let (_, connections) = db.admin_with_connections(admin).await.unwrap().unwrap();
        assert_eq!(connections.len(), 1);
        assert_eq!(
            (connections[0].clinic_id, connections[0].access_token.as_deref()),
            (clinic, Some(b"mine".as_slice()))
        );
        assert!(db.admin_with_connections(admin + 99).await.unwrap().is_none());
    }
}
