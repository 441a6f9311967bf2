//! Three `contactbridge serve` replicas (the real binary, separate processes)
//! on one real PostgreSQL database (the backend's test harness), syncing a
//! CardDAV account from a real Radicale behind a slow link (every response
//! held back, so that a sync spans seconds and many change sets):
//!
//! - every card of the book changes after the first sync (which reads the book
//!   in one query), and the replica holding the account's sync lease is
//!   SIGKILLed while fetching the changes; another takes the lease over at
//!   expiry and finishes: the index holds exactly the address book; ResolveCall on every replica answers the same;
//!   a directive sent through replica A reaches a WatchDirectives stream on
//!   replica B, never another tenant's stream, and another tenant cannot send it;
//! - hostile: the holder is SIGSTOPped mid-sync (of a change) past its lease,
//!   another replica syncs the book, the book changes and is synced again, then the
//!   stopped replica wakes (SIGCONT) with its old change sets in hand: none
//!   of them lands (fencing), the index keeps the newer state.

use contactbridge::accounts::{AccountSpec, Registry, SourceKind};
use contactbridge::api::client::BridgeClient;
use contactbridge::api::pb;
use contactbridge::secrets::SecretKey;
use contactbridge::store::postgres::testing::{shared_database, TestDatabase};
use contactbridge::store::postgres::{PgOptions, PgStore};
use contactbridge::store::{IndexStore, Scope};
use contactbridge::sync::scheduler::Schedule;
use contactbridge::user::{self, UserId, UserProfile};
use contactbridge_dav::{Credentials, DavAccount, Server};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::radicale::{collection, Radicale};

mod support;

const DAV_USER: &str = "dana";
const DAV_PASSWORD: &str = "Radicale-Otter-5521";
const DID: &str = "+49 30 901820";
const ACME_KEY: &str = "acme-tsps-key";
const GLOBEX_KEY: &str = "globex-tsps-key";
const ACCOUNT: &str = "dana-book";
/// Cards in the book, and per change set.
const CARDS: usize = 32;
const BATCH: usize = 4;
/// How long the slow link holds back every response.
const LINK_DELAY: Duration = Duration::from_millis(350);
/// The replicas' sync lease (`[sync] lease_secs`).
const LEASE_SECS: u64 = 2;

/// Blocking work (the `postgres` client, sleeps) from the test's async code.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Radicale with the address book `book` of `version`.
fn radicale(version: &str) -> Radicale {
    Radicale::start(DAV_USER, DAV_PASSWORD, |home| {
        collection(home, "book", "VADDRESSBOOK", &[]);
        write_cards(&home.join("book"), version);
    })
}

/// Rewrites every card with `version` in its name.
fn change_every_card(radicale: &Radicale, version: &str) {
    write_cards(&radicale.home().join("book"), version);
}

fn phone(i: usize) -> String {
    format!("+49170100{i:04}")
}

fn name(i: usize, version: &str) -> String {
    format!("Card {i} {version}")
}

fn write_cards(book: &Path, version: &str) {
    for i in 0..CARDS {
        let card = format!(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-{i}\r\nFN:{}\r\nTEL;TYPE=CELL:{}\r\nEND:VCARD\r\n",
            name(i, version),
            phone(i)
        );
        std::fs::write(book.join(format!("card-{i}.vcf")), card).unwrap();
    }
}

/// A TCP relay to `upstream` that holds back everything the server sends by
/// [`LINK_DELAY`]: a slow link in front of a real server.
async fn slow_link(upstream: u16) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            tokio::time::sleep(LINK_DELAY).await;
                            if cw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    port
}

