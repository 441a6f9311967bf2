//! Hostile calendars (issue 10, slice B) through `contactbridge import`, the
//! way a user brings a file in: a dense recurrence costs what a normal event
//! costs, the valid items around it are kept, and what was cut is reported.
//! The CalDAV path is in connectors/dav/tests/hostile_caldav.rs.

use chrono::{Duration, Utc};
use std::path::Path;
use std::time::Instant;
use support::binary::{cb, ok};

mod support;

/// The 385-byte event of issue 10: a secondly rule starting today. With an
/// end one second later its instances touch (one continuous occurrence);
/// without, each is an instant: a rule denser than daily keeps the 16
/// nearest to now (`MAX_OCCURRENCES_PER_DENSE_EVENT`), the cut reported.
fn secondly(i: usize, with_end: bool) -> String {
    let today = Utc::now().format("%Y%m%d");
    let end = if with_end { format!("DTEND:{today}T000001Z\r\n") } else { String::new() };
    format!(
        "BEGIN:VEVENT\r\nUID:hostile-{i}@example.org\r\nDTSTAMP:{today}T000000Z\r\nDTSTART:{today}T000000Z\r\n\
         {end}RRULE:FREQ=SECONDLY\r\nSUMMARY:Every second {i}\r\n\
         ORGANIZER:mailto:stranger@example.net\r\nATTENDEE:mailto:alice@example.com\r\n\
         ATTENDEE:mailto:bob@example.com\r\nATTENDEE:mailto:carol@example.com\r\nEND:VEVENT\r\n"
    )
}

/// The largest resident set of the children this test process waited for, in bytes.
fn children_max_rss() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we pass.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    usage.ru_maxrss as u64 * 1024
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dir_size(&e.path())
            } else {
                e.metadata().unwrap().len()
            }
        })
        .sum()
}

#[test]
fn hostile_recurrences_in_a_file_are_bounded_and_the_valid_events_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["user", "add", "acme.alice", "--tenant", "acme", "--number", "+49 40 1234500", "--region", "de"]);
    let cards = d.join("kim.vcf");
    std::fs::write(
        &cards,
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:kim\r\nFN:Kim Kunde\r\nTEL:040 98765\r\nEMAIL:kim@example.com\r\nEND:VCARD\r\n",
    )
    .unwrap();
    ok(d, &["import", "--user", "acme.alice", cards.to_str().unwrap()]);

    let mut ics = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//hostile//EN\r\n");
    for i in 1..=20 {
        ics += &secondly(i, i % 2 == 0);
    }
    // A weekly meeting with Kim since 2020: shows in Kim's context.
    ics += "BEGIN:VEVENT\r\nUID:weekly-kim\r\nDTSTART:20200106T100000Z\r\nDTEND:20200106T110000Z\r\n\
            RRULE:FREQ=WEEKLY\r\nSUMMARY:Weekly with Kim\r\nATTENDEE:mailto:kim@example.com\r\nEND:VEVENT\r\n";
    // A minutely series of half-hour blocks since 2019: Alice is busy now, whatever now is.
    ics += "BEGIN:VEVENT\r\nUID:dense-since-2019\r\nDTSTART:20190101T000000Z\r\nDTEND:20190101T003000Z\r\n\
            RRULE:FREQ=MINUTELY\r\nSUMMARY:Always on\r\nEND:VEVENT\r\n";
    // An invitation with 5,000 attendees, daily: attendees + occurrences keys, not their product.
    ics += "BEGIN:VEVENT\r\nUID:crowd\r\nDTSTART:20240101T080000Z\r\nDTEND:20240101T081500Z\r\n\
            RRULE:FREQ=DAILY\r\nSUMMARY:Crowd\r\n";
    for i in 0..5000 {
        ics += &format!("ATTENDEE:mailto:guest{i}@example.net\r\n");
    }
    ics += "END:VEVENT\r\n";
    // A broken event: reported, the others kept.
    ics += "BEGIN:VEVENT\r\nUID:no-start\r\nSUMMARY:No start\r\nEND:VEVENT\r\n";
    ics += "END:VCALENDAR\r\n";
    let file = d.join("hostile.ics");
    std::fs::write(&file, &ics).unwrap();

    let started = Instant::now();
    let out = cb(d, &["import", "--user", "acme.alice", file.to_str().unwrap()]);
    let took = started.elapsed();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("23 imported"), "20 hostile, weekly, dense and crowd are kept:\n{stdout}");
    for i in 1..=20 {
        let cut = stderr.contains(&format!("hostile-{i}@example.org: only the 16 occurrences"));
        assert_eq!(cut, i % 2 == 1, "instants are cut, touching instances are one occurrence: {stderr}");
    }
    assert!(!stderr.contains("dense-since-2019"), "overlapping instances are one occurrence: {stderr}");
    assert!(stderr.contains("no readable DTSTART"), "{stderr}");
    assert!(!stderr.contains("weekly-kim") && !stderr.contains("crowd"), "not cut: {stderr}");

    // Bounded: before, each of these events made 50,000 occurrences (× attendees
    // in keys), 1.7 GB resident and a 193 MB store; 20 of them aborted the process.
    let rss = children_max_rss();
    let store = dir_size(d);
    eprintln!("import took {took:?}, peak RSS of a child {} MiB, data dir {} MiB", rss >> 20, store >> 20);
    // Generous bounds: debug build, on a machine busy with other builds.
    assert!(rss < 400 << 20, "peak RSS {} MiB", rss >> 20);
    assert!(store < 64 << 20, "data dir {} MiB", store >> 20);
    assert!(took < std::time::Duration::from_secs(180), "{took:?}");

    // The dense series started years ago still shows now: Alice is busy.
    let json = ok(d, &["lookup", "--called", "+49401234500", "--cli", "+494098765", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["decision"]["status"], "busy", "{json}");
    let events = v["context"]["events"].to_string();
    assert!(events.contains("Weekly with Kim"), "the weekly meeting is in Kim's context: {json}");

    // Importing the file again replaces what it brought: the store does not grow much.
    std::fs::write(&file, ics.replace("SUMMARY:Crowd", "SUMMARY:Crowd again")).unwrap();
    let out = cb(d, &["import", "--user", "acme.alice", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("23 imported"), "{stdout}");
    assert!(dir_size(d) < 2 * store + (8 << 20), "data dir {} MiB after a second import", dir_size(d) >> 20);
}

/// The per-file budget: past 100,000 occurrences the further events are
/// skipped with a reason; the ones before are kept. Daily events (not capped
/// as dense): 80 each, all ahead in the window, so 1,250 fill the budget.
#[test]
fn a_file_past_the_occurrence_budget_keeps_what_came_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["user", "add", "acme.alice", "--tenant", "acme", "--number", "+49 40 1234500", "--region", "de"]);
    let mut ics = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n");
    let tomorrow = (Utc::now() + Duration::days(1)).format("%Y%m%d");
    for i in 1..=1300 {
        ics += &format!(
            "BEGIN:VEVENT\r\nUID:daily-{i}\r\nDTSTART:{tomorrow}T090000Z\r\nRRULE:FREQ=DAILY;COUNT=80\r\n\
             SUMMARY:Daily {i}\r\nEND:VEVENT\r\n"
        );
    }
    let start = (Utc::now() + Duration::days(3)).format("%Y%m%dT090000Z");
    ics += &format!("BEGIN:VEVENT\r\nUID:last-valid\r\nDTSTART:{start}\r\nSUMMARY:After the budget\r\nEND:VEVENT\r\n");
    ics += "END:VCALENDAR\r\n";
    let file = d.join("many.ics");
    std::fs::write(&file, &ics).unwrap();
    let out = cb(d, &["import", "--user", "acme.alice", file.to_str().unwrap()]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1250 imported"), "{stdout}");
    assert!(stderr.contains("skipped: the file already gave 100000 occurrences"), "{stderr}");
}

