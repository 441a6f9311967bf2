//! The embedded sled backend: one database for the index, one for user data.
//!
//! sled is beta software (its README says so), and measured here it does not
//! report damage as an error: a damaged file either panics while opening or
//! opens as an empty or shorter database. So the store checks for itself:
//! opening runs under `catch_unwind`, and both databases carry the same
//! **index epoch** (a random id written when the index is created). An index
//! that panics, reports corruption, or has lost its epoch is moved aside
//! (`index.corrupt-<time>`) and started afresh; without checkpoints, the next
//! sync of every collection is a full one, which rebuilds it from the sources.
//! An index that recovered an older consistent state keeps its epoch and its
//! (older) checkpoints, and the next syncs bring it forward. Damage sled
//! reports later, while running (a bad page read during a sync or a lookup),
//! is handled the same way without a restart (`repair.rs`). User data is never
//! moved: damage there is an error telling the admin to restore a backup
//! (`contactbridge backup` / `restore`).
//!
//! A full disk must not cost user data: a sync refuses to grow the index once
//! the file system has less than [`StoreOptions::reserve_bytes`] free, and
//! opening removes the incomplete snapshot files a full disk leaves behind.

mod accounts;
mod api_keys;
mod backend;
mod backup;
pub(in crate::store) mod calls;
pub(in crate::store) mod entry;
pub(in crate::store) mod index;
mod repair;
mod upgrade;
pub(in crate::store) mod users;
mod web_tokens;

pub use crate::store::UserDataExport;
pub use index::IndexBytes;

use super::{Result, StoreError};
use std::path::{Path, PathBuf};

/// The sled store. Cheap to clone (sled handles are reference-counted).
#[derive(Clone)]
pub struct SledStore {
    /// The index, replaced whole when damage is found while running.
    index: std::sync::Arc<repair::LiveIndex>,
    users: sled::Tree,
    calls: std::sync::Arc<calls::CallJournal>,
    /// Decoded profiles, so a lookup does not parse JSON; kept in step by
    /// every write of user data in this process (the only writer: sled locks
    /// the database to one process).
    profiles:
        std::sync::Arc<std::sync::RwLock<std::collections::HashMap<crate::model::UserId, crate::model::UserProfile>>>,
    users_db: sled::Db,
    dir: PathBuf,
}

/// How the sled store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// sled's page cache for the index, in bytes (default 64 MiB; sled's own
    /// default is 1 GiB, which a server then holds: BENCHMARKS.md, "Store size").
    /// The user-data database gets an eighth of it, between 16 and 128 MiB.
    pub cache_bytes: u64,
    /// How often the call journal is synced to disk when something was
    /// written: what a machine crash may lose (a process crash loses nothing;
    /// see the `calls` module).
    pub call_sync_interval: std::time::Duration,
    /// Free space (bytes) on the data directory's file system that index
    /// syncs leave to user data: below it a sync is refused, while user data
    /// (profiles, call records) may still be written.
    pub reserve_bytes: u64,
}

impl StoreOptions {
    /// The default page cache, in MiB (`[store] cache_mb`).
    pub const DEFAULT_CACHE_MB: u64 = 64;
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: Self::DEFAULT_CACHE_MB * 1024 * 1024,
            call_sync_interval: std::time::Duration::from_millis(200),
            reserve_bytes: Self::DEFAULT_RESERVE_BYTES,
        }
    }
}

impl StoreOptions {
    /// The default [`StoreOptions::reserve_bytes`]: 256 MiB.
    pub const DEFAULT_RESERVE_BYTES: u64 = 256 << 20;

