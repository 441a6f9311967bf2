//! The sled store's invariants: atomic batches with checkpoints, snapshot
//! sweeps, secondary keys following their records, user isolation.

use super::SledStore;
use crate::calls::{CallId, CallRecord, CallerKind};
use crate::resolve::Status;
use crate::store::*;
use crate::user::{HandlingCode, HandlingMethod, UserId, UserProfile};
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

fn names(found: Vec<StoredContact>) -> Vec<String> {
    let mut n: Vec<String> = found.into_iter().map(|c| c.contact.id.0).collect();
    n.sort();
    n
}

#[test]
fn upsert_replaces_secondary_keys_and_delete_removes_them() {
    let s = SledStore::temporary().unwrap();
    let u = user("alice");
    s.apply(&batch(scope("alice", "ab"), vec![contact("a", "e:+491"), contact("b", "e:+491")], &[], "1")).unwrap();
    assert_eq!(names(s.contacts_by_phone(&u, "e:+491").unwrap()), ["a", "b"]);

    // "a" changes its number: the old key must go in the same batch.
    s.apply(&batch(scope("alice", "ab"), vec![contact("a", "e:+492")], &[], "2")).unwrap();
    assert_eq!(names(s.contacts_by_phone(&u, "e:+491").unwrap()), ["b"]);
    assert_eq!(names(s.contacts_by_phone(&u, "e:+492").unwrap()), ["a"]);

    let stats = s.apply(&batch(scope("alice", "ab"), vec![], &["b", "never-existed"], "3")).unwrap();
    assert_eq!(stats.deleted, 1);
    assert!(s.contacts_by_phone(&u, "e:+491").unwrap().is_empty());
    assert!(s.contacts_by_email(&u, "b@example.com").unwrap().is_empty());
    assert_eq!(s.collection_state(&scope("alice", "ab")).unwrap().unwrap().checkpoint, Some(Checkpoint::new("3")));
}

#[test]
fn users_never_see_each_others_records() {
    let s = SledStore::temporary().unwrap();
    s.apply(&batch(scope("alice", "ab"), vec![contact("a", "e:+491")], &[], "1")).unwrap();
    s.apply(&batch(scope("alice2", "ab"), vec![contact("z", "e:+491")], &[], "1")).unwrap();
    assert_eq!(names(s.contacts_by_phone(&user("alice"), "e:+491").unwrap()), ["a"]);
    assert_eq!(names(s.contacts_by_phone(&user("alice2"), "e:+491").unwrap()), ["z"]);
    assert!(s.contacts_by_phone(&user("bob"), "e:+491").unwrap().is_empty());
    assert!(s.contacts_by_email(&user("alice"), "z@example.com").unwrap().is_empty());
}

#[test]
fn a_snapshot_sweeps_what_it_did_not_see_and_keeps_what_it_retained() {
    let s = SledStore::temporary().unwrap();
    let u = user("alice");
    let sc = scope("alice", "ab");
    s.apply(&batch(sc.clone(), vec![contact("a", "e:1"), contact("b", "e:2"), contact("c", "e:3")], &[], "t1"))
        .unwrap();

    // A full resync in two parts: "a" changed, "b" unchanged (retained), "c" gone.
    let mut first = batch(sc.clone(), vec![contact("a", "e:1")], &[], "resume-1");
    first.snapshot = Some(Snapshot::FIRST);
    s.apply(&first).unwrap();
    assert_eq!(s.collection_state(&sc).unwrap().unwrap().open_snapshot, Some(1));
    let mut last = batch(sc.clone(), vec![], &[], "t2");
    last.retained = vec![RecordId::new("b")];
    last.snapshot = Some(Snapshot::LAST);
    let stats = s.apply(&last).unwrap();
    assert_eq!(stats.swept, 1);
    assert_eq!(names(s.contacts_by_phone(&u, "e:1").unwrap()), ["a"]);
    assert_eq!(names(s.contacts_by_phone(&u, "e:2").unwrap()), ["b"]);
    assert!(s.contacts_by_phone(&u, "e:3").unwrap().is_empty(), "swept with its keys");
    let state = s.collection_state(&sc).unwrap().unwrap();
    assert_eq!((state.open_snapshot, state.generation), (None, 1));

    // A second snapshot in one batch that sees only "b".
    let mut whole = batch(sc.clone(), vec![contact("b", "e:2")], &[], "t3");
    whole.snapshot = Some(Snapshot::WHOLE);
    assert_eq!(s.apply(&whole).unwrap().swept, 1);
    assert_eq!(s.count_records(&u, "acc").unwrap().get("contact"), Some(&1));
}

