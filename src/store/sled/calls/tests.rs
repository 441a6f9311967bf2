//! The journal on its own: replay, a torn tail, damage, compaction (and a
//! crash in it), a failing disk, and the move from the users tree.

use super::*;
use crate::model::Status;
use crate::model::{CallEvent, CallEventKind, CallerKind};
use crate::model::{HandlingCode, HandlingMethod, UserId};
use crate::store::sled::SledStore;
use crate::store::CallStore;
use chrono::DateTime;

fn call(id: &str, user: &str, caller: Option<&str>, secs: i64) -> CallRecord {
    CallRecord {
        id: CallId(id.into()),
        user: UserId::parse(user).unwrap(),
        tsps_call_id: None,
        at: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap(),
        called: "+4930111".into(),
        cli: caller.unwrap_or("anonymous").into(),
        caller_kind: if caller.is_some() { CallerKind::Number } else { CallerKind::Anonymous },
        caller_key: caller.map(|c| format!("e:{c}")),
        contact: None,
        contact_name: None,
        handling_code: HandlingCode::well_known(HandlingCode::UNKNOWN),
        status: Status::Available,
        method: HandlingMethod::Notify,
        events: vec![],
    }
}

fn answered(mut c: CallRecord) -> CallRecord {
    c.events.push(CallEvent { at: c.at, kind: CallEventKind::Answered, by: None });
    c
}

fn open(dir: &Path) -> CallJournal {
    CallJournal::open(dir, Duration::from_millis(50)).unwrap()
}

fn ids(calls: Vec<CallRecord>) -> Vec<String> {
    calls.into_iter().map(|c| c.id.0).collect()
}

fn all_of(j: &CallJournal, user: &str) -> Vec<String> {
    ids(j.of_user(user, TimeWindow::all(), 1000))
}

fn journal_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(JOURNAL)).unwrap().len()
}

#[test]
fn a_reopened_journal_has_every_newest_version() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = open(dir.path());
        j.put(&call("a1", "alice", Some("+491"), 1)).unwrap();
        j.put(&call("a2", "alice", Some("+492"), 2)).unwrap();
        j.put(&call("b1", "bob", Some("+491"), 3)).unwrap();
        j.put(&call("c1", "carol", None, 4)).unwrap();
        j.put(&answered(call("a1", "alice", Some("+491"), 1))).unwrap();
        assert_eq!(j.delete_user("carol").unwrap(), 1);
        assert_eq!(j.delete_user("nobody").unwrap(), 0);
        // Seen at once, before any sync.
        assert_eq!(j.get(&CallId("a1".into())).unwrap().unwrap().events.len(), 1);
    }
    let j = open(dir.path());
    assert_eq!(all_of(&j, "alice"), ["a2", "a1"]);
    assert_eq!(j.get(&CallId("a1".into())).unwrap().unwrap().events.len(), 1, "the newest version");
    assert_eq!(ids(j.of_caller("alice", "e:+491", TimeWindow::all(), 10)), ["a1"]);
    assert!(all_of(&j, "carol").is_empty(), "a deleted user's calls stay deleted");
    assert_eq!(j.stats().0, 3);
}

#[test]
fn calls_of_other_users_are_not_reachable_through_the_index() {
    let j = CallJournal::temporary().unwrap();
    j.put(&call("a1", "alice", Some("+491"), 1)).unwrap();
    j.put(&call("b1", "bob", Some("+491"), 2)).unwrap();
    j.put(&call("b2", "alice2", Some("+491"), 3)).unwrap();
    assert_eq!(all_of(&j, "alice"), ["a1"]);
    assert_eq!(ids(j.of_caller("alice", "e:+491", TimeWindow::all(), 10)), ["a1"]);
    assert_eq!(ids(j.of_caller("bob", "e:+491", TimeWindow::all(), 10)), ["b1"]);
    assert!(all_of(&j, "ali").is_empty(), "a prefix of a user is no user");
    assert!(j.of_caller("alice", "e:+49", TimeWindow::all(), 10).is_empty());
    let window = |from: i64, to: i64| TimeWindow {
        from: DateTime::from_timestamp(1_700_000_000 + from, 0).unwrap(),
        to: DateTime::from_timestamp(1_700_000_000 + to, 0).unwrap(),
    };
    assert_eq!(ids(j.of_user("alice", window(1, 2), 10)), ["a1"]);
    assert!(j.of_user("alice", window(2, 9), 10).is_empty());
    let dir = j.inner().dir.clone();
    drop(j);
    assert!(!dir.exists(), "a temporary journal's directory goes with it");
}