/// Issue 10's event without DTEND (instants) alone in a file: bounded like a
/// weekly event (16 occurrences, the cut reported), and nobody is busy by it:
/// an instant ends where it starts (RFC 5545 3.6.1), so "now" is never inside
/// one. The contact it invites still sees it as their next event.
#[test]
fn dense_instants_without_dtend_are_few_reported_and_make_nobody_busy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["user", "add", "acme.alice", "--tenant", "acme", "--number", "+49 40 1234500", "--region", "de"]);
    let cards = d.join("bob.vcf");
    std::fs::write(
        &cards,
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bob\r\nFN:Bob Kunde\r\nTEL:040 98765\r\nEMAIL:bob@example.com\r\nEND:VCARD\r\n",
    )
    .unwrap();
    ok(d, &["import", "--user", "acme.alice", cards.to_str().unwrap()]);
    let mut ics = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n");
    for i in 1..=20 {
        ics += &secondly(i, false);
    }
    ics += "END:VCALENDAR\r\n";
    let file = d.join("instants.ics");
    std::fs::write(&file, &ics).unwrap();
    let out = cb(d, &["import", "--user", "acme.alice", file.to_str().unwrap()]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("20 imported"), "{stdout}");
    for i in 1..=20 {
        assert!(
            stderr.contains(&format!("hostile-{i}@example.org: only the 16 occurrences nearest to now")),
            "{stderr}"
        );
    }
    // 16 instants × 20 events: the store stays the size of a weekly file's (was 24 MB at 1,000 each).
    assert!(dir_size(d) < 8 << 20, "data dir {} MiB", dir_size(d) >> 20);

    let json = ok(d, &["lookup", "--called", "+49401234500", "--cli", "+494098765", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["decision"]["status"], "available", "instants make nobody busy: {json}");
    assert!(v["context"]["events"].to_string().contains("Every second"), "kept for context: {json}");
}
