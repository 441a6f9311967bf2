//! Benchmark of `Resolver::resolve` on a generated index (issue 2, section 9).
//!
//! ```text
//! cargo run --release --example bench_resolve                 # 1,000 users, 100k contacts, 1M mail, 200k events
//! cargo run --release --example bench_resolve -- --scale 0.1  # a tenth of that, for a quick look
//! ```
//!
//! Builds the index through the same path a sync takes (indexer + `IndexStore::apply`),
//! then resolves calls on one thread: 80% from known contacts with the number written
//! another way than stored, 15% unknown numbers, 5% withheld. Each resolve also writes
//! its call record, as in production. Prints, per call, the wall-clock latency and the
//! CPU time of the resolving thread (which other load on the machine does not inflate),
//! the process CPU time per call (all threads, the call-record writer included), the
//! context fetch separately, size on disk and memory.

use chrono::{Duration, TimeZone, Utc};
use clap::Parser;
use contactbridge::connector::*;
use contactbridge::resolve::{CallQuery, ContextQuery, ContextSubject, Resolver};
use contactbridge::store::{CollectionScope, IndexBatch, IndexStore, SledStore, Store};
use contactbridge::sync::Indexer;
use contactbridge::user::{self, UserId, UserProfile};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Multiplies every count (users, contacts, mail, events).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Calls to resolve in the measured run.
    #[arg(long, default_value_t = 100_000)]
    calls: usize,
}

/// A tiny deterministic generator (splitmix64), so every run builds the same index.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The national number of contact `c` of user `u`: Berlin landlines, unique per (u, c).
fn national(u: usize, c: usize) -> String {
    format!("30{:04}{:04}", u % 10_000, c % 10_000)
}

