//! Hostile calendars over CalDAV (issue 10, slice B) from a real Radicale: 20
//! secondly events next to valid ones sync with bounded work and memory, every
//! valid event is kept, and the cut ones are reported — on every sync.

mod support;

use contactbridge_connector::{Collection, CollectionKind, Connector, Record, RecordId, SyncRequest};
use contactbridge_dav::DavConnector;
use support::*;

fn calendar(body: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//hostile//EN\r\n{body}END:VCALENDAR\r\n")
}

/// The 385-byte event of issue 10: a secondly rule starting today.
/// With an end one second later its instances touch: one continuous occurrence.
fn secondly(i: usize, with_end: bool) -> String {
    let today = chrono::Utc::now().format("%Y%m%d");
    let end = if with_end { format!("DTEND:{today}T000001Z\r\n") } else { String::new() };
    calendar(&format!(
        "BEGIN:VEVENT\r\nUID:hostile-{i}\r\nDTSTAMP:{today}T000000Z\r\nDTSTART:{today}T000000Z\r\n\
         {end}RRULE:FREQ=SECONDLY\r\nSUMMARY:Every second {i}\r\n\
         ATTENDEE:mailto:alice@example.com\r\nATTENDEE:mailto:bob@example.com\r\nEND:VEVENT\r\n"
    ))
}

/// Peak resident memory of this test process (each test runs in its own under nextest).
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn secondly_events_on_radicale_sync_bounded_and_the_valid_events_are_kept() {
    let server = TestServer::radicale();
    let mut account = server.account();
    account.batch_size = 5;
    let connector = DavConnector::caldav(account).unwrap();
    let dav = connector.client().await.unwrap();
    let href = create_calendar(&server, dav, "invited").await;
    let collection =
        Collection { id: href.clone(), name: "invited".into(), kind: CollectionKind::Calendar, owner: None };
    for i in 1..=20 {
        put_new(dav, &format!("{href}hostile-{i}.ics"), &secondly(i, i % 2 == 0), ICAL)
            .await
            .expect("PUT hostile event");
    }
    let weekly = calendar(
        "BEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20200106T080000Z\r\nDURATION:PT1H\r\n\
         RRULE:FREQ=WEEKLY\r\nSUMMARY:Standup\r\nEND:VEVENT\r\n",
    );
    put_new(dav, &format!("{href}weekly.ics"), &weekly, ICAL).await.expect("PUT weekly");
    // Half-hour blocks every minute since 2019: busy now.
    let dense = calendar(
        "BEGIN:VEVENT\r\nUID:dense\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20190101T000000Z\r\n\
         DTEND:20190101T003000Z\r\nRRULE:FREQ=MINUTELY\r\nSUMMARY:Always on\r\nEND:VEVENT\r\n",
    );
    put_new(dav, &format!("{href}dense.ics"), &dense, ICAL).await.expect("PUT dense");
    // Minutely since 2019 with COUNT ending in 2019: no occurrence in the window, no work.
    let ended = calendar(
        "BEGIN:VEVENT\r\nUID:ended\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20190101T000000Z\r\n\
         RRULE:FREQ=MINUTELY;COUNT=1000\r\nSUMMARY:Long over\r\nEND:VEVENT\r\n",
    );
    put_new(dav, &format!("{href}ended.ics"), &ended, ICAL).await.expect("PUT ended");

    let hwm_before = vm_hwm_kib();
    let started = std::time::Instant::now();
    let mut sink = MemorySink::default();
    for round in 0..2 {
        // The second round is a full re-expansion (as every day when the window moves).
        let known = if round == 0 { sink.versions() } else { Default::default() };
        let request = SyncRequest { collection: &collection, since: None, known: &known };
        connector.sync(request, &mut sink).await.expect("calendar sync");
    }
    let took = started.elapsed();
    let grew = vm_hwm_kib().saturating_sub(hwm_before);
    eprintln!("two syncs took {took:?}; peak memory grew by {} MiB", grew >> 10);
    // Before: 50,000 occurrences per event, 1.7 GB resident for one, an abort for 20.
    assert!(grew < 64 << 10, "peak memory grew by {} MiB", grew >> 10);

    assert_eq!(sink.records.len(), 23, "every event is kept: {:?}", sink.rejected);
    let event = |name: &str| match &sink.records[&RecordId::new(format!("{href}{name}.ics"))] {
        Record::Event(e) => e.clone(),
        other => panic!("not an event: {other:?}"),
    };
    let now = chrono::Utc::now();
    for i in 1..=20 {
        let e = event(&format!("hostile-{i}"));
        if i % 2 == 1 {
            assert_eq!(e.occurrences.len(), contactbridge_formats::MAX_OCCURRENCES_PER_DENSE_EVENT, "hostile-{i}");
        } else {
            // Touching instances: one occurrence over the rest of the window.
            assert_eq!(e.occurrences.len(), 1, "hostile-{i}");
            assert!(e.occurrences[0].end - e.occurrences[0].start > chrono::Duration::days(80));
        }
    }
    assert!((15..=19).contains(&event("weekly").occurrences.len()));
    let dense = event("dense");
    assert_eq!(dense.occurrences.len(), 1, "overlapping instances are one occurrence");
    assert!(dense.occurrences.iter().any(|o| o.start <= now && now < o.end), "the dense series covers now");
    assert!(event("ended").occurrences.is_empty());

    // Each cut event is reported with its href, on each sync; the valid ones are not.
    let cut: Vec<&str> = sink.rejected.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(cut.len(), 2 * 10, "{cut:?}");
    for i in (1..=20).step_by(2) {
        assert!(cut.contains(&format!("{href}hostile-{i}.ics").as_str()));
    }
    assert!(sink.rejected.iter().all(|r| r.reason.contains("occurrences nearest to now")));
    assert!(!cut.iter().any(|c| c.ends_with("weekly.ics") || c.ends_with("ended.ics") || c.ends_with("dense.ics")));
}
