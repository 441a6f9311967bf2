//! Sync metrics for Prometheus (`contactbridge_sync_*` on the metrics endpoint).
//!
//! Two layers:
//! - By connector kind: labels bounded by the code, never by data — the connector kind
//!   (graph, carddav, caldav, files), the outcome (complete, partial, failed), the error
//!   kind (the nine [`ErrorKind`]s) and the operation (upserted, removed).
//! - Per account and per collection (`contactbridge_sync_account_*`,
//!   `contactbridge_sync_collection_*`): last success, last duration, records written and
//!   removed, errors by kind, throttling waits (count and seconds).
//!
//! **Labels.** `account` is the account id: a name the admin chose (1–64 characters
//! of a fixed set, `<tenant>/<id>` for a tenant admin's), already in every log line; it
//! names no mailbox unless the admin made it one. A collection's own id is data — a DAV
//! href holds the user's mail address, a Graph id the mailbox's UPN, its display name
//! anything — and Prometheus keeps labels for months in storage run by others, so
//! `collection` is a pseudonym instead: `c` and 16 hex digits of SHA-256 over the account
//! id and the collection id ([`collection_label`]). `contactbridge account show` prints
//! each collection's pseudonym next to it, mapping a series back. The digest is not keyed:
//! one who already guesses an address and the href's form can confirm the guess — it
//! keeps the address out of the scrape, it is no secret. `collection_kind` is one of five
//! words. The encoder escapes every label value (`\`, `"`, newline) all the same.
//!
//! **Cardinality.** An admin registering many accounts, or a server inventing collections,
//! must not grow the series without bound: at most `[metrics] max_collection_series`
//! accounts and collections together are tracked (each counts one; each holds about six to
//! fifteen series). A sync of one past the cap is counted only by connector kind and in
//! `contactbridge_sync_series_dropped_total`. Removing an account removes its series
//! ([`SyncMetrics::forget_account`]); a collection no longer listed after a sync loses
//! its series ([`SyncMetrics::retain_collections`]), which frees room for new ones.
//! The per-account figures live in memory: a restart starts them afresh
//! (`account show` keeps the durable ones).

