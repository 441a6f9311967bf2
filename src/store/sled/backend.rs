//! The sled store as a [`Backend`](crate::store::Backend): its maintenance
//! methods (inherent, in `mod.rs`) and its capabilities.

use super::SledStore;
use crate::store::{Capabilities, Maintenance, Result, UserDataExport};
use std::path::Path;

/// sled answers from memory or local disk: callers run it inline.
impl Capabilities for SledStore {}

impl Maintenance for SledStore {
    fn dir(&self) -> &Path {
        SledStore::dir(self)
    }

    fn flush(&self) -> Result<()> {
        SledStore::flush(self)
    }

    fn size_on_disk(&self) -> u64 {
        SledStore::size_on_disk(self)
    }

    fn export_user_data(&self) -> UserDataExport {
        SledStore::export_user_data(self)
    }

    fn import_user_data(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        SledStore::import_user_data(self, entries)
    }
}