/// The database with two tenants' users and keys, and dana's CardDAV account
/// (syncing every 2 s from `dav_url`); the secret key in `key_file`.
fn prepare(db: &TestDatabase, dav_url: &str, key_file: &Path) -> PgStore {
    let store = PgStore::open(&PgOptions::new(db.url.clone()), Path::new("")).unwrap();
    let mut dana = UserProfile::new(UserId::parse("acme.dana").unwrap(), "acme");
    dana.called_numbers = vec![DID.into()];
    dana.region = Some("DE".into());
    user::put_profile(&store, &dana).unwrap();
    let mut gus = UserProfile::new(UserId::parse("globex.gus").unwrap(), "globex");
    gus.called_numbers = vec!["+49 40 555000".into()];
    user::put_profile(&store, &gus).unwrap();
    for (key, tenant) in [(ACME_KEY, "acme"), (GLOBEX_KEY, "globex")] {
        contactbridge::api::auth::put_fixed_key(&store, key, tenant, Scope::Tsps, "replicas test").unwrap();
    }
    let key = SecretKey::from_file(key_file, true).unwrap();
    let registry = Registry::new(Arc::new(store.clone()), key, Schedule::new("*/15 * * * *", "UTC").unwrap());
    let mut dav = DavAccount::new(
        Server::Url(dav_url.into()),
        Credentials::Basic { username: DAV_USER.into(), password: contactbridge_dav::Secret::new(DAV_PASSWORD) },
    );
    dav.batch_size = BATCH;
    let mut spec = AccountSpec::new(ACCOUNT, UserId::parse("acme.dana").unwrap(), SourceKind::CardDav(dav));
    spec.schedule = Some(Schedule::new("*/2 * * * * *", "UTC").unwrap());
    registry.add(spec).unwrap();
    store
}

/// One `serve` replica on the database.
struct Replica {
    child: Child,
    grpc: SocketAddr,
    log: PathBuf,
}

impl Replica {
    fn start(db: &TestDatabase, key_file: &Path, dir: &Path, n: usize) -> Self {
        let data = dir.join(format!("replica-{n}"));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::copy(key_file, data.join("secret.key")).unwrap();
        let log = dir.join(format!("replica-{n}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_contactbridge"))
            .arg("--data-dir")
            .arg(&data)
            .args(["serve", "--metrics-listen", "off"])
            .env_remove("CONTACTBRIDGE_CONFIG")
            .env("CONTACTBRIDGE_STORE__BACKEND", "postgres")
            .env("CONTACTBRIDGE_STORE__POSTGRES__URL", &db.url)
            .env("CONTACTBRIDGE_STORE__POSTGRES__POOL_SIZE", "4")
            .env("CONTACTBRIDGE_SYNC__LEASE_SECS", LEASE_SECS.to_string())
            .env("CONTACTBRIDGE_GRPC__LISTEN", "127.0.0.1:0")
            .env("CONTACTBRIDGE_WEB__LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let grpc = loop {
            let line = lines.next().unwrap_or_else(|| panic!("replica {n} stopped: {}", read(&log))).unwrap();
            if let Some(a) = line.strip_prefix("gRPC on ") {
                break a.parse().unwrap();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, grpc, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, sig) }, 0);
    }

    async fn client(&self, key: &str) -> BridgeClient {
        BridgeClient::connect(&format!("http://{}", self.grpc), key).await.unwrap()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The account's current lease holder's pid (holder ids are `host:pid:random`), if held.
fn lease_holder(db: &TestDatabase) -> Option<u32> {
    let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let row = c
        .query_opt(
            "SELECT holder FROM sync_leases WHERE account = $1 AND holder IS NOT NULL AND expires > now()",
            &[&ACCOUNT],
        )
        .unwrap()?;
    let holder: String = row.get(0);
    holder.split(':').nth(1)?.parse().ok()
}

/// The contacts of dana's account: (uid, name), sorted.
fn contacts(store: &PgStore) -> Vec<(String, String)> {
    let dana = UserId::parse("acme.dana").unwrap();
    let mut out = Vec::new();
    store
        .scan_contacts(&dana, &mut |c| {
            out.push((c.contact.id.0.clone(), c.contact.best_name()));
            true
        })
        .unwrap();
    out.sort();
    out
}

fn expected(version: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> =
        (0..CARDS).map(|i| (format!("/{DAV_USER}/book/card-{i}.vcf"), name(i, version))).collect();
    v.sort();
    v
}

/// What the store and the replicas' logs say (for a failure's message).
fn diagnose(store: &PgStore, logs: &[PathBuf]) -> String {
    let found = contacts(store);
    let mut out = format!("{} contacts, e.g. {:?}\n", found.len(), found.first());
    for l in logs {
        let text = read(l);
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains(" DEBUG ")).collect();
        out += &format!("--- {}\n{}\n", l.display(), lines[lines.len().saturating_sub(25)..].join("\n"));
    }
    out
}

