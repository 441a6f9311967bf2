//! The PostgreSQL backend: the same traits as [`crate::store::sled`], on a
//! database server that several bridge replicas can share
//! (`[store] backend = "postgres"`, `[store.postgres] url`, `pool_size`).
//!
//! # One design with sled
//!
//! The data keeps sled's layout ([`crate::store::keys`]): the index is one
//! ordered table of byte keys and values (`index_kv`), user data another
//! (`user_kv`), with the same keys and the same value codecs (record entries
//! of `sled::entry`, [`crate::store::codec`] for user data). PostgreSQL's
//! B-tree on `bytea` orders keys bytewise, as sled does, so every prefix and
//! range scan is the same query on both backends, a record's secondary keys
//! are found again the same way, and because the user comes first in every
//! key, no scan reaches another user. Backups (`export_user_data`) are the same
//! entries on both backends: a sled backup restores into PostgreSQL and back.
//! Call records have real columns (`calls`: id, user, caller key, time) for
//! their queries, with the record's codec bytes beside them.
//!
//! A change set and its checkpoint commit in one transaction (with the
//! collection's advisory lock held, so two replicas cannot interleave the
//! read-modify-write of a collection's state); a dropped connection or a
//! killed backend aborts the transaction, leaving nothing of it.
//!
//! # Schema
//!
//! [`schema`] holds the migrations, built into the binary; every open applies
//! those not yet applied, under an advisory lock, so replicas starting at once
//! do not race, and records them in `schema_version`. A database written by a
//! newer build is refused.
//!
//! # Client crate: `postgres` (synchronous) with an `r2d2` pool
//!
//! The store traits are synchronous ([`crate::store`] says why), so the
//! client is the synchronous `postgres` crate (sfackler's: the
//! `tokio-postgres` protocol implementation driven by a small runtime of its
//! own per connection) in an `r2d2` pool: a store call is the query and
//! nothing else, with no bridge from synchronous code into a shared async
//! runtime (`tokio-postgres` would need `Handle::block_on` from outside the
//! runtime, plus a hop to a runtime thread per query; `sqlx` the same, and
//! its compile-time checks do not fit a key/value schema). Each pooled
//! connection caches its prepared statements (one round trip per query, not
//! two). Measured (`load_grpc --store postgres`, BENCHMARKS.md, machine busy
//! with other builds, load average 8–10 on 2 cores): a point query through
//! the store (`UserStore::profile`) takes p50 110–130 µs round trip; the
//! alternatives were not measured side by side.
//!
//! A synchronous client must not run its own runtime inside tokio's (that
//! panics: "Cannot start a runtime from within a runtime"). Every call goes
//! through [`off_runtime`]: directly on a plain thread or on tokio's blocking
//! pool ([`crate::store::offload`] puts lookups there), through
//! `block_in_place` on a multi-thread runtime's worker (the web session
//! extractor and admin RPCs call the store inline), on a scoped thread of its
//! own on a current-thread runtime.
//!
//! # Several replicas
//!
//! [`lease`]: sync leases (one row per account in `sync_leases`, expiry on the
//! server's clock, a fencing token checked `FOR SHARE` in every fenced
//! commit's transaction). [`bus`]: live events between replicas (`LISTEN` on a
//! dedicated connection, `NOTIFY` from a publisher thread, large payloads
//! through `bus_payloads`; what is lost across a dropped connection).
//! `standby_url` ([`PgOptions::standby_url`]): lookups read a hot standby
//! through [`crate::store::split`], which says what a lookup sees during
//! replication lag: the primary's data as it was that long ago, whole
//! transactions only; call records always on the primary.
//!
//! # Secrets and logs
//!
//! Account secrets are stored sealed, as on sled (`user_kv`, prefix `S`).
//! The connection URL's password never reaches a log or an error: errors name
//! the URL with the password taken out ([`redact_url`]).

mod backend;
pub mod bus;
mod index;
mod kv;
pub mod lease;
pub mod schema;
#[doc(hidden)]
pub mod testing;
mod tls;
mod users;

use super::{Result, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How the PostgreSQL backend connects (`[store.postgres]`).
#[derive(Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/database` (libpq's URL form; key=value works too).
    pub url: String,
    /// Connections kept open to the server.
    pub pool_size: u32,
    /// How long opening (and taking a connection) waits for the server.
    pub connect_timeout: Duration,
    /// A read-only hot standby of the same database for lookups
    /// ([`crate::store::split`]); `None`: lookups read the primary.
    pub standby_url: Option<String>,
    /// The CA certificate(s) (PEM) the server's TLS certificate must chain to; `None`: the
    /// public web roots. Whether TLS is used is the URL's `sslmode` (module [`tls`] docs).
    pub ca_file: Option<PathBuf>,
}

