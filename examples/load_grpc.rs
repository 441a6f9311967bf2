//! Load benchmark of the gRPC interface (issue 3, section 4).
//!
//! ```text
//! cargo run --release --example load_grpc                       # 1,000 users, 100k contacts
//! cargo run --release --example load_grpc -- --scale 0.1 --seconds 3
//! ```
//!
//! Builds a 100,000-contact index (1,000 users × 100 contacts, stored in national
//! format with spaces, as address books do) in a temporary directory, starts the
//! gRPC server in this process on its own runtime, and drives it with a tonic
//! client over loopback TCP (one HTTP/2 connection, as a phone system would keep):
//!
//! - open loop at fixed rates (default 1,000 and 5,000 calls/s): request *i* is
//!   due at `start + i / rate` and its latency counts from that moment, so a
//!   stalled server cannot hide its queueing (no coordinated omission);
//! - saturation: a closed loop with `--concurrency` requests in flight.
//!
//! At each level the empty unary call `Ping` runs first as the floor (same
//! auth, same metrics layer), then `ResolveCall` (80% known callers written
//! another way than stored, 15% unknown numbers, 5% withheld; each call also
//! writes its call record, as in production). Latencies go into HDR histograms.
//!
//! The index is the one `bench_resolve` builds (per user 100 contacts, 1,000
//! mail, 200 events), in a store opened with the product's default options.
//!
//! `--during-sync` (issue 16, section 4): ResolveCall at `--rates` (the first
//! rate, default 1,000/s) for `--seconds`, then while a sync inside this
//! process writes `--sync-cards` contacts (a files account of `--sync-batch`
//! cards per file, synced by the account registry through the sync engine into
//! the same store, on the sync runtime as `serve` runs it), then `--seconds`
//! more. Prints ResolveCall latency before, during and after the sync (before
//! is the baseline: the same load without a sync) and the sync's records/s.
//!
//! ```text
//! cargo run --release --example load_grpc -- --during-sync
//! cargo run --release --example load_grpc -- --during-sync --sync-on serving   # as before issue 16
//! ```
//!
//! `--store postgres` (issue 11, section 4): the same on the PostgreSQL backend, on
//! `--pg-url` or, without one, on a PostgreSQL server this process starts in a
//! temporary directory (Debian's, as the tests do: `store::postgres::testing`).
//! The index size per contact is then the index table's `pg_total_relation_size`.

use anyhow::Context as _;
use chrono::Utc;
use clap::Parser;
use contactbridge::api::auth::{self, Scope};
use contactbridge::api::client::BridgeClient;
use contactbridge::api::pb;
use contactbridge::api::{RunningServer, ServerOptions};
use contactbridge::config::Config;
use contactbridge::live::CallHub;
use contactbridge::resolve::{CallQuery, Resolver};
use contactbridge::store::{Backend, BackendKind, PgOptions, PgStore, SledStore, Store};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "common/bench_index.rs"]
mod bench_index;

