//! The sled store's own mechanics: no key left behind, damaged files, reopening.
//! What every backend must do is in the conformance suite (`conformance.rs`).

use super::SledStore;
use crate::model::{UserId, UserProfile};
use crate::store::*;
use chrono::{DateTime, Utc};
use contactbridge_connector::*;

fn t(h: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + h * 3600, 0).unwrap()
}

fn user(u: &str) -> UserId {
    UserId::parse(u).unwrap()
}

fn scope(u: &str, col: &str) -> CollectionScope {
    CollectionScope { user: user(u), account: "acc".into(), collection: col.into() }
}

fn contact(id: &str, phone_key: &str) -> IndexedRecord {
    IndexedRecord {
        record: Record::Contact(Contact {
            id: RecordId::new(id),
            display_name: format!("Contact {id}"),
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

fn batch(scope: CollectionScope, upserts: Vec<IndexedRecord>, deletions: &[&str], cp: &str) -> IndexBatch {
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

/// The conformance suite checks what the queries see; here, that no key is left in sled.
#[test]
fn remove_account_leaves_no_key_behind() {
    let s = SledStore::temporary().unwrap();
    let u = user("alice");
    s.apply(&batch(scope("alice", "ab"), (0..2500).map(|i| contact(&format!("c{i}"), "e:1")).collect(), &[], "1"))
        .unwrap();
    assert_eq!(s.remove_account(&u, "acc").unwrap(), 2500);
    assert!(s.index.iter().keys().all(|k| k.unwrap().starts_with(b"~")), "nothing left behind but the format");
}

fn profile(id: &str) -> UserProfile {
    UserProfile::new(user(id), "acme")
}

/// Damage the index's data file the way `damage` says, reopen, and check the
/// index was moved aside and started afresh while user data stayed.
fn damaged_index_is_replaced(damage: impl Fn(&std::path::Path)) {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        s.put_profile(&profile("alice"), &["e:+4930111".into()]).unwrap();
        s.apply(&batch(scope("alice", "ab"), (0..2000).map(|i| contact(&format!("c{i}"), "e:1")).collect(), &[], "1"))
            .unwrap();
        s.flush().unwrap();
    }
    damage(&dir.path().join("index").join("db"));

    let s = SledStore::open(dir.path()).unwrap();
    let aside = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("index.corrupt-"))
        .count();
    assert_eq!(aside, 1, "the damaged index is kept aside for inspection");
    assert!(s.contacts_by_phone(&user("alice"), "e:1").unwrap().is_empty(), "a fresh index");
    assert!(s.collection_state(&scope("alice", "ab")).unwrap().is_none(), "no checkpoint: the next sync is a full one");
    assert_eq!(s.user_by_called_number("e:+4930111").unwrap(), Some(user("alice")), "user data untouched");
    drop(s);
    // The fresh index is accepted on the next open.
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.profiles().unwrap().len(), 1);
    let aside = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("index.corrupt-"));
    assert_eq!(aside.count(), 1, "nothing moved on a healthy open");
}

#[test]
fn a_garbled_index_is_moved_aside_and_user_data_survives() {
    damaged_index_is_replaced(|db| {
        let bytes: Vec<u8> = std::fs::read(db).unwrap().into_iter().map(|b| b ^ 0x5a).collect();
        std::fs::write(db, bytes).unwrap();
    });
}

#[test]
fn an_emptied_index_is_moved_aside_and_user_data_survives() {
    damaged_index_is_replaced(|db| std::fs::write(db, b"").unwrap());
}

#[test]
fn a_healthy_store_reopens_with_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        s.put_profile(&profile("alice"), &["e:+4930111".into()]).unwrap();
        s.apply(&batch(scope("alice", "ab"), vec![contact("a", "e:1")], &[], "1")).unwrap();
    }
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.contacts_by_phone(&user("alice"), "e:1").unwrap().len(), 1);
    assert!(!std::fs::read_dir(dir.path()).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("corrupt")));
}
