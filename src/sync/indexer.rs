//! Derives the secondary keys under which a record is found.

use crate::phone::Region;
pub(crate) use crate::store::derive::clean;
use crate::store::{derive, IndexedRecord, KeyDerivation};
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
        let keys = derive::secondary_keys(&record, self.region.as_ref());
        let handling_code = match &record {
            Record::Contact(c) => c.handling_code.as_deref().and_then(|c| HandlingCode::parse(c).ok()).or_else(|| {
                c.categories.iter().find_map(|cat| self.category_codes.get(&cat.trim().to_lowercase()).cloned())
            }),
            _ => None,
        };
        let derived_with = Some(KeyDerivation { region: self.region });
        IndexedRecord { record, keys, handling_code, derived_with }
    }
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
