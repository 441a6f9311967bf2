//! End-to-end CardDAV sync benchmark (issue 17 §5): the engine as it runs — the
//! account registry's sync (the path of `serve`'s scheduler and `sync --once`)
//! into a real sled store with its commits — against vdirsyncer syncing the same
//! collection into a local folder, in alternating rounds of the same run.
//!
//! Each round starts both sides from nothing (a fresh data directory; a fresh
//! vdirsyncer status and folder): a first (full) sync, then a no-change sync.
//! Equal work: both fetch every card of one address book over HTTP from the same
//! Radicale; the bridge also parses, normalises and indexes every card and commits
//! it with its checkpoint; vdirsyncer writes each card to a file. How each asks
//! differs: the bridge's first sync takes the ctag and one `addressbook-query`,
//! vdirsyncer lists (PROPFIND) and then multigets.
//!
//! Each first sync's wall time is split into Radicale's CPU, the bridge's own CPU
//! (this process, all threads: parse, index, commit) and the rest (waiting: I/O,
//! the other side's scheduling on a busy machine), from `/proc/<pid>/stat`.
//! The last line is a ready-to-paste summary.
//!
//! `graph` as the first argument instead: an organisation-wide Graph account of four
//! mailboxes against the fake Graph (connectors/graph/tests/support), synced as the
//! engine runs it (mailboxes and collections one after another), next to curl
//! one HTTP client with keep-alive (Python's `http.client`, one connection) fetching
//! the same contact delta pages (same page size), following `@odata.nextLink` one
//! page after another: the server's own time for the data; the bridge also lists
//! each mailbox's other (empty) collections, parses, indexes and commits.
//!
//! ```sh
//! python3 -m venv .tools/bench-venv && .tools/bench-venv/bin/pip install vdirsyncer
//! CARGO_TARGET_DIR=/work/rel cargo build --release --example bench_sync_e2e
//! CONTACTBRIDGE_TOOLS=/path/to/.tools VDIRSYNCER=.tools/bench-venv/bin/vdirsyncer \
//!   cargo run --release --example bench_sync_e2e -- [cards=10000] [rounds=3]
//! cargo run --release --example bench_sync_e2e -- graph [contacts=10000] [rounds=3]
//! ```

#[path = "common/dav_servers.rs"]
mod dav_servers;
#[path = "../connectors/graph/tests/support/fake_graph.rs"]
mod fake_graph;

use contactbridge::accounts::{AccountSpec, Registry, SourceKind};
use contactbridge::secrets::SecretKey;
use contactbridge::store::SledStore;
use contactbridge::sync::scheduler::Schedule;
use contactbridge::user::{self, UserId, UserProfile};
use contactbridge_dav::{Credentials, DavAccount, Server};
use dav_servers::{tool, DavServer, Kind, PASSWORD, USER};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    stat_seconds(pid, 11)
}

/// CPU seconds of this process's children that have been waited for (vdirsyncer).
fn children_cpu_seconds() -> f64 {
    stat_seconds(std::process::id(), 13)
}

/// Two adjacent tick counts of `/proc/<pid>/stat`, from index `at` after the command name, in seconds.
fn stat_seconds(pid: u32, at: usize) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) close with ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime, stime, cutime, cstime are fields 14 to 17; `rest` starts at field 3.
    (ticks(at) + ticks(at + 1)) / 100.0
}

/// A first sync's wall time and the CPU Radicale and the client (this process's
/// threads, or vdirsyncer's process) spent in it.
#[derive(Clone, Copy, Default)]
struct Split {
    wall: Duration,
    radicale: f64,
    client: f64,
}

impl Split {
    fn measure<T>(radicale: u32, client: impl Fn() -> f64, f: impl FnOnce() -> T) -> (T, Split) {
        let (r0, c0, t) = (cpu_seconds(radicale), client(), Instant::now());
        let out = f();
        let wall = t.elapsed();
        (out, Split { wall, radicale: cpu_seconds(radicale) - r0, client: client() - c0 })
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(Radicale CPU {:.2}s, client CPU {:.2}s)", self.radicale, self.client)
    }
}

/// The bridge: a fresh data directory, one user, one CardDAV account; a first sync, then a no-change one.
async fn bridge(url: &str, radicale: u32) -> (Split, Duration, usize) {
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
    let ours = || cpu_seconds(std::process::id());
    let (r0, c0, t) = (cpu_seconds(radicale), ours(), Instant::now());
    let first = registry.sync("bench").await.unwrap();
    let full = Split { wall: t.elapsed(), radicale: cpu_seconds(radicale) - r0, client: ours() - c0 };
    assert_eq!(first.failed(), 0, "{first:?}");
    let t = Instant::now();
    let again = registry.sync("bench").await.unwrap();
    let none = t.elapsed();
    assert_eq!((again.failed(), again.totals().upserted), (0, 0));
    (full, none, first.totals().upserted)
}

