//! The account registry on a sled store on disk: secrets sealed (never in clear
//! in the data directory or the logs), wrong keys, removal of records for the
//! owner and mapped users, files accounts through the resolver, restarts that
//! resume from checkpoints, cancelled syncs, and the scheduler driving the registry.

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{TimeZone as _, Utc};
use contactbridge::accounts::{AccountError, AccountSpec, ProgressHandle, Registry, SourceKind};
use contactbridge::connector::{
    ChangeSet, ChangeSink, Checkpoint, Collection, CollectionKind, Connector, Contact, Error, PhoneKind, PhoneNumber,
    Record, RecordId, SyncRequest,
};
use contactbridge::resolve::{CallQuery, Resolver};
use contactbridge::secrets::SecretKey;
use contactbridge::store::{CollectionScope, IndexBatch, IndexStore, SledStore, Store, UserStore};
use contactbridge::sync::scheduler::{Schedule, Scheduler, SchedulerOptions, TokioClock};
use contactbridge::sync::{self, Indexer, SyncTarget};
use contactbridge::user::{self, HandlingCode, UserId, UserProfile};
use contactbridge_dav::{Credentials, DavAccount, Server};
use contactbridge_graph::{Credential, GraphAccount};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PASSWORD: &str = "Zebra-Quartz-7741-secret";
const CLIENT_SECRET: &str = "cs~Orchid.Falcon_9922";
const DANA_DID: &str = "+49 30 901820";

fn key(dir: &Path) -> SecretKey {
    SecretKey::from_file(&dir.join("secret.key"), true).unwrap()
}

fn default_schedule() -> Schedule {
    Schedule::new("*/15 * * * *", "UTC").unwrap()
}

fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

/// A store in `dir` with users acme.dana (DID, region DE) and acme.otto.
fn store_with_users(dir: &Path) -> Arc<SledStore> {
    let store = Arc::new(SledStore::open(dir).unwrap());
    if store.profile(&uid("acme.dana")).unwrap().is_none() {
        let mut dana = UserProfile::new(uid("acme.dana"), "acme");
        dana.called_numbers = vec![DANA_DID.into()];
        dana.region = Some("DE".into());
        user::put_profile(store.as_ref(), &dana).unwrap();
        user::put_profile(store.as_ref(), &UserProfile::new(uid("acme.otto"), "acme")).unwrap();
    }
    store
}

fn registry(store: &Arc<SledStore>, dir: &Path) -> Registry {
    Registry::new(store.clone(), key(dir), default_schedule())
}

fn dav_spec(id: &str, url: &str) -> AccountSpec {
    let account = DavAccount::new(
        Server::Url(url.into()),
        Credentials::Basic { username: "dana".into(), password: contactbridge_dav::Secret::new(PASSWORD) },
    );
    AccountSpec::new(id, uid("acme.dana"), SourceKind::CardDav(account))
}

fn graph_spec(id: &str) -> AccountSpec {
    let credential = Credential::ClientSecret { secret: contactbridge_graph::Secret::new(CLIENT_SECRET) };
    let g =
        GraphAccount::new("acme.onmicrosoft.com", "app-1", credential, vec!["dana@acme".into(), "otto@acme".into()]);
    let mut spec = AccountSpec::new(id, uid("acme.dana"), SourceKind::Graph(g));
    spec.mailbox_users.insert("otto@acme".into(), uid("acme.otto"));
    spec
}

/// Every byte of every file below `dir`.
fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Forms of a secret that must never appear: clear, base64 of it and of a Basic header.
fn secret_forms(secret: &str) -> Vec<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        secret.as_bytes().to_vec(),
        b64.encode(secret).into_bytes(),
        b64.encode(format!("dana:{secret}")).into_bytes(),
        serde_json::to_string(secret).unwrap().into_bytes(),
    ]
}

