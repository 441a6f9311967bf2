//! Bringing a data directory written by an older build to this build's
//! formats, on open.
//!
//! - **User data** (profiles, assignments, last choices, API keys, web tokens,
//!   accounts, sync outcomes) is rewritten in the current value version
//!   ([`codec::VERSION`]) in one atomic sled batch, with [`USERS_FORMAT_KEY`]:
//!   killed halfway, nothing was written and the next open does it again;
//!   values already current are left alone, so it is idempotent; once the
//!   format key is there, opening does not scan user data again. A value that cannot be read is left as it is
//!   (reading it reports the damage) and logged. Values that are not codec
//!   values (called numbers, sealed secrets, the epoch) and call records (the
//!   call journal's) are not touched; version 1 still decodes.
//! - **The index** is rebuildable, so an index of another format
//!   ([`INDEX_FORMAT_KEY`], beside the epoch) is emptied instead of converted:
//!   without checkpoints, the next sync of every collection is a full one. The
//!   format key is removed first and written last, so a kill halfway leaves an
//!   index that the next open empties again.

use super::{backend, users::ProfileEntry, SledStore, INDEX_EPOCH_KEY};
use crate::model::AccountSpec;
use crate::model::HandlingCode;
use crate::store::RunRecord;
use crate::store::StoredKey;
use crate::store::StoredWebToken;
use crate::store::{codec, keys, RecordRef, Result};
use serde::{de::DeserializeOwned, Serialize};

/// The format of the index tree's records and keys, in the index tree.
pub(super) const INDEX_FORMAT_KEY: &[u8] = b"~format";
/// What this build writes: [`codec::VERSION`] for record entries, and this key layout.
pub(super) const INDEX_FORMAT: &[u8] = &[codec::VERSION];
/// The format of user data, in the users tree: [`codec::VERSION`] once every value was upgraded.
pub(super) const USERS_FORMAT_KEY: &[u8] = b"~format";

/// What opening changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Upgraded {
    /// User-data values rewritten in the current version.
    pub user_values: usize,
    /// Whether an index of an older format was emptied (to be rebuilt by the next syncs).
    pub index_emptied: bool,
}

impl SledStore {
    pub(super) fn upgrade(&self) -> Result<Upgraded> {
        let user_values = self.upgrade_user_data()?;
        let index_emptied = self.upgrade_index()?;
        if user_values > 0 || index_emptied {
            tracing::info!(user_values, index_emptied, "data directory upgraded to this build's formats");
        }
        Ok(Upgraded { user_values, index_emptied })
    }

    fn upgrade_user_data(&self) -> Result<usize> {
        let format = self.users.get(USERS_FORMAT_KEY).map_err(|e| backend("reading the user data format", e))?;
        if format.as_deref() == Some(INDEX_FORMAT) {
            return Ok(0);
        }
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in self.users.iter() {
            let (k, v) = kv.map_err(|e| backend("reading user data to upgrade", e))?;
            if k.len() < 2 || k[1] != keys::SEP || !codec::is_old(&v) {
                continue;
            }
            let again = match k[0] {
                b'u' => again::<ProfileEntry>("profile", &v),
                b'g' => again::<HandlingCode>("assignment", &v),
                b'l' => again::<RecordRef>("last choice", &v),
                b'a' => again::<StoredKey>("API key", &v),
                b'w' => again::<StoredWebToken>("web token", &v),
                b'A' => again::<AccountSpec>("account", &v),
                b'R' => again::<RunRecord>("sync outcome", &v),
                _ => continue,
            };
            match again {
                Ok(value) => {
                    batch.insert(k, value);
                    n += 1;
                }
                Err(e) => tracing::error!(key = %String::from_utf8_lossy(&k), error = %e, "user data not upgraded"),
            }
        }
        batch.insert(USERS_FORMAT_KEY, INDEX_FORMAT);
        self.users.apply_batch(batch).map_err(|e| backend("upgrading user data", e))?;
        self.users.flush().map_err(|e| backend("flushing upgraded user data", e))?;
        Ok(n)
    }

    fn upgrade_index(&self) -> Result<bool> {
        let doing = "upgrading the index";
        let live = self.index.current();
        let index = &live.index;
        let format = index.get(INDEX_FORMAT_KEY).map_err(|e| backend(doing, e))?;
        if format.as_deref() == Some(INDEX_FORMAT) {
            return Ok(false);
        }
        let epoch = index.get(INDEX_EPOCH_KEY).map_err(|e| backend(doing, e))?;
        let emptied = index.iter().keys().any(|k| k.is_ok_and(|k| !k.starts_with(b"~")));
        if emptied {
            index.remove(INDEX_FORMAT_KEY).map_err(|e| backend(doing, e))?;
            index.flush().map_err(|e| backend(doing, e))?;
            index.clear().map_err(|e| backend(doing, e))?;
        }
        let mut batch = sled::Batch::default();
        if let Some(epoch) = epoch {
            batch.insert(INDEX_EPOCH_KEY, epoch);
        }
        batch.insert(INDEX_FORMAT_KEY, INDEX_FORMAT);
        index.apply_batch(batch).map_err(|e| backend(doing, e))?;
        index.flush().map_err(|e| backend(doing, e))?;
        Ok(emptied)
    }
}

