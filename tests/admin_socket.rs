//! The CLI while `serve` runs (issue 15 §1): the real binary serving, the real CLI
//! sending its commands over `admin.sock`; another user refused, a SIGKILLed
//! server's socket file, hostile bytes on the socket.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::binary::{cb, cb_in, ok, text, Serve, BIN};

mod support;

const VCARD: &str =
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:sock-1\r\nFN:Sophie Socket\r\nTEL:+49 30 7777 1234\r\nEND:VCARD\r\n";

#[test]
fn every_command_family_runs_through_the_running_server_with_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("sophie.vcf"), VCARD).unwrap();
    let serve = Serve::start(&data);
    let mode = std::fs::metadata(data.join("admin.sock")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is the owner's only");

    // user …
    assert!(ok(&data, &["user", "list"]).contains("Dana Demo"));
    ok(&data, &["user", "add", "bob", "--tenant", "demo", "--name", "Bob", "--number", "+4930901899"]);
    assert!(ok(&data, &["user", "show", "bob"]).contains("Bob"));
    // import: a path relative to the client's working directory.
    let o = cb_in(&work, &data, &["import", "--user", "bob", "sophie.vcf"], &[]);
    assert!(o.status.success(), "{:?}", text(&o));
    // lookup, text and JSON
    let out = ok(&data, &["lookup", "--called", "+4930901899", "--cli", "+493077771234"]);
    assert!(out.contains("contact  Sophie Socket"), "{out}");
    let json = ok(&data, &["lookup", "--called", "+4930901820", "--cli", "0049301234567", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["decision"]["handling_code"], "vip");
    // key …
    let o = cb(&data, &["key", "create", "--tenant", "demo", "--scope", "tsps", "--label", "pbx"]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(ok(&data, &["key", "list"]).contains("pbx"));
    // account … (a files account; its path relative to the client) and sync now
    let o = cb_in(&work, &data, &["account", "add", "files", "--id", "f1", "--user", "bob", "sophie.vcf"], &[]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(ok(&data, &["account", "list"]).contains("f1"));
    let out = ok(&data, &["sync", "--once", "--account", "f1"]);
    assert!(out.contains("f1: 1 collections, 1 records written"), "{out}");
    assert!(ok(&data, &["account", "show", "f1"]).contains("f1"));
    // A secret from the client's environment, never from the server's.
    let o = cb_in(
        &work,
        &data,
        &[
            "account",
            "add",
            "carddav",
            "--id",
            "d1",
            "--user",
            "bob",
            "--url",
            "http://127.0.0.1:9/dav/",
            "--username",
            "bob",
            "--password-env",
            "CB_TEST_PW",
        ],
        &[("CB_TEST_PW", "s3cret-from-the-client")],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let o = cb(
        &data,
        &[
            "account",
            "add",
            "carddav",
            "--id",
            "d2",
            "--user",
            "bob",
            "--url",
            "http://127.0.0.1:9/",
            "--username",
            "bob",
            "--password-env",
            "CB_UNSET_PW",
        ],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("environment variable CB_UNSET_PW is not set"), "{err}");
    ok(&data, &["account", "remove", "d1"]);
    // backup: the file is written by the client, where it asked.
    let o = cb_in(&work, &data, &["backup", "nightly.jsonl"], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.starts_with("wrote ") && out.contains("entries of user data to nightly.jsonl"), "{out}");
    let lines = std::fs::read_to_string(work.join("nightly.jsonl")).unwrap().lines().count();
    assert!(lines > 5, "{lines} lines");
    // Not through a running server: restore and the foreground scheduler.
    let o = cb(&data, &["restore", "nightly.jsonl"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("stop it first"), "{:?}", text(&o));
    assert!(text(&cb(&data, &["sync"])).1.contains("already syncs on schedule"));

    // Failures: the same exit status and error text through the server and without it.
    let failing: &[&[&str]] = &[
        &["user", "show", "nobody"],
        &["sync", "--once", "--account", "nope"],
        &["account", "show", "nope"],
        &["lookup", "--called", "+4930000000", "--cli", "+4930111"],
    ];
    let served: Vec<(Option<i32>, String, String)> = failing
        .iter()
        .map(|a| {
            let o = cb(&data, a);
            let (out, err) = text(&o);
            (o.status.code(), out, err)
        })
        .collect();
    serve.stop();
    assert!(!data.join("admin.sock").exists(), "a stopped server removes its socket");
    for (args, served) in failing.iter().zip(served) {
        let o = cb(&data, args);
        let (out, err) = text(&o);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        assert_eq!(served, (o.status.code(), out, err), "{args:?} differs through the server");
    }
    // What the server stored is there after it stopped.
    assert!(ok(&data, &["account", "list"]).contains("f1"));
    let restored = ok(&data, &["restore", &work.join("nightly.jsonl").to_string_lossy()]);
    assert!(restored.contains("restored"), "{restored}");
}

/// A copy of the binary another user may run.
fn binary_for_all(dir: &Path) -> PathBuf {
    let bin = dir.join("contactbridge");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn as_nobody(bin: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(bin)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .current_dir("/")
        .env_remove("CONTACTBRIDGE_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn another_user_is_refused_by_the_file_mode_and_by_its_uid() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test runs as root (it runs a client as uid 65534)");
    let dir = tempfile::tempdir().unwrap();
    let bin = binary_for_all(dir.path());
    let data = dir.path().join("data");
    let _serve = Serve::start(&data);
    // The socket's mode stops the other user first.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = as_nobody(&bin, &data, &["user", "list"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("admin socket") && err.contains("Permission denied"), "{err}");
    assert!(out.is_empty(), "{out}");
    // With the mode opened by mistake, the server still refuses the uid.
    std::fs::set_permissions(data.join("admin.sock"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = as_nobody(&bin, &data, &["user", "list"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("serves only uid 0 (the server's) and root, not uid 65534"), "{err}");
    assert!(!out.contains("Dana"), "{out}");
    // The owner still gets through.
    assert!(ok(&data, &["user", "list"]).contains("Dana Demo"));
}

#[test]
fn a_killed_servers_socket_file_neither_blocks_the_cli_nor_the_next_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut serve = Serve::start(&data);
    ok(&data, &["user", "add", "carol", "--tenant", "demo", "--name", "Carol", "--number", "+4930901877"]);
    serve.kill9();
    assert!(data.join("admin.sock").exists(), "SIGKILL leaves the socket file");
    // The CLI finds no server behind it and opens the store itself.
    assert!(ok(&data, &["user", "list"]).contains("Carol"));
    // The next server replaces the file.
    let _serve = Serve::start(&data);
    assert!(ok(&data, &["user", "show", "carol"]).contains("Carol"));
}

/// Sends raw bytes, optionally half-closes, and reads the whole answer.
fn raw(sock: &Path, bytes: &[u8], half_close: bool) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may answer (and close) before it has read everything: ignore a broken pipe.
    let _ = s.write_all(bytes);
    if half_close {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

#[test]
fn hostile_bytes_on_the_socket_get_clear_errors_and_leave_serve_working() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _serve = Serve::start(&data);
    let sock = data.join("admin.sock");
    // A client that connects and says nothing does not hold up the others.
    let _silent = UnixStream::connect(&sock).unwrap();

    let garbage = raw(&sock, b"\x00\xffGET / HTTP/1.1\r\n\r\n", true);
    assert!(garbage.contains("expects one JSON request line"), "{garbage}");
    assert!(garbage.trim_end().ends_with(r#"{"exit":1}"#), "{garbage}");

    let huge = raw(&sock, &vec![b'a'; 3 << 20], false);
    assert!(huge.contains("the request is longer than 1048576 bytes"), "{huge}");

    let half = raw(&sock, br#"{"version":"x","argv":["user","#, true);
    assert!(half.contains("the request ended without its end of line"), "{half}");

    let wrong = raw(&sock, b"{\"version\":\"0.0.0\",\"argv\":[\"user\",\"list\"],\"cwd\":\"/\"}\n", true);
    assert!(wrong.contains("the running server"), "{wrong}");

    let version = env!("CARGO_PKG_VERSION");
    let bad_args = raw(
        &sock,
        format!("{{\"version\":\"{version}\",\"argv\":[\"user\",\"frobnicate\"],\"cwd\":\"/\"}}\n").as_bytes(),
        true,
    );
    assert!(bad_args.contains("unrecognized subcommand"), "{bad_args}");
    assert!(bad_args.trim_end().ends_with(r#"{"exit":2}"#), "{bad_args}");

    // A client that leaves at a prompt ends its command, not the server.
    let prompt = raw(
        &sock,
        format!(
            "{{\"version\":\"{version}\",\"argv\":[\"account\",\"add\",\"carddav\",\"--id\",\"p\",\"--user\",\"demo\",\
             \"--url\",\"http://127.0.0.1:9/\",\"--username\",\"u\"],\"cwd\":\"/\"}}\n"
        )
        .as_bytes(),
        true,
    );
    assert!(prompt.contains(r#"{"prompt":"password for u: "}"#), "{prompt}");
    assert!(prompt.contains("reading the secret from the terminal"), "{prompt}");

    // Still serving, for the CLI and for each of these at once.
    assert!(ok(&data, &["user", "list"]).contains("Dana Demo"));
}
