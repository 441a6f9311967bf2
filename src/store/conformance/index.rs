//! The index: change sets with their checkpoint, snapshots, lookups.

use super::support::*;
use super::Factory;
use crate::store::{CollectionState, IndexedRecord, SecondaryKey, StoreError, TimeWindow};
use contactbridge_connector::*;

/// A change set and its checkpoint commit together; a change set the backend
/// refuses (a record id with a NUL byte) changes nothing, checkpoint included.
pub fn apply_commits_records_with_their_checkpoint(new: Factory) {
    let s = new();
    let u = user("alice");
    let sc = scope("alice", "ab");
    assert_eq!(s.collection_state(&sc).unwrap(), None);
    let stats = s.apply(&batch(sc.clone(), vec![contact("a", "e:+491"), contact("b", "e:+492")], &[], "1")).unwrap();
    assert_eq!(stats.upserted, 2);
    let state = s.collection_state(&sc).unwrap().unwrap();
    assert_eq!(state.checkpoint, Some(Checkpoint::new("1")));
    assert_eq!(state.last_change, Some(t(0)));
    assert_eq!(names(s.contacts_by_phone(&u, "e:+491").unwrap()), ["a"]);

    let refused = batch(sc.clone(), vec![contact("c", "e:+493"), contact("bad\0id", "e:+494")], &["a"], "2");
    assert!(matches!(s.apply(&refused), Err(StoreError::Invalid(_))));
    assert_eq!(s.collection_state(&sc).unwrap().unwrap().checkpoint, Some(Checkpoint::new("1")), "checkpoint kept");
    assert!(s.contacts_by_phone(&u, "e:+493").unwrap().is_empty(), "no record of the refused batch");
    assert_eq!(names(s.contacts_by_phone(&u, "e:+491").unwrap()), ["a"], "its deletion not applied");
}