fn again<T: Serialize + DeserializeOwned>(what: &'static str, v: &[u8]) -> Result<Vec<u8>> {
    Ok(codec::encode(&codec::decode::<T>(what, v)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{UserId, UserProfile};
    use crate::store::keys::key;
    use crate::store::{IndexStore, UserStore};
    use contactbridge_connector::RecordId;

    fn v1<T: Serialize>(t: &T) -> Vec<u8> {
        let mut v = vec![codec::JSON];
        v.extend(serde_json::to_vec(t).unwrap());
        v
    }

    #[test]
    fn version_1_user_data_is_rewritten_once_and_reads_the_same() {
        let s = SledStore::temporary().unwrap();
        let u = UserId::parse("old").unwrap();
        let profile = UserProfile::new(u.clone(), "t");
        let r = RecordRef { account: "a".into(), collection: "c".into(), id: RecordId::new("x") };
        let code = HandlingCode::parse("vip").unwrap();
        let entries = [
            (key(b'u', &["old"]), v1(&serde_json::json!({"profile": profile, "called_keys": ["e:+4930"]}))),
            (key(b'g', &["old", "n:e:+4930"]), v1(&code)),
            (key(b'l', &["old", "e:+4930"]), v1(&r)),
            (key(b'R', &["acc"]), v1(&RunRecord::default())),
            (key(b'S', &["acc"]), vec![1, 2, 3]),
            (key(b'n', &["e:+4930"]), b"old".to_vec()),
        ];
        for (k, v) in &entries {
            s.users.insert(k, v.clone()).unwrap();
        }
        // Damage is left for reads to report, and does not stop the rest.
        s.users.insert(key(b'g', &["old", "n:bad"]), vec![codec::JSON, b'{']).unwrap();

        s.users.remove(USERS_FORMAT_KEY).unwrap();
        assert_eq!(s.upgrade().unwrap(), Upgraded { user_values: 4, index_emptied: false });
        assert_eq!(s.upgrade().unwrap(), Upgraded::default(), "done once");
        s.users.remove(USERS_FORMAT_KEY).unwrap();
        assert_eq!(s.upgrade().unwrap(), Upgraded::default(), "idempotent");
        for (k, v) in &entries {
            let now = s.users.get(k).unwrap().unwrap();
            if [b'S', b'n'].contains(&k[0]) {
                assert_eq!(&now[..], &v[..]);
            } else {
                assert_eq!(now[0], codec::VERSION);
            }
        }
        assert_eq!(s.profile(&u).unwrap().unwrap().id, u);
        assert_eq!(s.user_by_called_number("e:+4930").unwrap(), Some(u.clone()));
        assert_eq!(s.assignment(&u, &crate::store::AssignTarget::Number("e:+4930".into())).unwrap(), Some(code));
        assert_eq!(s.last_choice(&u, "e:+4930").unwrap(), Some(r));
        assert!(matches!(
            s.assignment(&u, &crate::store::AssignTarget::Number("bad".into())),
            Err(crate::store::StoreError::Corrupt { what: "assignment", .. })
        ));
    }

    #[test]
    fn an_index_of_another_format_is_emptied_keeping_its_epoch() {
        let s = SledStore::temporary().unwrap();
        s.index.current().index.insert(INDEX_EPOCH_KEY, &b"epoch"[..]).unwrap();
        s.index.current().index.insert(key(b'r', &["u", "a", "c", "x"]), vec![codec::JSON, b'{']).unwrap();
        s.index
            .current()
            .index
            .insert(key(b'k', &["u", "a", "c"]), codec::encode(&crate::store::CollectionState::default()))
            .unwrap();
        s.index.current().index.remove(INDEX_FORMAT_KEY).unwrap();
        assert!(s.upgrade().unwrap().index_emptied);
        assert_eq!(s.index.current().index.len(), 2);
        assert_eq!(&s.index.current().index.get(INDEX_EPOCH_KEY).unwrap().unwrap()[..], b"epoch");
        assert_eq!(&s.index.current().index.get(INDEX_FORMAT_KEY).unwrap().unwrap()[..], INDEX_FORMAT);
        let u = UserId::parse("u").unwrap();
        assert!(s.collection_states(&u, "a").unwrap().is_empty());
        assert!(!s.upgrade().unwrap().index_emptied);
    }
}
