//! The `contactbridge` binary as a newcomer uses it.

use std::process::Command;
use support::binary::{cb, fails, ok};

mod support;

#[test]
fn demo_then_lookup_with_a_cli_written_differently_from_the_stored_number() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(ok(d, &["demo"]).contains("13 records loaded, 0 rejected"));
    // Stored as "(030) 123 45 67"; the phone system sends 0049…
    let out = ok(d, &["lookup", "--called", "+4930901820", "--cli", "0049301234567"]);
    assert!(out.contains("contact  Erika Mustermann, ACME GmbH"), "{out}");
    assert!(out.contains("code     vip"), "{out}");
    assert!(out.contains("Order 4711: delivery date"), "the context shows her mail:\n{out}");
    assert!(out.contains("ACME framework agreement 2026.docx"), "{out}");
    assert!(out.contains("Weekly purchasing sync with ACME"), "{out}");

    let json = ok(d, &["lookup", "--called", "+4930901820", "--cli", "+498001234567", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["decision"]["handling_code"], "blocked");
    assert_eq!(v["decision"]["method"]["method"], "voicemail");

    // Loading the demo twice replaces, not duplicates.
    ok(d, &["demo"]);
    let out = ok(d, &["lookup", "--called", "+4930901820", "--cli", "+49305550199"]);
    assert_eq!(out.matches("Schmidt").count(), 3, "two candidates (Greta, Hans + company):\n{out}");
}

#[test]
fn users_methods_status_assignments_import_and_backup() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &[
            "user",
            "add",
            "acme.alice",
            "--tenant",
            "acme",
            "--number",
            "+49 40 1234500",
            "--region",
            "de",
            "--time-zone",
            "Europe/Berlin",
            "--forward",
            "Mobile=+49 170 555",
        ],
    );
    assert!(fails(d, &["user", "add", "acme.alice", "--tenant", "acme"]).contains("exists already"));
    let e = fails(d, &["user", "add", "acme.bob", "--tenant", "acme", "--number", "+49 40 1234500"]);
    assert!(e.contains("already belongs to user acme.alice"), "{e}");
    assert!(fails(d, &["user", "add", "acme.carl", "--tenant", "acme", "--time-zone", "Mars/Olympus"]).contains("IANA"));
    assert!(ok(d, &["user", "list"]).contains("acme.alice\tacme"));

    let cards = d.join("cards.vcf");
    std::fs::write(
        &cards,
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:k1\r\nFN:Kim Kunde\r\nTEL:040 98765\r\nEND:VCARD\r\n\
         BEGIN:VCARD\r\nVERSION:3.0\r\nUID:broken\r\nTEL:040 11111\r\n\
         BEGIN:VCARD\r\nVERSION:3.0\r\nUID:k2\r\nFN:Karl Kunde\r\nTEL:040 55555\r\nEND:VCARD\r\n",
    )
    .unwrap();
    let out = cb(d, &["import", "--user", "acme.alice", cards.to_str().unwrap()]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("imported") && stdout.contains("1 skipped as malformed"), "{stdout}");
    assert!(stderr.contains("skipped"), "the reason is reported: {stderr}");
    assert!(ok(d, &["lookup", "--called", "+49401234500", "--cli", "+494098765"]).contains("Kim Kunde"));

    ok(
        d,
        &[
            "user",
            "set-method",
            "acme.alice",
            "--code",
            "default",
            "--status",
            "*",
            "--method",
            "forward",
            "--target",
            "+49 170 555",
        ],
    );
    let out = ok(d, &["lookup", "--called", "+49401234500", "--cli", "+494098765"]);
    assert!(out.contains("forward to +49 170 555"), "{out}");
    assert!(fails(d, &["user", "set-method", "acme.alice", "--code", "*", "--status", "*", "--method", "forward"])
        .contains("needs --target"));

    ok(d, &["user", "status", "acme.alice", "dnd", "--for", "1h"]);
    assert!(ok(d, &["lookup", "--called", "+49401234500", "--cli", "+494098765"]).contains("status   do_not_disturb"));
    ok(d, &["user", "status", "acme.alice", "clear"]);

    ok(d, &["user", "assign", "acme.alice", "--number", "040 98765", "--code", "blocked"]);
    let out = ok(d, &["lookup", "--called", "+49401234500", "--cli", "+494098765"]);
    assert!(out.contains("code     blocked  (assigned by the user to this number)"), "{out}");

    let backup = d.join("backup.jsonl");
    ok(d, &["backup", backup.to_str().unwrap()]);
    ok(d, &["user", "remove", "acme.alice"]);
    assert!(fails(d, &["lookup", "--called", "+49401234500", "--cli", "+494098765"]).contains("belongs to no user"));
    ok(d, &["restore", backup.to_str().unwrap()]);
    assert!(ok(d, &["lookup", "--called", "+49401234500", "--cli", "+494098765"]).contains("blocked"));
}