/// An upsert replaces the record's secondary keys in the same change set; a
/// deletion removes the record with its keys.
pub fn upserts_replace_secondary_keys_and_deletions_remove_them(new: Factory) {
    let s = new();
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

/// A full listing ends by removing the records of its collection it did not
/// see; records it retained (unchanged) stay.
pub fn a_snapshot_sweeps_what_it_did_not_see_and_keeps_what_it_retained(new: Factory) {
    let s = new();
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

/// A snapshot of one collection leaves the account's other collections alone.
pub fn a_snapshot_only_sweeps_its_own_collection(new: Factory) {
    let s = new();
    s.apply(&batch(scope("alice", "one"), vec![contact("a", "e:1")], &[], "x")).unwrap();
    let mut whole = batch(scope("alice", "two"), vec![contact("b", "e:2")], &[], "y");
    whole.snapshot = Some(Snapshot::WHOLE);
    assert_eq!(s.apply(&whole).unwrap().swept, 0);
    assert_eq!(s.count_records(&user("alice"), "acc").unwrap().get("contact"), Some(&2));
}

/// Items a connector rejected are kept in the collection's state, newest last,
/// at most [`CollectionState::MAX_REJECTED`].
pub fn rejected_items_are_kept_in_the_collection_state_capped(new: Factory) {
    let s = new();
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

/// Every collection of an account is listed with its state; the versions
/// (etags) held are known; a sync error is recorded and the next change set clears it.
pub fn collection_states_versions_and_errors(new: Factory) {
    let s = new();
    let u = user("alice");
    s.apply(&batch(scope("alice", "one"), vec![contact("a", "e:1"), contact("b", "e:2")], &[], "1")).unwrap();
    s.apply(&batch(scope("alice", "two"), vec![contact("c", "e:3")], &[], "2")).unwrap();
    let mut states: Vec<String> = s.collection_states(&u, "acc").unwrap().into_iter().map(|(c, _)| c).collect();
    states.sort();
    assert_eq!(states, ["one", "two"]);
    assert!(s.collection_states(&user("bob"), "acc").unwrap().is_empty());
    let versions = s.known_versions(&scope("alice", "one")).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions.get(&RecordId::new("a")).map(String::as_str), Some("etag-a"));

    s.set_collection_error(&scope("alice", "two"), Some("server said 500".into()), t(5)).unwrap();
    let state = s.collection_state(&scope("alice", "two")).unwrap().unwrap();
    assert_eq!((state.last_error.as_deref(), state.last_error_at), (Some("server said 500"), Some(t(5))));
    assert_eq!(state.checkpoint, Some(Checkpoint::new("2")), "an error keeps the checkpoint");
    s.apply(&batch(scope("alice", "two"), vec![], &[], "3")).unwrap();
    assert_eq!(s.collection_state(&scope("alice", "two")).unwrap().unwrap().last_error, None);
}

/// Contacts are found by phone key, by email, by their ref, and by a scan
/// the caller may stop.
pub fn contacts_are_found_by_phone_email_ref_and_scan(new: Factory) {
    let s = new();
    let u = user("alice");
    let mut vip = contact("v", "e:+497");
    vip.handling_code = Some(crate::model::HandlingCode::well_known(crate::model::HandlingCode::VIP));
    s.apply(&batch(scope("alice", "ab"), vec![contact("a", "e:+491"), contact("b", "e:+492"), vip], &[], "1")).unwrap();
    let found = s.contacts_by_phone(&u, "e:+497").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].handling_code.as_ref().map(|c| c.as_str()), Some("vip"));
    assert_eq!(found[0].at.collection, "ab");
    assert_eq!(names(s.contacts_by_email(&u, "b@example.com").unwrap()), ["b"]);
    let got = s.contact(&u, &found[0].at).unwrap().unwrap();
    assert_eq!(got.contact.display_name, "Contact v");
    let mut missing = found[0].at.clone();
    missing.id = RecordId::new("nobody");
    assert_eq!(s.contact(&u, &missing).unwrap(), None);

    let mut seen = Vec::new();
    s.scan_contacts(&u, &mut |c| {
        seen.push(c.contact.id.0);
        true
    })
    .unwrap();
    seen.sort();
    assert_eq!(seen, ["a", "b", "v"]);
    let mut visited = 0;
    s.scan_contacts(&u, &mut |_| {
        visited += 1;
        false
    })
    .unwrap();
    assert_eq!(visited, 1, "the scan stops when told");
}

/// Occurrences in progress at a time, end exclusive.
pub fn busy_spans_find_occurrences_in_progress(new: Factory) {
    let s = new();
    let event = IndexedRecord {
        record: Record::Event(CalendarEvent {
            id: RecordId::new("ev"),
            subject: "Board meeting".into(),
            ..Default::default()
        }),
        keys: vec![
            SecondaryKey::Occurrence { start: t(10), end: t(12), busy: BusyStatus::Busy },
            SecondaryKey::Occurrence { start: t(34), end: t(36), busy: BusyStatus::Tentative },
            // A week-long leave.
            SecondaryKey::Occurrence { start: t(100), end: t(100 + 7 * 24), busy: BusyStatus::OutOfOffice },
        ],
        handling_code: None,
        derived_with: None,
    };
    s.apply(&batch(scope("alice", "cal"), vec![event], &[], "c")).unwrap();
    let u = user("alice");
    assert!(s.busy_spans(&u, t(9)).unwrap().is_empty());
    let spans = s.busy_spans(&u, t(11)).unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!((spans[0].subject.as_str(), spans[0].busy), ("Board meeting", BusyStatus::Busy));
    assert_eq!((spans[0].start, spans[0].end), (t(10), t(12)));
    assert!(s.busy_spans(&u, t(12)).unwrap().is_empty());
    assert_eq!(s.busy_spans(&u, t(35)).unwrap()[0].busy, BusyStatus::Tentative);
    assert_eq!(s.busy_spans(&u, t(200)).unwrap()[0].busy, BusyStatus::OutOfOffice, "long occurrences too");
    assert!(s.busy_spans(&user("bob"), t(11)).unwrap().is_empty());
}

