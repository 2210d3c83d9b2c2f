//! `clinic-connect db copy --to postgres://…`: every row of this store into an empty one, with
//! every id kept (sealed values are bound to their row's identity) and every sealed value byte
//! for byte. The tables and their columns are data here, copied in foreign-key order.

use sqlx::{QueryBuilder, Row};

use super::counted::Counted;
use super::{Db, Engine};

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bytes,
}

use Kind::{Bytes, Int, Text};

/// Tables in an order that satisfies every foreign key, with their columns.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    ("clinics", &[("id", Int), ("name", Text), ("created_at", Int)]),
    ("admins", &[("id", Int), ("clinic_id", Int), ("email", Text), ("password_hash", Text), ("created_at", Int)]),
    (
        "sessions",
        &[
            ("id", Text),
            ("kind", Text),
            ("state", Bytes),
            ("created_at", Int),
            ("idle_expires_at", Int),
            ("admin_id", Int),
        ],
    ),
    (
        "oauth_flows",
        &[
            ("state_hash", Text),
            ("session_binding", Text),
            ("clinic_id", Int),
            ("return_to", Text),
            ("vendor", Text),
            ("environment", Text),
            ("verifier", Bytes),
            ("redirect_uri", Text),
            ("scopes", Text),
            ("expires_at", Int),
        ],
    ),
    (
        "connections",
        &[
            ("id", Int),
            ("clinic_id", Int),
            ("vendor", Text),
            ("environment", Text),
            ("status", Text),
            ("access_token", Bytes),
            ("refresh_token", Bytes),
            ("token_type", Text),
            ("scopes", Text),
            ("expires_at", Int),
            ("account_name", Text),
            ("client_id", Text),
            ("client_secret", Bytes),
            ("parameters", Text),
            ("identity_retry", Int),
            ("refresh_failures", Int),
            ("next_refresh_at", Int),
            ("lease_owner", Text),
            ("lease_until", Int),
            ("version", Int),
            ("connected_at", Int),
            ("updated_at", Int),
            ("trouble", Text),
            ("trouble_detail", Text),
            ("trouble_since", Int),
            ("next_health_at", Int),
        ],
    ),
    (
        "connection_events",
        &[
            ("id", Int),
            ("clinic_id", Int),
            ("vendor", Text),
            ("at", Int),
            ("kind", Text),
            ("detail", Text),
            ("actor", Text),
        ],
    ),
    (
        "pending_revocations",
        &[
            ("id", Int),
            ("ref", Text),
            ("clinic_id", Int),
            ("vendor", Text),
            ("environment", Text),
            ("parameters", Text),
            ("token", Bytes),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("lease_owner", Text),
            ("lease_until", Int),
        ],
    ),
    (
        "api_keys",
        &[
            ("id", Int),
            ("clinic_id", Int),
            ("key_hash", Text),
            ("label", Text),
            ("created_at", Int),
            ("last_used_at", Int),
            ("revoked_at", Int),
        ],
    ),
    ("sign_in_failures", &[("id", Int), ("email_hash", Text), ("client", Text), ("at", Int)]),
    (
        "admin_invitations",
        &[
            ("token_hash", Text),
            ("clinic_id", Int),
            ("email", Text),
            ("invited_by", Int),
            ("created_at", Int),
            ("expires_at", Int),
        ],
    ),
];

/// Rows per `INSERT`: well under PostgreSQL's 65,535 parameters for the widest table.
const ROWS_PER_INSERT: usize = 500;

#[derive(Debug, Clone)]
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// Rows per table in the source and, after the copy, in the target.
#[derive(Debug, Default)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, i64, i64)>,
}

impl CopyReport {
    pub fn matches(&self) -> bool {
        self.tables.iter().all(|(_, source, target)| source == target)
    }
}

