//! A data directory written before the compact encoding (tests/fixtures/datadir-v1.md
//! says how it was made) opens with this build: every user-owned entry is still there
//! and reads as it was written, user data is rewritten in the current format once,
//! and the index (rebuildable) is emptied and rebuilt by the next sync.

use contactbridge::accounts::{AccountSpec, AccountStore, RunRecord};
use contactbridge::api::auth::{ApiKeyStore, StoredKey};
use contactbridge::calls::{CallId, CallRecord};
use contactbridge::store::{AssignTarget, CallStore, IndexStore, RecordRef, SledStore, UserStore};
use contactbridge::user::{HandlingCode, UserId, UserProfile};
use contactbridge::web::auth::{StoredWebToken, WebTokenStore};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// The fixture's user data as the old build wrote it (its `backup`).
fn old_entries(dir: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    std::fs::read_to_string(dir.join("old-backup.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (unhex(v["key"].as_str().unwrap()), unhex(v["value"].as_str().unwrap()))
        })
        .collect()
}

/// A version-1 value (format byte 1, then JSON) as the type it holds, as JSON.
fn v1<T: DeserializeOwned + serde::Serialize>(value: &[u8]) -> Value {
    assert_eq!(value[0], 1, "a version-1 value");
    serde_json::to_value(serde_json::from_slice::<T>(&value[1..]).unwrap()).unwrap()
}

fn json(t: &impl serde::Serialize) -> Value {
    serde_json::to_value(t).unwrap()
}

fn extract() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datadir-v1.tar.gz");
    let status = Command::new("tar").arg("-xzf").arg(&fixture).arg("-C").arg(dir.path()).status().unwrap();
    assert!(status.success());
    dir
}

fn cb(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_contactbridge"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CONTACTBRIDGE_CONFIG")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

#[test]
fn a_data_directory_of_the_json_build_opens_with_nothing_user_owned_lost() {
    let dir = extract();
    let data = dir.path().join("data");
    let old = old_entries(dir.path());
    assert_eq!(old.len(), 32, "the fixture's user data");

    let store = SledStore::open(&data).unwrap();
    // Every entry is there, under the same key.
    let mut new: BTreeMap<Vec<u8>, Vec<u8>> = store.export_user_data().entries.into_iter().collect();
    assert_eq!(new.remove(&b"~format"[..]).as_deref(), Some(&[2u8][..]), "user data's format is recorded");
    assert_eq!(new.keys().collect::<Vec<_>>(), old.keys().collect::<Vec<_>>());

    let (mut profiles, mut codes, mut keys, mut tokens, mut accounts, mut runs, mut calls) = (0, 0, 0, 0, 0, 0, 0);
    for (k, value) in &old {
        let part = |i: usize| String::from_utf8(k.split(|b| *b == 0).nth(i).unwrap().to_vec()).unwrap();
        match k[0] {
            b'u' => {
                let id = UserId::parse(&part(1)).unwrap();
                let stored: Value = serde_json::from_slice(&value[1..]).unwrap();
                let old_profile: UserProfile = serde_json::from_value(stored["profile"].clone()).unwrap();
                assert_eq!(json(&store.profile(&id).unwrap().unwrap()), json(&old_profile));
                profiles += 1;
            }
            b'g' => {
                let user = UserId::parse(&part(1)).unwrap();
                let target = part(2);
                let target = match target.split_once(':').unwrap() {
                    ("c", r) => AssignTarget::Contact(RecordRef::parse(r).unwrap()),
                    ("n", n) => AssignTarget::Number(n.to_string()),
                    other => panic!("{other:?}"),
                };
                assert_eq!(json(&store.assignment(&user, &target).unwrap().unwrap()), v1::<HandlingCode>(value));
                codes += 1;
            }
            b'a' => {
                assert_eq!(json(&store.key(&part(1)).unwrap().unwrap()), v1::<StoredKey>(value));
                keys += 1;
            }
            b'w' => {
                assert_eq!(json(&store.web_token(&part(1)).unwrap().unwrap()), v1::<StoredWebToken>(value));
                tokens += 1;
            }
            b'A' => {
                assert_eq!(json(&store.account(&part(1)).unwrap().unwrap()), v1::<AccountSpec>(value));
                accounts += 1;
            }
            b'S' => assert_eq!(store.sealed_secret(&part(1)).unwrap().unwrap(), *value, "sealed secrets untouched"),
            b'R' => {
                assert_eq!(json(&store.run_record(&part(1)).unwrap().unwrap()), v1::<RunRecord>(value));
                runs += 1;
            }
            b'c' => {
                let call = store.call(&CallId(part(3))).unwrap().unwrap();
                assert_eq!(json(&call), v1::<CallRecord>(value));
                calls += 1;
            }
            b'n' => assert_eq!(
                store.user_by_called_number(&part(1)).unwrap().unwrap().as_str(),
                String::from_utf8_lossy(value)
            ),
            _ => assert_eq!(new[k], *value, "raw entries are kept as they are"),
        }
        // What is the user data's is now in the current format, once.
        if [b'u', b'g', b'a', b'w', b'A', b'R'].contains(&k[0]) {
            assert_eq!(new[k][0], 2, "{} rewritten", String::from_utf8_lossy(k));
        }
    }
    assert_eq!((profiles, codes, keys, tokens, accounts, runs, calls), (2, 3, 2, 1, 2, 1, 6));
    let demo = UserId::parse("demo").unwrap();
    assert_eq!(store.calls(&demo, contactbridge::store::TimeWindow::all(), 10).unwrap().len(), 2);

    // The index was emptied: no records, no checkpoints, so the next sync is a full one.
    assert!(store.collection_states(&demo, "demo-files").unwrap().is_empty());
    assert!(store.count_records(&demo, "demo-files").unwrap().is_empty());
    assert!(store.contacts_by_phone(&demo, "e:+49301234567").unwrap().is_empty());
    let bob = UserId::parse("acme.bob").unwrap();
    assert!(store.collection_states(&bob, "bob-files").unwrap().is_empty());
    let upgraded = store.export_user_data().entries;
    drop(store);

    // Opening again changes nothing.
    let store = SledStore::open(&data).unwrap();
    assert_eq!(store.export_user_data().entries, upgraded);
    drop(store);
    std::thread::sleep(std::time::Duration::from_millis(600));

    // The next sync rebuilds the index, and old assignments apply to the records it brings.
    assert!(cb(&data, &["demo"]).contains("13 records loaded"));
    let out = cb(&data, &["lookup", "--called", "+4930901820", "--cli", "0049301234567"]);
    assert!(out.contains("contact  Erika Mustermann"), "{out}");
    assert!(out.contains("code     blocked"), "the old contact assignment:\n{out}");
}
