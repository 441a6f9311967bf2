//! Syncing one account: every collection, each into its owner's index.

use super::{IndexSink, Indexer};
use crate::store::{ApplyStats, CollectionScope, IndexStore};
use crate::user::UserId;
use contactbridge_connector::{
    Collection, Connector, Error, ErrorKind, KnownVersions, RecordId, SyncRequest, Throttling,
};
use std::collections::HashMap;

/// Whose index an account's collections go to.
pub struct SyncTarget<'a> {
    /// The account's id (scopes its records in the index).
    pub account: &'a str,
    /// The account's own user (collections without an owner).
    pub user: &'a UserId,
    /// For organisation-wide accounts: mailbox (collection owner) → user.
    pub owners: &'a HashMap<String, UserId>,
    pub indexer: &'a Indexer,
}

/// What happened to one collection.
#[derive(Debug)]
pub struct CollectionReport {
    pub collection: Collection,
    pub user: Option<UserId>,
    pub stats: ApplyStats,
    pub rejected: usize,
    pub batches: usize,
    pub error: Option<Error>,
    /// How often and how long the connector waited for the source throttling it.
    pub throttling: Throttling,
    /// How long the collection's sync took.
    pub duration: std::time::Duration,
}

impl CollectionReport {
    /// A collection left out of this sync because of `error`, before anything was asked.
    fn not_synced(collection: Collection, user: Option<UserId>, error: Error) -> Self {
        Self {
            collection,
            user,
            stats: ApplyStats::default(),
            rejected: 0,
            batches: 0,
            error: Some(error),
            throttling: Throttling::default(),
            duration: std::time::Duration::ZERO,
        }
    }
}

/// What happened to an account.
#[derive(Debug, Default)]
pub struct AccountSyncReport {
    /// Set when the account's collections could not even be listed.
    pub error: Option<Error>,
    pub collections: Vec<CollectionReport>,
}

pub use crate::model::SyncOutcome;

impl AccountSyncReport {
    /// Complete, partial or failed.
    pub fn outcome(&self) -> SyncOutcome {
        let failed = self.collections.iter().filter(|c| c.error.is_some()).count();
        if self.error.is_some() || (failed > 0 && failed == self.collections.len()) {
            SyncOutcome::Failed
        } else if failed > 0 {
            SyncOutcome::Partial
        } else {
            SyncOutcome::Complete
        }
    }

    pub fn failed(&self) -> usize {
        self.collections.iter().filter(|c| c.error.is_some()).count() + usize::from(self.error.is_some())
    }
    pub fn totals(&self) -> ApplyStats {
        self.collections.iter().fold(ApplyStats::default(), |a, c| ApplyStats {
            upserted: a.upserted + c.stats.upserted,
            deleted: a.deleted + c.stats.deleted,
            swept: a.swept + c.stats.swept,
        })
    }
}

/// Syncs every collection of an account, one after the other. A collection
/// whose owner maps to no user is skipped with an error in the report. A mailbox
/// fenced off by policy (its first collection tried in this run answers 403, none
/// has synced) is not asked again in this run: its other collections fail for
/// the same reason at once, while the other mailboxes go on.
pub async fn sync_account(
    store: &dyn IndexStore,
    connector: &dyn Connector,
    target: &SyncTarget<'_>,
) -> AccountSyncReport {
    let collections = match connector.collections().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(account = target.account, error = %e, "listing collections failed");
            return AccountSyncReport { error: Some(e), collections: Vec::new() };
        }
    };
    let mut report = AccountSyncReport::default();
    let mut fences = super::fence::Fences::default();
    for collection in collections {
        let user = match &collection.owner {
            None => Some(target.user.clone()),
            Some(owner) => target.owners.get(owner).cloned(),
        };
        let Some(user) = user else {
            let error = Error::local(format!("mailbox {:?} is not mapped to a user", collection.owner));
            report.collections.push(CollectionReport::not_synced(collection, None, error));
            continue;
        };
        let scope = CollectionScope {
            user: user.clone(),
            account: target.account.to_string(),
            collection: collection.id.clone(),
        };
        if let Some(error) = fences.refusal(&collection) {
            tracing::info!(account = target.account, collection = %collection.id, "mailbox fenced off: collection left out");
            if let Err(se) = store.set_collection_error(&scope, Some(error.to_string()), chrono::Utc::now()) {
                tracing::error!(error = %se, "could not record a sync error");
            }
            report.collections.push(CollectionReport::not_synced(collection, Some(user), error));
            continue;
        }
        let started = std::time::Instant::now();
        let (stats, rejected, batches, error, throttling) =
            sync_collection(store, connector, &collection, scope, target.indexer).await;
        let duration = started.elapsed();
        fences.observe(&collection, error.as_ref());
        report.collections.push(CollectionReport {
            collection,
            user: Some(user),
            stats,
            rejected,
            batches,
            error,
            throttling,
            duration,
        });
    }
    report
}

