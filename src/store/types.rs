//! Plain types shared by the store traits and their callers.

use crate::model::{HandlingCode, RecordRef, UserId};
use crate::phone::Region;
use chrono::{DateTime, Utc};
use contactbridge_connector::{BusyStatus, Checkpoint, Contact, PhoneKind, Record, RecordId, Rejected, Snapshot};
use serde::{Deserialize, Serialize};

/// A user's collection of an account: where one change set goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CollectionScope {
    pub user: UserId,
    pub account: String,
    pub collection: String,
}

/// A secondary index entry derived from a record (by the sync engine's indexer).
#[derive(Debug, Clone, PartialEq)]
pub enum SecondaryKey {
    /// A phone lookup key (as `phone` makes them).
    Phone {
        key: String,
        kind: PhoneKind,
    },
    Email(String),
    /// An occurrence, for status.
    Occurrence {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        busy: BusyStatus,
    },
    /// An attendee or organizer of an event: once per event, with the starts
    /// of its first and last occurrence (so that thousands of attendees of a
    /// recurring event cost attendees + occurrences keys, not their product).
    Attendee {
        email: String,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
    },
    /// A correspondent of a message.
    Correspondent {
        email: String,
        date: DateTime<Utc>,
    },
    /// A person a document references.
    DocumentPerson {
        person: String,
        modified: DateTime<Utc>,
    },
    OutOfOffice,
}

/// A record with what the indexer derived from it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedRecord {
    pub record: Record,
    pub keys: Vec<SecondaryKey>,
    /// The handling code the source gives (after the account's category mapping).
    pub handling_code: Option<HandlingCode>,
    /// `Some` when `keys` are [`crate::store::derive::secondary_keys`] of the
    /// record in that region (as the indexer makes them): the store then keeps
    /// only the region and derives the keys again to remove them. `None` for
    /// keys made otherwise (tests, tools): the store keeps their list.
    pub derived_with: Option<KeyDerivation>,
}

/// What the keys of an [`IndexedRecord`] were derived with.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDerivation {
    /// The region the record's phone numbers were read in.
    pub region: Option<Region>,
}

/// One change set as the index applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexBatch {
    pub scope: CollectionScope,
    pub upserts: Vec<IndexedRecord>,
    pub deletions: Vec<RecordId>,
    pub retained: Vec<RecordId>,
    pub rejected: Vec<Rejected>,
    pub checkpoint: Option<Checkpoint>,
    pub snapshot: Option<Snapshot>,
    pub at: DateTime<Utc>,
}

impl IndexBatch {
    /// Whether the batch carries nothing but a new checkpoint (a sync that found
    /// nothing new). Such a batch is committed without waiting for the disk: a
    /// crash can lose it, and the next sync then starts from the checkpoint before
    /// it, which is still right, since no record changed in between.
    pub fn only_checkpoint(&self) -> bool {
        self.upserts.is_empty()
            && self.deletions.is_empty()
            && self.retained.is_empty()
            && self.rejected.is_empty()
            && self.snapshot.is_none()
    }
}

/// What one `apply` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub upserted: usize,
    pub deleted: usize,
    /// Records removed by the end of a snapshot because it did not see them.
    pub swept: usize,
}

/// The sync state of one collection, committed with every batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectionState {
    pub checkpoint: Option<Checkpoint>,
    /// The generation of the snapshot in progress, if one is open.
    pub open_snapshot: Option<u64>,
    /// The generation of the last completed snapshot.
    pub generation: u64,
    pub last_change: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// The most recent items skipped as malformed (newest last, capped).
    #[serde(default)]
    pub rejected: Vec<Rejected>,
}

impl CollectionState {
    /// How many rejected items are kept in the status.
    pub const MAX_REJECTED: usize = 100;

    /// The state after `batch` commits (every backend writes it in the batch's transaction):
    /// its checkpoint, the time of the change (a batch that only moves the checkpoint, as a
    /// sync that found nothing new commits, changes no record), no error, its rejected items
    /// (the newest kept).
    pub fn committed(&mut self, batch: &IndexBatch) {
        if let Some(cp) = &batch.checkpoint {
            self.checkpoint = Some(cp.clone());
        }
        let checkpoint_only = batch.upserts.is_empty()
            && batch.deletions.is_empty()
            && batch.retained.is_empty()
            && batch.snapshot.is_none()
            && batch.rejected.is_empty();
        if !checkpoint_only || self.last_change.is_none() {
            self.last_change = Some(batch.at);
        }
        self.last_error = None;
        self.last_error_at = None;
        self.rejected.extend(batch.rejected.iter().cloned());
        let excess = self.rejected.len().saturating_sub(Self::MAX_REJECTED);
        self.rejected.drain(..excess);
    }
}

/// A contact as the index returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredContact {
    pub at: RecordRef,
    pub contact: Contact,
    pub handling_code: Option<HandlingCode>,
}

/// A half-open time window `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl TimeWindow {
    pub fn all() -> Self {
        Self { from: DateTime::<Utc>::MIN_UTC, to: DateTime::<Utc>::MAX_UTC }
    }
}

/// What a local handling-code assignment is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum AssignTarget {
    Contact(RecordRef),
    /// A phone lookup key: for callers who are not contacts ("always block this number").
    Number(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing_new() -> IndexBatch {
        IndexBatch {
            scope: CollectionScope {
                user: UserId::parse("acme.dana").unwrap(),
                account: "book".into(),
                collection: "/dana/book/".into(),
            },
            upserts: vec![],
            deletions: vec![],
            retained: vec![],
            rejected: vec![],
            checkpoint: Some(Checkpoint::new("token-2")),
            snapshot: None,
            at: Utc::now(),
        }
    }

    /// Only a batch that changes no record and no snapshot may skip waiting for the disk.
    #[test]
    fn only_a_bare_checkpoint_counts_as_nothing_new() {
        assert!(nothing_new().only_checkpoint());
        let id = || RecordId::new("/dana/book/a.vcf");
        let changed: [fn(&mut IndexBatch, RecordId); 4] = [
            |b, id| b.deletions.push(id),
            |b, id| b.retained.push(id),
            |b, id| b.rejected.push(Rejected { id, reason: "no FN".into() }),
            |b, _| b.snapshot = Some(Snapshot { starts: true, ends: true }),
        ];
        for change in changed {
            let mut b = nothing_new();
            change(&mut b, id());
            assert!(!b.only_checkpoint(), "{b:?}");
        }
        let mut b = nothing_new();
        b.upserts.push(IndexedRecord {
            record: Record::Contact(Contact { id: id(), ..Default::default() }),
            keys: vec![],
            handling_code: None,
            derived_with: None,
        });
        assert!(!b.only_checkpoint());
    }
}
