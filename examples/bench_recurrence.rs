//! What a hostile calendar costs next to a normal one (issue 10): the same
//! 20-event .ics file with `FREQ=SECONDLY` and with `FREQ=WEEKLY`, imported
//! through the product path (files connector → parse → sync engine → sled
//! commit), each in its own process so that peak memory is its own.
//!
//! `cargo run --release --example bench_recurrence [-- --events 20 --rounds 3]`

use chrono::Utc;
use contactbridge::store::{IndexStore, SledStore};
use contactbridge::sync::{self, Indexer};
use contactbridge::user::UserId;
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The event of issue 10: 20 of these are a 6 KB file.
/// `SECONDLY-INSTANT`: the same without DTEND (instants, which never touch).
fn event(i: usize, freq: &str) -> String {
    let today = Utc::now().format("%Y%m%d");
    let (freq, end) = match freq.strip_suffix("-INSTANT") {
        Some(f) => (f, String::new()),
        None => (freq, format!("DTEND:{today}T000001Z\r\n")),
    };
    format!(
        "BEGIN:VEVENT\r\nUID:hostile-{i}@example.org\r\nDTSTAMP:{today}T000000Z\r\nDTSTART:{today}T000000Z\r\n\
         {end}RRULE:FREQ={freq}\r\nSUMMARY:Every second {i}\r\n\
         ORGANIZER:mailto:stranger@example.net\r\nATTENDEE:mailto:alice@example.com\r\n\
         ATTENDEE:mailto:bob@example.com\r\nATTENDEE:mailto:carol@example.com\r\nEND:VEVENT\r\n"
    )
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// One import, in this process: prints `millis store_bytes occurrences`.
fn child(freq: &str, events: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut ics = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n");
    for i in 1..=events {
        ics += &event(i, freq);
    }
    ics += "END:VCALENDAR\r\n";
    let file = dir.path().join("calendar.ics");
    std::fs::write(&file, &ics)?;
    let store = SledStore::open(&dir.path().join("store"))?;
    let user = UserId::parse("bench.alice").map_err(anyhow::Error::msg)?;
    let indexer = Indexer::default();
    let owners = HashMap::new();
    let connector = contactbridge_files::FilesConnector::new(&file);
    let target = sync::SyncTarget { account: "files:bench", user: &user, owners: &owners, indexer: &indexer };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let started = Instant::now();
    let report = runtime.block_on(sync::sync_account(&store as &dyn IndexStore, &connector, &target));
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(report.failed() == 0, "the import failed: {report:?}");
    let size = store.size_on_disk();
    let counts = store.count_records(&user, "files:bench")?;
    println!("{millis:.1} {size} {} {}", counts.values().sum::<usize>(), ics.len());
    Ok(())
}

struct Run {
    millis: f64,
    wall: f64,
    store: u64,
    /// User + system CPU of the whole child process (load does not inflate it).
    cpu: f64,
    rss_kib: i64,
    records: usize,
    bytes: usize,
}

fn run(freq: &str, events: usize) -> anyhow::Result<Run> {
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let child = Command::new(exe)
        .args(["--one", freq, "--events", &events.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.expect("piped"), &mut out)?;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes the child's status and resource usage into memory we own.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(waited == pid && status == 0, "the {freq} import failed (status {status})");
    let f: Vec<&str> = out.split_whitespace().collect();
    anyhow::ensure!(f.len() == 4, "unexpected child output {out:?}");
    Ok(Run {
        millis: f[0].parse()?,
        wall,
        store: f[1].parse()?,
        cpu: [usage.ru_utime, usage.ru_stime]
            .iter()
            .map(|t| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0)
            .sum(),
        rss_kib: usage.ru_maxrss,
        records: f[2].parse()?,
        bytes: f[3].parse()?,
    })
}

fn main() -> anyhow::Result<()> {
    let events: usize = arg("--events").map_or(Ok(20), |e| e.parse())?;
    if let Some(freq) = arg("--one") {
        return child(&freq, events);
    }
    let rounds: usize = arg("--rounds").map_or(Ok(3), |e| e.parse())?;
    println!("{events} events per file; best of {rounds} rounds, each import in its own process");
    let best = |freq: &str| -> anyhow::Result<Run> {
        let mut runs = (0..rounds).map(|_| run(freq, events)).collect::<anyhow::Result<Vec<_>>>()?;
        runs.sort_by(|a, b| a.cpu.total_cmp(&b.cpu));
        Ok(runs.remove(0))
    };
    let weekly = best("WEEKLY")?;
    let secondly = best("SECONDLY")?;
    let instant = best("SECONDLY-INSTANT")?;
    println!(
        "| file | bytes | records | import wall (ms) | process wall (ms) | process CPU (ms) | peak RSS (MiB) | store on disk (MiB) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, r) in [("FREQ=WEEKLY", &weekly), ("FREQ=SECONDLY", &secondly), ("FREQ=SECONDLY, no DTEND", &instant)] {
        println!(
            "| {name} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
            r.bytes,
            r.records,
            r.millis,
            r.wall,
            r.cpu,
            r.rss_kib as f64 / 1024.0,
            r.store as f64 / (1 << 20) as f64
        );
    }
    for (name, r) in [("secondly", &secondly), ("secondly without DTEND", &instant)] {
        println!(
            "ratio {name} / weekly: import wall {:.2}×, process wall {:.2}×, process CPU {:.2}×, peak RSS {:.2}×, store {:.2}×",
            r.millis / weekly.millis,
            r.wall / weekly.wall,
            r.cpu / weekly.cpu,
            r.rss_kib as f64 / weekly.rss_kib as f64,
            r.store as f64 / weekly.store as f64
        );
    }
    Ok(())
}
