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
    /// Throttling waits the connector reported.
    pub throttling: contactbridge_connector::Throttling,
}

impl<'a> IndexSink<'a> {
    pub fn new(store: &'a dyn IndexStore, scope: CollectionScope, indexer: &'a Indexer) -> Self {
        Self {
            store,
            scope,
            indexer,
            totals: ApplyStats::default(),
            rejected: 0,
            batches: 0,
            occurrences: 0,
            throttling: Default::default(),
        }
    }
}

#[async_trait]
impl ChangeSink for IndexSink<'_> {
    async fn apply(&mut self, mut changes: ChangeSet) -> Result<(), Error> {
        self.cap_occurrences(&mut changes);
        for r in &changes.rejected {
            tracing::warn!(collection = %self.scope.collection, item = %r.id, reason = %r.reason, "skipped malformed item");
        }
        // Indexing and the commit are CPU work: off the runtime's workers, and
        // always to the end (a sync cancelled meanwhile never leaves a
        // half-applied batch; the store applies a batch atomically).
        let rejected = changes.rejected.len();
        let fence = super::lease::current_fence();
        let stats = super::runtime::off_the_workers(|| {
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
            match &fence {
                Some(fence) => self.store.apply_fenced(&batch, fence),
                None => self.store.apply(&batch),
            }
        })
        .map_err(|e| Error::local(format!("committing a change set: {e}")))?;
        self.totals.upserted += stats.upserted;
        self.totals.deleted += stats.deleted;
        self.totals.swept += stats.swept;
        self.rejected += rejected;
        self.batches += 1;
        Ok(())
    }

    fn throttled(&mut self, waits: contactbridge_connector::Throttling) {
        self.throttling += waits;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;
    use crate::user::UserId;
    use chrono::{Duration, TimeZone, Utc};
    use contactbridge_connector::{CalendarEvent, Occurrence, RecordId, Snapshot};

    fn event(id: &str, occurrences: usize) -> Record {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Record::Event(CalendarEvent {
            id: RecordId::new(id),
            subject: id.into(),
            occurrences: (0..occurrences as i64)
                .map(|i| Occurrence { start: t0 + Duration::minutes(i), end: t0 + Duration::minutes(i + 1) })
                .collect(),
            ..Default::default()
        })
    }

    /// Past MAX_OCCURRENCES_PER_SYNC over the change sets of one sync, the
    /// further events are skipped with a reason; what came before, and
    /// records that are not events, are kept.
    #[tokio::test]
    async fn events_past_the_occurrence_cap_of_a_sync_are_skipped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let scope = CollectionScope {
            user: UserId::parse("acme.alice").unwrap(),
            account: "acc".into(),
            collection: "cal".into(),
        };
        let indexer = Indexer::default();
        let mut sink = IndexSink::new(&store, scope.clone(), &indexer);
        let per_event = 1_000;
        let fits = MAX_OCCURRENCES_PER_SYNC / per_event;
        // Two change sets, as a DAV sync delivers batches.
        let first: Vec<Record> = (0..fits / 2).map(|i| event(&format!("e{i}"), per_event)).collect();
        sink.apply(ChangeSet { upserts: first, snapshot: Some(Snapshot::FIRST), ..Default::default() }).await.unwrap();
        let mut second: Vec<Record> = (fits / 2..fits + 3).map(|i| event(&format!("e{i}"), per_event)).collect();
        let oof = contactbridge_connector::OutOfOffice { id: RecordId::new("oof"), enabled: false, scheduled: None };
        second.push(Record::OutOfOffice(oof));
        sink.apply(ChangeSet { upserts: second, snapshot: Some(Snapshot::LAST), ..Default::default() }).await.unwrap();

        assert_eq!(sink.occurrences, MAX_OCCURRENCES_PER_SYNC);
        assert_eq!(sink.totals.upserted, fits + 1);
        assert_eq!(sink.rejected, 3);
        let state = store.collection_state(&scope).unwrap().unwrap();
        let skipped: Vec<&str> = state.rejected.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(skipped, [format!("e{fits}"), format!("e{}", fits + 1), format!("e{}", fits + 2)]);
        assert!(state.rejected[0].reason.contains("100000 calendar occurrences"), "{}", state.rejected[0].reason);
        let counts = store.count_records(&scope.user, "acc").unwrap();
        assert_eq!(counts.values().sum::<usize>(), fits + 1, "{counts:?}");
    }
}