/// Waits until the lease holder has committed part of the book's change to `version`
/// (mid-sync); returns its replica's index.
fn wait_mid_sync(db: &TestDatabase, store: &PgStore, replicas: &[Replica], version: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no replica was seen mid-sync");
        let n = contacts(store).iter().filter(|(_, name)| name.ends_with(version)).count();
        if n > 0 && n < CARDS - BATCH * 2 {
            if let Some(pid) = lease_holder(db) {
                if let Some(i) = replicas.iter().position(|r| r.pid() == pid) {
                    return i;
                }
            }
        }
        assert!(n < CARDS, "the sync finished before it could be interrupted ({n} cards)");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool, diagnose: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {}", diagnose());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ring(cli: &str) -> pb::ResolveCallRequest {
    pb::ResolveCallRequest { called_number: DID.into(), cli: cli.into(), tsps_call_id: String::new(), at: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_sync_is_taken_over_and_every_replica_answers_and_directs_alike() {
    let dir = tempfile::tempdir().unwrap();
    let radicale = radicale("v1");
    let link = slow_link(radicale.port).await;
    let db = shared_database();
    let key_file = dir.path().join("secret.key");
    let store = prepare(&db, &format!("http://127.0.0.1:{link}/"), &key_file);
    let mut replicas: Vec<Replica> = (0..3).map(|n| Replica::start(&db, &key_file, dir.path(), n)).collect();
    let logs: Vec<PathBuf> = replicas.iter().map(|r| r.log.clone()).collect();
    blocking(|| wait_for("the first sync", 60, || contacts(&store) == expected("v1"), || diagnose(&store, &logs)));

    // The book changes; SIGKILL the lease holder mid-sync; another replica finishes the book.
    change_every_card(&radicale, "v2");
    let victim = blocking(|| wait_mid_sync(&db, &store, &replicas, "v2"));
    let before = blocking(|| contacts(&store).len());
    let mut dead = replicas.remove(victim);
    dead.child.kill().unwrap(); // SIGKILL
    dead.child.wait().unwrap();
    let killed_at = Instant::now();
    let logs: Vec<PathBuf> = replicas.iter().map(|r| r.log.clone()).chain([dead.log.clone()]).collect();
    blocking(|| {
        wait_for(
            "another replica to finish the sync",
            60,
            || contacts(&store) == expected("v2"),
            || diagnose(&store, &logs),
        )
    });
    let took = killed_at.elapsed();
    let holder_logs: Vec<String> = replicas.iter().map(|r| read(&r.log)).collect();
    assert!(
        holder_logs.iter().any(|l| l.contains("scheduled sync starting")),
        "no surviving replica synced: {holder_logs:?}"
    );
    eprintln!(
        "killed with {before}/{CARDS} cards committed; the book was complete {took:?} later (lease {LEASE_SECS} s)"
    );
    let status = blocking(|| store.collection_states(&UserId::parse("acme.dana").unwrap(), ACCOUNT).unwrap());
    assert!(status.iter().all(|(_, s)| s.last_error.is_none() && s.open_snapshot.is_none()), "{status:?}");

    // ResolveCall on every replica: the same decision.
    let mut answers = Vec::new();
    for r in &replicas {
        let mut c = r.client(ACME_KEY).await;
        let a = c.calls.resolve_call(ring(&phone(7))).await.unwrap().into_inner();
        answers.push(a);
    }
    // … and on the killed replica, started again.
    let back = Replica::start(&db, &key_file, dir.path(), 9);
    answers.push(back.client(ACME_KEY).await.calls.resolve_call(ring(&phone(7))).await.unwrap().into_inner());
    for a in &answers {
        assert_eq!(a.user_id, "acme.dana");
        assert_eq!(a.candidates.iter().map(|c| c.display_name.as_str()).collect::<Vec<_>>(), [name(7, "v2")]);
        let first = &answers[0];
        assert_eq!(
            (&a.handling_code, a.status, &a.method, &a.target, &a.code_source),
            (&first.handling_code, first.status, &first.method, &first.target, &first.code_source)
        );
    }

    // A directive sent through replica A reaches the tenant's stream on replica B, and no other tenant's.
    let (a, b) = (&replicas[0], &replicas[1]);
    let mut acme_on_b = b
        .client(ACME_KEY)
        .await
        .calls
        .watch_directives(pb::WatchDirectivesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut globex_on_b = b
        .client(GLOBEX_KEY)
        .await
        .calls
        .watch_directives(pb::WatchDirectivesRequest::default())
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_millis(300)).await; // the streams are subscribed
    let mut on_a = a.client(ACME_KEY).await;
    let mut latencies = Vec::new();
    for round in 0..5 {
        let call = on_a.calls.resolve_call(ring(&phone(round))).await.unwrap().into_inner();
        let send = pb::SendDirectiveRequest {
            call_id: call.call_id.clone(),
            action: pb::DirectiveAction::Forward as i32,
            target: "+49 30 555 0199".into(),
            by: "attendant:desk".into(),
            ..Default::default()
        };
        let sent_at = Instant::now();
        on_a.calls.send_directive(send).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), acme_on_b.message())
            .await
            .expect("reached replica B")
            .unwrap()
            .unwrap();
        latencies.push(sent_at.elapsed());
        assert_eq!(
            (got.call_id.as_str(), got.user_id.as_str(), got.target.as_str()),
            (call.call_id.as_str(), "acme.dana", "+49 30 555 0199")
        );
    }
    latencies.sort();
    eprintln!(
        "directive A -> stream on B (SendDirective sent to received): median {:?}, max {:?} over {}",
        latencies[2],
        latencies[4],
        latencies.len()
    );
    // Another tenant cannot direct acme's call through any replica.
    let call = on_a.calls.resolve_call(ring(&phone(9))).await.unwrap().into_inner();
    let hostile = b
        .client(GLOBEX_KEY)
        .await
        .calls
        .send_directive(pb::SendDirectiveRequest {
            call_id: call.call_id,
            action: pb::DirectiveAction::Reject as i32,
            ..Default::default()
        })
        .await;
    assert!(hostile.is_err(), "another tenant directed acme's call: {hostile:?}");
    let leaked = tokio::time::timeout(Duration::from_millis(1500), globex_on_b.message()).await;
    assert!(leaked.is_err(), "another tenant's stream saw a directive: {leaked:?}");
    let refused = tokio::time::timeout(Duration::from_millis(500), acme_on_b.message()).await;
    assert!(refused.is_err(), "a refused directive was delivered: {refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_wakes_after_its_lease_expired_does_not_overwrite_the_newer_sync() {
    let dir = tempfile::tempdir().unwrap();
    let radicale = radicale("v1");
    let link = slow_link(radicale.port).await;
    let db = shared_database();
    let key_file = dir.path().join("secret.key");
    let store = prepare(&db, &format!("http://127.0.0.1:{link}/"), &key_file);
    let replicas: Vec<Replica> = (0..2).map(|n| Replica::start(&db, &key_file, dir.path(), n)).collect();
    let logs: Vec<PathBuf> = replicas.iter().map(|r| r.log.clone()).collect();
    let diag = || diagnose(&store, &logs);
    blocking(|| wait_for("the first sync", 60, || contacts(&store) == expected("v1"), diag));

    change_every_card(&radicale, "v2");
    let sleeper = blocking(|| wait_mid_sync(&db, &store, &replicas, "v2"));
    replicas[sleeper].signal(libc::SIGSTOP);
    // The other replica takes over at expiry and syncs the book; then the book changes and is synced again.
    blocking(|| wait_for("the other replica to sync the book", 60, || contacts(&store) == expected("v2"), diag));
    change_every_card(&radicale, "v3");
    blocking(|| {
        wait_for("the other replica to sync the changed book", 60, || contacts(&store) == expected("v3"), diag)
    });
    // The sleeper wakes with v2 change sets in hand.
    replicas[sleeper].signal(libc::SIGCONT);
    let log = replicas[sleeper].log.clone();
    blocking(|| {
        wait_for(
            "the woken replica to notice it lost the lease",
            30,
            || {
                let l = read(&log);
                l.contains("is no longer held") || l.contains("sync lease lost")
            },
            diag,
        )
    });
    blocking(|| std::thread::sleep(Duration::from_secs(LEASE_SECS + 1)));
    assert_eq!(blocking(|| contacts(&store)), expected("v3"), "a stale replica overwrote the newer sync");
}

/// A primary and a streaming standby (`pg_basebackup -R`) of one database, its schema made
/// before the copy; the store writing to the primary with `standby_url` set, its lookup view,
/// and Dana (with her called number) on it. Destructured `primary` first, so that the locals
/// drop the other way round: the store first, the servers last.
struct WithStandby {
    store: PgStore,
    view: Arc<dyn contactbridge::store::Store>,
    dana: UserProfile,
    db: TestDatabase,
    standby: contactbridge::store::postgres::testing::PgServer,
    primary: contactbridge::store::postgres::testing::PgServer,
}

impl WithStandby {
    fn start(connect_timeout: Duration) -> Self {
        let primary = contactbridge::store::postgres::testing::PgServer::start();
        let db = primary.create_database();
        drop(PgStore::open(&PgOptions::new(db.url.clone()), Path::new("")).unwrap()); // schema before the copy
        let standby = primary.start_standby();
        let options =
            PgOptions { standby_url: Some(standby.url(&db.name)), connect_timeout, ..PgOptions::new(db.url.clone()) };
        let store = PgStore::open(&options, Path::new("")).unwrap();
        let view = Arc::new(store.lookup_view().expect("a standby is configured"));
        let mut dana = UserProfile::new(UserId::parse("acme.dana").unwrap(), "acme");
        dana.called_numbers = vec![DID.into()];
        dana.region = Some("DE".into());
        user::put_profile(&store, &dana).unwrap();
        Self { store, view, dana, db, standby, primary }
    }
}

/// Lookups from a real streaming standby (`pg_basebackup -R`), writes to the
/// primary: with replay paused (replication lag), a lookup answers from the
/// state before the lag, and the call it records still lands on the primary;
/// once replay resumes, the lookup sees the change. The standby refuses writes.
#[test]
fn lookups_read_a_hot_standby_and_see_the_primary_as_it_was_during_lag() {
    use contactbridge::resolve::{CallQuery, Resolver};
    use contactbridge::store::{CallStore, Store, UserStore};
    let WithStandby { primary: _primary, standby, db, dana, view, store } = WithStandby::start(Duration::from_secs(5));
    let book = |version: &str, cards: usize| contactbridge::store::IndexBatch {
        scope: contactbridge::store::CollectionScope {
            user: dana.id.clone(),
            account: ACCOUNT.into(),
            collection: "book".into(),
        },
        upserts: (0..cards)
            .map(|i| {
                contactbridge::sync::Indexer::default().index(contactbridge::connector::Record::Contact(
                    contactbridge::connector::Contact {
                        id: contactbridge::connector::RecordId::new(format!("card-{i}")),
                        display_name: name(i, version),
                        phones: vec![contactbridge::connector::PhoneNumber {
                            raw: phone(i),
                            kind: contactbridge::connector::PhoneKind::Mobile,
                            extension: None,
                        }],
                        ..Default::default()
                    },
                ))
            })
            .collect(),
        deletions: vec![],
        retained: vec![],
        rejected: vec![],
        checkpoint: Some(contactbridge::connector::Checkpoint::new(version.as_bytes())),
        snapshot: None,
        at: chrono::Utc::now(),
    };
    store.apply(&book("v1", 2)).unwrap();
    let resolver = Resolver::new(view.clone());
    let ask = |cli: &str| {
        resolver.resolve(&CallQuery { called: DID.into(), cli: cli.into(), tsps_call_id: None, at: chrono::Utc::now() })
    };
    let names = |d: &contactbridge::resolve::Decision| {
        d.candidates.iter().map(|c| c.stored.contact.best_name()).collect::<Vec<_>>()
    };
    // Replicated: the standby answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    let d = loop {
        match ask(&phone(1)) {
            Ok(d) if names(&d) == [name(1, "v1")] => break d,
            other => assert!(Instant::now() < deadline, "the standby never caught up: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(view.call(&d.call_id).unwrap().is_some(), "the call was recorded on the primary");

    // Lag: replay paused on the standby; the primary moves on.
    let mut on_standby = postgres::Client::connect(&standby.url(&db.name), postgres::NoTls).unwrap();
    on_standby.execute("SELECT pg_wal_replay_pause()", &[]).unwrap();
    store.apply(&book("v2", 3)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let during = ask(&phone(1)).unwrap();
    assert_eq!(names(&during), [name(1, "v1")], "the lookup reads the standby as it was before the lag");
    assert!(names(&ask(&phone(2)).unwrap()).is_empty(), "a contact synced during the lag is not seen yet");
    assert!(store.call(&during.call_id).unwrap().is_some(), "the call is recorded on the primary during the lag");
    let on_primary = Resolver::new(Arc::new(store.clone()) as Arc<dyn Store>)
        .decide_for(&dana, &CallQuery { called: DID.into(), cli: phone(2), tsps_call_id: None, at: chrono::Utc::now() })
        .unwrap();
    assert_eq!(names(&on_primary), [name(2, "v2")], "the primary has it");

    // Replay resumes: the lookup sees the primary's state.
    on_standby.execute("SELECT pg_wal_replay_resume()", &[]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while names(&ask(&phone(2)).unwrap()) != [name(2, "v2")] {
        assert!(Instant::now() < deadline, "the standby did not catch up after replay resumed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(names(&ask(&phone(1)).unwrap()), [name(1, "v2")]);

    // The standby itself is read-only.
    let standby_store = PgStore::open(&PgOptions::new(standby.url(&db.name)), Path::new(""));
    let refused = standby_store.and_then(|s| s.put_profile(&dana, &[]).map(|_| s));
    assert!(refused.is_err(), "the standby accepted a write");
}

/// The standby killed (SIGKILL of its postmaster, not paused): lookups fail with a store
/// error naming the standby (its URL without the password), each within the connect
/// timeout, and never move to the primary; the primary keeps taking writes and its own
/// lookups answer.
#[test]
fn lookups_fail_with_a_clear_error_when_the_standby_is_killed() {
    use contactbridge::resolve::{CallQuery, Resolver};
    use contactbridge::store::Store;
    let connect_timeout = Duration::from_secs(2);
    let WithStandby { primary: _primary, standby, db: _db, dana, view, store } = WithStandby::start(connect_timeout);
    let card = contactbridge::connector::Record::Contact(contactbridge::connector::Contact {
        id: contactbridge::connector::RecordId::new("card-1"),
        display_name: name(1, "v1"),
        phones: vec![contactbridge::connector::PhoneNumber::new(phone(1), contactbridge::connector::PhoneKind::Mobile)],
        ..Default::default()
    });
    support::index::put(&store, &dana.id, ACCOUNT, "book", vec![card]);
    let query = || CallQuery { called: DID.into(), cli: phone(1), tsps_call_id: None, at: chrono::Utc::now() };
    let on_standby = Resolver::new(view.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !on_standby.resolve(&query()).is_ok_and(|d| d.candidates.len() == 1) {
        assert!(Instant::now() < deadline, "the standby never caught up");
        std::thread::sleep(Duration::from_millis(50));
    }

    // kill -9 the standby's postmaster (its backends end with it).
    let pid = std::fs::read_to_string(standby.root().join("data/postmaster.pid")).unwrap();
    let pid: i32 = pid.lines().next().unwrap().trim().parse().unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let standby_addr = format!("127.0.0.1:{}", standby.port());
    let deadline = Instant::now() + Duration::from_secs(30);
    let error = loop {
        let asked = Instant::now();
        let answer = on_standby.resolve(&query());
        let took = asked.elapsed();
        assert!(took < connect_timeout + Duration::from_secs(3), "a lookup hung for {took:?} on the dead standby");
        match answer {
            Err(e) if e.to_string().contains(&standby_addr) => break e.to_string(),
            // A pooled connection may still answer for a moment, or fail as closed first.
            _ => assert!(Instant::now() < deadline, "lookups still answer 30 s after the standby was killed"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(error.contains("PostgreSQL connection"), "{error}");
    assert!(!error.contains("cbtest-password"), "the password in an error: {error}");
    // No silent fallback: still failing, while the primary takes writes and answers its own lookups.
    assert!(on_standby.resolve(&query()).is_err(), "a lookup moved to the primary");
    user::put_profile(&store, &dana).unwrap();
    let d = Resolver::new(Arc::new(store.clone()) as Arc<dyn Store>).decide_for(&dana, &query()).unwrap();
    assert_eq!(d.candidates.len(), 1, "the primary answers");
}
