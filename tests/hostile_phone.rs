//! Hostile input at the phone-system interfaces of issue 14: the HTTP lookup
//! (through real `curl`) and the LDAP directory (through `ldapsearch`,
//! `ldapdelete` and raw bytes on the socket). Each answer is checked for a
//! clear refusal, a bounded size, and a server that keeps serving.

mod support;

use std::io::{Read, Write};
use support::lookup::{curl, enc, ldapsearch, Fixture, Ldap, DEMO_DID, ERIKA_CLI};

const USER_DN: &str = "ou=demo,ou=demo,dc=contactbridge";

/// The server still answers a good lookup.
async fn still_serves(f: &Fixture) {
    let url = f.url(&format!("/lookup/v1/name?key={}&called={}&cli={}", f.demo_tsps, enc(DEMO_DID), enc(ERIKA_CLI)));
    let r = curl(&[&url]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "Erika Mustermann"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_junk_clis_are_400_with_a_short_reason() {
    let f = Fixture::start().await;
    let long = "1".repeat(60_000);
    let long_unicode = "😀".repeat(300);
    for (cli, expect) in [
        (long.as_str(), "at most 256"),
        (long_unicode.as_str(), "at most 256"),
        ("+49 30 12a4567", "CLI"),
        ("😀😀😀", "CLI"),
    ] {
        for route in ["name", "decision"] {
            let url =
                f.url(&format!("/lookup/v1/{route}?key={}&called={}&cli={}", f.demo_tsps, enc(DEMO_DID), enc(cli)));
            let r = curl(&[&url]).await;
            assert_eq!(r.status, 400, "{route} {}: {r:?}", &cli[..cli.len().min(20)]);
            assert!(r.reason().contains(expect), "{route}: {}", r.reason());
            assert!(r.reason().len() < 400, "{route}: the answer is {} bytes", r.reason().len());
            eprintln!(
                "{route}: a {}-character CLI answers 400 with a {}-byte reason",
                cli.chars().count(),
                r.reason().len()
            );
        }
    }
    // A called number past the bound, a missing parameter, bad percent-encoding, a repeated parameter.
    let k = &f.demo_tsps;
    for (query, expect) in [
        (format!("key={k}&called={}&cli=1", "9".repeat(300)), "called"),
        (format!("key={k}&cli={}", enc(ERIKA_CLI)), "missing query parameter called"),
        // Bytes that are not UTF-8 arrive as U+FFFD, which no number contains.
        (format!("key={k}&called={}&cli=%FF%FE", enc(DEMO_DID)), "calling number (CLI)"),
        (format!("key={k}&called={}&cli=1&cli=2", enc(DEMO_DID)), "query is not valid"),
    ] {
        let r = curl(&[&f.url(&format!("/lookup/v1/name?{query}"))]).await;
        assert_eq!(r.status, 400, "{query}: {r:?}");
        assert!(r.reason().contains(expect), "{query}: {}", r.reason());
    }
    // Text without digits is a withheld number to the CLI parser (as in ResolveCall): no name, nothing else.
    let url =
        f.url(&format!("/lookup/v1/name?key={k}&called={}&cli={}", enc(DEMO_DID), enc("'; DROP TABLE calls; --")));
    let r = curl(&[&url]).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""), "{r:?}");
    // Full-width digits are digits.
    let url =
        f.url(&format!("/lookup/v1/name?key={k}&called={}&cli={}", enc(DEMO_DID), enc("＋４９３０１２３４５６７")));
    let r = curl(&[&url]).await;
    assert!(r.status == 200 || r.status == 400, "{r:?}");
    still_serves(&f).await;
    assert_eq!(f.calls_of_demo(), 0, "nothing hostile is recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_methods_paths_and_keys_that_are_not_the_interface() {
    let f = Fixture::start().await;
    let path = format!("/lookup/v1/name?key={}&called={}&cli={}", f.demo_tsps, enc(DEMO_DID), enc(ERIKA_CLI));
    // HEAD answers like GET without a body; POST and PUT are not routes.
    let r = curl(&["-I", &f.url(&path)]).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""), "{r:?}");
    for m in ["POST", "PUT", "DELETE"] {
        let r = curl(&["-X", m, &f.url(&path)]).await;
        assert_eq!(r.status, 405, "{m}: {r:?}");
        assert!(!r.body.contains("Erika"));
    }
    // Paths that are not the two routes, sent as written (--path-as-is).
    for p in [
        "/lookup/v1/../v1/name",
        "/lookup/v1/name/../../../etc/passwd",
        "/lookup/v1/%2e%2e/name",
        "/lookup/v1//name",
        "/lookup/v2/name",
        "/",
        "/lookup/v1/NAME",
    ] {
        let q = format!("{p}?key={}&called={}&cli={}", f.demo_tsps, enc(DEMO_DID), enc(ERIKA_CLI));
        let r = curl(&["--path-as-is", &f.url(&q)]).await;
        assert_eq!(r.status, 404, "{p}: {r:?}");
        assert!(!r.body.contains("Erika") && !r.body.contains("root:"), "{p}: {r:?}");
    }
    // Keys that are too long, binary, or near misses.
    let base = format!("/lookup/v1/name?called={}&cli={}", enc(DEMO_DID), enc(ERIKA_CLI));
    for key in ["x".repeat(10_000), "cb_00000000_AAAA".into(), "%00%01".into(), String::new()] {
        let r = curl(&[&f.url(&format!("{base}&key={key}"))]).await;
        assert_eq!(r.status, 401, "{}: {r:?}", &key[..key.len().min(20)]);
        assert!(r.reason().len() < 200 && r.body.is_empty());
    }
    let r = curl(&["-H", &format!("Authorization: Bearer {}", "y".repeat(6_000)), &f.url(&base)]).await;
    assert_eq!(r.status, 401, "{r:?}");
    still_serves(&f).await;
}

