//! iCalendar parsing with recurrence expansion, bounded the way the product
//! bounds it: a window of one year either side of a fixed "now" (the sync window
//! is smaller), and the library's own cap on instances. An input that is still
//! slow under those bounds shows up as a libFuzzer timeout (`-timeout=`), which
//! fails the run like a crash does.
#![no_main]

use chrono::{TimeZone, Utc};
use contactbridge_connector::RecordId;
use contactbridge_formats::{parse_calendar_object, parse_ics_file, Window};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
    let window = Window::around(now, 365, 365);
    for event in parse_ics_file(data, window).into_iter().flatten() {
        for o in &event.occurrences {
            assert!(o.start < window.end, "occurrence {o:?} starts after the window {window:?}");
        }
    }
    let _ = parse_calendar_object(RecordId::new("fuzz"), None, data, window);
});
