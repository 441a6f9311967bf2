//! The sled store's own mechanics: no key left behind, damaged files, reopening.
//! What every backend must do is in the conformance suite (`conformance.rs`).

use super::SledStore;
use crate::store::conformance::support::{batch, contact, profile, scope, user};
use crate::store::*;

/// The conformance suite checks what the queries see; here, that no key is left in sled.
#[test]
fn remove_account_leaves_no_key_behind() {
    let s = SledStore::temporary().unwrap();
    let u = user("alice");
    s.apply(&batch(scope("alice", "ab"), (0..2500).map(|i| contact(&format!("c{i}"), "e:1")).collect(), &[], "1"))
        .unwrap();
    assert_eq!(s.remove_account(&u, "acc").unwrap(), 2500);
    assert!(
        s.index.current().index.iter().keys().all(|k| k.unwrap().starts_with(b"~")),
        "nothing left behind but the format"
    );
}

#[test]
fn backup_and_restore_user_data() {
    let dir = tempfile::tempdir().unwrap();
    let backup = {
        let s = SledStore::open(dir.path()).unwrap();
        s.put_profile(&profile("alice"), &["e:+4930111".into()]).unwrap();
        s.apply(&batch(scope("alice", "ab"), vec![contact("a", "e:1")], &[], "1")).unwrap();
        let backup = s.export_user_data();
        assert!(backup.unreadable.is_empty());
        s.delete_user(&user("alice")).unwrap();
        assert!(s.profile(&user("alice")).unwrap().is_none());
        backup.entries
    };
    let (s, aside) = SledStore::restore_user_data(dir.path(), &Default::default(), &backup).unwrap();
    assert_eq!(s.user_by_called_number("e:+4930111").unwrap(), Some(user("alice")));
    assert!(aside.unwrap().file_name().unwrap().to_string_lossy().starts_with("users.before-restore-"));
    assert_eq!(s.contacts_by_phone(&user("alice"), "e:1").unwrap().len(), 1, "the index is kept");
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

/// sled writes a snapshot only while opening, to `snap.<lsn>.generating`
/// renamed when complete; a full disk leaves it empty, and sled would then
/// read the database as corrupt for good. Opening removes it.
#[test]
fn an_empty_snapshot_left_by_a_full_disk_does_not_make_user_data_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        s.put_profile(&profile("alice"), &["e:+4930111".into()]).unwrap();
        s.flush().unwrap();
    }
    for db in ["users", "index"] {
        std::fs::write(dir.path().join(db).join("snap.FFFFFFFFFFFFFFFF.generating"), b"").unwrap();
    }
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.user_by_called_number("e:+4930111").unwrap(), Some(user("alice")));
    for db in ["users", "index"] {
        let left: Vec<_> = std::fs::read_dir(dir.path().join(db))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".generating"))
            .collect();
        assert!(left.is_empty(), "{db}: {left:?}");
    }
}

/// Damaged user data is named as damage, with what to do, and each cause
/// once; it is not described as data of a newer version.
#[test]
fn error_texts_name_damage_and_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        s.put_profile(&profile("alice"), &["e:+4930111".into()]).unwrap();
        s.flush().unwrap();
    }
    let db = dir.path().join("users").join("db");
    let garbled: Vec<u8> = std::fs::read(&db).unwrap().into_iter().map(|b| b ^ 0x5a).collect();
    std::fs::write(&db, garbled).unwrap();
    let text = match SledStore::open(dir.path()) {
        Err(e) => format!("{:#}", anyhow::Error::from(e)),
        Ok(s) => panic!("garbled user data opened with {} profiles", s.profiles().map(|p| p.len()).unwrap_or(0)),
    };
    assert!(text.starts_with("user data is damaged: "), "{text}");
    assert!(text.contains("restore a backup with `contactbridge restore <backup file>`"), "{text}");
    assert!(!text.contains("newer version") && !text.contains("backtrace"), "{text}");

    // An I/O failure: the index's place is taken by a file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index"), b"not a directory").unwrap();
    let e = SledStore::open(dir.path()).err().expect("the index cannot be opened");
    let text = format!("{:#}", anyhow::Error::from(e));
    assert_eq!(text.matches("os error").count(), 1, "{text}");
    assert!(!text.contains("IO error"), "{text}");
    assert!(text.starts_with("storage backend failed while opening the database: "), "{text}");
}

/// `restore` does not pull user data from under a running bridge.
#[test]
fn restore_refuses_user_data_another_process_has_open() {
    let dir = tempfile::tempdir().unwrap();
    let running = SledStore::open(dir.path()).unwrap();
    let refused = SledStore::restore_user_data(dir.path(), &Default::default(), &[]).err();
    assert!(matches!(refused, Some(StoreError::Locked { .. })), "{refused:?}");
    assert!(dir.path().join("users").exists(), "nothing moved");
    drop(running);
}
