//! Record types: what a connector produces and the index stores.
//!
//! Records are plain data with serde derives. New fields must be `#[serde(default)]`
//! so that records written by an older [`FORMAT_VERSION`] still decode.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The serialisation format version of records. Bump it when a change cannot be
/// expressed by a new `#[serde(default)]` field, and teach the index to migrate.
pub const FORMAT_VERSION: u8 = 1;

/// A record's identity inside its collection: an href for DAV, an item id for
/// Graph, a file path and UID for local files. Stable across syncs.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordId(pub String);

impl RecordId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of record, one per variant of [`Record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Contact,
    Event,
    Mail,
    Document,
    OutOfOffice,
}

impl RecordKind {
    pub const ALL: [RecordKind; 5] = [Self::Contact, Self::Event, Self::Mail, Self::Document, Self::OutOfOffice];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contact => "contact",
            Self::Event => "event",
            Self::Mail => "mail",
            Self::Document => "document",
            Self::OutOfOffice => "out_of_office",
        }
    }
}

/// One item of a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    Contact(Contact),
    Event(CalendarEvent),
    Mail(MailMessage),
    Document(Document),
    OutOfOffice(OutOfOffice),
}

impl Record {
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Contact(_) => RecordKind::Contact,
            Record::Event(_) => RecordKind::Event,
            Record::Mail(_) => RecordKind::Mail,
            Record::Document(_) => RecordKind::Document,
            Record::OutOfOffice(_) => RecordKind::OutOfOffice,
        }
    }

    /// The record's identity inside its collection.
    pub fn id(&self) -> &RecordId {
        match self {
            Record::Contact(r) => &r.id,
            Record::Event(r) => &r.id,
            Record::Mail(r) => &r.id,
            Record::Document(r) => &r.id,
            Record::OutOfOffice(r) => &r.id,
        }
    }

    /// The source's version of the record (etag, change key), if it has one.
    pub fn version(&self) -> Option<&str> {
        match self {
            Record::Contact(r) => r.version.as_deref(),
            Record::Event(r) => r.version.as_deref(),
            Record::Mail(_) | Record::Document(_) | Record::OutOfOffice(_) => None,
        }
    }
}

/// The kind of a phone number, as the source labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneKind {
    Work,
    Home,
    Mobile,
    Fax,
    Pager,
    #[default]
    Other,
}

/// A phone number exactly as the source wrote it, with its kind. Lookup keys are
/// derived from `raw` by the bridge (it knows the user's region); connectors do
/// not normalise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber {
    /// As written in the source, e.g. `(030) 12 34 56` or `tel:+49-30-123456;ext=12`.
    pub raw: String,
    pub kind: PhoneKind,
    /// An extension the source gave in a separate field (most keep it in `raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
}

impl PhoneNumber {
    pub fn new(raw: impl Into<String>, kind: PhoneKind) -> Self {
        Self { raw: raw.into(), kind, extension: None }
    }
}

/// Where a contact's photo can be fetched. The index never keeps photo bytes
/// beyond a small inline thumbnail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhotoRef {
    /// A URL the source gave (vCard `PHOTO;VALUE=uri`, a Graph photo endpoint).
    Url(String),
    /// A small inline image (at most a few KiB), with its media type.
    Inline { media_type: String, base64: String },
    /// The source has a photo that was too large to keep; fetch it from the source.
    AtSource { bytes: u64 },
}

/// A person in the user's contact system.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Contact {
    pub id: RecordId,
    /// The source's UID (vCard UID, Graph id); often equal to `id`.
    #[serde(default)]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    #[serde(default)]
    pub phones: Vec<PhoneNumber>,
    /// Email addresses, as written (the index lower-cases them for keys).
    #[serde(default)]
    pub emails: Vec<String>,
    /// Categories / groups (vCard CATEGORIES, Outlook categories).
    #[serde(default)]
    pub categories: Vec<String>,
    /// A handling code the source carries directly (an `X-` property), before the
    /// account's category mapping is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handling_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<PhotoRef>,
}