use contactbridge_connector::ErrorKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Account {
    account: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountError {
    account: String,
    error: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Part {
    account: String,
    collection: String,
    collection_kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartOp {
    account: String,
    collection: String,
    collection_kind: &'static str,
    op: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartError {
    account: String,
    collection: String,
    collection_kind: &'static str,
    error: &'static str,
}

type GaugeF = Gauge<f64, AtomicU64>;

/// The default of `[metrics] max_collection_series`: a provider's thousand accounts of
/// about ten collections (Graph: seven per mailbox).
pub const DEFAULT_MAX_COLLECTION_SERIES: usize = 10_000;

/// Every error kind, for removing a part's series.
const ERROR_KINDS: [ErrorKind; 9] = [
    ErrorKind::Auth,
    ErrorKind::Forbidden,
    ErrorKind::Unreachable,
    ErrorKind::Throttled,
    ErrorKind::InvalidData,
    ErrorKind::Gone,
    ErrorKind::NotFound,
    ErrorKind::Unsupported,
    ErrorKind::Local,
];

const OPS: [&str; 2] = ["upserted", "removed"];

/// The sync metrics of a registry; registered on the metrics endpoint by the server.
pub struct SyncMetrics {
    runs: Family<Run, Counter>,
    duration: Family<Run, Histogram>,
    failures: Family<Failure, Counter>,
    records: Family<Records, Counter>,
    last_success: Family<Kind, GaugeF>,
    account_last_success: Family<Account, GaugeF>,
    account_last_duration: Family<Account, GaugeF>,
    account_errors: Family<AccountError, Counter>,
    part_last_success: Family<Part, GaugeF>,
    part_last_duration: Family<Part, GaugeF>,
    part_records: Family<PartOp, Counter>,
    part_errors: Family<PartError, Counter>,
    part_throttle_waits: Family<Part, Counter>,
    part_throttle_seconds: Family<Part, Counter<f64, AtomicU64>>,
    dropped: Counter,
    /// Account id → its tracked collections (pseudonym → kind label); each account and
    /// collection counts one against `max_series`.
    tracked: Mutex<HashMap<String, HashMap<String, &'static str>>>,
    max_series: usize,
}

impl Default for SyncMetrics {
    fn default() -> Self {
        Self::with_max_collection_series(DEFAULT_MAX_COLLECTION_SERIES)
    }
}

/// One collection's sync, as the per-collection series record it.
pub struct CollectionSync<'a> {
    /// The collection's id at the source (made a pseudonym here).
    pub id: &'a str,
    pub kind: contactbridge_connector::CollectionKind,
    pub seconds: f64,
    pub upserted: u64,
    pub removed: u64,
    pub error: Option<ErrorKind>,
    pub throttling: contactbridge_connector::Throttling,
}

/// The `collection` label of collection `collection` of account `account`: `c` and 16 hex
/// digits of SHA-256 over both (the module docs say why not the id itself).
pub fn collection_label(account: &str, collection: &str) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(account.as_bytes());
    h.update([0u8]);
    h.update(collection.as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(17);
    out.push('c');
    for b in &digest[..8] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The `collection_kind` label.
pub fn kind_label(kind: contactbridge_connector::CollectionKind) -> &'static str {
    use contactbridge_connector::CollectionKind as K;
    match kind {
        K::AddressBook => "address_book",
        K::Calendar => "calendar",
        K::MailFolder => "mail_folder",
        K::Drive => "drive",
        K::Settings => "settings",
    }
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64()
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
    /// Metrics tracking at most `max` accounts and collections per account and collection.
    pub fn with_max_collection_series(max: usize) -> Self {
        Self {
            runs: Family::default(),
            // 10 ms … ~87 min, doubling.
            duration: Family::new_with_constructor(
                (|| Histogram::new(exponential_buckets(0.01, 2.0, 20))) as fn() -> Histogram,
            ),
            failures: Family::default(),
            records: Family::default(),
            last_success: Family::default(),
            account_last_success: Family::default(),
            account_last_duration: Family::default(),
            account_errors: Family::default(),
            part_last_success: Family::default(),
            part_last_duration: Family::default(),
            part_records: Family::default(),
            part_errors: Family::default(),
            part_throttle_waits: Family::default(),
            part_throttle_seconds: Family::default(),
            dropped: Counter::default(),
            tracked: Mutex::default(),
            max_series: max,
        }
    }

    /// Adds the series to `registry` (give it the prefix, e.g. `contactbridge_sync`).
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        self.register_per_part(registry);
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

impl SyncMetrics {
    fn register_per_part(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "account_last_success_timestamp_seconds",
            "When a sync of this account last completed (Unix time)",
            self.account_last_success.clone(),
        );
        registry.register(
            "account_last_duration_seconds",
            "How long the account's last sync took",
            self.account_last_duration.clone(),
        );
        registry.register(
            "account_errors",
            "Syncs of the account that failed before any collection (listing, credentials), by error kind",
            self.account_errors.clone(),
        );
        registry.register(
            "collection_last_success_timestamp_seconds",
            "When the collection last synced without error (Unix time); `account show` maps `collection` back",
            self.part_last_success.clone(),
        );
        registry.register(
            "collection_last_duration_seconds",
            "How long the collection's last sync took",
            self.part_last_duration.clone(),
        );
        registry.register(
            "collection_records",
            "Records of the collection written to (upserted) or removed from the index by syncs",
            self.part_records.clone(),
        );
        registry.register(
            "collection_errors",
            "Failed syncs of the collection, by error kind",
            self.part_errors.clone(),
        );
        registry.register(
            "collection_throttle_waits",
            "Waits for a source throttling the collection's sync (429/503 with Retry-After)",
            self.part_throttle_waits.clone(),
        );
        registry.register(
            "collection_throttle_wait_seconds",
            "Time waited for a source throttling the collection's sync",
            self.part_throttle_seconds.clone(),
        );
        registry.register(
            "series_dropped",
            "Account or collection syncs not recorded per account and collection: [metrics] max_collection_series reached",
            self.dropped.clone(),
        );
    }

    /// Whether the account, and `collection` (pseudonym, kind) with it, have series: makes
    /// room for them within the cap, else counts a dropped series and answers false.
    fn track(&self, account: &str, collection: Option<(&str, &'static str)>) -> bool {
        let mut tracked = self.tracked.lock().unwrap_or_else(|p| p.into_inner());
        let used: usize = tracked.values().map(|c| 1 + c.len()).sum();
        let entry = tracked.get(account);
        let needed = usize::from(entry.is_none())
            + collection.map_or(0, |(c, _)| usize::from(entry.is_none_or(|e| !e.contains_key(c))));
        if used + needed > self.max_series {
            drop(tracked);
            self.dropped.inc();
            return false;
        }
        let entry = tracked.entry(account.to_string()).or_default();
        if let Some((c, kind)) = collection {
            entry.entry(c.to_string()).or_insert(kind);
        }
        true
    }

    /// Records one account's sync as a whole: its duration, an error that stopped it
    /// before any collection, and the time when it completed.
    pub fn observe_account(&self, account: &str, seconds: f64, error: Option<ErrorKind>, complete: bool) {
        if !self.track(account, None) {
            return;
        }
        let a = Account { account: account.to_string() };
        self.account_last_duration.get_or_create(&a).set(seconds);
        if let Some(e) = error {
            self.account_errors
                .get_or_create(&AccountError { account: account.to_string(), error: error_label(e) })
                .inc();
        }
        if complete {
            self.account_last_success.get_or_create(&a).set(now_seconds());
        }
    }

    /// Records one collection's sync.
    pub fn observe_collection(&self, account: &str, sync: &CollectionSync<'_>) {
        let collection = collection_label(account, sync.id);
        let collection_kind = kind_label(sync.kind);
        if !self.track(account, Some((&collection, collection_kind))) {
            return;
        }
        let part = Part { account: account.to_string(), collection, collection_kind };
        self.part_last_duration.get_or_create(&part).set(sync.seconds);
        for (op, n) in [("upserted", sync.upserted), ("removed", sync.removed)] {
            let labels =
                PartOp { account: part.account.clone(), collection: part.collection.clone(), collection_kind, op };
            self.part_records.get_or_create(&labels).inc_by(n);
        }
        match sync.error {
            Some(e) => {
                let labels = PartError {
                    account: part.account.clone(),
                    collection: part.collection.clone(),
                    collection_kind,
                    error: error_label(e),
                };
                self.part_errors.get_or_create(&labels).inc();
            }
            None => {
                self.part_last_success.get_or_create(&part).set(now_seconds());
            }
        }
        self.part_throttle_waits.get_or_create(&part).inc_by(sync.throttling.waits);
        self.part_throttle_seconds.get_or_create(&part).inc_by(sync.throttling.waited.as_secs_f64());
    }

    fn remove_part(&self, account: &str, collection: &str, collection_kind: &'static str) {
        let part = Part { account: account.to_string(), collection: collection.to_string(), collection_kind };
        self.part_last_success.remove(&part);
        self.part_last_duration.remove(&part);
        self.part_throttle_waits.remove(&part);
        self.part_throttle_seconds.remove(&part);
        for op in OPS {
            self.part_records.remove(&PartOp {
                account: part.account.clone(),
                collection: part.collection.clone(),
                collection_kind,
                op,
            });
        }
        for e in ERROR_KINDS {
            self.part_errors.remove(&PartError {
                account: part.account.clone(),
                collection: part.collection.clone(),
                collection_kind,
                error: error_label(e),
            });
        }
    }

    /// Removes the series of collections of `account` whose ids are not in `present`
    /// (a sync listed the account's collections and these were gone).
    pub fn retain_collections<'a>(&self, account: &str, present: impl IntoIterator<Item = &'a str>) {
        let keep: HashSet<String> = present.into_iter().map(|c| collection_label(account, c)).collect();
        let gone: Vec<(String, &'static str)> = {
            let mut tracked = self.tracked.lock().unwrap_or_else(|p| p.into_inner());
            let Some(parts) = tracked.get_mut(account) else { return };
            let gone = parts.iter().filter(|(c, _)| !keep.contains(*c)).map(|(c, k)| (c.clone(), *k)).collect();
            parts.retain(|c, _| keep.contains(c));
            gone
        };
        for (c, kind) in gone {
            self.remove_part(account, &c, kind);
        }
    }

    /// Removes every series of `account` (the account was removed).
    pub fn forget_account(&self, account: &str) {
        let Some(parts) = self.tracked.lock().unwrap_or_else(|p| p.into_inner()).remove(account) else { return };
        for (c, kind) in parts {
            self.remove_part(account, &c, kind);
        }
        let a = Account { account: account.to_string() };
        self.account_last_success.remove(&a);
        self.account_last_duration.remove(&a);
        for e in ERROR_KINDS {
            self.account_errors.remove(&AccountError { account: account.to_string(), error: error_label(e) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contactbridge_connector::{CollectionKind, Throttling};

    fn render(m: &SyncMetrics) -> String {
        let mut r = prometheus_client::registry::Registry::default();
        m.register(r.sub_registry_with_prefix("contactbridge_sync"));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        out
    }

    fn sync(id: &str) -> CollectionSync<'_> {
        CollectionSync {
            id,
            kind: CollectionKind::AddressBook,
            seconds: 0.5,
            upserted: 3,
            removed: 1,
            error: None,
            throttling: Throttling { waits: 2, waited: std::time::Duration::from_millis(1500) },
        }
    }

    /// Account ids are checked before they get here; should one with quotes, newlines and
    /// braces arrive all the same, the exposition escapes it and stays one line per sample.
    #[test]
    fn a_hostile_account_label_is_escaped() {
        let m = SyncMetrics::default();
        let hostile = format!("a\"}} 1\n# TYPE x counter\n{{\\{}", "x".repeat(10_000));
        m.observe_collection(&hostile, &sync("/dav/ann@example.com/book/"));
        let out = render(&m);
        assert!(!out.contains("ann@example.com"), "{out}");
        assert!(!out.contains("\n# TYPE x counter"), "{out}");
        let line = out.lines().find(|l| l.starts_with("contactbridge_sync_collection_throttle_waits_total{")).unwrap();
        assert!(line.contains(r#"account="a\"} 1\n# TYPE x counter\n{\\xxx"#), "{line}");
        assert!(line.ends_with(" 2"), "{line}");
    }

    #[test]
    fn the_cap_counts_accounts_and_collections_and_removal_frees_room() {
        let m = SyncMetrics::with_max_collection_series(3);
        m.observe_collection("a", &sync("one"));
        m.observe_collection("a", &sync("two"));
        m.observe_collection("a", &sync("three"));
        m.observe_account("b", 1.0, None, true);
        assert_eq!(m.dropped.get(), 2);
        assert!(!render(&m).contains(&collection_label("a", "three")));
        m.retain_collections("a", ["one"]);
        assert!(!render(&m).contains(&collection_label("a", "two")));
        m.observe_account("b", 1.0, None, true);
        assert!(render(&m).contains(r#"account="b""#));
        m.forget_account("a");
        let out = render(&m);
        assert!(!out.contains(r#"account="a""#), "{out}");
        assert_eq!(m.tracked.lock().unwrap().values().map(|c| 1 + c.len()).sum::<usize>(), 1);
    }
}
