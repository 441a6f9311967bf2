//! The PostgreSQL store as a [`Backend`](crate::store::Backend): it waits on
//! the network, and its backups are the same entries as sled's.

use super::kv::Table;
use super::PgStore;
use crate::store::sled::calls::migrate;
use crate::store::{codec, Capabilities, Maintenance, Result, UserDataExport};
use std::collections::BTreeMap;
use std::path::Path;

/// Every call waits on a server: async callers offload it.
impl Capabilities for PgStore {
    fn blocking(&self) -> bool {
        true
    }
}

/// Keys of sled's user data that belong to a sled data directory, not to a backup's content.
fn is_sled_bookkeeping(k: &[u8]) -> bool {
    k.first() == Some(&b'~')
}

impl Maintenance for PgStore {
    fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn lookup_view(&self) -> Option<std::sync::Arc<dyn crate::store::Store>> {
        PgStore::lookup_view(self).map(|v| std::sync::Arc::new(v) as std::sync::Arc<dyn crate::store::Store>)
    }

    /// Leases in `sync_leases` on this pool; the bus on connections of its own.
    fn replication(&self, replica: &str) -> Result<Option<crate::store::Replication>> {
        Ok(Some(crate::store::Replication {
            leases: std::sync::Arc::new(super::lease::PgLeases::new(self.clone())),
            bus: std::sync::Arc::new(super::bus::PgBus::open(
                super::bus::Server { url: self.inner.connect_url.clone(), tls: self.inner.tls.clone() },
                replica.to_string(),
            )?),
        }))
    }

    /// Every commit is durable when it returns (the server's `synchronous_commit`).
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn size_on_disk(&self) -> u64 {
        self.database_size().unwrap_or(0)
    }

    fn export_user_data(&self) -> UserDataExport {
        let read = self.with(|c| {
            c.transaction(|s| {
                // One snapshot of both tables.
                s.execute("exporting user data", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", &[])?;
                let mut entries = s.scan_prefix(Table::Users, "exporting user data", &[])?;
                for row in s.query("exporting calls", "SELECT v FROM calls ORDER BY id", &[])? {
                    let call = codec::decode("call record", row.get::<_, &[u8]>(0))?;
                    entries.extend(migrate::old_entries(&call));
                }
                Ok(entries)
            })
        });
        match read {
            Ok(mut entries) => {
                entries.sort();
                UserDataExport { entries, unreadable: Vec::new() }
            }
            Err(e) => UserDataExport { entries: Vec::new(), unreadable: vec![format!("the PostgreSQL database: {e}")] },
        }
    }

    /// Replaces all user data in one transaction: a failure leaves the old data whole.
    fn import_user_data(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let calls = migrate::calls_in(entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))?;
        let changes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = entries
            .iter()
            .filter(|(k, _)| !migrate::is_call_entry(k) && !is_sled_bookkeeping(k))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        self.with(|c| {
            c.transaction(|s| {
                s.execute("clearing user data", "DELETE FROM user_kv", &[])?;
                s.execute("clearing call records", "DELETE FROM calls", &[])?;
                s.write(Table::Users, "restoring user data", changes)?;
                super::users::notify_users_changed(s, None)?;
                for call in &calls {
                    s.execute(
                        "restoring call records",
                        "INSERT INTO calls (id, user_id, caller_key, at_us, v) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (id) DO UPDATE SET v = excluded.v",
                        &[
                            &call.id.as_str(),
                            &call.user.as_str(),
                            &call.caller_key,
                            &call.at.timestamp_micros(),
                            &codec::encode(call),
                        ],
                    )?;
                }
                Ok(())
            })
        })
    }
}