#[test]
fn mistakes_get_errors_that_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(fails(d, &["import", "--user", "nobody", "."]).contains("create it with `contactbridge user add"));
    assert!(fails(d, &["lookup", "--called", "+4930901820", "--cli", "1", "--at", "yesterday"]).contains("RFC 3339"));
    let e = fails(d, &["--config", "/nonexistent/cb.toml", "user", "list"]);
    assert!(e.contains("does not exist"), "{e}");
    let help = ok(d, &["--help"]);
    assert!(help.contains("serve --demo") && help.contains("lookup"), "{help}");
}

/// Logs written to a file or pipe carry no ANSI colour; `[log] format = "json"`
/// (here through its variable) writes one JSON object per line.
#[test]
fn logs_to_a_pipe_are_plain_text_or_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let run = |format: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_contactbridge"));
        cmd.arg("--data-dir").arg(dir.path()).arg("demo").env_remove("CONTACTBRIDGE_CONFIG");
        cmd.env("CONTACTBRIDGE_LOG", "debug");
        if let Some(f) = format {
            cmd.env("CONTACTBRIDGE_LOG__FORMAT", f);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stderr).unwrap()
    };
    let text = run(None);
    assert!(text.lines().count() > 0, "debug logging wrote something");
    assert!(!text.contains('\u{1b}'), "no escape sequences in logs to a pipe:\n{text}");
    let json = run(Some("json"));
    assert!(json.lines().count() > 0);
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_contactbridge"))
        .args(["user", "list"])
        .env_remove("CONTACTBRIDGE_CONFIG")
        .env("CONTACTBRIDGE_LOG__FORMAT", "xml")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("configuration is invalid") && err.contains("xml"), "{err}");
}

/// `import` of nothing but malformed items fails (exit status not 0); a file with one good
/// item beside bad ones, imported twice, does not.
#[test]
fn import_fails_when_every_item_was_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["user", "add", "acme.alice", "--tenant", "acme"]);
    let files = tempfile::tempdir().unwrap();
    let bad = files.path().join("bad.vcf");
    std::fs::write(&bad, "BEGIN:VCARD\r\nVERSION:3.0\r\nEND:VCARD\r\nBEGIN:VCARD\r\nNOT A CARD\r\n").unwrap();
    let out = cb(d, &["import", "--user", "acme.alice", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "every item rejected must fail:\n{stderr}");
    assert!(stderr.contains("nothing imported"), "{stderr}");
    let mixed = files.path().join("mixed.vcf");
    std::fs::write(
        &mixed,
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Good Card\r\nTEL:+49 30 1234567\r\nEND:VCARD\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nEND:VCARD\r\n",
    )
    .unwrap();
    ok(d, &["import", "--user", "acme.alice", mixed.to_str().unwrap()]);
    ok(d, &["import", "--user", "acme.alice", mixed.to_str().unwrap()]);
}

/// `lookup --json` names the matched contact and the record it is, as the text output does.
#[test]
fn lookup_json_names_the_matched_contact_and_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["demo"]);
    let json = ok(d, &["lookup", "--called", "+4930901820", "--cli", "0049301234567", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let first = &v["decision"]["candidates"][0];
    assert_eq!(first["name"], "Erika Mustermann", "{first}");
    assert_eq!(first["company"], "ACME GmbH", "{first}");
    let reference = &first["reference"];
    for key in ["account", "collection", "id"] {
        assert!(reference[key].as_str().is_some_and(|s| !s.is_empty()), "{key} in {reference}");
    }
}

/// Logs written to a file or pipe carry no ANSI colour codes.
#[test]
fn logs_to_a_file_have_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = Command::new(env!("CARGO_BIN_EXE_contactbridge"))
        .arg("--data-dir")
        .arg(d)
        .args(["demo"])
        .env_remove("CONTACTBRIDGE_CONFIG")
        .env("CONTACTBRIDGE_LOG", "debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEBUG") || stderr.contains("INFO"), "some log lines: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "no escape sequences in logs to a pipe: {stderr:?}");
}
