//! The secondary keys of a record: a pure function of the record and the
//! region its numbers are read in. It lives below the store so that the store
//! can derive a stored record's keys again (to remove them when the record is
//! replaced or deleted) instead of keeping a copy of them in the record's entry.
//! [`crate::sync::indexer`] uses the same function to make them.

use crate::phone::{self, Region};
use crate::store::SecondaryKey;
use contactbridge_connector::Record;

/// The keys under which `record` is found, numbers read in `region`.
pub fn secondary_keys(record: &Record, region: Option<&Region>) -> Vec<SecondaryKey> {
    let mut keys = Vec::new();
    match record {
        Record::Contact(c) => {
            for p in &c.phones {
                let hints = phone::StoredHints { extension: p.extension.as_deref(), ..Default::default() };
                for k in phone::keys_for_stored_with(&p.raw, region, hints).keys {
                    keys.push(SecondaryKey::Phone { key: k.as_str().to_string(), kind: p.kind });
                }
            }
            keys.extend(c.emails.iter().filter_map(|e| clean(e)).map(SecondaryKey::Email));
        }
        Record::Event(e) => {
            let people: Vec<String> = e.attendees.iter().chain(e.organizer.iter()).filter_map(|p| clean(p)).collect();
            for o in &e.occurrences {
                keys.push(SecondaryKey::Occurrence { start: o.start, end: o.end, busy: e.busy });
            }
            let first = e.occurrences.iter().map(|o| o.start).min();
            let last = e.occurrences.iter().map(|o| o.start).max();
            if let (Some(first), Some(last)) = (first, last) {
                keys.extend(people.into_iter().map(|email| SecondaryKey::Attendee { email, first, last }));
            }
        }
        Record::Mail(m) => {
            let people = std::iter::once(&m.from).chain(&m.to).chain(&m.cc);
            keys.extend(
                people.filter_map(|p| clean(&p.email)).map(|email| SecondaryKey::Correspondent { email, date: m.date }),
            );
        }
        Record::Document(d) => {
            for p in &d.people {
                let ids = [clean(&p.email), p.name.as_deref().and_then(clean)];
                keys.extend(
                    ids.into_iter()
                        .flatten()
                        .map(|person| SecondaryKey::DocumentPerson { person, modified: d.modified }),
                );
            }
        }
        Record::OutOfOffice(_) => keys.push(SecondaryKey::OutOfOffice),
    }
    keys
}

/// Lower-cased, trimmed, without NUL; `None` when nothing is left.
pub(crate) fn clean(s: &str) -> Option<String> {
    let s: String =
        s.trim().trim_start_matches("mailto:").chars().filter(|c| *c != '\0').collect::<String>().to_lowercase();
    (!s.is_empty()).then_some(s)
}
