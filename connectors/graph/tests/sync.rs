//! Sync against the fake Graph: delta paging and snapshots, incremental changes with
//! `@removed`, restart from a stored nextLink, throttling, 410, 403 isolation, the
//! per-mailbox concurrency bound, the calendar window, and the category write-back.

mod support;

use async_trait::async_trait;
use chrono::{Duration as Days, Utc};
use contactbridge_connector::{
    ChangeSet, ChangeSink, Checkpoint, Collection, CollectionKind, Connector, Error, ErrorKind, MailDirection,
    NoKnownVersions, Record, RecordId, Snapshot, SyncRequest, VecSink,
};
use contactbridge_graph::{GraphConnector, RetryPolicy};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use support::fake_graph::{self, FakeGraph, RetryForm, ThrottleMode};

const ADELE: &str = "adele@contoso.com";
const ALEX: &str = "alex@contoso.com";

fn coll(mailbox: &str, part: &str, kind: CollectionKind) -> Collection {
    Collection { id: format!("{mailbox}/{part}"), name: part.into(), kind, owner: Some(mailbox.into()) }
}

fn contacts(mailbox: &str) -> Collection {
    coll(mailbox, "contacts", CollectionKind::AddressBook)
}

async fn sync(conn: &GraphConnector, c: &Collection, since: Option<Checkpoint>) -> Result<VecSink, Error> {
    let mut sink = VecSink::default();
    conn.sync(SyncRequest { collection: c, since, known: &NoKnownVersions }, &mut sink).await?;
    Ok(sink)
}

fn seed_contacts(fake: &FakeGraph, mailbox: &str, n: usize) {
    fake.put_many(
        &format!("{mailbox}/contacts"),
        (0..n).map(|i| {
            fake_graph::contact(
                &format!("AAMkC{i:05}"),
                &format!("Person {i}"),
                &format!("+49 30 {i:06}"),
                &format!("p{i}@example.com"),
                &[],
            )
        }),
    );
}

fn connector(fake: &FakeGraph, mailboxes: &[&str], page_size: u32) -> GraphConnector {
    let mut a = support::account(fake, mailboxes);
    a.page_size = page_size;
    GraphConnector::new(a).unwrap()
}

fn ids(sink: &VecSink) -> Vec<String> {
    sink.upserts().map(|r| r.id().to_string()).collect()
}

#[tokio::test]
async fn first_sync_is_a_paged_snapshot_and_the_next_one_delivers_changes_and_removals() {
    let fake = FakeGraph::start().await;
    seed_contacts(&fake, ADELE, 25);
    let conn = connector(&fake, &[ADELE], 10);
    let first = sync(&conn, &contacts(ADELE), None).await.unwrap();
    let snaps: Vec<Option<Snapshot>> = first.applied.iter().map(|c| c.snapshot).collect();
    assert_eq!(snaps, vec![Some(Snapshot::FIRST), Some(Snapshot::MIDDLE), Some(Snapshot::LAST)]);
    assert_eq!(first.applied.iter().map(|c| c.upserts.len()).collect::<Vec<_>>(), vec![10, 10, 5]);
    assert!(first.applied.iter().all(|c| c.checkpoint.is_some()), "every page carries its checkpoint");
    let last_cp: Value = serde_json::from_slice(first.checkpoint().unwrap().as_bytes()).unwrap();
    assert!(last_cp["delta_link"].as_str().unwrap().contains("$deltatoken="), "{last_cp}");
    let Record::Contact(c) = first.upserts().next().unwrap() else { panic!() };
    assert_eq!(c.display_name, "Person 0");
    assert_eq!(c.phones[0].raw, "+49 30 000000");
    assert_eq!(c.emails, vec!["p0@example.com"]);
    assert_eq!(c.company.as_deref(), Some("Contoso"));
    let stats = fake.stats();
    assert_eq!(stats.requests, 4, "one request per page, and one to learn the default folder's id");
    assert_eq!(stats.root_folder_deltas, 3, "the documented per-folder delta is used");

    // Changes: one edited, one new, one removed.
    let mut edited = fake.item(&format!("{ADELE}/contacts"), "AAMkC00003").unwrap();
    edited["displayName"] = json!("Person Three (edited)");
    fake.put(&format!("{ADELE}/contacts"), edited);
    fake.put(
        &format!("{ADELE}/contacts"),
        fake_graph::contact("AAMkNEW", "New Person", "+1 555 0100", "new@example.com", &["VIP"]),
    );
    fake.remove(&format!("{ADELE}/contacts"), "AAMkC00007");
    let next = sync(&conn, &contacts(ADELE), first.checkpoint().cloned()).await.unwrap();
    assert_eq!(next.applied.len(), 1);
    let cs = &next.applied[0];
    assert_eq!(cs.snapshot, None, "an incremental round is not a snapshot");
    assert_eq!(
        cs.upserts.iter().map(|r| r.id().to_string()).collect::<HashSet<_>>(),
        HashSet::from(["AAMkC00003".into(), "AAMkNEW".into()])
    );
    assert_eq!(cs.deletions, vec![RecordId::new("AAMkC00007")]);

    // Nothing changed: one request, nothing delivered but the new delta link.
    let quiet = sync(&conn, &contacts(ADELE), next.checkpoint().cloned()).await.unwrap();
    assert!(quiet.applied.iter().all(|c| c.upserts.is_empty() && c.deletions.is_empty()));
}