/// vdirsyncer: a fresh status and folder; discover, a first sync, then a no-change one.
fn vdirsyncer(bin: &Path, collection_url: &str, radicale: u32) -> (Split, Duration, usize) {
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
    let ((), full) = Split::measure(radicale, children_cpu_seconds, || run(&["sync"]));
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

/// One HTTP client with keep-alive (Python's `http.client`): a token, then every mailbox's
/// contact delta pages, following `@odata.nextLink` one page after another.
fn graph_client(fake: &fake_graph::FakeGraph) -> (Duration, usize) {
    const CLIENT: &str = r#"
import http.client, json, sys, time, urllib.parse
authority, tenant, client_id, secret, base, *mailboxes = sys.argv[1:]
def conn_for(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port), u
start = time.perf_counter()
c, u = conn_for(authority)
body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
                               "scope": "https://graph.microsoft.com/.default"})
c.request("POST", f"{u.path}/{tenant}/oauth2/v2.0/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
r = c.getresponse(); assert r.status == 200, r.status
headers = {"Authorization": "Bearer " + json.loads(r.read())["access_token"], "Prefer": "odata.maxpagesize=200"}
c, _ = conn_for(base)
items = 0
for m in mailboxes:
    url = f"{base}/users/{m}/contacts/delta"
    while url:
        u = urllib.parse.urlsplit(url)
        c.request("GET", u.path + ("?" + u.query if u.query else ""), headers=headers)
        r = c.getresponse(); assert r.status == 200, r.status
        page = json.loads(r.read())
        items += len(page.get("value", []))
        url = page.get("@odata.nextLink")
print(time.perf_counter() - start, items)
"#;
    let out = Command::new(tool("python3"))
        .arg("-c")
        .arg(CLIENT)
        .args([fake.authority(), fake_graph::TENANT.into(), fake_graph::CLIENT_ID.into()])
        .args([fake_graph::CLIENT_SECRET.to_string(), fake.base.clone()])
        .args(MAILBOXES)
        .output()
        .expect("python3 (tests/setup-tools.sh installs .tools/venv)");
    assert!(out.status.success(), "client: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let (secs, items) = text.trim().split_once(' ').expect("seconds and items");
    (Duration::from_secs_f64(secs.parse().unwrap()), items.parse().unwrap())
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
        let (curl, items) = graph_client(&fake);
        println!("round {round} client  contact delta pages {curl:>8.2?}  ({items} items, one keep-alive connection)");
        ours.push(full);
        nones.push(none);
        theirs.push(curl);
    }
    let (of, on, tc) = (median(ours), median(nones), median(theirs));
    println!(
        "SUMMARY graph: {contacts} contacts in {} mailboxes, median of {rounds}: first sync (engine, sequential) \
         {of:.2?} vs one keep-alive client's delta pages {tc:.2?} ({:.2}x the client's time); no-change {on:.2?}",
        MAILBOXES.len(),
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
    let server = DavServer::start(Kind::Radicale, cards);
    let root = format!("http://127.0.0.1:{}/", server.port);
    let collection = format!("http://127.0.0.1:{}/{USER}/contacts/", server.port);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // Radicale's first answers warm its caches: one unmeasured listing each.
    let pid = server.pid();
    rt.block_on(bridge(&root, pid));
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (full, none, n) = rt.block_on(bridge(&root, pid));
        println!(
            "round {round} bridge      first sync {:>8.2?} {full}  no-change {:>8.2?}  ({n} cards)",
            full.wall, none
        );
        ours.push((full, none));
        let (full, none, n) = vdirsyncer(&vdir, &collection, pid);
        println!(
            "round {round} vdirsyncer  first sync {:>8.2?} {full}  no-change {:>8.2?}  ({n} files)",
            full.wall, none
        );
        theirs.push((full, none));
    }
    // The round with the median first sync, for its split.
    let mid = |v: &[(Split, Duration)]| {
        let mut v = v.to_vec();
        v.sort_by_key(|r| r.0.wall);
        v[v.len() / 2].0
    };
    let (of, tf) = (mid(&ours), mid(&theirs));
    let (on, tn) = (median(ours.iter().map(|r| r.1).collect()), median(theirs.iter().map(|r| r.1).collect()));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "SUMMARY carddav: {cards} cards from Radicale, median of {rounds} alternating rounds: first sync bridge {:.2?} {of} \
         vs vdirsyncer {:.2?} {tf} = {:.2}x faster; no-change bridge {on:.2?} vs vdirsyncer {tn:.2?} = {:.2}x; \
         load average {}",
        of.wall,
        tf.wall,
        tf.wall.as_secs_f64() / of.wall.as_secs_f64(),
        tn.as_secs_f64() / on.as_secs_f64(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
}
