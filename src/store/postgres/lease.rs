//! Sync leases on PostgreSQL: one row per account in `sync_leases`
//! (account, holder, fencing token, expiry), on the database's clock.
//!
//! # A lease row, not advisory locks
//!
//! A session-level advisory lock would also give one holder per account, and
//! frees itself when the holder's connection drops. But it has no expiry and
//! no fencing token: a replica paused by `SIGSTOP` (or a partition that keeps
//! its TCP connection half-open) keeps the lock until the server notices the
//! dead connection (TCP keepalive: minutes by default), nobody can take the
//! account over meanwhile, and when it wakes, nothing tells its commits from
//! those of a legitimate holder. The row gives both: `expires` (server time,
//! so the replicas' clocks do not matter) and `token`, which grows with every
//! new holder. A commit under the lease checks its token in its own
//! transaction ([`FENCE_SQL`], `FOR SHARE`: a takeover's `UPDATE` of the row
//! waits for that commit to end, and a commit that comes after the takeover
//! finds the new token and fails). Cost: one indexed row update per renewal
//! (every `ttl / 3` per syncing account) and one row read per change set.
//!
//! The lease store runs on the store's pool (a renewal every `ttl / 3` per
//! syncing account; the pool's connect timeout, 5 s, is well inside a 30 s lease).