/// A sink that fails (like a crash) after committing `ok` change sets.
struct CrashingSink {
    inner: VecSink,
    ok: usize,
}

#[async_trait]
impl ChangeSink for CrashingSink {
    async fn apply(&mut self, changes: ChangeSet) -> Result<(), Error> {
        if self.inner.applied.len() == self.ok {
            return Err(Error::local("disk full"));
        }
        self.inner.apply(changes).await
    }
}

#[tokio::test]
async fn a_restart_in_the_middle_of_the_first_sync_resumes_from_the_stored_next_link() {
    let fake = FakeGraph::start().await;
    seed_contacts(&fake, ADELE, 50);
    let conn = connector(&fake, &[ADELE], 10);
    let c = contacts(ADELE);
    let mut crashing = CrashingSink { inner: VecSink::default(), ok: 2 };
    let err = conn
        .sync(SyncRequest { collection: &c, since: None, known: &NoKnownVersions }, &mut crashing)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Local);
    let stored = crashing.inner.checkpoint().cloned().unwrap();
    let cp: Value = serde_json::from_slice(stored.as_bytes()).unwrap();
    assert!(cp["next_link"].as_str().is_some() && cp["snapshot"] == json!(true), "{cp}");

    // A new connector (a restarted process) continues inside the same snapshot.
    let conn = connector(&fake, &[ADELE], 10);
    let rest = sync(&conn, &c, Some(stored)).await.unwrap();
    assert_eq!(rest.applied.first().unwrap().snapshot, Some(Snapshot::MIDDLE), "no new snapshot starts");
    assert_eq!(rest.applied.last().unwrap().snapshot, Some(Snapshot::LAST));
    let mut all = ids(&crashing.inner);
    all.extend(ids(&rest));
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 50, "no duplicates");
    assert_eq!(unique.len(), 50, "no loss");
}

