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
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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

/// The change counter in a stamp: `iChange`, which SQLite adds one to at every commit
/// (native byte order, as the header is a copy of SQLite's own structure).
fn commits(stamp: &Stamp) -> u32 {
    u32::from_ne_bytes([stamp[8], stamp[9], stamp[10], stamp[11]])
}

/// Which database state the caches' entries belong to.
///
/// `stamp` is the last stamp this process has accounted for. A reader that finds another stamp
/// starts a new `epoch`, which invalidates every entry at once: something was committed that this
/// process cannot name (another process's write, or one of its own that did not say what it
/// changed). A write of this process that says what it changed ([`Coherence::own_write`]) keeps
/// the epoch when the counter proves its commit was the only one, and removes just what it changed.
#[derive(Default)]
struct View {
    stamp: Option<Stamp>,
    epoch: u64,
    /// Moves at every such write: a value read before it may be older than the write, and is not
    /// kept.
    writes: u64,
    /// Such writes begun and not yet accounted for. While one is landing, a reader that finds a
    /// new stamp cannot tell yet whether it is only that write: it reads SQLite and keeps nothing,
    /// rather than throwing every entry away.
    landing: u32,
}

impl View {
    /// Takes `stamp` as the current state; a stamp it has not accounted for starts a new epoch.
    /// False while one of this process's writes is landing: the new stamp may be only that write.
    fn catch_up(&mut self, stamp: Stamp) -> bool {
        if self.stamp == Some(stamp) {
            return true;
        }
        if self.landing > 0 {
            return false;
        }
        self.stamp = Some(stamp);
        self.epoch += 1;
        true
    }
}

/// The state of the database an entry was read in, and whether it may still be kept.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Seen {
    epoch: u64,
    writes: u64,
}

#[derive(Default)]
pub struct Coherence {
    view: Mutex<View>,
    /// Told when the last of this process's landing writes has been accounted for.
    settled: tokio::sync::Notify,
}

/// What a reader finds before reading (see [`Coherence::observe_or_landing`]).
pub enum Observation<'a> {
    /// The entries of this state may be served and kept.
    Current(Seen),
    /// The database changed while one of this process's writes is landing: it may be only that
    /// write. The future completes once no write is landing any more.
    Landing(Pin<Box<tokio::sync::futures::Notified<'a>>>),
}

impl Coherence {
    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before a read at `stamp`: what the entries of the current state are marked with; `None`
    /// when the read must go to SQLite and its value must not be kept.
    pub fn observe(&self, stamp: Stamp) -> Option<Seen> {
        match self.observe_or_landing(stamp) {
            Observation::Current(seen) => Some(seen),
            Observation::Landing(_) => None,
        }
    }

    /// [`Coherence::observe`], or a way to wait until the writes landing now are accounted for.
    pub fn observe_or_landing(&self, stamp: Stamp) -> Observation<'_> {
        let mut view = self.view();
        if view.catch_up(stamp) {
            return Observation::Current(Seen { epoch: view.epoch, writes: view.writes });
        }
        // Registered while the view is held, so the write's notice cannot slip past it.
        let mut settled = Box::pin(self.settled.notified());
        settled.as_mut().enable();
        Observation::Landing(settled)
    }

    /// Wakes the readers waiting for the landing writes once none is left (the view held).
    fn settle(&self, view: &View) {
        if view.landing == 0 {
            self.settled.notify_waiters();
        }
    }

    /// After a read: runs `keep` (which stores the value) only if nothing that could make the value
    /// stale has been accounted for since `seen`.
    pub fn keep_if_current(&self, seen: Seen, keep: impl FnOnce()) {
        let view = self.view();
        if view.epoch == seen.epoch && view.writes == seen.writes {
            keep();
        }
    }

    /// Before a write of this process that will say what it changed; `before` is the stamp read
    /// just now. Dropping the result without [`OwnWrite::landed`] (an error, no change, a
    /// cancelled future) leaves any commit to be found by the next reader, like anyone else's.
    pub fn own_write(self: &Arc<Self>, before: Option<Stamp>) -> OwnWrite {
        let Some(before) = before else { return OwnWrite { coherence: self.clone(), before: None } };
        let mut view = self.view();
        view.catch_up(before);
        view.landing += 1;
        OwnWrite { coherence: self.clone(), before: Some(before) }
    }
}

