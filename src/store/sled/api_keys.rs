//! API keys on sled, in the user-data database under prefix `a`
//! (`a NUL key id` → [`StoredKey`]), so backups carry them.

use super::{backend, SledStore};
use crate::store::keys::{check_part, key, prefix};
use crate::store::{codec, ApiKeyStore, Result, StoreError, StoredKey};

const PREFIX: u8 = b'a';

impl ApiKeyStore for SledStore {
    fn put_key(&self, k: &StoredKey) -> Result<()> {
        check_part("key id", &k.id).map_err(StoreError::Invalid)?;
        self.users.insert(key(PREFIX, &[&k.id]), codec::encode(k)).map_err(|e| backend("writing an API key", e))?;
        self.users.flush().map(|_| ()).map_err(|e| backend("flushing an API key", e))
    }

    fn key(&self, id: &str) -> Result<Option<StoredKey>> {
        if check_part("key id", id).is_err() {
            return Ok(None);
        }
        self.users
            .get(key(PREFIX, &[id]))
            .map_err(|e| backend("reading an API key", e))?
            .map(|v| codec::decode("API key", &v))
            .transpose()
    }

    fn keys(&self, tenant: Option<&str>) -> Result<Vec<StoredKey>> {
        let mut out = Vec::new();
        for kv in self.users.scan_prefix(prefix(PREFIX, &[])) {
            let (_, v) = kv.map_err(|e| backend("listing API keys", e))?;
            let k: StoredKey = codec::decode("API key", &v)?;
            if tenant.is_none_or(|t| t == k.tenant) {
                out.push(k);
            }
        }
        Ok(out)
    }

    fn delete_key(&self, id: &str) -> Result<bool> {
        let old = self.users.remove(key(PREFIX, &[id])).map_err(|e| backend("deleting an API key", e))?;
        Ok(old.is_some())
    }
}