#[derive(Parser)]
struct Args {
    /// Multiplies the number of users (100 contacts each).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Seconds measured per RPC and level.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Open-loop rates in calls per second.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    rates: Vec<u32>,
    /// Requests in flight for the saturation run.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Worker threads of the server's runtime (the client gets the same) [default: one per core, as `serve`].
    #[arg(long)]
    threads: Option<usize>,
    /// Measure ResolveCall before, during and after a sync instead of the levels above.
    #[arg(long)]
    during_sync: bool,
    /// Contacts the sync writes.
    #[arg(long, default_value_t = 100_000, requires = "during_sync")]
    sync_cards: usize,
    /// Contacts per file (each file is one change set, as a CardDAV multiget batch is).
    #[arg(long, default_value_t = 500, requires = "during_sync")]
    sync_batch: usize,
    /// Where the sync runs: `sync` (the sync runtime, as `serve` does) or `serving` (the server's runtime).
    #[arg(long, default_value = "sync", requires = "during_sync")]
    sync_on: SyncOn,
    /// How much nicer the sync runtime's threads run [default: the product's, SYNC_NICE].
    #[arg(long, requires = "during_sync")]
    sync_nice: Option<i32>,
    /// The backend: `sled` (in a temporary directory) or `postgres`.
    #[arg(long, default_value = "sled")]
    store: StoreArg,
    /// PostgreSQL database for `--store postgres` [default: a server started for the run].
    #[arg(long)]
    pg_url: Option<String>,
    /// PostgreSQL connections (`[store.postgres] pool_size`).
    #[arg(long, default_value_t = PgOptions::DEFAULT_POOL_SIZE)]
    pg_pool: u32,
    /// Serve lookups without the replica's cache of profiles, called numbers and
    /// assignments (`store::cache`), as before it: the same-run baseline.
    #[arg(long)]
    no_lookup_cache: bool,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum StoreArg {
    Sled,
    Postgres,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum SyncOn {
    Sync,
    Serving,
}

fn queries(users: usize, n: usize) -> Vec<pb::ResolveCallRequest> {
    let mut rng = bench_index::Rng(42);
    (0..n)
        .map(|i| {
            let (called_number, cli) = bench_index::next_call(&mut rng, users);
            pb::ResolveCallRequest { called_number, cli, tsps_call_id: format!("load-{i}"), at: None }
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Rpc {
    Ping,
    Resolve,
}

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::Ping => "Ping (floor)",
            Rpc::Resolve => "ResolveCall",
        }
    }
}

struct Outcome {
    hist: Histogram<u64>,
    errors: usize,
    sent: usize,
    elapsed: Duration,
}

/// One call; an error is reported once per kind of message.
async fn one(client: &mut BridgeClient, rpc: Rpc, q: &pb::ResolveCallRequest) -> bool {
    let result = match rpc {
        Rpc::Ping => client.calls.ping(pb::PingRequest {}).await.map(|_| ()),
        Rpc::Resolve => client.calls.resolve_call(q.clone()).await.map(|_| ()),
    };
    match result {
        Ok(()) => true,
        Err(s) => {
            static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
            let what = format!("{:?}: {}", s.code(), s.message());
            let mut seen = SEEN.lock().unwrap();
            if !seen.contains(&what) {
                eprintln!("{} error: {what}", rpc.name());
                seen.push(what);
            }
            false
        }
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// One request of an open loop: when it was due, its latency from then, whether it succeeded.
struct Sample {
    due: Instant,
    micros: u64,
    ok: bool,
}

impl Outcome {
    fn of<'a>(samples: impl IntoIterator<Item = &'a Sample>, elapsed: Duration) -> Self {
        let mut out = Outcome { hist: new_hist(), errors: 0, sent: 0, elapsed };
        for s in samples {
            out.hist.saturating_record(s.micros.max(1));
            out.errors += usize::from(!s.ok);
            out.sent += 1;
        }
        out
    }
}

/// Open loop: request i is due at start + i/rate, while `more(i)`; latency
/// counts from then. A pacer thread (not the runtime's 1 ms timer) releases
/// each request on time. Returns the samples and the time until the last answer.
async fn paced(
    client: &BridgeClient,
    rpc: Rpc,
    rate: u32,
    qs: &Arc<Vec<pb::ResolveCallRequest>>,
    more: impl Fn(usize) -> bool + Send + 'static,
) -> (Vec<Sample>, Duration) {
    let handle = tokio::runtime::Handle::current();
    let (client, qs) = (client.clone(), qs.clone());
    let start = Instant::now();
    let tasks = tokio::task::spawn_blocking(move || {
        let mut tasks = Vec::new();
        for i in (0..).take_while(|i| more(*i)) {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let (mut c, qs) = (client.clone(), qs.clone());
            tasks.push(handle.spawn(async move {
                let ok = one(&mut c, rpc, &qs[i % qs.len()]).await;
                let micros = Instant::now().saturating_duration_since(due).as_micros() as u64;
                Sample { due, micros, ok }
            }));
        }
        tasks
    })
    .await
    .expect("the pacer thread panicked");
    let mut samples = Vec::with_capacity(tasks.len());
    for t in tasks {
        samples.push(t.await.expect("a request task panicked"));
    }
    (samples, start.elapsed())
}

/// [`paced`] for `secs` seconds.
async fn open_loop(
    client: &BridgeClient,
    rpc: Rpc,
    rate: u32,
    secs: u64,
    qs: &Arc<Vec<pb::ResolveCallRequest>>,
) -> Outcome {
    let total = rate as usize * secs as usize;
    let (samples, elapsed) = paced(client, rpc, rate, qs, move |i| i < total).await;
    Outcome::of(&samples, elapsed)
}

/// Closed loop with `concurrency` requests in flight: the most the server does.
async fn saturate(
    client: &BridgeClient,
    rpc: Rpc,
    concurrency: usize,
    secs: u64,
    qs: &Arc<Vec<pb::ResolveCallRequest>>,
) -> Outcome {
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (mut c, qs, next) = (client.clone(), qs.clone(), next.clone());
            tokio::spawn(async move {
                let (mut hist, mut errors, mut sent) = (new_hist(), 0, 0);
                while Instant::now() < end {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    if !one(&mut c, rpc, &qs[i % qs.len()]).await {
                        errors += 1;
                    }
                    hist.saturating_record((t.elapsed().as_micros() as u64).max(1));
                    sent += 1;
                }
                (hist, errors, sent)
            })
        })
        .collect();
    let mut out = Outcome { hist: new_hist(), errors: 0, sent: 0, elapsed: Duration::ZERO };
    for w in workers {
        let (h, e, s) = w.await.expect("a load worker panicked");
        out.hist.add(h).expect("same histogram bounds");
        out.errors += e;
        out.sent += s;
    }
    out.elapsed = start.elapsed();
    out
}

fn row(level: &str, rpc: Rpc, o: &Outcome) {
    let ms = |q: f64| o.hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "| {level:<18} | {:<13} | {:>9.0} | {:>8.3} | {:>8.3} | {:>8.3} | {:>8.3} | {:>6} |",
        rpc.name(),
        o.sent as f64 / o.elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        o.hist.max() as f64 / 1000.0,
        o.errors
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let users = ((1000.0 * args.scale).round() as usize).max(1);
    // The shape bench_resolve builds: 1,000 users, 100k contacts, 1M mail, 200k events at scale 1.
    let (mail_per_user, events_per_user) = (1_000, 200);
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let dir = tempfile::tempdir()?;
    // The product's default configuration: store options as `serve` opens the store with.
    let config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    // A server of the run's own when no URL is given (stopped when the run ends).
    let mut _server = None;
    let mut _database = None;
    let mut pg_store = None;
    let store: Arc<dyn Backend> = match args.store {
        StoreArg::Sled => Arc::new(SledStore::open_with(&config.data_dir, &config.store.options())?),
        StoreArg::Postgres => {
            let url = match &args.pg_url {
                Some(u) => u.clone(),
                None => {
                    let server = contactbridge::store::postgres::testing::PgServer::start();
                    let db = server.create_database();
                    let url = db.url.clone();
                    (_server, _database) = (Some(server), Some(db));
                    url
                }
            };
            let pg =
                Arc::new(PgStore::open(&PgOptions { pool_size: args.pg_pool, ..PgOptions::new(url) }, dir.path())?);
            pg_store = Some(pg.clone());
            pg
        }
    };
    let kind = if args.store == StoreArg::Sled { BackendKind::Sled } else { BackendKind::Postgres };
    println!("store: {kind:?}");
    let built = Instant::now();
    bench_index::build(
        store.as_ref(),
        &bench_index::Shape { tenant: "load", users, mail_per_user, events_per_user },
        Utc::now(),
        &mut bench_index::Rng(7),
    )?;
    println!(
        "index: {users} users, {} contacts, {} mail, {} events, built in {:.1} s",
        users * bench_index::CONTACTS_PER_USER,
        users * mail_per_user,
        users * events_per_user,
        built.elapsed().as_secs_f64()
    );
    let contacts = (users * bench_index::CONTACTS_PER_USER) as f64;
    store.flush()?;
    println!(
        "store size: {:.1} MiB, {:.0} bytes per contact (with its share of mail and events)",
        store.size_on_disk() as f64 / (1 << 20) as f64,
        store.size_on_disk() as f64 / contacts
    );
    if let Some(pg) = &pg_store {
        let (index, contacts_only) = (pg.index_size()?, pg.contact_entries_size()?);
        println!(
            "PostgreSQL index_kv (pg_total_relation_size): {:.1} MiB = {:.0} bytes per contact with its share of mail \
             and events; contact entries and their keys alone: {:.0} bytes per contact",
            index as f64 / (1 << 20) as f64,
            index as f64 / contacts,
            contacts_only as f64 / contacts
        );
    }
    // One store call that is one point query (`profile`): the backend's round trip.
    let mut point = new_hist();
    let someone = contactbridge::user::UserId::parse("user0").map_err(anyhow::Error::msg)?;
    for _ in 0..5000 {
        let t = Instant::now();
        store.profile(&someone)?;
        point.saturating_record((t.elapsed().as_nanos() as u64).max(1));
    }
    println!(
        "UserStore::profile (one point query), back to back: p50 {:.1} us, p99 {:.1} us",
        point.value_at_quantile(0.5) as f64 / 1000.0,
        point.value_at_quantile(0.99) as f64 / 1000.0
    );
    let key = auth::create_key(store.as_ref(), "load", Scope::Tsps, "load_grpc")?.text;

    // The lookup path's store as `serve` builds it: behind the replica's cache when the store
    // is remote and replicas share a bus (PostgreSQL), unless --no-lookup-cache.
    let replication = if args.no_lookup_cache { None } else { store.replication("load_grpc")? };
    let lookups = contactbridge::store::cache::for_lookups(store.clone() as Arc<dyn Store>, replication.map(|r| r.bus));
    println!("lookup cache: {}", if Arc::ptr_eq(&lookups, &(store.clone() as Arc<dyn Store>)) { "none" } else { "on" });
    let trips = || pg_store.as_ref().map_or(0, |p| p.round_trips());

    // The resolver alone, in process, one thread: what the gRPC layer adds to.
    let resolver = Resolver::new(lookups.clone());
    let trips_before = trips();
    let direct = queries(users, 20_000);
    let mut hist = new_hist();
    for q in &direct {
        let query =
            CallQuery { called: q.called_number.clone(), cli: q.cli.clone(), tsps_call_id: None, at: Utc::now() };
        let t = Instant::now();
        resolver.resolve(&query)?;
        hist.saturating_record((t.elapsed().as_nanos() as u64 / 1000).max(1));
    }
    if pg_store.is_some() {
        println!(
            "PostgreSQL round trips per Resolver::resolve (call record included): {:.2}",
            (trips() - trips_before) as f64 / direct.len() as f64
        );
    }
    let pct = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "Resolver::resolve in process, back to back (no gRPC): p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms",
        pct(&hist, 0.5),
        pct(&hist, 0.99),
        pct(&hist, 0.999)
    );
    // The same, one call per millisecond (caches cool down between calls, as at 1,000 calls/s).
    let mut paced = new_hist();
    for q in direct.iter().take(3000) {
        std::thread::sleep(Duration::from_millis(1));
        let query =
            CallQuery { called: q.called_number.clone(), cli: q.cli.clone(), tsps_call_id: None, at: Utc::now() };
        let t = Instant::now();
        resolver.resolve(&query)?;
        paced.saturating_record((t.elapsed().as_nanos() as u64 / 1000).max(1));
    }
    println!(
        "Resolver::resolve in process, one per ms (no gRPC):  p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms",
        pct(&paced, 0.5),
        pct(&paced, 0.99),
        pct(&paced, 0.999)
    );