impl std::fmt::Display for CopyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (table, source, target) in &self.tables {
            writeln!(f, "{table:<20} {source:>8} rows → {target:>8}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the target database is not empty (table {0} has rows); copy only into an empty database")]
    TargetNotEmpty(&'static str),
    #[error("db copy reads a SQLite database and writes a PostgreSQL one")]
    WrongEngines,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Db {
    /// Every value of every row of every table, concatenated (text as UTF-8, bytes as they are):
    /// what a test searches for plaintext secrets on an engine that has no file to scan.
    pub async fn every_stored_value(&self) -> sqlx::Result<Vec<u8>> {
        let mut all = Vec::new();
        for (table, columns) in TABLES {
            let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
            let select = format!("SELECT {} FROM {table}", names.join(", "));
            on_engine!(self, |pool| {
                for row in sqlx::query(&select).fetch_all(pool).await? {
                    for (name, kind) in *columns {
                        match kind {
                            Int => all.extend(
                                row.try_get::<Option<i64>, _>(*name)?
                                    .map(|v| v.to_string())
                                    .unwrap_or_default()
                                    .bytes(),
                            ),
                            Text => all.extend(row.try_get::<Option<String>, _>(*name)?.unwrap_or_default().bytes()),
                            Bytes => all.extend(row.try_get::<Option<Vec<u8>>, _>(*name)?.unwrap_or_default()),
                        }
                        all.push(0);
                    }
                }
            });
        }
        Ok(all)
    }

    /// Rows in each table, in copy order.
    pub async fn table_counts(&self) -> sqlx::Result<Vec<(&'static str, i64)>> {
        let mut counts = Vec::with_capacity(TABLES.len());
        for (table, _) in TABLES {
            let n: i64 = on_engine!(self, |pool| sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(pool)
                .await)?;
            counts.push((*table, n));
        }
        Ok(counts)
    }

    /// Copies every row of this (SQLite) store into `target` (PostgreSQL, migrated and empty),
    /// in one transaction on the target, then moves the target's id sequences past the copied
    /// ids. The source is read in one read transaction: a consistent snapshot.
    pub async fn copy_to(&self, target: &Db) -> Result<CopyReport, CopyError> {
        let (Engine::Sqlite(source_pool), Engine::Postgres(target_pool)) = (&self.engine, &target.engine) else {
            return Err(CopyError::WrongEngines);
        };
        for (table, n) in target.table_counts().await? {
            if n > 0 {
                return Err(CopyError::TargetNotEmpty(table));
            }
        }
        let mut read = source_pool.begin().await?;
        let mut write = target_pool.begin().await?;
        let mut copied = Vec::with_capacity(TABLES.len());
        for (table, columns) in TABLES {
            let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
            let select = format!("SELECT {} FROM {table} ORDER BY 1", names.join(", "));
            let rows = sqlx::query(&select).fetch_all(Counted::new(&mut *read, &self.statements)).await?;
            copied.push((*table, i64::try_from(rows.len()).unwrap_or(i64::MAX)));
            let mut values = Vec::with_capacity(rows.len());
            for row in &rows {
                let mut record = Vec::with_capacity(columns.len());
                for (name, kind) in *columns {
                    record.push(match kind {
                        Int => Value::Int(row.try_get(*name)?),
                        Text => Value::Text(row.try_get(*name)?),
                        Bytes => Value::Bytes(row.try_get(*name)?),
                    });
                }
                values.push(record);
            }
            for chunk in values.chunks(ROWS_PER_INSERT) {
                let mut insert = QueryBuilder::new(format!("INSERT INTO {table} ({}) ", names.join(", ")));
                insert.push_values(chunk, |mut b, record| {
                    for value in record {
                        match value {
                            Value::Int(v) => b.push_bind(*v),
                            Value::Text(v) => b.push_bind(v.clone()),
                            Value::Bytes(v) => b.push_bind(v.clone()),
                        };
                    }
                });
                insert.build().execute(Counted::new(&mut *write, &target.statements)).await?;
            }
            if matches!(columns.first(), Some(("id", Int))) {
                // Identities go on from the highest copied id.
                sqlx::query(&format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                ))
                .execute(Counted::new(&mut *write, &target.statements))
                .await?;
            }
        }
        write.commit().await?;
        read.commit().await?;
        // The target counted on its own, against what was read from the source's snapshot.
        let in_target = target.table_counts().await?;
        let tables = copied.into_iter().zip(in_target).map(|((table, s), (_, t))| (table, s, t)).collect();
        Ok(CopyReport { tables })
    }
}