impl PgOptions {
    pub const DEFAULT_POOL_SIZE: u32 = 8;

    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: Self::DEFAULT_POOL_SIZE,
            connect_timeout: Duration::from_secs(5),
            standby_url: None,
            ca_file: None,
        }
    }
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("standby_url", &self.standby_url.as_deref().map(redact_url))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The URL with its password (if any) replaced by `***`: what errors and logs show.
pub fn redact_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) {
        let scheme = &url[..url.len() - rest.len()];
        let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some(at) = authority.rfind('@') {
            let (userinfo, host) = authority.split_at(at);
            let user = userinfo.split(':').next().unwrap_or("");
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            let tail = redact_query(tail);
            return format!("{scheme}{user}{hidden}{host}{tail}");
        }
        return format!("{scheme}{authority}{}", redact_query(tail));
    }
    // key=value form: hide password=...
    url.split_whitespace()
        .map(|kv| if kv.to_ascii_lowercase().starts_with("password=") { "password=***" } else { kv })
        .collect::<Vec<_>>()
        .join(" ")
}

fn redact_query(tail: &str) -> String {
    match tail.split_once('?') {
        None => tail.to_string(),
        Some((path, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| {
                    if kv.to_ascii_lowercase().starts_with("password=") {
                        "password=***".to_string()
                    } else {
                        kv.to_string()
                    }
                })
                .collect();
            format!("{path}?{}", q.join("&"))
        }
    }
}

/// Runs `work` where a synchronous PostgreSQL client may block (see the module docs).
pub(crate) fn off_runtime<T: Send, F: FnOnce() -> T + Send>(work: F) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => work(),
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        Ok(_) => std::thread::scope(|s| match s.spawn(work).join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
    }
}

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// `Some` until dropped (the pool's connections are closed off the runtime).
    pool: Option<r2d2::Pool<kv::Manager>>,
    /// The pool's last connection error, for the next failure to take a connection.
    last_error: kv::LastError,
    dir: PathBuf,
    url: String,
    /// The URL as configured (with its password), for the bus's own connections.
    connect_url: String,
    /// The TLS set-up every connection (pool and bus) is made with.
    tls: tls::Tls,
    /// The read-only standby lookups read from, if configured.
    standby: Option<PgStore>,
    /// Round trips made by the pool's connections (statements, preparations, BEGIN/COMMIT).
    trips: Arc<std::sync::atomic::AtomicU64>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let pool = self.pool.take();
        off_runtime(move || drop(pool));
    }
}

impl PgStore {
    /// Connects, applies the schema migrations not yet applied, and returns the store.
    /// `dir` is the data directory (kept for [`crate::store::Maintenance::dir`]).
    pub fn open(options: &PgOptions, dir: &Path) -> Result<Self> {
        let mut store = Self::connect(options, dir)?;
        store.with(schema::migrate)?;
        if let Some(standby) = &options.standby_url {
            let standby =
                Self::connect(&PgOptions { url: standby.clone(), standby_url: None, ..options.clone() }, dir)?;
            tracing::info!(url = %standby.url(), "lookups read from the hot standby");
            Arc::get_mut(&mut store.inner).expect("not shared yet").standby = Some(standby);
        }
        tracing::info!(url = %store.url(), pool_size = options.pool_size, "PostgreSQL store open");
        Ok(store)
    }

    /// The primary with its standby as the lookup path's store ([`crate::store::split`]), if a standby is configured.
    pub fn lookup_view(&self) -> Option<crate::store::split::ReadSplit> {
        let standby = self.inner.standby.clone()?;
        Some(crate::store::split::ReadSplit { primary: Arc::new(self.clone()), standby: Arc::new(standby) })
    }

