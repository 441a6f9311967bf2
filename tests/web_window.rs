//! The notification window's routes, in process against a real sled store with
//! the demo data: sign-in and isolation between users, attendant access,
//! directives reaching a phone system's directive stream, the live event
//! stream, chat kept in the call record, the context and its criteria.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use chrono::{Duration, Utc};
use contactbridge::calls::CallEventKind;
use contactbridge::live::{CallHub, DirectiveAction};
use contactbridge::resolve::{CallQuery, Decision, Resolver};
use contactbridge::store::{AssignTarget, CallStore, SledStore, Store, UserStore};
use contactbridge::user::{self, Attendant, UserId, UserProfile};
use contactbridge::web::{self, auth};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

const DEMO_DID: &str = "+49 30 901820";
const ERIKA: &str = "+49301234567";

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SledStore>,
    hub: Arc<CallHub>,
    state: web::WebState,
    resolver: Resolver,
}

impl Fixture {
    /// The demo user (attended by `desk`), the attendant `desk`, and `bob` of another tenant.
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let summary =
            contactbridge::demo::load(store.as_ref(), &contactbridge::demo::default_dir(), Utc::now()).await.unwrap();
        let mut demo = summary.profile;
        demo.attendant = Some(Attendant { number: "+49 30 901829".into(), user: Some(uid("desk")) });
        user::put_profile(store.as_ref(), &demo).unwrap();
        let mut desk = UserProfile::new(uid("desk"), "demo");
        desk.display_name = "Front Desk".into();
        desk.called_numbers = vec!["+49 30 901829".into()];
        user::put_profile(store.as_ref(), &desk).unwrap();
        let mut bob = UserProfile::new(uid("bob"), "other");
        bob.called_numbers = vec!["+49 89 555000".into()];
        user::put_profile(store.as_ref(), &bob).unwrap();

        let dynstore: Arc<dyn Store> = store.clone();
        let hub = CallHub::new(dynstore.clone());
        let state = web::WebState::new(dynstore.clone(), store.clone(), hub.clone()).with_accounts(store.clone());
        Self { _dir: dir, store, hub, state, resolver: Resolver::new(dynstore) }
    }

    fn router(&self) -> Router {
        web::router(self.state.clone())
    }

    /// Signs `user` in through a login link; returns the `Cookie` header value.
    async fn sign_in(&self, user: &str) -> String {
        let token =
            auth::issue_login(self.store.as_ref(), self.store.as_ref(), &uid(user), Duration::hours(1), Utc::now())
                .unwrap();
        let res = self.router().oneshot(get(&auth::login_path(&token), None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let set = res.headers()[header::SET_COOKIE].to_str().unwrap().to_string();
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attr), "{set}");
        }
        set.split(';').next().unwrap().to_string()
    }

    /// A call from `cli` to the demo user, resolved as the gRPC ResolveCall does, and announced.
    fn ring(&self, cli: &str) -> Decision {
        let d = self
            .resolver
            .resolve(&CallQuery {
                called: DEMO_DID.into(),
                cli: cli.into(),
                tsps_call_id: Some("t-1".into()),
                at: Utc::now(),
            })
            .unwrap();
        self.hub.announce(&d);
        d
    }

    async fn call(&self, method: &str, path: &str, cookie: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        // As the page's own requests: same origin (state-changing requests need it).
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "bridge.test")
            .header(header::ORIGIN, "http://bridge.test");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.router().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::builder().uri(path);
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::empty()).unwrap()
}

/// An open `/events` stream, read as text.
struct Events {
    body: Body,
    seen: String,
}

impl Events {
    async fn open(f: &Fixture, cookie: &str) -> Self {
        let res = f.router().oneshot(get("/events", Some(cookie))).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
        let mut e = Self { body: res.into_body(), seen: String::new() };
        e.next("ready").await;
        e
    }

    /// The data of the next event named `name` (earlier events of other names are skipped).
    async fn next(&mut self, name: &str) -> Value {
        let marker = format!("event: {name}\ndata: ");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if let Some(at) = self.seen.find(&marker) {
                let rest = &self.seen[at + marker.len()..];
                if let Some(end) = rest.find('\n') {
                    let v = serde_json::from_str(&rest[..end]).unwrap();
                    self.seen = rest[end..].to_string();
                    return v;
                }
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("no {name:?} event within 5 s; got {:?}", self.seen))
                .expect("the stream ended")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.seen.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }
}

