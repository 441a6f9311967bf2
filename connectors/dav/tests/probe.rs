//! The no-change probe (src/probe.rs) against real Radicale and Xandikos, behind a
//! relay (tests/support/relay.rs) that makes one kind of request slow, freezes the
//! ctag or rewrites answers: which probe the connector settles on, that it switches
//! after a re-probe, that ctag-first ends exact, that a ctag that lies is caught
//! within REPROBE_EVERY syncs, that huge tokens and ctags are refused with nothing
//! lost, that old checkpoints load, and that one account's figures do not steer another's.

#[path = "support/relay.rs"]
mod relay;
#[macro_use]
mod support;

use contactbridge_connector::{Collection, CollectionKind, Connector, Error, SyncRequest};
use contactbridge_dav::probe::{ProbeStats, REPROBE_EVERY};
use contactbridge_dav::{DavCheckpoint, DavConnector, Server};
use relay::{Kind, Relay};
use std::time::Duration;
use support::*;

on_both_servers!(
    settles_on_the_faster_probe_and_switches_after_a_reprobe,
    ctag_first_with_changes_at_the_source_ends_exact,
    a_ctag_that_never_moves_is_caught_by_the_reprobe,
    huge_tokens_and_ctags_are_refused_and_nothing_is_lost,
    an_old_checkpoint_without_figures_still_loads,
    one_accounts_figures_do_not_steer_anothers,
);

const SLOW: Duration = Duration::from_millis(300);

/// An address book with three cards on `server`, and a relay in front of it.
async fn setup(server: &TestServer, name: &str) -> (Collection, Relay) {
    let direct = server.connector(contactbridge_dav::DavKind::CardDav);
    let dav = direct.client().await.unwrap();
    let href = create_addressbook(server, dav, name).await;
    seed_cards(dav, &href, 0..3).await;
    let book = Collection { id: href, name: name.into(), kind: CollectionKind::AddressBook, owner: None };
    (book, Relay::start(server.port).await)
}

/// A connector for `server`'s account that goes through `relay`.
fn through(server: &TestServer, relay: &Relay) -> DavConnector {
    let mut account = server.account();
    account.server = Server::Url(relay.url());
    DavConnector::carddav(account).unwrap()
}

async fn sync(connector: &DavConnector, book: &Collection, sink: &mut MemorySink) -> Result<(), Error> {
    let known = sink.versions();
    let request = SyncRequest { collection: book, since: sink.checkpoint.clone(), known: &known };
    connector.sync(request, sink).await
}

/// Syncs and returns the probe requests it sent (PROPFIND depth 0, sync REPORT).
async fn probed(connector: &DavConnector, book: &Collection, sink: &mut MemorySink, relay: &Relay) -> Vec<Kind> {
    relay.take_log();
    sync(connector, book, sink).await.expect("sync");
    relay.take_log().into_iter().filter(|k| *k != Kind::Other).collect()
}

fn figures(sink: &MemorySink) -> ProbeStats {
    DavCheckpoint::decode(sink.checkpoint.as_ref().unwrap()).unwrap().probe.expect("figures")
}

/// The records a fresh full sync straight from the server finds.
async fn source(server: &TestServer, book: &Collection) -> Vec<(String, Option<String>)> {
    let mut fresh = MemorySink::default();
    sync(&server.connector(contactbridge_dav::DavKind::CardDav), book, &mut fresh).await.unwrap();
    held(&fresh)
}

fn held(sink: &MemorySink) -> Vec<(String, Option<String>)> {
    sink.records.iter().map(|(id, r)| (id.0.clone(), r.version().map(str::to_string))).collect()
}

/// Syncs until the probes are measured once (first sync, then one with both).
async fn measured(connector: &DavConnector, book: &Collection, sink: &mut MemorySink, relay: &Relay) {
    sync(connector, book, sink).await.expect("first sync");
    assert_eq!(probed(connector, book, sink, relay).await, [Kind::Ctag, Kind::SyncReport], "both measured");
}

async fn settles_on_the_faster_probe_and_switches_after_a_reprobe(server: TestServer) {
    let (book, relay) = setup(&server, "settle").await;
    let connector = through(&server, &relay);
    let mut sink = MemorySink::default();
    relay.set(|b| b.delay_ctag = SLOW);
    measured(&connector, &book, &mut sink, &relay).await;
    for _ in 0..3 {
        assert_eq!(probed(&connector, &book, &mut sink, &relay).await, [Kind::SyncReport], "{:?}", figures(&sink));
    }
    // The server changes: now the REPORT is slow. The next re-probe notices.
    relay.set(|b| (b.delay_ctag, b.delay_report) = (Duration::ZERO, SLOW));
    let mut syncs = 0;
    loop {
        syncs += 1;
        let sent = probed(&connector, &book, &mut sink, &relay).await;
        if sent == [Kind::Ctag] {
            break;
        }
        assert!(syncs <= REPROBE_EVERY as usize + 1, "still {sent:?} after {syncs} syncs: {:?}", figures(&sink));
    }
    assert!(figures(&sink).prefers_ctag());
    assert_eq!(held(&sink), source(&server, &book).await);
}

