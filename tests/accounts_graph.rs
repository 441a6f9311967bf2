//! Graph accounts: an organisation-wide one against the Graph connector's fake
//! (mailboxes mapped to users, each indexed with its user's region), and a
//! delegated one against the real npm oauth2-mock-server (from
//! tests/setup-tools.sh): the refresh token the identity provider rotates is
//! sealed back into the account's secret, and never lands in clear on disk.

#[path = "../connectors/graph/tests/support/fake_graph.rs"]
mod fake_graph;

use contactbridge::accounts::{AccountSpec, AccountStore as _, Registry, SourceKind};
use contactbridge::secrets::SecretKey;
use contactbridge::store::{SledStore, UserStore as _};
use contactbridge::sync::scheduler::Schedule;
use contactbridge::user::{self, UserId, UserProfile};
use contactbridge_graph::{Credential, GraphAccount, Secret};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FIRST_REFRESH_TOKEN: &str = "first-refresh-token-Mole-8812";

struct OAuthMock {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for OAuthMock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_oauth_mock() -> OAuthMock {
    let tools = std::env::var_os("CONTACTBRIDGE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"));
    let bin = tools.join("node/node_modules/.bin/oauth2-mock-server");
    assert!(bin.exists(), "{} is missing: run tests/setup-tools.sh", bin.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(&bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start oauth2-mock-server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "oauth2-mock-server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    OAuthMock { child, port, _dir: dir }
}

#[tokio::test]
async fn a_rotated_refresh_token_is_sealed_back_into_the_account() {
    let oauth = start_oauth_mock();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    user::put_profile(store.as_ref(), &UserProfile::new(UserId::parse("acme.dana").unwrap(), "acme")).unwrap();
    assert!(store.profile(&UserId::parse("acme.dana").unwrap()).unwrap().is_some());
    let key = SecretKey::from_file(&dir.path().join("secret.key"), true).unwrap();
    let registry = Registry::new(store.clone(), key.clone(), Schedule::new("*/15 * * * *", "UTC").unwrap());

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let credential = Credential::DeviceCode { refresh_token: Secret::new(FIRST_REFRESH_TOKEN) };
    let mut g = GraphAccount::new("acme", "app-1", credential, vec!["dana@acme.example".into()]);
    g.token_url = Some(format!("http://127.0.0.1:{}/token", oauth.port));
    g.graph_base = format!("http://127.0.0.1:{closed}/v1.0");
    g.https_only = false;
    registry.add(AccountSpec::new("dana-m365", UserId::parse("acme.dana").unwrap(), SourceKind::Graph(g))).unwrap();
    let open = |sealed: Vec<u8>| String::from_utf8(key.open("dana-m365", &sealed).unwrap()).unwrap();
    assert_eq!(open(store.sealed_secret("dana-m365").unwrap().unwrap()), FIRST_REFRESH_TOKEN);

    // The token endpoint answers (and rotates the refresh token); Graph itself is unreachable.
    assert!(registry.test("dana-m365").await.is_err());
    let rotated = open(store.sealed_secret("dana-m365").unwrap().unwrap());
    assert!(!rotated.is_empty() && rotated != FIRST_REFRESH_TOKEN, "the rotated refresh token was kept");

    // The next use starts from the rotated token, and rotates it again.
    let report = registry.sync("dana-m365").await.unwrap();
    assert!(report.failed() > 0);
    let again = open(store.sealed_secret("dana-m365").unwrap().unwrap());
    assert!(again != rotated && again != FIRST_REFRESH_TOKEN);

    store.flush().unwrap();
    for token in [FIRST_REFRESH_TOKEN, rotated.as_str(), again.as_str()] {
        let mut stack = vec![dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let bytes = std::fs::read(&p).unwrap();
                    assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()), "{}", p.display());
                }
            }
        }
    }
}

