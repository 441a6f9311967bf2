//! vCard and iCalendar → contactbridge records.
//!
//! Real address books and calendars are messy: vCard 2.1 bare parameters,
//! quoted-printable with soft line breaks, Latin-1 bytes, Apple `item1.` groups,
//! Windows time-zone names. Every input goes through the same steps:
//!
//! 1. [`prepass`]: bytes → logical lines (charset fallback, unfolding, QP soft
//!    breaks, bare parameters rewritten, huge inline photos replaced by their size);
//! 2. [`content`]: `ical`'s property parser, then a component tree of our own, so
//!    that a broken item is reported alone and the others still parse;
//! 3. [`vcard`] / [`ical`]: components → [`Contact`] / [`CalendarEvent`], with
//!    recurrences expanded inside a [`Window`].
//!
//! The public signatures below are what the DAV and files connectors build against.

mod content;
mod ical;
mod prepass;
pub mod timezone;
mod values;
mod vcard;
mod write;

use chrono::{DateTime, Duration, Utc};
use contactbridge_connector::{CalendarEvent, Contact, RecordId};

pub use ical::{ReadEvent, MAX_OCCURRENCES_PER_DENSE_EVENT, MAX_OCCURRENCES_PER_EVENT, MAX_OCCURRENCES_PER_FILE};
pub use vcard::MAX_INLINE_PHOTO;

/// Why an item could not be read, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    pub reason: String,
}

impl ParseError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

/// The time window in which recurring events are expanded into occurrences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// `back_days` before `now` to `ahead_days` after it.
    pub fn around(now: DateTime<Utc>, back_days: i64, ahead_days: i64) -> Self {
        Self { start: now - Duration::days(back_days), end: now + Duration::days(ahead_days) }
    }
    /// The default sync window: 30 days back, 90 ahead.
    pub fn default_at(now: DateTime<Utc>) -> Self {
        Self::around(now, 30, 90)
    }
}

/// Parses exactly one vCard (a CardDAV resource). `id` and `version` (the etag)
/// are copied into the contact.
pub fn parse_vcard(id: RecordId, version: Option<String>, text: &[u8]) -> Result<Contact, ParseError> {
    let cards = vcard::cards(text);
    if cards.len() > 1 {
        tracing::debug!(%id, cards = cards.len(), "resource holds several vCards; using the first");
    }
    let card = cards.first().ok_or_else(|| ParseError::new("no BEGIN:VCARD found: not a vCard"))?;
    let mut contact = vcard::to_contact(card, Some(id), "")?;
    contact.version = version;
    Ok(contact)
}

/// Parses a .vcf file holding any number of cards. Each card's id is its UID
/// (or `card-<n>` when it has none). A bad card yields an `Err` in its place;
/// the others still parse.
pub fn parse_vcard_file(text: &[u8]) -> Vec<Result<Contact, ParseError>> {
    let cards = vcard::cards(text);
    if cards.is_empty() && text.iter().any(|b| !b.is_ascii_whitespace()) {
        return vec![Err(ParseError::new("no BEGIN:VCARD found: not a vCard file"))];
    }
    cards.iter().enumerate().map(|(n, card)| vcard::to_contact(card, None, &format!("card-{}", n + 1))).collect()
}

/// Parses one calendar object resource (a CalDAV resource: one UID, with its
/// overrides) into one event whose occurrences inside `window` are expanded.
pub fn parse_calendar_object(
    id: RecordId,
    version: Option<String>,
    text: &[u8],
    window: Window,
) -> Result<CalendarEvent, ParseError> {
    read_calendar_object(id, version, text, window).map(|r| r.event)
}

/// Parses a .ics file with any number of events, grouped by UID (id = UID).
pub fn parse_ics_file(text: &[u8], window: Window) -> Vec<Result<CalendarEvent, ParseError>> {
    read_ics_file(text, window).into_iter().map(|r| r.map(|r| r.event)).collect()
}

/// [`parse_calendar_object`], with a note when occurrences were left out: at
/// most [`MAX_OCCURRENCES_PER_EVENT`] are kept (of a rule denser than daily,
/// [`MAX_OCCURRENCES_PER_DENSE_EVENT`]), those nearest to now. The
/// expansion starts at the window, however long ago the series began.
pub fn read_calendar_object(
    id: RecordId,
    version: Option<String>,
    text: &[u8],
    window: Window,
) -> Result<ReadEvent, ParseError> {
    ical::parse_object(id, version, text, window)
}

/// [`parse_ics_file`], with a note per event when occurrences were left out.
/// Once the file gave [`MAX_OCCURRENCES_PER_FILE`] occurrences, the events
/// after are skipped (an `Err` each); those before are kept.
pub fn read_ics_file(text: &[u8], window: Window) -> Vec<Result<ReadEvent, ParseError>> {
    ical::parse_file(text, window)
}

/// Returns the vCard `text` with `category` added to its CATEGORIES (created if
/// absent), everything else byte-for-byte as it was. Used for write-back.
pub fn add_vcard_category(text: &str, category: &str) -> Result<String, ParseError> {
    write::add_category(text, category)
}

/// Returns the vCard `text` without `category` (case-insensitive) in its CATEGORIES; a CATEGORIES
/// line left empty is dropped, every other byte is kept as it was. Used for write-back.
pub fn remove_vcard_category(text: &str, category: &str) -> Result<String, ParseError> {
    write::remove_category(text, category)
}
