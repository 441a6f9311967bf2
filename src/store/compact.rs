//! The compact form of index records (format version 2): positional
//! [postcard](https://docs.rs/postcard) through storage structs of this module.
//!
//! Why postcard, and why storage structs: postcard has a written, stable wire
//! format (1.0 since 2022: varint integers, length-prefixed strings, no field
//! names), is maintained, and is the smallest and fastest of the serde formats
//! for this data. It is not self-describing, so it breaks with
//! `skip_serializing_if`, `flatten`, internally tagged enums and
//! `deserialize_any`, all of which the connector's record types use (`Record`
//! is tagged by `kind`; optional fields are skipped in JSON). The records are
//! therefore copied into the plain structs below, which use none of those. The
//! conversions destructure every record type exhaustively, so a field added to
//! a record type fails to compile here until it is stored (then bump
//! [`super::codec::VERSION`]: the index is rebuilt from the sources on open).
//!
//! What is not stored, because it is stored elsewhere: the record id (it is the
//! last part of the entry's key) and a UID equal to that id. Times are seconds
//! and nanoseconds since the epoch, not RFC 3339 text (6 bytes instead of 22+).

use chrono::{DateTime, Utc};
use contactbridge_connector::{
    BusyStatus, CalendarEvent, Contact, Document, MailDirection, MailMessage, Occurrence, OutOfOffice, Person,
    PhoneKind, PhoneNumber, PhotoRef, Record, RecordId,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Time(i64, u32);

impl From<DateTime<Utc>> for Time {
    fn from(t: DateTime<Utc>) -> Self {
        Time(t.timestamp(), t.timestamp_subsec_nanos())
    }
}

impl TryFrom<Time> for DateTime<Utc> {
    type Error = String;
    fn try_from(t: Time) -> Result<Self, String> {
        DateTime::from_timestamp(t.0, t.1).ok_or_else(|| format!("time {}.{:09} out of range", t.0, t.1))
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Occ(Time, Time);

impl From<&Occurrence> for Occ {
    fn from(o: &Occurrence) -> Self {
        Occ(o.start.into(), o.end.into())
    }
}

impl TryFrom<Occ> for Occurrence {
    type Error = String;
    fn try_from(o: Occ) -> Result<Self, String> {
        Ok(Occurrence { start: o.0.try_into()?, end: o.1.try_into()? })
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Pn {
    email: String,
    name: Option<String>,
}

impl From<&Person> for Pn {
    fn from(p: &Person) -> Self {
        let Person { email, name } = p;
        Pn { email: email.clone(), name: name.clone() }
    }
}

impl From<Pn> for Person {
    fn from(p: Pn) -> Self {
        Person { email: p.email, name: p.name }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Phone {
    raw: String,
    kind: PhoneKind,
    extension: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub(crate) enum Photo {
    Url(String),
    Inline(String, String),
    AtSource(u64),
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Ct {
    /// `None` when the UID equals the record id.
    uid: Option<String>,
    version: Option<String>,
    display_name: String,
    given_name: Option<String>,
    family_name: Option<String>,
    company: Option<String>,
    job_title: Option<String>,
    phones: Vec<Phone>,
    emails: Vec<String>,
    categories: Vec<String>,
    handling_code: Option<String>,
    photo: Option<Photo>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Ev {
    uid: Option<String>,
    version: Option<String>,
    subject: String,
    location: Option<String>,
    time_zone: Option<String>,
    all_day: bool,
    busy: BusyStatus,
    organizer: Option<String>,
    attendees: Vec<String>,
    occurrences: Vec<Occ>,
    web_link: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Ml {
    direction: MailDirection,
    from: Pn,
    to: Vec<Pn>,
    cc: Vec<Pn>,
    subject: String,
    date: Time,
    preview: String,
    web_link: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Dc {
    name: String,
    web_link: Option<String>,
    modified: Time,
    people: Vec<Pn>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Oof {
    enabled: bool,
    scheduled: Option<Occ>,
}

/// A record without its id, in storage form.
#[derive(Serialize, Deserialize)]
pub(crate) enum StoredRecord {
    Contact(Ct),
    Event(Ev),
    Mail(Ml),
    Document(Dc),
    OutOfOffice(Oof),
}

fn uid_unless_id(uid: &str, id: &RecordId) -> Option<String> {
    (uid != id.as_str()).then(|| uid.to_string())
}

fn uid_or_id(uid: Option<String>, id: &RecordId) -> String {
    uid.unwrap_or_else(|| id.0.clone())
}

fn people(p: &[Person]) -> Vec<Pn> {
    p.iter().map(Pn::from).collect()
}

fn persons(p: Vec<Pn>) -> Vec<Person> {
    p.into_iter().map(Person::from).collect()
}

impl From<&Record> for StoredRecord {
    fn from(r: &Record) -> Self {
        match r {
            Record::Contact(c) => {
                let Contact {
                    id,
                    uid,
                    version,
                    display_name,
                    given_name,
                    family_name,
                    company,
                    job_title,
                    phones,
                    emails,
                    categories,
                    handling_code,
                    photo,
                } = c;
                StoredRecord::Contact(Ct {
                    uid: uid_unless_id(uid, id),
                    version: version.clone(),
                    display_name: display_name.clone(),
                    given_name: given_name.clone(),
                    family_name: family_name.clone(),
                    company: company.clone(),
                    job_title: job_title.clone(),
                    phones: phones
                        .iter()
                        .map(|p| {
                            let PhoneNumber { raw, kind, extension } = p;
                            Phone { raw: raw.clone(), kind: *kind, extension: extension.clone() }
                        })
                        .collect(),
                    emails: emails.clone(),
                    categories: categories.clone(),
                    handling_code: handling_code.clone(),
                    photo: photo.as_ref().map(|p| match p {
                        PhotoRef::Url(u) => Photo::Url(u.clone()),
                        PhotoRef::Inline { media_type, base64 } => Photo::Inline(media_type.clone(), base64.clone()),
                        PhotoRef::AtSource { bytes } => Photo::AtSource(*bytes),
                    }),
                })
            }
            Record::Event(e) => {
                let CalendarEvent {
                    id,
                    uid,
                    version,
                    subject,
                    location,
                    time_zone,
                    all_day,
                    busy,
                    organizer,
                    attendees,
                    occurrences,
                    web_link,
                } = e;
                StoredRecord::Event(Ev {
                    uid: uid_unless_id(uid, id),
                    version: version.clone(),
                    subject: subject.clone(),
                    location: location.clone(),
                    time_zone: time_zone.clone(),
                    all_day: *all_day,
                    busy: *busy,
                    organizer: organizer.clone(),
                    attendees: attendees.clone(),
                    occurrences: occurrences.iter().map(Occ::from).collect(),
                    web_link: web_link.clone(),
                })
            }
            Record::Mail(m) => {
                let MailMessage { id: _, direction, from, to, cc, subject, date, preview, web_link } = m;
                StoredRecord::Mail(Ml {
                    direction: *direction,
                    from: from.into(),
                    to: people(to),
                    cc: people(cc),
                    subject: subject.clone(),
                    date: (*date).into(),
                    preview: preview.clone(),
                    web_link: web_link.clone(),
                })
            }
            Record::Document(d) => {
                let Document { id: _, name, web_link, modified, people: p } = d;
                StoredRecord::Document(Dc {
                    name: name.clone(),
                    web_link: web_link.clone(),
                    modified: (*modified).into(),
                    people: people(p),
                })
            }
            Record::OutOfOffice(o) => {
                let OutOfOffice { id: _, enabled, scheduled } = o;
                StoredRecord::OutOfOffice(Oof { enabled: *enabled, scheduled: scheduled.as_ref().map(Occ::from) })
            }
        }
    }
}

impl StoredRecord {
    /// The record again, with the id its key holds.
    pub(crate) fn into_record(self, id: RecordId) -> Result<Record, String> {
        Ok(match self {
            StoredRecord::Contact(c) => Record::Contact(Contact {
                uid: uid_or_id(c.uid, &id),
                id,
                version: c.version,
                display_name: c.display_name,
                given_name: c.given_name,
                family_name: c.family_name,
                company: c.company,
                job_title: c.job_title,
                phones: c
                    .phones
                    .into_iter()
                    .map(|p| PhoneNumber { raw: p.raw, kind: p.kind, extension: p.extension })
                    .collect(),
                emails: c.emails,
                categories: c.categories,
                handling_code: c.handling_code,
                photo: c.photo.map(|p| match p {
                    Photo::Url(u) => PhotoRef::Url(u),
                    Photo::Inline(media_type, base64) => PhotoRef::Inline { media_type, base64 },
                    Photo::AtSource(bytes) => PhotoRef::AtSource { bytes },
                }),
            }),
            StoredRecord::Event(e) => Record::Event(CalendarEvent {
                uid: uid_or_id(e.uid, &id),
                id,
                version: e.version,
                subject: e.subject,
                location: e.location,
                time_zone: e.time_zone,
                all_day: e.all_day,
                busy: e.busy,
                organizer: e.organizer,
                attendees: e.attendees,
                occurrences: e.occurrences.into_iter().map(Occurrence::try_from).collect::<Result<_, _>>()?,
                web_link: e.web_link,
            }),
            StoredRecord::Mail(m) => Record::Mail(MailMessage {
                id,
                direction: m.direction,
                from: m.from.into(),
                to: persons(m.to),
                cc: persons(m.cc),
                subject: m.subject,
                date: m.date.try_into()?,
                preview: m.preview,
                web_link: m.web_link,
            }),
            StoredRecord::Document(d) => Record::Document(Document {
                id,
                name: d.name,
                web_link: d.web_link,
                modified: d.modified.try_into()?,
                people: persons(d.people),
            }),
            StoredRecord::OutOfOffice(o) => Record::OutOfOffice(OutOfOffice {
                id,
                enabled: o.enabled,
                scheduled: o.scheduled.map(Occurrence::try_from).transpose()?,
            }),
        })
    }

    /// The source's version (etag) without building the record.
    pub(crate) fn version(&self) -> Option<&str> {
        match self {
            StoredRecord::Contact(c) => c.version.as_deref(),
            StoredRecord::Event(e) => e.version.as_deref(),
            _ => None,
        }
    }
}
