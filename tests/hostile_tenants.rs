//! Hostile tenants (issue 10, part 3): an admin or phone system of one tenant
//! learns nothing about another tenant's users, numbers, calls and accounts (the
//! answers for "another tenant's" and "unknown" are compared byte for byte), and
//! accounts registered by tenant admins reach neither the server's files nor its
//! network (loopback, private, link-local, metadata addresses; after DNS and
//! redirects too). A real server on 127.0.0.1 driven by the tonic client; the web
//! window through its router.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::{Duration, Utc};
use contactbridge::api::auth::{self, Scope};
use contactbridge::api::client::BridgeClient;
use contactbridge::api::pb;
use contactbridge::api::{RunningServer, ServerOptions};
use contactbridge::config::{AccountsConfig, Config};
use contactbridge::live::CallHub;
use contactbridge::resolve::{CallQuery, Resolver};
use contactbridge::store::{CallStore, SledStore, Store, UserStore};
use contactbridge::user::{self, Attendant, UserId, UserProfile};
use contactbridge::web;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::{Code, Status};
use tower::ServiceExt;

const DEMO_DID: &str = "+49 30 901820";
const ERIKA_CLI: &str = "+49301234567";
const OTHER_DID: &str = "+49 89 555000";
const NOBODYS_DID: &str = "+49 40 1234567";

struct Bridge {
    server: RunningServer,
    store: Arc<SledStore>,
    data: tempfile::TempDir,
    demo_tsps: String,
    demo_admin: String,
    other_tsps: String,
    other_admin: String,
}

impl Bridge {
    /// The demo user (tenant `demo`), `other.olga` (tenant `other`), keys for both,
    /// and an account registry with `limits`.
    async fn start(limits: AccountsConfig) -> Self {
        let data = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::temporary().unwrap());
        contactbridge::demo::load(store.as_ref(), &contactbridge::demo::default_dir(), Utc::now()).await.unwrap();
        let mut olga = UserProfile::new(uid("other.olga"), "other");
        olga.called_numbers = vec![OTHER_DID.into()];
        user::put_profile(store.as_ref(), &olga).unwrap();
        let key = |tenant: &str, scope| auth::create_key(store.as_ref(), tenant, scope, "test").unwrap().text;
        let (demo_tsps, demo_admin) = (key("demo", Scope::Tsps), key("demo", Scope::Admin));
        let (other_tsps, other_admin) = (key("other", Scope::Tsps), key("other", Scope::Admin));
        let config = Config { data_dir: data.path().to_path_buf(), accounts: limits, ..Default::default() };
        let registry = Arc::new(contactbridge::accounts::Registry::open(store.clone(), &config).unwrap());
        let server = RunningServer::start(
            store.clone(),
            store.clone(),
            CallHub::new(store.clone()),
            "127.0.0.1:0".parse().unwrap(),
            Some("127.0.0.1:0".parse().unwrap()),
            ServerOptions { accounts: Some(registry), ..ServerOptions::default() },
        )
        .await
        .unwrap();
        Self { server, store, data, demo_tsps, demo_admin, other_tsps, other_admin }
    }

    async fn client(&self, key: &str) -> BridgeClient {
        BridgeClient::connect(&format!("http://{}", self.server.addr), key).await.unwrap()
    }
}

fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

/// Code and message of a refusal, with `name` (what the client itself sent) replaced.
fn answer(s: &Status, name: &str) -> (Code, String) {
    (s.code(), s.message().replace(name, "<NAME>"))
}

/// The two answers are the same, byte for byte, apart from the name each request gave.
#[track_caller]
fn alike(
    theirs: Result<impl std::fmt::Debug, Status>,
    their_name: &str,
    unknown: Result<impl std::fmt::Debug, Status>,
    unknown_name: &str,
) {
    let (a, b) = (theirs.unwrap_err(), unknown.unwrap_err());
    assert_eq!(answer(&a, their_name), answer(&b, unknown_name), "another tenant's vs unknown");
}

fn account(id: &str, user: &str, kind: pb::AccountKind, location: &str, settings: Value) -> pb::RegisterAccountRequest {
    pb::RegisterAccountRequest {
        account: Some(pb::Account {
            id: id.into(),
            user_id: user.into(),
            kind: kind as i32,
            location: location.into(),
            settings_json: settings.to_string(),
            ..Default::default()
        }),
        secret: String::new(),
    }
}

