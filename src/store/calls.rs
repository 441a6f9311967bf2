//! The call history: one record per resolved call, completed by later call
//! events. User-owned (backed up); the only write on the lookup path.

use super::{Result, TimeWindow};
use crate::model::{CallId, CallRecord, UserId};

/// Call records. Every query is scoped by the user except [`CallStore::call`]
/// (call ids are unique and unguessable; callers check the tenant).
pub trait CallStore: Send + Sync {
    /// Writes a call record (new or updated). When this returns `Ok` it is
    /// visible to every read and survives a crash of the process; an `Err`
    /// means it was not written (full disk, I/O error). A backend may make it
    /// safe from a machine crash later, so the lookup path does not wait on
    /// the disk: it documents how much later (sled: `store::sled::calls`).
    fn put_call(&self, call: &CallRecord) -> Result<()>;
    fn call(&self, id: &CallId) -> Result<Option<CallRecord>>;
    /// The user's calls in `window`, newest first.
    fn calls(&self, user: &UserId, window: TimeWindow, limit: usize) -> Result<Vec<CallRecord>>;
    /// The user's calls from a caller (by number key), newest first.
    fn calls_from(&self, user: &UserId, caller_key: &str, window: TimeWindow, limit: usize) -> Result<Vec<CallRecord>>;
}
