//! The `ChangeSink` that commits change sets to the index.

use super::Indexer;
use crate::store::{ApplyStats, CollectionScope, IndexBatch, IndexStore};
use async_trait::async_trait;
use contactbridge_connector::{ChangeSet, ChangeSink, Error, Record, Rejected};

/// At most this many calendar occurrences are indexed per collection in one
/// sync; the events past it are skipped with a reason, the others are kept.
pub const MAX_OCCURRENCES_PER_SYNC: usize = 100_000;

/// Commits each change set to one collection of the index, with its checkpoint.
pub struct IndexSink<'a> {
    pub store: &'a dyn IndexStore,
    pub scope: CollectionScope,
    pub indexer: &'a Indexer,
    /// Totals over all change sets applied through this sink.
    pub totals: ApplyStats,
    pub rejected: usize,
    pub batches: usize,
    /// Calendar occurrences indexed so far through this sink.
    pub occurrences: usize,
}

impl<'a> IndexSink<'a> {
    pub fn new(store: &'a dyn IndexStore, scope: CollectionScope, indexer: &'a Indexer) -> Self {
        Self { store, scope, indexer, totals: ApplyStats::default(), rejected: 0, batches: 0, occurrences: 0 }
    }
}

#[async_trait]
impl ChangeSink for IndexSink<'_> {
    async fn apply(&mut self, mut changes: ChangeSet) -> Result<(), Error> {
        self.cap_occurrences(&mut changes);
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

impl IndexSink<'_> {
    /// Moves the events past [`MAX_OCCURRENCES_PER_SYNC`] from upserts to rejected.
    fn cap_occurrences(&mut self, changes: &mut ChangeSet) {
        let mut skipped = Vec::new();
        changes.upserts.retain(|r| {
            let Record::Event(e) = r else { return true };
            let n = e.occurrences.len();
            if self.occurrences + n > MAX_OCCURRENCES_PER_SYNC {
                skipped.push(Rejected {
                    id: e.id.clone(),
                    reason: format!(
                        "skipped: the collection already gave {MAX_OCCURRENCES_PER_SYNC} calendar occurrences in this sync"
                    ),
                });
                return false;
            }
            self.occurrences += n;
            true
        });
        changes.rejected.extend(skipped);
    }
}
