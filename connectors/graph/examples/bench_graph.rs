//! Benchmark: first and no-change sync of one mailbox with 20,000 contacts, 50,000 messages
//! and 5,000 events from the fake Graph of the tests, run in a child process (so that the
//! peak memory measured is the connector's, not the fake's) and reached over loopback HTTP.
//!
//! `cargo run --release -p contactbridge-graph --example bench_graph -- [--page-size N] [--throttle P]`
//! prints wall time, requests made versus the minimum the page size allows, and peak memory.
//! `--throttle P` answers each request with 429 (Retry-After: 1) with probability P;
//! `--latency-ms L` adds L ms to every Graph response (Graph itself takes 50–300 ms).

#[path = "../tests/support/fake_graph.rs"]
mod fake_graph;

use async_trait::async_trait;
use chrono::{Duration as Days, Utc};
use contactbridge_connector::{ChangeSet, ChangeSink, Checkpoint, Connector, Error, NoKnownVersions, SyncRequest};
use contactbridge_graph::{Credential, GraphAccount, GraphConnector, Secret};
use fake_graph::{FakeGraph, RetryForm, ThrottleMode};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Instant;

const MAILBOX: &str = "bench@contoso.com";
const CONTACTS: usize = 20_000;
const INBOX: usize = 35_000;
const SENT: usize = 15_000;
const EVENTS: usize = 5_000;

/// Counts what it is given and keeps only the last checkpoint (like a store would).
#[derive(Default)]
struct CountingSink {
    upserts: usize,
    change_sets: usize,
    checkpoint: Option<Checkpoint>,
}

#[async_trait]
impl ChangeSink for CountingSink {
    async fn apply(&mut self, changes: ChangeSet) -> Result<(), Error> {
        self.upserts += changes.upserts.len();
        self.change_sets += 1;
        if changes.checkpoint.is_some() {
            self.checkpoint = changes.checkpoint;
        }
        Ok(())
    }
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// Child mode: seed and serve the fake until stdin closes.
async fn serve(throttle: f64, latency_ms: u64) {
    let fake = FakeGraph::start().await;
    fake.set_latency(std::time::Duration::from_millis(latency_ms));
    let now = Utc::now();
    let spread = |i: usize, span_days: i64, n: usize| Days::minutes((i as i64 * span_days * 24 * 60) / n as i64);
    let person = |i: usize| format!("p{}@example.com", i % CONTACTS);
    fake.put_many(
        &format!("{MAILBOX}/contacts"),
        (0..CONTACTS).map(|i| {
            let (id, name, phone) = (format!("AAMkC{i:06}"), format!("Person {i}"), format!("+49 30 {i:07}"));
            fake_graph::contact(&id, &name, &phone, &person(i), &["Customers"])
        }),
    );
    fake.put_many(
        &format!("{MAILBOX}/inbox"),
        (0..INBOX).map(|i| {
            fake_graph::message(&format!("AAMkI{i:06}"), "Figures", now - spread(i, 85, INBOX), &person(i), MAILBOX)
        }),
    );
    fake.put_many(
        &format!("{MAILBOX}/sentitems"),
        (0..SENT).map(|i| {
            fake_graph::message(&format!("AAMkS{i:06}"), "Re: Figures", now - spread(i, 85, SENT), MAILBOX, &person(i))
        }),
    );
    fake.put_many(
        &format!("{MAILBOX}/events"),
        (0..EVENTS).map(|i| {
            let start = now - Days::days(29) + spread(i, 115, EVENTS);
            fake_graph::event(&format!("AAMkE{i:05}"), "Customer call", start, 30, &[&person(i)])
        }),
    );
    if throttle > 0.0 {
        fake.throttle(ThrottleMode::Random(throttle), RetryForm::Seconds(1));
    }
    println!("READY {} {}", fake.authority(), fake.base);
    tokio::task::spawn_blocking(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    })
    .await
    .unwrap();
}