fn files(id: &str, user: &str, path: &Path) -> pb::RegisterAccountRequest {
    account(id, user, pb::AccountKind::Files, &path.display().to_string(), json!({}))
}

fn carddav(id: &str, user: &str, url: &str) -> pb::RegisterAccountRequest {
    account(id, user, pb::AccountKind::Carddav, url, json!({}))
}

#[tokio::test]
async fn another_tenants_users_numbers_and_calls_answer_as_unknown_ones() {
    let b = Bridge::start(AccountsConfig::default()).await;
    let mut tsps = b.client(&b.other_tsps).await;
    let mut admin = b.client(&b.other_admin).await;
    let mut demo_tsps = b.client(&b.demo_tsps).await;

    let resolve = |called: &str| pb::ResolveCallRequest {
        called_number: called.into(),
        cli: ERIKA_CLI.into(),
        tsps_call_id: "t".into(),
        at: None,
    };
    alike(
        tsps.calls.resolve_call(resolve(DEMO_DID)).await,
        DEMO_DID,
        tsps.calls.resolve_call(resolve(NOBODYS_DID)).await,
        NOBODYS_DID,
    );
    let context =
        |user: &str| pb::GetCallerContextRequest { user_id: user.into(), cli: ERIKA_CLI.into(), ..Default::default() };
    alike(
        tsps.calls.get_caller_context(context("demo")).await,
        "demo",
        tsps.calls.get_caller_context(context("ghost")).await,
        "ghost",
    );
    let watch = |user: &str| pb::WatchDirectivesRequest { user_ids: vec![user.into()] };
    alike(
        tsps.calls.watch_directives(watch("demo")).await.map(|_| ()),
        "demo",
        tsps.calls.watch_directives(watch("ghost")).await.map(|_| ()),
        "ghost",
    );

    // Calls: the demo tenant's call id answers as one that never was.
    let call = demo_tsps.calls.resolve_call(resolve(DEMO_DID)).await.unwrap().into_inner().call_id;
    let unknown_call = "0190a0a0-0000-7000-8000-000000000000";
    let event = |id: &str| pb::ReportCallEventRequest {
        call_id: id.into(),
        kind: pb::CallEventKind::Answered as i32,
        ..Default::default()
    };
    alike(
        tsps.calls.report_call_event(event(&call)).await,
        &call,
        tsps.calls.report_call_event(event(unknown_call)).await,
        unknown_call,
    );
    let directive = |id: &str| pb::SendDirectiveRequest {
        call_id: id.into(),
        action: pb::DirectiveAction::Reject as i32,
        ..Default::default()
    };
    alike(
        admin.calls.send_directive(directive(&call)).await,
        &call,
        admin.calls.send_directive(directive(unknown_call)).await,
        unknown_call,
    );

    // Users, for an admin key of the other tenant.
    let get = |u: &str| pb::GetUserRequest { user_id: u.into() };
    alike(admin.admin.get_user(get("demo")).await, "demo", admin.admin.get_user(get("ghost")).await, "ghost");
    let status = |u: &str| pb::SetManualStatusRequest {
        user_id: u.into(),
        status: pb::Status::DoNotDisturb as i32,
        until: None,
    };
    alike(
        admin.admin.set_manual_status(status("demo")).await,
        "demo",
        admin.admin.set_manual_status(status("ghost")).await,
        "ghost",
    );
    let calls = |u: &str| pb::ListCallsRequest { user_id: u.into(), ..Default::default() };
    alike(admin.admin.list_calls(calls("demo")).await, "demo", admin.admin.list_calls(calls("ghost")).await, "ghost");
    let handling = |u: &str| pb::SetHandlingMethodRequest { user_id: u.into(), ..Default::default() };
    alike(
        admin.admin.set_handling_method(handling("demo")).await,
        "demo",
        admin.admin.set_handling_method(handling("ghost")).await,
        "ghost",
    );
    let assign = |u: &str| pb::AssignHandlingCodeRequest {
        user_id: u.into(),
        target: Some(pb::assign_handling_code_request::Target::Number(ERIKA_CLI.into())),
        code: "vip".into(),
    };
    alike(
        admin.admin.assign_handling_code(assign("demo")).await,
        "demo",
        admin.admin.assign_handling_code(assign("ghost")).await,
        "ghost",
    );
    let delete = |u: &str| pb::DeleteUserRequest { user_id: u.into() };
    let theirs = admin.admin.delete_user(delete("demo")).await.unwrap().into_inner();
    let unknown = admin.admin.delete_user(delete("ghost")).await.unwrap().into_inner();
    assert_eq!((theirs.deleted, unknown.deleted), (false, false));
    assert!(b.store.profile(&uid("demo")).unwrap().is_some(), "the demo user is still there");

    // PutUser: a taken id of another tenant answers as any id outside the tenant's namespace.
    let put = |id: &str| pb::PutUserRequest { profile: Some(pb::UserProfile { id: id.into(), ..Default::default() }) };
    let (a, b2) =
        (admin.admin.put_user(put("demo")).await.unwrap_err(), admin.admin.put_user(put("ghost")).await.unwrap_err());
    assert_eq!((a.code(), a.message()), (b2.code(), b2.message()));
    assert_eq!(a.code(), Code::InvalidArgument);
    assert!(a.message().contains("other.<name>"), "{}", a.message());
    assert!(admin.admin.put_user(put("other.new")).await.is_ok(), "ids in the tenant's namespace are fine");
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn an_attendant_from_another_tenant_is_refused_and_old_ones_see_and_direct_nothing() {
    let b = Bridge::start(AccountsConfig::default()).await;
    let mut admin = b.client(&b.other_admin).await;
    let attended_by = |attendant: &str| pb::PutUserRequest {
        profile: Some(pb::UserProfile {
            id: "other.olga".into(),
            called_numbers: vec![OTHER_DID.into()],
            attendant: Some(pb::Attendant { number: "+49 89 555009".into(), user_id: attendant.into() }),
            ..Default::default()
        }),
    };
    alike(
        admin.admin.put_user(attended_by("demo")).await,
        "demo",
        admin.admin.put_user(attended_by("ghost")).await,
        "ghost",
    );
    let e = admin.admin.put_user(attended_by("demo")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("attendant"), "{}", e.message());
    assert!(admin.admin.put_user(attended_by("other.olga")).await.is_ok(), "their own tenant's user is fine");

    // Data written before PutUser checked it: olga (tenant other) names demo as her attendant,
    // and demo names olga as his.
    let mut olga = b.store.profile(&uid("other.olga")).unwrap().unwrap();
    olga.attendant = Some(Attendant { number: "+49 30 901820".into(), user: Some(uid("demo")) });
    user::put_profile(b.store.as_ref(), &olga).unwrap();
    let mut demo = b.store.profile(&uid("demo")).unwrap().unwrap();
    demo.display_name = "Dana Demo".into();
    demo.attendant = Some(Attendant { number: OTHER_DID.into(), user: Some(uid("other.olga")) });
    user::put_profile(b.store.as_ref(), &demo).unwrap();
    olga.display_name = "Olga Other".into();
    user::put_profile(b.store.as_ref(), &olga).unwrap();

    let store: Arc<dyn Store> = b.store.clone();
    let hub = CallHub::new(store.clone());
    let state = web::WebState::new(store.clone(), b.store.clone(), hub.clone());
    let router = web::router(state);
    let sign_in = |user: &str| {
        let token =
            web::auth::issue_login(b.store.as_ref(), b.store.as_ref(), &uid(user), Duration::hours(1), Utc::now())
                .unwrap();
        web::auth::login_path(&token)
    };
    let mut cookies = Vec::new();
    for user in ["demo", "other.olga"] {
        let res = router.clone().oneshot(Request::get(sign_in(user)).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        cookies.push(res.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string());
    }
    let call = |method: &str, path: String, cookie: &str, body: Option<Value>| {
        let router = router.clone();
        // Same origin, as the page's own requests (the window refuses state changes from elsewhere).
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::COOKIE, cookie)
            .header(header::HOST, "bridge.test")
            .header(header::ORIGIN, "http://bridge.test");
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty)).unwrap();
        async move {
            let res = router.oneshot(req).await.unwrap();
            let status = res.status();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
        }
    };
    let (demo_cookie, olga_cookie) = (&cookies[0], &cookies[1]);
    let (_, me) = call("GET", "/api/me".into(), demo_cookie, None).await;
    assert_eq!(me["attends"], json!([]), "{me}");
    assert_ne!(me["attendant"]["display_name"], "Olga Other", "{me}");
    let (_, me) = call("GET", "/api/me".into(), olga_cookie, None).await;
    assert_eq!(me["attends"], json!([]), "{me}");

    // A call to olga: demo neither sees it nor directs it.
    let resolver = Resolver::new(store.clone());
    let d = resolver
        .resolve(&CallQuery { called: OTHER_DID.into(), cli: ERIKA_CLI.into(), tsps_call_id: None, at: Utc::now() })
        .unwrap();
    hub.announce(&d);
    let id = d.call_id.as_str();
    for path in [format!("/api/calls/{id}"), format!("/api/calls/{id}/context"), "/api/history?user=other.olga".into()]
    {
        assert_eq!(call("GET", path.clone(), demo_cookie, None).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    for action in ["reject", "block", "accept"] {
        let (s, _) =
            call("POST", format!("/api/calls/{id}/directive"), demo_cookie, Some(json!({"action": action}))).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{action}");
    }
    let record = b.store.call(&d.call_id).unwrap().unwrap();
    assert!(record.events.is_empty(), "{:?}", record.events);
    assert_eq!(call("GET", format!("/api/calls/{id}"), olga_cookie, None).await.0, StatusCode::OK);
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn account_ids_are_per_tenant_and_another_tenants_answer_as_unknown_ones() {
    let roots = tempfile::tempdir().unwrap();
    for t in ["demo", "other"] {
        std::fs::create_dir_all(roots.path().join(t)).unwrap();
    }
    let limits = AccountsConfig { files_roots: vec![roots.path().join("{tenant}")], ..Default::default() };
    let b = Bridge::start(limits).await;
    let mut demo = b.client(&b.demo_admin).await;
    let mut other = b.client(&b.other_admin).await;

    // The same id in two tenants: two accounts.
    demo.admin.register_account(files("shared", "demo", &roots.path().join("demo"))).await.unwrap();
    demo.admin.register_account(files("demo-only", "demo", &roots.path().join("demo"))).await.unwrap();
    let mine = other.admin.register_account(files("shared", "other.olga", &roots.path().join("other"))).await;
    assert_eq!(mine.unwrap().into_inner().id, "shared");
    let e = other.admin.register_account(files("shared", "other.olga", &roots.path().join("other"))).await;
    assert_eq!(e.unwrap_err().code(), Code::AlreadyExists);

    // Another tenant's account id, and an unknown one, on every account RPC.
    let (theirs, unknown) = ("demo-only", "never-was");
    let test = |id: &str| pb::TestAccountRequest { user_id: String::new(), account_id: id.into() };
    alike(other.admin.test_account(test(theirs)).await, theirs, other.admin.test_account(test(unknown)).await, unknown);
    let sync = |id: &str| pb::SyncAccountRequest { user_id: String::new(), account_id: id.into() };
    alike(other.admin.sync_account(sync(theirs)).await, theirs, other.admin.sync_account(sync(unknown)).await, unknown);
    let status = |id: &str| pb::GetSyncStatusRequest { user_id: String::new(), account_id: id.into() };
    alike(
        other.admin.get_sync_status(status(theirs)).await,
        theirs,
        other.admin.get_sync_status(status(unknown)).await,
        unknown,
    );
    let remove = |id: &str| pb::RemoveAccountRequest { user_id: String::new(), account_id: id.into() };
    alike(
        other.admin.remove_account(remove(theirs)).await,
        theirs,
        other.admin.remove_account(remove(unknown)).await,
        unknown,
    );
    let list = |u: &str| pb::ListAccountsRequest { user_id: u.into() };
    alike(
        other.admin.list_accounts(list("demo")).await,
        "demo",
        other.admin.list_accounts(list("ghost")).await,
        "ghost",
    );
    alike(
        other.admin.register_account(files("x", "demo", &roots.path().join("other"))).await,
        "demo",
        other.admin.register_account(files("x", "ghost", &roots.path().join("other"))).await,
        "ghost",
    );

    // Removing its own "shared" leaves the demo tenant's alone.
    other.admin.remove_account(remove("shared")).await.unwrap();
    let ids: Vec<String> =
        demo.admin.list_accounts(list("demo")).await.unwrap().into_inner().accounts.into_iter().map(|a| a.id).collect();
    assert_eq!(ids, ["demo-only", "shared"]);
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn files_accounts_stay_inside_the_operators_roots_without_telling_what_exists() {
    // No roots (the default): a tenant admin registers no files account at all.
    let b = Bridge::start(AccountsConfig::default()).await;
    let mut other = b.client(&b.other_admin).await;
    let secret_key = b.data.path().join("secret.key");
    assert!(secret_key.exists(), "the registry keeps its key in the data directory");
    let probes: [(PathBuf, PathBuf); 3] = [
        ("/proc/1/environ".into(), "/proc/1/no-such-file".into()),
        (secret_key.clone(), b.data.path().join("no-such-file")),
        ("/etc".into(), "/no-such-dir".into()),
    ];
    for (existing, missing) in &probes {
        let (e, m) = (existing.display().to_string(), missing.display().to_string());
        let a = other.admin.register_account(files("f", "other.olga", existing)).await;
        let z = other.admin.register_account(files("f", "other.olga", missing)).await;
        let a = a.unwrap_err();
        assert_eq!(a.code(), Code::InvalidArgument, "{}", a.message());
        assert!(a.message().contains("files_roots"), "{}", a.message());
        assert_eq!(answer(&a, &e), answer(&z.unwrap_err(), &m), "{e} vs {m}");
    }
    // A DAV account's CA file is a server path too.
    let ca = |path: &str| {
        account("c", "other.olga", pb::AccountKind::Carddav, "https://dav.example.org/", json!({"ca_file": path}))
    };
    alike(
        other.admin.register_account(ca("/etc/passwd")).await,
        "/etc/passwd",
        other.admin.register_account(ca("/etc/no-such-file")).await,
        "/etc/no-such-file",
    );
    b.server.stop().await.unwrap();

    // With roots per tenant: inside one's own root only; links out of it are refused.
    let roots = tempfile::tempdir().unwrap();
    for t in ["demo", "other"] {
        std::fs::create_dir_all(roots.path().join(t).join("cards")).unwrap();
    }
    std::os::unix::fs::symlink("/etc", roots.path().join("other").join("escape")).unwrap();
    let limits = AccountsConfig { files_roots: vec![roots.path().join("{tenant}")], ..Default::default() };
    let b = Bridge::start(limits).await;
    let mut other = b.client(&b.other_admin).await;
    other.admin.register_account(files("own", "other.olga", &roots.path().join("other/cards"))).await.unwrap();
    let (existing, missing) = (roots.path().join("demo/cards"), roots.path().join("demo/none"));
    alike(
        other.admin.register_account(files("f", "other.olga", &existing)).await,
        &existing.display().to_string(),
        other.admin.register_account(files("f", "other.olga", &missing)).await,
        &missing.display().to_string(),
    );
    for refused in
        [roots.path().join("other/escape"), roots.path().join("other/../demo/cards"), "/proc/1/environ".into()]
    {
        let e = other.admin.register_account(files("f", "other.olga", &refused)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{}: {}", refused.display(), e.message());
    }
    b.server.stop().await.unwrap();
}

/// A loopback port with nothing listening.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn dav_accounts_of_tenant_admins_reach_no_inner_address() {
    let b = Bridge::start(AccountsConfig::default()).await;
    let mut other = b.client(&b.other_admin).await;
    let metrics = b.server.metrics_addr.unwrap().port();
    let closed = closed_port();

    // The bridge's own metrics (listening) and a closed port: refused alike, nothing probed.
    let listening = format!("http://127.0.0.1:{metrics}/metrics");
    let nothing = format!("http://127.0.0.1:{closed}/metrics");
    alike(
        other.admin.register_account(carddav("d", "other.olga", &listening)).await,
        &metrics.to_string(),
        other.admin.register_account(carddav("d", "other.olga", &nothing)).await,
        &closed.to_string(),
    );
    for url in [
        format!("https://127.0.0.1:{metrics}/"),
        "https://10.1.2.3/dav/".into(),
        "https://192.168.0.10/".into(),
        "https://100.64.0.1/".into(),
        "https://169.254.169.254/latest/meta-data/".into(),
        "https://[::1]/".into(),
        "https://[fe80::1]/".into(),
        "https://[fd00::1]/".into(),
        "https://[::ffff:127.0.0.1]/".into(),
        "https://[::ffff:169.254.169.254]/".into(),
        "https://0.0.0.0/".into(),
        format!("https://localhost:{metrics}/"),
        format!("https://LOCALHOST.:{metrics}/"),
    ] {
        let e = other.admin.register_account(carddav("d", "other.olga", &url)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{url}: {}", e.message());
        assert!(
            e.message().contains("not reachable for accounts registered by tenant admins"),
            "{url}: {}",
            e.message()
        );
    }

    // A name that resolves to an inner address is refused when connecting, alike for a
    // listening port and a closed one.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
    let resolved: Vec<std::net::SocketAddr> =
        tokio::net::lookup_host((host.as_str(), 443)).await.map(Iterator::collect).unwrap_or_default();
    assert!(!host.is_empty() && !resolved.is_empty(), "this machine's name {host:?} resolves");
    assert!(
        resolved.iter().all(|a| !contactbridge::connector::net::is_public(a.ip())),
        "{host} resolves to inner addresses here: {resolved:?}"
    );
    let mut messages = Vec::new();
    for (id, port) in [("by-name-open", metrics), ("by-name-closed", closed)] {
        let url = format!("https://{host}:{port}/");
        other.admin.register_account(carddav(id, "other.olga", &url)).await.unwrap();
        let t = other
            .admin
            .test_account(pb::TestAccountRequest { user_id: String::new(), account_id: id.into() })
            .await
            .unwrap()
            .into_inner();
        assert!(!t.ok);
        assert!(t.message.contains("not reachable for accounts registered by tenant admins"), "{}", t.message);
        // The hint that fits a policy refusal: the operator's allow list, not DNS or a firewall.
        assert!(t.message.contains("[accounts] allow_hosts") && !t.message.contains("DNS"), "{}", t.message);
        messages.push(t.message.replace(&port.to_string(), "<PORT>"));
    }
    assert_eq!(messages[0], messages[1]);
    b.server.stop().await.unwrap();
}

/// A loopback HTTP server that answers every request with a redirect to `to`; counts requests.
async fn redirecting(to: String) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = vec![0u8; 8192];
            let mut read = 0;
            while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buffer[read..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
            }
            count.fetch_add(1, Ordering::SeqCst);
            let response = format!(
                "HTTP/1.1 301 Moved Permanently\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (port, seen)
}

/// A loopback port that counts the connections made to it.
async fn counting() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, seen)
}

#[tokio::test]
async fn a_redirect_from_an_allowed_host_to_an_inner_one_is_refused() {
    let (inner, inner_seen) = counting().await;
    let (allowed, allowed_seen) = redirecting(format!("http://127.0.0.1:{inner}/dav/")).await;
    let limits = AccountsConfig { allow_hosts: vec!["localhost".into()], ..Default::default() };
    let b = Bridge::start(limits).await;
    let mut other = b.client(&b.other_admin).await;
    other.admin.register_account(carddav("r", "other.olga", &format!("http://localhost:{allowed}/"))).await.unwrap();
    let t = other
        .admin
        .test_account(pb::TestAccountRequest { user_id: String::new(), account_id: "r".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!t.ok);
    assert!(t.message.contains("not reachable for accounts registered by tenant admins"), "{}", t.message);
    assert!(t.message.contains("[accounts] allow_hosts") && !t.message.contains("DNS"), "{}", t.message);
    assert!(allowed_seen.load(Ordering::SeqCst) >= 1, "the allow-listed host was asked");
    assert_eq!(inner_seen.load(Ordering::SeqCst), 0, "nothing reached the inner address");
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn plain_http_needs_loopback_or_a_visible_opt_in() {
    let b = Bridge::start(AccountsConfig::default()).await;
    let mut other = b.client(&b.other_admin).await;
    let with = |settings: Value| {
        let mut r = account("p", "other.olga", pb::AccountKind::Carddav, "http://dav.example.org/", settings);
        r.secret = "pw".into();
        r
    };
    let e = other.admin.register_account(with(json!({"username": "olga"}))).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("allow_plain_http") && e.message().contains("unencrypted"), "{}", e.message());

    other.admin.register_account(with(json!({"username": "olga", "allow_plain_http": true}))).await.unwrap();
    let listed = other
        .admin
        .list_accounts(pb::ListAccountsRequest { user_id: "other.olga".into() })
        .await
        .unwrap()
        .into_inner()
        .accounts;
    let settings: Value = serde_json::from_str(&listed[0].settings_json).unwrap();
    assert_eq!(settings["allow_plain_http"], json!(true), "{settings}");
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn graph_accounts_of_tenant_admins_talk_only_to_microsoft() {
    let b = Bridge::start(AccountsConfig::default()).await;
    let mut other = b.client(&b.other_admin).await;
    let graph = |extra: Value| {
        let mut settings = json!({"client_id": "app", "mailboxes": ["olga@other.example"]});
        settings.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let mut r = account("g", "other.olga", pb::AccountKind::Graph, "other.example", settings);
        r.secret = "cs".into();
        r
    };
    for extra in [
        json!({"token_url": "https://127.0.0.1:9/token"}),
        json!({"authority": "https://169.254.169.254"}),
        json!({"graph_base": "http://localhost:9/v1.0", "https_only": false}),
        json!({"device_code_url": "https://login.microsoftonline.com@10.0.0.1/x"}),
    ] {
        let e = other.admin.register_account(graph(extra.clone())).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{extra}: {}", e.message());
        assert!(e.message().contains("Microsoft") || e.message().contains("HTTPS"), "{extra}: {}", e.message());
    }
    other.admin.register_account(graph(json!({}))).await.unwrap();
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_tenants_files_account_reads_no_link_out_of_its_folder() {
    let roots = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let card = |name: &str, tel: &str| format!("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\nTEL:{tel}\r\nEND:VCARD\r\n");
    let (own, theirs) = (roots.path().join("other/cards"), roots.path().join("demo/cards"));
    std::fs::create_dir_all(&own).unwrap();
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(own.join("good.vcf"), card("Good Guy", "+49 89 1111111")).unwrap();
    std::fs::write(outside.path().join("secret.vcf"), card("Secret Sam", "+49 89 2222222")).unwrap();
    std::fs::write(theirs.join("dora.vcf"), card("Demo Dora", "+49 89 3333333")).unwrap();
    let link = |target: &Path, name: &str| std::os::unix::fs::symlink(target, own.join(name)).unwrap();
    link(&outside.path().join("secret.vcf"), "outside.vcf");
    link(&theirs.join("dora.vcf"), "theirs.vcf");
    link(&outside.path().join("none.vcf"), "dangling.vcf");
    link(Path::new("/etc/passwd"), "passwd.vcf");
    link(outside.path(), "linked-dir");
    // A link that stays inside the folder is read.
    link(&own.join("good.vcf"), "alias.vcf");

    let limits = AccountsConfig { files_roots: vec![roots.path().join("{tenant}")], ..Default::default() };
    let b = Bridge::start(limits).await;
    let mut other = b.client(&b.other_admin).await;
    other.admin.register_account(files("own", "other.olga", &own)).await.unwrap();
    let which = || pb::GetSyncStatusRequest { user_id: String::new(), account_id: "own".into() };
    let started = other
        .admin
        .sync_account(pb::SyncAccountRequest { user_id: String::new(), account_id: "own".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(started.started);
    let mut status = other.admin.get_sync_status(which()).await.unwrap().into_inner();
    for _ in 0..200 {
        if !status.running && status.last_finished.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        status = other.admin.get_sync_status(which()).await.unwrap().into_inner();
    }
    assert!(!status.running, "the sync finished");
    // good.vcf and its alias (one contact in each), nothing from outside the folder.
    assert_eq!(status.records.get("contact"), Some(&2), "{status:?}");
    let error_of = |name: &str| {
        status
            .collections
            .iter()
            .find(|c| c.collection.contains(name))
            .map(|c| c.last_error.clone())
            .unwrap_or_default()
    };
    assert_eq!(error_of("good"), "");
    assert_eq!(error_of("alias"), "");
    let mut reasons = Vec::new();
    for name in ["outside", "theirs", "dangling", "passwd"] {
        let e = error_of(name);
        assert!(e.contains("leads out of the account's folder"), "{name}: {e} in {status:?}");
        reasons.push(e.replace(name, "<NAME>"));
    }
    // Whether the target exists (or is another tenant's) is not told.
    assert!(reasons.windows(2).all(|w| w[0] == w[1]), "{reasons:?}");
    assert!(!format!("{status:?}").contains("Sam") && !format!("{status:?}").contains("Dora"));
    b.server.stop().await.unwrap();
}
