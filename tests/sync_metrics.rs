//! Sync metrics at the interface: `serve` runs syncs (through the CLI, over its
//! admin socket), then `GET /metrics` is scraped as Prometheus does. By connector kind
//! (files), and per account and collection against a real Radicale and the fake Graph
//! (throttling, a fenced mailbox): values, the cap on series, removal, hostile names.

#[path = "../connectors/graph/tests/support/fake_graph.rs"]
mod fake_graph;

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
fn syncs_show_up_per_connector_kind_and_collections_by_pseudonym() {
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
    // Per account by its id; collections (here: paths) only by pseudonym, users never.
    assert!(after.contains(&format!("account=\"{secret_name}\"")), "{after}");
    for leak in ["demo", "two.vcf", "soon-gone"] {
        assert!(!after.contains(leak), "{leak} in the metrics:\n{after}");
    }
}

/// `serve --demo` with its own metrics and web listeners, killed on drop.
struct Serve {
    child: std::process::Child,
    metrics: u16,
    web: u16,
    data: std::path::PathBuf,
}

impl Serve {
    fn start(data: &Path, envs: &[(&str, &str)]) -> Serve {
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (metrics, web) = (free(), free());
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(data)
            .args(["serve", "--demo", "--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .env("CONTACTBRIDGE_GRPC__LISTEN", "127.0.0.1:0")
            .env("CONTACTBRIDGE_WEB__LISTEN", format!("127.0.0.1:{web}"))
            .envs(envs.iter().copied())
            .env_remove("CONTACTBRIDGE_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(data.join("admin.sock")).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", metrics)).is_err()
        {
            assert!(Instant::now() < deadline, "serve did not start");
            assert!(child.try_wait().unwrap().is_none(), "serve ended");
            std::thread::sleep(Duration::from_millis(50));
        }
        Serve { child, metrics, web, data: data.to_path_buf() }
    }

    /// Runs the CLI against this server; asserts the exit code.
    fn cb(&self, args: &[&str], code: i32) -> String {
        let o = cb(self.data.parent().unwrap(), &self.data, args);
        let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.status.code(), Some(code), "{args:?}\n{out}\n{err}");
        out.into_owned()
    }

    /// (collection id, metrics pseudonym) of each collection, from `account show`.
    fn pseudonyms(&self, account: &str) -> Vec<(String, String)> {
        let show = self.cb(&["account", "show", account], 0);
        let lines: Vec<&str> = show.lines().collect();
        lines
            .windows(2)
            .filter_map(|w| {
                let label = w[1].trim().strip_prefix("metrics collection=\"")?.strip_suffix('"')?;
                let id = w[0].trim_start().split(" [").next()?;
                Some((id.to_string(), label.to_string()))
            })
            .collect()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every sample line of a scrape is `name{labels} value` with labels that parse: nothing
/// from data broke out of its quotes.
fn assert_well_formed(scrape: &str) {
    let body = scrape.split("\r\n\r\n").nth(1).expect("a body");
    for line in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        assert!(value.parse::<f64>().is_ok(), "{line:?}");
        if let Some((name, labels)) = series.split_once('{') {
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line:?}");
            let labels = labels.strip_suffix('}').unwrap_or_else(|| panic!("{line:?}"));
            // label="value" pairs, values escaped: walk them.
            let mut rest = labels;
            while !rest.is_empty() {
                let (key, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("{line:?}"));
                assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line:?}");
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => {
                            chars.next();
                        }
                        Some((i, '"')) => break i,
                        Some(_) => {}
                        None => panic!("unterminated label in {line:?}"),
                    }
                };
                rest = after[end + 1..].strip_prefix(',').unwrap_or(&after[end + 1..]);
            }
        }
    }
}

fn tool(name: &str) -> std::path::PathBuf {
    let tools = std::env::var_os("CONTACTBRIDGE_TOOLS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"));
    let path = tools.join("venv/bin").join(name);
    assert!(path.exists(), "{} is missing: run tests/setup-tools.sh", path.display());
    path
}

const DAV_USER: &str = "dana";
const DAV_PASSWORD: &str = "Radicale-Metric-4410";

