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

/// A CA (its PEM) and, when `server` is given, a certificate for that name signed by it (PEM, key PEM).
fn pki(server: Option<&str>) -> (String, Option<(String, String)>) {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = server.map(|name| {
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        (p.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
    });
    (ca_pem, leaf)
}

/// TLS to PostgreSQL, at the store's connection: a server that refuses every connection
/// without TLS (so each success below was encrypted), a certificate for `localhost` from
/// the operator's CA. Trusted through `ca_file`: the binary works, and so does the bus's own
/// connection. The adversary on the path: a certificate from another CA, or none of the
/// operator's configured, or the right CA for another name — each refused with a message
/// that says what to do, the password never shown. A garbage `ca_file` is a clear error.
#[test]
fn tls_to_postgresql_is_verified_against_the_configured_ca() {
    use contactbridge::store::{Maintenance as _, PgOptions, PgStore};
    let server = PgServer::start();
    let (ca, leaf) = pki(Some("localhost"));
    let (cert, key) = leaf.unwrap();
    let (other_ca, _) = pki(None);
    server.require_tls(&cert, &key);
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, other_ca_file, garbage) =
        (dir.path().join("ca.pem"), dir.path().join("other-ca.pem"), dir.path().join("garbage.pem"));
    std::fs::write(&ca_file, &ca).unwrap();
    std::fs::write(&other_ca_file, &other_ca).unwrap();
    std::fs::write(&garbage, "-----BEGIN NOTHING-----\nnot a certificate\n").unwrap();
    let url =
        |host: &str, mode: &str| format!("postgres://postgres:cbtest-password@{host}:{}/postgres{mode}", server.port());
    let run = |url: &str, ca: Option<&Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_contactbridge"));
        c.arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["user", "list"])
            .env_remove("CONTACTBRIDGE_CONFIG")
            .env("CONTACTBRIDGE_STORE__BACKEND", "postgres")
            .env("CONTACTBRIDGE_STORE__POSTGRES__URL", url)
            .env("CONTACTBRIDGE_STORE__POSTGRES__POOL_SIZE", "1");
        if let Some(ca) = ca {
            c.env("CONTACTBRIDGE_STORE__POSTGRES__CA_FILE", ca);
        }
        let out = c.output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };

    for mode in ["", "?sslmode=require"] {
        let (ok, err) = run(&url("localhost", mode), Some(&ca_file));
        assert!(ok, "trusted through ca_file ({mode:?}): {err}");
    }
    for (u, ca, why) in [
        (url("localhost", ""), None, "no ca_file: the public roots do not know the operator's CA"),
        (url("localhost", "?sslmode=require"), Some(other_ca_file.as_path()), "another CA's trust"),
        (url("127.0.0.1", "?sslmode=require"), Some(ca_file.as_path()), "the certificate names another host"),
    ] {
        let (ok, err) = run(&u, ca);
        assert!(!ok, "{why}: refused");
        assert!(err.contains("not trusted") && err.contains("ca_file"), "{why}: {err}");
        assert!(!err.contains("cbtest-password"), "{why}: the password stays out: {err}");
    }
    let (ok, err) = run(&url("localhost", "?sslmode=disable"), Some(&ca_file));
    assert!(!ok && err.contains("no encryption"), "the server takes nothing unencrypted, so the above was TLS: {err}");
    let (ok, err) = run(&url("localhost", ""), Some(&garbage));
    assert!(!ok && err.contains("ca_file") && err.contains("garbage.pem"), "{err}");

    // The bus's connections (LISTEN and NOTIFY) are made with the same TLS set-up.
    let options = PgOptions {
        pool_size: 1,
        ca_file: Some(ca_file.clone()),
        ..PgOptions::new(url("localhost", "?sslmode=require"))
    };
    let store = PgStore::open(&options, Path::new("")).expect("trusted through ca_file");
    let replication =
        store.replication("replica-tls").expect("the bus connects over TLS").expect("PostgreSQL replicates");
    drop(replication);
}