impl Contact {
    /// The best name to show: display name, else given + family, else company,
    /// else the first email or phone.
    pub fn best_name(&self) -> String {
        if !self.display_name.trim().is_empty() {
            return self.display_name.trim().to_string();
        }
        let parts: Vec<&str> = [self.given_name.as_deref(), self.family_name.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return parts.join(" ");
        }
        if let Some(c) = self.company.as_deref().filter(|c| !c.is_empty()) {
            return c.to_string();
        }
        self.emails.first().cloned().or_else(|| self.phones.first().map(|p| p.raw.clone())).unwrap_or_default()
    }
}

/// Free/busy status of an event, as Graph and iCalendar (TRANSP, X-MICROSOFT-CDO-BUSYSTATUS) express it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusyStatus {
    Free,
    Tentative,
    #[default]
    Busy,
    OutOfOffice,
    WorkingElsewhere,
}

/// One occurrence of an event, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Occurrence {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A calendar event. Recurring events are expanded by the connector into
/// `occurrences` for its sync window; a single event has exactly one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CalendarEvent {
    pub id: RecordId,
    #[serde(default)]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The IANA time zone the event was written in (Windows names mapped), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub all_day: bool,
    #[serde(default)]
    pub busy: BusyStatus,
    /// Organizer email, lower-case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer: Option<String>,
    /// Attendee emails, lower-case.
    #[serde(default)]
    pub attendees: Vec<String>,
    /// Occurrences in UTC, sorted by start. Empty when none falls into the window.
    #[serde(default)]
    pub occurrences: Vec<Occurrence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_link: Option<String>,
}

/// Whether the user sent or received a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailDirection {
    Sent,
    Received,
}

/// A person in a message or document: email address and display name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Person {
    /// Lower-case email address (may be empty where only a name is known).
    #[serde(default)]
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Mail metadata. Never the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailMessage {
    pub id: RecordId,
    pub direction: MailDirection,
    pub from: Person,
    #[serde(default)]
    pub to: Vec<Person>,
    #[serde(default)]
    pub cc: Vec<Person>,
    #[serde(default)]
    pub subject: String,
    pub date: DateTime<Utc>,
    /// A short preview (Graph `bodyPreview`), at most a few hundred characters.
    #[serde(default)]
    pub preview: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_link: Option<String>,
}

/// A document and the people it references (shared with, modified by, mentions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub id: RecordId,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_link: Option<String>,
    pub modified: DateTime<Utc>,
    #[serde(default)]
    pub people: Vec<Person>,
}

/// A mailbox's automatic-replies (out-of-office) setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutOfOffice {
    pub id: RecordId,
    /// Replies are on (always, or scheduled and inside the schedule).
    pub enabled: bool,
    /// For a scheduled setting, the window in which it applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<Occurrence>,
}

impl OutOfOffice {
    /// Whether the setting makes the user out of office at `now`.
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        match &self.scheduled {
            _ if !self.enabled => false,
            Some(window) => window.start <= now && now < window.end,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_name_falls_back_in_order() {
        let mut c = Contact { id: RecordId::new("a"), ..Default::default() };
        c.phones.push(PhoneNumber::new("+49 30 1", PhoneKind::Work));
        assert_eq!(c.best_name(), "+49 30 1");
        c.emails.push("a@b.example".into());
        assert_eq!(c.best_name(), "a@b.example");
        c.company = Some("ACME".into());
        assert_eq!(c.best_name(), "ACME");
        c.family_name = Some("Doe".into());
        assert_eq!(c.best_name(), "Doe");
        c.display_name = " Jane Doe ".into();
        assert_eq!(c.best_name(), "Jane Doe");
    }

    #[test]
    fn records_round_trip_through_json_with_their_kind() {
        let r = Record::Contact(Contact { id: RecordId::new("x"), display_name: "X".into(), ..Default::default() });
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"kind\":\"contact\""), "{json}");
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), r);
    }

    #[test]
    fn out_of_office_schedule() {
        let t = |h: i64| DateTime::<Utc>::from_timestamp(h * 3600, 0).unwrap();
        let mut o = OutOfOffice {
            id: RecordId::new("oof"),
            enabled: true,
            scheduled: Some(Occurrence { start: t(10), end: t(20) }),
        };
        assert!(!o.active_at(t(9)));
        assert!(o.active_at(t(10)));
        assert!(!o.active_at(t(20)));
        o.scheduled = None;
        assert!(o.active_at(t(0)));
        o.enabled = false;
        assert!(!o.active_at(t(0)));
    }
}
