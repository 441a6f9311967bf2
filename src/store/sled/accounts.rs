//! `AccountStore` on sled, in the user-data tree (so backups carry accounts):
//!
//! | prefix | key        | value                                        |
//! |--------|------------|----------------------------------------------|
//! | `A`    | account id | account settings, secret taken out           |
//! | `S`    | account id | the sealed secret (XChaCha20-Poly1305 bytes) |
//! | `R`    | account id | the last sync's outcome                      |
//! | `N`    | Graph subscription id | a change-notification subscription |

use super::{backend, SledStore};
use crate::model::AccountSpec;
use crate::store::keys::{check_part, key, prefix};
use crate::store::{codec, AccountStore, Result, RunRecord, StoreError, SubscriptionRecord};

const ACCOUNT: u8 = b'A';
const SECRET: u8 = b'S';
const RUN: u8 = b'R';
const SUBSCRIPTION: u8 = b'N';

impl SledStore {
    fn flush_users(&self, doing: &'static str) -> Result<()> {
        self.users.flush().map(|_| ()).map_err(|e| backend(doing, e))
    }
}

impl AccountStore for SledStore {
    fn put_account(&self, spec: &AccountSpec, sealed_secret: Option<&[u8]>) -> Result<()> {
        check_part("account id", &spec.id).map_err(StoreError::Invalid)?;
        let mut batch = sled::Batch::default();
        batch.insert(key(ACCOUNT, &[&spec.id]), codec::encode(spec));
        if let Some(s) = sealed_secret {
            batch.insert(key(SECRET, &[&spec.id]), s);
        }
        self.users.apply_batch(batch).map_err(|e| backend("writing an account", e))?;
        self.flush_users("flushing an account")
    }

    fn account(&self, id: &str) -> Result<Option<AccountSpec>> {
        if check_part("account id", id).is_err() {
            return Ok(None);
        }
        self.users
            .get(key(ACCOUNT, &[id]))
            .map_err(|e| backend("reading an account", e))?
            .map(|v| codec::decode("account", &v))
            .transpose()
    }

    fn accounts(&self) -> Result<Vec<AccountSpec>> {
        self.users
            .scan_prefix(prefix(ACCOUNT, &[]))
            .map(|kv| {
                let (_, v) = kv.map_err(|e| backend("listing accounts", e))?;
                codec::decode("account", &v)
            })
            .collect()
    }

    fn sealed_secret(&self, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.users.get(key(SECRET, &[id])).map_err(|e| backend("reading a secret", e))?.map(|v| v.to_vec()))
    }

    fn put_sealed_secret(&self, id: &str, sealed: &[u8]) -> Result<()> {
        check_part("account id", id).map_err(StoreError::Invalid)?;
        self.users.insert(key(SECRET, &[id]), sealed).map_err(|e| backend("writing a secret", e))?;
        self.flush_users("flushing a secret")
    }

    fn delete_account(&self, id: &str) -> Result<bool> {
        let existed = self.users.contains_key(key(ACCOUNT, &[id])).map_err(|e| backend("deleting an account", e))?;
        let mut batch = sled::Batch::default();
        for p in [ACCOUNT, SECRET, RUN] {
            batch.remove(key(p, &[id]));
        }
        self.users.apply_batch(batch).map_err(|e| backend("deleting an account", e))?;
        self.flush_users("flushing a deleted account")?;
        Ok(existed)
    }

    fn run_record(&self, id: &str) -> Result<Option<RunRecord>> {
        self.users
            .get(key(RUN, &[id]))
            .map_err(|e| backend("reading a sync outcome", e))?
            .map(|v| codec::decode("sync outcome", &v))
            .transpose()
    }

    fn put_run_record(&self, id: &str, run: &RunRecord) -> Result<()> {
        check_part("account id", id).map_err(StoreError::Invalid)?;
        self.users.insert(key(RUN, &[id]), codec::encode(run)).map_err(|e| backend("writing a sync outcome", e))?;
        self.flush_users("flushing a sync outcome")
    }

    /// Written now, on disk with sled's next flush (at most 500 ms).
    fn put_run_record_lazily(&self, id: &str, run: &RunRecord) -> Result<()> {
        check_part("account id", id).map_err(StoreError::Invalid)?;
        self.users.insert(key(RUN, &[id]), codec::encode(run)).map_err(|e| backend("writing a sync outcome", e))?;
        Ok(())
    }

    fn subscriptions(&self) -> Result<Vec<(String, SubscriptionRecord)>> {
        self.users
            .scan_prefix(prefix(SUBSCRIPTION, &[]))
            .map(|kv| {
                let (k, v) = kv.map_err(|e| backend("listing subscriptions", e))?;
                Ok((subscription_id(&k), codec::decode("subscription", &v)?))
            })
            .collect()
    }

    fn subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>> {
        if check_part("subscription id", id).is_err() {
            return Ok(None);
        }
        self.users
            .get(key(SUBSCRIPTION, &[id]))
            .map_err(|e| backend("reading a subscription", e))?
            .map(|v| codec::decode("subscription", &v))
            .transpose()
    }

    fn put_subscription(&self, id: &str, s: &SubscriptionRecord) -> Result<()> {
        check_part("subscription id", id).map_err(StoreError::Invalid)?;
        self.users
            .insert(key(SUBSCRIPTION, &[id]), codec::encode(s))
            .map_err(|e| backend("writing a subscription", e))?;
        self.flush_users("flushing a subscription")
    }

    fn delete_subscription(&self, id: &str) -> Result<()> {
        if check_part("subscription id", id).is_err() {
            return Ok(());
        }
        self.users.remove(key(SUBSCRIPTION, &[id])).map_err(|e| backend("deleting a subscription", e))?;
        self.flush_users("flushing a subscription")
    }
}

/// The subscription id of a key under [`SUBSCRIPTION`].
fn subscription_id(k: &[u8]) -> String {
    crate::store::keys::parts(k).first().map(|p| p.to_string()).unwrap_or_default()
}
