//! Registered accounts as stored: their settings (secret taken out), their
//! sealed secrets, the outcome of their last sync, and the Graph change-notification
//! subscriptions made for them. Kept with user data (backed up). Sealing and
//! syncing are `accounts`' and `secrets`'.

use super::{Result, Store};
use crate::model::AccountSpec;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The outcome of an account's last sync, kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    /// The error of the last sync; `None` when it succeeded.
    pub error: Option<String>,
    /// Collections that failed in the last sync.
    pub failed_collections: usize,
    pub upserted: usize,
    pub deleted: usize,
    /// Failed syncs in a row (0 after a complete or partial one): the scheduler's
    /// backoff of the whole account carries over a restart with it.
    pub consecutive_failures: u32,
    /// The last complete sync.
    pub last_success: Option<DateTime<Utc>>,
    /// Complete, partial or failed (`None`: recorded before outcomes were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<crate::model::SyncOutcome>,
    /// Collections failing on their own, by collection id: scheduled syncs leave each
    /// out until its backoff ends, while the account's other collections sync on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backoff: BTreeMap<String, CollectionBackoff>,
    /// What discovery found (the collections, after the account's filters), kept while
    /// syncs succeed, so that a sync need not discover them again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered: Option<Discovered>,
}

/// An account's collections as discovery found them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovered {
    pub at: DateTime<Utc>,
    /// The account's settings it was found with ([`crate::model::AccountSpec`]'s source, without
    /// its secret, hashed): changed settings discover again.
    pub settings: u64,
    pub collections: Vec<contactbridge_connector::Collection>,
}

/// A collection's failures in a row and when the scheduler tries it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionBackoff {
    pub failures: u32,
    pub until: DateTime<Utc>,
}

/// A Graph change-notification subscription the bridge made (stored under Graph's
/// subscription id), shared by every replica on the store so that a notification
/// counts whichever replica receives it. Only the SHA-256 of its `clientState` is
/// kept, never the state itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    pub account: String,
    pub mailbox: String,
    /// `contacts`, `events` or `messages`.
    pub part: String,
    pub state_hash: [u8; 32],
    pub expires: DateTime<Utc>,
    /// Where Graph sends its notifications (`web.public_url` when it was made): one
    /// made for another URL is replaced.
    pub notification_url: String,
}

/// Account storage. Secrets are opaque sealed bytes here (sealed by `secrets`).
pub trait AccountStore: Send + Sync {
    /// Stores an account (its secret already taken out) and, if given, its sealed secret.
    fn put_account(&self, spec: &AccountSpec, sealed_secret: Option<&[u8]>) -> Result<()>;
    fn account(&self, id: &str) -> Result<Option<AccountSpec>>;
    fn accounts(&self) -> Result<Vec<AccountSpec>>;
    fn sealed_secret(&self, id: &str) -> Result<Option<Vec<u8>>>;
    fn put_sealed_secret(&self, id: &str, sealed: &[u8]) -> Result<()>;
    /// Deletes the account, its secret and run record.
    fn delete_account(&self, id: &str) -> Result<bool>;
    fn run_record(&self, id: &str) -> Result<Option<RunRecord>>;
    fn put_run_record(&self, id: &str, run: &RunRecord) -> Result<()>;
    /// [`AccountStore::put_run_record`] for a record whose loss in a crash costs only
    /// its times (a complete sync that changed nothing after a complete one): a
    /// backend may skip waiting for the disk. Durable by default.
    fn put_run_record_lazily(&self, id: &str, run: &RunRecord) -> Result<()> {
        self.put_run_record(id, run)
    }
    /// Every change-notification subscription, by Graph's subscription id.
    fn subscriptions(&self) -> Result<Vec<(String, SubscriptionRecord)>>;
    /// One subscription (`None` for an unknown or malformed id).
    fn subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>>;
    fn put_subscription(&self, id: &str, s: &SubscriptionRecord) -> Result<()>;
    fn delete_subscription(&self, id: &str) -> Result<()>;
}

/// Storage the account registry runs on: the index, user data and accounts.
pub trait RegistryStore: Store + AccountStore {}
impl<T: Store + AccountStore + ?Sized> RegistryStore for T {}
