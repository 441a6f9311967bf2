//! Storage: what the rest of the bridge may ask of it, and the sled backend.
//!
//! Two kinds of data live apart. The **index** ([`IndexStore`]) holds what was
//! synced from sources (contacts, events, mail, documents, out-of-office) and
//! each collection's checkpoint; it can always be rebuilt from the sources. The
//! **user data** ([`UserStore`]) holds what only users own: profiles, handling
//! tables, local handling-code assignments, last choices, call history. Every
//! operation is scoped by [`UserId`]; no query crosses users.
//!
//! A second backend is a new folder beside `sled/` implementing both traits.

mod codec;
pub(crate) mod keys;
pub mod sled;
mod types;

pub use self::sled::{SledStore, StoreOptions};
pub use types::*;

use crate::calls::{CallId, CallRecord};
use crate::resolve::status::BusySpan;
use crate::user::{HandlingCode, UserId, UserProfile};
use chrono::{DateTime, Utc};
use contactbridge_connector::{CalendarEvent, Document, MailMessage, OutOfOffice, RecordId};
use std::collections::HashMap;

/// A storage failure, with what was being done.
///
/// Each message names its cause once: a variant that prints its cause does
/// not also return it as [`std::error::Error::source`], so a caller printing
/// the chain (`{:#}`) does not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend failed while {doing}: {cause}")]
    Backend { doing: &'static str, cause: Box<dyn std::error::Error + Send + Sync> },
    /// The backend found its files damaged (a bad page, a file it cannot
    /// read). For the index this is repaired by a rebuild from the sources;
    /// for user data the admin restores a backup.
    #[error("{what} is damaged: {reason}")]
    Damaged { what: &'static str, reason: String },
    /// The disk is too full for a write that can wait (an index sync): the
    /// space left is kept for user data.
    #[error("{0}")]
    LowSpace(String),
    #[error("stored {what} could not be decoded (written by a newer version?): {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("the data directory {path} is in use by another contactbridge process (stop it, or use its gRPC API)")]
    Locked { path: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The synced, rebuildable part.
pub trait IndexStore: Send + Sync {
    /// Applies one batch and its checkpoint atomically: both or neither.
    fn apply(&self, batch: &IndexBatch) -> Result<ApplyStats>;
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

/// What only users own: never rebuilt from sources, so backed up.
pub trait UserStore: Send + Sync {
    /// Stores a profile and its called numbers (keys as [`crate::phone`] makes them).
    /// Fails if a called number belongs to another user.
    fn put_profile(&self, profile: &UserProfile, called_keys: &[String]) -> Result<()>;
    fn profile(&self, user: &UserId) -> Result<Option<UserProfile>>;
    fn profiles(&self) -> Result<Vec<UserProfile>>;
    /// Deletes a profile, its called numbers, assignments, choices and calls.
    fn delete_user(&self, user: &UserId) -> Result<bool>;
    /// The user a called-number key belongs to.
    fn user_by_called_number(&self, key: &str) -> Result<Option<UserId>>;

    /// A handling code the user assigned locally to a contact or a number.
    fn assignment(&self, user: &UserId, target: &AssignTarget) -> Result<Option<HandlingCode>>;
    fn assign(&self, user: &UserId, target: &AssignTarget, code: Option<&HandlingCode>) -> Result<()>;
    /// The contact the user picked last for calls from this number key.
    fn last_choice(&self, user: &UserId, number_key: &str) -> Result<Option<RecordRef>>;
    fn set_last_choice(&self, user: &UserId, number_key: &str, contact: &RecordRef) -> Result<()>;

    /// Writes a call record (new or updated). It is visible to every read when
    /// this returns; a backend may write it to disk later (never later than
    /// its next flush), so the lookup path does not wait on disk.
    fn put_call(&self, call: &CallRecord) -> Result<()>;
    fn call(&self, id: &CallId) -> Result<Option<CallRecord>>;
    /// The user's calls in `window`, newest first.
    fn calls(&self, user: &UserId, window: TimeWindow, limit: usize) -> Result<Vec<CallRecord>>;
    /// The user's calls from a caller (by number key), newest first.
    fn calls_from(&self, user: &UserId, caller_key: &str, window: TimeWindow, limit: usize) -> Result<Vec<CallRecord>>;
}

/// Both halves: what the bridge runs on.
pub trait Store: IndexStore + UserStore {}
impl<T: IndexStore + UserStore> Store for T {}
