//! The sync engine: runs connectors and commits what they deliver.
//!
//! A connector hands change sets to an [`IndexSink`]; the sink derives each
//! record's secondary keys with the [`Indexer`] (phone keys in the user's
//! region, lower-cased emails, occurrence times, the account's category →
//! handling-code mapping) and applies the batch to the index atomically with
//! its checkpoint. [`engine::sync_account`] walks an account's collections; one
//! failing collection is recorded in its status and does not stop the others.

pub mod engine;
mod fence;
pub mod indexer;
pub mod lease;
pub mod notifications;
pub mod runtime;
pub mod scheduler;
mod sink;

pub use engine::{sync_account, AccountSyncReport, CollectionReport, SyncOutcome, SyncTarget};
pub use indexer::Indexer;
pub use runtime::SyncRuntime;
pub use sink::{IndexSink, MAX_OCCURRENCES_PER_SYNC};
