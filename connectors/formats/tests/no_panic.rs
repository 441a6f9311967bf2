//! The parsers never panic: every fixture, truncated at many points and garbled
//! with random edits, goes through every public function.

use chrono::{DateTime, Utc};
use contactbridge_connector::RecordId;
use contactbridge_formats::{
    add_vcard_category, parse_calendar_object, parse_ics_file, parse_vcard, parse_vcard_file, Window,
};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Edits that hit the parsers' decision points.
const SNIPPETS: &[&[u8]] = &[
    b":",
    b";",
    b"=",
    b",",
    b"\"",
    b"\\",
    b"\r\n",
    b"\r\n ",
    b"=\r\n",
    b"\n\t",
    b"\xff\xfe",
    b"\xc3",
    b"=C3=",
    b"BEGIN:VCARD\r\n",
    b"END:VCARD\r\n",
    b"BEGIN:VEVENT\r\n",
    b"END:VEVENT\r\n",
    b"END:VCALENDAR\r\n",
    b"RRULE:FREQ=SECONDLY\r\n",
    b"RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=31\r\n",
    b"RRULE:FREQ=DAILY;UNTIL=19000101\r\n",
    b"RECURRENCE-ID:20120801T050000Z\r\n",
    b"DURATION:P99999999W\r\n",
    b"EXDATE;VALUE=PERIOD:2012/2013\r\n",
    b"DTSTART;TZID=\"x:y\":99991231T235959\r\n",
    b"DTSTART:00000101T000000Z\r\n",
    b"TZOFFSETTO:-2400\r\n",
    b"PHOTO;ENCODING=b:data:,\r\n",
    b"TEL;VALUE=uri:tel:\r\n",
    b"ENCODING=QUOTED-PRINTABLE:",
];

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "vcf" || e == "ics"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert_eq!(out.len(), 19, "all fixtures are exercised");
    out
}

fn exercise(bytes: &[u8], window: Window) {
    let _ = parse_vcard(RecordId::new("x"), None, bytes);
    let _ = parse_vcard_file(bytes);
    let _ = parse_calendar_object(RecordId::new("x"), None, bytes, window);
    let _ = parse_ics_file(bytes, window);
    let _ = add_vcard_category(&String::from_utf8_lossy(bytes), "Blocked");
}

fn window() -> Window {
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339("2012-08-01T00:00:00Z").unwrap().into();
    Window::default_at(at)
}

#[test]
fn truncated_fixtures_do_not_panic() {
    for (name, bytes) in fixtures() {
        let step = (bytes.len() / 150).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            let result = std::panic::catch_unwind(|| exercise(&bytes[..cut], window()));
            assert!(result.is_ok(), "{name} truncated at {cut} panicked");
        }
    }
}

#[test]
fn garbled_fixtures_do_not_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (name, original) in fixtures() {
        for round in 0..120 {
            let mut bytes = original.clone();
            for _ in 0..=rng.below(6) {
                let at = rng.below(bytes.len() + 1);
                match rng.below(4) {
                    0 if !bytes.is_empty() => {
                        let i = at.min(bytes.len() - 1);
                        bytes[i] = rng.next() as u8;
                    }
                    1 if at < bytes.len() => {
                        let end = (at + rng.below(40)).min(bytes.len());
                        bytes.drain(at..end);
                    }
                    _ => {
                        let snippet = SNIPPETS[rng.below(SNIPPETS.len())];
                        bytes.splice(at..at, snippet.iter().copied());
                    }
                }
            }
            let result = std::panic::catch_unwind(|| exercise(&bytes, window()));
            assert!(result.is_ok(), "{name} garbled (round {round}) panicked: {}", String::from_utf8_lossy(&bytes));
        }
    }
}

#[test]
fn arbitrary_bytes_do_not_panic() {
    let mut rng = Rng(42);
    for len in [0usize, 1, 2, 7, 64, 1000] {
        for _ in 0..50 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            exercise(&bytes, window());
        }
    }
}