#[test]
fn a_torn_last_entry_is_cut_off_and_the_journal_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let whole = {
        let j = open(dir.path());
        j.put(&call("a1", "alice", Some("+491"), 1)).unwrap();
        j.put(&call("a2", "alice", Some("+491"), 2)).unwrap();
        journal_len(dir.path())
    };
    // A crash during the third write: half of its frame reached the file.
    let torn = frame::call(&call("a3", "alice", Some("+491"), 3)).unwrap();
    let mut bytes = std::fs::read(dir.path().join(JOURNAL)).unwrap();
    bytes.extend_from_slice(&torn[..torn.len() / 2]);
    std::fs::write(dir.path().join(JOURNAL), &bytes).unwrap();

    let j = open(dir.path());
    assert_eq!(all_of(&j, "alice"), ["a2", "a1"]);
    assert_eq!(journal_len(dir.path()), whole, "cut back to the last whole entry");
    j.put(&call("a4", "alice", Some("+491"), 4)).unwrap();
    drop(j);
    assert_eq!(all_of(&open(dir.path()), "alice"), ["a4", "a2", "a1"]);

    // Zeros after the end (a machine crash on a file system that extends first): also a torn tail.
    let mut bytes = std::fs::read(dir.path().join(JOURNAL)).unwrap();
    let whole = bytes.len() as u64;
    bytes.extend_from_slice(&[0; 4096]);
    std::fs::write(dir.path().join(JOURNAL), &bytes).unwrap();
    assert_eq!(all_of(&open(dir.path()), "alice"), ["a4", "a2", "a1"]);
    assert_eq!(journal_len(dir.path()), whole);

    // A crash while the very first entry (with the header) was written.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::write(fresh.path().join(JOURNAL), &frame::HEADER[..5]).unwrap();
    let j = open(fresh.path());
    j.put(&call("f1", "fred", None, 1)).unwrap();
    drop(j);
    assert_eq!(all_of(&open(fresh.path()), "fred"), ["f1"]);
}

#[test]
fn a_damaged_entry_in_the_middle_is_skipped_kept_aside_and_the_rest_read() {
    let dir = tempfile::tempdir().unwrap();
    let second = {
        let j = open(dir.path());
        j.put(&call("a1", "alice", Some("+491"), 1)).unwrap();
        j.put(&call("a2", "alice", Some("+491"), 2)).unwrap();
        let second = j.inner().state.read().unwrap().index.get("a2").unwrap();
        j.put(&call("a3", "alice", Some("+491"), 3)).unwrap();
        second
    };
    let mut bytes = std::fs::read(dir.path().join(JOURNAL)).unwrap();
    bytes[(second.offset + 30) as usize] ^= 0xff;
    std::fs::write(dir.path().join(JOURNAL), &bytes).unwrap();

    let j = open(dir.path());
    assert_eq!(all_of(&j, "alice"), ["a3", "a1"], "the entries around the damage are read");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].starts_with(&format!("damaged-at-{}-", second.offset)), "{aside:?}");
    assert_eq!(std::fs::read(dir.path().join(&aside[0])).unwrap().len(), second.len as usize);
    assert_eq!(journal_len(dir.path()), bytes.len() as u64, "damage in the middle is not cut off");
    drop(j);
    let j = open(dir.path());
    assert_eq!(all_of(&j, "alice"), ["a3", "a1"]);
    let again = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("damaged-"));
    assert_eq!(again.count(), 1, "the same damage is kept once");

    // A file that is not a journal is refused, and left alone.
    std::fs::write(dir.path().join(JOURNAL), b"something else entirely").unwrap();
    drop(j);
    let refused = CallJournal::open(dir.path(), Duration::from_millis(50)).err().unwrap();
    assert!(refused.to_string().contains("does not start with a call journal's header"), "{refused}");
    assert_eq!(std::fs::read(dir.path().join(JOURNAL)).unwrap(), b"something else entirely");
}

