//! `UserStore` on sled: profiles, called numbers, assignments and last
//! choices in the user-data database; call history in the call journal
//! (`calls/`). This table lists every prefix
//! of that database, including those other files own: pick a free one here.
//!
//! | prefix | key                                   | value                    |
//! |--------|---------------------------------------|--------------------------|
//! | `u`    | user                                  | profile + its number keys|
//! | `n`    | called-number key                     | user                     |
//! | `g`    | user, assignment target               | handling code            |
//! | `l`    | user, number key                      | record ref               |
//! | `c`    | (earlier versions, `calls::migrate`)  | call record              |
//! | `h`    | (earlier versions)                    | –                        |
//! | `i`    | (earlier versions)                    | key of the `c` entry     |
//! | `a`    | API key id (`api_keys.rs`)            | hashed key, scope, tenant|
//! | `w`    | token hash (`web_tokens.rs`)          | user, kind, expiry       |
//! | `A`    | account id (`accounts.rs`)            | account settings         |
//! | `S`    | account id (`accounts.rs`)            | sealed secret            |
//! | `R`    | account id (`accounts.rs`)            | last sync outcome        |
//! | `~`    | `~index-epoch` (`mod.rs`)             | the index's epoch        |
//! | `~`    | `~format` (`upgrade.rs`)              | user data's format       |
//! | `~`    | `~restored-at` (`backup.rs`)          | time of the last restore |

use super::{backend, SledStore};
use crate::model::{CallId, CallRecord, HandlingCode, UserId, UserProfile};
use crate::store::keys::{self, key, prefix};
use crate::store::{codec, AssignTarget, CallStore, RecordRef, Result, StoreError, TimeWindow, UserStore};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub(in crate::store) struct ProfileEntry {
    pub(in crate::store) profile: UserProfile,
    pub(in crate::store) called_keys: Vec<String>,
}

pub(in crate::store) fn target_token(t: &AssignTarget) -> String {
    match t {
        AssignTarget::Contact(r) => format!("c:{}", r.to_token()),
        AssignTarget::Number(k) => format!("n:{k}"),
    }
}

/// A stored profile; criteria written before their caps existed are clamped to them.
pub(in crate::store) fn decode_profile(v: &[u8]) -> Result<ProfileEntry> {
    let mut entry: ProfileEntry = codec::decode("profile", v)?;
    entry.profile.context = entry.profile.context.clamped();
    Ok(entry)
}

impl SledStore {
    fn profile_entry(&self, user: &UserId) -> Result<Option<ProfileEntry>> {
        self.users
            .get(key(b'u', &[keys::user(user)]))
            .map_err(|e| backend("reading a profile", e))?
            .map(|v| decode_profile(&v))
            .transpose()
    }
}

impl UserStore for SledStore {
    fn put_profile(&self, profile: &UserProfile, called_keys: &[String]) -> Result<()> {
        profile.validate().map_err(StoreError::Invalid)?;
        let user = keys::user(&profile.id);
        for k in called_keys {
            keys::check_part("called number", k).map_err(StoreError::Invalid)?;
        }
        let entry = codec::encode(&ProfileEntry { profile: profile.clone(), called_keys: called_keys.to_vec() });
        let result = self.users.transaction(|tx| {
            let old: Option<ProfileEntry> = tx.get(key(b'u', &[user]))?.and_then(|v| codec::decode("profile", &v).ok());
            for k in called_keys {
                if let Some(owner) = tx.get(key(b'n', &[k]))? {
                    if owner.as_ref() != user.as_bytes() {
                        return sled::transaction::abort(format!(
                            "called number {k} already belongs to user {}",
                            String::from_utf8_lossy(&owner)
                        ));
                    }
                }
            }
            for k in old.iter().flat_map(|o| o.called_keys.iter()) {
                tx.remove(key(b'n', &[k]))?;
            }
            for k in called_keys {
                tx.insert(key(b'n', &[k]), user.as_bytes())?;
            }
            tx.insert(key(b'u', &[user]), entry.clone())?;
            Ok(())
        });
        match result {
            Ok(()) => {
                self.profiles.write().expect("profile cache lock").insert(profile.id.clone(), profile.clone());
                self.users.flush().map(|_| ()).map_err(|e| backend("flushing a profile", e))
            }
            Err(sled::transaction::TransactionError::Abort(msg)) => Err(StoreError::Invalid(msg)),
            Err(sled::transaction::TransactionError::Storage(e)) => Err(backend("writing a profile", e)),
        }
    }

    fn profile(&self, user: &UserId) -> Result<Option<UserProfile>> {
        if let Some(p) = self.profiles.read().expect("profile cache lock").get(user) {
            return Ok(Some(p.clone()));
        }
        let profile = self.profile_entry(user)?.map(|e| e.profile);
        if let Some(p) = &profile {
            self.profiles.write().expect("profile cache lock").insert(user.clone(), p.clone());
        }
        Ok(profile)
    }

    fn profiles(&self) -> Result<Vec<UserProfile>> {
        self.users
            .scan_prefix([b'u', 0])
            .map(|kv| {
                let (_, v) = kv.map_err(|e| backend("listing profiles", e))?;
                Ok(decode_profile(&v)?.profile)
            })
            .collect()
    }