    fn users_cache_bytes(&self) -> u64 {
        (self.cache_bytes / 8).clamp(16 << 20, 128 << 20)
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir` with default options.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, &StoreOptions::default())
    }

    /// Opens (or creates) the store in `dir`.
    pub fn open_with(dir: &Path, options: &StoreOptions) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| other("creating the data directory", e))?;
        let users_path = dir.join("users");
        let users_db = open_db_guarded(&users_path, options.users_cache_bytes()).map_err(|e| match e {
            e @ sled::Error::Corruption { .. } => damaged_user_data(&users_path, &e),
            other => open_error(&users_path, other),
        })?;
        let index_path = dir.join("index");
        let users_tree = users_db.open_tree("users").map_err(|e| backend("opening the users tree", e))?;
        let expected_epoch = users_tree.get(USERS_EPOCH_KEY).map_err(|e| backend("reading the index epoch", e))?;
        let index_db = match open_db_guarded(&index_path, options.cache_bytes) {
            Ok(db) => {
                let epoch = db
                    .open_tree("index")
                    .and_then(|t| t.get(INDEX_EPOCH_KEY))
                    .map_err(|e| backend("reading the index epoch", e))?;
                if expected_epoch.is_none() && epoch.is_some() && users_tree.is_empty() {
                    return Err(StoreError::Damaged {
                        what: "user data",
                        reason: format!(
                            "{} opened empty although the index was built for it (sled reads some damaged files \
                             as empty); restore a backup with `contactbridge restore <backup file>` (to start \
                             without user data instead, remove the index directory too)",
                            users_path.display()
                        ),
                    });
                }
                match (&expected_epoch, epoch) {
                    (Some(expected), Some(found)) if *expected != found => Some("it belongs to another installation"),
                    (Some(_), None) => Some("it lost its records (sled opened it as empty)"),
                    _ => None,
                }
                .map_or(Ok(db), |why| {
                    tracing::error!(reason = why, "index damaged");
                    Err(sled::Error::Corruption { at: None, bt: () })
                })
            }
            Err(e) => Err(e),
        };
        let (index_db, replaced) = match index_db {
            Err(e @ sled::Error::Corruption { .. }) => {
                let aside = move_aside(&index_path, &e)?;
                tracing::error!(moved_to = %aside.display(), "index damaged; moved aside, every collection syncs again to rebuild it");
                (open_db(&index_path, options.cache_bytes).map_err(|e| open_error(&index_path, e))?, true)
            }
            other => (other.map_err(|e| open_error(&index_path, e))?, false),
        };
        let journal = calls::CallJournal::open(&dir.join("calls"), options.call_sync_interval)?;
        let store = Self::from_dbs(index_db, users_db, journal, dir.to_path_buf(), options)?;
        store.stamp_epoch(expected_epoch, replaced)?;
        // Calls that an earlier version kept in the user database. If the journal cannot be written
        // (a full disk), the bridge still starts: they stay there, unseen, until an open succeeds.
        if let Err(e) = calls::migrate::from_users_tree(&store.users, &store.calls) {
            tracing::error!(error = %e, "moving call records into the call journal failed; they stay in the user database and are not shown until it succeeds");
        }
        Ok(store)
    }

    /// A store in a fresh temporary directory (for tests and benchmarks).
    pub fn temporary() -> Result<Self> {
        let db = |name| sled::Config::new().temporary(true).open().map_err(|e| backend(name, e));
        let (index_db, users_db) = (db("opening a temporary index")?, db("opening temporary user data")?);
        Self::from_dbs(
            index_db,
            users_db,
            calls::CallJournal::temporary()?,
            PathBuf::new(),
            &StoreOptions { reserve_bytes: 0, ..StoreOptions::default() },
        )
    }

    fn from_dbs(
        index_db: sled::Db,
        users_db: sled::Db,
        calls: calls::CallJournal,
        dir: PathBuf,
        options: &StoreOptions,
    ) -> Result<Self> {
        let users = users_db.open_tree("users").map_err(|e| backend("opening the users tree", e))?;
        let index = repair::IndexDb::new(index_db)?;
        let live = repair::LiveIndex::new(index, (!dir.as_os_str().is_empty()).then(|| dir.join("index")), options);
        let store = Self {
            index: std::sync::Arc::new(live),
            users,
            calls: std::sync::Arc::new(calls),
            profiles: Default::default(),
            users_db,
            dir,
        };
        store.upgrade()?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<()> {
        self.calls.flush()?;
        self.index.current().db.flush().map_err(|e| backend("flushing the index", e))?;
        self.users_db.flush().map_err(|e| backend("flushing user data", e))?;
        Ok(())
    }

    /// Bytes on disk of both databases and the call journal.
    pub fn size_on_disk(&self) -> u64 {
        self.index.current().db.size_on_disk().unwrap_or(0)
            + self.users_db.size_on_disk().unwrap_or(0)
            + self.calls.size()
    }

    /// Replaces all user data with a backup's content in a running store; its
    /// calls go into the call journal. Not atomic across the two: the journal is
    /// replaced first, and a restore interrupted by a crash is run again.
    /// (`contactbridge restore` uses [`SledStore::restore_user_data`], which
    /// does not open the user data it replaces.)
    pub fn import_user_data(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let calls = calls::migrate::calls_in(entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))?;
        self.calls.replace_all(&calls)?;
        self.profiles.write().expect("profile cache lock").clear();
        self.users.clear().map_err(|e| backend("clearing user data", e))?;
        let mut batch = sled::Batch::default();
        for (k, v) in entries.iter().filter(|(k, _)| !calls::migrate::is_call_entry(k)) {
            batch.insert(k.as_slice(), v.as_slice());
        }
        self.users.apply_batch(batch).map_err(|e| backend("restoring user data", e))?;
        self.flush()
    }
}

/// How long opening waits for a previous holder to release a database: sled's
/// background threads keep its file lock a moment after the last handle is
/// dropped, and a restarting bridge may still be shutting down.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

fn open_db(path: &Path, cache_bytes: u64) -> std::result::Result<sled::Db, sled::Error> {
    remove_incomplete_snapshots(path)?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled::Config::new().path(path).mode(sled::Mode::LowSpace).cache_capacity(cache_bytes).open() {
            Err(sled::Error::Io(io)) if is_lock_error(&io) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn is_lock_error(io: &std::io::Error) -> bool {
    io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock")
}

/// Removes the `snap.<lsn>.generating` files of a database. sled (0.34.7,
/// `pagecache/snapshot.rs`) writes a snapshot only while opening: to
/// `snap.<lsn>.generating`, synced, then renamed to `snap.<lsn>` (the rename
/// is the commit), and only after that rename are older snapshots removed.
/// A `.generating` file is therefore one whose opening failed before the
/// commit (a full disk leaves it empty), and the database is whole without
/// it: the previous snapshot and the log are still there (a snapshot only
/// shortens the replay of the log). sled itself would take it for the newest
/// snapshot, and report the database as corrupt when it is incomplete.
fn remove_incomplete_snapshots(path: &Path) -> std::result::Result<(), sled::Error> {
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            tracing::warn!(file = %entry.path().display(), bytes, "removing an incomplete sled snapshot (left by a failed open, e.g. on a full disk)");
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Moves a damaged database aside (`<name>.corrupt-<time>`) for inspection.
fn move_aside(path: &Path, why: &dyn std::fmt::Display) -> Result<PathBuf> {
    let name = path.file_name().map_or_else(|| "db".into(), |n| n.to_string_lossy().into_owned());
    let aside = path.with_file_name(format!("{name}.corrupt-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")));
    tracing::error!(error = %why, path = %path.display(), moved_to = %aside.display(), "moving a damaged database aside");
    std::fs::rename(path, &aside).map_err(|e| other("moving a damaged database aside", e))?;
    Ok(aside)
}

fn damaged_user_data(path: &Path, e: &sled::Error) -> StoreError {
    StoreError::Damaged {
        what: "user data",
        reason: format!(
            "{} could not be read ({}); restore a backup with `contactbridge restore <backup file>`",
            path.display(),
            describe(e)
        ),
    }
}

/// sled's error in words (its own text for damage prints a backtrace field,
/// and an I/O error's "IO error: " prefix says nothing the cause does not).
pub(super) fn describe(e: &sled::Error) -> String {
    match e {
        sled::Error::Corruption { at: Some(at), .. } => format!("sled found damaged data ({at:?})"),
        sled::Error::Corruption { at: None, .. } => "sled found damaged data".into(),
        sled::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// Opens a database, turning a panic inside sled (its answer to some damaged
/// files) into a corruption error.
fn open_db_guarded(path: &Path, cache_bytes: u64) -> std::result::Result<sled::Db, sled::Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| open_db(path, cache_bytes)))
        .unwrap_or(Err(sled::Error::Corruption { at: None, bt: () }))
}

/// The index epoch, in the index tree (prefix `~` is used by nothing else).
const INDEX_EPOCH_KEY: &[u8] = b"~epoch";
/// The epoch of the index these user data belong with, in the users tree.
const USERS_EPOCH_KEY: &[u8] = b"~index-epoch";

impl SledStore {
    /// Makes both databases carry the index's epoch, creating one for a new
    /// index; `replaced`: the index is a fresh one in place of a damaged one.
    fn stamp_epoch(&self, expected: Option<sled::IVec>, replaced: bool) -> Result<()> {
        let index = self.index.current();
        let epoch = match index.index.get(INDEX_EPOCH_KEY).map_err(|e| backend("reading the index epoch", e))? {
            Some(e) => e,
            None => {
                let e = sled::IVec::from(uuid::Uuid::new_v4().as_bytes().as_slice());
                index.index.insert(INDEX_EPOCH_KEY, e.clone()).map_err(|e| backend("writing the index epoch", e))?;
                // A new index (also one replacing a damaged index while running) is of this format.
                index
                    .index
                    .insert(upgrade::INDEX_FORMAT_KEY, upgrade::INDEX_FORMAT)
                    .map_err(|e| backend("writing the index format", e))?;
                e
            }
        };
        if replaced {
            index.mark_rebuilding()?;
        }
        self.index.set_rebuilding(index.is_rebuilding()?);
        if expected.as_ref() != Some(&epoch) {
            self.users.insert(USERS_EPOCH_KEY, epoch).map_err(|e| backend("writing the index epoch", e))?;
        }
        self.flush()
    }
}

fn open_error(path: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) if is_lock_error(&io) => StoreError::Locked { path: path.display().to_string() },
        other => StoreError::Backend {
            doing: "opening the database",
            cause: format!("{}: {}", path.display(), describe(&other)).into(),
        },
    }
}

/// A sled failure while doing something.
pub(super) fn backend(doing: &'static str, e: sled::Error) -> StoreError {
    StoreError::Backend { doing, cause: Box::new(SledFailure(e)) }
}

/// Any other failure of the backend.
pub(super) fn other(doing: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend { doing, cause: Box::new(e) }
}

/// sled's error in words: see [`describe`].
#[derive(Debug)]
pub(super) struct SledFailure(pub(super) sled::Error);

impl std::fmt::Display for SledFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe(&self.0))
    }
}

impl std::error::Error for SledFailure {}

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod tests;
