//! A crash between batches: a child process applies change sets to an
//! on-disk store as fast as it can and is killed with SIGKILL; on reopen, the
//! records present are exactly those of the batches up to the checkpoint.
//! Also with a checkpoint-only change set (a sync that found nothing, committed
//! without waiting for the disk) after every batch: one may be lost, no record is.

use contactbridge::connector::{Checkpoint, Contact, PhoneKind, Record, RecordId};
use contactbridge::store::{CollectionScope, IndexBatch, IndexStore, IndexedRecord, SecondaryKey, SledStore};
use contactbridge::user::UserId;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "CONTACTBRIDGE_CRASH_CHILD_DIR";
/// Set (to anything) for a child that follows each batch with a checkpoint-only one.
const PROBES_ENV: &str = "CONTACTBRIDGE_CRASH_CHILD_PROBES";
const PER_BATCH: usize = 50;

fn scope() -> CollectionScope {
    CollectionScope { user: UserId::parse("crash").unwrap(), account: "acc".into(), collection: "ab".into() }
}

fn batch(n: usize) -> IndexBatch {
    let upserts = (0..PER_BATCH)
        .map(|i| IndexedRecord {
            record: Record::Contact(Contact { id: RecordId::new(format!("b{n}-{i}")), ..Default::default() }),
            keys: vec![SecondaryKey::Phone { key: format!("e:+{n}"), kind: PhoneKind::Work }],
            handling_code: None,
            derived_with: None,
        })
        .collect();
    IndexBatch {
        scope: scope(),
        upserts,
        deletions: vec![],
        retained: vec![],
        rejected: vec![],
        checkpoint: Some(Checkpoint::new(n.to_string())),
        snapshot: None,
        at: chrono::Utc::now(),
    }
}

/// The child's side: runs only when the parent test starts this binary with
/// the environment variable set; in a normal test run it returns at once.
#[test]
fn crash_child_process_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let store = SledStore::open(std::path::Path::new(&dir)).unwrap();
    let probes = std::env::var_os(PROBES_ENV).is_some();
    for n in 1.. {
        store.apply(&batch(n)).unwrap();
        println!("applied {n}");
        if probes {
            let nothing_new =
                IndexBatch { upserts: vec![], checkpoint: Some(Checkpoint::new(format!("{n}+probed"))), ..batch(n) };
            assert!(nothing_new.only_checkpoint());
            store.apply(&nothing_new).unwrap();
        }
    }
}

#[test]
fn a_crash_between_batches_leaves_records_and_checkpoint_in_step() {
    crash_and_check(false)
}

#[test]
fn a_crash_among_checkpoint_only_commits_loses_no_record() {
    crash_and_check(true)
}

fn crash_and_check(probes: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    if probes {
        command.env(PROBES_ENV, "1");
    }
    let mut child = command
        .args(["--exact", "crash_child_process_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut applied = 0;
    while applied < 25 {
        let line = lines.next().expect("child stopped early").unwrap();
        if let Some(n) = line.strip_prefix("applied ") {
            applied = n.parse().unwrap();
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no flush
    child.wait().unwrap();

    let store = SledStore::open(dir.path()).unwrap();
    let state = store.collection_state(&scope()).unwrap().expect("some batch committed");
    let text = String::from_utf8(state.checkpoint.unwrap().0).unwrap();
    // After a checkpoint-only commit: the batch before it, then "+probed".
    let checkpoint: usize = text.trim_end_matches("+probed").parse().unwrap();
    assert!(checkpoint >= applied, "every batch reported as applied is durable ({checkpoint} < {applied})");
    let user = scope().user;
    let counts = store.count_records(&user, "acc").unwrap();
    assert_eq!(
        counts.get("contact").copied().unwrap_or(0),
        checkpoint * PER_BATCH,
        "records agree with the checkpoint"
    );
    for n in 1..=checkpoint + 1 {
        let found = store.contacts_by_phone(&user, &format!("e:+{n}")).unwrap().len();
        let expected = if n <= checkpoint { PER_BATCH } else { 0 };
        assert_eq!(found, expected, "secondary keys of batch {n}");
    }
}
