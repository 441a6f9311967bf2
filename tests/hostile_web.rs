//! Hostile web sessions (issue 10, slice D), against the window's router in
//! process (as tests/web_window.rs) and, for TLS, over a real socket:
//! open event streams end and deliver nothing after logout, expiry, user
//! deletion and a withdrawn attendant designation; state-changing requests
//! from other origins are refused; a login link does not silently replace
//! another user's session; every response carries the security headers.

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use chrono::{Duration, Utc};
use contactbridge::live::CallHub;
use contactbridge::resolve::{CallQuery, Decision, Resolver};
use contactbridge::store::{CallStore, SledStore, Store, UserStore};
use contactbridge::user::{self, Attendant, UserId, UserProfile};
use contactbridge::web::{self, auth};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration as StdDuration;
use tower::ServiceExt;

const DEMO_DID: &str = "+49 30 901820";
const ERIKA: &str = "+49301234567";
const HOST: &str = "bridge.test:8080";
const ORIGIN: &str = "http://bridge.test:8080";

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SledStore>,
    hub: Arc<CallHub>,
    state: web::WebState,
    resolver: Resolver,
}

impl Fixture {
    /// The demo user (attended by `desk`) and the attendant `desk`, as in tests/web_window.rs.
    async fn new(tune: impl FnOnce(web::WebState) -> web::WebState) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let summary =
            contactbridge::demo::load(store.as_ref(), &contactbridge::demo::default_dir(), Utc::now()).await.unwrap();
        let mut demo = summary.profile;
        demo.attendant = Some(Attendant { number: "+49 30 901829".into(), user: Some(uid("desk")) });
        user::put_profile(store.as_ref(), &demo).unwrap();
        let mut desk = UserProfile::new(uid("desk"), "demo");
        desk.display_name = "Front <b>Desk</b>".into();
        desk.called_numbers = vec!["+49 30 901829".into()];
        user::put_profile(store.as_ref(), &desk).unwrap();

        let dynstore: Arc<dyn Store> = store.clone();
        let hub = CallHub::new(dynstore.clone());
        let state = tune(web::WebState::new(dynstore.clone(), store.clone(), hub.clone()));
        Self { _dir: dir, store, hub, state, resolver: Resolver::new(dynstore) }
    }

    fn router(&self) -> Router {
        web::router(self.state.clone())
    }

    fn link(&self, user: &str) -> String {
        let t = auth::issue_login(self.store.as_ref(), self.store.as_ref(), &uid(user), Duration::hours(1), Utc::now())
            .unwrap();
        auth::login_path(&t)
    }

    /// Signs `user` in through a login link; returns the `Cookie` header value (session and hint).
    async fn sign_in(&self, user: &str) -> String {
        let res = self.send("GET", &self.link(user), &[], None).await;
        assert_eq!(res.status(), StatusCode::OK);
        cookie_header(res.headers())
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Body>,
    ) -> axum::response::Response {
        let mut req = Request::builder().method(method).uri(path).header(header::HOST, HOST);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.router().oneshot(req.body(body.unwrap_or_else(Body::empty)).unwrap()).await.unwrap()
    }

    /// A same-origin JSON request as the page makes it.
    async fn call(&self, method: &str, path: &str, cookie: &str, body: Option<Value>) -> StatusCode {
        let mut h = vec![("cookie", cookie), ("origin", ORIGIN)];
        if body.is_some() {
            h.push(("content-type", "application/json"));
        }
        self.send(method, path, &h, body.map(|b| Body::from(b.to_string()))).await.status()
    }

    /// A call from `cli` to the demo user, resolved and announced as ResolveCall does.
    fn ring(&self) -> Decision {
        let q = CallQuery { called: DEMO_DID.into(), cli: ERIKA.into(), tsps_call_id: None, at: Utc::now() };
        let d = self.resolver.resolve(&q).unwrap();
        self.hub.announce(&d);
        d
    }

    fn withdraw_designation(&self) {
        let mut demo = self.store.profile(&uid("demo")).unwrap().unwrap();
        demo.attendant.as_mut().unwrap().user = None;
        user::put_profile(self.store.as_ref(), &demo).unwrap();
    }
}