/// A tracing writer into memory, for log captures.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn secrets_are_sealed_and_never_in_clear_in_the_data_directory_or_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = store_with_users(dir.path());
        let registry = registry(&store, dir.path());
        // A server that refuses connections: the sync fails and logs its errors.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let added = registry.add(dav_spec("dana-dav", &format!("http://127.0.0.1:{closed}/"))).unwrap();
        registry.add(graph_spec("acme-m365")).unwrap();
        assert!(!format!("{added:?}").contains(PASSWORD));
        let listed = format!("{:?}", registry.list().unwrap());
        assert!(!listed.contains(PASSWORD) && !listed.contains(CLIENT_SECRET), "{listed}");
        let e = registry.test("dana-dav").await.unwrap_err();
        assert!(matches!(e, AccountError::Source { .. }), "{e}");
        assert!(e.to_string().contains("cannot be reached"), "{e}");
        let report = registry.sync("dana-dav").await.unwrap();
        assert!(report.failed() > 0);
        let status = registry.status("dana-dav").unwrap();
        let shown = format!("{status:?}");
        assert!(shown.contains("cannot be reached") && !shown.contains(PASSWORD), "{shown}");
        // The secret is there, sealed: the connector gets it back.
        let connector = registry.connector("dana-dav").unwrap();
        assert_eq!(connector.name(), "carddav");
        store.flush().unwrap();
    });
    drop(_guard);
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("dana-dav"), "the capture saw the sync: {logs}");
    for secret in [PASSWORD, CLIENT_SECRET] {
        for form in secret_forms(secret) {
            assert!(!contains(logs.as_bytes(), &form), "logs contain a form of a secret");
            for (path, bytes) in all_bytes(dir.path()) {
                assert!(!contains(&bytes, &form), "{path} contains a form of a secret");
            }
        }
    }
}

#[test]
fn a_wrong_key_is_a_clear_error_and_the_right_key_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_users(dir.path());
    registry(&store, dir.path()).add(graph_spec("acme-m365")).unwrap();
    let other = SecretKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([9u8; 32]), "test").unwrap();
    let wrong = Registry::new(store.clone(), other, default_schedule());
    let e = wrong.connector("acme-m365").err().expect("a wrong key fails").to_string();
    assert!(e.contains("cannot be decrypted") && e.contains("set-secret"), "{e}");
    assert!(registry(&store, dir.path()).connector("acme-m365").is_ok());
}

#[test]
fn registering_checks_users_schedules_and_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_users(dir.path());
    let registry = registry(&store, dir.path());
    let mut nobody = graph_spec("g1");
    nobody.mailbox_users.insert("otto@acme".into(), uid("acme.nobody"));
    let e = registry.add(nobody).unwrap_err().to_string();
    assert!(e.contains("acme.nobody does not exist") && e.contains("user add"), "{e}");
    let mut bad_cron = graph_spec("g2");
    bad_cron.schedule = Some(Schedule { cron: "every hour".into(), time_zone: "UTC".into() });
    assert!(registry.add(bad_cron).unwrap_err().to_string().contains("every hour"));
    let mut no_secret = dav_spec("d1", "https://dav.example/");
    no_secret.source.take_secret();
    assert!(registry.add(no_secret).unwrap_err().to_string().contains("needs a password"));
    let e = registry.add(dav_spec("d2", "https://dana:pw@dav.example/")).unwrap_err().to_string();
    assert!(e.contains("credentials") && !e.contains("pw@"), "{e}");
    registry.add(dav_spec("d3", "https://dav.example/")).unwrap();
    assert!(matches!(registry.add(dav_spec("d3", "https://dav.example/")), Err(AccountError::Exists(_))));
    assert!(registry.add(dav_spec("bad/id", "https://dav.example/")).is_err());
}

fn contact(id: &str, name: &str, phone: &str) -> Record {
    Record::Contact(Contact {
        id: RecordId::new(id),
        display_name: name.into(),
        phones: vec![PhoneNumber { raw: phone.into(), kind: PhoneKind::Work, extension: None }],
        ..Contact::default()
    })
}