#[tokio::test]
async fn throttling_is_retried_honouring_retry_after_in_seconds_and_as_http_date() {
    let fake = FakeGraph::start().await;
    seed_contacts(&fake, ADELE, 30);
    let conn = connector(&fake, &[ADELE], 10);
    fake.throttle(ThrottleMode::Next(2), RetryForm::Seconds(1));
    let first = sync(&conn, &contacts(ADELE), None).await.unwrap();
    assert_eq!(ids(&first).len(), 30);
    let s = fake.stats();
    assert_eq!((s.throttled, s.honoured_retries, s.early_retries), (2, 2, 0), "{s:?}");

    fake.reset_stats();
    seed_contacts(&fake, ADELE, 31);
    fake.throttle(ThrottleMode::Next(1), RetryForm::HttpDate(1));
    let next = sync(&conn, &contacts(ADELE), first.checkpoint().cloned()).await.unwrap();
    assert_eq!(ids(&next).len(), 31, "every re-put contact comes back as changed");
    let s = fake.stats();
    assert_eq!((s.throttled, s.honoured_retries, s.early_retries), (1, 1, 0), "{s:?}");
}

#[tokio::test]
async fn throttling_gives_up_after_the_bound_with_a_throttled_error() {
    let fake = FakeGraph::start().await;
    seed_contacts(&fake, ADELE, 5);
    let mut a = support::account(&fake, &[ADELE]);
    a.retry = RetryPolicy { max_attempts: 3, max_wait_secs: 10, base_backoff_ms: 10 };
    let conn = GraphConnector::new(a).unwrap();
    fake.throttle(ThrottleMode::Always, RetryForm::Seconds(0));
    let err = sync(&conn, &contacts(ADELE), None).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Throttled);
    assert_eq!(err.retry_after, Some(Duration::ZERO));
    assert_eq!(fake.stats().requests, 3, "exactly max_attempts requests");

    // A Retry-After beyond the policy's longest wait is not slept on: it is reported.
    fake.reset_stats();
    fake.throttle(ThrottleMode::Always, RetryForm::Seconds(3600));
    let err = sync(&conn, &contacts(ADELE), None).await.unwrap_err();
    assert_eq!((err.kind, err.retry_after), (ErrorKind::Throttled, Some(Duration::from_secs(3600))));
    assert_eq!(fake.stats().requests, 1);
}

#[tokio::test]
async fn an_expired_delta_token_starts_a_new_snapshot() {
    let fake = FakeGraph::start().await;
    seed_contacts(&fake, ADELE, 12);
    let conn = connector(&fake, &[ADELE], 5);
    let first = sync(&conn, &contacts(ADELE), None).await.unwrap();
    fake.remove(&format!("{ADELE}/contacts"), "AAMkC00001");
    fake.expire_tokens(&format!("{ADELE}/contacts"));
    let again = sync(&conn, &contacts(ADELE), first.checkpoint().cloned()).await.unwrap();
    assert_eq!(again.applied.first().unwrap().snapshot, Some(Snapshot::FIRST));
    assert_eq!(again.applied.last().unwrap().snapshot.map(|s| s.ends), Some(true));
    assert_eq!(ids(&again).len(), 11, "the snapshot lists what exists; the sink sweeps the rest");
}