#[tokio::test]
async fn an_organisation_wide_account_feeds_each_mapped_user_with_that_users_region() {
    use contactbridge::resolve::{CallQuery, Resolver};
    use contactbridge::store::Store;
    let fake = fake_graph::FakeGraph::start().await;
    // Both write a mobile number without a country code: Dana's region is DE, Otto's AT.
    fake.put(
        "dana@contoso.example/contacts",
        fake_graph::contact("c1", "Erika Muster", "0664 1234567", "e@x.example", &["VIP"]),
    );
    fake.put(
        "otto@contoso.example/contacts",
        fake_graph::contact("c2", "Franz Huber", "0664 1234567", "f@x.example", &[]),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    for (id, did, region) in [("acme.dana", "+49 30 901820", "DE"), ("acme.otto", "+43 1 5334455", "AT")] {
        let mut p = UserProfile::new(UserId::parse(id).unwrap(), "acme");
        p.called_numbers = vec![did.into()];
        p.region = Some(region.into());
        user::put_profile(store.as_ref(), &p).unwrap();
    }
    let key = SecretKey::from_file(&dir.path().join("secret.key"), true).unwrap();
    let registry = Registry::new(store.clone(), key, Schedule::new("*/15 * * * *", "UTC").unwrap());
    let credential = Credential::ClientSecret { secret: Secret::new(fake_graph::CLIENT_SECRET) };
    let mailboxes = vec!["dana@contoso.example".to_string(), "otto@contoso.example".to_string()];
    let mut g = GraphAccount::new(fake_graph::TENANT, fake_graph::CLIENT_ID, credential, mailboxes);
    g.authority = fake.authority();
    g.graph_base = fake.base.clone();
    g.https_only = false;
    let mut spec = AccountSpec::new("contoso", UserId::parse("acme.dana").unwrap(), SourceKind::Graph(g));
    spec.mailbox_users.insert("otto@contoso.example".into(), UserId::parse("acme.otto").unwrap());
    spec.category_codes.insert("VIP".into(), contactbridge::user::HandlingCode::well_known("vip"));
    registry.add(spec).unwrap();
    registry.test("contoso").await.unwrap();

    let report = registry.sync("contoso").await.unwrap();
    for c in report.collections.iter().filter(|c| c.collection.id.ends_with("/contacts")) {
        assert!(c.error.is_none(), "{:?}", c.error);
    }
    let users: Vec<_> =
        report.collections.iter().filter_map(|c| c.user.as_ref().map(|u| u.as_str().to_string())).collect();
    assert!(users.contains(&"acme.dana".to_string()) && users.contains(&"acme.otto".to_string()), "{users:?}");
    let resolver = Resolver::new(store.clone() as Arc<dyn Store>);
    let call = |called: &str, cli: &str| {
        resolver
            .resolve(&CallQuery { called: called.into(), cli: cli.into(), tsps_call_id: None, at: chrono::Utc::now() })
            .unwrap()
    };
    let d = call("+49 30 901820", "+49 664 1234567");
    assert_eq!(d.candidates.len(), 1, "Dana's contact read in DE");
    assert_eq!(
        (d.candidates[0].stored.contact.best_name().as_str(), d.handling_code.as_str()),
        ("Erika Muster", "vip")
    );
    let o = call("+43 1 5334455", "+43 664 1234567");
    assert_eq!(o.candidates.len(), 1, "Otto's contact read in AT, in Otto's index");
    assert_eq!(o.candidates[0].stored.contact.best_name(), "Franz Huber");
    assert!(call("+43 1 5334455", "+49 664 1234567").candidates.is_empty(), "Otto's number is Austrian, not German");
    assert_eq!(call("+49 30 901820", "+49 664 1234567").candidates.len(), 1, "nothing of Otto's reaches Dana");

    let removed = registry.remove("contoso").unwrap();
    assert!(removed >= 2, "{removed}");
    assert!(call("+43 1 5334455", "+43 664 1234567").candidates.is_empty());
}

/// An organisation-wide account where one mailbox is fenced off by policy (403): the
/// other mailbox syncs completely, the sync is partial (not failed), `account test`
/// names each mailbox's result, and the scheduler keeps syncing the healthy mailbox on
/// its schedule (no account backoff) while only the fenced mailbox's collections back off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_mailbox_backs_off_alone_while_the_healthy_one_syncs_on_schedule() {
    use contactbridge::accounts::RunRecord;
    use contactbridge::connector::ErrorKind;
    use contactbridge::resolve::{CallQuery, Resolver};
    use contactbridge::store::Store;
    use contactbridge::sync::scheduler::{Scheduler, SchedulerOptions, SystemClock};
    use contactbridge::sync::SyncOutcome;
    let fake = fake_graph::FakeGraph::start().await;
    fake.put("dana@contoso.example/contacts", fake_graph::contact("c1", "Erika Muster", "030 1234567", "e@x", &[]));
    fake.put("otto@contoso.example/contacts", fake_graph::contact("c2", "Franz Huber", "030 7654321", "f@x", &[]));
    fake.fence("otto@contoso.example");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    for (id, did) in [("acme.dana", "+49 30 901820"), ("acme.otto", "+49 30 901821")] {
        let mut p = UserProfile::new(UserId::parse(id).unwrap(), "acme");
        p.called_numbers = vec![did.into()];
        p.region = Some("DE".into());
        user::put_profile(store.as_ref(), &p).unwrap();
    }
    let key = SecretKey::from_file(&dir.path().join("secret.key"), true).unwrap();
    let registry = Arc::new(Registry::new(store.clone(), key, Schedule::new("*/15 * * * *", "UTC").unwrap()));
    let credential = Credential::ClientSecret { secret: Secret::new(fake_graph::CLIENT_SECRET) };
    let mailboxes = vec!["dana@contoso.example".to_string(), "otto@contoso.example".to_string()];
    let mut g = GraphAccount::new(fake_graph::TENANT, fake_graph::CLIENT_ID, credential, mailboxes);
    g.authority = fake.authority();
    g.graph_base = fake.base.clone();
    g.https_only = false;
    let mut spec = AccountSpec::new("contoso", UserId::parse("acme.dana").unwrap(), SourceKind::Graph(g));
    spec.mailbox_users.insert("otto@contoso.example".into(), UserId::parse("acme.otto").unwrap());
    // Every second, so that the test sees several scheduled runs.
    spec.schedule = Some(Schedule::new("* * * * * *", "UTC").unwrap());
    registry.add(spec).unwrap();

    // `account test` checks every mailbox and tells each one's result.
    let parts = registry.test_parts("contoso").await.unwrap();
    let result = |m: &str| parts.iter().find(|p| p.part == m).unwrap_or_else(|| panic!("{m} in {parts:?}")).clone();
    assert!(result("dana@contoso.example").error.is_none(), "{parts:?}");
    let fenced = result("otto@contoso.example").error.expect("otto is fenced");
    assert_eq!(fenced.0, ErrorKind::Forbidden);
    assert!(fenced.1.contains("403") && fenced.1.contains("ErrorAccessDenied"), "{}", fenced.1);
    let e = registry.test("contoso").await.unwrap_err().to_string();
    assert!(e.contains("otto@contoso.example") && e.contains("1 of 2 mailboxes"), "{e}");
    assert!(!e.contains("dana@contoso.example:"), "the healthy mailbox is not reported as failing: {e}");

    // A sync by hand: the healthy mailbox completely, the fenced one failed: partial.
    let report = registry.sync("contoso").await.unwrap();
    assert_eq!(report.outcome(), SyncOutcome::Partial, "{report:?}");
    for c in &report.collections {
        let otto = c.collection.owner.as_deref() == Some("otto@contoso.example");
        assert_eq!(c.error.is_some(), otto, "{}: {:?}", c.collection.id, c.error);
        if otto {
            assert_eq!(c.error.as_ref().unwrap().kind, ErrorKind::Forbidden);
        }
    }
    let run: RunRecord = registry.store().run_record("contoso").unwrap().unwrap();
    assert_eq!((run.outcome, run.consecutive_failures), (Some(SyncOutcome::Partial), 0));
    assert!(!run.backoff.is_empty());
    assert!(run.backoff.keys().all(|c| c.starts_with("otto@contoso.example/")), "{:?}", run.backoff);
    let resolver = Resolver::new(store.clone() as Arc<dyn Store>);
    let found = |called: &str, cli: &str| {
        let q = CallQuery { called: called.into(), cli: cli.into(), tsps_call_id: None, at: chrono::Utc::now() };
        resolver.resolve(&q).unwrap().candidates.len()
    };
    assert_eq!(found("+49 30 901820", "+49 30 1234567"), 1, "Dana's contact synced");

    // On schedule: a change in the healthy mailbox arrives; the fenced one is left out.
    fake.put("dana@contoso.example/contacts", fake_graph::contact("c3", "Max Neu", "030 5550001", "m@x", &[]));
    fake.reset_stats();
    let options = SchedulerOptions { jitter_fraction: 0.0, ..SchedulerOptions::default() };
    let handle = Scheduler::new(registry.clone(), Arc::new(SystemClock), options).spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let runs = handle.scheduler().account("contoso").map_or(0, |s| s.runs);
        if runs >= 3 && found("+49 30 901820", "+49 30 5550001") == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{:?}", handle.scheduler().account("contoso"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the running sync end before reading the status.
    handle.shutdown(Duration::from_secs(10)).await;
    let s = registry.store().run_record("contoso").unwrap().unwrap();
    assert_eq!((s.outcome, s.consecutive_failures), (Some(SyncOutcome::Partial), 0), "{s:?}");
    assert!(s.backoff.keys().all(|c| c.starts_with("otto@contoso.example/")), "{:?}", s.backoff);
    assert!(s.backoff.values().all(|b| b.failures == 1), "left out, not tried again: {:?}", s.backoff);
    let stats = fake.stats();
    let dana = stats.by_mailbox.get("dana@contoso.example").copied().unwrap_or(0);
    let otto = stats.by_mailbox.get("otto@contoso.example").copied().unwrap_or(0);
    assert!(dana >= 3, "the healthy mailbox synced on every run: {stats:?}");
    // Per run, the fenced mailbox only sees the listing of its contact folders.
    let runs = dana / 3;
    assert!(otto <= runs + 1, "the fenced mailbox's collections were left out: otto {otto}, dana {dana}");
}

