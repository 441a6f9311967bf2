//! Change sets, checkpoints and the sink that commits them.

use crate::{Error, Record, RecordId};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Where a connector stands in a collection: a Graph delta link, a WebDAV sync
/// token, a ctag, or a resume position inside a full listing. Opaque to everyone
/// but the connector that wrote it (connectors usually store JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Checkpoint(pub Vec<u8>);

impl Checkpoint {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Marks a change set as part of a full listing of its collection.
///
/// The sink stamps every record a snapshot upserts or [`ChangeSet::retained`]
/// lists; when a change set with `ends` commits, every record of the collection
/// not stamped since the change set with `starts` is deleted. A crash in the
/// middle of a snapshot resumes from the last checkpoint, inside the same snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// This change set begins a new full listing (any older, unfinished one is abandoned).
    pub starts: bool,
    /// This change set completes the listing: sweep what it did not see.
    pub ends: bool,
}

impl Snapshot {
    /// A snapshot delivered in one change set.
    pub const WHOLE: Snapshot = Snapshot { starts: true, ends: true };
    pub const FIRST: Snapshot = Snapshot { starts: true, ends: false };
    pub const MIDDLE: Snapshot = Snapshot { starts: false, ends: false };
    pub const LAST: Snapshot = Snapshot { starts: false, ends: true };
}

/// An item the connector could not turn into a record. Reported in the
/// account's sync status; it does not stop the sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The item's identity (href, Graph id, file path).
    pub id: RecordId,
    /// Why, in words a person can act on.
    pub reason: String,
}

/// One batch of changes to one collection, valid together with `checkpoint`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChangeSet {
    /// New or changed records.
    pub upserts: Vec<Record>,
    /// Records removed at the source.
    pub deletions: Vec<RecordId>,
    /// During a snapshot: records the connector saw unchanged (same version as
    /// [`KnownVersions`] told it) and did not fetch again. They survive the sweep.
    pub retained: Vec<RecordId>,
    /// Items skipped because they are malformed.
    pub rejected: Vec<Rejected>,
    /// The position after this batch. `None` keeps the previous checkpoint.
    pub checkpoint: Option<Checkpoint>,
    /// Set when this batch is part of a full listing.
    pub snapshot: Option<Snapshot>,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty()
            && self.deletions.is_empty()
            && self.retained.is_empty()
            && self.rejected.is_empty()
            && self.snapshot.is_none()
    }
}

/// The versions (etags) the index holds for a collection, so that a connector
/// can skip fetching unchanged items during a full listing.
pub trait KnownVersions: Send + Sync {
    /// The stored version of `id`, if the record is known.
    fn version(&self, id: &RecordId) -> Option<String>;
}

/// A [`KnownVersions`] that knows nothing: every item is fetched.
pub struct NoKnownVersions;

impl KnownVersions for NoKnownVersions {
    fn version(&self, _id: &RecordId) -> Option<String> {
        None
    }
}

impl KnownVersions for std::collections::HashMap<RecordId, String> {
    fn version(&self, id: &RecordId) -> Option<String> {
        self.get(id).cloned()
    }
}

/// Where a connector delivers change sets. `apply` returns once the change set
/// and its checkpoint are durable, together; if it fails, neither is.
#[async_trait]
pub trait ChangeSink: Send {
    async fn apply(&mut self, changes: ChangeSet) -> Result<(), Error>;

    /// The connector tells how long this sync waited for the source throttling it (once,
    /// when the collection's sync ends, also when it fails). Sinks that wrap another pass it on.
    fn throttled(&mut self, waits: crate::Throttling) {
        let _ = waits;
    }
}

/// A sink that keeps every change set in memory: for tests and dry runs.
#[derive(Debug, Default)]
pub struct VecSink {
    pub applied: Vec<ChangeSet>,
}

impl VecSink {
    /// The last checkpoint applied, if any.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        self.applied.iter().rev().find_map(|c| c.checkpoint.as_ref())
    }

    /// All upserted records, in order.
    pub fn upserts(&self) -> impl Iterator<Item = &Record> {
        self.applied.iter().flat_map(|c| c.upserts.iter())
    }

    /// All rejected items, in order.
    pub fn rejected(&self) -> impl Iterator<Item = &Rejected> {
        self.applied.iter().flat_map(|c| c.rejected.iter())
    }
}

#[async_trait]
impl ChangeSink for VecSink {
    async fn apply(&mut self, changes: ChangeSet) -> Result<(), Error> {
        self.applied.push(changes);
        Ok(())
    }
}
