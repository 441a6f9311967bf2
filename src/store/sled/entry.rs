//! The value of a record entry: a small fixed header the hot paths read
//! without decoding the body, then the body.
//!
//! `[format version = 2][generation: u64 BE][record kind][record, handling code][key source]`
//!
//! The record and its handling code are postcard in the storage form of
//! [`crate::store::compact`] (without the id: the entry's key holds it). The
//! key source says how to find the record's secondary keys again when it is
//! replaced or removed: derived by [`crate::store::derive::secondary_keys`]
//! with the region it names (the indexer's keys; nothing else stored), or a
//! list of the keys (keys given by hand, as tests and tools do).

use crate::model::HandlingCode;
use crate::store::compact::StoredRecord;
use crate::store::{codec, StoreError};
use contactbridge_connector::{Record, RecordId, RecordKind};
use serde::{Deserialize, Serialize};

const HEADER: usize = 1 + 8 + 1;

/// What reads need of an entry.
#[derive(Debug)]
pub(in crate::store) struct Read {
    pub record: Record,
    pub code: Option<HandlingCode>,
}

#[derive(Serialize, Deserialize)]
struct Head {
    record: StoredRecord,
    code: Option<String>,
}

/// How the secondary keys of an entry are found again.
#[derive(Debug, Serialize, Deserialize)]
pub(in crate::store) enum KeySource {
    /// `derive::secondary_keys(record, region)`, the region by its code.
    Derived(Option<String>),
    /// The keys, as written.
    Given(Vec<Vec<u8>>),
}

pub(in crate::store) fn encode(
    generation: u64,
    record: &Record,
    code: Option<&HandlingCode>,
    keys: &KeySource,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(codec::VERSION);
    out.extend_from_slice(&generation.to_be_bytes());
    out.push(kind_byte(record.kind()));
    let head = Head { record: StoredRecord::from(record), code: code.map(|c| c.as_str().to_string()) };
    let out = postcard::to_extend(&head, out).expect("serialising plain data to memory cannot fail");
    postcard::to_extend(keys, out).expect("serialising plain data to memory cannot fail")
}

fn head(bytes: &[u8]) -> Result<(Head, &[u8]), StoreError> {
    check(bytes)?;
    postcard::take_from_bytes::<Head>(&bytes[HEADER..]).map_err(|e| corrupt(&format!("record: {e}")))
}

/// The record (with the id its key holds) and its handling code.
pub(in crate::store) fn read(bytes: &[u8], id: &RecordId) -> Result<Read, StoreError> {
    let (head, _) = head(bytes)?;
    let code = match head.code {
        Some(c) => Some(HandlingCode::parse(&c).map_err(|e| corrupt(&format!("handling code: {e}")))?),
        None => None,
    };
    Ok(Read { record: head.record.into_record(id.clone()).map_err(|e| corrupt(&e))?, code })
}

/// The source's version (etag) of the record.
pub(in crate::store) fn version(bytes: &[u8]) -> Result<Option<String>, StoreError> {
    Ok(head(bytes)?.0.record.version().map(str::to_string))
}

/// The record and how to find its secondary keys.
pub(in crate::store) fn keys(bytes: &[u8], id: &RecordId) -> Result<(Record, KeySource), StoreError> {
    let (head, rest) = head(bytes)?;
    let source = postcard::from_bytes(rest).map_err(|e| corrupt(&format!("key source: {e}")))?;
    Ok((head.record.into_record(id.clone()).map_err(|e| corrupt(&e))?, source))
}

/// The same entry with another generation (for records a snapshot retained).
pub(in crate::store) fn with_generation(bytes: &[u8], generation: u64) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[1..9].copy_from_slice(&generation.to_be_bytes());
    out
}

pub(in crate::store) fn generation(bytes: &[u8]) -> Result<u64, StoreError> {
    check(bytes)?;
    Ok(u64::from_be_bytes(bytes[1..9].try_into().expect("header length checked")))
}

pub(in crate::store) fn kind(bytes: &[u8]) -> Result<RecordKind, StoreError> {
    check(bytes)?;
    RecordKind::ALL.into_iter().find(|k| kind_byte(*k) == bytes[9]).ok_or_else(|| corrupt("unknown record kind"))
}

fn check(bytes: &[u8]) -> Result<(), StoreError> {
    match bytes.first() {
        None => Err(corrupt("empty value")),
        Some(&codec::VERSION) if bytes.len() < HEADER => Err(corrupt("entry shorter than its header")),
        Some(&codec::VERSION) => Ok(()),
        Some(&codec::JSON) => Err(corrupt("format version 1 (JSON) of an older build; the index is rebuilt on open")),
        Some(&v) => Err(corrupt(&codec::version_error(v))),
    }
}

