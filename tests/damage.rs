//! Damage found while running: bytes of a running store's index file are
//! garbled (sled's page cache is kept tiny, so pages are read back from the
//! file), a sync meets the bad pages, the index is moved aside and a fresh one
//! opened in place, the scheduler syncs every account at once (its cron
//! schedule is yearly), lookups say the index is rebuilding meanwhile, and
//! the rebuilt index is correct and opens cleanly afterwards.

use async_trait::async_trait;
use chrono::Utc;
use contactbridge::connector::{
    ChangeSet, ChangeSink, Checkpoint, Collection, CollectionKind, Connector, Contact, Error, PhoneKind, PhoneNumber,
    Record, RecordId, Snapshot, SyncRequest,
};
use contactbridge::resolve::{CallQuery, Resolver};
use contactbridge::store::{IndexStore, SledStore, Store, StoreOptions, UserStore};
use contactbridge::sync::scheduler::{Runner, Schedule, Scheduled, Scheduler, SchedulerOptions, SystemClock};
use contactbridge::sync::{sync_account, Indexer, SyncTarget};
use contactbridge::user::{self, UserId, UserProfile};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const CONTACTS: usize = 3000;
const DID: &str = "+49 30 901820";

fn dana() -> UserId {
    UserId::parse("acme.dana").unwrap()
}

/// An address book of [`CONTACTS`] cards: a full listing without a
/// checkpoint; after one, a card whose etag the connector compares with the
/// version the index holds (as a CardDAV sync-collection answer is filtered).
struct Book;

#[async_trait]
impl Connector for Book {
    fn name(&self) -> &'static str {
        "book"
    }
    async fn check(&self) -> Result<(), Error> {
        Ok(())
    }
    async fn collections(&self) -> Result<Vec<Collection>, Error> {
        Ok(vec![Collection { id: "book".into(), name: "Book".into(), kind: CollectionKind::AddressBook, owner: None }])
    }
    async fn sync(&self, request: SyncRequest<'_>, sink: &mut dyn ChangeSink) -> Result<(), Error> {
        if request.since.is_some() {
            let changed = card(7);
            let upserts = match request.known.version(changed.id()) {
                Some(v) if Some(v.as_str()) == changed.version() => vec![],
                _ => vec![changed],
            };
            return sink.apply(ChangeSet { upserts, checkpoint: request.since, ..Default::default() }).await;
        }
        let cards: Vec<Record> = (0..CONTACTS).map(card).collect();
        let mut batches = cards.chunks(500).peekable();
        let mut first = true;
        while let Some(b) = batches.next() {
            let last = batches.peek().is_none();
            let changes = ChangeSet {
                upserts: b.to_vec(),
                snapshot: Some(Snapshot { starts: first, ends: last }),
                checkpoint: last.then(|| Checkpoint::new("listed")),
                ..Default::default()
            };
            sink.apply(changes).await?;
            first = false;
        }
        Ok(())
    }
}

fn card(i: usize) -> Record {
    Record::Contact(Contact {
        id: RecordId::new(format!("c{i}")),
        display_name: format!("Contact {i} with a name long enough to fill pages"),
        version: Some(format!("etag-{i}")),
        phones: vec![PhoneNumber::new(format!("+49 30 5{i:06}"), PhoneKind::Work)],
        emails: vec![format!("c{i}@example.com")],
        ..Default::default()
    })
}

/// The one account, synced with [`sync_account`]; a run waits for `gate`
/// (so the test sees lookups while the index rebuilds).
struct BookRunner {
    store: Arc<SledStore>,
    gate: tokio::sync::Semaphore,
    results: std::sync::Mutex<Vec<Result<(), String>>>,
}

#[async_trait]
impl Runner for BookRunner {
    fn scheduled(&self) -> Result<Vec<Scheduled>, String> {
        let schedule = Schedule::new("0 0 0 1 1 *", "UTC").unwrap();
        Ok(vec![Scheduled { id: "book".into(), schedule, enabled: true, failures: 0, last_finished: None }])
    }
    async fn run(&self, _account: &str) -> Result<(), String> {
        self.gate.acquire().await.unwrap().forget();
        let owners = HashMap::new();
        let indexer = Indexer::default();
        let target = SyncTarget { account: "book", user: &dana(), owners: &owners, indexer: &indexer };
        let report = sync_account(self.store.as_ref(), &Book, &target).await;
        let result = match report.collections.iter().find_map(|c| c.error.as_ref()) {
            Some(e) => Err(e.to_string()),
            None => Ok(()),
        };
        self.results.lock().unwrap().push(result.clone());
        result
    }
}