/// Sends raw bytes to the directory and returns what came back before it closed.
fn raw_ldap(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_junk_bytes_and_oversized_messages_close_the_connection_only() {
    // Idle connections close after 2 s here (300 s by default).
    let l = Ldap::start_with(500, false, std::time::Duration::from_secs(2)).await;
    let port = l.port;
    let started = std::time::Instant::now();
    let answers = tokio::task::spawn_blocking(move || {
        [
            raw_ldap(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            raw_ldap(port, &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01]), // claims 4 GiB
            raw_ldap(port, &[0x30; 100_000]),
            raw_ldap(port, &[0xff; 10]),
        ]
    })
    .await
    .unwrap();
    for a in &answers {
        assert!(a.len() < 200, "at most a notice of disconnection: {} bytes", a.len());
    }
    // Junk and a message claiming 4 GiB wait at most the idle timeout (the client's read timeout is 10 s each).
    let took = started.elapsed();
    eprintln!("four hostile connections closed within {took:?}");
    assert!(took < std::time::Duration::from_secs(12), "{took:?}");
    // The directory still answers.
    let s =
        ldapsearch(&[], &["-H", &l.url(), "-D", USER_DN, "-w", &l.demo_tsps, "-b", USER_DN, "(cn=Erika*)", "cn"]).await;
    assert_eq!((s.code, s.values("cn")), (0, vec![vec!["Erika Mustermann"]]), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_hostile_filters_and_writes_get_clear_answers() {
    let l = Ldap::start(500, false).await;
    let url = l.url();
    let search = |filter: String| {
        let (url, key) = (url.clone(), l.demo_tsps.clone());
        async move { ldapsearch(&[], &["-H", &url, "-D", USER_DN, "-w", &key, "-b", USER_DN, &filter, "cn"]).await }
    };
    // A long value, a long number, Unicode, filter syntax in values (escaped), deep nesting.
    let long = format!("(cn=*{}*)", "a".repeat(30_000));
    let s = search(long).await;
    assert_eq!((s.code, s.entries.len()), (0, 0), "{s:?}");
    let s = search(format!("(telephoneNumber={})", "1".repeat(30_000))).await;
    assert_eq!((s.code, s.entries.len()), (0, 0), "{s:?}");
    let s = search("(cn=*😀*)".into()).await;
    assert_eq!((s.code, s.entries.len()), (0, 0), "{s:?}");
    let s = search("(cn=\\2a)".into()).await;
    assert_eq!((s.code, s.entries.len()), (0, 0), "an escaped * is no wildcard: {s:?}");
    let deep = format!("{}(cn=Erika*){}", "(&".repeat(200), ")".repeat(200));
    let s = search(deep).await;
    assert!(s.entries.len() <= 1, "{s:?}");
    assert!(s.code == 0 || s.code == 2 || s.code == 255 || s.code == 1, "{s:?}");
    // A number filter with a made-up attribute or an ordering rule matches nothing, and says nothing wrong.
    let s = search("(telephoneNumber>=0)".into()).await;
    assert_eq!((s.code, s.entries.len()), (0, 0), "{s:?}");

    // Writes: read-only, unwillingToPerform (53).
    let out = tokio::task::spawn_blocking({
        let (url, key) = (url.clone(), l.demo_tsps.clone());
        move || {
            std::process::Command::new("ldapdelete")
                .args(["-x", "-H", &url, "-D", USER_DN, "-w", &key, &format!("uid=x,{USER_DN}")])
                .env("LDAPCONF", "/dev/null")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(53), "{}", String::from_utf8_lossy(&out.stderr));
    // Still serving.
    let s = search("(cn=Erika*)".into()).await;
    assert_eq!(s.values("cn"), vec![vec!["Erika Mustermann"]], "{s:?}");
}
