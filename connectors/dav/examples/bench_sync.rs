//! Benchmark: first sync of a 10,000-contact address book from a local Radicale and
//! a no-change incremental sync, side by side with vdirsyncer syncing the same
//! address book to a local folder. Prints a table of figures on stdout.
//!
//! Run: `cargo run --release -p contactbridge-dav --example bench_sync [-- CARDS]`
//! Needs `tests/setup-tools.sh` (Radicale); installs vdirsyncer from PyPI into
//! `.tools/bench-venv` on first use.

#[path = "../tests/support/mod.rs"]
mod support;

use async_trait::async_trait;
use contactbridge_connector::{
    ChangeSet, ChangeSink, Checkpoint, Collection, CollectionKind, Connector, Error, SyncRequest,
};
use contactbridge_dav::{DavCheckpoint, DavConnector};
use libdav::dav::SyncCollection;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{card, TestServer, PASSWORD, USER};

/// Counts what it is given and keeps the checkpoint, like an index that costs nothing.
#[derive(Default)]
struct CountingSink {
    upserts: usize,
    retained: usize,
    change_sets: usize,
    checkpoint: Option<Checkpoint>,
}

#[async_trait]
impl ChangeSink for CountingSink {
    async fn apply(&mut self, changes: ChangeSet) -> Result<(), Error> {
        self.upserts += changes.upserts.len();
        self.retained += changes.retained.len();
        self.change_sets += 1;
        if changes.checkpoint.is_some() {
            self.checkpoint = changes.checkpoint;
        }
        Ok(())
    }
}

fn vdirsyncer() -> PathBuf {
    let venv = support::tools_dir().join("bench-venv");
    let bin = venv.join("bin/vdirsyncer");
    if !bin.exists() {
        eprintln!("installing vdirsyncer into {}", venv.display());
        let ok = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().expect("python3 -m venv").success()
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "vdirsyncer"])
                .status()
                .expect("pip install vdirsyncer")
                .success();
        assert!(ok, "could not install vdirsyncer");
    }
    bin
}

