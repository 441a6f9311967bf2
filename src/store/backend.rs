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
    /// Every entry of user data (not the index) that can be read, for
    /// `backup`, and what could not be read.
    fn export_user_data(&self) -> UserDataExport;
    /// Replaces all user data of this running store with a backup's content.
    fn import_user_data(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()>;
    /// For a store several replicas share (PostgreSQL): the sync leases and
    /// the event bus of replica `replica`. `None` (sled): one process holds
    /// the store, nothing to coordinate.
    fn replication(&self, replica: &str) -> Result<Option<Replication>> {
        let _ = replica;
        Ok(None)
    }
    /// The store the lookup path runs on when it differs from this one (reads
    /// from a hot standby: [`super::split`]).
    fn lookup_view(&self) -> Option<Arc<dyn super::Store>> {
        None
    }
}

/// What replicas sharing one store coordinate through ([`Maintenance::replication`]).
#[derive(Clone)]
pub struct Replication {
    pub leases: Arc<dyn super::LeaseStore>,
    pub bus: Arc<dyn super::EventBus>,
}

/// What `backup` could read.
#[derive(Debug, Default)]
pub struct UserDataExport {
    /// Every entry read, in key order.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// The stretches of entries that could not be read, in words (between
    /// which keys, and why). Empty when everything was read.
    pub unreadable: Vec<String>,
}

/// Replaces the user data in `options.dir` with a backup's `entries` without
/// opening the user data there first (it may be what is damaged): the old is
/// kept aside (returned) where the backend can. Then opens the store.
pub fn restore(options: &OpenOptions, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<(Arc<dyn Backend>, Option<PathBuf>)> {
    match options.backend {
        BackendKind::Sled => {
            let (store, aside) = super::SledStore::restore_user_data(&options.dir, &options.sled, entries)?;
            Ok((Arc::new(store), aside))
        }
        BackendKind::Postgres => {
            // The database is not a file to move aside: the replacement is one transaction.
            let store = open(options)?;
            store.import_user_data(entries)?;
            Ok((store, None))
        }
    }
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
    /// A PostgreSQL database (`[store.postgres]`), which several replicas may share.
    Postgres,
}

/// How [`open`] opens the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    pub backend: BackendKind,
    /// The data directory.
    pub dir: PathBuf,
    /// sled's settings.
    pub sled: super::StoreOptions,
    /// PostgreSQL's settings (required for [`BackendKind::Postgres`]).
    pub postgres: Option<super::PgOptions>,
}

/// Opens (or creates) the backend `options` names.
pub fn open(options: &OpenOptions) -> Result<Arc<dyn Backend>> {
    match options.backend {
        BackendKind::Sled => Ok(Arc::new(super::SledStore::open_with(&options.dir, &options.sled)?)),
        BackendKind::Postgres => {
            let pg = options.postgres.as_ref().ok_or_else(|| {
                super::StoreError::Invalid("[store] backend = \"postgres\" needs a [store.postgres] url".into())
            })?;
            Ok(Arc::new(super::PgStore::open(pg, &options.dir)?))
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A backend whose every call waits on the network.
    struct Remote;
    impl Capabilities for Remote {
        fn blocking(&self) -> bool {
            true
        }
    }

    /// A backend that answers from memory.
    struct Local;
    impl Capabilities for Local {}

    /// How long a cheap request waits while another request's store work
    /// takes 600 ms on a runtime with one worker.
    fn cheap_request_wait_beside_slow_work(slow: Arc<dyn Capabilities>) -> Duration {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let (started, is_started) = tokio::sync::oneshot::channel();
            let slow_request = tokio::spawn(async move {
                offload(slow.as_ref(), move || {
                    let _ = started.send(());
                    std::thread::sleep(Duration::from_millis(600)); // a network round trip
                })
                .await
            });
            let _ = is_started.await;
            let asked = Instant::now();
            let cheap = tokio::spawn(async { offload(&Local, || 42).await });
            assert_eq!(cheap.await.unwrap(), 42);
            let waited = asked.elapsed();
            slow_request.await.unwrap();
            waited
        })
    }

    #[test]
    fn a_blocking_backends_work_leaves_the_runtime_free() {
        let waited = cheap_request_wait_beside_slow_work(Arc::new(Remote));
        assert!(waited < Duration::from_millis(300), "the cheap request waited {waited:?}");
    }

    #[test]
    fn inline_work_holds_the_only_worker_which_is_why_blocking_backends_are_offloaded() {
        // The control: the same slow work run inline (as for sled, where it takes microseconds).
        let waited = cheap_request_wait_beside_slow_work(Arc::new(Local));
        assert!(waited >= Duration::from_millis(300), "the cheap request waited only {waited:?}");
    }

    #[test]
    fn a_panic_in_offloaded_work_reaches_the_caller() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let caught = rt.block_on(async {
            tokio::spawn(async { offload(&Remote, || panic!("store work failed")).await }).await.unwrap_err()
        });
        assert!(caught.is_panic());
    }

    #[test]
    fn open_gives_the_configured_backend() {
        let dir = tempfile::tempdir().unwrap();
        let options = OpenOptions {
            backend: BackendKind::Sled,
            dir: dir.path().to_path_buf(),
            sled: crate::store::StoreOptions::default(),
            postgres: None,
        };
        let store = open(&options).unwrap();
        assert_eq!(store.dir(), dir.path());
        assert!(!store.blocking(), "sled answers inline");
        store
            .put_profile(&crate::model::UserProfile::new(crate::model::UserId::parse("u").unwrap(), "t"), &[])
            .unwrap();
        store.flush().unwrap();
    }
}