/// Out-of-office settings are listed per user.
pub fn out_of_office_settings_are_listed(new: Factory) {
    let s = new();
    let oof = IndexedRecord {
        record: Record::OutOfOffice(OutOfOffice {
            id: RecordId::new("settings"),
            enabled: true,
            scheduled: Some(Occurrence { start: t(0), end: t(48) }),
        }),
        keys: vec![SecondaryKey::OutOfOffice],
        handling_code: None,
        derived_with: None,
    };
    s.apply(&batch(scope("alice", "mailbox"), vec![oof], &[], "o")).unwrap();
    let got = s.out_of_office(&user("alice")).unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].enabled);
    assert_eq!(got[0].scheduled, Some(Occurrence { start: t(0), end: t(48) }));
    assert!(s.out_of_office(&user("bob")).unwrap().is_empty());
}

fn mail(id: &str, h: i64) -> IndexedRecord {
    IndexedRecord {
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
        derived_with: None,
    }
}

/// Mail with a correspondent in `[from, to)`, newest first, at most `limit`.
pub fn mail_is_found_in_its_window_newest_first_within_the_limit(new: Factory) {
    let s = new();
    let u = user("alice");
    s.apply(&batch(
        scope("alice", "inbox"),
        vec![mail("m1", 1), mail("m2", 2), mail("m3", 3), mail("m4", 4)],
        &[],
        "d",
    ))
    .unwrap();
    let subjects = |v: Vec<MailMessage>| v.into_iter().map(|m| m.subject).collect::<Vec<_>>();
    assert_eq!(
        subjects(s.mail_with(&u, "bob@example.com", TimeWindow { from: t(2), to: t(4) }, 10).unwrap()),
        ["m3", "m2"]
    );
    assert_eq!(subjects(s.mail_with(&u, "bob@example.com", TimeWindow::all(), 2).unwrap()), ["m4", "m3"]);
    assert!(s.mail_with(&u, "bob@example.com", TimeWindow::all(), 0).unwrap().is_empty());
    assert!(s.mail_with(&u, "bob@example.com", TimeWindow { from: t(4), to: t(2) }, 10).unwrap().is_empty());
    assert!(s.mail_with(&u, "eve@example.com", TimeWindow::all(), 10).unwrap().is_empty());
    assert!(s.mail_with(&user("eve"), "bob@example.com", TimeWindow::all(), 10).unwrap().is_empty());
}

fn event(id: &str, first: i64, last: i64) -> IndexedRecord {
    IndexedRecord {
        record: Record::Event(CalendarEvent {
            id: RecordId::new(id),
            subject: id.into(),
            occurrences: vec![Occurrence { start: t(first), end: t(first + 1) }],
            ..Default::default()
        }),
        keys: vec![SecondaryKey::Attendee { email: "bob@example.com".into(), first: t(first), last: t(last) }],
        handling_code: None,
        derived_with: None,
    }
}

/// Events with an attendee whose occurrences reach into `[from, to)`, latest
/// first, at most `limit`.
pub fn events_are_found_in_their_window_newest_first_within_the_limit(new: Factory) {
    let s = new();
    let u = user("alice");
    s.apply(&batch(scope("alice", "cal"), vec![event("e1", 1, 1), event("e2", 5, 5), event("e3", 20, 20)], &[], "c"))
        .unwrap();
    let subjects = |v: Vec<CalendarEvent>| v.into_iter().map(|e| e.subject).collect::<Vec<_>>();
    let window = TimeWindow { from: t(0), to: t(10) };
    assert_eq!(subjects(s.events_with(&u, "bob@example.com", window, 10).unwrap()), ["e2", "e1"]);
    assert_eq!(subjects(s.events_with(&u, "bob@example.com", window, 1).unwrap()), ["e2"]);
    assert_eq!(
        subjects(s.events_with(&u, "bob@example.com", TimeWindow { from: t(2), to: t(10) }, 10).unwrap()),
        ["e2"]
    );
    assert!(s.events_with(&u, "eve@example.com", window, 10).unwrap().is_empty());
    assert!(s.events_with(&user("eve"), "bob@example.com", window, 10).unwrap().is_empty());
}

