//! Connections (an `r2d2` manager whose connections cache their prepared
//! statements) and the ordered key/value operations both tables share.

use super::pg;
use super::tls::Tls;
use crate::store::Result;
use postgres::{GenericClient, Statement};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A pooled connection and its prepared statements.
pub(crate) struct Conn {
    pub client: postgres::Client,
    stmts: HashMap<&'static str, Statement>,
    /// The pool's count of round trips made through sessions ([`super::PgStore::round_trips`]).
    trips: Arc<AtomicU64>,
}

impl Conn {
    /// A session on the connection itself (each statement commits on its own).
    pub fn session(&mut self) -> Session<'_, postgres::Client> {
        Session { c: &mut self.client, stmts: &mut self.stmts, trips: &self.trips }
    }

    /// Runs `f` in one transaction: committed when it returns `Ok`, rolled back otherwise.
    pub fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Session<'_, postgres::Transaction<'_>>) -> Result<T>,
    ) -> Result<T> {
        self.trips.fetch_add(2, Ordering::Relaxed); // BEGIN and COMMIT (or ROLLBACK)
        let mut tx = self.client.transaction().map_err(|e| pg("starting a transaction", e))?;
        let out = f(&mut Session { c: &mut tx, stmts: &mut self.stmts, trips: &self.trips })?;
        tx.commit().map_err(|e| pg("committing", e))?;
        Ok(out)
    }
}

pub(crate) struct Manager {
    config: postgres::Config,
    tls: Tls,
    pub trips: Arc<AtomicU64>,
}

impl Manager {
    pub fn new(config: postgres::Config, tls: Tls) -> Self {
        Self { config, tls, trips: Arc::default() }
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn { client: self.config.connect(self.tls.clone())?, stmts: HashMap::new(), trips: self.trips.clone() })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}

/// r2d2 logs connection errors itself by default, and its own error says only
/// "timed out waiting for connection": the last connection error is kept here
/// for the caller's error instead.
#[derive(Debug, Clone, Default)]
pub(crate) struct LastError(pub std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl r2d2::HandleError<postgres::Error> for LastError {
    fn handle_error(&self, error: postgres::Error) {
        let text = describe(&error);
        tracing::debug!(error = %text, "PostgreSQL connection attempt failed");
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }
}

impl LastError {
    /// r2d2's error with the connection error behind it.
    pub fn describe(&self, e: &r2d2::Error) -> String {
        match self.0.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(last) => format!("{e}: {last}"),
            None => e.to_string(),
        }
    }
}

/// A PostgreSQL error in words: the server's message and detail, or the client's.
pub(crate) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({}; {d})", db.message(), db.code().code()),
            None => format!("{} ({})", db.message(), db.code().code()),
        },
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                s.push_str(": ");
                s.push_str(&cause.to_string());
                source = cause.source();
            }
            if let Some(hint) = super::tls::hint(&s) {
                s.push_str(": ");
                s.push_str(hint);
            }
            s
        }
    }
}

/// A client (the connection, or a transaction on it) with the connection's statement cache.
pub(crate) struct Session<'a, C> {
    pub c: &'a mut C,
    stmts: &'a mut HashMap<&'static str, Statement>,
    trips: &'a AtomicU64,
}

/// Which key/value table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    Index,
    Users,
}

type Rows = Vec<(Vec<u8>, Vec<u8>)>;
/// Rows tagged with the index of the range they came from.
type TaggedRows = Vec<(usize, Vec<u8>, Vec<u8>)>;

