//! CLI → ranked contact candidates.

use crate::phone::{CliNumber, Probe};
use crate::store::{IndexStore, RecordRef, StoredContact, UserStore};
use crate::user::UserId;
use serde::Serialize;

pub use crate::phone::MatchQuality;

/// A contact that may be the caller.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    #[serde(skip)]
    pub stored: StoredContact,
    /// How the number matched.
    pub quality: MatchQuality,
    /// The lookup key that matched.
    pub matched_key: String,
    /// The user picked this contact for this number last time.
    pub preferred: bool,
}

impl Candidate {
    pub fn at(&self) -> &RecordRef {
        &self.stored.at
    }
}

/// All contacts that match the CLI, best first: by match quality, then the
/// user's last choice for this number, then name. Only the best tier of
/// quality that matched anything is kept (an exact match makes tail matches noise).
pub fn find<S: IndexStore + UserStore + ?Sized>(
    store: &S,
    user: &UserId,
    number: &CliNumber,
) -> crate::store::Result<Vec<Candidate>> {
    let mut found: Vec<Candidate> = Vec::new();
    let mut best: Option<MatchQuality> = None;
    // All probes in one store call (one round trip on a network backend), then best tier first.
    let probes = number.probes();
    let keys: Vec<&str> = probes.iter().map(|p| p.key.as_str()).collect();
    let results = store.contacts_by_phones(user, &keys)?;
    for (Probe { key, quality }, contacts) in probes.iter().zip(results) {
        let quality = *quality;
        if best.is_some_and(|b| quality > b) {
            break;
        }
        for stored in contacts {
            if found.iter().any(|c| c.stored.at == stored.at) {
                continue;
            }
            best = Some(best.map_or(quality, |b| b.min(quality)));
            found.push(Candidate { stored, quality, matched_key: key.as_str().to_string(), preferred: false });
        }
    }
    if found.len() > 1 {
        if let Some(choice) = store.last_choice(user, number.history_key().as_str())? {
            found.iter_mut().filter(|c| c.stored.at == choice).for_each(|c| c.preferred = true);
        }
    }
    found.sort_by(|a, b| {
        (a.quality, !a.preferred, a.stored.contact.best_name().to_lowercase(), &a.stored.at).cmp(&(
            b.quality,
            !b.preferred,
            b.stored.contact.best_name().to_lowercase(),
            &b.stored.at,
        ))
    });
    Ok(found)
}