fn open(dir: &Path) -> Arc<SledStore> {
    // A tiny page cache: pages are read back from the file, where the damage is.
    let options = StoreOptions { cache_bytes: 64 * 1024, reserve_bytes: 0, ..Default::default() };
    Arc::new(SledStore::open_with(dir, &options).unwrap())
}

fn moved_aside(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("index.corrupt-"))
        .count()
}

/// Garbles the middle three quarters of a file in place, through another
/// handle (the store keeps its own open).
fn garble(file: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let bytes = std::fs::read(file).unwrap();
    let (from, to) = (bytes.len() / 8, bytes.len() * 7 / 8);
    let garbled: Vec<u8> = bytes[from..to].iter().map(|b| b ^ 0x5a).collect();
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.seek(SeekFrom::Start(from as u64)).unwrap();
    f.write_all(&garbled).unwrap();
    f.sync_all().unwrap();
}

fn decide(store: &Arc<SledStore>, cli: &str) -> contactbridge::resolve::Decision {
    Resolver::new(store.clone() as Arc<dyn Store>)
        .resolve(&CallQuery { called: DID.into(), cli: cli.into(), tsps_call_id: None, at: Utc::now() })
        .unwrap()
}

fn index_is_complete(store: &SledStore) {
    assert_eq!(store.count_records(&dana(), "book").unwrap().get("contact"), Some(&CONTACTS));
    for i in [0, CONTACTS / 2, CONTACTS - 1] {
        let found = store.contacts_by_email(&dana(), &format!("c{i}@example.com")).unwrap();
        assert_eq!(found.len(), 1, "contact c{i} by email");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_index_page_met_during_a_sync_rebuilds_the_index_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut profile = UserProfile::new(dana(), "acme");
    profile.called_numbers = vec![DID.into()];
    user::put_profile(store.as_ref(), &profile).unwrap();

    let runner = Arc::new(BookRunner {
        store: store.clone(),
        gate: tokio::sync::Semaphore::new(0),
        results: Default::default(),
    });
    let options = SchedulerOptions { jitter_fraction: 0.0, ..SchedulerOptions::default() };
    let scheduler = Scheduler::new(runner.clone(), Arc::new(SystemClock), options).spawn();
    let rebuild = tokio::spawn(contactbridge::sync::scheduler::rebuild_index_on_damage(
        store.clone(),
        scheduler.scheduler().clone(),
    ));

    // The first sync, as a full one.
    let pass = scheduler.scheduler().resync_all();
    runner.gate.add_permits(1);
    scheduler.scheduler().resynced().wait_for(|p| *p >= pass).await.unwrap();
    index_is_complete(&store);
    assert!(!decide(&store, "+49 30 5000007").index_rebuilding);
    store.flush().unwrap();

    garble(&dir.path().join("index").join("db"));
    // A sync (standing in for a cron time) meets the damage: reading the
    // collection's state or its records' versions, or committing.
    scheduler.scheduler().resync_all();
    runner.gate.add_permits(1);
    let runs = |n: usize| {
        let runner = runner.clone();
        async move {
            while runner.results.lock().unwrap().len() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), runs(2)).await.expect("the sync ran");
    assert_eq!(moved_aside(dir.path()), 1, "the damaged index is moved aside while the store runs");
    assert!(store.index_rebuilding());

    // While the resync waits for its turn, lookups answer and say so.
    let d = decide(&store, "+49 30 5000007");
    assert!(d.index_rebuilding, "a decision made while the index rebuilds says so");
    assert!(d.candidates.is_empty(), "the fresh index has no contacts yet");

    // The scheduler runs the account now, not at its (yearly) cron time.
    runner.gate.add_permits(1);
    let rebuilt = tokio::time::timeout(Duration::from_secs(60), async {
        while store.index_rebuilding() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let results = runner.results.lock().unwrap().clone();
    assert!(rebuilt.is_ok(), "the index was rebuilt by an immediate resync: {results:?}");
    assert_eq!(results.len(), 3, "one more run, asked for by the store: {results:?}");
    assert_eq!(results[2], Ok(()));
    index_is_complete(&store);
    let d = decide(&store, "+49 30 5000007");
    assert!(!d.index_rebuilding);
    assert_eq!(d.candidates.len(), 1);
    assert_eq!(store.profile(&dana()).unwrap().unwrap().called_numbers, [DID], "user data untouched");

    rebuild.abort();
    scheduler.shutdown(Duration::from_secs(5)).await;
    drop(runner);
    drop(store);
    // The rebuilt index carries the epoch: the next open keeps it.
    let store = open(dir.path());
    index_is_complete(&store);
    assert!(!store.index_rebuilding());
    assert_eq!(moved_aside(dir.path()), 1, "nothing moved on a healthy open");
}
