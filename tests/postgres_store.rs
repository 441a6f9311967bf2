//! The `contactbridge` binary on the PostgreSQL backend (a real server,
//! started by `contactbridge::store::postgres::testing`): the README's demo
//! and lookup, a backup restored from sled into PostgreSQL, and a server that
//! is down when the bridge starts.

use contactbridge::store::postgres::testing::{shared_database, PgServer};
use std::path::Path;
use std::process::{Command, Output};

fn cb(data: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_contactbridge"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CONTACTBRIDGE_CONFIG")
        .env("CONTACTBRIDGE_STORE__BACKEND", "postgres")
        .env("CONTACTBRIDGE_STORE__POSTGRES__URL", url)
        .env("CONTACTBRIDGE_STORE__POSTGRES__POOL_SIZE", "2")
        .output()
        .unwrap()
}

fn ok(data: &Path, url: &str, args: &[&str]) -> String {
    let out = cb(data, url, args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

#[test]
fn demo_then_lookup_on_postgresql() {
    let db = shared_database();
    let dir = tempfile::tempdir().unwrap();
    assert!(ok(dir.path(), &db.url, &["demo"]).contains("13 records loaded, 0 rejected"));
    let out = ok(dir.path(), &db.url, &["lookup", "--called", "+4930901820", "--cli", "0049301234567"]);
    assert!(out.contains("contact  Erika Mustermann, ACME GmbH"), "{out}");
    assert!(out.contains("code     vip"), "{out}");
    assert!(out.contains("Order 4711: delivery date"), "{out}");
    // Nothing of the index went to the data directory: it is all in the database.
    assert!(!dir.path().join("index").exists());
}

#[test]
fn a_sled_backup_restores_into_postgresql() {
    let sled_dir = tempfile::tempdir().unwrap();
    let run_sled = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_contactbridge"))
            .arg("--data-dir")
            .arg(sled_dir.path())
            .args(args)
            .env_remove("CONTACTBRIDGE_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run_sled(&["demo"]);
    let backup = sled_dir.path().join("backup.jsonl");
    run_sled(&["backup", backup.to_str().unwrap()]);

    let db = shared_database();
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &db.url, &["restore", backup.to_str().unwrap()]);
    let users = ok(dir.path(), &db.url, &["user", "list"]);
    let sled_users = {
        let out = Command::new(env!("CARGO_BIN_EXE_contactbridge"))
            .arg("--data-dir")
            .arg(sled_dir.path())
            .args(["user", "list"])
            .env_remove("CONTACTBRIDGE_CONFIG")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(!users.trim().is_empty());
    assert_eq!(users, sled_users, "the same users on both backends");
}

#[test]
fn a_server_down_at_start_fails_naming_the_url_without_its_password() {
    let server = PgServer::start();
    let url = server.url("postgres");
    server.stop();
    let dir = tempfile::tempdir().unwrap();
    let out = cb(dir.path(), &url, &["user", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without its database: {stderr}");
    assert!(stderr.contains(&format!("postgres://postgres:***@127.0.0.1:{}/postgres", server.port())), "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(!stderr.contains("cbtest-password"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("cbtest-password"));
}
