//! Checkpoints of the files connector: a stable hash of the file's content
//! (FNV-1a, 64 bit), plus for calendars the day the window starts.

use contactbridge_connector::Checkpoint;
use contactbridge_formats::Window;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct State {
    /// FNV-1a 64 of the file, hex.
    content: String,
    /// For calendars: occurrences are expanded for a window that moves with
    /// time, so an unchanged file is read again once a day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window_day: Option<String>,
}

/// FNV-1a, 64 bit: tiny and stable across Rust versions (unlike `DefaultHasher`).
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The checkpoint for a file's content (and a calendar's window).
pub(crate) fn of(bytes: &[u8], window: Option<Window>) -> Checkpoint {
    let state = State {
        content: format!("{:016x}", fnv1a64(bytes)),
        window_day: window.map(|w| w.start.date_naive().to_string()),
    };
    Checkpoint::new(serde_json::to_vec(&state).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn checkpoints_differ_by_content_and_window_day() {
        let now = chrono::Utc::now();
        assert_eq!(of(b"x", None), of(b"x", None));
        assert_ne!(of(b"x", None), of(b"y", None));
        assert_ne!(
            of(b"x", Some(Window::default_at(now))),
            of(b"x", Some(Window::default_at(now + chrono::Duration::days(1))))
        );
        assert_eq!(std::str::from_utf8(of(b"", None).as_bytes()).unwrap(), r#"{"content":"cbf29ce484222325"}"#);
    }
}