fn put(store: &SledStore, user: &str, account: &str, records: Vec<Record>) {
    store
        .apply(&IndexBatch {
            scope: CollectionScope { user: uid(user), account: account.into(), collection: "c".into() },
            upserts: records.into_iter().map(|r| Indexer::default().index(r)).collect(),
            deletions: vec![],
            retained: vec![],
            rejected: vec![],
            checkpoint: Some(Checkpoint::new(b"cp".to_vec())),
            snapshot: None,
            at: Utc::now(),
        })
        .unwrap();
}

#[test]
fn remove_deletes_the_records_of_the_owner_and_of_mapped_users_and_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_users(dir.path());
    let registry = registry(&store, dir.path());
    registry.add(graph_spec("acme-m365")).unwrap();
    put(&store, "acme.dana", "acme-m365", vec![contact("1", "A", "+4930111"), contact("2", "B", "+4930222")]);
    put(&store, "acme.otto", "acme-m365", vec![contact("3", "C", "+4930333")]);
    put(&store, "acme.dana", "other", vec![contact("4", "D", "+4930444")]);
    let status = registry.status("acme-m365").unwrap();
    assert_eq!(status.records.get("contact"), Some(&3));
    assert_eq!(status.collections.len(), 2);

    assert_eq!(registry.remove("acme-m365").unwrap(), 3);
    assert!(store.count_records(&uid("acme.dana"), "acme-m365").unwrap().is_empty());
    assert!(store.count_records(&uid("acme.otto"), "acme-m365").unwrap().is_empty());
    assert!(store.collection_states(&uid("acme.otto"), "acme-m365").unwrap().is_empty());
    assert_eq!(store.count_records(&uid("acme.dana"), "other").unwrap().get("contact"), Some(&1));
    assert!(matches!(registry.get("acme-m365"), Err(AccountError::NotFound(_))));
    use contactbridge::accounts::AccountStore as _;
    assert!(store.sealed_secret("acme-m365").unwrap().is_none());
}

const VCF: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:erika\r\nFN:Erika Mustermann\r\nTEL;TYPE=WORK:(030) 123 45 67\r\nCATEGORIES:Wichtig\r\nEND:VCARD\r\n";

fn resolve(store: &Arc<SledStore>, cli: &str) -> contactbridge::resolve::Decision {
    Resolver::new(store.clone() as Arc<dyn Store>)
        .resolve(&CallQuery { called: DANA_DID.into(), cli: cli.into(), tsps_call_id: None, at: Utc::now() })
        .unwrap()
}

#[tokio::test]
async fn a_files_account_syncs_into_the_index_and_a_restart_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("book.vcf"), VCF).unwrap();
    {
        let store = store_with_users(dir.path());
        let registry = registry(&store, dir.path());
        let mut spec =
            AccountSpec::new("dana-files", uid("acme.dana"), SourceKind::Files { path: files.path().into() });
        spec.category_codes.insert("Wichtig".into(), HandlingCode::well_known(HandlingCode::VIP));
        registry.add(spec).unwrap();
        let progress = ProgressHandle::default();
        let report = registry.sync_with("dana-files", progress.clone()).await.unwrap();
        assert_eq!((report.failed(), report.totals().upserted), (0, 1));
        let p = progress.get();
        assert_eq!((p.collections_total, p.collections_done, p.records), (Some(1), 1, 1));
        let d = resolve(&store, "+49301234567");
        assert_eq!(d.candidates[0].stored.contact.best_name(), "Erika Mustermann");
        assert_eq!(d.handling_code.as_str(), "vip", "the account's category mapping applies");
        let status = registry.status("dana-files").unwrap();
        assert_eq!(status.last_run.as_ref().unwrap().upserted, 1);
        assert!(status.last_run.unwrap().last_success.is_some());
        store.flush().unwrap();
    }
    // Restart: a new store and registry on the same directory.
    let store = store_with_users(dir.path());
    let registry = registry(&store, dir.path());
    let again = registry.sync("dana-files").await.unwrap();
    assert_eq!(again.totals().upserted, 0, "resumed from the checkpoint: nothing re-imported");
    assert_eq!(resolve(&store, "030 1234567").candidates.len(), 1);
    std::fs::write(files.path().join("book.vcf"), VCF.replace("Erika", "Erika M.")).unwrap();
    assert_eq!(registry.sync("dana-files").await.unwrap().totals().upserted, 1);
    assert_eq!(resolve(&store, "+49301234567").candidates[0].stored.contact.best_name(), "Erika M. Mustermann");
}