#[test]
fn compaction_keeps_the_newest_versions_and_what_was_written_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let j = CallJournal::open(dir.path(), Duration::from_secs(3600)).unwrap();
    for round in 0..20 {
        for n in 0..10 {
            let mut c = call(&format!("a{n}"), "alice", Some("+491"), n);
            c.contact_name = Some(format!("round {round}"));
            j.put(&c).unwrap();
        }
    }
    j.put(&call("b1", "bob", Some("+491"), 1)).unwrap();
    j.put(&call("c1", "carol", Some("+491"), 1)).unwrap();
    let before = journal_len(dir.path());

    let rewritten = j.inner().write_compacted().unwrap();
    // While the copy was made: a new call, an update of a copied one, a user deleted.
    j.put(&call("a10", "alice", Some("+491"), 10)).unwrap();
    let mut a0 = call("a0", "alice", Some("+491"), 0);
    a0.contact_name = Some("during".into());
    j.put(&a0).unwrap();
    j.delete_user("carol").unwrap();
    j.inner().install_compacted(rewritten).unwrap();

    let check = |j: &CallJournal, alice: usize| {
        assert_eq!(all_of(j, "alice").len(), alice);
        assert_eq!(j.get(&CallId("a0".into())).unwrap().unwrap().contact_name.as_deref(), Some("during"));
        assert_eq!(j.get(&CallId("a5".into())).unwrap().unwrap().contact_name.as_deref(), Some("round 19"));
        assert_eq!(all_of(j, "bob"), ["b1"]);
        assert!(all_of(j, "carol").is_empty());
    };
    check(&j, 11);
    let after = journal_len(dir.path());
    assert!(after * 5 < before, "superseded versions are gone: {before} → {after} bytes");
    assert!(!dir.path().join(REWRITE).exists());
    j.put(&call("a11", "alice", Some("+491"), 11)).unwrap();
    drop(j);
    let j = open(dir.path());
    check(&j, 12);
    assert_eq!(all_of(&j, "alice")[0], "a11", "appends after the compaction went to the new file");
}

#[test]
fn compaction_waits_until_superseded_entries_outgrow_the_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    // The sync thread would compact on its own: not during this test.
    let j = CallJournal::open(dir.path(), Duration::from_secs(3600)).unwrap();
    let mut c = call("a1", "alice", Some("+491"), 1);
    c.contact_name = Some("x".repeat(2000));
    for _ in 0..100 {
        j.put(&c).unwrap();
    }
    assert!(!j.inner().compact_if_worth_it().unwrap(), "under {COMPACT_MIN_DEAD} superseded bytes");
    for _ in 0..(COMPACT_MIN_DEAD / 2000) {
        j.put(&c).unwrap();
    }
    assert!(j.inner().compact_if_worth_it().unwrap());
    let (calls, live, end) = j.stats();
    assert_eq!((calls, end), (1, live + frame::HEADER.len() as u64));
    assert!(!j.inner().compact_if_worth_it().unwrap());
}

#[test]
fn a_crash_during_compaction_leaves_the_old_journal_whole() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = open(dir.path());
        for n in 0..5 {
            j.put(&call(&format!("a{n}"), "alice", Some("+491"), n)).unwrap();
            j.put(&answered(call(&format!("a{n}"), "alice", Some("+491"), n))).unwrap();
        }
        // The copy is written and synced, then the process dies before the rename.
        let rewritten = j.inner().write_compacted().unwrap();
        std::mem::forget(rewritten);
        j.put(&call("a9", "alice", Some("+491"), 9)).unwrap();
    }
    assert!(dir.path().join(REWRITE).exists());
    let j = open(dir.path());
    assert!(!dir.path().join(REWRITE).exists(), "the unfinished copy is removed");
    assert_eq!(all_of(&j, "alice"), ["a9", "a4", "a3", "a2", "a1", "a0"]);
    assert_eq!(j.get(&CallId("a3".into())).unwrap().unwrap().events.len(), 1);
}