fn document(id: &str, h: i64) -> IndexedRecord {
    IndexedRecord {
        record: Record::Document(Document {
            id: RecordId::new(id),
            name: id.into(),
            web_link: None,
            modified: t(h),
            people: vec![Person { email: "bob@example.com".into(), name: None }],
        }),
        keys: vec![SecondaryKey::DocumentPerson { person: "bob@example.com".into(), modified: t(h) }],
        handling_code: None,
        derived_with: None,
    }
}

/// Documents referencing a person modified in `[from, to)`, newest first, at most `limit`.
pub fn documents_are_found_in_their_window_newest_first_within_the_limit(new: Factory) {
    let s = new();
    let u = user("alice");
    s.apply(&batch(scope("alice", "drive"), vec![document("d1", 1), document("d2", 3), document("d3", 30)], &[], "d"))
        .unwrap();
    let names = |v: Vec<Document>| v.into_iter().map(|d| d.name).collect::<Vec<_>>();
    let window = TimeWindow { from: t(0), to: t(10) };
    assert_eq!(names(s.documents_for(&u, "bob@example.com", window, 10).unwrap()), ["d2", "d1"]);
    assert_eq!(names(s.documents_for(&u, "bob@example.com", window, 1).unwrap()), ["d2"]);
    assert_eq!(names(s.documents_for(&u, "bob@example.com", TimeWindow::all(), 10).unwrap()), ["d3", "d2", "d1"]);
    assert!(s.documents_for(&user("eve"), "bob@example.com", window, 10).unwrap().is_empty());
}

/// Removing an account deletes its records, their keys and its collections' states.
pub fn remove_account_deletes_records_keys_and_states(new: Factory) {
    let s = new();
    let u = user("alice");
    s.apply(&batch(scope("alice", "ab"), (0..2500).map(|i| contact(&format!("c{i}"), "e:1")).collect(), &[], "1"))
        .unwrap();
    let mut other = batch(scope("alice", "ab"), vec![contact("keep", "e:1")], &[], "1");
    other.scope.account = "other".into();
    s.apply(&other).unwrap();
    assert_eq!(s.remove_account(&u, "acc").unwrap(), 2500);
    assert_eq!(names(s.contacts_by_phone(&u, "e:1").unwrap()), ["keep"]);
    assert!(s.collection_states(&u, "acc").unwrap().is_empty());
    assert!(s.count_records(&u, "acc").unwrap().values().all(|n| *n == 0));
    assert!(s.known_versions(&scope("alice", "ab")).unwrap().is_empty());
    assert_eq!(s.collection_states(&u, "other").unwrap().len(), 1, "other accounts stay");
}

