//! End-to-end CardDAV sync benchmark (issue 17 §5): the engine as it runs — the
//! account registry's sync (the path of `serve`'s scheduler and `sync --once`)
//! into a real sled store with its commits — against vdirsyncer syncing the same
//! collection into a local folder, in alternating rounds of the same run.
//!
//! Each round starts both sides from nothing (a fresh data directory; a fresh
//! vdirsyncer status and folder): a first (full) sync, then a no-change sync.
//! Equal work: both fetch every card of one address book over HTTP from the same
//! Radicale; the bridge also parses, normalises and indexes every card and commits
//! it with its checkpoint; vdirsyncer writes each card to a file.
//!
//! `graph` as the first argument instead: an organisation-wide Graph account of four
//! mailboxes against the fake Graph (connectors/graph/tests/support), synced as the
//! engine runs it (mailboxes and collections one after another), next to curl
//! fetching the same contact delta pages (same page size) one after another: the
//! server's own time for the data; the bridge also lists each mailbox's other
//! (empty) collections.
//!
//! ```sh
//! python3 -m venv .tools/bench-venv && .tools/bench-venv/bin/pip install vdirsyncer
//! CONTACTBRIDGE_TOOLS=/path/to/.tools VDIRSYNCER=.tools/bench-venv/bin/vdirsyncer \
//!   cargo run --release --example bench_sync_e2e -- [cards=10000] [rounds=3]
//! cargo run --release --example bench_sync_e2e -- graph [contacts=10000] [rounds=3]
//! ```

#[path = "../connectors/graph/tests/support/fake_graph.rs"]
mod fake_graph;

use contactbridge::accounts::{AccountSpec, Registry, SourceKind};
use contactbridge::secrets::SecretKey;
use contactbridge::store::SledStore;
use contactbridge::sync::scheduler::Schedule;
use contactbridge::user::{self, UserId, UserProfile};
use contactbridge_dav::{Credentials, DavAccount, Server};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USER: &str = "bench";
const PASSWORD: &str = "bench-password";

fn tool(name: &str) -> PathBuf {
    let tools = std::env::var_os("CONTACTBRIDGE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"));
    tools.join("venv/bin").join(name)
}