#[tokio::test]
async fn a_fenced_mailbox_fails_alone_with_forbidden() {
    let fake = FakeGraph::start().await;
    seed_contacts(&fake, ADELE, 3);
    seed_contacts(&fake, ALEX, 4);
    fake.add_folder(ADELE, "AAMkFolder1", "Suppliers");
    fake.put(
        &format!("{ADELE}/folder/AAMkFolder1"),
        fake_graph::contact("AAMkS1", "Sam Supplier", "+33 1 23 45 67 89", "sam@supplier.example", &[]),
    );
    fake.add_child_folder(ADELE, "AAMkFolder1", "AAMkFolder2", "EU");
    fake.fence(ALEX);
    let conn = connector(&fake, &[ADELE, ALEX], 50);
    let collections = conn.collections().await.unwrap();
    let nested = format!("{ADELE}/contactFolders/AAMkFolder2");
    assert!(collections.iter().any(|c| c.id == nested && c.name == "Suppliers/EU"), "nested folders are collections");
    assert!(collections.iter().any(|c| c.id == format!("{ADELE}/contactFolders/AAMkFolder1") && c.name == "Suppliers"));
    assert!(collections.iter().any(|c| c.owner.as_deref() == Some(ALEX)), "the fenced mailbox is still listed");
    let mut results = Vec::new();
    for c in collections.iter().filter(|c| c.kind == CollectionKind::AddressBook) {
        results.push((c.owner.clone().unwrap(), sync(&conn, c, None).await));
    }
    for (owner, r) in &results {
        match owner.as_str() {
            ALEX => assert_eq!(r.as_ref().unwrap_err().kind, ErrorKind::Forbidden),
            _ => assert!(r.is_ok(), "{r:?}"),
        }
    }
    let adele_total: usize =
        results.iter().filter(|(o, _)| o == ADELE).map(|(_, r)| ids(r.as_ref().unwrap()).len()).sum();
    assert_eq!(adele_total, 4);
    // The check looks at every mailbox and tells each one's result.
    let parts = conn.check_parts().await;
    assert_eq!(parts.len(), 2, "{parts:?}");
    for (mailbox, r) in &parts {
        match mailbox.as_str() {
            ALEX => assert_eq!(r.as_ref().unwrap_err().kind, ErrorKind::Forbidden),
            _ => assert!(r.is_ok(), "{mailbox}: {r:?}"),
        }
    }
    assert_eq!(conn.check().await.unwrap_err().kind, ErrorKind::Forbidden, "a fenced mailbox fails the check");
}

#[tokio::test]
async fn concurrent_syncs_of_one_mailbox_never_exceed_four_requests_in_flight() {
    let fake = FakeGraph::start().await;
    fake.set_latency(Duration::from_millis(15));
    let now = Utc::now();
    for m in [ADELE, ALEX] {
        seed_contacts(&fake, m, 60);
        fake.put_many(
            &format!("{m}/inbox"),
            (0..60).map(|i| fake_graph::message(&format!("AAMkI{i}"), "Hello", now - Days::hours(i), "a@x.com", m)),
        );
        fake.put_many(
            &format!("{m}/sentitems"),
            (0..60).map(|i| fake_graph::message(&format!("AAMkS{i}"), "Re", now - Days::hours(i), m, "a@x.com")),
        );
        fake.put_many(
            &format!("{m}/events"),
            (0..60).map(|i| fake_graph::event(&format!("AAMkE{i}"), "Call", now + Days::hours(i), 30, &[])),
        );
        fake.put_many(
            &format!("{m}/drive"),
            (0..60).map(|i| fake_graph::drive_file(&format!("D{i}"), "Plan.docx", "a@x.com", None)),
        );
    }
    let conn = connector(&fake, &[ADELE, ALEX], 5);
    let collections = conn.collections().await.unwrap();
    let runs = collections.iter().map(|c| sync(&conn, c, None));
    for r in futures::future::join_all(runs).await {
        r.unwrap();
    }
    let s = fake.stats();
    for m in [ADELE, ALEX] {
        let max = s.max_in_flight[m];
        assert!(max <= 4, "{m}: {max} requests in flight");
        assert!(max >= 2, "{m}: the syncs did run concurrently ({max})");
    }
}

