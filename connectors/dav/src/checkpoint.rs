//! What a DAV checkpoint holds: the sync token and ctag after a completed sync, or
//! a resume position inside an unfinished full listing.

use crate::probe::ProbeStats;
use chrono::NaiveDate;
use contactbridge_connector::{Checkpoint, Error};
use serde::{Deserialize, Serialize};

/// The decoded checkpoint of one collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DavCheckpoint {
    /// RFC 6578 sync token of the last completed sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_token: Option<String>,
    /// Collection tag (getctag, else the collection's etag) of the last completed
    /// sync, for servers without sync-collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctag: Option<String>,
    /// Set while a full listing is under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Resume>,
    /// CalDAV: when every event's recurrences were last expanded (the sync window
    /// moves with time, unchanged events are not fetched again until this is old).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expanded_on: Option<NaiveDate>,
    /// What the two ways to learn "nothing changed" cost on this collection
    /// ([`crate::probe`]); absent in older checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeStats>,
    /// The context URL (RFC 6764) the collection was synced through: the next sync
    /// uses it without looking up `.well-known` again, if it is on the account's origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// A position inside a full listing. Items are processed in href order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// Every href up to and including this one has been committed in this snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_upto: Option<String>,
    /// The sync token taken when the listing began (or was resumed: a resumed listing
    /// lists again); stored when it ends, so that what changed during the listing is
    /// picked up by the next incremental sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_token: Option<String>,
    /// Same for the ctag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ctag: Option<String>,
    /// This listing fetches every item, even those whose etag the index holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refetch: bool,
    /// The `expanded_on` to store when the listing ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expanded_on: Option<NaiveDate>,
    /// While re-expanding (`refetch`): every href up to this one was fetched by an
    /// earlier, cut-off run of this listing; a resumed listing fetches only past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_upto: Option<String>,
}

impl DavCheckpoint {
    pub fn completed(sync_token: Option<String>, ctag: Option<String>) -> Self {
        Self { sync_token, ctag, ..Default::default() }
    }

    pub fn expanded_on(mut self, date: Option<NaiveDate>) -> Self {
        self.expanded_on = date;
        self
    }

    pub fn with_probe(mut self, probe: Option<ProbeStats>) -> Self {
        self.probe = probe;
        self
    }

    pub fn resume(resume: Resume) -> Self {
        Self { snapshot: Some(resume), ..Default::default() }
    }

    pub fn decode(checkpoint: &Checkpoint) -> Result<Self, Error> {
        serde_json::from_slice(checkpoint.as_bytes())
            .map_err(|e| Error::local(format!("unreadable DAV checkpoint (a full resync will fix it): {e}")))
    }

    pub fn encode(&self) -> Checkpoint {
        Checkpoint::new(serde_json::to_vec(self).expect("a DavCheckpoint always serialises"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_stays_small() {
        let done = DavCheckpoint::completed(Some("http://radicale.org/ns/sync/abc".into()), None);
        assert_eq!(DavCheckpoint::decode(&done.encode()).unwrap(), done);
        assert_eq!(done.encode().as_bytes(), br#"{"sync_token":"http://radicale.org/ns/sync/abc"}"#);
        let resume = DavCheckpoint::resume(Resume {
            done_upto: Some("/u/c/7.vcf".into()),
            end_token: None,
            end_ctag: Some("\"c1\"".into()),
            refetch: true,
            expanded_on: NaiveDate::from_ymd_opt(2026, 11, 26),
            fetched_upto: None,
        });
        assert_eq!(DavCheckpoint::decode(&resume.encode()).unwrap(), resume);
        assert!(DavCheckpoint::decode(&Checkpoint::new(b"nope".to_vec())).is_err());
        // Written before the probe figures and the context URL were kept: still loads.
        let old = DavCheckpoint::decode(&Checkpoint::new(br#"{"sync_token":"t","ctag":"c"}"#.to_vec())).unwrap();
        assert_eq!((old.probe, old.via, old.ctag.as_deref()), (None, None, Some("c")));
    }
}