/// A write of this process under way (see [`Coherence::own_write`]).
pub struct OwnWrite {
    coherence: Arc<Coherence>,
    before: Option<Stamp>,
}

impl OwnWrite {
    /// The write committed exactly once, changing only what `account` removes from the caches (or
    /// replaces with what the write itself stored, marked with the [`Seen`] it is given: the
    /// state right after this write); `after` is the stamp read after the commit. When the change
    /// counter moved by exactly one since `before`, that one commit was this write, so every other
    /// entry is still the database's current value. Otherwise someone else committed too, and the
    /// next reader starts a new epoch.
    pub fn landed(mut self, after: Option<Stamp>, account: impl FnOnce(Seen)) {
        let Some(before) = self.before.take() else { return };
        let mut view = self.coherence.view();
        view.landing -= 1;
        if let Some(after) = after {
            if view.stamp == Some(before) && commits(&after) == commits(&before).wrapping_add(1) {
                view.stamp = Some(after);
                view.writes += 1;
                account(Seen { epoch: view.epoch, writes: view.writes });
            }
        }
        self.coherence.settle(&view);
    }
}

impl Drop for OwnWrite {
    fn drop(&mut self) {
        if self.before.take().is_some() {
            let mut view = self.coherence.view();
            view.landing -= 1;
            self.coherence.settle(&view);
        }
    }
}

/// Values read from the database, each marked with the state it was read in.
pub struct ReadCache<K, V> {
    entries: Mutex<HashMap<K, (u64, V)>>,
    limit: usize,
}