#[tokio::test]
async fn disabled_accounts_are_reported_by_the_scheduler_view_and_can_be_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("book.vcf"), VCF).unwrap();
    let store = store_with_users(dir.path());
    let registry = registry(&store, dir.path());
    let mut spec = AccountSpec::new("f", uid("acme.dana"), SourceKind::Files { path: files.path().into() });
    spec.schedule = Some(Schedule::new("0 9 * * MON-FRI", "Europe/Berlin").unwrap());
    registry.add(spec).unwrap();
    registry.set_enabled("f", false).unwrap();
    use contactbridge::sync::scheduler::Runner as _;
    let scheduled = registry.scheduled().unwrap();
    assert_eq!((scheduled[0].enabled, scheduled[0].schedule.time_zone.as_str()), (false, "Europe/Berlin"));
    assert!(registry.status("f").unwrap().next_run.is_none());
    registry.set_enabled("f", true).unwrap();
    assert!(registry.status("f").unwrap().next_run.is_some());
}

#[tokio::test(start_paused = true)]
async fn the_scheduler_syncs_registered_accounts_on_their_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("book.vcf"), VCF).unwrap();
    let store = store_with_users(dir.path());
    let registry = Arc::new(registry(&store, dir.path()));
    let mut spec = AccountSpec::new("f", uid("acme.dana"), SourceKind::Files { path: files.path().into() });
    spec.schedule = Some(Schedule::new("*/5 * * * *", "UTC").unwrap());
    registry.add(spec).unwrap();
    // An account whose folder disappears after registration: its syncs fail.
    let gone = tempfile::tempdir().unwrap();
    let mut broken = AccountSpec::new("gone", uid("acme.dana"), SourceKind::Files { path: gone.path().into() });
    broken.schedule = Some(Schedule::new("* * * * *", "UTC").unwrap());
    registry.add(broken).unwrap();
    drop(gone);

    let start = Utc.with_ymd_and_hms(2026, 3, 2, 10, 1, 0).unwrap();
    let clock = Arc::new(TokioClock::starting_at(start));
    let options = SchedulerOptions { jitter_fraction: 0.0, ..SchedulerOptions::default() };
    let handle = Scheduler::new(registry.clone(), clock, options).spawn();
    tokio::time::sleep(Duration::from_secs(3 * 60)).await;
    assert!(resolve(&store, "+49301234567").candidates.is_empty(), "not before 10:05");
    tokio::time::sleep(Duration::from_secs(3 * 60)).await;
    assert_eq!(resolve(&store, "+49301234567").candidates.len(), 1, "synced at 10:05");
    let s = handle.scheduler().status();
    assert_eq!((s["f"].runs, s["f"].consecutive_failures), (1, 0));
    assert!(s["gone"].consecutive_failures >= 2, "{:?}", s["gone"]);
    assert!(s["gone"].runs < 5, "backing off: {:?}", s["gone"]);
    handle.shutdown(Duration::from_secs(5)).await;
}

/// A source of `batches` change sets of 10 contacts each, yielding between them.
struct Paced {
    batches: usize,
    delivered: Arc<Mutex<usize>>,
}

