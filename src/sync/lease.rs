//! Running a sync under an account's lease ([`crate::store::lease`]): take it,
//! renew it while the sync runs, stop the sync if it is lost, release it after.
//!
//! The lease's [`Fence`] travels with the sync as a task-local value; every
//! change set the [`super::IndexSink`] commits inside it goes through
//! [`crate::store::IndexStore::apply_fenced`], so a replica that lost the lease
//! while paused cannot commit over the replica that took the account over
//! (even before the renewal below notices and stops the sync).

use crate::store::{Fence, Lease, LeaseStore};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

tokio::task_local! {
    static FENCE: Fence;
}

/// The fence of the lease the current sync runs under, if any.
pub fn current_fence() -> Option<Fence> {
    FENCE.try_with(Clone::clone).ok()
}

/// How a replica takes sync leases.
#[derive(Clone)]
pub struct Leasing {
    pub store: Arc<dyn LeaseStore>,
    /// This replica's id (unique among the replicas on one database).
    pub holder: String,
    /// How long a lease holds without renewal: how long a dead replica's
    /// accounts wait before another replica takes them over. Renewed every third of it.
    pub ttl: Duration,
}

impl Leasing {
    /// The default lease lifetime.
    pub const TTL: Duration = Duration::from_secs(30);

    /// A replica id: host name, process id and a random suffix.
    pub fn replica_id() -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}:{}:{:08x}", host.trim(), std::process::id(), getrandom::u32().unwrap_or(0))
    }
}

/// What became of a sync run under a lease.
#[derive(Debug)]
pub enum Leased<T> {
    /// The sync ran (to its own end) under the lease.
    Ran(T),
    /// Another replica holds the account's lease: nothing ran.
    HeldElsewhere { holder: Option<String> },
    /// The lease was lost while the sync ran (renewal refused: it expired and
    /// was taken over); the sync was stopped between change sets.
    Lost,
    /// The lease store failed.
    Failed(String),
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(work).await.map_err(|e| format!("lease work failed: {e}"))
}

/// Runs `sync` under the lease of `account`.
pub async fn run_leased<T, F>(leasing: &Leasing, account: &str, sync: F) -> Leased<T>
where
    F: Future<Output = T>,
{
    let (store, holder, ttl) = (leasing.store.clone(), leasing.holder.clone(), leasing.ttl);
    let acquire = {
        let (store, account, holder) = (store.clone(), account.to_string(), holder.clone());
        blocking(move || store.try_acquire(&account, &holder, ttl)).await
    };
    let mut lease: Lease = match acquire {
        Ok(Ok(Some(l))) => l,
        Ok(Ok(None)) => {
            let holder = blocking({
                let (store, account) = (store.clone(), account.to_string());
                move || store.current(&account)
            })
            .await
            .ok()
            .and_then(|r| r.ok())
            .flatten()
            .map(|l| l.holder);
            return Leased::HeldElsewhere { holder };
        }
        Ok(Err(e)) => return Leased::Failed(format!("taking the sync lease: {e}")),
        Err(e) => return Leased::Failed(e),
    };
    tracing::debug!(account, token = lease.token, "sync lease taken");
    let run = FENCE.scope(lease.fence(), sync);
    tokio::pin!(run);
    let mut renew = tokio::time::interval((ttl / 3).max(Duration::from_millis(10)));
    renew.tick().await; // the first tick is immediate
    let outcome = loop {
        tokio::select! {
            out = &mut run => break Leased::Ran(out),
            _ = renew.tick() => {
                let (store, held) = (store.clone(), lease.clone());
                match blocking(move || store.renew(&held, ttl)).await {
                    Ok(Ok(Some(l))) => lease = l,
                    Ok(Ok(None)) => {
                        tracing::warn!(account, token = lease.token, "sync lease lost (expired and taken over): stopping this sync");
                        return Leased::Lost;
                    }
                    // A store that cannot be reached: keep syncing; the fence refuses the commits if the lease lapses.
                    Ok(Err(e)) => tracing::warn!(account, error = %e, "renewing the sync lease failed; retrying"),
                    Err(e) => tracing::warn!(account, error = %e, "renewing the sync lease failed; retrying"),
                }
            }
        }
    };
    let released = match blocking(move || store.release(&lease)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    if let Err(e) = released {
        tracing::warn!(account, error = %e, "releasing the sync lease failed (it lapses at expiry)");
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalLeases;

    fn leasing(store: &Arc<LocalLeases>, holder: &str, ttl: Duration) -> Leasing {
        Leasing { store: store.clone(), holder: holder.into(), ttl }
    }

    #[tokio::test]
    async fn a_sync_runs_with_the_fence_of_its_lease_and_releases_it() {
        let store = Arc::new(LocalLeases::default());
        let a = leasing(&store, "a", Duration::from_secs(30));
        let out = run_leased(&a, "acc", async { current_fence() }).await;
        let Leased::Ran(Some(fence)) = out else { panic!("{out:?}") };
        assert_eq!((fence.account.as_str(), fence.holder.as_str()), ("acc", "a"));
        assert!(current_fence().is_none(), "the fence stays with the sync");
        assert!(store.current("acc").unwrap().is_none(), "released after the sync");
    }

    #[tokio::test]
    async fn a_second_replica_does_not_run_while_the_first_holds_the_lease() {
        let store = Arc::new(LocalLeases::default());
        let (a, b) = (leasing(&store, "a", Duration::from_secs(30)), leasing(&store, "b", Duration::from_secs(30)));
        let (started, is_started) = tokio::sync::oneshot::channel();
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn(async move {
            run_leased(&a, "acc", async move {
                let _ = started.send(());
                let _ = finished.await;
            })
            .await
        });
        is_started.await.unwrap();
        let second = run_leased(&b, "acc", async { unreachable!("b must not sync") }).await;
        assert!(matches!(&second, Leased::HeldElsewhere { holder: Some(h) } if h == "a"), "{second:?}");
        finish.send(()).unwrap();
        assert!(matches!(first.await.unwrap(), Leased::Ran(())));
    }

    #[tokio::test]
    async fn a_sync_whose_lease_is_taken_over_is_stopped() {
        let store = Arc::new(LocalLeases::default());
        let ttl = Duration::from_millis(90);
        let a = leasing(&store, "a", ttl);
        let thief = store.clone();
        let out = run_leased(&a, "acc", async move {
            // The holder pauses past its expiry (its renewals are starved), and another replica takes over.
            std::thread::sleep(Duration::from_millis(200));
            let taken = thief.try_acquire("acc", "b", Duration::from_secs(30)).unwrap();
            assert!(taken.is_some(), "the expired lease is granted to b");
            std::future::pending::<()>().await
        })
        .await;
        assert!(matches!(out, Leased::Lost), "{out:?}");
        assert_eq!(store.current("acc").unwrap().unwrap().holder, "b", "a's exit leaves b's lease alone");
    }
}
