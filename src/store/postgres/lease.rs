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
//! The lease store uses a connection of its own, so that renewals never wait
//! behind a full pool.

use crate::store::{Lease, LeaseStore, Result, StoreError};
use chrono::{DateTime, Utc};
use std::sync::Mutex;
use std::time::Duration;

/// The table (also a migration of the backend's schema; created here if missing).
pub const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS sync_leases (
        account text PRIMARY KEY,
        holder text,
        token bigint NOT NULL,
        expires timestamptz NOT NULL
    );
";

/// Run inside a commit's transaction with (account, holder, token): returns a
/// row only while that lease is held, and holds the row against a takeover
/// until the transaction ends.
pub const FENCE_SQL: &str =
    "SELECT 1 FROM sync_leases WHERE account = $1 AND holder = $2 AND token = $3 AND expires > now() FOR SHARE";

/// Runs synchronous client work where it may block: the `postgres` crate
/// drives each connection with a runtime of its own, which must not start
/// inside tokio's (to be replaced by the backend's own helper when it lands).
pub(crate) fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        Ok(_) => std::thread::scope(|s| s.spawn(work).join().expect("store work panicked")),
        Err(_) => work(),
    }
}

fn pg(doing: &'static str, e: postgres::Error) -> StoreError {
    StoreError::Backend { doing, cause: Box::new(e) }
}

/// Leases in PostgreSQL.
pub struct PgLeases {
    url: String,
    client: Mutex<Option<postgres::Client>>,
}

impl PgLeases {
    /// Connects (lazily again after a drop) and creates the table if missing.
    pub fn connect(url: &str) -> Result<Self> {
        let leases = Self { url: url.to_string(), client: Mutex::new(None) };
        leases.with(|c| c.batch_execute(SCHEMA).map_err(|e| pg("creating the sync lease table", e)))?;
        Ok(leases)
    }

    /// Runs `work` on the connection, reconnecting once if it was dropped.
    fn with<T: Send>(&self, work: impl Fn(&mut postgres::Client) -> Result<T> + Send + Sync) -> Result<T> {
        off_runtime(|| self.with_here(&work))
    }

    fn with_here<T>(&self, work: &(impl Fn(&mut postgres::Client) -> Result<T> + Sync)) -> Result<T> {
        let mut guard = self.client.lock().expect("lease connection lock");
        for attempt in 0..2 {
            if guard.as_ref().is_none_or(|c| c.is_closed()) {
                let client = postgres::Client::connect(&self.url, postgres::NoTls)
                    .map_err(|e| pg("connecting for sync leases", e))?;
                *guard = Some(client);
            }
            let client = guard.as_mut().expect("connected above");
            match work(client) {
                Err(e) if attempt == 0 && client.is_closed() => {
                    tracing::warn!(error = %e, "the sync lease connection dropped; reconnecting");
                    *guard = None;
                }
                other => return other,
            }
        }
        unreachable!("the second attempt returns")
    }
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

    /// The test database's URL.
    pub(crate) fn test_url() -> String {
        std::env::var("CB_PG_URL").expect("CB_PG_URL: a PostgreSQL database for the tests")
    }

    #[test]
    fn postgres_leases_pass_the_lease_conformance() {
        let leases = PgLeases::connect(&test_url()).unwrap();
        crate::store::lease::conformance(&leases, &format!("acc-{}", std::process::id()));
    }

    /// A commit that checked its fence holds the lease row: a takeover waits
    /// for it, and after the takeover the old fence finds nothing.
    #[test]
    fn a_fenced_commit_and_a_takeover_cannot_interleave() {
        let url = test_url();
        let account = format!("fence-{}", std::process::id());
        let leases = PgLeases::connect(&url).unwrap();
        let old = leases.try_acquire(&account, "a", Duration::from_millis(200)).unwrap().unwrap();
        let mut writer = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut tx = writer.transaction().unwrap();
        let held = tx.query_opt(FENCE_SQL, &[&old.account, &old.holder, &(old.token as i64)]).unwrap();
        assert!(held.is_some(), "the holder's fence holds");
        std::thread::sleep(Duration::from_millis(300)); // a's lease expires while its commit is open
        let (url2, account2) = (url.clone(), account.clone());
        let started = std::time::Instant::now();
        let takeover = std::thread::spawn(move || {
            let b = PgLeases::connect(&url2).unwrap();
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