impl<K: Hash + Eq, V: Clone> ReadCache<K, V> {
    pub fn new(limit: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), limit }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<K, (u64, V)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, seen: Seen, key: &K) -> Option<V> {
        self.entries().get(key).filter(|(epoch, _)| *epoch == seen.epoch).map(|(_, value)| value.clone())
    }

    pub fn put(&self, seen: Seen, key: K, value: V) {
        let mut entries = self.entries();
        if entries.len() >= self.limit {
            // Entries of an older epoch are dead anyway; if that is not enough, start over.
            entries.retain(|_, (epoch, _)| *epoch == seen.epoch);
            if entries.len() >= self.limit {
                entries.clear();
            }
        }
        entries.insert(key, (seen.epoch, value));
    }

    /// Changes in place what a write of this process changed, when the entry is of `seen`'s
    /// state; drops it otherwise.
    pub fn update(&self, seen: Seen, key: &K, change: impl FnOnce(&mut V)) {
        let mut entries = self.entries();
        match entries.get_mut(key) {
            Some((epoch, value)) if *epoch == seen.epoch => change(value),
            Some(_) => {
                entries.remove(key);
            }
            None => {}
        }
    }

    /// Drops what a write of this process changed.
    pub fn forget(&self, key: &K) {
        self.entries().remove(key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::connections::SealedGrant;
    use super::super::fixtures::{commit_unrelated, flow, grant};
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
        b.touch_session("s1", "admin", 1000, 0).await.unwrap();
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
        assert!(cached_session(&a, "s1"), "the read is kept while nothing changes");
        assert_eq!(a.session("s1", "admin").await.unwrap().unwrap().state, b"first");

        b.update_session("s1", "admin", b"second", 200).await.unwrap();
        let seen = a.session("s1", "admin").await.unwrap().expect("row");
        assert_eq!((seen.state.as_slice(), seen.idle_expires_at), (b"second".as_slice(), 200));

        b.delete_session("s1", "admin").await.unwrap();
        assert!(a.session("s1", "admin").await.unwrap().is_none(), "a session ended elsewhere is gone here");
        assert!(a.session("s1", "patient").await.unwrap().is_none());
    }

    /// Whether `db` would serve session `id` from memory now.
    fn cached_session(db: &Db, id: &str) -> bool {
        let seen = db.coherence.observe(db.stamp().unwrap()).unwrap();
        db.caches.sessions.get(seen, &(id.to_owned(), "admin".to_owned())).is_some()
    }

    #[tokio::test]
    async fn a_write_of_this_process_that_names_what_it_changed_keeps_the_rest() {
        let (_dir, a, _b) = open_two().await;
        let clinic = a.ensure_clinic("c", 1).await.unwrap();
        a.insert_session("s1", "admin", b"first", 1, 100).await.unwrap();
        a.session("s1", "admin").await.unwrap().unwrap();
        assert!(cached_session(&a, "s1"));
        // Flows are read by no cached read: taking one and adding one keep the session.
        a.insert_flow(&flow("h1")).await.unwrap();
        assert!(cached_session(&a, "s1"), "kept across this process's own flow insert");
        assert!(a.take_flow("h1", "binding", "zocdoc").await.unwrap().is_some());
        assert!(cached_session(&a, "s1"), "kept across taking a flow");
        // A history entry in a declared transaction keeps it too.
        a.add_event(clinic, "zocdoc", "connected", "detail", 5).await.unwrap();
        assert!(cached_session(&a, "s1"), "kept across a declared transaction");
        // A session's own write forgets that session alone.
        a.insert_session("s2", "admin", b"other", 1, 100).await.unwrap();
        a.session("s2", "admin").await.unwrap().unwrap();
        a.touch_session("s1", "admin", 500, 0).await.unwrap();
        assert!(!cached_session(&a, "s1"), "the touched session is read again");
        assert!(cached_session(&a, "s2"), "another session is kept");
        assert_eq!(a.session("s1", "admin").await.unwrap().unwrap().idle_expires_at, 500);
        // A write that says nothing of what it changed starts over.
        commit_unrelated(&mut a.fast().await.unwrap(), "h2").await.unwrap();
        assert!(!cached_session(&a, "s2"), "an undeclared write invalidates everything");
        assert_eq!(a.session("s2", "admin").await.unwrap().unwrap().state, b"other");
    }

    #[tokio::test]
    async fn a_session_write_leaves_what_it_wrote_in_the_cache() {
        let (_dir, a, b) = open_two().await;
        a.insert_session("s1", "admin", b"first", 7, 100).await.unwrap();
        assert!(cached_session(&a, "s1"), "an inserted session is served from memory");
        assert!(a.update_session("s1", "admin", b"second", 200).await.unwrap());
        assert!(cached_session(&a, "s1"), "so is an updated one");
        let cached = a.session("s1", "admin").await.unwrap().unwrap();
        let stored = b.session("s1", "admin").await.unwrap().unwrap();
        assert_eq!(
            (cached.state.as_slice(), cached.created_at, cached.idle_expires_at),
            (stored.state.as_slice(), stored.created_at, stored.idle_expires_at),
            "what is cached is what the database holds"
        );
        assert_eq!(
            (cached.state.as_slice(), cached.created_at, cached.idle_expires_at),
            (b"second".as_slice(), 7, 200)
        );
        // A session of the other kind is neither changed nor removed through this one's id.
        assert!(!a.update_session("s1", "patient", b"forged", 300).await.unwrap());
        a.delete_session("s1", "patient").await.unwrap();
        assert_eq!(b.session("s1", "admin").await.unwrap().unwrap().state, b"second");
        a.delete_session("s1", "admin").await.unwrap();
        assert!(a.session("s1", "admin").await.unwrap().is_none(), "a deleted session is gone from memory too");
        assert!(b.session("s1", "admin").await.unwrap().is_none());
        // Removed elsewhere while cached here: the next read sees it gone.
        a.insert_session("s2", "admin", b"x", 1, 100).await.unwrap();
        b.delete_session("s2", "admin").await.unwrap();
        assert!(a.session("s2", "admin").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_declared_write_forgets_what_it_changed() {
        let (_dir, a, _b) = open_two().await;
        let clinic = a.ensure_clinic("c", 1).await.unwrap();
        assert!(a.connection(clinic, "zocdoc").await.unwrap().is_none());
        let mut tx = a.begin().await.unwrap();
        Db::store_grant(
            &mut tx,
            &SealedGrant {
                vendor: "zocdoc",
                access_token: b"sealed-access",
                refresh_token: None,
                ..grant(clinic, b"")
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let row = a
            .connection(clinic, "zocdoc")
            .await
            .unwrap()
            .expect("the stored connection is read, not the cached absence");
        assert_eq!(row.access_token.as_deref(), Some(b"sealed-access".as_slice()));
        assert_eq!(a.connections_of_clinic(clinic).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_declared_write_that_overlaps_a_commit_elsewhere_keeps_nothing() {
        let (_dir, a, b) = open_two().await;
        a.insert_session("s1", "admin", b"first", 1, 100).await.unwrap();
        a.session("s1", "admin").await.unwrap().unwrap();
        assert!(cached_session(&a, "s1"));
        // Another process changes the session while this one inserts a flow.
        let insert = async {
            b.update_session("s1", "admin", b"second", 200).await?;
            commit_unrelated(&mut *a.fast().await?, "h").await?;
            Ok(((), true))
        };
        a.own_write(insert, |_, _, _| {}).await.unwrap();
        assert!(!cached_session(&a, "s1"), "two commits in the window: nothing is kept");
        assert_eq!(a.session("s1", "admin").await.unwrap().unwrap().state, b"second");
    }

    #[tokio::test]
    async fn a_write_that_changed_nothing_claims_no_commit() {
        let (_dir, a, b) = open_two().await;
        a.insert_session("s1", "admin", b"first", 1, 100).await.unwrap();
        a.session("s1", "admin").await.unwrap().unwrap();
        // No such flow: nothing committed here, while another process changes the session.
        let take = async {
            b.update_session("s1", "admin", b"second", 200).await?;
            let mut conn = a.fast().await?;
            let done = sqlx::query("DELETE FROM oauth_flows WHERE state_hash = 'missing'").execute(&mut *conn).await?;
            Ok(((), done.rows_affected() > 0))
        };
        a.own_write(take, |_, _, _| {}).await.unwrap();
        assert_eq!(a.session("s1", "admin").await.unwrap().unwrap().state, b"second");
    }

    #[tokio::test]
    async fn a_reader_that_meets_a_landing_write_neither_keeps_nor_throws_away() {
        let (_dir, a, _b) = open_two().await;
        a.insert_session("s1", "admin", b"first", 1, 100).await.unwrap();
        a.session("s1", "admin").await.unwrap().unwrap();
        let own = a.coherence.own_write(a.stamp());
        commit_unrelated(&mut a.fast().await.unwrap(), "h").await.unwrap();
        // Committed, not yet accounted for: a reader goes to SQLite and keeps nothing.
        assert!(a.coherence.observe(a.stamp().unwrap()).is_none());
        own.landed(a.stamp(), |_| {});
        assert!(cached_session(&a, "s1"), "the session survives the write once it is accounted for");
    }

    #[tokio::test]
    async fn a_reader_that_meets_a_landing_write_waits_for_it_then_reads_from_memory() {
        let (_dir, a, _b) = open_two().await;
        a.insert_session("s1", "admin", b"first", 1, 100).await.unwrap();
        let own = a.coherence.own_write(a.stamp());
        commit_unrelated(&mut a.fast().await.unwrap(), "h").await.unwrap();
        let before = a.cached_read_counts();
        let land = async {
            tokio::task::yield_now().await;
            own.landed(a.stamp(), |_| {});
        };
        let (row, ()) = futures_util::future::join(a.session("s1", "admin"), land).await;
        assert_eq!(row.unwrap().unwrap().state, b"first");
        let after = a.cached_read_counts();
        assert_eq!((after.0 - before.0, after.1 - before.1), (1, 0), "served from memory once the write landed");

        // A write that does not land in time: the reader goes to SQLite, and keeps nothing.
        let own = a.coherence.own_write(a.stamp());
        commit_unrelated(&mut a.fast().await.unwrap(), "h2").await.unwrap();
        let before = a.cached_read_counts();
        assert_eq!(a.session("s1", "admin").await.unwrap().unwrap().state, b"first");
        let after = a.cached_read_counts();
        assert_eq!((after.0 - before.0, after.1 - before.1), (0, 1));
        drop(own);
        assert!(a.coherence.observe(a.stamp().unwrap()).is_some(), "a dropped write settles the view");
    }

    #[tokio::test]
    async fn a_value_read_before_a_declared_write_is_not_kept_after_it() {
        let (_dir, a, _b) = open_two().await;
        let seen = a.coherence.observe(a.stamp().unwrap()).unwrap();
        // A read is under way (it saw `seen`) when this process's declared write lands.
        a.insert_flow(&flow("h1")).await.unwrap();
        a.coherence.keep_if_current(seen, || a.caches.admins.put(seen, 7, None));
        let now = a.coherence.observe(a.stamp().unwrap()).unwrap();
        assert!(a.caches.admins.get(now, &7).is_none(), "it may predate the write");
    }

    #[tokio::test]
    async fn a_stored_grant_and_its_history_are_cached_as_the_database_holds_them() {
        let (_dir, a, b) = open_two().await;
        let clinic = a.ensure_clinic("c", 1).await.unwrap();
        a.store_connected(&grant(clinic, b"first"), "connected", "one").await.unwrap();
        // Read once: the history is now held.
        assert_eq!(a.events(clinic, "drchrono").await.unwrap().len(), 1);
        a.store_connected(&grant(clinic, b"second"), "connected", "two").await.unwrap();
        let seen = a.coherence.observe(a.stamp().unwrap()).unwrap();
        let key = (clinic, "drchrono".to_owned());
        let cached_row = a.caches.connections.get(seen, &key).expect("the stored row is held").expect("a row");
        let cached_history = a.caches.history.get(seen, &key).expect("the history is held, with the new entry");
        let stored_row = b.connection(clinic, "drchrono").await.unwrap().unwrap();
        assert_eq!(cached_row.access_token.as_deref(), Some(b"second".as_slice()));
        assert_eq!(
            (cached_row.id, cached_row.version, cached_row.access_token, cached_row.updated_at),
            (stored_row.id, stored_row.version, stored_row.access_token, stored_row.updated_at),
            "the row held is the row stored"
        );
        let stored_history = b.events(clinic, "drchrono").await.unwrap();
        let details = |events: &[super::super::connections::EventRow]| {
            events.iter().map(|e| (e.at, e.kind.clone(), e.detail.clone())).collect::<Vec<_>>()
        };
        assert_eq!(details(&cached_history), details(&stored_history));
        assert_eq!(details(&cached_history)[0].2, "two", "newest first");
        // A history entry written in a transaction is read again afterwards.
        a.add_event(clinic, "drchrono", "identified", "three", 11).await.unwrap();
        let seen = a.coherence.observe(a.stamp().unwrap()).unwrap();
        assert!(a.caches.history.get(seen, &key).is_none(), "forgotten by the transaction that wrote it");
        assert_eq!(a.events(clinic, "drchrono").await.unwrap()[0].detail, "three");
        // Another process's entry is seen too.
        b.add_event(clinic, "drchrono", "identified", "four", 12).await.unwrap();
        assert_eq!(a.events(clinic, "drchrono").await.unwrap()[0].detail, "four");
    }

    #[test]
    fn a_history_is_kept_to_what_is_shown() {
        let coherence = super::Coherence::default();
        let cache = super::ReadCache::<i64, Vec<i64>>::new(3);
        let seen = coherence.observe([1u8; super::HEADER]).unwrap();
        cache.put(seen, 1, (0..50).collect());
        cache.update(seen, &1, |v| {
            v.insert(0, 99);
            v.truncate(50);
        });
        let held = cache.get(seen, &1).unwrap();
        assert_eq!((held.len(), held[0], held[49]), (50, 99, 48));
        let later = coherence.observe([2u8; super::HEADER]).unwrap();
        cache.update(later, &1, |v| v.clear());
        assert!(cache.get(seen, &1).is_none(), "an entry of another state is dropped, not changed");
    }

    #[test]
    fn the_cache_is_bounded() {
        let coherence = super::Coherence::default();
        let cache = super::ReadCache::<i64, i64>::new(3);
        let old = coherence.observe([1u8; super::HEADER]).unwrap();
        for key in 0..3 {
            cache.put(old, key, key);
        }
        let new = coherence.observe([2u8; super::HEADER]).unwrap();
        cache.put(new, 3, 3);
        assert_eq!(cache.entries.lock().unwrap().len(), 1, "stale entries go first");
        assert_eq!(cache.get(new, &3), Some(3));
        assert_eq!(cache.get(old, &3), None, "a value is only served in its own epoch");
    }

    #[test]
    fn the_change_counter_is_read_from_the_header() {
        let mut stamp = [0u8; super::HEADER];
        stamp[8..12].copy_from_slice(&41u32.to_ne_bytes());
        assert_eq!(super::commits(&stamp), 41);
    }
}
