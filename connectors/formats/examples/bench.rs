//! Parsing speed on generated inputs; prints figures, asserts nothing.
//!
//! `cargo run --release -p contactbridge-formats --example bench`

use chrono::{Duration, Utc};
use contactbridge_connector::RecordId;
use contactbridge_formats::{parse_ics_file, parse_vcard, parse_vcard_file, Window};
use std::time::Instant;

fn main() {
    // 10,000 vCard 3.0 cards with three phones, an email and categories.
    let mut vcf = String::new();
    for i in 0..10_000 {
        vcf.push_str(&format!(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:u-{i}\r\nFN:Person {i}\r\nN:{i};Person;;;\r\nORG:Company {i};Sales\r\n\
TEL;TYPE=WORK,VOICE:+49 30 {i:06}\r\nTEL;TYPE=CELL:+49 170 {i:07}\r\nitem1.TEL:+1 555 {i:04}\r\n\
item1.X-ABLabel:_$!<WorkFAX>!$_\r\nEMAIL;TYPE=INTERNET:person{i}@example.com\r\nCATEGORIES:VIP,Customers\r\nEND:VCARD\r\n"
        ));
    }
    let start = Instant::now();
    let cards = parse_vcard_file(vcf.as_bytes());
    let took = start.elapsed();
    assert_eq!(cards.iter().filter(|c| c.is_ok()).count(), 10_000);
    println!(
        "vcf: 10000 cards ({:.1} MB) in {:?} = {:.0} cards/s",
        vcf.len() as f64 / 1e6,
        took,
        10_000.0 / took.as_secs_f64()
    );

    // One card with a 10 MB inline photo.
    let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx";
    let mut big = String::from("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Big\r\nPHOTO;ENCODING=b;TYPE=JPEG:");
    for _ in 0..(10 * 1024 * 1024 / line.len()) {
        big.push_str(line);
        big.push_str("\r\n ");
    }
    big.push_str("QUJD\r\nEND:VCARD\r\n");
    let start = Instant::now();
    let contact = parse_vcard(RecordId::new("big"), None, big.as_bytes()).unwrap();
    println!(
        "vcf: one card with a {:.1} MB photo in {:?} ({:?})",
        big.len() as f64 / 1e6,
        start.elapsed(),
        contact.photo
    );

    // 1,000 weekly events in Windows and IANA zones with an EXDATE and an override,
    // expanded over the default window (30 days back, 90 ahead).
    let now = Utc::now();
    let first = (now - Duration::days(365)).format("%Y%m%d").to_string();
    let mut ics = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n");
    for i in 0..1_000 {
        let zone = if i % 2 == 0 { "W. Europe Standard Time" } else { "America/New_York" };
        ics.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:e-{i}\r\nDTSTART;TZID={zone}:{first}T{h:02}0000\r\nDTEND;TZID={zone}:{first}T{h:02}3000\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR\r\nEXDATE;TZID={zone}:{first}T{h:02}0000\r\nSUMMARY:Meeting {i}\r\n\
ATTENDEE:mailto:a{i}@example.com\r\nEND:VEVENT\r\n",
            h = 8 + i % 10
        ));
    }
    ics.push_str("END:VCALENDAR\r\n");
    let window = Window::default_at(now);
    let start = Instant::now();
    let events = parse_ics_file(ics.as_bytes(), window);
    let took = start.elapsed();
    let occurrences: usize = events.iter().filter_map(|e| e.as_ref().ok()).map(|e| e.occurrences.len()).sum();
    println!(
        "ics: 1000 weekly events (started a year ago), {occurrences} occurrences in the window, in {:?} = {:.0} events/s",
        took,
        1_000.0 / took.as_secs_f64()
    );
}
