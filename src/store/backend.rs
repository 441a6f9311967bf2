//! The whole backend as one trait object, how it is opened, and how async
//! callers run store work without blocking the runtime's workers.

use super::{AccountStore, ApiKeyStore, RegistryStore, Result, WebTokenStore};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a backend answers.
pub trait Capabilities: Send + Sync {
    /// Whether a call may wait on something slower than memory and local disk
    /// (a database server across the network). Async callers then run store
    /// work on tokio's blocking pool ([`offload`]); for `false` (sled) they
    /// call inline.
    fn blocking(&self) -> bool {
        false
    }
}

/// What the CLI and the servers need of a backend beyond its data: the
/// `backup`/`restore` path and shutdown.
pub trait Maintenance: Send + Sync {
    /// The data directory (empty for a temporary store).
    fn dir(&self) -> &Path;
    /// Makes everything written so far durable.
    fn flush(&self) -> Result<()>;
    /// Bytes on disk.
    fn size_on_disk(&self) -> u64;
    /// Every entry of user data (not the index), for `backup`.
    fn export_user_data(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Replaces all user data with a backup's content.
    fn import_user_data(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()>;
}

/// Every piece of persistent state: what `serve`, `sync` and the CLI hold, as
/// `Arc<dyn Backend>`. It coerces to each part ([`super::Store`] for the
/// lookup path, [`ApiKeyStore`], [`WebTokenStore`], [`RegistryStore`]).
pub trait Backend: RegistryStore + ApiKeyStore + WebTokenStore + Maintenance {}
impl<T: RegistryStore + AccountStore + ApiKeyStore + WebTokenStore + Maintenance> Backend for T {}

/// Which backend keeps the data (`[store] backend`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// The embedded sled databases in the data directory.
    #[default]
    Sled,
}

/// How [`open`] opens the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    pub backend: BackendKind,
    /// The data directory.
    pub dir: PathBuf,
    /// sled's settings.
    pub sled: super::StoreOptions,
}

/// Opens (or creates) the backend `options` names.
pub fn open(options: &OpenOptions) -> Result<Arc<dyn Backend>> {
    match options.backend {
        BackendKind::Sled => Ok(Arc::new(super::SledStore::open_with(&options.dir, &options.sled)?)),
    }
}

/// Runs `work` (a request's store and resolver calls) for an async caller:
/// inline when the backend answers from memory, on tokio's blocking pool when
/// it may wait on the network ([`Capabilities::blocking`]), so that a network
/// round trip never holds one of the runtime's workers. Put a whole request's
/// work in one closure: a blocking backend then costs one thread hop per
/// request. A panic in `work` resumes in the caller, as it would inline.
pub async fn offload<S, T, F>(store: &S, work: F) -> T
where
    S: Capabilities + ?Sized,
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if !store.blocking() {
        return work();
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("store work was cancelled: {e}"),
    }
}