#[test]
fn a_snapshot_only_sweeps_its_own_collection() {
    let s = SledStore::temporary().unwrap();
    s.apply(&batch(scope("alice", "one"), vec![contact("a", "e:1")], &[], "x")).unwrap();
    let mut whole = batch(scope("alice", "two"), vec![contact("b", "e:2")], &[], "y");
    whole.snapshot = Some(Snapshot::WHOLE);
    assert_eq!(s.apply(&whole).unwrap().swept, 0);
    assert_eq!(s.count_records(&user("alice"), "acc").unwrap().get("contact"), Some(&2));
}

#[test]
fn rejected_items_are_kept_in_the_collection_state_capped() {
    let s = SledStore::temporary().unwrap();
    let sc = scope("alice", "ab");
    let mut b = batch(sc.clone(), vec![contact("a", "e:1")], &[], "1");
    b.rejected =
        (0..150).map(|i| Rejected { id: RecordId::new(format!("bad-{i}")), reason: "no END:VCARD".into() }).collect();
    s.apply(&b).unwrap();
    let state = s.collection_state(&sc).unwrap().unwrap();
    assert_eq!(state.rejected.len(), CollectionState::MAX_REJECTED);
    assert_eq!(state.rejected.last().unwrap().id.as_str(), "bad-149");
    assert_eq!(names(s.contacts_by_phone(&user("alice"), "e:1").unwrap()), ["a"]);
}

#[test]
fn time_indexed_lookups_respect_window_order_and_limit() {
    let s = SledStore::temporary().unwrap();
    let u = user("alice");
    let mail = |id: &str, h: i64| IndexedRecord {
        record: Record::Mail(MailMessage {
            id: RecordId::new(id),
            direction: MailDirection::Received,
            from: Person { email: "bob@example.com".into(), name: None },
            to: vec![],
            cc: vec![],
            subject: id.into(),
            date: t(h),
            preview: String::new(),
            web_link: None,
        }),
        keys: vec![SecondaryKey::Correspondent { email: "bob@example.com".into(), date: t(h) }],
        handling_code: None,
    };
    s.apply(&batch(
        scope("alice", "inbox"),
        vec![mail("m1", 1), mail("m2", 2), mail("m3", 3), mail("m4", 4)],
        &[],
        "d",
    ))
    .unwrap();
    let got = s.mail_with(&u, "bob@example.com", TimeWindow { from: t(2), to: t(4) }, 10).unwrap();
    assert_eq!(got.iter().map(|m| m.subject.as_str()).collect::<Vec<_>>(), ["m3", "m2"]);
    let got = s.mail_with(&u, "bob@example.com", TimeWindow::all(), 2).unwrap();
    assert_eq!(got.iter().map(|m| m.subject.as_str()).collect::<Vec<_>>(), ["m4", "m3"]);
    assert!(s.mail_with(&user("eve"), "bob@example.com", TimeWindow::all(), 10).unwrap().is_empty());
}

#[test]
fn busy_spans_find_occurrences_in_progress() {
    let s = SledStore::temporary().unwrap();
    let event = IndexedRecord {
        record: Record::Event(CalendarEvent {
            id: RecordId::new("ev"),
            subject: "Board meeting".into(),
            ..Default::default()
        }),
        keys: vec![
            SecondaryKey::Occurrence { start: t(10), end: t(12), busy: BusyStatus::Busy },
            SecondaryKey::Occurrence { start: t(34), end: t(36), busy: BusyStatus::Busy },
        ],
        handling_code: None,
    };
    s.apply(&batch(scope("alice", "cal"), vec![event], &[], "c")).unwrap();
    let u = user("alice");
    assert!(s.busy_spans(&u, t(9)).unwrap().is_empty());
    let spans = s.busy_spans(&u, t(11)).unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].subject, "Board meeting");
    assert!(s.busy_spans(&u, t(12)).unwrap().is_empty());
    assert_eq!(s.busy_spans(&u, t(35)).unwrap().len(), 1);
}