struct Radicale {
    child: Child,
    port: u16,
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Radicale with `cards` cards in one address book, seeded into its storage folder.
fn radicale(dir: &Path, cards: usize) -> Radicale {
    let book = dir.join("collections/collection-root").join(USER).join("contacts");
    std::fs::create_dir_all(&book).unwrap();
    std::fs::write(book.join(".Radicale.props"), r#"{"tag": "VADDRESSBOOK", "D:displayname": "contacts"}"#).unwrap();
    for i in 0..cards {
        std::fs::write(
            book.join(format!("c{i}.vcf")),
            format!(
                "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c{i}\r\nFN:Person {i}\r\nN:{i};Person;;;\r\nORG:Company {}\r\n\
                 EMAIL:person{i}@example.com\r\nTEL;TYPE=WORK:+49 30 {:07}\r\nTEL;TYPE=CELL:+49 170 {:07}\r\nEND:VCARD\r\n",
                i % 97,
                1_000_000 + i,
                2_000_000 + i
            ),
        )
        .unwrap();
    }
    std::fs::write(dir.join("users"), format!("{USER}:{PASSWORD}\n")).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(tool("radicale"))
        .arg("--server-hosts")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--storage-filesystem-folder")
        .arg(dir.join("collections"))
        .args(["--auth-type", "htpasswd", "--auth-htpasswd-encryption", "plain"])
        .arg("--auth-htpasswd-filename")
        .arg(dir.join("users"))
        .args(["--logging-level", "warning"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("radicale (tests/setup-tools.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "radicale did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Radicale { child, port }
}

/// The bridge: a fresh data directory, one user, one CardDAV account; a first sync, then a no-change one.
async fn bridge(url: &str) -> (Duration, Duration, usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    user::put_profile(store.as_ref(), &UserProfile::new(UserId::parse("acme.bench").unwrap(), "acme")).unwrap();
    let key = SecretKey::from_file(&dir.path().join("secret.key"), true).unwrap();
    let registry = Registry::new(store.clone(), key, Schedule::new("*/15 * * * *", "UTC").unwrap());
    let account = DavAccount::new(
        Server::Url(url.into()),
        Credentials::Basic { username: USER.into(), password: contactbridge_dav::Secret::new(PASSWORD) },
    );
    registry
        .add(AccountSpec::new("bench", UserId::parse("acme.bench").unwrap(), SourceKind::CardDav(account)))
        .unwrap();
    let t = Instant::now();
    let first = registry.sync("bench").await.unwrap();
    let full = t.elapsed();
    assert_eq!(first.failed(), 0, "{first:?}");
    let t = Instant::now();
    let again = registry.sync("bench").await.unwrap();
    let none = t.elapsed();
    assert_eq!((again.failed(), again.totals().upserted), (0, 0));
    (full, none, first.totals().upserted)
}

/// vdirsyncer: a fresh status and folder; discover, a first sync, then a no-change one.
fn vdirsyncer(bin: &Path, collection_url: &str) -> (Duration, Duration, usize) {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("cards");
    std::fs::create_dir_all(&local).unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[general]\nstatus_path = \"{status}\"\n\n[pair bench]\na = \"remote\"\nb = \"local\"\ncollections = null\n\
             conflict_resolution = \"a wins\"\n\n[storage remote]\ntype = \"carddav\"\nurl = \"{collection_url}\"\n\
             username = \"{USER}\"\npassword = \"{PASSWORD}\"\nread_only = true\n\n[storage local]\ntype = \"filesystem\"\n\
             path = \"{local}\"\nfileext = \".vcf\"\n",
            status = dir.path().join("status").display(),
            local = local.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(bin).arg("-c").arg(&config).args(args).stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "vdirsyncer {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["discover"]);
    let t = Instant::now();
    run(&["sync"]);
    let full = t.elapsed();
    let t = Instant::now();
    run(&["sync"]);
    let none = t.elapsed();
    (full, none, std::fs::read_dir(&local).unwrap().count())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

const MAILBOXES: [&str; 4] =
    ["dana@contoso.example", "otto@contoso.example", "mia@contoso.example", "max@contoso.example"];

/// The engine as it runs an organisation-wide Graph account: a fresh data directory, a first sync, a no-change one.
async fn graph_bridge(fake: &fake_graph::FakeGraph) -> (Duration, Duration, usize) {
    use contactbridge_graph::{Credential, GraphAccount, Secret};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    user::put_profile(store.as_ref(), &UserProfile::new(UserId::parse("acme.bench").unwrap(), "acme")).unwrap();
    let key = SecretKey::from_file(&dir.path().join("secret.key"), true).unwrap();
    let registry = Registry::new(store.clone(), key, Schedule::new("*/15 * * * *", "UTC").unwrap());
    let credential = Credential::ClientSecret { secret: Secret::new(fake_graph::CLIENT_SECRET) };
    let mut g = GraphAccount::new(
        fake_graph::TENANT,
        fake_graph::CLIENT_ID,
        credential,
        MAILBOXES.iter().map(|m| m.to_string()).collect(),
    );
    g.authority = fake.authority();
    g.graph_base = fake.base.clone();
    g.https_only = false;
    registry.add(AccountSpec::new("graph", UserId::parse("acme.bench").unwrap(), SourceKind::Graph(g))).unwrap();
    let t = Instant::now();
    let first = registry.sync("graph").await.unwrap();
    let full = t.elapsed();
    assert_eq!(first.failed(), 0, "{first:?}");
    let t = Instant::now();
    let again = registry.sync("graph").await.unwrap();
    let none = t.elapsed();
    assert_eq!(again.failed(), 0);
    (full, none, first.totals().upserted)
}

/// curl: a token, then every mailbox's contact delta pages, one request after another.
fn graph_curl(fake: &fake_graph::FakeGraph) -> (Duration, usize) {
    let curl = |args: &[&str]| -> serde_json::Value {
        let out = Command::new("curl").args(["-sS", "--fail"]).args(args).output().expect("curl");
        assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let t = Instant::now();
    let token = curl(&[
        "-d",
        &format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope=https://graph.microsoft.com/.default",
            fake_graph::CLIENT_ID,
            fake_graph::CLIENT_SECRET
        ),
        &format!("{}/{}/oauth2/v2.0/token", fake.authority(), fake_graph::TENANT),
    ])["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = format!("Authorization: Bearer {token}");
    let mut items = 0;
    for m in MAILBOXES {
        let mut url = format!("{}/users/{m}/contacts/delta", fake.base);
        loop {
            let page = curl(&["-H", &auth, "-H", "Prefer: odata.maxpagesize=200", &url]);
            items += page["value"].as_array().map_or(0, Vec::len);
            match page["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_string(),
                None => break,
            }
        }
    }
    (t.elapsed(), items)
}

fn graph(contacts: usize, rounds: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let fake = rt.block_on(fake_graph::FakeGraph::start());
    for (n, m) in MAILBOXES.iter().enumerate() {
        let per = contacts / MAILBOXES.len();
        fake.put_many(
            &format!("{m}/contacts"),
            (0..per).map(|i| {
                let k = n * per + i;
                fake_graph::contact(
                    &format!("c{k}"),
                    &format!("Person {k}"),
                    &format!("+49 30 {:07}", 1_000_000 + k),
                    &format!("p{k}@x.example"),
                    &[],
                )
            }),
        );
    }
    rt.block_on(graph_bridge(&fake));
    let (mut ours, mut nones, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (full, none, n) = rt.block_on(graph_bridge(&fake));
        println!("round {round} bridge  first sync {full:>8.2?}  no-change {none:>8.2?}  ({n} records)");
        let (curl, items) = graph_curl(&fake);
        println!("round {round} curl    contact delta pages {curl:>8.2?}  ({items} items)");
        ours.push(full);
        nones.push(none);
        theirs.push(curl);
    }
    let (of, on, tc) = (median(ours), median(nones), median(theirs));
    println!(
        "median of {rounds}: Graph first sync bridge {of:.2?} vs curl's pages {tc:.2?} ({:.2}x the server's time); \
         no-change {on:.2?}",
        of.as_secs_f64() / tc.as_secs_f64()
    );
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("graph") {
        let mut args = std::env::args().skip(2);
        let contacts: usize = args.next().map(|a| a.parse().expect("contacts")).unwrap_or(10_000);
        let rounds: usize = args.next().map(|a| a.parse().expect("rounds")).unwrap_or(3);
        return graph(contacts, rounds);
    }
    let mut args = std::env::args().skip(1);
    let cards: usize = args.next().map(|a| a.parse().expect("cards")).unwrap_or(10_000);
    let rounds: usize = args.next().map(|a| a.parse().expect("rounds")).unwrap_or(3);
    let vdir = std::env::var_os("VDIRSYNCER").map(PathBuf::from).unwrap_or_else(|| tool("vdirsyncer"));
    assert!(vdir.exists(), "vdirsyncer is missing at {} (see the command in this file)", vdir.display());
    let dir = tempfile::tempdir().unwrap();
    let server = radicale(dir.path(), cards);
    let root = format!("http://127.0.0.1:{}/", server.port);
    let collection = format!("http://127.0.0.1:{}/{USER}/contacts/", server.port);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // Radicale's first answers warm its caches: one unmeasured listing each.
    rt.block_on(bridge(&root));
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (full, none, n) = rt.block_on(bridge(&root));
        println!("round {round} bridge      first sync {:>8.2?}  no-change {:>8.2?}  ({n} cards)", full, none);
        ours.push((full, none));
        let (full, none, n) = vdirsyncer(&vdir, &collection);
        println!("round {round} vdirsyncer  first sync {:>8.2?}  no-change {:>8.2?}  ({n} files)", full, none);
        theirs.push((full, none));
    }
    let (of, on) = (median(ours.iter().map(|r| r.0).collect()), median(ours.iter().map(|r| r.1).collect()));
    let (tf, tn) = (median(theirs.iter().map(|r| r.0).collect()), median(theirs.iter().map(|r| r.1).collect()));
    println!(
        "median of {rounds}: first sync bridge {of:.2?} vs vdirsyncer {tf:.2?} ({:.2}x faster); \
         no-change bridge {on:.2?} vs vdirsyncer {tn:.2?} ({:.2}x)",
        tf.as_secs_f64() / of.as_secs_f64(),
        tn.as_secs_f64() / on.as_secs_f64()
    );
}