    fn delete_user(&self, user: &UserId) -> Result<bool> {
        self.profiles.write().expect("profile cache lock").remove(user);
        let Some(entry) = self.profile_entry(user)? else { return Ok(false) };
        let u = keys::user(user);
        // Calls first: a crash before the profile goes leaves a user to delete again, never calls
        // of a user that is gone.
        self.calls.delete_user(u)?;
        let mut batch = sled::Batch::default();
        for k in &entry.called_keys {
            batch.remove(key(b'n', &[k]));
        }
        for p in [b'g', b'l'] {
            for kv in self.users.scan_prefix(prefix(p, &[u])) {
                batch.remove(kv.map_err(|e| backend("deleting a user", e))?.0);
            }
        }
        batch.remove(key(b'u', &[u]));
        self.users.apply_batch(batch).map_err(|e| backend("deleting a user", e))?;
        Ok(true)
    }

    fn user_by_called_number(&self, k: &str) -> Result<Option<UserId>> {
        match self.users.get(key(b'n', &[k])).map_err(|e| backend("finding a called number", e))? {
            Some(v) => UserId::parse(&String::from_utf8_lossy(&v))
                .map(Some)
                .map_err(|reason| StoreError::Corrupt { what: "called number", reason }),
            None => Ok(None),
        }
    }

    fn assignment(&self, user: &UserId, target: &AssignTarget) -> Result<Option<HandlingCode>> {
        self.users
            .get(key(b'g', &[keys::user(user), &target_token(target)]))
            .map_err(|e| backend("reading an assignment", e))?
            .map(|v| codec::decode("assignment", &v))
            .transpose()
    }

    fn assign(&self, user: &UserId, target: &AssignTarget, code: Option<&HandlingCode>) -> Result<()> {
        let token = target_token(target);
        keys::check_part("assignment target", &token).map_err(StoreError::Invalid)?;
        let k = key(b'g', &[keys::user(user), &token]);
        match code {
            Some(c) => self.users.insert(k, codec::encode(c)).map(|_| ()),
            None => self.users.remove(k).map(|_| ()),
        }
        .map_err(|e| backend("writing an assignment", e))?;
        self.users.flush().map(|_| ()).map_err(|e| backend("flushing an assignment", e))
    }

    fn last_choice(&self, user: &UserId, number_key: &str) -> Result<Option<RecordRef>> {
        self.users
            .get(key(b'l', &[keys::user(user), number_key]))
            .map_err(|e| backend("reading a last choice", e))?
            .map(|v| codec::decode("last choice", &v))
            .transpose()
    }

    fn set_last_choice(&self, user: &UserId, number_key: &str, contact: &RecordRef) -> Result<()> {
        keys::check_part("number key", number_key).map_err(StoreError::Invalid)?;
        self.users
            .insert(key(b'l', &[keys::user(user), number_key]), codec::encode(contact))
            .map_err(|e| backend("writing a last choice", e))?;
        Ok(())
    }
}

impl CallStore for SledStore {
    fn put_call(&self, call: &CallRecord) -> Result<()> {
        // Backups keep calls under sled-style keys (`calls::migrate`): no NUL in their parts.
        keys::check_part("call id", call.id.as_str()).map_err(StoreError::Invalid)?;
        if let Some(caller) = &call.caller_key {
            keys::check_part("caller key", caller).map_err(StoreError::Invalid)?;
        }
        self.calls.put(call)
    }

    fn call(&self, id: &CallId) -> Result<Option<CallRecord>> {
        self.calls.get(id)
    }

    fn calls(&self, user: &UserId, window: TimeWindow, limit: usize) -> Result<Vec<CallRecord>> {
        Ok(self.calls.of_user(user.as_str(), window, limit))
    }

    fn calls_from(&self, user: &UserId, caller_key: &str, window: TimeWindow, limit: usize) -> Result<Vec<CallRecord>> {
        Ok(self.calls.of_caller(user.as_str(), caller_key, window, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ContextCriteria;

    #[test]
    fn criteria_stored_before_their_caps_are_read_clamped() {
        let store = SledStore::temporary().unwrap();
        let mut profile = UserProfile::new(UserId::parse("old").unwrap(), "t");
        profile.context.days_back = 4_000_000_000;
        profile.context.days_ahead = 4_000_000_000;
        profile.context.max_calls = u32::MAX;
        // Written as an older bridge did: without today's validation.
        let entry = ProfileEntry { profile: profile.clone(), called_keys: vec![] };
        store.users.insert(key(b'u', &[keys::user(&profile.id)]), codec::encode(&entry)).unwrap();

        let read = store.profile(&profile.id).unwrap().unwrap();
        assert_eq!(
            (read.context.days_back, read.context.days_ahead),
            (ContextCriteria::MAX_DAYS, ContextCriteria::MAX_DAYS)
        );
        assert_eq!(read.context.max_calls, ContextCriteria::MAX_ITEMS);
        assert_eq!(store.profiles().unwrap()[0].context, read.context);
    }
}