    // The server on its own runtime, as in `contactbridge serve`.
    let server_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    let server = server_rt.block_on(async {
        let hub = CallHub::new(store.clone() as Arc<dyn Store>);
        RunningServer::start(
            store.clone() as Arc<dyn Store>,
            store.clone() as Arc<dyn contactbridge::store::ApiKeyStore>,
            hub,
            "127.0.0.1:0".parse()?,
            None,
            ServerOptions {
                lookups: Some(contactbridge::api::LookupStore(lookups.clone())),
                ..ServerOptions::default()
            },
        )
        .await
        .context("starting the server")
    })?;
    let addr = server.addr;

    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    client_rt.block_on(async {
        let client = BridgeClient::connect(&format!("http://{addr}"), &key).await?;
        let qs = Arc::new(queries(users, 200_000));
        // Warm-up: connections, caches, the allocator.
        saturate(&client, Rpc::Ping, 16, 1, &qs).await;
        saturate(&client, Rpc::Resolve, 16, 2, &qs).await;
        if args.during_sync {
            return during_sync(&args, &config, &store, &client, &qs, server_rt.handle()).await;
        }

        println!(
            "\n| level              | rpc           | achieved/s | p50 ms   | p99 ms   | p99.9 ms | max ms   | errors |"
        );
        println!(
            "|--------------------|---------------|-----------:|---------:|---------:|---------:|---------:|-------:|"
        );
        for &rate in &args.rates {
            let level = format!("open loop {rate}/s");
            for rpc in [Rpc::Ping, Rpc::Resolve] {
                row(&level, rpc, &open_loop(&client, rpc, rate, args.seconds, &qs).await);
            }
        }
        let level = format!("saturation c={}", args.concurrency);
        for rpc in [Rpc::Ping, Rpc::Resolve] {
            row(&level, rpc, &saturate(&client, rpc, args.concurrency, args.seconds, &qs).await);
        }
        anyhow::Ok(())
    })?;
    server_rt.block_on(server.stop())?;
    println!(
        "\n{} cores; server and client in one process, {} worker threads each; loopback TCP, one HTTP/2 connection",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        threads
    );
    Ok(())
}