impl<C: GenericClient> Session<'_, C> {
    fn stmt(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        self.trips.fetch_add(1, Ordering::Relaxed);
        let s = self.c.prepare(sql)?;
        self.stmts.insert(sql, s.clone());
        Ok(s)
    }

    pub fn query(
        &mut self,
        doing: &'static str,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>> {
        let s = self.stmt(sql).map_err(|e| pg(doing, e))?;
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.c.query(&s, params).map_err(|e| pg(doing, e))
    }

    pub fn execute(
        &mut self,
        doing: &'static str,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64> {
        let s = self.stmt(sql).map_err(|e| pg(doing, e))?;
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.c.execute(&s, params).map_err(|e| pg(doing, e))
    }

    /// Holds a transaction-scoped advisory lock on `name` until commit or rollback
    /// (the lock's id: the first 8 bytes of the name's SHA-256).
    pub fn lock(&mut self, name: &[u8]) -> Result<()> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(name);
        let id = i64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 has 32 bytes"));
        self.query("taking a lock", "SELECT pg_advisory_xact_lock($1)", &[&id])?;
        Ok(())
    }

    pub fn get(&mut self, t: Table, doing: &'static str, k: &[u8]) -> Result<Option<Vec<u8>>> {
        let sql = match t {
            Table::Index => "SELECT v FROM index_kv WHERE k = $1",
            Table::Users => "SELECT v FROM user_kv WHERE k = $1",
        };
        Ok(self.query(doing, sql, &[&k])?.first().map(|r| r.get(0)))
    }

    /// The values of `keys` that exist.
    pub fn get_many(&mut self, t: Table, doing: &'static str, keys: &[Vec<u8>]) -> Result<HashMap<Vec<u8>, Vec<u8>>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = match t {
            Table::Index => "SELECT k, v FROM index_kv WHERE k = ANY($1)",
            Table::Users => "SELECT k, v FROM user_kv WHERE k = ANY($1)",
        };
        Ok(self.query(doing, sql, &[&keys])?.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Entries with `lo <= k < hi` (`hi = None`: no upper bound), in key order or reversed, at most `limit`.
    pub fn range(
        &mut self,
        t: Table,
        doing: &'static str,
        lo: &[u8],
        hi: Option<&[u8]>,
        reverse: bool,
        limit: Option<i64>,
    ) -> Result<Rows> {
        let limit = limit.unwrap_or(i64::MAX);
        let rows = match (t, hi, reverse) {
            (Table::Index, Some(hi), false) => self.query(
                doing,
                "SELECT k, v FROM index_kv WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3",
                &[&lo, &hi, &limit],
            )?,
            (Table::Index, Some(hi), true) => self.query(
                doing,
                "SELECT k, v FROM index_kv WHERE k >= $1 AND k < $2 ORDER BY k DESC LIMIT $3",
                &[&lo, &hi, &limit],
            )?,
            (Table::Users, Some(hi), false) => self.query(
                doing,
                "SELECT k, v FROM user_kv WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3",
                &[&lo, &hi, &limit],
            )?,
            (Table::Users, Some(hi), true) => self.query(
                doing,
                "SELECT k, v FROM user_kv WHERE k >= $1 AND k < $2 ORDER BY k DESC LIMIT $3",
                &[&lo, &hi, &limit],
            )?,
            (Table::Index, None, _) => {
                self.query(doing, "SELECT k, v FROM index_kv WHERE k >= $1 ORDER BY k LIMIT $2", &[&lo, &limit])?
            }
            (Table::Users, None, _) => {
                self.query(doing, "SELECT k, v FROM user_kv WHERE k >= $1 ORDER BY k LIMIT $2", &[&lo, &limit])?
            }
        };
        let mut out: Rows = rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        if hi.is_none() && reverse {
            out.reverse();
        }
        Ok(out)
    }

    /// The record entries that index keys in `[lo, hi)` point to, in one round trip: the
    /// entry's key is `entry_prefix` followed by the index key's bytes from `tail` on (0-based),
    /// in index-key order or reversed, at most `limit`.
    #[allow(clippy::too_many_arguments)]
    pub fn entries_via(
        &mut self,
        doing: &'static str,
        lo: &[u8],
        hi: &[u8],
        entry_prefix: &[u8],
        tail: usize,
        reverse: bool,
        limit: i64,
    ) -> Result<Rows> {
        let from = i32::try_from(tail + 1).unwrap_or(i32::MAX);
        let sql = if reverse {
            "SELECT e.k, e.v FROM index_kv p JOIN index_kv e ON e.k = $3 || substring(p.k from $4) \
             WHERE p.k >= $1 AND p.k < $2 ORDER BY p.k DESC LIMIT $5"
        } else {
            "SELECT e.k, e.v FROM index_kv p JOIN index_kv e ON e.k = $3 || substring(p.k from $4) \
             WHERE p.k >= $1 AND p.k < $2 ORDER BY p.k LIMIT $5"
        };
        let rows = self.query(doing, sql, &[&lo, &hi, &entry_prefix, &from, &limit])?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// [`Session::entries_via`] for several ranges `[lo[i], hi[i])` with their own `tail[i]`
    /// (1-based here), in one round trip: `(i, entry key, entry value)`, by `i` then index key;
    /// at most 5,000 index keys per range (a phone number more contacts share is no caller's).
    pub fn entries_via_many(
        &mut self,
        doing: &'static str,
        lo: &[Vec<u8>],
        hi: &[Vec<u8>],
        tail: &[i32],
        entry_prefix: &[u8],
    ) -> Result<TaggedRows> {
        // One index range scan per probe and one index lookup per entry, as `entries_via` does for
        // one range. The planner cannot estimate the ranges (46,700 rows each at 100 users): joined
        // plainly it hashed a sequential scan of the whole table (≈ 0.3 s a call, measured), so the
        // entry lookup is a LATERAL behind `OFFSET 0`, and each range is capped at 5,000 rows,
        // which keeps the estimate under `jit_above_cost` (no JIT compile per query).
        let sql = "SELECT q.i, e.k, e.v FROM unnest($1::bytea[], $2::bytea[], $3::int[]) WITH ORDINALITY AS q(lo, hi, t, i) \
                   CROSS JOIN LATERAL (SELECT p.k FROM index_kv p WHERE p.k >= q.lo AND p.k < q.hi ORDER BY p.k LIMIT 5000) p \
                   CROSS JOIN LATERAL (SELECT e.k, e.v FROM index_kv e WHERE e.k = $4 || substring(p.k from q.t) OFFSET 0) e \
                   ORDER BY q.i, p.k";
        let rows = self.query(doing, sql, &[&lo, &hi, &tail, &entry_prefix])?;
        Ok(rows
            .into_iter()
            .map(|r| (usize::try_from(r.get::<_, i64>(0) - 1).unwrap_or(usize::MAX), r.get(1), r.get(2)))
            .collect())
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&mut self, t: Table, doing: &'static str, prefix: &[u8]) -> Result<Rows> {
        let end = prefix_end(prefix);
        self.range(t, doing, prefix, end.as_deref(), false, None)
    }

    /// Writes a set of changes (`None`: remove) in two statements.
    pub fn write(&mut self, t: Table, doing: &'static str, changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Result<()> {
        let (mut put_k, mut put_v, mut del) = (Vec::new(), Vec::new(), Vec::new());
        for (k, v) in changes {
            match v {
                Some(v) => {
                    put_k.push(k);
                    put_v.push(v);
                }
                None => del.push(k),
            }
        }
        if !del.is_empty() {
            let sql = match t {
                Table::Index => "DELETE FROM index_kv WHERE k = ANY($1)",
                Table::Users => "DELETE FROM user_kv WHERE k = ANY($1)",
            };
            self.execute(doing, sql, &[&del])?;
        }
        if !put_k.is_empty() {
            let sql = match t {
                Table::Index => {
                    "INSERT INTO index_kv (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                     ON CONFLICT (k) DO UPDATE SET v = excluded.v"
                }
                Table::Users => {
                    "INSERT INTO user_kv (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                     ON CONFLICT (k) DO UPDATE SET v = excluded.v"
                }
            };
            self.execute(doing, sql, &[&put_k, &put_v])?;
        }
        Ok(())
    }

    pub fn put(&mut self, t: Table, doing: &'static str, k: Vec<u8>, v: Vec<u8>) -> Result<()> {
        self.write(t, doing, BTreeMap::from([(k, Some(v))]))
    }

    /// Removes a key; whether it was there.
    pub fn remove(&mut self, t: Table, doing: &'static str, k: &[u8]) -> Result<bool> {
        let sql = match t {
            Table::Index => "DELETE FROM index_kv WHERE k = $1",
            Table::Users => "DELETE FROM user_kv WHERE k = $1",
        };
        Ok(self.execute(doing, sql, &[&k])? > 0)
    }
}

/// The first key after every key starting with `prefix` (`None`: there is none).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn the_end_of_a_prefix_is_the_first_key_after_it() {
        assert_eq!(prefix_end(b"p\0u\0"), Some(b"p\0u\x01".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff]), Some(vec![b'b']));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }
}