#[async_trait]
impl Connector for Paced {
    fn name(&self) -> &'static str {
        "paced"
    }
    async fn check(&self) -> Result<(), Error> {
        Ok(())
    }
    async fn collections(&self) -> Result<Vec<Collection>, Error> {
        Ok(vec![Collection { id: "book".into(), name: "book".into(), kind: CollectionKind::AddressBook, owner: None }])
    }
    async fn sync(&self, request: SyncRequest<'_>, sink: &mut dyn ChangeSink) -> Result<(), Error> {
        let from: usize = match &request.since {
            Some(cp) => String::from_utf8(cp.as_bytes().to_vec()).unwrap().parse().unwrap(),
            None => 0,
        };
        for b in from..self.batches {
            let upserts = (0..10).map(|i| contact(&format!("{b}-{i}"), "X", &format!("+49301{b:03}{i:03}"))).collect();
            let set = ChangeSet {
                upserts,
                checkpoint: Some(Checkpoint::new((b + 1).to_string().into_bytes())),
                ..ChangeSet::default()
            };
            sink.apply(set).await?;
            *self.delivered.lock().unwrap() += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_cancelled_sync_leaves_records_and_checkpoint_in_step_and_the_next_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let scope = CollectionScope { user: uid("acme.dana"), account: "paced".into(), collection: "book".into() };
    let owners = HashMap::new();
    let indexer = Indexer::default();
    let dana = uid("acme.dana");
    let target = SyncTarget { account: "paced", user: &dana, owners: &owners, indexer: &indexer };
    {
        let store = store_with_users(dir.path());
        let delivered = Arc::new(Mutex::new(0));
        let source = Paced { batches: 50, delivered: delivered.clone() };
        let run = sync::sync_account(store.as_ref() as &dyn IndexStore, &source, &target);
        // Dropped mid-way, between two awaits.
        assert!(tokio::time::timeout(Duration::from_millis(150), run).await.is_err());
        let n = *delivered.lock().unwrap();
        assert!(n > 0 && n < 50, "{n} batches before the cancel");
    }
    let store = store_with_users(dir.path());
    let state = store.collection_state(&scope).unwrap().unwrap();
    let batches: usize = String::from_utf8(state.checkpoint.unwrap().as_bytes().to_vec()).unwrap().parse().unwrap();
    let held = store.count_records(&dana, "paced").unwrap()["contact"];
    assert_eq!(held, batches * 10, "records and checkpoint are in step");
    let delivered = Arc::new(Mutex::new(0));
    let source = Paced { batches: 50, delivered: delivered.clone() };
    let report = sync::sync_account(store.as_ref() as &dyn IndexStore, &source, &target).await;
    assert_eq!(report.failed(), 0);
    assert_eq!(*delivered.lock().unwrap(), 50 - batches, "resumed at the checkpoint");
    assert_eq!(store.count_records(&dana, "paced").unwrap()["contact"], 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_keep_answering_while_a_sync_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_users(dir.path());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut answers, mut found_at) = (0usize, None);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let d = resolve(&store, "+49301000000");
                answers += 1;
                match (found_at, d.candidates.len()) {
                    (None, 1) => found_at = Some(answers),
                    (Some(_), n) => assert_eq!(n, 1, "a committed contact never disappears mid-sync"),
                    _ => {}
                }
            }
            (answers, found_at)
        })
    };
    let dana = uid("acme.dana");
    let (owners, indexer) = (HashMap::new(), Indexer::default());
    let target = SyncTarget { account: "paced", user: &dana, owners: &owners, indexer: &indexer };
    let source = Paced { batches: 50, delivered: Arc::new(Mutex::new(0)) };
    let report = sync::sync_account(store.as_ref() as &dyn IndexStore, &source, &target).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answers, found_at) = reader.join().unwrap();
    assert_eq!(report.failed(), 0);
    assert!(answers > 50, "the resolver answered {answers} times during the sync");
    assert!(found_at.is_some_and(|at| at < answers), "the first batch became visible during the sync");
}
