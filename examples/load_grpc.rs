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

use anyhow::Context as _;
use chrono::Utc;
use clap::Parser;
use contactbridge::api::auth::{self, Scope};
use contactbridge::api::client::BridgeClient;
use contactbridge::api::pb;
use contactbridge::api::{RunningServer, ServerOptions};
use contactbridge::live::CallHub;
use contactbridge::resolve::{CallQuery, Resolver};
use contactbridge::store::{SledStore, Store};
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
    /// Worker threads of the server's runtime (the client gets the same).
    #[arg(long, default_value_t = 2)]
    threads: usize,
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

/// Open loop: request i is due at start + i/rate; latency counts from then. A
/// pacer thread (not the runtime's 1 ms timer) releases each request on time.
async fn open_loop(
    client: &BridgeClient,
    rpc: Rpc,
    rate: u32,
    secs: u64,
    qs: &Arc<Vec<pb::ResolveCallRequest>>,
) -> Outcome {
    let total = rate as usize * secs as usize;
    let hist = Arc::new(Mutex::new(new_hist()));
    let errors = Arc::new(AtomicUsize::new(0));
    let handle = tokio::runtime::Handle::current();
    let (client, qs2, hist2, errors2) = (client.clone(), qs.clone(), hist.clone(), errors.clone());
    let start = Instant::now();
    let tasks = tokio::task::spawn_blocking(move || {
        let mut tasks = Vec::with_capacity(total);
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let (mut c, hist, errors, qs) = (client.clone(), hist2.clone(), errors2.clone(), qs2.clone());
            tasks.push(handle.spawn(async move {
                let ok = one(&mut c, rpc, &qs[i % qs.len()]).await;
                let micros = Instant::now().saturating_duration_since(due).as_micros() as u64;
                hist.lock().unwrap().saturating_record(micros.max(1));
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        tasks
    })
    .await
    .expect("the pacer thread panicked");
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed();
    let hist = hist.lock().unwrap().clone();
    Outcome { hist, errors: errors.load(Ordering::Relaxed), sent: total, elapsed }
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
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SledStore::open(dir.path())?);
    let built = Instant::now();
    bench_index::build(
        &store,
        &bench_index::Shape { tenant: "load", users, mail_per_user: 0, events_per_user: 0 },
        Utc::now(),
        &mut bench_index::Rng(7),
    )?;
    println!(
        "index: {users} users, {} contacts, built in {:.1} s",
        users * bench_index::CONTACTS_PER_USER,
        built.elapsed().as_secs_f64()
    );
    let key = auth::create_key(store.as_ref(), "load", Scope::Tsps, "load_grpc")?.text;

    // The resolver alone, in process, one thread: what the gRPC layer adds to.
    let resolver = Resolver::new(store.clone() as Arc<dyn Store>);
    let direct = queries(users, 20_000);
    let mut hist = new_hist();
    for q in &direct {
        let query =
            CallQuery { called: q.called_number.clone(), cli: q.cli.clone(), tsps_call_id: None, at: Utc::now() };
        let t = Instant::now();
        resolver.resolve(&query)?;
        hist.saturating_record((t.elapsed().as_nanos() as u64 / 1000).max(1));
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
    let server_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()?;
    let server = server_rt.block_on(async {
        let hub = CallHub::new(store.clone());
        RunningServer::start(store.clone(), store.clone(), hub, "127.0.0.1:0".parse()?, None, ServerOptions::default())
            .await
            .context("starting the server")
    })?;
    let addr = server.addr;

    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()?;
    client_rt.block_on(async {
        let client = BridgeClient::connect(&format!("http://{addr}"), &key).await?;
        let qs = Arc::new(queries(users, 200_000));
        // Warm-up: connections, caches, the allocator.
        saturate(&client, Rpc::Ping, 16, 1, &qs).await;
        saturate(&client, Rpc::Resolve, 16, 2, &qs).await;

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
        args.threads
    );
    Ok(())
}
