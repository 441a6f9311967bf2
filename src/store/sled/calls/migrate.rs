//! Calls as earlier versions kept them, in the users tree: `c` (user, time,
//! id → record), `h` (user, caller key, time, id) and `i` (id → key of the `c`
//! entry). A data directory written by them is moved into the journal on open;
//! backups keep this form, so a backup restores into any version.

use super::CallJournal;
use crate::model::CallRecord;
use crate::store::keys::{self, key};
use crate::store::sled::backend;
use crate::store::{codec, Result};

const CALL: [u8; 2] = [b'c', keys::SEP];
const BY_CALLER: [u8; 2] = [b'h', keys::SEP];
const BY_ID: [u8; 2] = [b'i', keys::SEP];

/// Whether a users-tree key is one of the old call entries.
pub(in crate::store) fn is_call_entry(k: &[u8]) -> bool {
    [CALL, BY_CALLER, BY_ID].iter().any(|p| k.starts_with(p))
}

/// A call as the old entries it was kept in: `c`, `i`, and `h` if it has a caller key.
pub(in crate::store) fn old_entries(call: &CallRecord) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (u, t, id) = (keys::user(&call.user), keys::time(call.at), call.id.as_str());
    let main = key(b'c', &[u, &t, id]);
    let mut out = vec![(main.clone(), codec::encode(call)), (key(b'i', &[id]), main)];
    if let Some(caller) = &call.caller_key {
        out.push((key(b'h', &[u, caller, &t, id]), Vec::new()));
    }
    out
}

/// The calls among a backup's entries (`h` and `i` are derived from them and dropped).
pub(in crate::store) fn calls_in<'a>(entries: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Result<Vec<CallRecord>> {
    entries.filter(|(k, _)| k.starts_with(&CALL)).map(|(_, v)| codec::decode("call record", v)).collect()
}

/// Moves the calls of the users tree into the journal, then deletes their
/// entries. Safe to repeat if killed halfway: calls already in the journal are
/// not written again (nothing else writes calls before this returns), and the
/// old entries go only after the journal is synced. An entry that does not
/// decode stays where it is (logged), for a later version or a person to read.
pub(in crate::store::sled) fn from_users_tree(users: &sled::Tree, journal: &CallJournal) -> Result<usize> {
    let mut done = sled::Batch::default();
    let (mut moved, mut removed) = (0, 0);
    for kv in users.scan_prefix(CALL) {
        let (k, v) = kv.map_err(|e| backend("reading old call records", e))?;
        match codec::decode::<CallRecord>("call record", &v) {
            Ok(call) => {
                if !journal.contains(&call.id) {
                    journal.put(&call)?;
                    moved += 1;
                }
                done.remove(k);
                removed += 1;
            }
            Err(e) => {
                tracing::error!(key = %String::from_utf8_lossy(&k), error = %e, "an old call record does not decode; left in place")
            }
        }
    }
    for prefix in [BY_CALLER, BY_ID] {
        for kv in users.scan_prefix(prefix) {
            done.remove(kv.map_err(|e| backend("reading old call records", e))?.0);
            removed += 1;
        }
    }
    if removed == 0 {
        return Ok(0);
    }
    journal.flush()?;
    users.apply_batch(done).map_err(|e| backend("removing old call records", e))?;
    users.flush().map_err(|e| backend("removing old call records", e))?;
    if moved > 0 {
        tracing::info!(calls = moved, "moved call records from the user database into the call journal");
    }
    Ok(moved)
}
