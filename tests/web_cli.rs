//! `contactbridge user login-link`: prints a working single-use link for an existing user only.

use chrono::Utc;
use contactbridge::store::SledStore;
use contactbridge::web::auth;
use std::process::Command;

fn cb(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_contactbridge"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("CONTACTBRIDGE_WEB__LISTEN", "127.0.0.1:18080")
        .env_remove("CONTACTBRIDGE_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn login_link_prints_a_link_that_signs_in_once() {
    let dir = tempfile::tempdir().unwrap();
    assert!(cb(dir.path(), &["demo"]).status.success());

    let out = cb(dir.path(), &["user", "login-link", "demo"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let link = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let token = link.strip_prefix("http://127.0.0.1:18080/login?token=").unwrap_or_else(|| panic!("{link}"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("valid once, until"));

    let out = cb(dir.path(), &["user", "login-link", "demo", "--valid", "2h", "--base-url", "https://bridge.example/"]);
    let other = String::from_utf8(out.stdout).unwrap();
    assert!(other.starts_with("https://bridge.example/login?token=cbw_"), "{other}");

    let out = cb(dir.path(), &["user", "login-link", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let out = cb(dir.path(), &["user", "login-link", "demo", "--valid", "soon"]);
    assert!(!out.status.success());

    let store = SledStore::open(dir.path()).unwrap();
    let (user, _session) = auth::exchange_login(&store, token, Utc::now()).unwrap();
    assert_eq!(user.as_str(), "demo");
    assert!(auth::exchange_login(&store, token, Utc::now()).is_err(), "the link works once");
}