/// Runs vdirsyncer with `config`, returning how long `args` took.
fn run_vdirsyncer(bin: &Path, config: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let output = Command::new(bin).arg("-c").arg(config).args(args).output().expect("run vdirsyncer");
    let took = start.elapsed();
    assert!(
        output.status.success(),
        "vdirsyncer {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    took
}

async fn our_sync(connector: &DavConnector, book: &Collection, sink: &mut CountingSink) -> Duration {
    let known: HashMap<contactbridge_connector::RecordId, String> = HashMap::new();
    let request = SyncRequest { collection: book, since: sink.checkpoint.clone(), known: &known };
    let start = Instant::now();
    connector.sync(request, sink).await.expect("sync");
    start.elapsed()
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    let cards: usize = std::env::args().nth(1).map(|a| a.parse().expect("CARDS is a number")).unwrap_or(10_000);
    let vdirsyncer = vdirsyncer();
    let server = TestServer::radicale();
    let connector = DavConnector::carddav(server.account()).expect("connector");
    let dav = connector.client().await.expect("client");
    let href = support::create_addressbook(&server, dav, "bench").await;
    let book = Collection { id: href.clone(), name: "bench".into(), kind: CollectionKind::AddressBook, owner: None };

    // Seed straight into Radicale's storage (a bulk PUT takes Radicale ~100 s), then
    // let one untimed sync warm Radicale's item cache so both clients meet the same server.
    let seed_start = Instant::now();
    let folder = server.radicale_user_folder().join("bench");
    for n in 0..cards {
        std::fs::write(folder.join(format!("c{n:05}.vcf")), card(n, &format!("uid-{n:05}"))).expect("write card");
    }
    let mut patient = server.account();
    patient.timeout_secs = 1800; // Radicale parses every new file on this first read
    let warm_up = DavConnector::carddav(patient).expect("connector");
    let mut warm = CountingSink::default();
    our_sync(&warm_up, &book, &mut warm).await;
    assert_eq!(warm.upserts, cards, "warm-up saw every card");
    eprintln!("seeded and warmed {cards} cards in {}", secs(seed_start.elapsed()));

    // contactbridge-dav: three first syncs (fresh state each), then a no-change sync.
    let mut firsts = Vec::new();
    let mut sink = CountingSink::default();
    for _ in 0..3 {
        sink = CountingSink::default();
        firsts.push(our_sync(&connector, &book, &mut sink).await);
        assert_eq!(sink.upserts, cards);
    }
    firsts.sort();
    let ours_first = firsts[1];
    let change_sets = sink.change_sets;
    let mut incrementals = Vec::new();
    for _ in 0..3 {
        let before = sink.upserts;
        incrementals.push(our_sync(&connector, &book, &mut sink).await);
        assert_eq!(sink.upserts, before, "no-change sync fetched nothing");
    }
    incrementals.sort();
    let ours_incremental = incrementals[1];

    // The server's share of a no-change sync: the bare sync-collection REPORT.
    let token = DavCheckpoint::decode(sink.checkpoint.as_ref().unwrap()).unwrap().sync_token.expect("a sync token");
    let mut reports = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        dav.request(SyncCollection::new(&href).with_sync_token(&token)).await.expect("REPORT");
        reports.push(start.elapsed());
    }
    reports.sort();
    let server_floor = reports[1];

    // vdirsyncer: the same address book into a local folder.
    let work = tempfile::tempdir().expect("tempdir");
    let local = work.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let config = work.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[general]\nstatus_path = \"{status}/\"\n\n[pair bench]\na = \"bench_dav\"\nb = \"bench_local\"\ncollections = null\n\n\
             [storage bench_dav]\ntype = \"carddav\"\nurl = \"{url}{path}\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n\n\
             [storage bench_local]\ntype = \"filesystem\"\npath = \"{local}/\"\nfileext = \".vcf\"\n",
            status = work.path().join("status").display(),
            url = server.url().trim_end_matches('/'),
            path = href,
            local = local.display(),
        ),
    )
    .unwrap();
    run_vdirsyncer(&vdirsyncer, &config, &["discover"]);
    let theirs_first = run_vdirsyncer(&vdirsyncer, &config, &["sync"]);
    let synced = std::fs::read_dir(&local).unwrap().count();
    assert_eq!(synced, cards, "vdirsyncer wrote every card");
    let theirs_incremental = run_vdirsyncer(&vdirsyncer, &config, &["sync"]);

    let ratio = |theirs: Duration, ours: Duration| theirs.as_secs_f64() / ours.as_secs_f64();
    println!("DAV sync benchmark: {cards} contacts in one Radicale address book (127.0.0.1)");
    println!(
        "contactbridge-dav: batch size {}, {change_sets} change sets; median of 3 runs",
        server.account().batch_size
    );
    println!("vdirsyncer {}: one run, to a local folder", vdirsyncer_version(&vdirsyncer));
    println!();
    println!("| measurement | contactbridge-dav | vdirsyncer | vdirsyncer / ours |");
    println!("|---|---|---|---|");
    println!(
        "| first sync ({cards} cards) | {} | {} | {:.1}x |",
        secs(ours_first),
        secs(theirs_first),
        ratio(theirs_first, ours_first)
    );
    println!(
        "| no-change sync | {} | {} | {:.1}x |",
        secs(ours_incremental),
        secs(theirs_incremental),
        ratio(theirs_incremental, ours_incremental)
    );
    println!("| server time of that no-change sync (bare sync-collection REPORT) | {} | | |", secs(server_floor));
    println!();
    println!(
        "targets: first sync at least as fast as vdirsyncer: {}; no-change sync under 1 s: {}",
        if ours_first <= theirs_first { "met" } else { "NOT met" },
        if ours_incremental < Duration::from_secs(1) { "met" } else { "NOT met" }
    );
}

fn vdirsyncer_version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().rsplit(' ').next().unwrap_or("?").to_string())
        .unwrap_or_else(|_| "?".into())
}
