//! No-change sync benchmark (issue 17 §4): what a sync of a CardDAV account that
//! finds nothing new costs end to end, next to the server's own time for the one
//! request the bridge chose to learn that, sent with curl.
//!
//! For Radicale and Xandikos in turn: one address book of `cards` generated cards
//! (seeded into the server's storage), one account in a fresh data directory with
//! a real sled store; one first sync, unmeasured; then `rounds` alternating rounds
//! of (a) the account's sync through the registry as `sync --once` runs it
//! (discovery cached in the run record, the probe the connector chose, the
//! checkpoint committed, the run record written, metrics) and (b) curl of exactly
//! the request the bridge prefers for this collection (same method, path, headers
//! and body; printed; the same credentials), timed by curl itself
//! (`time_total`, without curl's start-up). Every 8th sync of the bridge measures
//! both probes (PROPFIND, then REPORT): those rounds are marked `both`.
//!
//! ```sh
//! CONTACTBRIDGE_TOOLS=/path/to/.tools cargo run --release --example bench_nochange -- [cards=10000] [rounds=15] [radicale|xandikos]
//! ```

#[path = "common/dav_servers.rs"]
mod dav_servers;

use contactbridge::accounts::{AccountSpec, Registry, SourceKind};
use contactbridge::secrets::SecretKey;
use contactbridge::store::{IndexStore, SledStore};
use contactbridge::sync::scheduler::Schedule;
use contactbridge::user::{self, UserId, UserProfile};
use contactbridge_dav::probe::{probe_request, ProbeRequest};
use contactbridge_dav::{Credentials, DavAccount, DavCheckpoint, Server};
use dav_servers::{DavServer, Kind, PASSWORD, USER};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// curl sending `request` to the server; curl's own `time_total`.
fn curl(server: &DavServer, request: &ProbeRequest) -> Duration {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "-o", "/dev/null", "-w", "%{time_total}", "-X", &request.method]);
    for (name, value) in &request.headers {
        cmd.arg("-H").arg(format!("{name}: {value}"));
    }
    if let Some(user) = server.curl_user() {
        cmd.arg("-u").arg(user);
    }
    cmd.arg("--data-binary").arg(&request.body);
    cmd.arg(format!("http://127.0.0.1:{}{}", server.port, request.path));
    let out = cmd.output().expect("curl");
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    Duration::from_secs_f64(String::from_utf8_lossy(&out.stdout).trim().parse().expect("curl's time_total"))
}

/// Medians over every round, and over the rounds with one probe (the steady state).
struct Medians {
    ours: Duration,
    theirs: Duration,
    ours_one_probe: Duration,
    theirs_one_probe: Duration,
}

fn run(kind: Kind, cards: usize, rounds: usize, rt: &tokio::runtime::Runtime) -> Medians {
    let seeding = Instant::now();
    let server = DavServer::start(kind, cards);
    println!("{kind:?}: {cards} cards seeded and the server up in {:.1?}", seeding.elapsed());
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let owner = UserId::parse("acme.bench").unwrap();
    user::put_profile(store.as_ref(), &UserProfile::new(owner.clone(), "acme")).unwrap();
    let key = SecretKey::from_file(&dir.path().join("secret.key"), true).unwrap();
    let registry = Registry::new(store.clone(), key, Schedule::new("*/15 * * * *", "UTC").unwrap());
    let credentials = match kind {
        Kind::Radicale => {
            Credentials::Basic { username: USER.into(), password: contactbridge_dav::Secret::new(PASSWORD) }
        }
        Kind::Xandikos => Credentials::None,
    };
    let account = DavAccount::new(Server::Url(server.root()), credentials);
    registry.add(AccountSpec::new("bench", owner.clone(), SourceKind::CardDav(account))).unwrap();
    let t = Instant::now();
    let first = rt.block_on(registry.sync("bench")).unwrap();
    assert_eq!((first.failed(), first.totals().upserted), (0, cards), "{first:?}");
    println!("{kind:?}: first sync (unmeasured) {:.2?}", t.elapsed());
    let checkpoint = || {
        let states = store.collection_states(&owner, "bench").unwrap();
        assert_eq!(states.len(), 1, "one address book");
        let (href, state) = states.into_iter().next().unwrap();
        (href, state.checkpoint.expect("a checkpoint"))
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut ours_one, mut theirs_one) = (Vec::new(), Vec::new());
    let mut shown = None;
    for round in 1..=rounds {
        let t = Instant::now();
        let report = rt.block_on(registry.sync("bench")).unwrap();
        let bridge = t.elapsed();
        assert_eq!((report.failed(), report.totals().upserted, report.totals().deleted), (0, 0, 0), "{report:?}");
        let (href, cp) = checkpoint();
        let stats = DavCheckpoint::decode(&cp).unwrap().probe.expect("figures after a sync with a token");
        let request = probe_request(&href, &cp).expect("a probe request");
        if shown.as_ref() != Some(&request) {
            println!("{kind:?}: the bridge prefers {}", stats.describe());
            println!("  curl sends: {} {}", request.method, request.path);
            for (name, value) in &request.headers {
                println!("    {name}: {value}");
            }
            println!("    body: {}", request.body);
            shown = Some(request.clone());
        }
        let server_time = curl(&server, &request);
        let both = if stats.since_both == 0 { "  (both probes measured)" } else { "" };
        println!("{kind:?} round {round:>2}: bridge {bridge:>9.2?}   curl {server_time:>9.2?}{both}");
        ours.push(bridge);
        theirs.push(server_time);
        if stats.since_both != 0 {
            ours_one.push(bridge);
            theirs_one.push(server_time);
        }
    }
    Medians {
        ours: median(ours),
        theirs: median(theirs),
        ours_one_probe: median(ours_one),
        theirs_one_probe: median(theirs_one),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let cards: usize = args.next().map(|a| a.parse().expect("cards")).unwrap_or(10_000);
    let rounds: usize = args.next().map(|a| a.parse().expect("rounds")).unwrap_or(15);
    let kinds = match args.next().as_deref() {
        None => vec![Kind::Radicale, Kind::Xandikos],
        Some("radicale") => vec![Kind::Radicale],
        Some("xandikos") => vec![Kind::Xandikos],
        Some(other) => panic!("{other}: radicale or xandikos"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut lines = Vec::new();
    for kind in kinds {
        let m = run(kind, cards, rounds, &rt);
        lines.push(format!(
            "{kind:?}, {cards} cards, median of {rounds}: no-change sync {:.2?} vs curl {:.2?} ({:.2}x the server's time); \
             without the rounds measuring both probes: {:.2?} vs {:.2?} ({:.2}x)",
            m.ours,
            m.theirs,
            m.ours.as_secs_f64() / m.theirs.as_secs_f64(),
            m.ours_one_probe,
            m.theirs_one_probe,
            m.ours_one_probe.as_secs_f64() / m.theirs_one_probe.as_secs_f64()
        ));
    }
    for line in lines {
        println!("{line}");
    }
}
