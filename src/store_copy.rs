//! `clinic-connect db copy --to postgres://…`: moving up from the embedded SQLite database to
//! PostgreSQL without starting over. Every row is copied into an empty database with its id (the
//! store does that, `Db::copy_to`), the counts are compared table by table, and a sample of every
//! sealed column is opened with the keyring, under the row identity it is bound to, to prove the
//! copy is usable before anyone points an instance at it.

use anyhow::{bail, Context};

use crate::connections::connection_binding;
use crate::db::copy::CopyReport;
use crate::db::{Config, Db};
use crate::session::store::session_binding;
use crate::vault::{Binding, Vault};

/// Rows of each sealed table whose records are opened after the copy.
const SAMPLE: usize = 25;

/// What was copied and what was checked.
pub struct Copied {
    pub report: CopyReport,
    /// Sealed records opened in the target.
    pub opened: usize,
}

pub async fn copy(source: &Db, target: &Config, vault: &Vault) -> anyhow::Result<Copied> {
    if source.engine() != "sqlite" {
        bail!("db copy reads the SQLite database; CLINIC_CONNECT_DATABASE_URL points elsewhere");
    }
    let target = Db::open(target).await.context("cannot open the target database")?;
    if target.engine() != "postgres" {
        bail!("db copy writes a PostgreSQL database: --to must be a postgres:// URL");
    }
    let report = source.copy_to(&target).await?;
    if !report.matches() {
        bail!("the row counts differ after the copy:\n{report}");
    }
    let opened = open_samples(&target, vault).await?;
    target.close().await;
    Ok(Copied { report, opened })
}

/// Spread over the rows: the first, the last, and evenly between.
fn sample<T>(rows: &[T]) -> impl Iterator<Item = &T> {
    let step = rows.len().div_ceil(SAMPLE).max(1);
    let last_missed = rows.len() > 1 && (rows.len() - 1) % step != 0;
    rows.iter().step_by(step).chain(rows.last().filter(|_| last_missed))
}

/// Opens a sample of every sealed column in `db`; how many records opened. Any that does not
/// open is an error naming its table and column (never its value).
async fn open_samples(db: &Db, vault: &Vault) -> anyhow::Result<usize> {
    let mut opened = 0;
    let mut open = |record: &[u8], binding: &Binding, what: &str| -> anyhow::Result<()> {
        vault.open(record, binding).with_context(|| format!("a copied {what} does not open"))?;
        opened += 1;
        Ok(())
    };
    let connections = db.sealed_connections().await?;
    for row in sample(&connections) {
        for (column, record) in [
            ("access_token", &row.access_token),
            ("refresh_token", &row.refresh_token),
            ("client_secret", &row.client_secret),
        ] {
            if let Some(record) = record {
                open(
                    record,
                    &connection_binding(row.clinic_id, &row.vendor, column),
                    &format!("connections.{column}"),
                )?;
            }
        }
    }
    let sessions = db.sealed_sessions().await?;
    for (id, kind, state) in sample(&sessions) {
        open(state, &session_binding(id, kind), "sessions.state")?;
    }
    let flows = db.sealed_flows().await?;
    for (hash, verifier) in sample(&flows) {
        open(verifier, &Binding::new("oauth_flows", hash, "verifier"), "oauth_flows.verifier")?;
    }
    let revocations = db.sealed_revocations().await?;
    for (_, reference, token) in sample(&revocations) {
        open(token, &crate::revocation::binding(reference), "pending_revocations.token")?;
    }
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn the_sample_spreads_over_the_rows_and_keeps_both_ends() {
        let rows: Vec<usize> = (0..1000).collect();
        let picked: Vec<usize> = sample(&rows).copied().collect();
        assert!(picked.len() <= super::SAMPLE + 1);
        assert_eq!((picked[0], *picked.last().unwrap_or(&0)), (0, 999));
        let few: Vec<usize> = sample(&rows[..3]).copied().collect();
        assert_eq!(few, [0, 1, 2]);
        assert!(sample::<usize>(&[]).next().is_none());
    }
}