/// The versions the index holds for a collection, read on first use.
struct LazyKnown<'a> {
    store: &'a dyn IndexStore,
    scope: &'a CollectionScope,
    versions: std::sync::OnceLock<Result<HashMap<RecordId, String>, String>>,
}

impl KnownVersions for LazyKnown<'_> {
    fn version(&self, id: &RecordId) -> Option<String> {
        let versions = self.versions.get_or_init(|| {
            self.store.known_versions(self.scope).map_err(|e| {
                tracing::error!(collection = %self.scope.collection, error = %e, "reading the known versions failed");
                e.to_string()
            })
        });
        versions.as_ref().ok()?.get(id).cloned()
    }
}

/// A collection sync cut off by the network after committing something is resumed from
/// its checkpoint this many times within one sync (the connectors retry each request first).
pub const RESUMES_PER_SYNC: usize = 5;

async fn sync_collection(
    store: &dyn IndexStore,
    connector: &dyn Connector,
    collection: &Collection,
    scope: CollectionScope,
    indexer: &Indexer,
) -> (ApplyStats, usize, usize, Option<Error>, Throttling) {
    let mut sink = IndexSink::new(store, scope.clone(), indexer);
    let mut resumes = 0;
    let result = loop {
        let state = match store.collection_state(&scope) {
            Ok(state) => state,
            Err(e) => break Err(Error::local(format!("reading the sync state: {e}"))),
        };
        // Read only if the connector asks (a sync that finds nothing new does not).
        let known = LazyKnown { store, scope: &scope, versions: std::sync::OnceLock::new() };
        let before = sink.batches;
        let request = SyncRequest { collection, since: state.and_then(|s| s.checkpoint), known: &known };
        let synced = connector.sync(request, &mut sink).await;
        if let Some(Err(e)) = known.versions.get() {
            // The connector fetched what it could not compare: nothing lost, but say so.
            break synced.and(Err(Error::local(format!("reading the known versions: {e}"))));
        }
        match synced {
            // Cut off after progress: go on from the checkpoint just committed.
            Err(e) if e.kind == ErrorKind::Unreachable && sink.batches > before && resumes < RESUMES_PER_SYNC => {
                resumes += 1;
                tracing::info!(account = %scope.account, collection = %scope.collection, error = %e, resumes, "sync cut off: resuming from its checkpoint");
                tokio::time::sleep(std::time::Duration::from_millis(500 * resumes as u64)).await;
            }
            other => break other,
        }
    };
    if let Err(e) = &result {
        tracing::warn!(account = %scope.account, collection = %scope.collection, error = %e, "collection sync failed");
        if let Err(se) = store.set_collection_error(&scope, Some(e.to_string()), chrono::Utc::now()) {
            tracing::error!(error = %se, "could not record a sync error");
        }
    }
    (sink.totals, sink.rejected, sink.batches, result.err(), sink.throttling)
}
