//! Every iCalendar fixture (Google Calendar exports, RFC 5545's example, ical.js
//! edge cases) with the events and occurrences it yields in a fixed window,
//! plus focused tests of zones, recurrence, overrides and busy status.

use chrono::{DateTime, Utc};
use contactbridge_connector::{BusyStatus, CalendarEvent, Occurrence, RecordId};
use contactbridge_formats::{parse_calendar_object, parse_ics_file, Window};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture exists")
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).into()
}

fn window(start: &str, end: &str) -> Window {
    Window { start: t(start), end: t(end) }
}

fn occ(start: &str, end: &str) -> Occurrence {
    Occurrence { start: t(start), end: t(end) }
}

fn events(name: &str, w: Window) -> Vec<CalendarEvent> {
    parse_ics_file(&fixture(name), w).into_iter().map(|r| r.expect("every fixture event parses")).collect()
}

fn one(text: &str, w: Window) -> CalendarEvent {
    parse_calendar_object(RecordId::new("/cal/x.ics"), Some("\"e1\"".into()), text.as_bytes(), w).unwrap()
}

fn cal(body: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{}\r\nEND:VCALENDAR\r\n", body.trim().replace('\n', "\r\n"))
}

#[test]
fn daily_recur_in_los_angeles_across_the_dst_change() {
    let got = events("daily_recur.ics", window("2012-08-01T00:00:00Z", "2012-08-05T00:00:00Z"));
    assert_eq!(got.len(), 1);
    let e = &got[0];
    assert_eq!(e.id, RecordId::new("tgh9qho17b07pk2n2ji3gluans@google.com"));
    assert_eq!(e.uid, "tgh9qho17b07pk2n2ji3gluans@google.com");
    assert_eq!(e.subject, "Every day recurring");
    assert_eq!(e.location, None);
    assert_eq!(e.time_zone.as_deref(), Some("America/Los_Angeles"));
    assert!(!e.all_day);
    assert_eq!(e.busy, BusyStatus::Busy);
    // The VALARM's ATTENDEE is not an attendee of the event.
    assert!(e.attendees.is_empty() && e.organizer.is_none());
    assert_eq!(
        e.occurrences,
        vec![
            occ("2012-08-01T12:00:00Z", "2012-08-01T13:00:00Z"),
            occ("2012-08-02T12:00:00Z", "2012-08-02T13:00:00Z"),
            occ("2012-08-03T12:00:00Z", "2012-08-03T13:00:00Z"),
            occ("2012-08-04T12:00:00Z", "2012-08-04T13:00:00Z"),
        ]
    );
    // 05:00 stays 05:00 local when PDT ends on 4 November 2012.
    let got = events("daily_recur.ics", window("2012-11-03T00:00:00Z", "2012-11-06T00:00:00Z"));
    assert_eq!(
        got[0].occurrences,
        vec![
            occ("2012-11-03T12:00:00Z", "2012-11-03T13:00:00Z"),
            occ("2012-11-04T13:00:00Z", "2012-11-04T14:00:00Z"),
            occ("2012-11-05T13:00:00Z", "2012-11-05T14:00:00Z"),
        ]
    );
}

#[test]
fn day_long_weekday_recurrence_is_all_day_and_free() {
    let got = events("day_long_recur_yearly.ics", window("2012-08-01T00:00:00Z", "2012-08-08T00:00:00Z"));
    assert_eq!(got.len(), 1);
    let e = &got[0];
    assert_eq!(e.uid, "4pfh824gvims850j0gar361t04@google.com");
    assert_eq!(e.subject, "Day Long Event");
    assert!(e.all_day);
    assert_eq!(e.time_zone, None);
    assert_eq!(e.busy, BusyStatus::Free); // TRANSP:TRANSPARENT
                                          // Dates are read in the calendar's X-WR-TIMEZONE (America/Los_Angeles, PDT).
    assert_eq!(
        e.occurrences,
        vec![
            occ("2012-08-03T07:00:00Z", "2012-08-04T07:00:00Z"),
            occ("2012-08-06T07:00:00Z", "2012-08-07T07:00:00Z"),
            occ("2012-08-07T07:00:00Z", "2012-08-08T07:00:00Z"),
        ]
    );
}

#[test]
fn duration_instead_of_dtend() {
    let got = events("duration_instead_of_dtend.ics", window("2012-06-01T00:00:00Z", "2012-07-01T00:00:00Z"));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].uid, "dn4vrfmfn5p05roahsopg57h48@example.com");
    assert_eq!(got[0].subject, "Really long event name thing");
    assert_eq!(got[0].occurrences, vec![occ("2012-06-30T13:00:00Z", "2012-07-01T13:00:00Z")]);
}

