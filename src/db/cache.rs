//! Reads that skip SQLite while the database has not changed — in this process or any other.
//!
//! Every statement through sqlx's SQLite driver is a round trip to the connection's own thread,
//! and on a busy page those hand-offs cost more than everything else together. The reads every
//! request makes (its session, its admin, its clinic's connections, an API key) are therefore
//! kept in memory, each with the database's *change stamp* of the moment before it was read, and
//! served again only while that stamp is unchanged.
//!
//! The stamp is the WAL-index header: the first 48 bytes of the `-shm` file, kept twice in a row
//! (<https://www.sqlite.org/walformat.html>, "The WAL-Index Header"). It is how every SQLite
//! connection, in every process, learns of others' commits: each commit appends frames to the WAL
//! and rewrites the header (`mxFrame`, `iChange`, the checksums; a WAL restart changes the
//! salts). So "the header is what it was before the read" means "nothing was committed since",
//! and a value read after that moment is still the database's current value. A torn read (a
//! commit in progress) shows two different copies and is treated as a change. Entries hold what
//! the database holds — sealed records, never a plaintext secret.
//!
//! The `-shm` file lives as long as one connection to the database is open anywhere; SQLite only
//! truncates or deletes it when it finds no other user. A dedicated connection (`keeper`) is held
//! open for that reason for as long as the stamps are read.

use std::collections::HashMap;
use std::fs::File;
use std::hash::Hash;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

const HEADER: usize = 48;

/// The database's change stamp at one moment.
pub type Stamp = [u8; HEADER];

pub struct ChangeStamps {
    shm: File,
    keeper: Mutex<Option<SqliteConnection>>,
    open: AtomicBool,
}

impl ChangeStamps {
    /// Opens the keeper connection and the `-shm` file; `None` (every read then goes to SQLite)
    /// when the database is not in WAL mode or its header cannot be read.
    pub async fn open(path: &Path, options: &SqliteConnectOptions) -> Option<Self> {
        let mut keeper = options.connect().await.ok()?;
        // A first read maps the wal-index and takes SQLite's shared hold on it.
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sqlite_master").fetch_one(&mut keeper).await.ok()?;
        // SQLite names the file after the database's resolved path.
        let mut shm_path = std::fs::canonicalize(path).ok()?.into_os_string();
        shm_path.push("-shm");
        let shm = File::open(&shm_path).ok()?;
        let stamps = Self { shm, keeper: Mutex::new(Some(keeper)), open: AtomicBool::new(true) };
        stamps.stamp()?;
        Some(stamps)
    }

    /// The current stamp, or `None` while a commit is being published (or after `close`).
    pub fn stamp(&self) -> Option<Stamp> {
        if !self.open.load(Ordering::Acquire) {
            return None;
        }
        let mut both = [0u8; 2 * HEADER];
        self.shm.read_exact_at(&mut both, 0).ok()?;
        let (first, second) = both.split_at(HEADER);
        // Byte 12 is `isInit`: a header SQLite has not (re)built yet says nothing.
        if first != second || first[12] != 1 {
            return None;
        }
        first.try_into().ok()
    }

    pub async fn close(&self) {
        self.open.store(false, Ordering::Release);
        let keeper = self.keeper.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(keeper) = keeper {
            let _ = keeper.close().await;
        }
    }
}

/// Values read from the database, each with the stamp of the moment before it was read.
pub struct ReadCache<K, V> {
    entries: Mutex<HashMap<K, (Stamp, V)>>,
    limit: usize,
}

impl<K: Hash + Eq, V: Clone> ReadCache<K, V> {
    pub fn new(limit: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), limit }
    }

    pub fn get(&self, stamp: &Stamp, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).filter(|(at, _)| at == stamp).map(|(_, value)| value.clone())
    }

    pub fn put(&self, stamp: Stamp, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.limit {
            // Everything in it is as old as the last commit anyway: start over.
            entries.retain(|_, (at, _)| *at == stamp);
            if entries.len() >= self.limit {
                entries.clear();
            }
        }
        entries.insert(key, (stamp, value));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::Db;

    async fn open_two() -> (tempfile::TempDir, Db, Db) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        let a = Db::open(&path).await.unwrap();
        let b = Db::open(&path).await.unwrap();
        (dir, a, b)
    }

    #[tokio::test]
    async fn the_stamp_moves_with_every_commit_and_only_then() {
        let (_dir, a, b) = open_two().await;
        let stamps = a.stamps.as_ref().expect("a WAL database has a change stamp");
        let before = stamps.stamp().unwrap();
        a.session("x", "admin").await.unwrap();
        assert_eq!(stamps.stamp().unwrap(), before, "a read commits nothing");
        b.insert_session("s1", "admin", b"sealed", 1, 100).await.unwrap();
        let after_insert = stamps.stamp().unwrap();
        assert_ne!(after_insert, before, "another handle's commit is seen");
        b.touch_session("s1", 1000, 0).await.unwrap();
        assert_ne!(stamps.stamp().unwrap(), after_insert);
        b.close().await;
        a.close().await;
        assert!(stamps.stamp().is_none(), "no stamp once closed");
    }

    #[tokio::test]
    async fn a_cached_read_never_outlives_a_change_made_elsewhere() {
        let (_dir, a, b) = open_two().await;
        a.insert_session("s1", "admin", b"first", 1, 100).await.unwrap();
        let first = a.session("s1", "admin").await.unwrap().expect("row");
        assert_eq!(first.state, b"first");
        let stamp = a.stamps.as_ref().unwrap().stamp().unwrap();
        assert!(
            a.caches.sessions.get(&stamp, &("s1".to_owned(), "admin")).is_some(),
            "the read is kept while nothing changes"
        );
        assert_eq!(a.session("s1", "admin").await.unwrap().unwrap().state, b"first");

        b.update_session("s1", b"second", 200).await.unwrap();
        let seen = a.session("s1", "admin").await.unwrap().expect("row");
        assert_eq!((seen.state.as_slice(), seen.idle_expires_at), (b"second".as_slice(), 200));

        b.delete_session("s1").await.unwrap();
        assert!(a.session("s1", "admin").await.unwrap().is_none(), "a session ended elsewhere is gone here");
        assert!(a.session("s1", "patient").await.unwrap().is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = super::ReadCache::<i64, i64>::new(3);
        let (old, new) = ([1u8; super::HEADER], [2u8; super::HEADER]);
        for key in 0..3 {
            cache.put(old, key, key);
        }
        cache.put(new, 3, 3);
        assert_eq!(cache.entries.lock().unwrap().len(), 1, "stale entries go first");
        assert_eq!(cache.get(&new, &3), Some(3));
        assert_eq!(cache.get(&old, &3), None, "a value is only served under its own stamp");
    }
}
