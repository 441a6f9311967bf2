//! Sync leases: each account syncs on exactly one replica at a time.
//!
//! A replica takes an account's lease ([`LeaseStore::try_acquire`]) before it
//! syncs the account, renews it while the sync runs, and releases it after. A
//! lease names its holder and expires: a replica that dies (or stops: a long
//! GC-like pause, `SIGSTOP`, a network partition) loses it at expiry, and
//! another replica takes it over and resumes the sync from the last committed
//! checkpoint.
//!
//! # Fencing
//!
//! Every grant carries a **fencing token** that grows with each new holder of
//! the account. A replica that paused past its expiry may wake up believing it
//! still holds the lease; what stops it from overwriting the newer sync is
//! that its change-set commits go through [`super::IndexStore::apply_fenced`]
//! with its [`Fence`], and a backend shared by several processes checks the
//! fence *inside the commit's transaction* (PostgreSQL: the lease row is read
//! `FOR SHARE` in the same transaction, so a takeover cannot slip between the
//! check and the commit). A stale fence fails the commit with
//! [`super::StoreError::Fenced`] and nothing of the batch is written.
//!
//! For sled, one process holds the data directory (its lock refuses a
//! second), so there is never another replica: [`LocalLeases`] grants within
//! the process (it still keeps two syncs of one account apart there) and the
//! fence has nothing to guard against.

use super::Result;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// A granted lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub account: String,
    /// Who holds it (a replica's id).
    pub holder: String,
    /// Grows with every new holder of the account; see [`Fence`].
    pub token: u64,
    /// Until when it holds unless renewed (the store's clock).
    pub expires: DateTime<Utc>,
}

impl Lease {
    /// What a commit made under this lease carries.
    pub fn fence(&self) -> Fence {
        Fence { account: self.account.clone(), holder: self.holder.clone(), token: self.token }
    }
}

/// What a commit carries to prove its writer still holds the account's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub account: String,
    pub holder: String,
    pub token: u64,
}

/// Where leases are kept.
pub trait LeaseStore: Send + Sync {
    /// Takes the account's lease for `ttl` if nobody else holds it (or theirs
    /// has expired); `None` when another holder has it. A holder asking again
    /// gets its lease renewed with the same token.
    fn try_acquire(&self, account: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>>;
    /// Extends a held lease by `ttl` from now; `None` when it was lost (expired
    /// and taken, or released).
    fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Option<Lease>>;
    /// Gives the lease up (no-op when it is no longer held).
    fn release(&self, lease: &Lease) -> Result<()>;
    /// The account's current lease, if one is unexpired.
    fn current(&self, account: &str) -> Result<Option<Lease>>;
}

/// Leases within one process (the sled backend; tests of the scheduler).
#[derive(Debug, Default)]
pub struct LocalLeases {
    /// account → (holder, token, expires); the token survives release.
    leases: Mutex<HashMap<String, Entry>>,
}

/// An account's lease: holder (`None` once released), token, expiry.
type Entry = (Option<String>, u64, DateTime<Utc>);

fn expiry(ttl: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

impl LeaseStore for LocalLeases {
    fn try_acquire(&self, account: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>> {
        let mut map = self.leases.lock().expect("lease lock");
        let now = Utc::now();
        let entry = map.entry(account.to_string()).or_insert((None, 0, now));
        let token = match &entry.0 {
            Some(h) if h == holder && entry.2 > now => entry.1,
            Some(_) if entry.2 > now => return Ok(None),
            _ => entry.1 + 1,
        };
        *entry = (Some(holder.to_string()), token, expiry(ttl));
        Ok(Some(Lease { account: account.into(), holder: holder.into(), token, expires: entry.2 }))
    }

    fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Option<Lease>> {
        let mut map = self.leases.lock().expect("lease lock");
        match map.get_mut(&lease.account) {
            Some(e) if e.0.as_deref() == Some(&lease.holder) && e.1 == lease.token && e.2 > Utc::now() => {
                e.2 = expiry(ttl);
                Ok(Some(Lease { expires: e.2, ..lease.clone() }))
            }
            _ => Ok(None),
        }
    }

    fn release(&self, lease: &Lease) -> Result<()> {
        let mut map = self.leases.lock().expect("lease lock");
        if let Some(e) = map.get_mut(&lease.account) {
            if e.0.as_deref() == Some(&lease.holder) && e.1 == lease.token {
                e.0 = None;
            }
        }
        Ok(())
    }

    fn current(&self, account: &str) -> Result<Option<Lease>> {
        let map = self.leases.lock().expect("lease lock");
        Ok(map.get(account).and_then(|(h, token, expires)| {
            let holder = h.clone().filter(|_| *expires > Utc::now())?;
            Some(Lease { account: account.into(), holder, token: *token, expires: *expires })
        }))
    }
}

/// The lease conformance checks every [`LeaseStore`] passes (run by each backend's tests).
#[doc(hidden)]
pub fn conformance(leases: &dyn LeaseStore, account: &str) {
    let ttl = Duration::from_secs(30);
    let a = leases.try_acquire(account, "replica-a", ttl).unwrap().expect("a free lease is granted");
    assert!(leases.try_acquire(account, "replica-b", ttl).unwrap().is_none(), "a held lease is refused to another");
    let again = leases.try_acquire(account, "replica-a", ttl).unwrap().expect("the holder may ask again");
    assert_eq!(again.token, a.token, "asking again keeps the token");
    assert_eq!(leases.current(account).unwrap().map(|l| l.holder), Some("replica-a".to_string()));
    let renewed = leases.renew(&a, ttl).unwrap().expect("a held lease renews");
    assert!(renewed.expires >= a.expires);
    leases.release(&a).unwrap();
    assert!(leases.current(account).unwrap().is_none());
    assert!(leases.renew(&a, ttl).unwrap().is_none(), "a released lease does not renew");
    let b = leases.try_acquire(account, "replica-b", ttl).unwrap().expect("a released lease is granted");
    assert!(b.token > a.token, "a new holder gets a larger fencing token");
    leases.release(&a).unwrap(); // the old holder's release does not free b's lease
    assert_eq!(leases.current(account).unwrap().map(|l| l.holder), Some("replica-b".to_string()));
    // Expiry: a short lease lapses and another replica takes it over with a larger token.
    leases.release(&b).unwrap();
    let short = leases.try_acquire(account, "replica-a", Duration::from_millis(50)).unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(120));
    let taken = leases.try_acquire(account, "replica-c", ttl).unwrap().expect("an expired lease is taken over");
    assert!(taken.token > short.token);
    assert!(leases.renew(&short, ttl).unwrap().is_none(), "the expired holder cannot renew");
    leases.release(&taken).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_leases_pass_the_lease_conformance() {
        conformance(&LocalLeases::default(), "acc-1");
    }
}
