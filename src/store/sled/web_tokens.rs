//! Web sign-in tokens on sled, in the user-data database under prefix `w`
//! (`w NUL sha256` → [`StoredWebToken`]): login links and browser sessions,
//! only their hashes.

use super::{backend, SledStore};
use crate::store::keys::{check_part, key, prefix};
use crate::store::{codec, Result, StoredWebToken, WebTokenStore};
use chrono::{DateTime, Utc};

const PREFIX: u8 = b'w';

impl WebTokenStore for SledStore {
    fn put_web_token(&self, t: &StoredWebToken) -> Result<()> {
        check_part("token hash", &t.sha256).map_err(crate::store::StoreError::Invalid)?;
        self.users
            .insert(key(PREFIX, &[&t.sha256]), codec::encode(t))
            .map_err(|e| backend("writing a web token", e))?;
        self.users.flush().map(|_| ()).map_err(|e| backend("flushing a web token", e))
    }

    fn web_token(&self, sha256: &str) -> Result<Option<StoredWebToken>> {
        if check_part("token hash", sha256).is_err() {
            return Ok(None);
        }
        self.users
            .get(key(PREFIX, &[sha256]))
            .map_err(|e| backend("reading a web token", e))?
            .map(|v| codec::decode("web token", &v))
            .transpose()
    }

    fn delete_web_token(&self, sha256: &str) -> Result<bool> {
        let old = self.users.remove(key(PREFIX, &[sha256])).map_err(|e| backend("deleting a web token", e))?;
        Ok(old.is_some())
    }

    fn purge_web_tokens(&self, now: DateTime<Utc>) -> Result<usize> {
        let mut n = 0;
        for kv in self.users.scan_prefix(prefix(PREFIX, &[])) {
            let (k, v) = kv.map_err(|e| backend("listing web tokens", e))?;
            let t: StoredWebToken = codec::decode("web token", &v)?;
            if t.expires <= now {
                self.users.remove(k).map_err(|e| backend("deleting a web token", e))?;
                n += 1;
            }
        }
        Ok(n)
    }
}
