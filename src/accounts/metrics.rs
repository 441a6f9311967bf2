//! Sync metrics for Prometheus (`contactbridge_sync_*` on the metrics endpoint).
//!
//! Labels are bounded by the code, never by data: the connector kind (graph, carddav,
//! caldav, files), the outcome (complete, partial, failed), the error kind (the nine
//! [`ErrorKind`]s) and the operation (upserted, removed). No account id, user or
//! collection name is a label: an admin who can register accounts could otherwise
//! grow the series without bound. Per account, `contactbridge account show` and the
//! admin API's status have the same figures.

use contactbridge_connector::ErrorKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Run {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Failure {
    kind: &'static str,
    error: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Records {
    kind: &'static str,
    op: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

/// The sync metrics of a registry; registered on the metrics endpoint by the server.
pub struct SyncMetrics {
    runs: Family<Run, Counter>,
    duration: Family<Run, Histogram>,
    failures: Family<Failure, Counter>,
    records: Family<Records, Counter>,
    last_success: Family<Kind, Gauge<f64, AtomicU64>>,
}

impl Default for SyncMetrics {
    fn default() -> Self {
        Self {
            runs: Family::default(),
            // 10 ms … ~87 min, doubling.
            duration: Family::new_with_constructor(
                (|| Histogram::new(exponential_buckets(0.01, 2.0, 20))) as fn() -> Histogram,
            ),
            failures: Family::default(),
            records: Family::default(),
            last_success: Family::default(),
        }
    }
}

/// The label of an error kind.
pub fn error_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Auth => "auth",
        ErrorKind::Forbidden => "forbidden",
        ErrorKind::Unreachable => "unreachable",
        ErrorKind::Throttled => "throttled",
        ErrorKind::InvalidData => "invalid_data",
        ErrorKind::Gone => "gone",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::Local => "local",
    }
}

impl SyncMetrics {
    /// Adds the series to `registry` (give it the prefix, e.g. `contactbridge_sync`).
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register("runs", "Account syncs by connector kind and outcome", self.runs.clone());
        registry.register(
            "duration_seconds",
            "Time of an account's sync, by connector kind and outcome",
            self.duration.clone(),
        );
        registry.register(
            "failures",
            "Failed collections (or accounts that could not be listed), by connector kind and error kind",
            self.failures.clone(),
        );
        registry.register(
            "records",
            "Records written to (upserted) or removed from the index by syncs, by connector kind",
            self.records.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When a sync of this connector kind last completed (Unix time; its age: time() - this)",
            self.last_success.clone(),
        );
    }

    /// Records one account's sync: its kind, outcome, duration, records and failures.
    pub fn observe(
        &self,
        kind: &'static str,
        outcome: crate::sync::SyncOutcome,
        seconds: f64,
        (upserted, removed): (u64, u64),
        errors: impl IntoIterator<Item = ErrorKind>,
    ) {
        let run = Run { kind, outcome: outcome.as_str() };
        self.runs.get_or_create(&run).inc();
        self.duration.get_or_create(&run).observe(seconds);
        self.records.get_or_create(&Records { kind, op: "upserted" }).inc_by(upserted);
        self.records.get_or_create(&Records { kind, op: "removed" }).inc_by(removed);
        for e in errors {
            self.failures.get_or_create(&Failure { kind, error: error_label(e) }).inc();
        }
        if outcome == crate::sync::SyncOutcome::Complete {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            self.last_success.get_or_create(&Kind { kind }).set(now.as_secs_f64());
        }
    }
}