/// The CLI as an admin uses it against a Graph test server: `account add graph` reaches
/// every setting (plain HTTP for a loopback test server, the authority, page size, and
/// the rest as --settings JSON); `account test` lists each mailbox (exit 2 when some
/// fail); `sync --once` exits 0 complete, 2 partial, 1 failed.
/// The binary on `data`, run off the test's runtime (the fake Graph answers on it
/// meanwhile), without configuration or a secret key from the environment.
fn cli(data: &Path) -> impl Fn(Vec<String>) -> tokio::task::JoinHandle<std::process::Output> {
    let data = data.to_path_buf();
    move |args: Vec<String>| {
        let data = data.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_contactbridge"))
                .arg("--data-dir")
                .arg(&data)
                .args(&args)
                .env_remove("CONTACTBRIDGE_CONFIG")
                .env_remove("CONTACTBRIDGE_SECRET_KEY")
                .output()
                .unwrap()
        })
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_registers_graph_test_servers_and_tells_complete_partial_and_failed_apart() {
    let fake = fake_graph::FakeGraph::start().await;
    fake.put("dana@contoso.example/contacts", fake_graph::contact("c1", "Erika Muster", "030 1234567", "e@x", &[]));
    fake.fence("otto@contoso.example");
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, fake_graph::CLIENT_SECRET).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let run = cli(dir.path());
    let out = run(args(&["user", "add", "acme.dana", "--tenant", "acme"])).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let add = |id: &str, mailboxes: &[&str], base: &str| {
        let mut a = args(&["account", "add", "graph", "--id", id, "--user", "acme.dana"]);
        a.extend(args(&["--tenant", fake_graph::TENANT, "--client-id", fake_graph::CLIENT_ID]));
        a.extend(args(&["--client-secret-file", secret_file.to_str().unwrap()]));
        for m in mailboxes {
            a.extend(args(&["--mailbox", m]));
        }
        a.extend(args(&["--authority", &fake.authority(), "--graph-base", base, "--allow-plain-http"]));
        a.extend(args(&["--page-size", "25", "--retry-max-attempts", "2", "--retry-base-backoff-ms", "10"]));
        a.extend(args(&["--settings", r#"{"mail_lookback_days": 7, "region": "DE"}"#]));
        a
    };
    for (id, mailboxes, base) in [
        ("complete", &["dana@contoso.example"][..], fake.base.clone()),
        ("partial", &["dana@contoso.example", "otto@contoso.example"][..], fake.base.clone()),
        ("failed", &["dana@contoso.example"][..], format!("http://127.0.0.1:{closed}/v1.0")),
    ] {
        let out = run(add(id, mailboxes, &base)).await.unwrap();
        assert!(out.status.success(), "{id}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let show = run(args(&["account", "show", "partial"])).await.unwrap();
    let show = String::from_utf8_lossy(&show.stdout).to_string();
    assert!(show.contains("tenant contoso"), "{show}");

    let test = run(args(&["account", "test", "partial"])).await.unwrap();
    let stdout = String::from_utf8_lossy(&test.stdout);
    assert_eq!(test.status.code(), Some(2), "{stdout}\n{}", String::from_utf8_lossy(&test.stderr));
    assert!(stdout.contains("dana@contoso.example: ok"), "{stdout}");
    assert!(stdout.contains("otto@contoso.example: FAILED") && stdout.contains("403"), "{stdout}");
    let test = run(args(&["account", "test", "complete"])).await.unwrap();
    assert_eq!(test.status.code(), Some(0), "{}", String::from_utf8_lossy(&test.stderr));

    let sync = |id: &str| run(args(&["sync", "--once", "--account", id]));
    let complete = sync("complete").await.unwrap();
    assert_eq!(complete.status.code(), Some(0), "{}", String::from_utf8_lossy(&complete.stderr));
    assert!(String::from_utf8_lossy(&complete.stdout).contains("(complete)"));
    let partial = sync("partial").await.unwrap();
    let (out, err) = (String::from_utf8_lossy(&partial.stdout), String::from_utf8_lossy(&partial.stderr));
    assert_eq!(partial.status.code(), Some(2), "{out}\n{err}");
    assert!(out.contains("(partial)") && err.contains("otto@contoso.example"), "{out}\n{err}");
    let failed = sync("failed").await.unwrap();
    let err = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{closed}")), "the unreachable host and port are named: {err}");
    assert!(!err.contains("could not be built"), "{err}");
    let both = args(&["sync", "--once", "--account", "complete", "--account", "failed"]);
    let mixed = run(both).await.unwrap();
    assert_eq!(mixed.status.code(), Some(2), "one account complete, one failed: partial");

    let help = run(args(&["sync", "--help"])).await.unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Exit status") && help.contains("partial"), "{help}");
}

/// `account add graph --device-code`: the delegated sign-in from the CLI, against the fake
/// identity provider's device-code endpoints (the npm mock has none). The user is shown the
/// page and the code, the CLI waits through "authorization pending", and the refresh token
/// lands sealed; a sign-in that does not finish in time adds nothing; a refresh token from
/// a file works the same; options that cannot go together are refused.
#[tokio::test]
async fn the_cli_signs_a_delegated_account_in_by_device_code() {
    let fake = fake_graph::FakeGraph::start().await;
    fake.put("dana@contoso.example/contacts", fake_graph::contact("c1", "Erika Muster", "030 1234567", "e@x", &[]));
    let dir = tempfile::tempdir().unwrap();
    let run = cli(dir.path());
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    let out = run(args(&["user", "add", "acme.dana", "--tenant", "acme", "--region", "DE", "--number", "+4930901820"]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let add = |id: &str, extra: &[&str]| {
        let mut a = args(&["account", "add", "graph", "--id", id, "--user", "acme.dana"]);
        a.extend(args(&["--tenant", fake_graph::TENANT, "--client-id", fake_graph::CLIENT_ID]));
        a.extend(args(&["--mailbox", "dana@contoso.example", "--authority", &fake.authority()]));
        a.extend(args(&["--graph-base", &fake.base, "--allow-plain-http"]));
        a.extend(args(extra));
        a
    };

    fake.set_device_pending(2);
    let out = run(add("dana-delegated", &["--device-code"])).await.unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("open https://microsoft.com/devicelogin and enter the code FJKLSLDJX"),
        "the user is told where to sign in: {stdout}"
    );
    assert_eq!(fake.stats().device_polls, 3, "two 'authorization pending' answers, then the tokens");
    let show = text(&run(args(&["account", "show", "dana-delegated"])).await.unwrap().stdout);
    assert!(show.contains("refresh token"), "{show}");
    let sync = run(args(&["sync", "--once", "--account", "dana-delegated"])).await.unwrap();
    assert_eq!(sync.status.code(), Some(0), "{}\n{}", text(&sync.stdout), text(&sync.stderr));
    let found = run(args(&["lookup", "--called", "+4930901820", "--cli", "+49301234567"])).await.unwrap();
    assert!(text(&found.stdout).contains("Erika Muster"), "{}", text(&found.stdout));

    // The user never signs in: after the timeout nothing is added.
    fake.set_device_pending(10_000);
    let slow = run(add("dana-slow", &["--device-code", "--sign-in-timeout-secs", "2"])).await.unwrap();
    assert!(!slow.status.success());
    assert!(text(&slow.stderr).contains("did not finish"), "{}", text(&slow.stderr));
    let shown = run(args(&["account", "show", "dana-slow"])).await.unwrap();
    assert!(!shown.status.success(), "a sign-in that did not finish adds no account");
    fake.set_device_pending(0);

    // A refresh token obtained elsewhere, from a file; an empty file is refused.
    fake.issue_refresh_token("0.AR8A-from-file-7731");
    let token_file = dir.path().join("refresh-token");
    std::fs::write(&token_file, "0.AR8A-from-file-7731\n").unwrap();
    let out = run(add("dana-file", &["--refresh-token-file", token_file.to_str().unwrap()])).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sync = run(args(&["sync", "--once", "--account", "dana-file"])).await.unwrap();
    assert_eq!(sync.status.code(), Some(0), "{}", text(&sync.stderr));
    std::fs::write(&token_file, "").unwrap();
    let empty = run(add("dana-empty", &["--refresh-token-file", token_file.to_str().unwrap()])).await.unwrap();
    assert!(!empty.status.success() && text(&empty.stderr).contains("empty"), "{}", text(&empty.stderr));

    // Two credentials at once are refused before anything is asked.
    let polls = fake.stats().device_polls;
    let both =
        run(add("dana-both", &["--device-code", "--refresh-token-file", token_file.to_str().unwrap()])).await.unwrap();
    assert_eq!(both.status.code(), Some(2), "{}", text(&both.stderr));
    assert!(text(&both.stderr).contains("cannot be used with"), "{}", text(&both.stderr));
    assert_eq!(fake.stats().device_polls, polls);

    // No refresh token lies in clear anywhere in the data directory.
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p != token_file {
                let bytes = std::fs::read(&p).unwrap();
                let needle: &[u8] = b"0.AR8A-";
                assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{}", p.display());
            }
        }
    }
}