#[test]
fn google_birthdays_rdates_and_orphan_overrides() {
    let got = events("google_birthday.ics", window("2012-01-01T00:00:00Z", "2015-01-01T00:00:00Z"));
    assert_eq!(got.len(), 2);
    let days = [
        occ("2012-12-10T08:00:00Z", "2012-12-11T08:00:00Z"),
        occ("2013-12-10T08:00:00Z", "2013-12-11T08:00:00Z"),
        occ("2014-12-10T08:00:00Z", "2014-12-11T08:00:00Z"),
    ];
    // DTSTART 2014 with COUNT=1, plus RDATEs for 2013 and 2012 (written `20131210Z`).
    assert_eq!(got[0].uid, "2014_BIRTHDAY_79d389868f96182e@google.com");
    assert_eq!(got[0].occurrences, days.to_vec());
    // Three RECURRENCE-ID instances without a master.
    assert_eq!(got[1].uid, "BIRTHDAY_79d389868f96182e@google.com");
    assert_eq!(got[1].occurrences, days.to_vec());
    for e in &got {
        assert_eq!(e.subject, "PErson #2's birthday");
        assert!(e.all_day);
        assert_eq!(e.busy, BusyStatus::Busy);
        assert_eq!(e.attendees, vec!["4dhmurjkc5hn8sq0ctp6utbg5pr2sor1dhimsp31e8n6errfctm6abj3dtmg@virtual"]);
    }
    // Only 2013 falls into a 2013 window.
    let got = events("google_birthday.ics", window("2013-01-01T00:00:00Z", "2014-01-01T00:00:00Z"));
    assert_eq!(got[0].occurrences, vec![days[1]]);
    assert_eq!(got[1].occurrences, vec![days[1]]);
}

#[test]
fn minimal_single_event() {
    let got = events("minimal.ics", window("2012-06-01T00:00:00Z", "2012-07-01T00:00:00Z"));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].uid, "dn4vrfmfn5p05roahsopg57h48@google.com");
    assert_eq!(got[0].subject, "Really long event name thing");
    assert_eq!(got[0].occurrences, vec![occ("2012-06-30T13:00:00Z", "2012-06-30T14:00:00Z")]);
    // Outside the window the event is kept, without occurrences.
    let got = events("minimal.ics", window("2013-01-01T00:00:00Z", "2013-02-01T00:00:00Z"));
    assert_eq!(got.len(), 1);
    assert!(got[0].occurrences.is_empty());
}

#[test]
fn only_dtstart_date_lasts_one_day() {
    let got = events("only_dtstart_date.ics", window("2012-06-01T00:00:00Z", "2012-07-01T00:00:00Z"));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].uid, "dn4vrfmfn5p05roahsopg57h48@example.com");
    assert!(got[0].all_day);
    assert_eq!(got[0].occurrences, vec![occ("2012-06-30T07:00:00Z", "2012-07-01T07:00:00Z")]);
}

#[test]
fn rfc_example_all_day_without_calendar_zone_is_utc() {
    let got = events("rfc.ics", window("2008-10-01T00:00:00Z", "2008-11-01T00:00:00Z"));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].uid, "4088E990AD89CB3DBB484909");
    assert_eq!(got[0].subject, "Planning meeting");
    assert!(got[0].all_day);
    assert_eq!(got[0].occurrences, vec![occ("2008-10-06T00:00:00Z", "2008-10-07T00:00:00Z")]);
}

#[test]
fn timezone_defined_only_in_the_file() {
    let got = events("timezone_from_file.ics", window("2023-03-01T00:00:00Z", "2023-04-01T00:00:00Z"));
    assert_eq!(got.len(), 1);
    // No UID: named after its position.
    assert_eq!(got[0].id, RecordId::new("event-1"));
    assert_eq!(got[0].uid, "");
    assert_eq!(got[0].subject, "A test event");
    // Nowhere/Middle is a VTIMEZONE with the single offset -07:41.
    assert_eq!(got[0].time_zone, None);
    assert_eq!(got[0].occurrences, vec![occ("2023-03-06T21:23:00Z", "2023-03-06T22:23:00Z")]);
}

