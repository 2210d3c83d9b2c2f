//! The two engines the bench runs on, each time on a fresh database: SQLite in a fresh data
//! folder, PostgreSQL as a fresh `CREATE DATABASE` on a throwaway cluster that the bench starts
//! with `scripts/postgres init` and always destroys (`scripts/postgres destroy`), also when the
//! run fails or panics.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sqlx::Connection;
use tempfile::TempDir;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub const ALL: [Engine; 2] = [Engine::Sqlite, Engine::Postgres];

    /// As `Db::engine` names it, and as the JSON and `BENCH_ENGINES` do.
    pub fn id(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
        }
    }
}

/// A fresh, empty database on one engine: where the app's data folder is, and the URL to give
/// it (`None` for SQLite in that folder, the default).
pub struct FreshDatabase {
    pub data_dir: TempDir,
    pub url: Option<String>,
}

impl FreshDatabase {
    pub async fn new(engine: Engine, cluster: Option<&Cluster>) -> anyhow::Result<Self> {
        // Owner-only, as the app makes a data folder it creates (it warns about any other).
        let data_dir = tempfile::Builder::new().permissions(std::fs::Permissions::from_mode(0o700)).tempdir()?;
        let url = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => {
                let cluster = cluster.ok_or_else(|| anyhow::anyhow!("PostgreSQL without its cluster"))?;
                Some(cluster.fresh_database().await?)
            }
        };
        Ok(Self { data_dir, url })
    }

    pub fn path(&self) -> &Path {
        self.data_dir.path()
    }
}

/// A PostgreSQL cluster of the bench's own, in a folder directly under /tmp (PostgreSQL runs as
/// the `postgres` user when the bench runs as root, and that user must reach it). Dropping it
/// destroys it; it is made before `init` runs, so that a failed `init` is cleaned up too.
pub struct Cluster {
    dir: PathBuf,
    /// The cluster's `postgres` database: where new databases are created from.
    url: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres")
}

impl Cluster {
    /// Installs PostgreSQL if missing (the script does), starts a cluster and returns it. It is
    /// durable (PostgreSQL's own fsync settings: every commit flushed to disk, as SQLite's
    /// `synchronous=FULL`), unlike the tests' cluster, so that the engines are compared fairly.
    pub fn start() -> anyhow::Result<Self> {
        let suffix = clinic_connect::vault::random_token(6)?.replace(['-', '_'], "x");
        let mut cluster =
            Self { dir: PathBuf::from(format!("/tmp/clinic-connect-bench-pg.{suffix}")), url: String::new() };
        let output =
            Command::new(script()).arg("init").arg(&cluster.dir).arg("durable").stderr(Stdio::inherit()).output()?;
        anyhow::ensure!(output.status.success(), "scripts/postgres init failed ({})", output.status);
        let url = String::from_utf8(output.stdout)?;
        cluster.url = url.lines().last().unwrap_or_default().trim().to_owned();
        anyhow::ensure!(cluster.url.starts_with("postgres://"), "scripts/postgres init printed no URL: {url}");
        Ok(cluster)
    }

    /// A new database on the cluster; its URL.
    pub async fn fresh_database(&self) -> anyhow::Result<String> {
        let name = format!("bench_{}", clinic_connect::vault::random_token(9)?.to_lowercase().replace(['-', '_'], "x"));
        let mut admin = sqlx::PgConnection::connect(&self.url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
        admin.close().await?;
        anyhow::ensure!(self.url.contains("/postgres?"), "unexpected cluster URL shape");
        Ok(self.url.replacen("/postgres?", &format!("/{name}?"), 1))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        match Command::new(script()).arg("destroy").arg(&self.dir).stdout(Stdio::null()).status() {
            Ok(status) if status.success() => {}
            Ok(status) => eprintln!("scripts/postgres destroy {} failed ({status})", self.dir.display()),
            Err(e) => eprintln!("scripts/postgres destroy {} did not run: {e}", self.dir.display()),
        }
    }
}