fn kind_byte(kind: RecordKind) -> u8 {
    match kind {
        RecordKind::Contact => b'c',
        RecordKind::Event => b'e',
        RecordKind::Mail => b'm',
        RecordKind::Document => b'd',
        RecordKind::OutOfOffice => b'o',
    }
}

fn corrupt(reason: &str) -> StoreError {
    StoreError::Corrupt { what: "record entry", reason: reason.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contactbridge_connector::*;

    fn records() -> Vec<Record> {
        let t = |s| chrono::DateTime::from_timestamp(s, 123).unwrap();
        vec![
            Record::Contact(Contact {
                id: RecordId::new("c1"),
                uid: "c1".into(),
                version: Some("e1".into()),
                display_name: "Ada".into(),
                family_name: Some("Lovelace".into()),
                phones: vec![PhoneNumber { raw: "030 1".into(), kind: PhoneKind::Mobile, extension: Some("7".into()) }],
                emails: vec!["a@x".into()],
                categories: vec!["vip".into()],
                handling_code: Some("vip".into()),
                photo: Some(PhotoRef::Inline { media_type: "image/png".into(), base64: "AA==".into() }),
                ..Default::default()
            }),
            Record::Contact(Contact { id: RecordId::new("c2"), uid: "other".into(), ..Default::default() }),
            Record::Event(CalendarEvent {
                id: RecordId::new("e"),
                uid: "u".into(),
                subject: "s".into(),
                busy: BusyStatus::Tentative,
                attendees: vec!["b@x".into()],
                organizer: Some("o@x".into()),
                occurrences: vec![Occurrence { start: t(-5), end: t(1_700_000_000) }],
                all_day: true,
                ..Default::default()
            }),
            Record::Mail(MailMessage {
                id: RecordId::new("m"),
                direction: MailDirection::Sent,
                from: Person { email: "a@x".into(), name: Some("A".into()) },
                to: vec![Person { email: "b@x".into(), name: None }],
                cc: vec![],
                subject: "hi".into(),
                date: t(1_700_000_000),
                preview: "p".into(),
                web_link: Some("https://x".into()),
            }),
            Record::Document(Document {
                id: RecordId::new("d"),
                name: "n".into(),
                web_link: None,
                modified: t(0),
                people: vec![Person::default()],
            }),
            Record::OutOfOffice(OutOfOffice {
                id: RecordId::new("o"),
                enabled: true,
                scheduled: Some(Occurrence { start: t(1), end: t(2) }),
            }),
        ]
    }

    #[test]
    fn every_record_kind_round_trips_without_its_id_in_the_body() {
        for r in records() {
            let code = HandlingCode::parse("vip").unwrap();
            for keys in [KeySource::Derived(Some("DE".into())), KeySource::Given(vec![b"p\0k".to_vec()])] {
                let v = encode(7, &r, Some(&code), &keys);
                assert_eq!((generation(&v).unwrap(), kind(&v).unwrap()), (7, r.kind()));
                let read = read(&v, r.id()).unwrap();
                assert_eq!((&read.record, read.code.as_ref()), (&r, Some(&code)));
                let (again, source) = super::keys(&v, r.id()).unwrap();
                assert_eq!(again, r);
                assert_eq!(format!("{source:?}"), format!("{keys:?}"));
                assert_eq!(version(&v).unwrap().as_deref(), r.version());
            }
        }
    }

    #[test]
    fn damaged_entries_are_corrupt_never_a_panic() {
        let id = RecordId::new("c1");
        let good = encode(1, &records()[0], None, &KeySource::Derived(None));
        // The key source (`Derived(None)`: 2 bytes) is read only to remove the record's keys.
        let head = good.len() - 2;
        for n in 0..good.len() {
            let cut = &good[..n];
            match (read(cut, &id), keys(cut, &id)) {
                (Err(StoreError::Corrupt { what: "record entry", .. }), Err(StoreError::Corrupt { .. })) => {}
                (Ok(_), Err(StoreError::Corrupt { what: "record entry", .. })) if n >= head => {}
                other => panic!("cut at {n}: {other:?}"),
            }
        }
        let mut rng = 0x9e3779b97f4a7c15u64;
        for _ in 0..5000 {
            let mut bytes = good.clone();
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let i = 1 + (rng as usize) % (bytes.len() - 1);
            bytes[i] = (rng >> 40) as u8;
            let _ = (read(&bytes, &id), keys(&bytes, &id), kind(&bytes));
        }
        let reason = |bytes: &[u8]| match read(bytes, &id) {
            Err(StoreError::Corrupt { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason(&[codec::VERSION + 1; 20]).contains("newer"));
        assert!(!reason(&[0; 20]).contains("newer"));
        // A version-1 (JSON) entry: the index is rebuilt on open, so none is left to read.
        assert!(!reason(&[codec::JSON; 20]).contains("newer"));
    }
}
