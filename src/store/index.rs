//! The index: what was synced from sources, rebuildable from them.

use super::{ApplyStats, CollectionScope, CollectionState, IndexBatch, RecordRef, Result, StoredContact, TimeWindow};
use crate::model::{BusySpan, UserId};
use chrono::{DateTime, Utc};
use contactbridge_connector::{CalendarEvent, Document, MailMessage, OutOfOffice, RecordId};
use std::collections::HashMap;

/// The synced, rebuildable part.
pub trait IndexStore: Send + Sync {
    /// Applies one batch and its checkpoint atomically: both or neither.
    fn apply(&self, batch: &IndexBatch) -> Result<ApplyStats>;
    /// [`IndexStore::apply`] under a sync lease: a backend shared by several
    /// processes checks `fence` in the commit's own transaction and fails with
    /// [`super::StoreError::Fenced`], writing nothing, when the lease is no
    /// longer the writer's ([`super::lease`]). The default (sled: one process
    /// holds the data directory, so no other replica can have taken over)
    /// applies unconditionally.
    fn apply_fenced(&self, batch: &IndexBatch, fence: &super::Fence) -> Result<ApplyStats> {
        let _ = fence;
        self.apply(batch)
    }
    /// The state (checkpoint, snapshot, status) of one collection.
    fn collection_state(&self, scope: &CollectionScope) -> Result<Option<CollectionState>>;
    /// Records the outcome of a sync attempt that did not go through `apply`
    /// (a failure before any batch, for the account's status).
    fn set_collection_error(&self, scope: &CollectionScope, error: Option<String>, at: DateTime<Utc>) -> Result<()>;
    /// Every collection state of a user's account.
    fn collection_states(&self, user: &UserId, account: &str) -> Result<Vec<(String, CollectionState)>>;
    /// The versions (etags) held for a collection.
    fn known_versions(&self, scope: &CollectionScope) -> Result<HashMap<RecordId, String>>;
    /// Removes everything an account brought into a user's index. Returns how many records.
    fn remove_account(&self, user: &UserId, account: &str) -> Result<usize>;
    /// How many records of each kind a user's account holds.
    fn count_records(&self, user: &UserId, account: &str) -> Result<HashMap<String, usize>>;

    /// Contacts indexed under a phone lookup key.
    fn contacts_by_phone(&self, user: &UserId, key: &str) -> Result<Vec<StoredContact>>;
    /// [`IndexStore::contacts_by_phone`] for several keys at once (all probes
    /// of one caller): one list per key, in the order of `keys`. A backend
    /// that pays a round trip per query answers all in one; the default asks
    /// key by key (sled: in memory).
    fn contacts_by_phones(&self, user: &UserId, keys: &[&str]) -> Result<Vec<Vec<StoredContact>>> {
        keys.iter().map(|k| self.contacts_by_phone(user, k)).collect()
    }
    /// Contacts indexed under an email address (lower-case).
    fn contacts_by_email(&self, user: &UserId, email: &str) -> Result<Vec<StoredContact>>;
    fn contact(&self, user: &UserId, record: &RecordRef) -> Result<Option<StoredContact>>;
    /// Visits the user's contacts in index order until `visit` returns false
    /// (a directory search: the caller bounds it). Reads every record of the user.
    fn scan_contacts(&self, user: &UserId, visit: &mut dyn FnMut(StoredContact) -> bool) -> Result<()>;
    /// Event occurrences in progress at `at`.
    fn busy_spans(&self, user: &UserId, at: DateTime<Utc>) -> Result<Vec<BusySpan>>;
    /// The user's out-of-office settings (one per mailbox).
    fn out_of_office(&self, user: &UserId) -> Result<Vec<OutOfOffice>>;
    /// Mail to or from `email` dated in `[from, to)`, newest first.
    fn mail_with(&self, user: &UserId, email: &str, window: TimeWindow, limit: usize) -> Result<Vec<MailMessage>>;
    /// Events with `email` as attendee or organizer, occurring in `[from, to)`, newest first.
    fn events_with(&self, user: &UserId, email: &str, window: TimeWindow, limit: usize) -> Result<Vec<CalendarEvent>>;
    /// Documents referencing `person` (an email or a lower-case name), modified in `[from, to)`, newest first.
    fn documents_for(&self, user: &UserId, person: &str, window: TimeWindow, limit: usize) -> Result<Vec<Document>>;

    /// Whether the index is being rebuilt from the sources after damage was
    /// found: lookups answer from what has been synced again so far.
    fn index_rebuilding(&self) -> bool {
        false
    }
    /// Counts the damaged indexes this backend replaced with a fresh one while
    /// running, starting at 0; its change asks for an immediate resync of every
    /// collection. `None`: the backend never replaces its index.
    fn index_replacements(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
    /// Every collection was synced again after replacement `n` (the value
    /// [`IndexStore::index_replacements`] held when the resync was asked for):
    /// the index is rebuilt, unless it was replaced again since.
    fn index_rebuilt(&self, _n: u64) -> Result<()> {
        Ok(())
    }
}
