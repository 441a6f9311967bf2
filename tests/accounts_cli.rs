//! `contactbridge account …` and `sync --once` as an admin uses them: secrets
//! only from files or the environment, never echoed; a crontab-style sync.

use std::path::Path;
use std::process::{Command, Output};

const SECRET: &str = "Cli-Heron-3318-secret";

fn cb(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_contactbridge"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CONTACTBRIDGE_CONFIG")
        .env_remove("CONTACTBRIDGE_SECRET_KEY")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn ok(data: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = cb(data, args, env);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{stderr}");
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET), "{args:?} printed the secret");
    stdout.into_owned()
}

fn fails(data: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = cb(data, args, env);
    assert!(!out.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains(SECRET), "{args:?} printed the secret");
    stderr
}

#[test]
fn accounts_are_added_listed_shown_synced_once_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(
        files.path().join("book.vcf"),
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:e\r\nFN:Erika Mustermann\r\nTEL:(030) 123 45 67\r\nEND:VCARD\r\n",
    )
    .unwrap();
    ok(d, &["user", "add", "acme.dana", "--tenant", "acme", "--number", "+4930901820", "--region", "DE"], &[]);
    let path = files.path().to_str().unwrap();
    let out = ok(d, &["account", "add", "files", "--id", "dana-files", "--user", "acme.dana", path], &[]);
    assert!(out.contains("account dana-files (files) added"), "{out}");

    // A secret from a file; a secret as a plain argument is not an option.
    let secret_file = files.path().join("pw");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let add_dav = [
        "account",
        "add",
        "carddav",
        "--id",
        "dana-dav",
        "--user",
        "acme.dana",
        "--url",
        "http://127.0.0.1:9/dav/",
        "--username",
        "dana",
        "--password-file",
        secret_file.to_str().unwrap(),
        "--schedule",
        "0 7 * * MON-FRI",
        "--time-zone",
        "Europe/Berlin",
    ];
    ok(d, &add_dav, &[]);
    let e = fails(
        d,
        &["account", "add", "carddav", "--id", "x", "--user", "acme.dana", "--url", "http://h/", "--password", SECRET],
        &[],
    );
    assert!(e.contains("--password"), "{e}");
    // From the environment.
    let graph = [
        "account",
        "add",
        "graph",
        "--id",
        "m365",
        "--user",
        "acme.dana",
        "--tenant",
        "acme.example",
        "--client-id",
        "app",
        "--client-secret-env",
        "CB_TEST_SECRET",
        "--mailbox",
        "dana@acme.example",
        "--category",
        "VIP=vip",
    ];
    ok(d, &graph, &[("CB_TEST_SECRET", SECRET)]);

    let list = ok(d, &["account", "list"], &[]);
    assert!(list.contains("dana-files\tfiles\tacme.dana\tenabled\t0 */15 * * * *\tnever synced"), "{list}");
    assert!(list.contains("dana-dav\tcarddav\tacme.dana\tenabled\t0 7 * * MON-FRI"), "{list}");

    let out = ok(d, &["sync", "--once", "--account", "dana-files"], &[]);
    assert!(out.contains("dana-files: 1 collections, 1 records written"), "{out}");
    let lookup = ok(d, &["lookup", "--called", "+4930901820", "--cli", "0049301234567"], &[]);
    assert!(lookup.contains("Erika Mustermann"), "{lookup}");

    let show = ok(d, &["account", "show", "dana-files"], &[]);
    assert!(show.contains("records   1 contact"), "{show}");
    assert!(show.contains("last sync") && !show.contains("FAILED"), "{show}");
    let show = ok(d, &["account", "show", "dana-dav"], &[]);
    assert!(show.contains("secret    password (stored encrypted)"), "{show}");
    assert!(show.contains("schedule  0 7 * * MON-FRI (Europe/Berlin)"), "{show}");

    // The unreachable DAV server: sync --once fails and says why, the others still sync.
    let e = fails(d, &["sync", "--once"], &[]);
    assert!(e.contains("dana-dav") && e.contains("cannot be reached"), "{e}");
    let e = fails(d, &["account", "test", "dana-dav"], &[]);
    assert!(e.contains("cannot be reached"), "{e}");

    ok(d, &["account", "disable", "dana-dav"], &[]);
    ok(d, &["account", "disable", "m365"], &[]);
    ok(d, &["sync", "--once"], &[]);
    let out = ok(d, &["account", "remove", "dana-files"], &[]);
    assert!(out.contains("removed with 1 records"), "{out}");
    let lookup = ok(d, &["lookup", "--called", "+4930901820", "--cli", "0049301234567"], &[]);
    assert!(!lookup.contains("Erika"), "{lookup}");

    // The key file is 0600 and no file in the data directory holds the secret.
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(d.join("secret.key")).unwrap().permissions().mode() & 0o777, 0o600);
    let mut stack = vec![d.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "{}", p.display());
            }
        }
    }
}

#[test]
fn a_key_file_readable_by_others_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["account", "list"], &[]);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(d.join("secret.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = fails(d, &["account", "list"], &[]);
    assert!(e.contains("chmod 600"), "{e}");
}

#[test]
fn the_key_may_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    ok(d, &["user", "add", "acme.dana", "--tenant", "acme"], &[("CONTACTBRIDGE_SECRET_KEY", key)]);
    let add = ["account", "add", "graph", "--id", "m", "--user", "acme.dana", "--tenant", "t", "--client-id", "c"];
    let add: Vec<&str> = add.iter().copied().chain(["--client-secret-env", "CB_S", "--mailbox", "a@t"]).collect();
    ok(d, &add, &[("CONTACTBRIDGE_SECRET_KEY", key), ("CB_S", SECRET)]);
    assert!(!d.join("secret.key").exists(), "no key file when the environment gives the key");
    let e = fails(d, &["account", "test", "m"], &[]);
    assert!(e.contains("cannot be decrypted"), "a key file made now is not the key the secret was sealed with: {e}");
    let e = fails(d, &["account", "list"], &[("CONTACTBRIDGE_SECRET_KEY", "short")]);
    assert!(e.contains("CONTACTBRIDGE_SECRET_KEY"), "{e}");
}