#[test]
fn calendars_without_events() {
    let w = window("2000-01-01T00:00:00Z", "2030-01-01T00:00:00Z");
    for name in ["blank_line_mid.ics", "quoted_params.ics", "unfold_properties.ics"] {
        assert!(parse_ics_file(&fixture(name), w).is_empty(), "{name}");
        let err = parse_calendar_object(RecordId::new(name), None, &fixture(name), w).unwrap_err();
        assert_eq!(err.reason, "the calendar object holds no VEVENT", "{name}");
    }
}

#[test]
fn windows_zone_names_and_unknown_zones() {
    let w = window("2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z");
    let e = one(
        &cal("BEGIN:VEVENT\nUID:w\nDTSTART;TZID=W. Europe Standard Time:20240115T090000\n\
DTEND;TZID=W. Europe Standard Time:20240115T100000\nSUMMARY:Standup\nEND:VEVENT"),
        w,
    );
    assert_eq!(e.id, RecordId::new("/cal/x.ics"));
    assert_eq!(e.version.as_deref(), Some("\"e1\""));
    assert_eq!(e.time_zone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(e.occurrences, vec![occ("2024-01-15T08:00:00Z", "2024-01-15T09:00:00Z")]);
    // Unknown zone, no VTIMEZONE: read as UTC, event kept.
    let e = one(&cal("BEGIN:VEVENT\nUID:u\nDTSTART;TZID=Atlantis:20240115T090000\nDURATION:PT30M\nEND:VEVENT"), w);
    assert_eq!(e.occurrences, vec![occ("2024-01-15T09:00:00Z", "2024-01-15T09:30:00Z")]);
    // Floating time without X-WR-TIMEZONE: UTC.
    let e = one(&cal("BEGIN:VEVENT\nUID:f\nDTSTART:20240115T090000\nEND:VEVENT"), w);
    assert_eq!(e.occurrences, vec![occ("2024-01-15T09:00:00Z", "2024-01-15T09:00:00Z")]);
}

#[test]
fn exdate_rdate_and_overrides() {
    let text = cal("BEGIN:VEVENT
UID:weekly
DTSTART;TZID=Europe/Berlin:20240102T100000
DTEND;TZID=Europe/Berlin:20240102T110000
RRULE:FREQ=WEEKLY;COUNT=6
EXDATE;TZID=Europe/Berlin:20240109T100000
RDATE;TZID=Europe/Berlin:20240104T150000
SUMMARY:Weekly
ORGANIZER;CN=Boss:MAILTO:Boss@Example.COM
ATTENDEE;CN=A:mailto:a@example.com
ATTENDEE;CN=B;EMAIL=b@example.com:urn:uuid:123
END:VEVENT
BEGIN:VEVENT
UID:weekly
RECURRENCE-ID;TZID=Europe/Berlin:20240116T100000
DTSTART;TZID=Europe/Berlin:20240117T140000
DTEND;TZID=Europe/Berlin:20240117T143000
SUMMARY:Weekly (moved)
END:VEVENT
BEGIN:VEVENT
UID:weekly
RECURRENCE-ID:20240123T090000Z
DTSTART;TZID=Europe/Berlin:20240123T100000
STATUS:CANCELLED
END:VEVENT");
    let e = one(&text, window("2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z"));
    assert_eq!(e.subject, "Weekly");
    assert_eq!(e.organizer.as_deref(), Some("boss@example.com"));
    assert_eq!(e.attendees, vec!["a@example.com", "b@example.com"]);
    assert_eq!(
        e.occurrences,
        vec![
            occ("2024-01-02T09:00:00Z", "2024-01-02T10:00:00Z"),
            occ("2024-01-04T14:00:00Z", "2024-01-04T15:00:00Z"), // RDATE
            // 9 Jan: EXDATE
            occ("2024-01-17T13:00:00Z", "2024-01-17T13:30:00Z"), // 16 Jan moved
            // 23 Jan: cancelled
            occ("2024-01-30T09:00:00Z", "2024-01-30T10:00:00Z"),
            occ("2024-02-06T09:00:00Z", "2024-02-06T10:00:00Z"),
        ]
    );
    // An instance moved from before the window into it is found.
    let e = one(&text, window("2024-01-17T00:00:00Z", "2024-01-18T00:00:00Z"));
    assert_eq!(e.occurrences, vec![occ("2024-01-17T13:00:00Z", "2024-01-17T13:30:00Z")]);
}

#[test]
fn cancelled_master_has_no_occurrences() {
    let e = one(
        &cal("BEGIN:VEVENT\nUID:c\nDTSTART:20240115T090000Z\nSTATUS:CANCELLED\nRRULE:FREQ=DAILY\nEND:VEVENT"),
        window("2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"),
    );
    assert!(e.occurrences.is_empty());
}

#[test]
fn busy_status() {
    let w = window("2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z");
    let busy =
        |extra: &str| one(&cal(&format!("BEGIN:VEVENT\nUID:b\nDTSTART:20240115T090000Z\n{extra}\nEND:VEVENT")), w).busy;
    assert_eq!(busy("SUMMARY:x"), BusyStatus::Busy);
    assert_eq!(busy("TRANSP:TRANSPARENT"), BusyStatus::Free);
    assert_eq!(busy("STATUS:TENTATIVE"), BusyStatus::Tentative);
    assert_eq!(busy("X-MICROSOFT-CDO-BUSYSTATUS:OOF"), BusyStatus::OutOfOffice);
    assert_eq!(busy("X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE"), BusyStatus::WorkingElsewhere);
    assert_eq!(busy("X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE"), BusyStatus::Tentative);
    assert_eq!(busy("X-MICROSOFT-CDO-BUSYSTATUS:FREE\nTRANSP:OPAQUE"), BusyStatus::Free);
    assert_eq!(busy("X-MICROSOFT-CDO-BUSYSTATUS:BUSY\nTRANSP:TRANSPARENT"), BusyStatus::Busy);
}

#[test]
fn broken_events_are_reported_and_the_others_still_parse() {
    let text = cal("BEGIN:VEVENT\nUID:good\nDTSTART:20240115T090000Z\nSUMMARY:Good\nEND:VEVENT
BEGIN:VEVENT\nUID:nostart\nSUMMARY:No start\nEND:VEVENT
BEGIN:VEVENT\nUID:cut\nDTSTART:20240115T090000Z
BEGIN:VEVENT\nUID:last\nDTSTART;VALUE=DATE:20240116\nSUMMARY:Last\nEND:VEVENT");
    let got = parse_ics_file(text.as_bytes(), window("2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"));
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].as_ref().unwrap().subject, "Good");
    assert_eq!(got[1].as_ref().unwrap_err().reason, "the event has no readable DTSTART");
    assert_eq!(got[2].as_ref().unwrap_err().reason, "missing END:VEVENT (the event is cut off)");
    assert_eq!(got[3].as_ref().unwrap().occurrences, vec![occ("2024-01-16T00:00:00Z", "2024-01-17T00:00:00Z")]);
    let err = parse_calendar_object(RecordId::new("x"), None, b"nothing", Window::default_at(Utc::now())).unwrap_err();
    assert_eq!(err.reason, "no BEGIN:VCALENDAR found: not an iCalendar object");
}

#[test]
fn bad_rrule_keeps_the_first_instance() {
    let e = one(
        &cal("BEGIN:VEVENT\nUID:r\nDTSTART:20240115T090000Z\nRRULE:FREQ=NEVER\nEND:VEVENT"),
        window("2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"),
    );
    assert_eq!(e.occurrences, vec![occ("2024-01-15T09:00:00Z", "2024-01-15T09:00:00Z")]);
}

/// Outlook 2007-style display-name TZIDs: the VTIMEZONE's offsets find the zone.
#[test]
fn outlook_display_name_zone_is_matched_by_its_offsets() {
    let text = cal("BEGIN:VTIMEZONE
TZID:(UTC+01:00) Amsterdam\\, Berlin\\, Bern\\, Rome\\, Stockholm\\, Vienna
BEGIN:STANDARD
DTSTART:16011028T030000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010325T020000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:o
DTSTART;TZID=\"(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna\":20240710T090000
DTEND;TZID=\"(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna\":20240710T100000
END:VEVENT");
    let e = one(&text, window("2024-07-01T00:00:00Z", "2024-08-01T00:00:00Z"));
    assert_eq!(e.time_zone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(e.occurrences, vec![occ("2024-07-10T07:00:00Z", "2024-07-10T08:00:00Z")]);
}

#[test]
fn todo_only_object_says_what_it_holds() {
    let text = cal("BEGIN:VTODO\nUID:t\nSUMMARY:Buy milk\nEND:VTODO");
    let err =
        parse_calendar_object(RecordId::new("t"), None, text.as_bytes(), Window::default_at(Utc::now())).unwrap_err();
    assert_eq!(err.reason, "the calendar object holds no VEVENT (only VTODO)");
}
