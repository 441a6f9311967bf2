//! Damage found while running, and the space kept for user data.
//!
//! Every index operation goes through [`SledStore::read_index`] or
//! [`SledStore::write_index`], the one place where sled's errors arrive. When
//! sled reports damage there (a page that fails its checksum, a file it cannot
//! read), the index is handled as on open: moved aside (`index.corrupt-<time>`),
//! a fresh one opened in its place without a restart, the epoch stamped
//! anew, the index marked as rebuilding (`~rebuilding`, so a restart keeps
//! asking), and [`IndexStore::index_replacements`] changes, which `serve`'s
//! scheduler answers with an immediate sync of every account. A lookup that
//! met the damage is answered again from the fresh index; the sync that met
//! it fails and runs again. Lookups say `index_rebuilding` in their decision
//! until that resync has finished ([`IndexStore::index_rebuilt`]).
//!
//! A sync that began on the old index must not continue into the fresh one:
//! its checkpoint and the versions it was told the index holds are gone. So
//! a fresh index accepts a collection's change sets only after its state was
//! read from it again (the sync engine reads it when a sync starts).
//!
//! Errors decoding a value are not damage in this sense (the value may come
//! from a newer version), and damage in user data is never moved aside: it
//! is an error for the admin (restore a backup).

use super::{backend, describe, move_aside, open_db, SledStore};
use crate::model::BusySpan;
use crate::model::UserId;
use crate::store::{
    ApplyStats, CollectionScope, CollectionState, IndexBatch, IndexStore, RecordRef, Result, StoreError, StoredContact,
    TimeWindow,
};
use chrono::{DateTime, Utc};
use contactbridge_connector::{CalendarEvent, Document, MailMessage, OutOfOffice, RecordId};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Present in an index that is being rebuilt from the sources.
const REBUILDING_KEY: &[u8] = b"~rebuilding";

/// One index database.
pub(super) struct IndexDb {
    pub(super) index: sled::Tree,
    pub(super) db: sled::Db,
    /// In an index that replaced a damaged one while running: the collections
    /// whose state was read from it, the only ones it accepts change sets for.
    fence: Option<Mutex<HashSet<CollectionScope>>>,
}

impl IndexDb {
    pub(super) fn new(db: sled::Db) -> Result<Self> {
        let index = db.open_tree("index").map_err(|e| backend("opening the index tree", e))?;
        Ok(Self { index, db, fence: None })
    }

    pub(super) fn mark_rebuilding(&self) -> Result<()> {
        self.index.insert(REBUILDING_KEY, &[]).map_err(|e| backend("marking the index as rebuilding", e))?;
        Ok(())
    }

    pub(super) fn is_rebuilding(&self) -> Result<bool> {
        self.index.contains_key(REBUILDING_KEY).map_err(|e| backend("reading the index's state", e))
    }
}

/// The index in use, and what replaced it.
pub(super) struct LiveIndex {
    current: RwLock<Arc<IndexDb>>,
    /// Where the index lives; `None` for a temporary store.
    path: Option<PathBuf>,
    cache_bytes: u64,
    /// See [`super::StoreOptions::reserve_bytes`].
    reserve_bytes: u64,
    rebuilding: AtomicBool,
    replacements: tokio::sync::watch::Sender<u64>,
}

impl LiveIndex {
    pub(super) fn new(index: IndexDb, path: Option<PathBuf>, options: &super::StoreOptions) -> Self {
        Self {
            current: RwLock::new(Arc::new(index)),
            path,
            cache_bytes: options.cache_bytes,
            reserve_bytes: options.reserve_bytes,
            rebuilding: AtomicBool::new(false),
            replacements: tokio::sync::watch::Sender::new(0),
        }
    }

    pub(super) fn current(&self) -> Arc<IndexDb> {
        self.current.read().expect("index lock").clone()
    }

    pub(super) fn set_rebuilding(&self, on: bool) {
        self.rebuilding.store(on, Ordering::Relaxed);
    }