fn base64_url(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

/// `name=value` pairs of the response's Set-Cookie headers, as a Cookie header.
fn cookie_header(h: &HeaderMap) -> String {
    h.get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn text(res: axum::response::Response) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// An open `/events` stream, read as text.
struct Events {
    body: Body,
    seen: String,
}

impl Events {
    async fn open(f: &Fixture, cookie: &str) -> Self {
        let res = f.send("GET", "/events", &[("cookie", cookie)], None).await;
        assert_eq!(res.status(), StatusCode::OK);
        let mut e = Self { body: res.into_body(), seen: String::new() };
        while !e.seen.contains("event: ready") {
            e.read(StdDuration::from_secs(5)).await.expect("the stream ended before ready");
        }
        e
    }

    /// One frame within `wait` (kept in `seen`); None when the stream ended; panics on timeout.
    async fn read(&mut self, wait: StdDuration) -> Option<()> {
        let frame = tokio::time::timeout(wait, self.body.frame())
            .await
            .unwrap_or_else(|_| panic!("nothing within {wait:?}; got {:?}", self.seen))?;
        if let Ok(data) = frame.unwrap().into_data() {
            self.seen.push_str(std::str::from_utf8(&data).unwrap());
        }
        Some(())
    }

    /// Reads until the stream ends (within `wait`); returns what came after `ready`.
    async fn ends_within(mut self, wait: StdDuration) -> String {
        let deadline = tokio::time::Instant::now() + wait;
        while self.read(deadline.saturating_duration_since(tokio::time::Instant::now())).await.is_some() {}
        self.seen.split_once("event: ready").map(|(_, rest)| rest.to_string()).unwrap_or_default()
    }

    /// The next `call` event's id, within `wait`.
    async fn next_call(&mut self, wait: StdDuration) -> String {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(at) = self.seen.find("event: call\ndata: ") {
                let rest = &self.seen[at + "event: call\ndata: ".len()..];
                if let Some(end) = rest.find('\n') {
                    let v: Value = serde_json::from_str(&rest[..end]).unwrap();
                    self.seen = rest[end..].to_string();
                    return v["call_id"].as_str().unwrap().to_string();
                }
            }
            self.read(deadline.saturating_duration_since(tokio::time::Instant::now())).await.expect("the stream ended");
        }
    }
}

/// No idle re-check in these tests unless asked: what ends a stream is the event or the revocation.
fn no_idle_recheck(s: web::WebState) -> web::WebState {
    s.with_recheck_interval(StdDuration::from_secs(3600))
}

#[tokio::test]
async fn logout_ends_the_open_stream_at_once_and_no_later_call_reaches_it() {
    let f = Fixture::new(no_idle_recheck).await;
    let demo = f.sign_in("demo").await;
    let other_tab = f.sign_in("demo").await;
    let events = Events::open(&f, &demo).await;
    let mut other = Events::open(&f, &other_tab).await;

    assert_eq!(f.call("POST", "/logout", &demo, None).await, StatusCode::NO_CONTENT);
    let started = std::time::Instant::now();
    let after = events.ends_within(StdDuration::from_secs(2)).await;
    println!("the stream ended {:?} after logout", started.elapsed());
    let d = f.ring();
    assert!(!after.contains("event:"), "delivered after logout: {after}");
    // The same user's other session goes on.
    assert_eq!(other.next_call(StdDuration::from_secs(5)).await, d.call_id.as_str());
    assert_eq!(f.call("GET", "/api/me", &demo, None).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_expired_session_ends_its_stream_without_any_event() {
    let f = Fixture::new(|s| no_idle_recheck(s).with_session_lifetime(Duration::milliseconds(1500))).await;
    let demo = f.sign_in("demo").await;
    let events = Events::open(&f, &demo).await;
    let started = std::time::Instant::now();
    let after = events.ends_within(StdDuration::from_secs(5)).await;
    let took = started.elapsed();
    println!("the stream ended {took:?} after it opened (session lifetime 1.5 s)");
    assert!(took < StdDuration::from_millis(2500), "{took:?}");
    assert!(!after.contains("event:"), "{after}");
    f.ring();
    assert_eq!(f.call("GET", "/events", &demo, None).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_deleted_user_gets_no_further_call_on_the_open_stream() {
    let f = Fixture::new(no_idle_recheck).await;
    let demo = f.sign_in("demo").await;
    let mut events = Events::open(&f, &demo).await;
    let first = f.ring();
    assert_eq!(events.next_call(StdDuration::from_secs(5)).await, first.call_id.as_str());

    // Deleted as DeleteUser does (the store, no word to the web server).
    assert!(f.store.delete_user(&uid("demo")).unwrap());
    let decision = Decision { call_id: contactbridge::calls::CallId("after-delete".into()), ..first };
    assert_eq!(f.hub.announce(&decision), 1, "the open stream is still subscribed");
    let after = events.ends_within(StdDuration::from_secs(2)).await;
    assert!(!after.contains("after-delete"), "delivered to a deleted user: {after}");
    assert!(!after.contains("event: call"), "{after}");
}

#[tokio::test]
async fn a_withdrawn_attendant_gets_no_further_call_of_that_user() {
    let f = Fixture::new(no_idle_recheck).await;
    let desk = f.sign_in("desk").await;
    let demo = f.sign_in("demo").await;
    let mut desk_events = Events::open(&f, &desk).await;
    let first = f.ring();
    assert_eq!(desk_events.next_call(StdDuration::from_secs(5)).await, first.call_id.as_str());

    f.withdraw_designation();
    let mut demo_events = Events::open(&f, &demo).await;
    let second = f.ring();
    let after = desk_events.ends_within(StdDuration::from_secs(2)).await;
    assert!(!after.contains(second.call_id.as_str()), "the former attendant got the call: {after}");
    assert_eq!(demo_events.next_call(StdDuration::from_secs(5)).await, second.call_id.as_str());

    // The page reconnects: the new stream no longer carries the user's calls, nor do the routes.
    let mut again = Events::open(&f, &desk).await;
    let third = f.ring();
    assert_eq!(demo_events.next_call(StdDuration::from_secs(5)).await, third.call_id.as_str());
    let own = f
        .resolver
        .resolve(&CallQuery { called: "+49 30 901829".into(), cli: ERIKA.into(), tsps_call_id: None, at: Utc::now() })
        .unwrap();
    f.hub.announce(&own);
    assert_eq!(again.next_call(StdDuration::from_secs(5)).await, own.call_id.as_str(), "third call skipped");
    let path = format!("/api/calls/{}", third.call_id);
    assert_eq!(f.call("GET", &path, &desk, None).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn idle_streams_end_within_the_recheck_interval_after_deletion_or_withdrawal() {
    let f = Fixture::new(|s| s.with_recheck_interval(StdDuration::from_millis(200))).await;
    let desk = f.sign_in("desk").await;
    let demo = f.sign_in("demo").await;
    let desk_events = Events::open(&f, &desk).await;
    let demo_events = Events::open(&f, &demo).await;

    f.withdraw_designation();
    let started = std::time::Instant::now();
    assert!(!desk_events.ends_within(StdDuration::from_secs(2)).await.contains("event:"));
    println!("the former attendant's idle stream ended {:?} after the withdrawal", started.elapsed());

    f.store.delete_user(&uid("demo")).unwrap();
    let started = std::time::Instant::now();
    assert!(!demo_events.ends_within(StdDuration::from_secs(2)).await.contains("event:"));
    println!("the deleted user's idle stream ended {:?} after the deletion", started.elapsed());
}

/// An admin's PutUser (designation withdrawn) and DeleteUser over a real gRPC server end the
/// open streams at once, with no event and no idle re-check (1 h here).
#[tokio::test]
async fn an_admins_put_user_and_delete_user_over_grpc_end_open_streams_at_once() {
    use contactbridge::api::{auth as keys, client::BridgeClient, pb, RunningServer, ServerOptions};
    let f = Fixture::new(no_idle_recheck).await;
    let admin = keys::create_key(f.store.as_ref(), "demo", keys::Scope::Admin, "test").unwrap().text;
    let web_logins =
        auth::WebLogins { tokens: f.store.clone(), base_url: ORIGIN.into(), sessions: f.state.session_checks() };
    let options = ServerOptions { web_logins: Some(web_logins), ..ServerOptions::default() };
    let server = RunningServer::start(
        f.store.clone(),
        f.store.clone(),
        f.hub.clone(),
        "127.0.0.1:0".parse().unwrap(),
        None,
        options,
    )
    .await
    .unwrap();
    let mut c = BridgeClient::connect(&format!("http://{}", server.addr), &admin).await.unwrap();
    let desk = f.sign_in("desk").await;
    let demo = f.sign_in("demo").await;
    let desk_events = Events::open(&f, &desk).await;
    let demo_events = Events::open(&f, &demo).await;

    let mut profile = c.admin.get_user(pb::GetUserRequest { user_id: "demo".into() }).await.unwrap().into_inner();
    profile.attendant.as_mut().unwrap().user_id = String::new();
    c.admin.put_user(pb::PutUserRequest { profile: Some(profile) }).await.unwrap();
    let started = std::time::Instant::now();
    assert!(!desk_events.ends_within(StdDuration::from_secs(2)).await.contains("event:"));
    println!("PutUser withdrew the designation; the attendant's stream ended {:?} after", started.elapsed());

    let deleted = c.admin.delete_user(pb::DeleteUserRequest { user_id: "demo".into() }).await.unwrap().into_inner();
    assert!(deleted.deleted);
    let started = std::time::Instant::now();
    assert!(!demo_events.ends_within(StdDuration::from_secs(2)).await.contains("event:"));
    println!("DeleteUser; the user's stream ended {:?} after", started.elapsed());
}

#[tokio::test]
async fn state_changing_requests_from_another_origin_are_refused() {
    let f = Fixture::new(no_idle_recheck).await;
    let demo = f.sign_in("demo").await;
    let d = f.ring();
    let directive = format!("/api/calls/{}/directive", d.call_id);
    let chat = format!("/api/calls/{}/chat", d.call_id);
    let json = ("content-type", "application/json");
    let refused: [&[(&str, &str)]; 6] = [
        &[("origin", "http://bridge.test:9999")],
        &[("origin", "http://evil.example")],
        &[("origin", "null")],
        &[],
        &[("sec-fetch-site", "same-site")],
        &[("origin", ORIGIN), ("sec-fetch-site", "cross-site")],
    ];
    for extra in refused {
        let mut h = vec![("cookie", demo.as_str()), json];
        h.extend_from_slice(extra);
        for (method, path, body) in [
            ("POST", "/logout", None),
            ("POST", directive.as_str(), Some(json!({"action": "reject"}))),
            ("POST", chat.as_str(), Some(json!({"text": "hi"}))),
            ("PUT", "/api/criteria", Some(json!({}))),
            ("DELETE", "/api/criteria", None),
        ] {
            let res = f.send(method, path, &h, body.map(|b| Body::from(b.to_string()))).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{method} {path} with {extra:?}");
            assert!(text(res).await.contains("cross-origin"));
        }
    }
    // Nothing happened: the session lives, the call's journal is empty.
    assert_eq!(f.call("GET", "/api/me", &demo, None).await, StatusCode::OK);
    assert!(f.store.call(&d.call_id).unwrap().unwrap().events.is_empty());

    // The page's own requests pass: by Origin, or by Sec-Fetch-Site alone.
    let res = f
        .send(
            "POST",
            &chat,
            &[("cookie", &demo), json, ("sec-fetch-site", "same-origin")],
            Some(Body::from(r#"{"text":"ok"}"#)),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(f.call("POST", "/logout", &demo, None).await, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_login_link_does_not_silently_replace_another_users_session() {
    let f = Fixture::new(no_idle_recheck).await;
    let demo = f.sign_in("demo").await;
    assert!(demo.contains("cb_session=") && demo.contains("cb_signed_in="), "{demo}");
    let hint_only = demo.split("; ").find(|c| c.starts_with("cb_signed_in=")).unwrap().to_string();
    let desk_link = f.link("desk");

    // With the session (link pasted) or only the Lax hint (link opened from a mail): a question, not a switch.
    for cookie in [demo.as_str(), hint_only.as_str()] {
        let res = f.send("GET", &desk_link, &[("cookie", cookie)], None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().get(header::SET_COOKIE).is_none(), "the session was replaced");
        let page = text(res).await;
        assert!(page.contains("signed in") && page.contains("demo"), "{page}");
        assert!(page.contains("Front &lt;b&gt;Desk&lt;/b&gt; (desk)"), "names are escaped: {page}");
        assert!(page.contains("method=post action=\"/login\""), "{page}");
    }
    // A hint naming someone else is only the browser's word: their id as given, never their name.
    let forged = format!("cb_signed_in={}", base64_url("desk"));
    let page = text(f.send("GET", &f.link("demo"), &[("cookie", &forged)], None).await).await;
    assert!(page.contains("<strong>desk</strong>") && !page.contains("Front"), "{page}");
    assert_eq!(f.call("GET", "/api/me", &demo, None).await, StatusCode::OK, "demo is still signed in");

    // Switching is a POST: from another origin it is refused and the link stays unused.
    let token = desk_link.split_once("token=").unwrap().1;
    let form = format!("token={token}");
    let form_type = ("content-type", "application/x-www-form-urlencoded");
    let res = f
        .send(
            "POST",
            "/login",
            &[("cookie", &demo), form_type, ("origin", "http://evil.example")],
            Some(Body::from(form.clone())),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = f
        .send("POST", "/login", &[("cookie", &demo), form_type, ("origin", ORIGIN)], Some(Body::from(form.clone())))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let desk = cookie_header(res.headers());
    let res = f.send("GET", "/api/me", &[("cookie", &desk)], None).await;
    assert_eq!(serde_json::from_str::<Value>(&text(res).await).unwrap()["user"]["id"], "desk");
    assert_eq!(f.call("GET", "/api/me", &demo, None).await, StatusCode::UNAUTHORIZED, "the old session ended");
    let res = f.send("POST", "/login", &[form_type, ("origin", ORIGIN)], Some(Body::from(form))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the link works once");

    // The same user's link signs in directly.
    let res = f.send("GET", &f.link("desk"), &[("cookie", &desk)], None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(cookie_header(res.headers()).contains("cb_session=cbw_"));
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let f = Fixture::new(no_idle_recheck).await;
    let demo = f.sign_in("demo").await;
    let d = f.ring();
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, StatusCode);
    let cases: Vec<Case> = vec![
        ("GET", "/".into(), vec![], StatusCode::OK),
        ("GET", "/assets/app.js".into(), vec![], StatusCode::OK),
        ("GET", "/assets/nope.js".into(), vec![], StatusCode::NOT_FOUND),
        ("GET", "/no/such/route".into(), vec![], StatusCode::NOT_FOUND),
        ("GET", "/api/me".into(), vec![], StatusCode::UNAUTHORIZED),
        ("GET", "/api/me".into(), vec![("cookie", &demo)], StatusCode::OK),
        ("GET", format!("/api/calls/{}", d.call_id), vec![("cookie", &demo)], StatusCode::OK),
        ("GET", "/api/calls/nope".into(), vec![("cookie", &demo)], StatusCode::NOT_FOUND),
        ("GET", "/login?token=cbw_madeup".into(), vec![], StatusCode::UNAUTHORIZED),
        ("GET", "/login".into(), vec![], StatusCode::BAD_REQUEST),
        ("POST", "/logout".into(), vec![("cookie", &demo), ("origin", "http://evil.example")], StatusCode::FORBIDDEN),
        ("GET", "/events".into(), vec![("cookie", &demo)], StatusCode::OK),
    ];
    for (method, path, headers, status) in cases {
        let res = f.send(method, &path, &headers, None).await;
        assert_eq!(res.status(), status, "{method} {path}");
        let h = res.headers();
        let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert!(get("content-security-policy").contains("frame-ancestors 'none'"), "{method} {path}: {h:?}");
        assert!(get("content-security-policy").contains("default-src 'self'"), "{method} {path}");
        assert_eq!(get("x-content-type-options"), "nosniff", "{method} {path}");
        assert_eq!(get("x-frame-options"), "DENY", "{method} {path}");
        assert_eq!(get("referrer-policy"), "no-referrer", "{method} {path}");
        assert!(h.get("strict-transport-security").is_none(), "no HSTS without TLS");
    }
}

mod tls {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};

    /// A GET over TLS (HTTP/1.1, connection closed after); returns the response head and body as text.
    async fn https_get(addr: std::net::SocketAddr, roots: &RootCertStore, path: &str) -> String {
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n", addr.port());
        tls.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn https_serves_the_page_and_a_secure_cookie_and_an_idle_client_blocks_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert_pem, key_pem) = (dir.path().join("web.pem"), dir.path().join("web.key"));
        std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
        std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
        let config = web::tls::server_config(&cert_pem, &key_pem).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(cert.cert.der().to_vec())).unwrap();

        let f = Fixture::new(|s| s.with_tls(config)).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(web::serve(
            f.state.clone(),
            listener,
            async move {
                let _ = stopped.await;
            },
            StdDuration::from_secs(10),
        ));

        // A client that connects and never says a word holds up no one.
        let _idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        let page = tokio::time::timeout(StdDuration::from_secs(5), https_get(addr, &roots, "/")).await.unwrap();
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.to_ascii_lowercase().contains("strict-transport-security: max-age="), "{page}");
        assert!(page.contains("notification window"));

        let login = https_get(addr, &roots, &f.link("demo")).await;
        assert!(login.starts_with("HTTP/1.1 200"), "{login}");
        let cookies: Vec<&str> = login.lines().filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).collect();
        assert_eq!(cookies.len(), 2, "{login}");
        for c in cookies {
            assert!(c.contains("; Secure"), "{c}");
        }

        // Plain HTTP on the TLS port gets no page.
        let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
        plain.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(StdDuration::from_secs(5), plain.read_to_end(&mut out)).await;
        assert!(!String::from_utf8_lossy(&out).contains("200 OK"));

        stop.send(()).unwrap();
        tokio::time::timeout(StdDuration::from_secs(5), server).await.unwrap().unwrap().unwrap();
    }

    /// Past the handshake bound: with MAX_HANDSHAKES clients that connect and never speak, the
    /// next client waits in the backlog until their HANDSHAKE_TIMEOUT frees the slots, then is served.
    #[tokio::test]
    async fn past_the_handshake_bound_a_client_waits_for_the_timeout_then_gets_the_page() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert_pem, key_pem) = (dir.path().join("web.pem"), dir.path().join("web.key"));
        std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
        std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
        let config = web::tls::server_config(&cert_pem, &key_pem).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(cert.cert.der().to_vec())).unwrap();
        let f = Fixture::new(|s| s.with_tls(config)).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server =
            tokio::spawn(web::serve(f.state.clone(), listener, std::future::pending(), StdDuration::from_secs(10)));

        let mut idle = Vec::new();
        for _ in 0..web::tls::MAX_HANDSHAKES {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(StdDuration::from_millis(300)).await;
        let started = std::time::Instant::now();
        let limit = web::tls::HANDSHAKE_TIMEOUT + StdDuration::from_secs(10);
        let page = tokio::time::timeout(limit, https_get(addr, &roots, "/")).await.expect("never served");
        let waited = started.elapsed();
        println!("with {} silent clients the next one got the page after {waited:?}", idle.len());
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(waited >= web::tls::HANDSHAKE_TIMEOUT / 2, "the bound did not hold: served after {waited:?}");
        server.abort();
    }

    /// Kills the server it holds when dropped (also when the test fails).
    struct Server(std::process::Child);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// `serve` with TLS for gRPC and the window and the metrics address from the configuration file only.
    #[tokio::test]
    async fn serve_takes_tls_and_the_metrics_address_from_the_configuration_file() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        let (grpc, web, metrics) = (free_port(), free_port(), free_port());
        let p = |f: &str| dir.path().join(f).display().to_string();
        let config = format!(
            "data_dir = \"{}\"\n[grpc]\nlisten = \"127.0.0.1:{grpc}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
             [web]\nlisten = \"127.0.0.1:{web}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n",
            p("data"),
            p("cert.pem"),
            p("key.pem"),
            p("cert.pem"),
            p("key.pem")
        );
        std::fs::write(dir.path().join("cb.toml"), config).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_contactbridge"))
            .arg("--config")
            .arg(dir.path().join("cb.toml"))
            .args(["serve", "--demo"])
            .env_remove("CONTACTBRIDGE_CONFIG")
            .env_remove("CONTACTBRIDGE_METRICS__LISTEN")
            .env_remove("CONTACTBRIDGE_WEB__LISTEN")
            .env_remove("CONTACTBRIDGE_GRPC__LISTEN")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let _server = Server(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut out = Vec::new();
        while !out.iter().any(|l: &String| l.starts_with("notification window on")) {
            out.push(rx.recv_timeout(StdDuration::from_secs(60)).unwrap_or_else(|_| panic!("serve said {out:?}")));
        }
        assert!(out.contains(&format!("gRPC on 127.0.0.1:{grpc} (TLS)")), "{out:?}");
        assert!(out.contains(&format!("notification window on https://127.0.0.1:{web}")), "{out:?}");

        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(cert.cert.der().to_vec())).unwrap();
        let page = https_get(([127, 0, 0, 1], web).into(), &roots, "/").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        let mut m = tokio::net::TcpStream::connect(("127.0.0.1", metrics)).await.unwrap();
        m.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut body = Vec::new();
        m.read_to_end(&mut body).await.unwrap();
        assert!(String::from_utf8_lossy(&body).starts_with("HTTP/1.1 200"), "metrics on the configured address");
    }

    #[test]
    fn a_missing_or_broken_certificate_is_an_error_that_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = web::tls::server_config(&dir.path().join("missing.pem"), &junk).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        let e = web::tls::server_config(&junk, &junk).unwrap_err().to_string();
        assert!(e.contains("junk.pem"), "{e}");
    }
}
