//! Sync metrics at the interface: `serve` runs syncs (through the CLI, over its
//! admin socket), then `GET /metrics` is scraped as Prometheus does.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_contactbridge");

fn cb(cwd: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(cwd)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CONTACTBRIDGE_CONFIG")
        .output()
        .unwrap()
}

fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"), "{body}");
    body
}

/// The value of the series `name{labels}` in a scrape.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn syncs_show_up_per_connector_kind_without_account_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let work = dir.path().to_path_buf();
    std::fs::write(
        work.join("two.vcf"),
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:m1\r\nFN:Mia Metric\r\nTEL:+49 30 1111 2222\r\nEND:VCARD\r\n\
         BEGIN:VCARD\r\nVERSION:3.0\r\nUID:m2\r\nFN:Max Metric\r\nTEL:+49 30 1111 3333\r\nEND:VCARD\r\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--demo", "--metrics-listen", &format!("127.0.0.1:{port}")])
        .env("CONTACTBRIDGE_GRPC__LISTEN", "127.0.0.1:0")
        .env("CONTACTBRIDGE_WEB__LISTEN", "127.0.0.1:0")
        .env_remove("CONTACTBRIDGE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(data.join("admin.sock")).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    {
        assert!(Instant::now() < deadline, "serve did not start");
        assert!(child.try_wait().unwrap().is_none(), "serve ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _child = Kill(child);
    let before = scrape(port);
    assert!(
        before.contains("contactbridge_grpc_runtime_lateness_seconds"),
        "the gRPC series keep their names:\n{before}"
    );
    assert!(!before.contains("contactbridge_sync_runs_total"), "no sync yet:\n{before}");

    let secret_name = "acct-secret-name-7";
    let add = |id: &str, path: &str| {
        let o = cb(&work, &data, &["account", "add", "files", "--id", id, "--user", "demo", path]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    add(secret_name, "two.vcf");
    std::fs::create_dir(work.join("soon-gone")).unwrap();
    add("gone-files", "soon-gone");
    std::fs::remove_dir(work.join("soon-gone")).unwrap();
    assert!(cb(&work, &data, &["sync", "--once", "--account", secret_name]).status.success());
    assert!(cb(&work, &data, &["sync", "--once", "--account", secret_name]).status.success());
    let failed = cb(&work, &data, &["sync", "--once", "--account", "gone-files"]);
    assert_eq!(failed.status.code(), Some(1), "{}", String::from_utf8_lossy(&failed.stderr));

    let after = scrape(port);
    assert!(after.contains("# TYPE contactbridge_sync_runs counter"), "{after}");
    assert_eq!(
        value(&after, r#"contactbridge_sync_runs_total{kind="files",outcome="complete"}"#),
        Some(2.0),
        "{after}"
    );
    assert_eq!(value(&after, r#"contactbridge_sync_runs_total{kind="files",outcome="failed"}"#), Some(1.0), "{after}");
    assert_eq!(value(&after, r#"contactbridge_sync_records_total{kind="files",op="upserted"}"#), Some(2.0), "{after}");
    assert_eq!(
        value(&after, r#"contactbridge_sync_duration_seconds_count{kind="files",outcome="complete"}"#),
        Some(2.0),
        "{after}"
    );
    let failures: f64 = after
        .lines()
        .filter(|l| l.starts_with("contactbridge_sync_failures_total{kind=\"files\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(failures, 1.0, "one failure, by its error kind:\n{after}");
    let last = value(&after, r#"contactbridge_sync_last_success_timestamp_seconds{kind="files"}"#).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(now - last >= 0.0 && now - last < 120.0, "last success {last}, now {now}");
    // Labels are bounded: no account ids, users or paths.
    for leak in [secret_name, "gone-files", "demo", "two.vcf", "soon-gone"] {
        assert!(!after.contains(leak), "{leak} in the metrics:\n{after}");
    }
}
