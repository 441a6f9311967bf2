//! The `ChangeSink` that commits change sets to the index.

use super::Indexer;
use crate::store::{ApplyStats, CollectionScope, IndexBatch, IndexStore};
use async_trait::async_trait;
use contactbridge_connector::{ChangeSet, ChangeSink, Error};

/// Commits each change set to one collection of the index, with its checkpoint.
pub struct IndexSink<'a> {
    pub store: &'a dyn IndexStore,
    pub scope: CollectionScope,
    pub indexer: &'a Indexer,
    /// Totals over all change sets applied through this sink.
    pub totals: ApplyStats,
    pub rejected: usize,
    pub batches: usize,
}

impl<'a> IndexSink<'a> {
    pub fn new(store: &'a dyn IndexStore, scope: CollectionScope, indexer: &'a Indexer) -> Self {
        Self { store, scope, indexer, totals: ApplyStats::default(), rejected: 0, batches: 0 }
    }
}

#[async_trait]
impl ChangeSink for IndexSink<'_> {
    async fn apply(&mut self, changes: ChangeSet) -> Result<(), Error> {
        for r in &changes.rejected {
            tracing::warn!(collection = %self.scope.collection, item = %r.id, reason = %r.reason, "skipped malformed item");
        }
        let batch = IndexBatch {
            scope: self.scope.clone(),
            upserts: changes.upserts.into_iter().map(|r| self.indexer.index(r)).collect(),
            deletions: changes.deletions,
            retained: changes.retained,
            rejected: changes.rejected,
            checkpoint: changes.checkpoint,
            snapshot: changes.snapshot,
            at: chrono::Utc::now(),
        };
        // sled's apply is synchronous and short (one batch); it runs on the
        // calling task so a cancelled sync never leaves a half-applied batch.
        let stats = self.store.apply(&batch).map_err(|e| Error::local(format!("committing a change set: {e}")))?;
        self.totals.upserted += stats.upserted;
        self.totals.deleted += stats.deleted;
        self.totals.swept += stats.swept;
        self.rejected += batch.rejected.len();
        self.batches += 1;
        Ok(())
    }
}
