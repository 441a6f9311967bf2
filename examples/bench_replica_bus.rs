//! Cross-replica delivery latency of the live-event bus (issue 11 §2): a
//! message published on one replica's bus until it is received on another
//! replica's, on PostgreSQL (`LISTEN`/`NOTIFY`, a real server started by the
//! test harness) next to the in-process bus (the single-process baseline) in
//! the same run. Messages are a directive's size (~300 bytes), sent one at a
//! time at `RATE` per second; plus one series of 20 kB payloads (past
//! NOTIFY's 8000 bytes: through `bus_payloads`).
//!
//! cargo run --release --example bench_replica_bus [-- <messages> <rate>]

use contactbridge::store::postgres::bus::PgBus;
use contactbridge::store::postgres::testing::PgServer;
use contactbridge::store::postgres::{PgOptions, PgStore};
use contactbridge::store::{EventBus, LocalBus};
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn measure(a: &dyn EventBus, b: &dyn EventBus, n: usize, rate: u32, size: usize) -> Vec<Duration> {
    let mut rx = b.subscribe();
    let payload = vec![b'x'; size];
    let gap = Duration::from_secs(1) / rate;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let sent = Instant::now();
        a.publish("bench", &payload).unwrap();
        let m = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("delivered").unwrap();
        out.push(sent.elapsed());
        assert_eq!(m.payload.len(), size);
        tokio::time::sleep(gap.saturating_sub(sent.elapsed())).await;
    }
    out.sort();
    out
}

fn report(name: &str, lat: &[Duration]) -> Duration {
    let p50 = percentile(lat, 0.5);
    println!(
        "{name:<34} n={:<5} p50 {:>9.1?} p99 {:>9.1?} max {:>9.1?}",
        lat.len(),
        p50,
        percentile(lat, 0.99),
        lat[lat.len() - 1]
    );
    p50
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(2000);
    let rate = args.get(1).copied().unwrap_or(200) as u32;
    let server = tokio::task::block_in_place(PgServer::start);
    let db = tokio::task::block_in_place(|| server.create_database());
    let _store = tokio::task::block_in_place(|| {
        PgStore::open(&PgOptions::new(db.url.clone()), std::path::Path::new("")).unwrap()
    });
    let (pa, pb) =
        tokio::task::block_in_place(|| (PgBus::connect(&db.url, "a").unwrap(), PgBus::connect(&db.url, "b").unwrap()));
    let la = LocalBus::new("a");
    let lb = la.replica("b");
    println!("{n} messages at {rate}/s each, one at a time");
    let local = report("in-process bus, 300 B", &measure(&la, &lb, n, rate, 300).await);
    let pg = report("PostgreSQL LISTEN/NOTIFY, 300 B", &measure(&pa, &pb, n, rate, 300).await);
    report("PostgreSQL via bus_payloads, 20 kB", &measure(&pa, &pb, n / 10, rate, 20_000).await);
    println!("PostgreSQL / in-process median: {:.0}x", pg.as_secs_f64() / local.as_secs_f64().max(1e-9));
}