fn vm(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of the whole process (user + system, all threads), in nanoseconds.
fn process_cpu_ns() -> u64 {
    cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into memory we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)] as f64 / 1000.0
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scaled = |n: f64| ((n * args.scale).round() as usize).max(1);
    let (users, contacts_per_user) = (scaled(1000.0), 100);
    let mail_per_user = scaled(1_000_000.0) / users;
    let events_per_user = scaled(200_000.0) / users;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SledStore::open(dir.path())?);
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap();
    let mut rng = Rng(42);

    let built = Instant::now();
    for u in 0..users {
        let mut p = UserProfile::new(
            UserId::parse(&format!("user{u}")).map_err(anyhow::Error::msg)?,
            format!("tenant{}", u % 10),
        );
        p.called_numbers = vec![format!("+49 40 {:07}", u)];
        p.region = Some("DE".into());
        user::put_profile(store.as_ref(), &p)?;
        let indexer = Indexer::for_profile(&p, &HashMap::new());
        let scope = |c: &str| CollectionScope { user: p.id.clone(), account: "bench".into(), collection: c.into() };
        let apply = |collection: &str, records: Vec<Record>| -> anyhow::Result<()> {
            for chunk in records.chunks(500) {
                store.apply(&IndexBatch {
                    scope: scope(collection),
                    upserts: chunk.iter().cloned().map(|r| indexer.index(r)).collect(),
                    deletions: vec![],
                    retained: vec![],
                    rejected: vec![],
                    checkpoint: Some(Checkpoint::new("bench")),
                    snapshot: None,
                    at: now,
                })?;
            }
            Ok(())
        };
        let email = |c: usize| format!("c{c}@company{}.example", c % 37);
        apply(
            "contacts",
            (0..contacts_per_user)
                .map(|c| {
                    Record::Contact(Contact {
                        id: RecordId::new(format!("c{c}")),
                        display_name: format!("Contact {c} of user {u}"),
                        company: Some(format!("Company {}", c % 37)),
                        // Stored nationally, with spaces, as address books do.
                        phones: vec![
                            PhoneNumber::new(
                                format!("0{} {}", &national(u, c)[..2], &national(u, c)[2..]),
                                PhoneKind::Work,
                            ),
                            PhoneNumber::new(format!("0171 {:07}", u * 100 + c), PhoneKind::Mobile),
                        ],
                        emails: vec![email(c)],
                        categories: if c % 10 == 0 { vec!["VIP".into()] } else { vec![] },
                        ..Default::default()
                    })
                })
                .collect(),
        )?;
        apply(
            "inbox",
            (0..mail_per_user)
                .map(|m| {
                    let c = rng.below(contacts_per_user);
                    Record::Mail(MailMessage {
                        id: RecordId::new(format!("m{m}")),
                        direction: if m % 3 == 0 { MailDirection::Sent } else { MailDirection::Received },
                        from: Person { email: email(c), name: None },
                        to: vec![Person { email: format!("user{u}@bench.example"), name: None }],
                        cc: vec![],
                        subject: format!("Message {m}"),
                        date: now - Duration::minutes(rng.below(180 * 24 * 60) as i64),
                        preview: "Lorem ipsum dolor sit amet, consectetur adipiscing elit.".into(),
                        web_link: None,
                    })
                })
                .collect(),
        )?;
        apply(
            "calendar",
            (0..events_per_user)
                .map(|e| {
                    let start = now - Duration::days(30) + Duration::minutes(rng.below(120 * 24 * 60) as i64);
                    Record::Event(CalendarEvent {
                        id: RecordId::new(format!("e{e}")),
                        subject: format!("Meeting {e}"),
                        busy: BusyStatus::Busy,
                        attendees: vec![email(rng.below(contacts_per_user))],
                        occurrences: vec![Occurrence { start, end: start + Duration::minutes(45) }],
                        ..Default::default()
                    })
                })
                .collect(),
        )?;
    }
    store.flush()?;
    let build_secs = built.elapsed().as_secs_f64();
    println!(
        "index: {users} users, {} contacts, {} mail, {} events, built in {build_secs:.1} s",
        users * contacts_per_user,
        users * mail_per_user,
        users * events_per_user
    );

    let resolver = Resolver::new(store.clone() as Arc<dyn Store>);
    let queries: Vec<CallQuery> = (0..args.calls)
        .map(|_| {
            let u = rng.below(users);
            let roll = rng.below(100);
            let cli = if roll < 80 {
                format!("+49{}", national(u, rng.below(contacts_per_user)))
            } else if roll < 95 {
                format!("+44 20 7946 {:04}", rng.below(10_000))
            } else {
                "anonymous".into()
            };
            CallQuery { called: format!("+4940{:07}", u), cli, tsps_call_id: None, at: now }
        })
        .collect();

    // Warm up: metadata, caches.
    for q in queries.iter().take(1000) {
        resolver.resolve(q)?;
    }
    let mut lat = Vec::with_capacity(queries.len());
    let mut cpu = Vec::with_capacity(queries.len());
    let mut decisions = Vec::with_capacity(queries.len() / 10);
    let mut matched = 0;
    let started = Instant::now();
    let process_before = process_cpu_ns();
    for (i, q) in queries.iter().enumerate() {
        let (t, c) = (Instant::now(), thread_cpu_ns());
        let d = resolver.resolve(q)?;
        cpu.push(thread_cpu_ns() - c);
        lat.push(t.elapsed().as_nanos() as u64);
        matched += usize::from(!d.candidates.is_empty());
        if i % 10 == 0 {
            decisions.push((q.called.clone(), d));
        }
    }
    store.flush()?; // the call-record writer's share counts too
    let process_per_call = (process_cpu_ns() - process_before) as f64 / queries.len() as f64;
    let wall = started.elapsed().as_secs_f64();
    let mut ctx_lat = Vec::with_capacity(decisions.len());
    for (called, d) in &decisions {
        let profile = resolver.user_for_called(called)?;
        let subject = ContextSubject {
            contact: d.candidates.first().map(|c| c.stored.clone()),
            caller_key: d.caller.key.clone(),
        };
        let t = Instant::now();
        resolver.context(&d.user, &subject, &ContextQuery { now, criteria: profile.context.clone() })?;
        ctx_lat.push(t.elapsed().as_nanos() as u64);
    }
    lat.sort_unstable();
    cpu.sort_unstable();
    ctx_lat.sort_unstable();
    let row = |name: &str, v: &[u64]| {
        println!(
            "resolve {name}: p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
            percentile(v, 0.50),
            percentile(v, 0.90),
            percentile(v, 0.99),
            percentile(v, 0.999),
            *v.last().unwrap() as f64 / 1000.0
        )
    };
    println!("resolve: {} calls ({matched} matched a contact) in {wall:.1} s wall", lat.len());
    row("wall-clock latency", &lat);
    row("thread CPU time   ", &cpu);
    println!(
        "resolve: {:.1} µs of process CPU per call (all threads) = {:.0} calls/s per core",
        process_per_call / 1000.0,
        1e9 / process_per_call
    );
    println!(
        "context: {} fetches; p50 {:.1} µs, p99 {:.1} µs",
        ctx_lat.len(),
        percentile(&ctx_lat, 0.50),
        percentile(&ctx_lat, 0.99)
    );
    store.flush()?;
    println!("disk: {:.0} MiB (sled size_on_disk)", store.size_on_disk() as f64 / (1024.0 * 1024.0));
    println!("memory: VmRSS {}, VmHWM {}", vm("VmRSS:"), vm("VmHWM:"));
    Ok(())
}