    /// Connects without touching the schema (a read-only standby cannot be migrated).
    fn connect(options: &PgOptions, dir: &Path) -> Result<Self> {
        let url = redact_url(&options.url);
        let mut config: postgres::Config = options.url.parse().map_err(|e: postgres::Error| {
            StoreError::Invalid(format!("[store.postgres] url {url} is not a PostgreSQL connection URL: {e}"))
        })?;
        config.connect_timeout(options.connect_timeout);
        // No JIT: the store's statements are short lookups; the generic plan of a prepared
        // statement can be estimated above `jit_above_cost` and then every execution paid
        // ≈ 10 ms of compiling for a query that runs in 0.1 ms (measured on
        // `contacts_by_phones`). Options in the URL come first and stay.
        let options_given = config.get_options().map(|o| format!("{o} ")).unwrap_or_default();
        config.options(&format!("{options_given}-c jit=off"));
        let tls = tls::connector(options.ca_file.as_deref())?;
        let manager = kv::Manager::new(config, tls.clone());
        let trips = manager.trips.clone();
        let unreachable = |cause: String| StoreError::Backend {
            doing: "connecting to PostgreSQL",
            cause: format!("{url}: {cause}").into(),
        };
        // One connection first, for the server's own answer (refused, unknown host, wrong password).
        off_runtime(|| r2d2::ManageConnection::connect(&manager).map(drop))
            .map_err(|e| unreachable(kv::describe(&e)))?;
        let last_error = kv::LastError::default();
        let pool = off_runtime(|| {
            r2d2::Pool::builder()
                .max_size(options.pool_size.max(1))
                .min_idle(Some(1))
                // r2d2 would check every connection with a query of its own when it is taken: a
                // second round trip per store call. A connection found closed when it is given
                // back is dropped instead (`has_broken`); after a server restart each idle
                // connection fails the one call that finds it closed.
                .test_on_check_out(false)
                .connection_timeout(options.connect_timeout)
                .error_handler(Box::new(last_error.clone()))
                .build(manager)
        })
        .map_err(|e| unreachable(last_error.describe(&e)))?;
        let store = Self {
            inner: Arc::new(Inner {
                pool: Some(pool),
                last_error,
                dir: dir.to_path_buf(),
                url: url.clone(),
                connect_url: options.url.clone(),
                tls,
                standby: None,
                trips,
            }),
        };
        Ok(store)
    }

    /// Round trips to the server so far through the pool (each statement, each
    /// statement prepared on a connection for the first time, `BEGIN` and
    /// `COMMIT`); not the bus's own connections. For benchmarks and tests.
    pub fn round_trips(&self) -> u64 {
        self.inner.trips.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The server's URL, password taken out.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Runs `f` on a pooled connection, off the runtime.
    pub(crate) fn with<T: Send>(&self, f: impl FnOnce(&mut kv::Conn) -> Result<T> + Send) -> Result<T> {
        off_runtime(|| {
            let pool = self.inner.pool.as_ref().expect("the pool lives as long as the store");
            let mut conn = pool.get().map_err(|e| StoreError::Backend {
                doing: "taking a PostgreSQL connection",
                cause: format!("{}: {}", self.inner.url, self.inner.last_error.describe(&e)).into(),
            })?;
            f(&mut conn)
        })
    }

    /// Bytes of the whole database (tables, indexes, TOAST).
    pub fn database_size(&self) -> Result<u64> {
        self.with(|c| {
            let row = c
                .client
                .query_one("SELECT pg_database_size(current_database())", &[])
                .map_err(|e| pg("measuring the database", e))?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
    }

    /// Bytes of the index table with its B-tree and TOAST (`pg_total_relation_size`).
    pub fn index_size(&self) -> Result<u64> {
        self.with(|c| {
            let row = c
                .client
                .query_one("SELECT pg_total_relation_size('index_kv')", &[])
                .map_err(|e| pg("measuring the index", e))?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
    }
}

impl PgStore {
    /// Bytes the contacts take in `index_kv`: their entries and their phone and email keys, as
    /// stored (`pg_column_size`, before the B-tree's own pages; for benchmarks, a full scan).
    pub fn contact_entries_size(&self) -> Result<u64> {
        self.with(|c| {
            let row = c
                .client
                .query_one(
                    "SELECT coalesce(sum(pg_column_size(k) + pg_column_size(v) + 28), 0)::bigint FROM index_kv \
                     WHERE get_byte(k, 0) IN (112, 101) \
                        OR (get_byte(k, 0) = 114 AND get_byte(v, 9) = 99)",
                    &[],
                )
                .map_err(|e| pg("measuring the contacts", e))?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
    }
}

/// A PostgreSQL failure while doing something: the server's message (never the URL's password).
pub(crate) fn pg(doing: &'static str, e: postgres::Error) -> StoreError {
    StoreError::Backend { doing, cause: kv::describe(&e).into() }
}

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod tests;
