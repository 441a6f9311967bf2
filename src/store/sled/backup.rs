//! User data out and in: `backup` saves every entry it can read and names
//! the ones it cannot; `restore` never opens the user data it replaces (it
//! may be what is damaged): it moves it aside and writes a fresh database.

use super::{backend, describe, open_db, other, SledStore, StoreOptions, USERS_EPOCH_KEY};
use crate::store::{Result, StoreError, UserDataExport};
use std::path::{Path, PathBuf};

/// When user data was last restored (prefix `~`, see `users.rs`).
const RESTORED_KEY: &[u8] = b"~restored-at";

type Item = std::result::Result<(sled::IVec, sled::IVec), sled::Error>;

impl SledStore {
    /// Every key/value of user data that can be read, for `backup`. Calls come
    /// as the `c`/`h`/`i` entries earlier versions kept in the user database
    /// (`calls::migrate`), so the backup format is the same for every version.
    pub fn export_user_data(&self) -> UserDataExport {
        let mut out = salvage(self.users.iter(), self.users.iter().rev());
        match self.calls.all() {
            Ok(calls) => out.entries.extend(calls.iter().flat_map(super::calls::migrate::old_entries)),
            Err(e) => out.unreadable.push(format!("the call journal: {e}")),
        }
        out.entries.sort();
        out
    }

    /// Replaces the user data in `dir` with `entries` (a backup's content)
    /// without opening the user data there: it is moved aside
    /// (`users.before-restore-<time>`, returned) and a fresh database written.
    /// Then the store is opened as usual (the index keeps its epoch).
    pub fn restore_user_data(
        dir: &Path,
        options: &StoreOptions,
        entries: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(Self, Option<PathBuf>)> {
        std::fs::create_dir_all(dir).map_err(|e| other("creating the data directory", e))?;
        let users = dir.join("users");
        let aside = if users.exists() {
            // sled holds an exclusive lock on `db` while a process has it open.
            let db_file = users.join("db");
            // A previous holder may keep it a moment after closing (see LOCK_WAIT).
            let deadline = std::time::Instant::now() + super::LOCK_WAIT;
            let _lock = match std::fs::File::open(&db_file) {
                Ok(f) => loop {
                    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                        Ok(()) => break Some(f),
                        Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                            std::thread::sleep(std::time::Duration::from_millis(20))
                        }
                        Err(rustix::io::Errno::WOULDBLOCK) => {
                            return Err(StoreError::Locked { path: users.display().to_string() })
                        }
                        Err(e) => return Err(other("locking the user data", std::io::Error::from(e))),
                    }
                },
                Err(_) => None,
            };
            let at = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f");
            let aside = users.with_file_name(format!("users.before-restore-{at}"));
            std::fs::rename(&users, &aside).map_err(|e| other("moving the old user data aside", e))?;
            // The call journal is user data too: the backup's calls replace it
            // (they move into a fresh journal when the store opens below).
            let journal = dir.join("calls");
            if journal.exists() {
                let journal_aside = dir.join(format!("calls.before-restore-{at}"));
                std::fs::rename(&journal, &journal_aside).map_err(|e| other("moving the old call journal aside", e))?;
            }
            Some(aside)
        } else {
            None
        };
        {
            let db = open_db(&users, options.users_cache_bytes())
                .map_err(|e| StoreError::Backend { doing: "creating fresh user data", cause: describe(&e).into() })?;
            let tree = db.open_tree("users").map_err(|e| backend("opening the users tree", e))?;
            let mut batch = sled::Batch::default();
            // The index's epoch comes from the index, not from the backup.
            for (k, v) in entries.iter().filter(|(k, _)| k.as_slice() != USERS_EPOCH_KEY) {
                batch.insert(k.as_slice(), v.as_slice());
            }
            // Never empty, so that opening does not take it for damaged data.
            batch.insert(RESTORED_KEY, chrono::Utc::now().to_rfc3339().as_bytes());
            tree.apply_batch(batch).map_err(|e| backend("restoring user data", e))?;
            db.flush().map_err(|e| backend("flushing restored user data", e))?;
        }
        Ok((Self::open_with(dir, options)?, aside))
    }
}

/// Reads entries front to back until one fails, then back to front until
/// the same point; what lies between is named as unreadable. A panic inside
/// sled counts as a failure.
fn salvage(forward: impl Iterator<Item = Item>, backward: impl Iterator<Item = Item>) -> UserDataExport {
    fn next(it: &mut dyn Iterator<Item = Item>) -> Option<std::result::Result<(sled::IVec, sled::IVec), String>> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| it.next())) {
            Ok(item) => item.map(|r| r.map_err(|e| describe(&e))),
            Err(_) => Some(Err("sled panicked reading it".into())),
        }
    }
    let mut out = UserDataExport::default();
    let mut forward = forward;
    let failed = loop {
        match next(&mut forward) {
            Some(Ok((k, v))) => out.entries.push((k.to_vec(), v.to_vec())),
            Some(Err(e)) => break e,
            None => return out,
        }
    };
    let after = out.entries.last().map(|(k, _)| k.clone());
    let mut tail = Vec::new();
    let mut backward = backward;
    // `Some(before)`: entries were lost before that key (`None`: the last one).
    let gap = loop {
        match next(&mut backward) {
            Some(Ok((k, v))) if after.as_deref().is_none_or(|a| k.as_ref() > a) => tail.push((k.to_vec(), v.to_vec())),
            // Back where the forward read failed: nothing lost after all.
            Some(Ok(_)) | None => break None,
            Some(Err(_)) => break Some(tail.last().map(|(k, _)| k.clone())),
        }
    };
    if let Some(before) = gap {
        let bound = |k: &Option<Vec<u8>>, none: &str| k.as_ref().map_or(none.to_string(), |k| show_key(k));
        out.unreadable.push(format!(
            "the entries after {} and before {} ({failed})",
            bound(&after, "the first"),
            bound(&before, "the last")
        ));
    }
    out.entries.extend(tail.into_iter().rev());
    out
}

/// A key as text (keys are UTF-8 parts with separators), quoted.
fn show_key(k: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(k: &str) -> Item {
        Ok((k.as_bytes().into(), b"v".as_slice().into()))
    }

    fn damaged() -> Item {
        Err(sled::Error::Corruption { at: None, bt: () })
    }

    fn keys(e: &UserDataExport) -> Vec<String> {
        e.entries.iter().map(|(k, _)| String::from_utf8(k.clone()).unwrap()).collect()
    }

    /// sled's iterator repeats its error (it cannot step past a page it cannot
    /// read): the entries on both sides of the damage are kept and the gap named.
    #[test]
    fn a_backup_keeps_the_entries_around_unreadable_ones_and_names_the_gap() {
        let forward = vec![ok("a"), ok("b"), damaged(), damaged()].into_iter();
        let backward = vec![ok("e"), ok("d"), damaged()].into_iter();
        let e = salvage(forward, backward);
        assert_eq!(keys(&e), ["a", "b", "d", "e"]);
        assert_eq!(e.unreadable, [r#"the entries after "b" and before "d" (sled found damaged data)"#]);

        let e = salvage(vec![damaged()].into_iter(), vec![damaged()].into_iter());
        assert!(e.entries.is_empty());
        assert_eq!(e.unreadable, ["the entries after the first and before the last (sled found damaged data)"]);

        let e = salvage(vec![ok("a"), ok("b")].into_iter(), vec![ok("b"), ok("a")].into_iter());
        assert_eq!((keys(&e), e.unreadable.len()), (vec!["a".to_string(), "b".into()], 0));
    }
}
