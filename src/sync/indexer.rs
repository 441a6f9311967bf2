//! Derives the secondary keys under which a record is found.

use crate::phone::{self, Region};
use crate::store::{IndexedRecord, SecondaryKey};
use crate::user::HandlingCode;
use contactbridge_connector::Record;
use std::collections::HashMap;

/// Turns records into [`IndexedRecord`]s for one account of one user.
#[derive(Debug, Clone, Default)]
pub struct Indexer {
    /// The region for numbers written without a country code (account's, else user's).
    pub region: Option<Region>,
    /// Lower-case category → handling code (e.g. "vip" → vip, "blockiert" → blocked).
    pub category_codes: HashMap<String, HandlingCode>,
}

impl Indexer {
    pub fn new(region: Option<Region>, category_codes: HashMap<String, HandlingCode>) -> Self {
        let category_codes = category_codes.into_iter().map(|(k, v)| (k.trim().to_lowercase(), v)).collect();
        Self { region, category_codes }
    }

    pub fn index(&self, record: Record) -> IndexedRecord {
        let mut keys = Vec::new();
        let mut handling_code = None;
        match &record {
            Record::Contact(c) => {
                for p in &c.phones {
                    let hints = phone::StoredHints { extension: p.extension.as_deref(), ..Default::default() };
                    for k in phone::keys_for_stored_with(&p.raw, self.region.as_ref(), hints).keys {
                        keys.push(SecondaryKey::Phone { key: k.as_str().to_string(), kind: p.kind });
                    }
                }
                keys.extend(c.emails.iter().filter_map(|e| clean(e)).map(SecondaryKey::Email));
                handling_code = c.handling_code.as_deref().and_then(|c| HandlingCode::parse(c).ok()).or_else(|| {
                    c.categories.iter().find_map(|cat| self.category_codes.get(&cat.trim().to_lowercase()).cloned())
                });
            }
            Record::Event(e) => {
                let people: Vec<String> =
                    e.attendees.iter().chain(e.organizer.iter()).filter_map(|p| clean(p)).collect();
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
                    people
                        .filter_map(|p| clean(&p.email))
                        .map(|email| SecondaryKey::Correspondent { email, date: m.date }),
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
        IndexedRecord { record, keys, handling_code }
    }
}

/// Lower-cased, trimmed, without NUL; `None` when nothing is left.
pub(crate) fn clean(s: &str) -> Option<String> {
    let s: String =
        s.trim().trim_start_matches("mailto:").chars().filter(|c| *c != '\0').collect::<String>().to_lowercase();
    (!s.is_empty()).then_some(s)
}

impl Indexer {
    /// The indexer for an account of `profile`: the user's region, and the
    /// account's category mapping on top of the default one (a category named
    /// like a handling code the user's table uses, or `vip`/`blocked`, maps to it).
    pub fn for_profile(profile: &crate::user::UserProfile, account_map: &HashMap<String, HandlingCode>) -> Self {
        let mut map: HashMap<String, HandlingCode> = profile
            .handling
            .rules
            .iter()
            .filter_map(|r| match &r.code {
                crate::user::Match::Is(c) => Some((c.as_str().to_string(), c.clone())),
                _ => None,
            })
            .filter(|(c, _)| {
                ![HandlingCode::DEFAULT, HandlingCode::UNKNOWN, HandlingCode::WITHHELD].contains(&c.as_str())
            })
            .collect();
        for c in [HandlingCode::VIP, HandlingCode::BLOCKED] {
            map.entry(c.to_string()).or_insert_with(|| HandlingCode::well_known(c));
        }
        map.extend(account_map.iter().map(|(k, v)| (k.clone(), v.clone())));
        let region = profile.region.as_deref().and_then(|r| Region::parse(r).ok());
        Self::new(region, map)
    }
}