use super::pg;
use crate::store::{Lease, LeaseStore, Result, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Run inside a commit's transaction with (account, holder, token): returns a
/// row only while that lease is held, and holds the row against a takeover
/// until the transaction ends.
pub const FENCE_SQL: &str =
    "SELECT 1 FROM sync_leases WHERE account = $1 AND holder = $2 AND token = $3 AND expires > now() FOR SHARE";

/// Leases in PostgreSQL, on the store's pool (table `sync_leases`, created by the schema's migrations).
#[derive(Clone)]
pub struct PgLeases {
    store: super::PgStore,
}

impl PgLeases {
    pub fn new(store: super::PgStore) -> Self {
        Self { store }
    }

    fn with<T: Send>(&self, work: impl FnOnce(&mut postgres::Client) -> Result<T> + Send) -> Result<T> {
        self.store.with(|c| work(&mut c.client))
    }
}

/// Checks `fence` inside a commit's transaction: [`StoreError::Fenced`] when the lease is no longer the writer's.
pub(crate) fn check_fence<C: postgres::GenericClient>(
    s: &mut super::kv::Session<'_, C>,
    fence: &crate::store::Fence,
) -> Result<()> {
    let held =
        s.query("checking the sync lease", FENCE_SQL, &[&fence.account, &fence.holder, &(fence.token as i64)])?;
    if held.is_empty() {
        return Err(StoreError::Fenced {
            account: fence.account.clone(),
            holder: fence.holder.clone(),
            token: fence.token,
        });
    }
    Ok(())
}

fn interval(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

fn lease(row: &postgres::Row, account: &str) -> Lease {
    let token: i64 = row.get(1);
    let expires = DateTime::<Utc>::from_timestamp_micros(row.get(2)).unwrap_or_default();
    Lease { account: account.into(), holder: row.get(0), token: token as u64, expires }
}

impl LeaseStore for PgLeases {
    fn try_acquire(&self, account: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>> {
        self.with(|c| {
            // Free, expired, or ours already: take (a new holder gets the next token).
            let row = c
                .query_opt(
                    "INSERT INTO sync_leases AS l (account, holder, token, expires)
                     VALUES ($1, $2, 1, now() + make_interval(secs => $3))
                     ON CONFLICT (account) DO UPDATE
                       SET holder = EXCLUDED.holder,
                           token = CASE WHEN l.holder = EXCLUDED.holder AND l.expires > now() THEN l.token ELSE l.token + 1 END,
                           expires = EXCLUDED.expires
                       WHERE l.holder IS NULL OR l.expires <= now() OR l.holder = EXCLUDED.holder
                     RETURNING holder, token, (extract(epoch FROM expires) * 1000000)::bigint",
                    &[&account, &holder, &interval(ttl)],
                )
                .map_err(|e| pg("taking a sync lease", e))?;
            Ok(row.map(|r| lease(&r, account)))
        })
    }

    fn renew(&self, held: &Lease, ttl: Duration) -> Result<Option<Lease>> {
        self.with(|c| {
            let row = c
                .query_opt(
                    "UPDATE sync_leases SET expires = now() + make_interval(secs => $4)
                     WHERE account = $1 AND holder = $2 AND token = $3 AND expires > now()
                     RETURNING holder, token, (extract(epoch FROM expires) * 1000000)::bigint",
                    &[&held.account, &held.holder, &(held.token as i64), &interval(ttl)],
                )
                .map_err(|e| pg("renewing a sync lease", e))?;
            Ok(row.map(|r| lease(&r, &held.account)))
        })
    }

    fn release(&self, held: &Lease) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE sync_leases SET holder = NULL, expires = now() WHERE account = $1 AND holder = $2 AND token = $3",
                &[&held.account, &held.holder, &(held.token as i64)],
            )
            .map_err(|e| pg("releasing a sync lease", e))?;
            Ok(())
        })
    }

    fn current(&self, account: &str) -> Result<Option<Lease>> {
        self.with(|c| {
            let row = c
                .query_opt(
                    "SELECT holder, token, (extract(epoch FROM expires) * 1000000)::bigint FROM sync_leases WHERE account = $1 AND holder IS NOT NULL AND expires > now()",
                    &[&account],
                )
                .map_err(|e| pg("reading a sync lease", e))?;
            Ok(row.map(|r| lease(&r, account)))
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use crate::store::postgres::testing::{shared_database, TestDatabase};
    use crate::store::postgres::{PgOptions, PgStore};

    /// A fresh database, migrated, and a store on it.
    pub(crate) fn test_store() -> (TestDatabase, PgStore) {
        let db = shared_database();
        let store = PgStore::open(&PgOptions::new(db.url.clone()), std::path::Path::new("")).unwrap();
        (db, store)
    }

    #[test]
    fn postgres_leases_pass_the_lease_conformance() {
        let (_db, store) = test_store();
        crate::store::lease::conformance(&PgLeases::new(store), "acc-1");
    }

    /// A commit that checked its fence holds the lease row: a takeover waits
    /// for it, and after the takeover the old fence finds nothing.
    #[test]
    fn a_fenced_commit_and_a_takeover_cannot_interleave() {
        let (db, store) = test_store();
        let url = db.url.clone();
        let account = "acc-1".to_string();
        let leases = PgLeases::new(store.clone());
        let mut writer = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut tx = writer.transaction().unwrap();
        let old = leases.try_acquire(&account, "a", Duration::from_millis(800)).unwrap().unwrap();
        let held = tx.query_opt(FENCE_SQL, &[&old.account, &old.holder, &(old.token as i64)]).unwrap();
        assert!(held.is_some(), "the holder's fence holds");
        std::thread::sleep(Duration::from_millis(1000)); // a's lease expires while its commit is open
        let (b, account2) = (PgLeases::new(store), account.clone());
        let started = std::time::Instant::now();
        let takeover = std::thread::spawn(move || {
            (b.try_acquire(&account2, "b", Duration::from_secs(30)).unwrap(), started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(300));
        tx.commit().unwrap();
        let (taken, waited) = takeover.join().unwrap();
        let taken = taken.expect("the expired lease is taken over");
        assert!(waited >= Duration::from_millis(250), "the takeover did not wait for the open commit ({waited:?})");
        assert!(taken.token > old.token);
        let stale = writer.query_opt(FENCE_SQL, &[&old.account, &old.holder, &(old.token as i64)]).unwrap();
        assert!(stale.is_none(), "the old holder's fence still holds after the takeover");
    }
}
