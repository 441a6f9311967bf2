//! Small builders the behaviours share.

use crate::model::{CallId, CallRecord, CallerKind, HandlingCode, HandlingMethod, Status, UserId, UserProfile};
use crate::store::{CollectionScope, IndexBatch, IndexedRecord, SecondaryKey, StoredContact};
use chrono::{DateTime, Utc};
use contactbridge_connector::{Checkpoint, Contact, PhoneKind, Record, RecordId};

/// An hour offset from a fixed time.
pub(crate) fn t(h: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + h * 3600, 0).unwrap()
}

pub(crate) fn user(u: &str) -> UserId {
    UserId::parse(u).unwrap()
}

pub(crate) fn scope(u: &str, col: &str) -> CollectionScope {
    CollectionScope { user: user(u), account: "acc".into(), collection: col.into() }
}

pub(crate) fn contact(id: &str, phone_key: &str) -> IndexedRecord {
    IndexedRecord {
        record: Record::Contact(Contact {
            id: RecordId::new(id),
            display_name: format!("Contact {id}"),
            emails: vec![format!("{id}@example.com")],
            version: Some(format!("etag-{id}")),
            ..Default::default()
        }),
        keys: vec![
            SecondaryKey::Phone { key: phone_key.into(), kind: PhoneKind::Work },
            SecondaryKey::Email(format!("{id}@example.com")),
        ],
        handling_code: None,
        derived_with: None,
    }
}

pub(crate) fn batch(scope: CollectionScope, upserts: Vec<IndexedRecord>, deletions: &[&str], cp: &str) -> IndexBatch {
    IndexBatch {
        scope,
        upserts,
        deletions: deletions.iter().map(|d| RecordId::new(*d)).collect(),
        retained: vec![],
        rejected: vec![],
        checkpoint: Some(Checkpoint::new(cp.as_bytes())),
        snapshot: None,
        at: t(0),
    }
}

/// The ids of contacts found, sorted.
pub(crate) fn names(found: Vec<StoredContact>) -> Vec<String> {
    let mut n: Vec<String> = found.into_iter().map(|c| c.contact.id.0).collect();
    n.sort();
    n
}

pub(crate) fn profile(id: &str) -> UserProfile {
    UserProfile::new(user(id), "acme")
}

pub(crate) fn call(id: &str, u: &str, caller: &str, h: i64) -> CallRecord {
    CallRecord {
        id: CallId(id.into()),
        user: user(u),
        tsps_call_id: None,
        at: t(h),
        called: "+4930111".into(),
        cli: caller.into(),
        caller_kind: CallerKind::Number,
        caller_key: Some(format!("e:{caller}")),
        contact: None,
        contact_name: None,
        handling_code: HandlingCode::well_known(HandlingCode::UNKNOWN),
        status: Status::Available,
        method: HandlingMethod::Notify,
        events: vec![],
    }
}

pub(crate) fn call_ids(calls: Vec<CallRecord>) -> Vec<String> {
    calls.into_iter().map(|c| c.id.0).collect()
}
