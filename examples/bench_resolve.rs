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

use chrono::{TimeZone, Utc};
use clap::Parser;
use contactbridge::resolve::{CallQuery, ContextQuery, ContextSubject, Resolver};
use contactbridge::store::{SledStore, Store};
use std::sync::Arc;
use std::time::Instant;

#[path = "common/bench_index.rs"]
mod bench_index;

#[derive(Parser)]
struct Args {
    /// Multiplies every count (users, contacts, mail, events).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Calls to resolve in the measured run.
    #[arg(long, default_value_t = 100_000)]
    calls: usize,
    /// sled's page cache for the index, in MiB (as `[store] cache_mb`) [default: the product's default].
    #[arg(long, default_value_t = contactbridge::config::Config::default().store.cache_mb)]
    cache_mb: u64,
    /// Resolve every call once before measuring (a long-running server's warm
    /// caches); by default only 1,000 are, so first touches of sled pages count.
    #[arg(long)]
    warm: bool,
    /// Keep the store in this folder (default: a temporary one).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Do not build: serve the index a previous run left in `--dir` (same `--scale`), so
    /// memory is that of a server that opened it, without the build's.
    #[arg(long, requires = "dir")]
    reuse: bool,
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
    let users = scaled(1000.0);
    let mail_per_user = scaled(1_000_000.0) / users;
    let events_per_user = scaled(200_000.0) / users;
    let temporary = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| temporary.path().to_path_buf());
    let options = contactbridge::store::StoreOptions { cache_bytes: args.cache_mb * 1024 * 1024, ..Default::default() };
    let store = Arc::new(SledStore::open_with(&dir, &options)?);
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap();
    let mut rng = bench_index::Rng(42);

    let built = Instant::now();
    let shape = bench_index::Shape { tenant: "bench", users, mail_per_user, events_per_user };
    // Reusing, the calls are drawn from the same distribution, not the same sequence.
    if !args.reuse {
        bench_index::build(store.as_ref(), &shape, now, &mut rng)?;
    }
    store.flush()?;
    let build_secs = built.elapsed().as_secs_f64();
    println!(
        "index: {users} users, {} contacts, {} mail, {} events, built in {build_secs:.1} s",
        users * bench_index::CONTACTS_PER_USER,
        users * mail_per_user,
        users * events_per_user
    );

    let resolver = Resolver::new(store.clone() as Arc<dyn Store>);
    let queries: Vec<CallQuery> = (0..args.calls)
        .map(|_| {
            let (called, cli) = bench_index::next_call(&mut rng, users);
            CallQuery { called, cli, tsps_call_id: None, at: now }
        })
        .collect();

    // Warm up: metadata, caches.
    for q in queries.iter().take(if args.warm { queries.len() } else { 1000 }) {
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
        anyhow::ensure!(d.recorded, "the call record of call {i} was not written (see the log)");
        if i % 10 == 0 {
            decisions.push((q.called.clone(), d));
        }
    }
    store.flush()?; // the call journal's sync counts too
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
    println!(
        "disk: {:.0} MiB (sled databases and call journal, size_on_disk)",
        store.size_on_disk() as f64 / (1024.0 * 1024.0)
    );
    println!("memory: VmRSS {}, VmHWM {} (serving)", vm("VmRSS:"), vm("VmHWM:"));
    let bytes = store.index_bytes()?;
    let (mut n, mut kb, mut vb) = (0, 0, 0);
    for (p, (e, k, v)) in &bytes.by_prefix {
        println!("index {p}: {e} entries, {k} key bytes, {v} value bytes");
        (n, kb, vb) = (n + e, kb + k, vb + v);
    }
    let records = bytes.by_prefix.get(&'r').map_or(1, |r| r.0.max(1));
    println!(
        "index: {n} entries, {:.1} MiB of keys and values = {:.0} bytes per record",
        (kb + vb) as f64 / (1024.0 * 1024.0),
        (kb + vb) as f64 / records as f64
    );
    println!("memory: VmRSS {}, VmHWM {} (after a full scan of the index)", vm("VmRSS:"), vm("VmHWM:"));
    Ok(())
}