#[tokio::test]
async fn calendar_mail_drive_and_out_of_office_are_mapped() {
    let fake = FakeGraph::start().await;
    let now = Utc::now();
    fake.put(
        &format!("{ADELE}/events"),
        fake_graph::event("AAMkE1", "Quarterly review", now + Days::days(2), 60, &["Ada@Example.com"]),
    );
    fake.put(&format!("{ADELE}/events"), fake_graph::event("AAMkE2", "Too far", now + Days::days(200), 60, &[]));
    fake.put(&format!("{ADELE}/events"), fake_graph::event("AAMkE3", "Long ago", now - Days::days(45), 60, &[]));
    fake.put(
        &format!("{ADELE}/inbox"),
        fake_graph::message("AAMkM1", "Offer", now - Days::days(3), "ada@example.com", ADELE),
    );
    fake.put(
        &format!("{ADELE}/inbox"),
        fake_graph::message("AAMkM2", "Old", now - Days::days(120), "ada@example.com", ADELE),
    );
    fake.put(
        &format!("{ADELE}/sentitems"),
        fake_graph::message("AAMkM3", "Re: Offer", now - Days::days(2), ADELE, "ada@example.com"),
    );
    fake.put(
        &format!("{ADELE}/drive"),
        fake_graph::drive_file("D1", "Offer Ada.docx", "ada@example.com", Some("meganb@contoso.com")),
    );
    fake.put(&format!("{ADELE}/drive"), json!({"id": "F1", "name": "Folder", "folder": {"childCount": 1}, "lastModifiedDateTime": "2026-01-01T00:00:00Z"}));
    fake.set_oof(
        ADELE,
        json!({"status": "scheduled", "externalAudience": "all",
        "scheduledStartDateTime": {"dateTime": "2026-12-20T08:00:00.0000000", "timeZone": "UTC"},
        "scheduledEndDateTime": {"dateTime": "2027-01-04T08:00:00.0000000", "timeZone": "UTC"},
        "internalReplyMessage": "<html><body>On leave</body></html>", "externalReplyMessage": ""}),
    );
    let conn = connector(&fake, &[ADELE], 50);

    let cal = sync(&conn, &coll(ADELE, "calendarView", CollectionKind::Calendar), None).await.unwrap();
    assert_eq!(ids(&cal), vec!["AAMkE1"], "only events inside the window (30 days back, 90 ahead)");
    let Record::Event(e) = cal.upserts().next().unwrap() else { panic!() };
    assert_eq!(e.attendees, vec!["ada@example.com"]);
    assert_eq!(e.organizer.as_deref(), Some("meganb@contoso.com"));
    assert_eq!(e.occurrences[0].end - e.occurrences[0].start, Days::minutes(60));

    let inbox = sync(&conn, &coll(ADELE, "inbox", CollectionKind::MailFolder), None).await.unwrap();
    assert_eq!(ids(&inbox), vec!["AAMkM1"], "the 90-day lookback filter applies");
    let sent = sync(&conn, &coll(ADELE, "sentitems", CollectionKind::MailFolder), None).await.unwrap();
    let Record::Mail(m) = sent.upserts().next().unwrap() else { panic!() };
    assert_eq!(m.direction, MailDirection::Sent);
    assert_eq!(m.to[0].email, "ada@example.com");
    assert!(m.preview.starts_with("Hi, about Re: Offer"));

    let drive = sync(&conn, &coll(ADELE, "drive", CollectionKind::Drive), None).await.unwrap();
    assert_eq!(ids(&drive), vec!["D1"], "folders are not documents");
    let Record::Document(d) = drive.upserts().next().unwrap() else { panic!() };
    let emails: Vec<&str> = d.people.iter().map(|p| p.email.as_str()).collect();
    assert_eq!(emails, vec!["meganb@contoso.com", "ada@example.com"]);
    fake.remove(&format!("{ADELE}/drive"), "D1");
    let drive2 = sync(&conn, &coll(ADELE, "drive", CollectionKind::Drive), drive.checkpoint().cloned()).await.unwrap();
    assert_eq!(drive2.applied[0].deletions, vec![RecordId::new("D1")], "the deleted facet is a deletion");

    let oof = sync(&conn, &coll(ADELE, "automaticRepliesSetting", CollectionKind::Settings), None).await.unwrap();
    assert_eq!(oof.applied[0].snapshot, Some(Snapshot::WHOLE));
    let Record::OutOfOffice(o) = oof.upserts().next().unwrap() else { panic!() };
    assert!(o.enabled);
    assert!(o.active_at("2026-12-24T12:00:00Z".parse().unwrap()));
    assert!(!o.active_at("2027-01-05T12:00:00Z".parse().unwrap()));

    // Only indexed fields are asked for (the fake drops the rest): never a message body.
    let selects = fake.stats().selects;
    let inbox_select = &selects[&format!("{ADELE}/inbox")];
    assert!(inbox_select.contains("bodyPreview") && !inbox_select.split(',').any(|f| f == "body"), "{inbox_select}");
    assert!(selects[&format!("{ADELE}/drive")].contains("lastModifiedBy"));
}

