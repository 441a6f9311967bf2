//! The runtime syncs run on, apart from the one that serves lookups.
//!
//! A sync fetches, parses, indexes and commits: seconds of CPU for a large
//! address book. On the serving runtime that work held up the gRPC and web
//! tasks queued behind it (ResolveCall p99 4.6 → 28.5 ms at 1,000/s during a
//! 10,000-card CardDAV sync, issue 16). `serve` therefore runs its scheduler,
//! and the syncs the admin API starts, on a [`SyncRuntime`]: one worker thread,
//! and its threads (the worker and its blocking pool, where parsing and the
//! commits run) at a lower OS priority, so that when the cores are busy the
//! lookups come first. The commit itself leaves the worker too
//! ([`super::IndexSink`]).

use std::future::Future;
use tokio::runtime::{Handle, Runtime};

/// How much nicer than the thread that starts it the sync runtime's threads run
/// (nice 0 is normal, 19 the lowest priority).
pub const SYNC_NICE: i32 = 10;

/// A tokio runtime for syncs. [`SyncRuntime::close`] ends it after the commits
/// still running; dropping it does too outside async code, while inside (an
/// error path) it does not wait (a commit is atomic whether it ends or not).
pub struct SyncRuntime {
    runtime: Option<Runtime>,
}

impl Drop for SyncRuntime {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else { return };
        if Handle::try_current().is_ok() {
            // Dropping a runtime where blocking is not allowed panics.
            runtime.shutdown_background();
        } else {
            drop(runtime);
        }
    }
}

impl SyncRuntime {
    /// One worker thread named `sync`, its threads at [`SYNC_NICE`].
    pub fn new() -> std::io::Result<Self> {
        Self::with_options(1, SYNC_NICE)
    }

    /// `workers` worker threads; every thread of the runtime `nice` steps nicer than
    /// the calling thread (Linux; elsewhere ignored).
    pub fn with_options(workers: usize, nice: i32) -> std::io::Result<Self> {
        let nice = (thread_nice() + nice).min(19);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name("sync")
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()?;
        Ok(Self { runtime: Some(runtime) })
    }

    pub fn handle(&self) -> &Handle {
        self.runtime().handle()
    }

    fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("the runtime is there until the SyncRuntime is dropped")
    }

    /// Starts `task` on the sync runtime.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime().spawn(task)
    }

    /// Shuts the runtime down after the commits that are running have ended
    /// (a task dropped at shutdown stops between two change sets; a commit
    /// already started always completes).
    pub async fn close(mut self) {
        let runtime = self.runtime.take();
        let _ = tokio::task::spawn_blocking(move || drop(runtime)).await;
    }
}

/// The calling thread's nice value (Linux: priorities are per thread; elsewhere 0).
fn thread_nice() -> i32 {
    // SAFETY: gettid has no preconditions; getpriority only reads.
    #[cfg(target_os = "linux")]
    return unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
    #[cfg(not(target_os = "linux"))]
    0
}

/// Sets the calling thread's nice value.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice != thread_nice() {
        // SAFETY: gettid has no preconditions; setpriority changes only the calling thread's priority.
        let done = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
        if done != 0 {
            tracing::debug!(nice, error = %std::io::Error::last_os_error(), "could not lower the sync thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Runs CPU-heavy synchronous work (indexing and committing a change set)
/// without holding up the other tasks of the runtime it is called on: on a
/// multi-thread runtime the worker hands its tasks to another thread for the
/// time ([`tokio::task::block_in_place`]); elsewhere (a current-thread
/// runtime, no runtime) it runs inline. Either way `work` runs to completion:
/// a sync cancelled meanwhile never leaves a half-applied batch.
pub fn off_the_workers<R>(work: impl FnOnce() -> R) -> R {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sync_runtime_runs_tasks_on_its_own_lower_priority_threads() {
        let rt = SyncRuntime::new().unwrap();
        let here = thread_nice();
        let (name, nice) = rt
            .handle()
            .block_on(rt.spawn(async { (std::thread::current().name().map(str::to_string), thread_nice()) }))
            .unwrap();
        assert_eq!(name.as_deref(), Some("sync"));
        assert_eq!(nice, (here + SYNC_NICE).min(19));
    }

    /// Dropped inside async code (a `?` in `serve` before it is closed) it does not panic.
    #[test]
    fn dropping_it_inside_async_code_is_allowed() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let sync = SyncRuntime::new().unwrap();
            sync.spawn(async {});
            drop(sync);
            SyncRuntime::new().unwrap().close().await;
        });
    }

    #[test]
    fn work_off_the_workers_runs_on_every_kind_of_runtime() {
        assert_eq!(off_the_workers(|| 1), 1);
        let current = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(current.block_on(async { off_the_workers(|| 2) }), 2);
        let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        assert_eq!(multi.block_on(multi.spawn(async { off_the_workers(|| 3) })).unwrap(), 3);
    }
}
