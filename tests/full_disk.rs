//! A full disk during a sync: a real 20 MiB file system (tmpfs, mounted by
//! the test; it needs root, or a system where `mount -t tmpfs` is allowed,
//! and says so and stops where it is not). The index grows until the reserve
//! for user data stops the sync with a clear error; user data can still be
//! written. Then something else fills the disk to the last byte; opening fails
//! meanwhile, and opening after space is freed finds every profile and call
//! (sled's empty `snap.*.generating` leftover does not make it unreadable),
//! and `backup` and `restore` work.

use chrono::Utc;
use contactbridge::connector::{Checkpoint, Contact, PhoneKind, Record, RecordId};
use contactbridge::resolve::{CallQuery, Resolver};
use contactbridge::store::{
    CallStore, CollectionScope, IndexBatch, IndexStore, IndexedRecord, SecondaryKey, SledStore, Store, StoreError,
    StoreOptions, UserStore,
};
use contactbridge::user::{self, UserId, UserProfile};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use support::binary::cb;

mod support;

const DID: &str = "+49 30 901820";
const RESERVE: u64 = 6 << 20;

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// Fails the test where it cannot mount (it needs root, as the test command runs in CI):
    /// a full disk is not simulated.
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "this test mounts a real 20 MiB tmpfs and needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Self(dir)
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

fn dana() -> UserId {
    UserId::parse("acme.dana").unwrap()
}

fn batch(n: usize) -> IndexBatch {
    let upserts = (0..200)
        .map(|i| IndexedRecord {
            record: Record::Contact(Contact {
                id: RecordId::new(format!("b{n}-{i}")),
                display_name: format!("Contact {n}/{i} {}", "with a long name ".repeat(8)),
                ..Default::default()
            }),
            keys: vec![SecondaryKey::Phone { key: format!("e:+49305{n:03}{i:03}"), kind: PhoneKind::Work }],
            handling_code: None,
            derived_with: None,
        })
        .collect();
    IndexBatch {
        scope: CollectionScope { user: dana(), account: "acc".into(), collection: "book".into() },
        upserts,
        deletions: vec![],
        retained: vec![],
        rejected: vec![],
        checkpoint: Some(Checkpoint::new(n.to_string())),
        snapshot: None,
        at: Utc::now(),
    }
}

fn options() -> StoreOptions {
    StoreOptions { cache_bytes: 1 << 20, reserve_bytes: RESERVE, ..Default::default() }
}

fn call(store: &Arc<SledStore>, cli: &str) -> String {
    let d = Resolver::new(store.clone() as Arc<dyn Store>)
        .resolve(&CallQuery { called: DID.into(), cli: cli.into(), tsps_call_id: None, at: Utc::now() })
        .unwrap();
    d.call_id.to_string()
}

/// Fills the file system to the last byte; returns the filler's path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
    path
}

#[test]
fn a_full_disk_during_sync_leaves_user_data_intact_and_backup_restore_working() {
    let fs = Tmpfs::mount("20m");
    let data = fs.path().join("data");
    let calls = {
        let store = Arc::new(SledStore::open_with(&data, &options()).unwrap());
        let mut profile = UserProfile::new(dana(), "acme");
        profile.called_numbers = vec![DID.into()];
        profile.region = Some("DE".into());
        user::put_profile(store.as_ref(), &profile).unwrap();
        let mut calls = vec![call(&store, "+49 30 1111")];

        // The sync grows the index until the reserve stops it.
        let mut refused = None;
        for n in 0..10_000 {
            match store.apply(&batch(n)) {
                Ok(_) => {}
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        let refused = refused.expect("the sync was stopped before the disk was full");
        assert!(matches!(refused, StoreError::LowSpace(_)), "stopped by the reserve, not by the disk: {refused}");
        let text = refused.to_string();
        assert!(text.contains("kept for user data ([store] reserve_mb)"), "{text}");
        let free = free_bytes(fs.path());
        assert!(free > RESERVE / 2, "the reserve is left: {free} bytes free");

        // User data may still be written below the reserve.
        calls.push(call(&store, "+49 30 2222"));
        let mut otto = UserProfile::new(UserId::parse("acme.otto").unwrap(), "acme");
        otto.display_name = "Otto".into();
        user::put_profile(store.as_ref(), &otto).unwrap();
        store.flush().unwrap();
        calls
    };

    // Something else fills the disk to the last byte.
    let filler = fill(fs.path());
    let opened_full = SledStore::open_with(&data, &options()).map(drop);
    let leftovers: Vec<String> = ["users", "index"]
        .iter()
        .flat_map(|db| std::fs::read_dir(data.join(db)).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".generating"))
        .collect();
    eprintln!("opening on a full disk: {:?}; sled left {leftovers:?}", opened_full.as_ref().map_err(|e| e.to_string()));
    if let Err(e) = &opened_full {
        let text = e.to_string();
        assert!(text.contains("No space left on device") && !text.contains("IO error"), "{text}");
    }
    std::fs::remove_file(&filler).unwrap();

    // Space is back: everything user-owned is there.
    {
        let store = Arc::new(SledStore::open_with(&data, &options()).unwrap());
        assert_eq!(store.profiles().unwrap().len(), 2);
        for id in &calls {
            assert!(store.call(&contactbridge::calls::CallId(id.clone())).unwrap().is_some(), "call {id}");
        }
    }

    // backup and restore, through the command line.
    let backup = tempfile::tempdir().unwrap();
    let file = backup.path().join("users.jsonl");
    let out = cb(&data, &["backup", file.to_str().unwrap()]);
    assert!(out.status.success(), "backup: {}", String::from_utf8_lossy(&out.stderr));
    let out = cb(&data, &["restore", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "restore: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("the user data it replaced is kept in"), "{stdout}");
    let store = Arc::new(SledStore::open_with(&data, &options()).unwrap());
    assert_eq!(store.profiles().unwrap().len(), 2);
    for id in &calls {
        assert!(store.call(&contactbridge::calls::CallId(id.clone())).unwrap().is_some(), "call {id} restored");
    }
    assert!(store.collection_state(&batch(0).scope).unwrap().is_some(), "the index kept its epoch over the restore");
}

fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df").args(["-B1", "--output=avail"]).arg(dir).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
}

/// `restore` works on a store whose user data is damaged: it does not open it.
#[test]
fn restore_replaces_damaged_user_data_without_opening_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("users.jsonl");
    {
        let store = SledStore::open(&data).unwrap();
        user::put_profile(&store, &UserProfile::new(dana(), "acme")).unwrap();
        store.flush().unwrap();
    }
    let out = cb(&data, &["backup", file.to_str().unwrap()]);
    assert!(out.status.success(), "backup: {}", String::from_utf8_lossy(&out.stderr));
    // sled's own leftover of a full disk, plus garbage where the log was.
    std::fs::write(data.join("users").join("db"), vec![0x5a; 4096]).unwrap();
    let out = cb(&data, &["user", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("user data is damaged"), "{stderr}");

    let out = cb(&data, &["restore", file.to_str().unwrap()]);
    assert!(out.status.success(), "restore: {}", String::from_utf8_lossy(&out.stderr));
    let store = SledStore::open(&data).unwrap();
    assert_eq!(store.profiles().unwrap().len(), 1);
    let kept = std::fs::read_dir(&data)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("users.before-restore-"));
    assert_eq!(kept.count(), 1, "the damaged user data is kept aside");
}