#[test]
fn remove_account_deletes_records_keys_and_states() {
    let s = SledStore::temporary().unwrap();
    let u = user("alice");
    s.apply(&batch(scope("alice", "ab"), (0..2500).map(|i| contact(&format!("c{i}"), "e:1")).collect(), &[], "1"))
        .unwrap();
    assert_eq!(s.remove_account(&u, "acc").unwrap(), 2500);
    assert!(s.contacts_by_phone(&u, "e:1").unwrap().is_empty());
    assert!(s.collection_states(&u, "acc").unwrap().is_empty());
    assert!(s.index.current().index.is_empty(), "nothing left behind");
}

fn profile(id: &str) -> UserProfile {
    UserProfile::new(user(id), "acme")
}

#[test]
fn called_numbers_belong_to_one_user() {
    let s = SledStore::temporary().unwrap();
    s.put_profile(&profile("alice"), &["e:+4930111".into()]).unwrap();
    let err = s.put_profile(&profile("bob"), &["e:+4930111".into()]).unwrap_err();
    assert!(err.to_string().contains("already belongs to user alice"), "{err}");
    assert_eq!(s.user_by_called_number("e:+4930111").unwrap(), Some(user("alice")));
    // Changing alice's numbers releases the old one.
    s.put_profile(&profile("alice"), &["e:+4930222".into()]).unwrap();
    assert_eq!(s.user_by_called_number("e:+4930111").unwrap(), None);
    s.put_profile(&profile("bob"), &["e:+4930111".into()]).unwrap();
    assert!(s.delete_user(&user("bob")).unwrap());
    assert_eq!(s.user_by_called_number("e:+4930111").unwrap(), None);
    assert_eq!(s.profiles().unwrap().len(), 1);
}

#[test]
fn calls_by_user_and_by_caller() {
    let s = SledStore::temporary().unwrap();
    let call = |id: &str, u: &str, caller: &str, h: i64| CallRecord {
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
    };
    s.put_call(&call("c1", "alice", "+491", 1)).unwrap();
    s.put_call(&call("c2", "alice", "+492", 2)).unwrap();
    s.put_call(&call("c3", "alice", "+491", 3)).unwrap();
    s.put_call(&call("c4", "bob", "+491", 4)).unwrap();
    let ids = |v: Vec<CallRecord>| v.into_iter().map(|c| c.id.0).collect::<Vec<_>>();
    assert_eq!(ids(s.calls(&user("alice"), TimeWindow::all(), 10).unwrap()), ["c3", "c2", "c1"]);
    assert_eq!(ids(s.calls_from(&user("alice"), "e:+491", TimeWindow::all(), 10).unwrap()), ["c3", "c1"]);
    assert_eq!(ids(s.calls_from(&user("bob"), "e:+491", TimeWindow::all(), 10).unwrap()), ["c4"]);
    let mut c1 = s.call(&CallId("c1".into())).unwrap().unwrap();
    c1.events.push(crate::calls::CallEvent { at: t(1), kind: crate::calls::CallEventKind::Answered, by: None });
    s.put_call(&c1).unwrap();
    assert_eq!(s.call(&CallId("c1".into())).unwrap().unwrap().events.len(), 1);
    assert_eq!(s.calls(&user("alice"), TimeWindow::all(), 10).unwrap().len(), 3, "update does not duplicate");
}

#[test]
fn assignments_and_last_choices_are_per_user() {
    let s = SledStore::temporary().unwrap();
    let vip = HandlingCode::well_known(HandlingCode::VIP);
    let target = AssignTarget::Number("e:+491".into());
    s.assign(&user("alice"), &target, Some(&vip)).unwrap();
    assert_eq!(s.assignment(&user("alice"), &target).unwrap(), Some(vip));
    assert_eq!(s.assignment(&user("bob"), &target).unwrap(), None);
    s.assign(&user("alice"), &target, None).unwrap();
    assert_eq!(s.assignment(&user("alice"), &target).unwrap(), None);
    let r = RecordRef { account: "acc".into(), collection: "ab".into(), id: RecordId::new("x/y.vcf") };
    s.set_last_choice(&user("alice"), "e:+491", &r).unwrap();
    assert_eq!(s.last_choice(&user("alice"), "e:+491").unwrap(), Some(r));
    assert_eq!(s.last_choice(&user("bob"), "e:+491").unwrap(), None);
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