/// The contacts of file `f` of the sync: numbers and addresses no index user has.
fn sync_file(f: usize, cards: usize) -> String {
    let mut out = String::with_capacity(cards * 200);
    for c in 0..cards {
        let n = f * cards + c;
        out.push_str(&format!(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:sync-{n}\r\nFN:Synced Contact {n}\r\nORG:Company {}\r\n\
             TEL;TYPE=WORK:089 {:07}\r\nTEL;TYPE=CELL:0172 {:07}\r\nEMAIL:s{n}@synced{}.example\r\nEND:VCARD\r\n",
            n % 37,
            n,
            n,
            n % 37
        ));
    }
    out
}

/// ResolveCall before, during and after a sync of `--sync-cards` contacts into the same store.
async fn during_sync(
    args: &Args,
    config: &Config,
    store: &Arc<dyn Backend>,
    client: &BridgeClient,
    qs: &Arc<Vec<pb::ResolveCallRequest>>,
    serving: &tokio::runtime::Handle,
) -> anyhow::Result<()> {
    use contactbridge::accounts::{AccountSpec, Registry, SourceKind};
    use contactbridge::sync::{runtime::SYNC_NICE, SyncRuntime};
    use contactbridge::user::{UserId, UserProfile};

    let folder = tempfile::tempdir()?;
    let batch = args.sync_batch.max(1);
    for f in 0..args.sync_cards.div_ceil(batch) {
        let cards = batch.min(args.sync_cards - f * batch);
        std::fs::write(folder.path().join(format!("book-{f:05}.vcf")), sync_file(f, cards))?;
    }
    let mut owner = UserProfile::new(UserId::parse("syncer").map_err(anyhow::Error::msg)?, "load");
    owner.called_numbers = vec!["+4940999999999".into()];
    owner.region = Some("DE".into());
    contactbridge::user::put_profile(store.as_ref(), &owner)?;
    let sync_runtime = SyncRuntime::with_options(1, args.sync_nice.unwrap_or(SYNC_NICE))?;
    let runtime = match args.sync_on {
        SyncOn::Sync => sync_runtime.handle().clone(),
        SyncOn::Serving => serving.clone(),
    };
    let registry = Arc::new(
        Registry::open(store.clone() as Arc<dyn contactbridge::store::RegistryStore>, config)?
            .with_sync_runtime(runtime),
    );
    registry.add(AccountSpec::new("bulk", owner.id.clone(), SourceKind::Files { path: folder.path().into() }))?;

    let rate = args.rates.first().copied().unwrap_or(1000);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The serving runtime's scheduling delay, as the server's runtime_lateness_seconds measures it,
    // per phase: if ResolveCall slows while this stays low, the time goes elsewhere than waiting for a worker.
    let lateness = Arc::new(Mutex::new(Vec::new()));
    let probe = serving.spawn({
        let lateness = lateness.clone();
        contactbridge::api::metrics::probe_lateness(move |due, late| {
            lateness.lock().unwrap().push(Sample { due, micros: late.as_micros() as u64, ok: true })
        })
    });
    let load = paced(client, Rpc::Resolve, rate, qs, {
        let stop = stop.clone();
        move |_| !stop.load(Ordering::Relaxed)
    });
    let phases = async {
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        let started = Instant::now();
        // Started as the admin API's SyncAccount starts one: on the registry's sync runtime.
        let r = registry.clone();
        let report = registry.sync_runtime().spawn(async move { r.sync("bulk").await }).await??;
        let ended = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        stop.store(true, Ordering::Relaxed);
        anyhow::Ok((started, ended, report))
    };
    let ((samples, _), phases) = tokio::join!(load, phases);
    probe.abort();
    let lateness = std::mem::take(&mut *lateness.lock().unwrap());
    let (started, ended, report) = phases?;
    anyhow::ensure!(report.failed() == 0, "the sync failed: {report:?}");
    let synced = report.totals().upserted;
    let sync_secs = (ended - started).as_secs_f64();

    println!(
        "\n| phase              | rpc           | achieved/s | p50 ms   | p99 ms   | p99.9 ms | max ms   | errors |"
    );
    println!(
        "|--------------------|---------------|-----------:|---------:|---------:|---------:|---------:|-------:|"
    );
    let first = samples.first().map_or(started, |s| s.due);
    let last = samples.last().map_or(ended, |s| s.due);
    let (mut p99, mut late_rows) = (Vec::new(), Vec::new());
    for (name, from, to) in
        [("before (baseline)", first, started), ("during the sync", started, ended), ("after", ended, last)]
    {
        let phase = samples.iter().filter(|s| s.due >= from && s.due < to);
        let o = Outcome::of(phase, to.saturating_duration_since(from));
        row(name, Rpc::Resolve, &o);
        p99.push(o.hist.value_at_quantile(0.99) as f64 / 1000.0);
        let late = Outcome::of(lateness.iter().filter(|s| s.due >= from && s.due < to), Duration::ZERO);
        late_rows.push((name, late));
    }
    println!("\nserving runtime, how late a 10 ms timer fires (the wait for a worker):");
    for (name, late) in &late_rows {
        let ms = |q: f64| late.hist.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "  {name:<18} p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} ticks)",
            ms(0.5),
            ms(0.99),
            late.hist.max() as f64 / 1000.0,
            late.sent
        );
    }
    println!(
        "\nsync: {synced} records in {} change sets, {sync_secs:.2} s = {:.0} records/s, on the {} runtime{}",
        report.collections.iter().map(|c| c.batches).sum::<usize>(),
        synced as f64 / sync_secs,
        if args.sync_on == SyncOn::Sync { "sync" } else { "serving" },
        if args.sync_on == SyncOn::Sync {
            format!(" (1 worker, nice +{})", args.sync_nice.unwrap_or(SYNC_NICE))
        } else {
            String::new()
        }
    );
    println!("ResolveCall p99 during the sync / before: {:.2}×", p99[1] / p99[0]);
    drop(registry);
    sync_runtime.close().await;
    Ok(())
}
