//! Storage: every piece of persistent state behind one set of traits, and
//! the backends that implement them.
//!
//! # What is kept
//!
//! Two kinds of data live apart. The **index** ([`IndexStore`]) holds what was
//! synced from sources (contacts, events, mail, documents, out-of-office) and
//! each collection's checkpoint; it can always be rebuilt from the sources.
//! **User data** holds what only users own and is backed up: profiles, called
//! numbers, handling-code assignments and last choices ([`UserStore`]), the
//! call history ([`CallStore`]), API keys ([`ApiKeyStore`]), web sign-in tokens
//! ([`WebTokenStore`]), and registered accounts with their sealed secrets and
//! last sync outcome ([`AccountStore`]). Every index and user-data query is
//! scoped by [`UserId`](crate::model::UserId); no query crosses users.
//!
//! # Layers
//!
//! The store sits below everything that serves or decides: it imports only
//! [`crate::model`] (the plain types it keeps: profiles, handling codes, call
//! records, accounts, statuses), the connector contract and phone-number
//! parsing, never `api`, `web`, `accounts`, `resolve`, `sync`, `cli`,
//! `http_lookup`, `ldap` or `live` (`tests/layers.rs` fails if it does). The
//! rest of the bridge holds the store as a trait object: [`Store`] for the
//! lookup path, [`Backend`] for the whole of it, opened by [`open`] with the
//! backend the configuration names (`[store] backend = "sled"`, or
//! `"postgres"` with a `[store.postgres]` table: [`postgres`]). A backend is
//! a folder beside `sled/` implementing the traits; it must pass
//! [`conformance`], the behaviour tests every backend runs.
//!
//! # Sync traits, and the lookup path off the runtime's workers
//!
//! The traits are synchronous. sled answers from memory in microseconds, and
//! the resolver makes a dozen store calls per call: as `async fn`s each would
//! cost a boxed future and a poll, and every caller (sync engine, CLI,
//! resolver, context) would turn async for nothing. A backend that talks to a
//! server (PostgreSQL) stays synchronous too, on a blocking client or
//! `Handle::block_on` of its async pool, and says so with
//! [`Capabilities::blocking`]. The async servers (gRPC `ResolveCall` and
//! `GetCallerContext`, the HTTP lookup, LDAP, the notification window) run a
//! request's store and resolver work through one helper, [`offload`]: inline
//! for a backend that does not block (no thread hop on the hot path), on
//! tokio's blocking pool for one that may wait on the network, so a round
//! trip never holds a runtime worker and a cheap request is never queued
//! behind it. A whole request's work goes in one closure, so a network
//! backend pays one hop per request, not one per query.
//!
//! # Fewer round trips on a network backend
//!
//! The lookup path asks for all phone keys of a caller at once
//! ([`IndexStore::contacts_by_phones`]: one query on PostgreSQL), and reads
//! profiles, called numbers and assignments through a per-replica cache
//! ([`cache`]) that the backend's own notifications keep current; sled,
//! answering from memory, gets neither layer.

mod accounts;
mod api_keys;
mod backend;
pub mod bus;
pub mod cache;
mod calls;
mod codec;
mod compact;
#[doc(hidden)]
pub mod conformance;
pub mod derive;
mod index;
pub(crate) mod keys;
pub mod lease;
pub mod postgres;
pub mod sled;
pub mod split;
mod types;
mod users;
mod web_tokens;

pub use self::postgres::{PgOptions, PgStore};
pub use self::sled::{SledStore, StoreOptions};
/// Where a record lives; defined in [`crate::model`].
pub use crate::model::RecordRef;
pub use accounts::{AccountStore, CollectionBackoff, Discovered, RegistryStore, RunRecord, SubscriptionRecord};
pub use api_keys::{ApiKeyStore, Scope, StoredKey};
pub use backend::{
    offload, open, restore, Backend, BackendKind, Capabilities, Maintenance, OpenOptions, Replication, UserDataExport,
};
pub use bus::{BusMessage, EventBus, LocalBus};
pub use calls::CallStore;
pub use index::IndexStore;
pub use lease::{Fence, Lease, LeaseStore, LocalLeases};
pub use types::*;
pub use users::UserStore;
pub use web_tokens::{StoredWebToken, TokenKind, WebTokenStore};

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
    #[error("stored {what} could not be decoded: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A commit under a sync lease that is no longer held ([`lease`]): another
    /// replica took the account over; nothing of the batch was written.
    #[error("the sync lease of account {account} (token {token}) is no longer held by {holder}: another replica has taken the account over")]
    Fenced { account: String, holder: String, token: u64 },
    #[error("the data directory {path} is in use by another contactbridge process (stop it, or use its gRPC API)")]
    Locked { path: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What the lookup path runs on: the index, user data and the call history.
pub trait Store: IndexStore + UserStore + CallStore + Capabilities {}
impl<T: IndexStore + UserStore + CallStore + Capabilities> Store for T {}