#[tokio::test]
async fn the_calendar_window_rolls_forward_with_a_new_snapshot() {
    let fake = FakeGraph::start().await;
    fake.put(&format!("{ADELE}/events"), fake_graph::event("AAMkE1", "Soon", Utc::now() + Days::days(1), 30, &[]));
    let conn = connector(&fake, &[ADELE], 50);
    let c = coll(ADELE, "calendarView", CollectionKind::Calendar);
    let first = sync(&conn, &c, None).await.unwrap();
    let mut cp: Value = serde_json::from_slice(first.checkpoint().unwrap().as_bytes()).unwrap();

    // Same day: incremental.
    let same = sync(&conn, &c, first.checkpoint().cloned()).await.unwrap();
    assert_eq!(same.applied[0].snapshot, None);

    // A checkpoint whose window started 3 days earlier has fallen behind: new snapshot.
    let start: chrono::DateTime<Utc> = cp["window_start"].as_str().unwrap().parse().unwrap();
    cp["window_start"] = json!(start - Days::days(3));
    let rolled = sync(&conn, &c, Some(Checkpoint::new(cp.to_string()))).await.unwrap();
    assert_eq!(rolled.applied[0].snapshot, Some(Snapshot::WHOLE));
    assert_eq!(ids(&rolled), vec!["AAMkE1"]);
}