#[test]
fn a_write_that_fails_is_an_error_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    // Every write to /dev/full fails with ENOSPC: a full disk, for real.
    std::os::unix::fs::symlink("/dev/full", dir.path().join(JOURNAL)).unwrap();
    let j = open(dir.path());
    let err = j.put(&call("a1", "alice", Some("+491"), 1)).unwrap_err();
    assert!(err.to_string().contains("appending to the call journal"), "{err}");
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert!(j.get(&CallId("a1".into())).unwrap().is_none());
    assert!(all_of(&j, "alice").is_empty());
    assert_eq!(j.stats(), (0, 0, 0));
}

#[test]
fn calls_in_the_users_tree_move_into_the_journal_once() {
    let dir = tempfile::tempdir().unwrap();
    let old =
        [call("a1", "alice", Some("+491"), 1), answered(call("a2", "alice", None, 2)), call("b1", "bob", None, 3)];
    {
        // As the previous version left them: `c`, `h`, `i` entries in the users tree.
        let s = SledStore::open(dir.path()).unwrap();
        for c in &old {
            for (k, v) in migrate::old_entries(c) {
                s.users.insert(k, v).unwrap();
            }
        }
        s.users.insert(b"h\0orphan\0e:+1\0t\0x", b"".to_vec()).unwrap();
        s.flush().unwrap();
    }
    {
        // A first attempt killed after writing one call to the journal, before deleting anything.
        let j = open(&dir.path().join("calls"));
        j.put(&old[0]).unwrap();
    }
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.calls.stats().0, 3, "no call twice");
    assert_eq!(s.call(&CallId("a2".into())).unwrap().unwrap(), old[1]);
    let alice = UserId::parse("alice").unwrap();
    assert_eq!(ids(s.calls(&alice, TimeWindow::all(), 10).unwrap()), ["a2", "a1"]);
    assert_eq!(ids(s.calls_from(&alice, "e:+491", TimeWindow::all(), 10).unwrap()), ["a1"]);
    assert!(!s.users.iter().keys().any(|k| migrate::is_call_entry(&k.unwrap())), "the old entries are gone");
    let (_, _, end) = s.calls.stats();
    drop(s);
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.calls.stats().2, end, "nothing to move the second time");
}

#[test]
fn backups_carry_calls_as_before_and_restore_them_into_the_journal() {
    let s = SledStore::temporary().unwrap();
    let calls = [call("a1", "alice", Some("+491"), 1), call("b1", "bob", None, 2)];
    for c in &calls {
        s.put_call(c).unwrap();
    }
    let backup = s.export_user_data().entries;
    for c in &calls {
        for entry in migrate::old_entries(c) {
            assert!(backup.contains(&entry), "the backup holds the entries earlier versions wrote");
        }
    }
    let other = SledStore::temporary().unwrap();
    other.put_call(&call("x1", "alice", None, 5)).unwrap();
    other.import_user_data(&backup).unwrap();
    assert!(other.call(&CallId("x1".into())).unwrap().is_none(), "a restore replaces the calls");
    assert_eq!(other.call(&CallId("a1".into())).unwrap().unwrap(), calls[0]);
    let alice = UserId::parse("alice").unwrap();
    assert_eq!(ids(other.calls_from(&alice, "e:+491", TimeWindow::all(), 10).unwrap()), ["a1"]);
    assert!(!other.users.iter().keys().any(|k| migrate::is_call_entry(&k.unwrap())));
    assert_eq!(other.export_user_data().entries, backup, "a restored store backs up the same");
}

#[test]
fn the_journal_compacts_itself_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let j = CallJournal::open(dir.path(), Duration::from_millis(20)).unwrap();
    let mut c = call("a1", "alice", Some("+491"), 1);
    c.contact_name = Some("x".repeat(2000));
    let puts = COMPACT_MIN_DEAD / 2000 + 100;
    for _ in 0..puts {
        j.put(&c).unwrap();
    }
    let written = puts * j.stats().1;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while j.stats().2 > written / 2 {
        assert!(std::time::Instant::now() < deadline, "no compaction: {:?}", j.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(j.get(&c.id).unwrap().unwrap(), c);
    drop(j);
    assert_eq!(open(dir.path()).get(&c.id).unwrap().unwrap(), c);
}