async fn ctag_first_with_changes_at_the_source_ends_exact(server: TestServer) {
    let (book, relay) = setup(&server, "exact").await;
    let connector = through(&server, &relay);
    let dav = server.connector(contactbridge_dav::DavKind::CardDav);
    let dav = dav.client().await.unwrap();
    let mut sink = MemorySink::default();
    relay.set(|b| b.delay_report = SLOW);
    measured(&connector, &book, &mut sink, &relay).await;
    assert_eq!(probed(&connector, &book, &mut sink, &relay).await, [Kind::Ctag]);
    seed_cards(dav, &book.id, 3..5).await;
    let first = format!("{}c00000.vcf", book.id);
    overwrite(dav, &first, &card(1000, "uid-00000"), VCARD).await;
    delete(dav, &format!("{}c00001.vcf", book.id)).await;
    assert_eq!(probed(&connector, &book, &mut sink, &relay).await, [Kind::Ctag, Kind::SyncReport]);
    assert_eq!(held(&sink), source(&server, &book).await, "ctag first, then the REPORT: exact");
    assert_eq!(sink.records.len(), 4);
    assert_eq!(probed(&connector, &book, &mut sink, &relay).await, [Kind::Ctag], "the new ctag was kept");
}

async fn a_ctag_that_never_moves_is_caught_by_the_reprobe(server: TestServer) {
    let (book, relay) = setup(&server, "lying").await;
    let connector = through(&server, &relay);
    let dav = server.connector(contactbridge_dav::DavKind::CardDav);
    let dav = dav.client().await.unwrap();
    let mut sink = MemorySink::default();
    relay.set(|b| (b.delay_report, b.freeze_ctag) = (SLOW, true));
    measured(&connector, &book, &mut sink, &relay).await;
    assert_eq!(probed(&connector, &book, &mut sink, &relay).await, [Kind::Ctag]);
    seed_cards(dav, &book.id, 3..4).await;
    let mut syncs = 0;
    while sink.records.len() < 4 {
        syncs += 1;
        assert!(syncs <= REPROBE_EVERY as usize, "the change stayed hidden for {syncs} syncs");
        probed(&connector, &book, &mut sink, &relay).await;
    }
    assert!(syncs > 1, "the frozen ctag hid the change at first");
    assert_eq!(held(&sink), source(&server, &book).await);
    // Caught lying: the REPORT goes first from now on (until the figures say otherwise).
    assert!(!figures(&sink).prefers_ctag(), "{:?}", figures(&sink));
    assert_eq!(probed(&connector, &book, &mut sink, &relay).await, [Kind::SyncReport]);
}

async fn huge_tokens_and_ctags_are_refused_and_nothing_is_lost(server: TestServer) {
    let (book, relay) = setup(&server, "huge").await;
    let connector = through(&server, &relay);
    let mut sink = MemorySink::default();
    sync(&connector, &book, &mut sink).await.expect("first sync");
    let (checkpoint, records) = (sink.checkpoint.clone(), held(&sink));
    let huge = "x".repeat(100_000);
    relay.set(|b| b.ctag_text = Some(huge.clone()));
    let e = sync(&connector, &book, &mut sink).await.expect_err("a 100 KB ctag");
    assert!(e.message.contains("ctag") && e.message.contains("100000 bytes long"), "{e}");
    relay.set(|b| (b.ctag_text, b.report_token) = (None, Some(huge.clone())));
    let e = sync(&connector, &book, &mut sink).await.expect_err("a 100 KB sync token");
    assert!(e.message.contains("sync token") && e.message.contains("100000 bytes long"), "{e}");
    assert_eq!((&sink.checkpoint, held(&sink)), (&checkpoint, records.clone()), "nothing changed");
    relay.set(|b| b.report_token = None);
    sync(&connector, &book, &mut sink).await.expect("an honest answer again");
    assert_eq!(held(&sink), records);
    // A first sync meeting a huge ctag (taken before anything else) stores nothing at all.
    relay.set(|b| (b.report_token, b.ctag_text) = (None, Some(huge.clone())));
    let mut fresh = MemorySink::default();
    assert!(sync(&connector, &book, &mut fresh).await.is_err());
    assert!(fresh.checkpoint.is_none() && fresh.records.is_empty());
}

async fn an_old_checkpoint_without_figures_still_loads(server: TestServer) {
    let (book, relay) = setup(&server, "old").await;
    let connector = through(&server, &relay);
    let mut sink = MemorySink::default();
    measured(&connector, &book, &mut sink, &relay).await;
    // As written before the figures and the context URL were kept.
    let mut old: serde_json::Value = serde_json::from_slice(sink.checkpoint.as_ref().unwrap().as_bytes()).unwrap();
    let fields = old.as_object_mut().unwrap();
    fields.retain(|k, _| k == "sync_token");
    sink.checkpoint = Some(contactbridge_connector::Checkpoint::new(serde_json::to_vec(&old).unwrap()));
    assert_eq!(probed(&connector, &book, &mut sink, &relay).await, [Kind::Ctag, Kind::SyncReport], "measured again");
    assert!(sink.applied.last().unwrap().upserts.is_empty());
    assert!(figures(&sink).report_us > 0);
}

/// Each account keeps the figures in its own collection checkpoint (the store keys
/// those by user, account and collection): two accounts on the same address book,
/// one seeing a slow PROPFIND and the other a slow REPORT, each settle on their own.
async fn one_accounts_figures_do_not_steer_anothers(server: TestServer) {
    let (book, slow_ctag) = setup(&server, "tenants").await;
    let slow_report = Relay::start(server.port).await;
    slow_ctag.set(|b| b.delay_ctag = SLOW);
    slow_report.set(|b| b.delay_report = SLOW);
    let (a, b) = (through(&server, &slow_ctag), through(&server, &slow_report));
    let (mut sink_a, mut sink_b) = (MemorySink::default(), MemorySink::default());
    measured(&a, &book, &mut sink_a, &slow_ctag).await;
    measured(&b, &book, &mut sink_b, &slow_report).await;
    for _ in 0..2 {
        assert_eq!(probed(&a, &book, &mut sink_a, &slow_ctag).await, [Kind::SyncReport]);
        assert_eq!(probed(&b, &book, &mut sink_b, &slow_report).await, [Kind::Ctag]);
    }
}