#[tokio::test]
async fn every_route_needs_a_session_and_a_login_link_works_once() {
    let f = Fixture::new().await;
    let d = f.ring(ERIKA);
    let id = d.call_id.as_str();
    for path in [
        "/api/me",
        "/events",
        "/api/history",
        "/api/criteria",
        &format!("/api/calls/{id}"),
        "/api/search?q=acme",
        "/api/contact?number=%2B49301234567",
    ] {
        let res = f.router().oneshot(get(path, None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
        let res = f.router().oneshot(get(path, Some("cb_session=cbw_forged"))).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path} with a forged session");
    }
    let (s, _) = f.call("POST", &format!("/api/calls/{id}/directive"), None, Some(json!({"action": "reject"}))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = f.call("POST", "/api/dial", None, Some(json!({"to": "+49 30 1234567"}))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A dial from another origin (a page elsewhere that knows the cookie is sent) is refused.
    let demo = f.sign_in("demo").await;
    let cross = Request::builder()
        .method("POST")
        .uri("/api/dial")
        .header(header::HOST, "bridge.test")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::COOKIE, &demo)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"to": "+49 900 123456"}).to_string()))
        .unwrap();
    assert_eq!(f.router().oneshot(cross).await.unwrap().status(), StatusCode::FORBIDDEN);
    // The manifest and the icon need no session.
    for path in ["/manifest.webmanifest", "/assets/icon.svg"] {
        assert_eq!(f.router().oneshot(get(path, None)).await.unwrap().status(), StatusCode::OK, "{path}");
    }

    let token =
        auth::issue_login(f.store.as_ref(), f.store.as_ref(), &uid("demo"), Duration::hours(1), Utc::now()).unwrap();
    let first = f.router().oneshot(get(&auth::login_path(&token), None)).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let again = f.router().oneshot(get(&auth::login_path(&token), None)).await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "a login link opens one session only");

    let expired =
        auth::issue_login(f.store.as_ref(), f.store.as_ref(), &uid("demo"), Duration::hours(1), Utc::now()).unwrap();
    let later = Utc::now() + Duration::hours(2);
    assert!(auth::exchange_login(f.store.as_ref(), &expired.text, later).is_err(), "an expired link is refused");
    assert!(
        auth::issue_login(f.store.as_ref(), f.store.as_ref(), &uid("nobody"), Duration::hours(1), Utc::now()).is_err()
    );

    // The page and its assets need no session (they hold no data); the page has no inline script.
    let page = f.router().oneshot(get("/", None)).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("default-src 'self'"));
    let js = f.router().oneshot(get("/assets/app.js", None)).await.unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    let missing = f.router().oneshot(get("/assets/../Cargo.toml", None)).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // Logging out ends the session.
    let cookie = f.sign_in("demo").await;
    assert_eq!(f.call("GET", "/api/me", Some(&cookie), None).await.0, StatusCode::OK);
    assert_eq!(f.call("POST", "/logout", Some(&cookie), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(f.call("GET", "/api/me", Some(&cookie), None).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn nobody_sees_another_users_calls_but_the_designated_attendant_does() {
    let f = Fixture::new().await;
    let d = f.ring(ERIKA);
    let id = d.call_id.as_str();
    let bob = f.sign_in("bob").await;
    let desk = f.sign_in("desk").await;
    let demo = f.sign_in("demo").await;

    let (_, me) = f.call("GET", "/api/me", Some(&desk), None).await;
    assert_eq!(me["attends"][0]["id"], "demo");
    let (_, me) = f.call("GET", "/api/me", Some(&bob), None).await;
    assert_eq!(me["attends"], json!([]));

    let reads = [
        format!("/api/calls/{id}"),
        format!("/api/calls/{id}/context"),
        "/api/history?user=demo".to_string(),
        format!("/api/history?user=demo&caller={}", urlencode(ERIKA)),
    ];
    for path in &reads {
        assert_eq!(f.call("GET", path, Some(&bob), None).await.0, StatusCode::NOT_FOUND, "bob reads {path}");
        assert_eq!(f.call("GET", path, Some(&demo), None).await.0, StatusCode::OK, "demo reads {path}");
        assert_eq!(f.call("GET", path, Some(&desk), None).await.0, StatusCode::OK, "the attendant reads {path}");
    }
    let writes = [
        (format!("/api/calls/{id}/directive"), json!({"action": "reject"})),
        (format!("/api/calls/{id}/directive"), json!({"action": "block"})),
        (format!("/api/calls/{id}/chat"), json!({"text": "hello"})),
    ];
    for (path, body) in &writes {
        let (s, _) = f.call("POST", path, Some(&bob), Some(body.clone())).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "bob posts {path} {body}");
    }
    // Bob's attempts left no trace in the call, and no assignment.
    let record = f.store.call(&d.call_id).unwrap().unwrap();
    assert!(record.events.is_empty(), "{:?}", record.events);
    assert_eq!(f.store.assignment(&uid("demo"), &AssignTarget::Number(d.caller.key.clone().unwrap())).unwrap(), None);

    // The demo user does not see the attendant's own calls: attending goes one way.
    assert_eq!(f.call("GET", "/api/history?user=desk", Some(&demo), None).await.0, StatusCode::NOT_FOUND);
    let (_, history) = f.call("GET", "/api/history", Some(&bob), None).await;
    assert_eq!(history, json!([]));
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(' ', "%20")
}

#[tokio::test]
async fn a_click_reaches_the_phone_systems_directive_stream_and_the_journal() {
    let f = Fixture::new().await;
    let mut tsps = f.hub.watch_directives("demo");
    let demo = f.sign_in("demo").await;
    let desk = f.sign_in("desk").await;
    let d = f.ring(ERIKA);
    let id = d.call_id.as_str();

    let clicked = std::time::Instant::now();
    let (s, body) = f
        .call(
            "POST",
            &format!("/api/calls/{id}/directive"),
            Some(&demo),
            Some(json!({"action": "forward", "to": "+49 170 1234567"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), tsps.recv()).await.unwrap().unwrap();
    println!("directive reached the WatchDirectives subscriber {:?} after the request was sent", clicked.elapsed());
    assert_eq!(got.call_id, d.call_id);
    assert_eq!(got.tsps_call_id.as_deref(), Some("t-1"));
    assert_eq!(got.action, DirectiveAction::Forward { to: "+49 170 1234567".into() });
    assert_eq!(got.by.as_deref(), Some("demo"));
    assert_eq!(body["delivered"], 1);

    // The attendant acts on the same call, signed as the attendant.
    let (s, _) =
        f.call("POST", &format!("/api/calls/{id}/directive"), Some(&desk), Some(json!({"action": "voicemail"}))).await;
    assert_eq!(s, StatusCode::OK);
    let got = tsps.recv().await.unwrap();
    assert_eq!((got.action, got.by.as_deref()), (DirectiveAction::Voicemail, Some("attendant:desk")));

    // Bad input is refused and reaches nobody.
    for bad in [json!({"action": "forward"}), json!({"action": "forward", "to": "x; rm"}), json!({"action": "explode"})]
    {
        let (s, _) = f.call("POST", &format!("/api/calls/{id}/directive"), Some(&demo), Some(bad.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert!(tsps.try_recv().is_err());
    let (s, _) =
        f.call("POST", "/api/calls/no-such-call/directive", Some(&demo), Some(json!({"action": "reject"}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let record = f.store.call(&d.call_id).unwrap().unwrap();
    let journal: Vec<_> = record.events.iter().map(|e| (e.kind.clone(), e.by.clone())).collect();
    assert_eq!(
        journal,
        vec![
            (
                CallEventKind::Directive { action: "forward".into(), target: Some("+49 170 1234567".into()) },
                Some("demo".into())
            ),
            (CallEventKind::Directive { action: "voicemail".into(), target: None }, Some("attendant:desk".into())),
        ]
    );
    let (_, view) = f.call("GET", &format!("/api/calls/{id}"), Some(&demo), None).await;
    assert_eq!(view["events"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn always_block_assigns_blocked_and_rejects() {
    let f = Fixture::new().await;
    let mut tsps = f.hub.watch_directives("demo");
    let demo = f.sign_in("demo").await;
    let d = f.ring(ERIKA);
    assert_eq!(d.handling_code.as_str(), "vip");
    let (s, body) = f
        .call("POST", &format!("/api/calls/{}/directive", d.call_id), Some(&demo), Some(json!({"action": "block"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(tsps.recv().await.unwrap().action, DirectiveAction::Reject);
    let key = d.caller.key.clone().unwrap();
    assert_eq!(body["blocked"], key.as_str());
    assert_eq!(f.store.assignment(&uid("demo"), &AssignTarget::Number(key)).unwrap().unwrap().as_str(), "blocked");
    let next = f.ring(ERIKA);
    assert_eq!(next.handling_code.as_str(), "blocked", "the next call from this number is blocked");

    let withheld = f.ring("anonymous");
    let (s, _) = f
        .call(
            "POST",
            &format!("/api/calls/{}/directive", withheld.call_id),
            Some(&demo),
            Some(json!({"action": "block"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a withheld number cannot be blocked");
}

#[tokio::test]
async fn ringing_calls_and_chat_arrive_live_for_the_user_and_the_attendant_only() {
    let f = Fixture::new().await;
    let demo = f.sign_in("demo").await;
    let desk = f.sign_in("desk").await;
    let bob = f.sign_in("bob").await;
    let mut demo_events = Events::open(&f, &demo).await;
    let mut desk_events = Events::open(&f, &desk).await;
    let mut bob_events = Events::open(&f, &bob).await;

    let d = f.ring(ERIKA);
    for events in [&mut demo_events, &mut desk_events] {
        let call = events.next("call").await;
        assert_eq!(call["call_id"], d.call_id.as_str());
        assert_eq!(call["caller_name"], "Erika Mustermann");
        assert_eq!(call["company"], "ACME GmbH");
        assert_eq!(call["handling_code"], "vip");
        assert_eq!(call["method"], "notify");
        let numbers: Vec<&str> =
            call["forward"].as_array().unwrap().iter().map(|t| t["number"].as_str().unwrap()).collect();
        assert_eq!(numbers, ["+49 170 1234567", "+49 30 901829"]);
    }

    // The attendant writes; the user's browser gets it, and the call record keeps it.
    let (s, _) = f
        .call(
            "POST",
            &format!("/api/calls/{}/chat", d.call_id),
            Some(&desk),
            Some(json!({"text": "In a meeting? I'll take a message."})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let msg = demo_events.next("chat").await;
    assert_eq!(
        (msg["text"].as_str(), msg["by"].as_str()),
        (Some("In a meeting? I'll take a message."), Some("attendant:desk"))
    );
    let (s, _) = f
        .call("POST", &format!("/api/calls/{}/chat", d.call_id), Some(&demo), Some(json!({"text": "Yes please"})))
        .await;
    assert_eq!(s, StatusCode::OK);
    let echo = desk_events.next("chat").await;
    assert_eq!(echo["by"], "attendant:desk", "the writer's own windows show the message too");
    let msg = desk_events.next("chat").await;
    assert_eq!((msg["text"].as_str(), msg["by"].as_str()), (Some("Yes please"), Some("demo")));
    let (s, _) =
        f.call("POST", &format!("/api/calls/{}/chat", d.call_id), Some(&demo), Some(json!({"text": "  "}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let chats: Vec<_> = f
        .store
        .call(&d.call_id)
        .unwrap()
        .unwrap()
        .events
        .into_iter()
        .filter_map(|e| match e.kind {
            CallEventKind::Chat { text } => Some((text, e.by.unwrap_or_default())),
            _ => None,
        })
        .collect();
    assert_eq!(
        chats,
        vec![
            ("In a meeting? I'll take a message.".to_string(), "attendant:desk".to_string()),
            ("Yes please".to_string(), "demo".to_string())
        ]
    );

    // A directive shows in both windows too.
    f.call("POST", &format!("/api/calls/{}/directive", d.call_id), Some(&desk), Some(json!({"action": "accept"})))
        .await;
    assert_eq!(demo_events.next("directive").await["by"], "attendant:desk");

    // Bob got nothing of this: the next thing on his stream is his own call.
    let bobs = f
        .resolver
        .resolve(&CallQuery { called: "+49 89 555000".into(), cli: ERIKA.into(), tsps_call_id: None, at: Utc::now() })
        .unwrap();
    f.hub.announce(&bobs);
    let first = bob_events.next("call").await;
    assert_eq!(first["call_id"], bobs.call_id.as_str());
    assert!(!bob_events.seen.contains("chat") && !bob_events.seen.contains("directive"), "{}", bob_events.seen);

    // Stopping the server ends the streams (graceful shutdown does not wait on them).
    f.state.stop();
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(frame) = demo_events.body.frame().await {
            frame.unwrap();
        }
    })
    .await;
    assert!(end.is_ok(), "the event stream did not end on stop");
}

#[tokio::test]
async fn the_context_shows_the_seeded_mail_meeting_and_document_within_persisted_criteria() {
    let f = Fixture::new().await;
    let demo = f.sign_in("demo").await;
    let d = f.ring(ERIKA);
    let (s, ctx) = f.call("GET", &format!("/api/calls/{}/context", d.call_id), Some(&demo), None).await;
    assert_eq!(s, StatusCode::OK, "{ctx}");
    assert_eq!(ctx["contact"]["name"], "Erika Mustermann");
    let subjects = |k: &str, field: &str| -> Vec<String> {
        ctx[k].as_array().unwrap().iter().map(|m| m[field].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(subjects("mail_received", "subject"), ["Order 4711: delivery date"]);
    assert_eq!(subjects("mail_sent", "subject"), ["Re: Order 4711: delivery date"]);
    assert!(subjects("events", "subject").contains(&"Weekly purchasing sync with ACME".to_string()));
    assert_eq!(subjects("documents", "name"), ["ACME framework agreement 2026.docx"]);
    assert_eq!(ctx["calls"].as_array().unwrap().len(), 1, "this call is in the history with the caller");

    // Fewer mails, saved in the profile, and the context follows.
    let mut criteria = f.call("GET", "/api/criteria", Some(&demo), None).await.1;
    criteria["max_mail"] = json!(0);
    criteria["days_back"] = json!(7);
    let (s, _) = f.call("PUT", "/api/criteria", Some(&demo), Some(criteria.clone())).await;
    assert_eq!(s, StatusCode::OK);
    let stored = f.store.profile(&uid("demo")).unwrap().unwrap().context;
    assert_eq!((stored.max_mail, stored.days_back), (0, 7));
    let (_, ctx) = f.call("GET", &format!("/api/calls/{}/context", d.call_id), Some(&demo), None).await;
    assert_eq!(ctx["mail_received"], json!([]));
    assert_eq!(ctx["criteria"]["days_back"], 7);
    // The rest of the profile is untouched.
    assert_eq!(f.store.profile(&uid("demo")).unwrap().unwrap().attendant.unwrap().user, Some(uid("desk")));

    criteria["max_mail"] = json!(100000);
    assert_eq!(f.call("PUT", "/api/criteria", Some(&demo), Some(criteria)).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        f.call("PUT", "/api/criteria", Some(&demo), Some(json!({"days_back": 1}))).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn the_context_tells_a_pending_written_and_failed_code_write_back_apart() {
    use contactbridge::accounts::{AccountSpec, AccountStore as _, SourceKind};
    use contactbridge::model::{CodeWriteBack, WriteBackState};
    let f = Fixture::new().await;
    let demo = f.sign_in("demo").await;
    let d = f.ring(ERIKA);
    let at = d.candidates[0].stored.at.clone();
    let path = format!("/api/calls/{}/context", d.call_id);
    assert_eq!(f.call("GET", &path, Some(&demo), None).await.1["contact"].get("code_write_back"), None);
    let mut spec = AccountSpec::new(&at.account, uid("demo"), SourceKind::Files { path: "/nowhere".into() });
    spec.write_back_codes = true;
    let now = Utc::now();
    for (state, shown) in [
        (WriteBackState::Pending, "vip: pending, written with the next sync"),
        (WriteBackState::Written { at: now, version: None }, "vip: written"),
        (
            WriteBackState::Failed { at: now, attempts: 2, error: "HTTP 503".into() },
            "vip: write-back failed, retried with the next sync (HTTP 503)",
        ),
    ] {
        let w = CodeWriteBack {
            user: uid("demo"),
            contact: at.clone(),
            code: Some(contactbridge::user::HandlingCode::parse("vip").unwrap()),
            categories: vec!["VIP".into()],
            chosen_at: now,
            base_version: None,
            base_code: None,
            state,
        };
        spec.code_write_backs.insert(CodeWriteBack::key(&uid("demo"), &at), w);
        f.store.put_account(&spec, None).unwrap();
        let (s, ctx) = f.call("GET", &path, Some(&demo), None).await;
        assert_eq!(s, StatusCode::OK, "{ctx}");
        assert_eq!(ctx["contact"]["code_write_back"], shown);
    }
    // Another user's entry for the same contact is not this user's.
    let bob_key = CodeWriteBack::key(&uid("bob"), &at);
    let mine = spec.code_write_backs.remove(&CodeWriteBack::key(&uid("demo"), &at)).unwrap();
    spec.code_write_backs.insert(bob_key, CodeWriteBack { user: uid("bob"), ..mine });
    f.store.put_account(&spec, None).unwrap();
    assert_eq!(f.call("GET", &path, Some(&demo), None).await.1["contact"].get("code_write_back"), None);
}

#[tokio::test]
async fn the_history_lists_calls_for_the_user_and_per_caller_with_their_journal() {
    let f = Fixture::new().await;
    let demo = f.sign_in("demo").await;
    let first = f.ring(ERIKA);
    let other = f.ring("+49 30 5550199");
    let third = f.ring("030 1234567");
    f.call("POST", &format!("/api/calls/{}/chat", first.call_id), Some(&demo), Some(json!({"text": "called back"})))
        .await;

    let (_, all) = f.call("GET", "/api/history", Some(&demo), None).await;
    let ids: Vec<&str> = all.as_array().unwrap().iter().map(|c| c["call_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [third.call_id.as_str(), other.call_id.as_str(), first.call_id.as_str()]);

    // Per caller: the number as typed in the national format finds the same caller.
    let (_, erika) =
        f.call("GET", &format!("/api/history?caller={}", urlencode("030 1234567")), Some(&demo), None).await;
    let ids: Vec<&str> = erika.as_array().unwrap().iter().map(|c| c["call_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [third.call_id.as_str(), first.call_id.as_str()]);
    assert_eq!(erika[1]["events"][0]["text"], "called back");
    assert_eq!(erika[1]["events"][0]["by"], "demo");
}

/// A user of the demo tenant who attends nobody.
fn add_visitor(f: &Fixture) {
    let mut v = UserProfile::new(uid("visitor"), "demo");
    v.called_numbers = vec!["+49 30 901877".into()];
    user::put_profile(f.store.as_ref(), &v).unwrap();
}

#[tokio::test]
async fn what_the_phone_system_reports_and_directs_reaches_every_window_that_may_see_the_call_and_no_other() {
    let f = Fixture::new().await;
    add_visitor(&f);
    let demo = f.sign_in("demo").await;
    let desk = f.sign_in("desk").await;
    let visitor = f.sign_in("visitor").await;
    let bob = f.sign_in("bob").await;
    let mut demo_events = Events::open(&f, &demo).await;
    let mut desk_events = Events::open(&f, &desk).await;
    let mut visitor_events = Events::open(&f, &visitor).await;
    let mut bob_events = Events::open(&f, &bob).await;
    let d = f.ring(ERIKA);
    assert_eq!(demo_events.next("call").await["phase"]["phase"], "ringing");

    // As gRPC SendDirective and ReportCallEvent do it (tenant of the key).
    f.hub
        .direct(&d.call_id, DirectiveAction::Forward { to: "+49 30 901829".into() }, None, Some("demo"), Utc::now())
        .unwrap();
    f.hub.report(&d.call_id, CallEventKind::Answered, Some("attendant:desk".into()), Some("demo"), Utc::now()).unwrap();
    f.hub.report(&d.call_id, CallEventKind::Ended, None, Some("demo"), Utc::now()).unwrap();
    // Another tenant's key changes nothing and tells nobody.
    assert!(f.hub.report(&d.call_id, CallEventKind::Missed, None, Some("other"), Utc::now()).is_err());
    for events in [&mut demo_events, &mut desk_events] {
        let dir = events.next("directive").await;
        assert_eq!((dir["action"].as_str(), dir["phase"]["phase"].as_str()), (Some("forward"), Some("forwarded")));
        assert_eq!(dir["phase"]["to"], "+49 30 901829");
        let answered = events.next("update").await;
        assert_eq!(answered["event"]["event"], "answered");
        assert_eq!(answered["phase"], json!({"phase": "answered", "by": "attendant:desk"}));
        let ended = events.next("update").await;
        assert_eq!(ended["phase"], json!({"phase": "ended", "answered_by": "attendant:desk"}));
    }
    // After a reload the call is not ringing: its record says where it stands.
    let (_, call) = f.call("GET", &format!("/api/calls/{}", d.call_id), Some(&demo), None).await;
    assert_eq!(call["phase"]["phase"], "ended");

    // The visitor (same tenant, attends nobody) and bob (another tenant) got none of it:
    // the next thing on their streams is a chat about a call of their own... which they have not; ring bob's.
    let bobs = f
        .resolver
        .resolve(&CallQuery { called: "+49 89 555000".into(), cli: ERIKA.into(), tsps_call_id: None, at: Utc::now() })
        .unwrap();
    f.hub.announce(&bobs);
    f.hub.report(&bobs.call_id, CallEventKind::Answered, Some("bob".into()), Some("other"), Utc::now()).unwrap();
    assert_eq!(bob_events.next("call").await["call_id"], bobs.call_id.as_str());
    assert_eq!(bob_events.next("update").await["call_id"], bobs.call_id.as_str());
    assert!(!bob_events.seen.contains(d.call_id.as_str()), "{}", bob_events.seen);
    // The visitor's stream: nothing but keep-alives within a short wait.
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(300), visitor_events.next("update")).await;
    assert!(quiet.is_err(), "the visitor saw an update: {}", visitor_events.seen);
    assert!(!visitor_events.seen.contains("\"call_id\""), "{}", visitor_events.seen);
    // And bob's call never reached demo's or desk's windows.
    assert!(!demo_events.seen.contains(bobs.call_id.as_str()) && !desk_events.seen.contains(bobs.call_id.as_str()));
}

#[tokio::test]
async fn the_attendants_history_shows_the_users_they_serve_and_me_shows_their_status() {
    let f = Fixture::new().await;
    let desk = f.sign_in("desk").await;
    let d = f.ring(ERIKA);
    let (s, rows) = f.call("GET", "/api/history", Some(&desk), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(rows.as_array().unwrap().iter().any(|r| r["call_id"] == d.call_id.as_str()), "{rows}");
    let (_, me) = f.call("GET", "/api/me", Some(&desk), None).await;
    let attends = me["attends"].as_array().unwrap();
    assert_eq!(attends.len(), 1);
    assert!(attends[0]["status"].is_string(), "{me}");
    // bob sees none of it.
    let bob = f.sign_in("bob").await;
    let (_, rows) = f.call("GET", "/api/history", Some(&bob), None).await;
    assert_eq!(rows, json!([]));
}

#[tokio::test]
async fn search_finds_contacts_of_the_users_the_viewer_sees_only_and_refuses_hostile_text() {
    let f = Fixture::new().await;
    let demo = f.sign_in("demo").await;
    let desk = f.sign_in("desk").await;
    let bob = f.sign_in("bob").await;
    let search = |q: &str| format!("/api/search?q={}", pct(q));
    for q in ["acme", "ERIKA", "030 1234567", "+49 30 1234567", "erika.mustermann@acme", "Mustermann Erika"] {
        let (s, hits) = f.call("GET", &search(q), Some(&demo), None).await;
        assert_eq!(s, StatusCode::OK, "{q}");
        assert!(hits.as_array().unwrap().iter().any(|h| h["name"] == "Erika Mustermann"), "{q}: {hits}");
    }
    // The attendant finds the contacts of the user she serves; bob (another tenant) finds nothing.
    let (_, hits) = f.call("GET", &search("acme"), Some(&desk), None).await;
    let erika = hits.as_array().unwrap().iter().find(|h| h["name"] == "Erika Mustermann").unwrap().clone();
    assert_eq!(erika["user"], "demo");
    let (_, hits) = f.call("GET", &search("acme"), Some(&bob), None).await;
    assert_eq!(hits, json!([]));
    let (s, _) = f.call("GET", &format!("{}&user=demo", search("acme")), Some(&bob), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "bob may not name demo");

    // Hostile text: huge and control characters are refused with a clear error; markup and unicode find nothing.
    let (s, e) = f.call("GET", &search(&"x".repeat(101)), Some(&demo), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e["error"].as_str().unwrap().contains("1 to 100 characters"), "{e}");
    let (s, _) = f.call("GET", &search(&"\u{1f4de}".repeat(5_000)), Some(&demo), None).await;
    assert!(s == StatusCode::BAD_REQUEST || s == StatusCode::URI_TOO_LONG, "{s}");
    let (s, _) = f.call("GET", &search("a\u{0}b"), Some(&demo), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    for q in ["<script>alert(1)</script>", "Müller ☎ 😀", "' OR 1=1 --", "\u{202e}emca"] {
        let (s, hits) = f.call("GET", &search(q), Some(&demo), None).await;
        assert_eq!((s, hits), (StatusCode::OK, json!([])), "{q}");
    }

    // Opening the hit gives its context; for anyone else the contact is not there.
    let path = format!("/api/contact?user=demo&contact={}", erika["contact"].as_str().unwrap());
    let (s, ctx) = f.call("GET", &path, Some(&desk), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ctx["contact"]["name"], "Erika Mustermann");
    assert!(!ctx["mail_received"].as_array().unwrap().is_empty(), "{ctx}");
    let (s, _) = f.call("GET", &path, Some(&bob), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) =
        f.call("GET", &format!("/api/contact?contact={}", erika["contact"].as_str().unwrap()), Some(&bob), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the token names demo's contact, not bob's");
    let (s, _) = f.call("GET", "/api/contact?contact=bm90LWEtdG9rZW4", Some(&demo), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A bare number: the contact behind it, or just the number's calls.
    let (s, ctx) = f.call("GET", "/api/contact?number=%2B49%2030%201234567", Some(&demo), None).await;
    assert_eq!((s, ctx["contact"]["name"].as_str()), (StatusCode::OK, Some("Erika Mustermann")));
    let (s, ctx) = f.call("GET", "/api/contact?number=%2B49%2089%20111222", Some(&demo), None).await;
    assert_eq!((s, ctx["contact"].is_null()), (StatusCode::OK, true));
    let (s, e) = f.call("GET", "/api/contact?number=%3Cb%3Ex", Some(&demo), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
}

#[tokio::test]
async fn call_sends_a_dial_directive_to_the_tenants_phone_system_and_refuses_hostile_numbers() {
    let f = Fixture::new().await;
    let demo = f.sign_in("demo").await;
    let desk = f.sign_in("desk").await;
    let bob = f.sign_in("bob").await;
    let mut phone = f.hub.watch_directives("demo");
    let mut other = f.hub.watch_directives("other");

    let (s, r) = f.call("POST", "/api/dial", Some(&demo), Some(json!({"to": "(030) 123 45 67"}))).await;
    assert_eq!((s, r["delivered"].as_u64()), (StatusCode::OK, Some(1)), "{r}");
    let d = phone.try_recv().unwrap();
    assert_eq!(d.action, DirectiveAction::Dial { to: "(030) 123 45 67".into() });
    assert_eq!((d.call_id.as_str(), d.user.as_str(), d.by.as_deref()), ("", "demo", Some("demo")));
    // The attendant calls from the user's phone; not from bob's.
    let (s, _) = f.call("POST", "/api/dial", Some(&desk), Some(json!({"user": "demo", "to": "+49 30 1234567"}))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(phone.try_recv().unwrap().by.as_deref(), Some("attendant:desk"));
    let (s, _) = f.call("POST", "/api/dial", Some(&desk), Some(json!({"user": "bob", "to": "+49 30 1234567"}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = f.call("POST", "/api/dial", Some(&bob), Some(json!({"user": "demo", "to": "+49 30 1234567"}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let long = "1".repeat(41);
    for to in [
        "sip:evil@example.com",
        "<script>1</script>",
        "*21*0301234567#",
        "12",
        "",
        "+49 30 1234567\n+1 900",
        &long,
        "+49+30",
    ] {
        let (s, e) = f.call("POST", "/api/dial", Some(&demo), Some(json!({ "to": to }))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{to:?}");
        assert!(e["error"].as_str().unwrap().contains("is not a phone number to dial"), "{to:?}: {e}");
    }
    assert!(phone.try_recv().is_err(), "a refused number reached the phone system");
    assert!(other.try_recv().is_err(), "another tenant's phone system got a directive");
    // A dial is not a directive for a ringing call.
    let d = f.ring(ERIKA);
    assert!(f.hub.direct(&d.call_id, DirectiveAction::Dial { to: "+49 30 1".into() }, None, None, Utc::now()).is_err());
}

/// Percent-encodes every byte but the unreserved ones.
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_window_that_falls_behind_has_its_stream_ended_so_it_reconnects_and_catches_up() {
    let f = Fixture::new().await;
    let demo = f.sign_in("demo").await;
    let mut events = Events::open(&f, &demo).await;
    // More changes than the hub keeps for a subscriber, while the window reads nothing.
    let calls: Vec<_> = (0..3).map(|_| f.ring(ERIKA)).collect();
    for c in &calls {
        for i in 0..95 {
            let chat = CallEventKind::Chat { text: format!("{i}") };
            f.hub.report(&c.call_id, chat, Some("demo".into()), None, Utc::now()).unwrap();
        }
    }
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(frame) = events.body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                events.seen.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream of a window that fell behind did not end");
    assert!(events.seen.matches("event: chat").count() < 3 * 95, "it got everything: it did not fall behind");
    // A new stream opens as usual.
    Events::open(&f, &demo).await;
}

#[tokio::test]
async fn a_user_sets_a_handling_code_on_their_contact_in_the_window_and_nobody_else_can() {
    use contactbridge::accounts::{AccountSpec, AccountStore as _, SourceKind};
    let f = Fixture::new().await;
    let demo = f.sign_in("demo").await;
    let desk = f.sign_in("desk").await;
    let bob = f.sign_in("bob").await;
    // Erika's account writes codes back; the category Family carries the code family.
    let at = f.ring(ERIKA).candidates[0].stored.at.clone();
    let mut spec = AccountSpec::new(&at.account, uid("demo"), SourceKind::Files { path: "/nowhere".into() });
    spec.write_back_codes = true;
    spec.category_codes.insert("Family".into(), contactbridge::user::HandlingCode::parse("family").unwrap());
    f.store.put_account(&spec, None).unwrap();
    let (_, hits) = f.call("GET", "/api/search?q=Erika", Some(&demo), None).await;
    let token = hits[0]["contact"].as_str().unwrap().to_string();
    let set = |code: Value| json!({ "contact": token, "code": code });

    let (s, r) = f.call("PUT", "/api/contact/code", Some(&demo), Some(set(json!("family")))).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["code_write_back"], "family: pending, written with the next sync", "{r}");
    assert_eq!(f.ring(ERIKA).handling_code.as_str(), "family", "applies to the next call at once");
    let written = f.store.account(&at.account).unwrap().unwrap();
    assert_eq!(written.code_write_backs.len(), 1, "the write-back waits for the next sync");

    // The attendant sees Erika but may not set demo's codes; another tenant's user finds nothing.
    for who in [&desk, &bob] {
        let (s, _) = f.call("PUT", "/api/contact/code", Some(who), Some(set(json!("blocked")))).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    assert_eq!(f.ring(ERIKA).handling_code.as_str(), "family", "nothing changed");
    // Hostile input: a code that is not one, a forged contact, no session.
    let (s, e) = f.call("PUT", "/api/contact/code", Some(&demo), Some(set(json!("<b>vip</b>")))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let forged = json!({ "contact": "bm90LWEtdG9rZW4", "code": "vip" });
    assert_eq!(f.call("PUT", "/api/contact/code", Some(&demo), Some(forged)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(f.call("PUT", "/api/contact/code", None, Some(set(json!("vip")))).await.0, StatusCode::UNAUTHORIZED);

    // Removing it: the contact's code is the one its categories give again.
    let (s, r) = f.call("PUT", "/api/contact/code", Some(&demo), Some(set(Value::Null))).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_ne!(f.ring(ERIKA).handling_code.as_str(), "family");
}