#[tokio::test]
async fn writing_a_handling_code_adds_the_category_to_the_outlook_contact() {
    let fake = FakeGraph::start().await;
    fake.put(
        &format!("{ADELE}/contacts"),
        fake_graph::contact("AAMkK1", "Kim Key", "+49 89 123", "kim@example.com", &["Customers"]),
    );
    let conn = connector(&fake, &[ADELE], 50);
    let c = contacts(ADELE);
    let first = sync(&conn, &c, None).await.unwrap();
    let Record::Contact(kim) = first.upserts().next().unwrap().clone() else { panic!() };
    let updated = conn.write_handling_code(&c, &kim, "VIP").await.unwrap();
    assert_eq!(updated.categories, vec!["Customers", "VIP"]);
    assert_ne!(updated.version, kim.version, "Outlook gave the contact a new change key");
    let patch = (format!("/v1.0/users/{ADELE}/contacts/AAMkK1"), json!({"categories": ["Customers", "VIP"]}));
    assert_eq!(fake.stats().patches, vec![patch]);
    assert_eq!(fake.item(&format!("{ADELE}/contacts"), "AAMkK1").unwrap()["categories"], json!(["Customers", "VIP"]));

    // Writing it again changes nothing (no PATCH) but does not fail.
    let again = conn.write_handling_code(&c, &updated, "vip").await.unwrap();
    assert_eq!(again.categories, vec!["Customers", "VIP"]);
    assert_eq!(fake.stats().patches.len(), 1);

    let next = sync(&conn, &c, first.checkpoint().cloned()).await.unwrap();
    assert_eq!(ids(&next), vec!["AAMkK1"], "the write-back shows up in the next delta");
    // A contact in another folder is written through that folder.
    fake.add_folder(ADELE, "AAMkF2", "Partners");
    fake.put(
        &format!("{ADELE}/folder/AAMkF2"),
        fake_graph::contact("AAMkP1", "Pat Partner", "+49 40 1", "pat@example.com", &[]),
    );
    let partners = coll(ADELE, "contactFolders/AAMkF2", CollectionKind::AddressBook);
    let pat = sync(&conn, &partners, None).await.unwrap();
    let Record::Contact(pat) = pat.upserts().next().unwrap().clone() else { panic!() };
    let pat = conn.write_handling_code(&partners, &pat, "Blocked").await.unwrap();
    assert_eq!(pat.categories, vec!["Blocked"]);
    let last = fake.stats().patches.last().unwrap().0.clone();
    assert_eq!(last, format!("/v1.0/users/{ADELE}/contactFolders/AAMkF2/contacts/AAMkP1"));

    let unsupported = conn.write_handling_code(&coll(ADELE, "inbox", CollectionKind::MailFolder), &kim, "VIP").await;
    assert_eq!(unsupported.unwrap_err().kind, ErrorKind::Unsupported);
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once_and_the_request_retried() {
    let fake = FakeGraph::start().await;
    seed_contacts(&fake, ADELE, 3);
    let conn = connector(&fake, &[ADELE], 50);
    let first = sync(&conn, &contacts(ADELE), None).await.unwrap();
    fake.revoke_tokens();
    let next = sync(&conn, &contacts(ADELE), first.checkpoint().cloned()).await.unwrap();
    assert!(next.applied.iter().all(|c| c.upserts.is_empty()));
    let s = fake.stats();
    assert_eq!((s.unauthorized, s.token_requests), (1, 2), "one 401, one new token");
}

#[tokio::test]
async fn random_429s_on_any_page_lose_and_repeat_nothing() {
    let fake = FakeGraph::start().await;
    seed_contacts(&fake, ADELE, 200);
    let mut a = support::account(&fake, &[ADELE]);
    a.page_size = 10;
    a.retry = RetryPolicy { max_attempts: 8, max_wait_secs: 10, base_backoff_ms: 10 };
    let conn = GraphConnector::new(a).unwrap();
    fake.throttle(ThrottleMode::Random(0.3), RetryForm::Seconds(0));
    let first = sync(&conn, &contacts(ADELE), None).await.unwrap();
    let got = ids(&first);
    assert_eq!(got.len(), 200);
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 200);
    let s = fake.stats();
    assert!(s.throttled > 0, "{s:?}");
    assert_eq!(s.requests, 1 + 20 + s.throttled, "folder lookup and every page once, plus one retry per 429");
}

/// A sink that runs `action` once, when change set number `at` (from 0) arrives.
struct Interrupting {
    inner: VecSink,
    at: usize,
    seen: usize,
    action: Option<Box<dyn FnOnce() + Send>>,
}

#[async_trait]
impl ChangeSink for Interrupting {
    async fn apply(&mut self, changes: ChangeSet) -> Result<(), Error> {
        if self.seen == self.at {
            if let Some(action) = self.action.take() {
                action();
            }
        }
        self.seen += 1;
        self.inner.apply(changes).await
    }
}

/// The ids a sink holds after applying its change sets in order (snapshots swept).
fn held(applied: &[ChangeSet]) -> std::collections::BTreeSet<String> {
    let mut held = std::collections::BTreeSet::new();
    let mut stamped = std::collections::BTreeSet::new();
    for c in applied {
        if c.snapshot.is_some_and(|s| s.starts) {
            stamped.clear();
        }
        for r in &c.upserts {
            held.insert(r.id().to_string());
            stamped.insert(r.id().to_string());
        }
        for d in &c.deletions {
            held.remove(d.as_str());
        }
        if c.snapshot.is_some_and(|s| s.ends) {
            held.retain(|id| stamped.contains(id));
        }
    }
    held
}