async fn fake_stats(http: &reqwest::Client, authority: &str, reset: bool) -> Value {
    let url = format!("{authority}/_stats{}", if reset { "?reset" } else { "" });
    http.get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::main]
async fn main() {
    let page_size: u32 = arg("--page-size").and_then(|v| v.parse().ok()).unwrap_or(200);
    let throttle: f64 = arg("--throttle").and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let latency_ms: u64 = arg("--latency-ms").and_then(|v| v.parse().ok()).unwrap_or(0);
    if std::env::args().any(|a| a == "--serve") {
        return serve(throttle, latency_ms).await;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--serve", "--throttle", &throttle.to_string(), "--latency-ms", &latency_ms.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let mut parts = line.split_whitespace().skip(1);
    let (authority, base) = (parts.next().unwrap().to_string(), parts.next().unwrap().to_string());
    let http = reqwest::Client::new();
    let before = vm_hwm_kib();

    let mut account = GraphAccount::new(
        fake_graph::TENANT,
        fake_graph::CLIENT_ID,
        Credential::ClientSecret { secret: Secret::new(fake_graph::CLIENT_SECRET) },
        vec![MAILBOX.to_string()],
    );
    account.authority = authority.clone();
    account.graph_base = base;
    account.https_only = false;
    account.page_size = page_size;
    let conn = GraphConnector::new(account).unwrap();

    // First sync: every collection of the mailbox at once, as the engine would run them.
    let started = Instant::now();
    let collections = conn.collections().await.unwrap();
    let conn_ref = &conn;
    let runs = collections.iter().map(|c| async move {
        let mut sink = CountingSink::default();
        let r = conn_ref.sync(SyncRequest { collection: c, since: None, known: &NoKnownVersions }, &mut sink).await;
        (c.clone(), r, sink)
    });
    let first: Vec<_> = futures::future::join_all(runs).await;
    let first_time = started.elapsed();
    let stats = fake_stats(&http, &authority, true).await;
    let pages = |n: usize| n.div_ceil(page_size as usize).max(1) as u64;
    // contactFolders + default folder id + contacts + events + inbox + sent + drive (empty) + automatic replies.
    let minimum = 1 + 1 + pages(CONTACTS) + pages(EVENTS) + pages(INBOX) + pages(SENT) + 1 + 1;
    let upserts: usize = first.iter().map(|(_, _, s)| s.upserts).sum();
    for (c, r, s) in &first {
        if let Err(e) = r {
            println!("  {} failed: {e}", c.id);
        }
        println!("  {:<42} {:>6} records in {:>4} change sets", c.id, s.upserts, s.change_sets);
    }
    println!("first sync: {upserts} records in {:.2?}", first_time);
    println!(
        "  requests: {} made ({} answered 429), minimum for page size {page_size}: {minimum}; token requests: {}; max in flight: {}",
        stats["requests"], stats["throttled"], stats["token_requests"], stats["max_in_flight"][MAILBOX]
    );
    println!(
        "  peak memory of the syncing process (VmHWM): {} MiB (before syncing: {} MiB)",
        vm_hwm_kib() / 1024,
        before / 1024
    );

    // Second sync, nothing changed.
    let started = Instant::now();
    let runs = first.iter().map(|(c, _, s)| {
        let since = s.checkpoint.clone();
        async move {
            let mut sink = CountingSink::default();
            conn_ref
                .sync(SyncRequest { collection: c, since, known: &NoKnownVersions }, &mut sink)
                .await
                .map(|_| sink.upserts)
        }
    });
    let second: Vec<_> = futures::future::join_all(runs).await;
    let elapsed = started.elapsed();
    let changed: usize = second.iter().map(|r| *r.as_ref().unwrap_or(&0)).sum();
    let stats = fake_stats(&http, &authority, false).await;
    println!(
        "no-change sync: {} requests for {} collections, {changed} records (the out-of-office snapshot), in {:.2?}",
        stats["requests"],
        first.len(),
        elapsed
    );
    drop(child.stdin.take());
    let _ = child.wait();
}
