//! The schema, as an ordered list of migrations built into the binary.
//!
//! Opening applies every migration newer than the database's
//! `schema_version`, each in the same transaction as its version row, under
//! an advisory lock: replicas starting at once apply each migration once, the
//! others wait and find it applied. A database whose version is newer than
//! this build's last migration is refused (a newer build wrote it).
//! Migrations are only ever appended; a released one is never edited.

use super::kv::Conn;
use super::pg;
use crate::store::{Result, StoreError};

/// One migration: its version (1, 2, … in order), what it does, its SQL.
pub struct Migration {
    pub version: i32,
    pub description: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "index and user data as ordered key/value tables (sled's layout), call records",
        sql: "
        CREATE TABLE index_kv (k bytea PRIMARY KEY, v bytea NOT NULL);
        CREATE TABLE user_kv (k bytea PRIMARY KEY, v bytea NOT NULL);
        CREATE TABLE calls (
            id text PRIMARY KEY,
            user_id text NOT NULL,
            caller_key text,
            at_us bigint NOT NULL,
            v bytea NOT NULL
        );
        CREATE INDEX calls_by_user ON calls (user_id, at_us DESC, id DESC);
        CREATE INDEX calls_by_caller ON calls (user_id, caller_key, at_us DESC, id DESC);
    ",
    },
    Migration {
        version: 2,
        description: "sync leases (one row per account: holder, fencing token, expiry) and the bus's large payloads",
        sql: "
        CREATE TABLE sync_leases (
            account text PRIMARY KEY,
            holder text,
            token bigint NOT NULL,
            expires timestamptz NOT NULL
        );
        CREATE TABLE bus_payloads (
            id bigserial PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now(),
            payload bytea NOT NULL
        );
    ",
    },
];

/// The advisory lock key migrations run under (any constant nobody else uses).
const MIGRATION_LOCK: i64 = 0x6362_5f6d_6967_7261; // "cb_migra"

/// The version this build's schema ends at.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Applies the migrations the database lacks; returns how many.
pub(crate) fn migrate(conn: &mut Conn) -> Result<usize> {
    let mut tx = conn.client.transaction().map_err(|e| pg("starting the schema migration", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(|e| pg("waiting for the schema migration lock", e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version integer PRIMARY KEY,
            description text NOT NULL,
            applied timestamptz NOT NULL DEFAULT now()
        )",
    )
    .map_err(|e| pg("creating schema_version", e))?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .map_err(|e| pg("reading the schema version", e))?
        .get(0);
    if current > latest() {
        return Err(StoreError::Invalid(format!(
            "the PostgreSQL database is at schema version {current}, newer than this build knows (up to {}): \
             written by a newer contactbridge; upgrade it",
            latest()
        )));
    }
    let mut applied = 0;
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(m.sql).map_err(|e| pg("applying a schema migration", e))?;
        tx.execute("INSERT INTO schema_version (version, description) VALUES ($1, $2)", &[&m.version, &m.description])
            .map_err(|e| pg("recording a schema migration", e))?;
        tracing::info!(version = m.version, description = m.description, "PostgreSQL schema migrated");
        applied += 1;
    }
    tx.commit().map_err(|e| pg("committing the schema migration", e))?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_run_one_two_three_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.description);
        }
    }
}