/// Graph dies in the middle of a full listing: back at once, the page requests that met
/// it are retried and the one sync completes; down for longer than the retries, the sync
/// fails as unreachable naming host and port (the SDK's wrapped connection error), and the
/// next sync resumes from the stored nextLink; with changes made meanwhile, the final state
/// after the next delta round is exact.
#[tokio::test]
async fn graph_killed_mid_sync_is_retried_then_resumed_and_ends_exact() {
    let fake = FakeGraph::start().await;
    seed_contacts(&fake, ADELE, 100);
    let proxy = std::sync::Arc::new(tokio::sync::Mutex::new(support::Proxy::start(fake.addr).await));
    let mut account = support::account(&fake, &[ADELE]);
    account.graph_base = proxy.lock().await.base();
    account.page_size = 10;
    account.retry = RetryPolicy { max_attempts: 5, max_wait_secs: 10, base_backoff_ms: 200 };
    let conn = GraphConnector::new(account).unwrap();
    let c = contacts(ADELE);

    // Killed at the third page, back 300 ms later: retried within the sync.
    let killing = proxy.clone();
    let action = Box::new(move || {
        let mut p = killing.try_lock().expect("the proxy is free");
        p.kill();
        let restarting = killing.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            restarting.lock().await.restart().await;
        });
    });
    let mut sink = Interrupting { inner: VecSink::default(), at: 2, seen: 0, action: Some(action) };
    conn.sync(SyncRequest { collection: &c, since: None, known: &NoKnownVersions }, &mut sink)
        .await
        .expect("the sync rides over the restart");
    assert_eq!(held(&sink.inner.applied).len(), 100);
    let done = sink.inner.checkpoint().cloned().unwrap();

    // A full listing again (expired delta), killed at the fourth page and down for good.
    fake.expire_tokens(&format!("{ADELE}/contacts"));
    let killing = proxy.clone();
    let action = Box::new(move || killing.try_lock().expect("the proxy is free").kill());
    let mut sink = Interrupting { inner: VecSink::default(), at: 3, seen: 0, action: Some(action) };
    let err = conn
        .sync(SyncRequest { collection: &c, since: Some(done), known: &NoKnownVersions }, &mut sink)
        .await
        .expect_err("Graph stays down");
    assert_eq!(err.kind, ErrorKind::Unreachable, "{err}");
    let port = proxy.lock().await.port;
    assert!(err.message.contains(&format!("127.0.0.1:{port}")), "host and port named: {err}");
    assert!(!err.message.contains("could not be built"), "{err}");
    let mut applied = sink.inner.applied.clone();
    let cut = sink.inner.checkpoint().cloned().expect("a resume position");
    assert!(String::from_utf8_lossy(cut.as_bytes()).contains("next_link"), "cut inside the listing");

    // Meanwhile at the source: one added, one removed, one changed.
    fake.put(&format!("{ADELE}/contacts"), fake_graph::contact("AAMkNew", "New Person", "+49 30 999", "n@x", &[]));
    fake.remove(&format!("{ADELE}/contacts"), "AAMkC00050");
    fake.put(&format!("{ADELE}/contacts"), fake_graph::contact("AAMkC00001", "Renamed", "+49 30 1", "r@x", &[]));
    proxy.lock().await.restart().await;

    let resumed = sync(&conn, &c, Some(cut)).await.expect("resumed from the nextLink");
    assert!(
        resumed.applied.first().is_some_and(|s| s.snapshot.is_some_and(|s| !s.starts)),
        "the resumed sync continues the listing"
    );
    applied.extend(resumed.applied.clone());
    let next = sync(&conn, &c, resumed.checkpoint().cloned()).await.expect("the next delta round");
    applied.extend(next.applied.clone());
    let mut expected: std::collections::BTreeSet<String> = (0..100).map(|i| format!("AAMkC{i:05}")).collect();
    expected.remove("AAMkC00050");
    expected.insert("AAMkNew".into());
    assert_eq!(held(&applied), expected);
    let renamed = applied.iter().rev().flat_map(|c| c.upserts.iter()).find(|r| r.id().as_str() == "AAMkC00001");
    match renamed {
        Some(Record::Contact(contact)) => assert_eq!(contact.display_name, "Renamed"),
        other => panic!("{other:?}"),
    }
}