/// A real Radicale (htpasswd auth) with collections seeded into its storage, killed on drop.
struct Radicale {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Radicale {
    fn start(seed: impl FnOnce(&Path)) -> Radicale {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users"), format!("{DAV_USER}:{DAV_PASSWORD}\n")).unwrap();
        seed(&dir.path().join("collections/collection-root").join(DAV_USER));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(tool("radicale"))
            .arg("--server-hosts")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--storage-filesystem-folder")
            .arg(dir.path().join("collections"))
            .args(["--auth-type", "htpasswd", "--auth-htpasswd-encryption", "plain"])
            .arg("--auth-htpasswd-filename")
            .arg(dir.path().join("users"))
            .args(["--logging-level", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start radicale");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(child.try_wait().unwrap().is_none(), "radicale exited");
            assert!(Instant::now() < deadline, "radicale did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Radicale { child, port, _dir: dir }
    }

    /// DELETE of `path` at the server, as another client would.
    fn delete(&self, path: &str) {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{DAV_USER}:{DAV_PASSWORD}"));
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(s, "DELETE {path} HTTP/1.0\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\n\r\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.0 204"), "{answer}");
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn address_book(home: &Path, folder: &str, name: &str, cards: &[(&str, &str, &str)]) {
    let dir = home.join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    let props = serde_json::json!({"tag": "VADDRESSBOOK", "D:displayname": name});
    std::fs::write(dir.join(".Radicale.props"), props.to_string()).unwrap();
    for (uid, fname, tel) in cards {
        let card = format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{fname}\r\nTEL:{tel}\r\nEND:VCARD\r\n");
        std::fs::write(dir.join(format!("{uid}.vcf")), card).unwrap();
    }
}

/// Per account and collection from a real Radicale: the series appear with the sync's
/// figures under pseudonyms `account show` maps back; a hostile collection name (10 kB of
/// quotes, braces, backslashes and newlines) neither leaks nor breaks the
/// exposition; the cap holds and counts what it drops; a removed account's series go and
/// free their room; a vanished collection's series go; the web window does not serve them.
#[test]
fn series_per_account_and_collection_from_radicale_are_capped_escaped_and_removed() {
    // The name (displayname) is hostile. (An href with quotes, braces or a space gets a
    // 400 from Radicale: the DAV connector sends such hrefs unencoded; not a metrics matter.)
    let hostile_folder = "evil-book";
    let hostile_name = format!("{}\"}} 1\n# TYPE x counter\n{}", "{\"\\\n".repeat(2500), "z".repeat(100));
    let radicale = Radicale::start(|home| {
        address_book(
            home,
            "book",
            "Kunden",
            &[("m1", "Mia Metric", "+49 30 1111 2222"), ("m2", "Max Metric", "+49 30 1111 3333")],
        );
        address_book(home, hostile_folder, &hostile_name, &[("h1", "Hanna Hostile", "+49 30 1111 4444")]);
    });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Room for account a (1 + 2 collections) and account b itself, not b's collections.
    let serve = Serve::start(&data, &[("CONTACTBRIDGE_METRICS__MAX_COLLECTION_SERIES", "4")]);
    let pw = dir.path().join("pw");
    std::fs::write(&pw, DAV_PASSWORD).unwrap();
    let url = format!("http://127.0.0.1:{}/", radicale.port);
    for id in ["dav-a", "dav-b"] {
        serve.cb(
            &["account", "add", "carddav", "--id", id, "--user", "demo", "--url", &url, "--username", DAV_USER]
                .into_iter()
                .chain(["--password-file", pw.to_str().unwrap()])
                .collect::<Vec<_>>(),
            0,
        );
    }
    serve.cb(&["sync", "--once", "--account", "dav-a"], 0);
    let labels = serve.pseudonyms("dav-a");
    assert_eq!(labels.len(), 2, "{labels:?}");
    let book = &labels.iter().find(|(id, _)| id.ends_with("/book/")).unwrap_or_else(|| panic!("{labels:?}")).1;
    let evil = &labels.iter().find(|(id, _)| !id.ends_with("/book/")).unwrap().1;
    assert!(book.starts_with('c') && book.len() == 17 && book != evil, "{labels:?}");

    let m = scrape(serve.metrics);
    assert_well_formed(&m);
    let part = |name: &str, c: &str, extra: &str| {
        format!("contactbridge_sync_collection_{name}{{account=\"dav-a\",collection=\"{c}\",collection_kind=\"address_book\"{extra}}}")
    };
    assert_eq!(value(&m, &part("records_total", book, ",op=\"upserted\"")), Some(2.0), "{m}");
    assert_eq!(value(&m, &part("records_total", book, ",op=\"removed\"")), Some(0.0), "{m}");
    assert_eq!(value(&m, &part("records_total", evil, ",op=\"upserted\"")), Some(1.0), "{m}");
    assert_eq!(value(&m, &part("throttle_waits_total", book, "")), Some(0.0), "{m}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let last = value(&m, &part("last_success_timestamp_seconds", book, "")).unwrap_or_else(|| panic!("{m}"));
    assert!((0.0..120.0).contains(&(now - last)), "{last} {now}");
    let took = value(&m, &part("last_duration_seconds", book, "")).unwrap();
    assert!(took > 0.0 && took < 60.0, "{took}");
    let account_last = value(&m, r#"contactbridge_sync_account_last_success_timestamp_seconds{account="dav-a"}"#);
    assert!(account_last.is_some_and(|t| (0.0..120.0).contains(&(now - t))), "{m}");
    for leak in ["evil", "Kunden", "zzzz", "/dana/", DAV_USER] {
        assert!(!m.contains(leak), "{leak:?} in the metrics:\n{m}");
    }
    assert_eq!(value(&m, "contactbridge_sync_series_dropped_total"), Some(0.0), "{m}");

    // Records removed at the source count as removed.
    radicale.delete(&format!("/{DAV_USER}/book/m2.vcf"));
    serve.cb(&["sync", "--once", "--account", "dav-a"], 0);
    let m = scrape(serve.metrics);
    assert_eq!(value(&m, &part("records_total", book, ",op=\"removed\"")), Some(1.0), "{m}");
    assert_eq!(value(&m, &part("records_total", book, ",op=\"upserted\"")), Some(2.0), "{m}");

    // The cap: b is tracked, its two collections are not, and the drops are counted.
    serve.cb(&["sync", "--once", "--account", "dav-b"], 0);
    let m = scrape(serve.metrics);
    assert_eq!(value(&m, "contactbridge_sync_series_dropped_total"), Some(2.0), "{m}");
    assert!(m.contains(r#"contactbridge_sync_account_last_duration_seconds{account="dav-b"}"#), "{m}");
    assert!(!m.contains(r#"collection_records_total{account="dav-b""#), "{m}");
    assert_eq!(value(&m, r#"contactbridge_sync_records_total{kind="carddav",op="upserted"}"#), Some(5.0), "{m}");

    // Removing a frees its room: b's collections get their series.
    serve.cb(&["account", "remove", "dav-a"], 0);
    let m = scrape(serve.metrics);
    assert!(!m.contains("account=\"dav-a\""), "a's series are gone:\n{m}");
    serve.cb(&["sync", "--once", "--account", "dav-b"], 0);
    let m = scrape(serve.metrics);
    assert_eq!(value(&m, "contactbridge_sync_series_dropped_total"), Some(2.0), "{m}");
    let b = serve.pseudonyms("dav-b");
    for (_, c) in &b {
        assert!(m.contains(&format!("account=\"dav-b\",collection=\"{c}\"")), "{c}:\n{m}");
    }

    // A collection gone at the source: its series go with the next sync that lists.
    radicale.delete(&format!("/{DAV_USER}/book/"));
    serve.cb(&["sync", "--once", "--rediscover", "--account", "dav-b"], 0);
    let m = scrape(serve.metrics);
    let gone = &b.iter().find(|(id, _)| id.ends_with("/book/")).unwrap().1;
    assert!(!m.contains(gone.as_str()), "{gone} stays:\n{m}");
    assert_well_formed(&m);

    // Operator-facing only: the web window (tenant-facing) does not serve the metrics.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", serve.web)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(!body.contains("contactbridge_sync"), "{body}");
}

/// Per collection from the fake Graph: the waits a throttling Graph (429 + Retry-After)
/// caused are counted on the collection that waited, and a mailbox fenced off by policy
/// (403) is asked once in a sync — its other collections fail for the same reason
/// without a request, each counted as a forbidden error — while the other mailbox syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_throttling_waits_and_a_fenced_mailbox_per_collection() {
    use fake_graph::{RetryForm, ThrottleMode};
    let fake = fake_graph::FakeGraph::start().await;
    fake.put("dana@contoso.example/contacts", fake_graph::contact("c1", "Erika Muster", "030 1234567", "e@x", &[]));
    fake.put("mia@contoso.example/contacts", fake_graph::contact("c2", "Mia Muster", "030 7654321", "m@x", &[]));
    fake.fence("otto@contoso.example");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, fake_graph::CLIENT_SECRET).unwrap();
    let serve = std::sync::Arc::new(Serve::start(&data, &[]));
    let run = |args: Vec<String>, code: i32| {
        let serve = serve.clone();
        tokio::task::spawn_blocking(move || serve.cb(&args.iter().map(String::as_str).collect::<Vec<_>>(), code))
    };
    let add = |id: &str, mailboxes: &[&str]| {
        let mut a: Vec<String> = ["account", "add", "graph", "--id", id, "--user", "demo"].map(String::from).into();
        a.extend(["--tenant", fake_graph::TENANT, "--client-id", fake_graph::CLIENT_ID].map(String::from));
        a.extend(["--client-secret-file".into(), secret.to_str().unwrap().into()]);
        for m in mailboxes {
            a.extend(["--mailbox".to_string(), m.to_string()]);
        }
        a.extend(["--authority".into(), fake.authority(), "--graph-base".into(), fake.base.clone()]);
        a.push("--allow-plain-http".into());
        a
    };
    run(add("g-throttled", &["mia@contoso.example"]), 0).await.unwrap();
    run(add("g-fenced", &["dana@contoso.example", "otto@contoso.example"]), 0).await.unwrap();
    let sync = |id: &str, code: i32| run(["sync", "--once", "--account", id].map(String::from).into(), code);

    // First sync complete (the listing is kept); then Graph throttles the next two requests.
    sync("g-throttled", 0).await.unwrap();
    fake.throttle(ThrottleMode::Next(2), RetryForm::Seconds(1));
    sync("g-throttled", 0).await.unwrap();
    assert_eq!(fake.stats().throttled, 2);
    let serve2 = serve.clone();
    let labels = tokio::task::spawn_blocking(move || serve2.pseudonyms("g-throttled")).await.unwrap();
    assert_eq!(labels.len(), 6, "{labels:?}");
    let m = scrape(serve.metrics);
    let series = |name: &str, account: &str, c: &str, kind: &str, extra: &str| {
        format!(
            "contactbridge_sync_collection_{name}{{account=\"{account}\",collection=\"{c}\",collection_kind=\"{kind}\"{extra}}}"
        )
    };
    let mut waits = 0.0;
    let mut waited = 0.0;
    for (id, c) in &labels {
        let kind = if id.ends_with("/contacts") { "address_book" } else { continue };
        waits += value(&m, &series("throttle_waits_total", "g-throttled", c, kind, "")).unwrap();
        waited += value(&m, &series("throttle_wait_seconds_total", "g-throttled", c, kind, "")).unwrap();
        assert_eq!(value(&m, &series("records_total", "g-throttled", c, kind, ",op=\"upserted\"")), Some(1.0), "{m}");
    }
    assert_eq!(waits, 2.0, "both waits on the contacts collection, which waited:\n{m}");
    assert!((2.0..2.5).contains(&waited), "{waited}\n{m}");
    let all_waits: f64 = m
        .lines()
        .filter(|l| l.starts_with("contactbridge_sync_collection_throttle_waits_total{account=\"g-throttled\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(all_waits, 2.0, "no other collection waited:\n{m}");

    // The fenced mailbox: asked by the listing and by its first collection, then left out.
    fake.reset_stats();
    sync("g-fenced", 2).await.unwrap();
    let stats = fake.stats();
    let otto = stats.by_mailbox.get("otto@contoso.example").copied().unwrap_or(0);
    assert!(otto <= 2, "the fenced mailbox was asked {otto} times: {stats:?}");
    assert!(stats.by_mailbox.get("dana@contoso.example").copied().unwrap_or(0) >= 6, "{stats:?}");
    let serve2 = serve.clone();
    let labels = tokio::task::spawn_blocking(move || serve2.pseudonyms("g-fenced")).await.unwrap();
    assert_eq!(labels.len(), 12, "{labels:?}");
    let m = scrape(serve.metrics);
    for (id, c) in &labels {
        let forbidden = m
            .lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "contactbridge_sync_collection_errors_total{{account=\"g-fenced\",collection=\"{c}\""
                ))
            })
            .filter(|l| l.contains("error=\"forbidden\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        let success = m.lines().any(|l| {
            l.starts_with(&format!(
                "contactbridge_sync_collection_last_success_timestamp_seconds{{account=\"g-fenced\",collection=\"{c}\""
            ))
        });
        if id.starts_with("otto@") {
            assert_eq!((forbidden, success), (1.0, false), "{id}:\n{m}");
        } else {
            assert_eq!((forbidden, success), (0.0, true), "{id}:\n{m}");
        }
    }
    assert_eq!(value(&m, r#"contactbridge_sync_account_errors_total{account="g-fenced",error="forbidden"}"#), None);
    for leak in ["otto", "dana", "contoso.example"] {
        assert!(!m.contains(leak), "{leak} in the metrics:\n{m}");
    }
}
