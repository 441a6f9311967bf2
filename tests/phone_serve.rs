//! `contactbridge serve` starts the HTTP lookup and the LDAP directory when
//! configured (`CONTACTBRIDGE_LOOKUP__LISTEN`, `CONTACTBRIDGE_LDAP__LISTEN`),
//! and they answer `curl` and `ldapsearch` with the demo's tsps key.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::lookup::{curl, ldapsearch};
use support::tools::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_lookups_and_directory_searches_with_the_demo_key() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, web, lookup, ldap) = (free_port(), free_port(), free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_contactbridge"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--demo", "--metrics-listen", "off"])
        .env("CONTACTBRIDGE_GRPC__LISTEN", format!("127.0.0.1:{grpc}"))
        .env("CONTACTBRIDGE_WEB__LISTEN", format!("127.0.0.1:{web}"))
        .env("CONTACTBRIDGE_LOOKUP__LISTEN", format!("127.0.0.1:{lookup}"))
        .env("CONTACTBRIDGE_LDAP__LISTEN", format!("127.0.0.1:{ldap}"))
        .env_remove("CONTACTBRIDGE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Ends the server if an assertion fails before the graceful stop below.
    struct KillOnDrop(i32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let guard = KillOnDrop(child.id() as i32);
    let stdout = child.stdout.take().unwrap();
    let printed = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.starts_with("LDAP directory on");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    })
    .await
    .unwrap();
    assert!(
        printed.iter().any(|l| l == &format!("HTTP lookup on http://127.0.0.1:{lookup}/lookup/v1/")),
        "{printed:?}"
    );
    assert!(printed.iter().any(|l| l == &format!("LDAP directory on ldap://127.0.0.1:{ldap}")), "{printed:?}");

    let url = format!("http://127.0.0.1:{lookup}/lookup/v1/name?key=demo-tsps-key&called=%2B4930901820&cli=0301234567");
    let r = curl(&[&url]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "Erika Mustermann"), "{r:?}");
    let r = curl(&[&url.replace("demo-tsps-key", "demo-admin-key")]).await;
    assert_eq!(r.status, 403, "{r:?}");

    let dn = "ou=demo,ou=demo,dc=contactbridge";
    let s = ldapsearch(
        &[],
        &[
            "-H",
            &format!("ldap://127.0.0.1:{ldap}"),
            "-D",
            dn,
            "-w",
            "demo-tsps-key",
            "-b",
            dn,
            "(mobile=+491712345678)",
            "cn",
        ],
    )
    .await;
    assert_eq!((s.code, s.values("cn")), (0, vec![vec!["Erika Mustermann"]]), "{s:?}");

    // SIGTERM: a graceful stop with both listeners running.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    std::mem::forget(guard); // once reaped, the pid may name another process
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "{status:?}");
}