/// All phone keys of one caller in one call: one list per key in the order
/// asked, each what [`crate::store::IndexStore::contacts_by_phone`] finds for
/// it (a key is not a prefix of a longer one; repeated, empty and hostile
/// keys too); never another user's contacts.
pub fn several_phone_keys_are_probed_at_once(new: Factory) {
    let s = new();
    let u = user("alice");
    s.apply(&batch(
        scope("alice", "ab"),
        vec![contact("a", "e:+491"), contact("b", "e:+492"), contact("c", "e:+4910")],
        &[],
        "1",
    ))
    .unwrap();
    s.apply(&batch(scope("alice", "other"), vec![contact("d", "e:+491")], &[], "1")).unwrap();
    s.apply(&batch(scope("alice2", "ab"), vec![contact("z", "e:+492")], &[], "1")).unwrap();
    let keys = ["e:+492", "e:+491", "e:+499", "e:+49", "e:+491", ""];
    let found = s.contacts_by_phones(&u, &keys).unwrap();
    let found: Vec<Vec<String>> = found.into_iter().map(names).collect();
    assert_eq!(found[..5], [vec!["b"], vec!["a", "d"], vec![], vec![], vec!["a", "d"]]);
    for (k, got) in keys.iter().zip(&found) {
        assert_eq!(got, &names(s.contacts_by_phone(&u, k).unwrap()), "key {k:?}: as probed alone");
    }
    assert!(s.contacts_by_phones(&u, &[]).unwrap().is_empty());
    // A key with the layout's separator is refused, alone or among others, not read past its own range.
    for hostile in ["e:+491\0acc", "\0"] {
        assert!(matches!(s.contacts_by_phone(&u, hostile), Err(StoreError::Invalid(_))), "{hostile:?}");
        assert!(matches!(s.contacts_by_phones(&u, &["e:+491", hostile]), Err(StoreError::Invalid(_))), "{hostile:?}");
    }
    assert!(matches!(s.contacts_by_email(&u, "a@example.com\0"), Err(StoreError::Invalid(_))));
    assert_eq!(
        s.contacts_by_phones(&user("alice2"), &["e:+491", "e:+492"])
            .unwrap()
            .into_iter()
            .map(names)
            .collect::<Vec<_>>(),
        [vec![], vec!["z"]]
    );
    assert_eq!(
        s.contacts_by_phones(&user("bob"), &["e:+492"]).unwrap().into_iter().map(names).collect::<Vec<_>>(),
        [Vec::<String>::new()]
    );
}

/// No index query reaches another user's records, even one whose id starts
/// with the same letters.
pub fn no_index_query_crosses_users(new: Factory) {
    let s = new();
    s.apply(&batch(scope("alice", "ab"), vec![contact("a", "e:+491")], &[], "1")).unwrap();
    s.apply(&batch(scope("alice2", "ab"), vec![contact("z", "e:+491")], &[], "1")).unwrap();
    s.apply(&batch(scope("alice2", "inbox"), vec![mail("m", 1)], &[], "1")).unwrap();
    s.apply(&batch(scope("alice2", "cal"), vec![event("e", 1, 1)], &[], "1")).unwrap();
    s.apply(&batch(scope("alice2", "drive"), vec![document("d", 1)], &[], "1")).unwrap();
    let alice = user("alice");
    assert_eq!(names(s.contacts_by_phone(&alice, "e:+491").unwrap()), ["a"]);
    assert_eq!(names(s.contacts_by_phone(&user("alice2"), "e:+491").unwrap()), ["z"]);
    assert!(s.contacts_by_phone(&user("bob"), "e:+491").unwrap().is_empty());
    assert!(s.contacts_by_email(&alice, "z@example.com").unwrap().is_empty());
    let all = TimeWindow::all();
    assert!(s.mail_with(&alice, "bob@example.com", all, 10).unwrap().is_empty());
    assert!(s.events_with(&alice, "bob@example.com", all, 10).unwrap().is_empty());
    assert!(s.documents_for(&alice, "bob@example.com", all, 10).unwrap().is_empty());
    let mut seen = Vec::new();
    s.scan_contacts(&alice, &mut |c| {
        seen.push(c.contact.id.0);
        true
    })
    .unwrap();
    assert_eq!(seen, ["a"]);
    assert_eq!(s.count_records(&alice, "acc").unwrap().get("contact"), Some(&1));
    assert_eq!(s.remove_account(&alice, "acc").unwrap(), 1);
    assert_eq!(names(s.contacts_by_phone(&user("alice2"), "e:+491").unwrap()), ["z"], "removal is per user");
}