    /// Refuses a sync when the file system is too full (see the module docs).
    fn check_space(&self) -> Result<()> {
        let Some(dir) = self.path.as_ref().and_then(|p| p.parent()) else { return Ok(()) };
        if self.reserve_bytes == 0 {
            return Ok(());
        }
        let free = free_bytes(dir).map_err(|e| super::other("reading the free space", e))?;
        if free < self.reserve_bytes {
            return Err(StoreError::LowSpace(format!(
                "the disk of {} has {} MiB free, less than the {} MiB kept for user data ([store] reserve_mb): \
                 index syncs wait until space is freed",
                dir.display(),
                free >> 20,
                self.reserve_bytes >> 20
            )));
        }
        Ok(())
    }
}

/// Bytes an unprivileged process may still write on `dir`'s file system.
pub(super) fn free_bytes(dir: &std::path::Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Whether sled reported damage of its files (not a full disk, not a lock).
fn is_damage(e: &StoreError) -> bool {
    let StoreError::Backend { cause, .. } = e else { return false };
    match cause.downcast_ref::<super::SledFailure>().map(|f| &f.0) {
        Some(sled::Error::Corruption { .. }) => true,
        Some(sled::Error::Io(io)) => !matches!(
            io.kind(),
            std::io::ErrorKind::StorageFull
                | std::io::ErrorKind::FileTooLarge
                | std::io::ErrorKind::QuotaExceeded
                | std::io::ErrorKind::PermissionDenied
                | std::io::ErrorKind::ReadOnlyFilesystem
                | std::io::ErrorKind::WouldBlock
        ),
        _ => false,
    }
}

impl SledStore {
    /// Runs a read on the index; if it meets damage, the index is replaced
    /// and the read answered from the fresh one.
    fn read_index<T>(&self, op: impl Fn(&IndexDb) -> Result<T>) -> Result<T> {
        let index = self.index.current();
        match op(&index) {
            Err(e) if is_damage(&e) => {
                self.replace_damaged_index(&index, &e)?;
                op(&self.index.current())
            }
            other => other,
        }
    }

    /// Runs a write on the index; if it meets damage, the index is replaced
    /// and the write fails (its sync runs again on the fresh index).
    fn write_index<T>(&self, op: impl FnOnce(&IndexDb) -> Result<T>) -> Result<T> {
        let index = self.index.current();
        match op(&index) {
            Err(e) if is_damage(&e) => {
                self.replace_damaged_index(&index, &e)?;
                Err(StoreError::Damaged {
                    what: "the index",
                    reason: format!("{e}; it was moved aside, and every collection syncs again to rebuild it"),
                })
            }
            other => other,
        }
    }

    /// Moves `damaged` aside and puts a fresh index in its place (unless
    /// another thread already did).
    fn replace_damaged_index(&self, damaged: &Arc<IndexDb>, cause: &StoreError) -> Result<()> {
        let mut current = self.index.current.write().expect("index lock");
        if !Arc::ptr_eq(&current, damaged) {
            return Ok(());
        }
        let db = match &self.index.path {
            Some(path) => {
                move_aside(path, cause)?;
                open_db(path, self.index.cache_bytes)
            }
            None => sled::Config::new().temporary(true).open(),
        }
        .map_err(|e| StoreError::Backend { doing: "opening a fresh index", cause: describe(&e).into() })?;
        let mut fresh = IndexDb::new(db)?;
        fresh.fence = Some(Mutex::default());
        fresh.mark_rebuilding()?;
        *current = Arc::new(fresh);
        self.index.set_rebuilding(true);
        self.index.replacements.send_modify(|n| *n += 1);
        drop(current);
        self.stamp_epoch(None, false)?;
        tracing::error!(
            replacements = *self.index.replacements.borrow(),
            "the index was damaged and is replaced by a fresh one; every collection syncs again now"
        );
        Ok(())
    }
}

/// The refusal of a change set from a sync that began on a replaced index.
fn fenced_out() -> StoreError {
    StoreError::Damaged {
        what: "the index",
        reason: "it was replaced by a fresh one while this sync ran; the collection syncs again from the start".into(),
    }
}

impl IndexStore for SledStore {
    fn apply(&self, batch: &IndexBatch) -> Result<ApplyStats> {
        self.index.check_space()?;
        self.write_index(|ix| {
            if let Some(fence) = &ix.fence {
                if !fence.lock().expect("fence lock").contains(&batch.scope) {
                    return Err(fenced_out());
                }
            }
            ix.apply(batch)
        })
    }

    fn collection_state(&self, scope: &CollectionScope) -> Result<Option<CollectionState>> {
        self.read_index(|ix| {
            let state = ix.collection_state(scope)?;
            if let Some(fence) = &ix.fence {
                fence.lock().expect("fence lock").insert(scope.clone());
            }
            Ok(state)
        })
    }

    fn set_collection_error(&self, scope: &CollectionScope, error: Option<String>, at: DateTime<Utc>) -> Result<()> {
        self.write_index(|ix| ix.set_collection_error(scope, error, at))
    }

    fn collection_states(&self, user: &UserId, account: &str) -> Result<Vec<(String, CollectionState)>> {
        self.read_index(|ix| ix.collection_states(user, account))
    }

    fn known_versions(&self, scope: &CollectionScope) -> Result<HashMap<RecordId, String>> {
        self.read_index(|ix| ix.known_versions(scope))
    }

    fn remove_account(&self, user: &UserId, account: &str) -> Result<usize> {
        self.write_index(|ix| ix.remove_account(user, account))
    }

    fn count_records(&self, user: &UserId, account: &str) -> Result<HashMap<String, usize>> {
        self.read_index(|ix| ix.count_records(user, account))
    }

    fn contacts_by_phone(&self, user: &UserId, key: &str) -> Result<Vec<StoredContact>> {
        self.read_index(|ix| ix.contacts_by_phone(user, key))
    }

    fn contacts_by_email(&self, user: &UserId, email: &str) -> Result<Vec<StoredContact>> {
        self.read_index(|ix| ix.contacts_by_email(user, email))
    }

    fn contact(&self, user: &UserId, record: &RecordRef) -> Result<Option<StoredContact>> {
        self.read_index(|ix| ix.contact(user, record))
    }

    fn scan_contacts(&self, user: &UserId, visit: &mut dyn FnMut(StoredContact) -> bool) -> Result<()> {
        // Not retried: `visit` has seen part of the damaged index already.
        let index = self.index.current();
        match index.scan_contacts(user, visit) {
            Err(e) if is_damage(&e) => {
                self.replace_damaged_index(&index, &e)?;
                Err(e)
            }
            other => other,
        }
    }

    fn busy_spans(&self, user: &UserId, at: DateTime<Utc>) -> Result<Vec<BusySpan>> {
        self.read_index(|ix| ix.busy_spans(user, at))
    }

    fn out_of_office(&self, user: &UserId) -> Result<Vec<OutOfOffice>> {
        self.read_index(|ix| ix.out_of_office(user))
    }

    fn mail_with(&self, user: &UserId, email: &str, window: TimeWindow, limit: usize) -> Result<Vec<MailMessage>> {
        self.read_index(|ix| ix.mail_with(user, email, window, limit))
    }

    fn events_with(&self, user: &UserId, email: &str, window: TimeWindow, limit: usize) -> Result<Vec<CalendarEvent>> {
        self.read_index(|ix| ix.events_with(user, email, window, limit))
    }

    fn documents_for(&self, user: &UserId, person: &str, window: TimeWindow, limit: usize) -> Result<Vec<Document>> {
        self.read_index(|ix| ix.documents_for(user, person, window, limit))
    }

    fn index_rebuilding(&self) -> bool {
        self.index.rebuilding.load(Ordering::Relaxed)
    }

    fn index_replacements(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.index.replacements.subscribe())
    }

    fn index_rebuilt(&self, n: u64) -> Result<()> {
        // Held so that no replacement slips in between the check and the clearing.
        let current = self.index.current.write().expect("index lock");
        if *self.index.replacements.borrow() != n {
            return Ok(());
        }
        current.index.remove(REBUILDING_KEY).map_err(|e| backend("marking the index as rebuilt", e))?;
        current.db.flush().map_err(|e| backend("flushing the index", e))?;
        self.index.set_rebuilding(false);
        tracing::info!("the index is rebuilt: every collection synced again");
        Ok(())
    }
}
