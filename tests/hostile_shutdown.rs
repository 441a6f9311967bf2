//! Shutdown is bounded and visible (issue 10, §5): clients that never finish
//! (an idle TCP connection, only the HTTP/2 preface, an open Health.Watch, a
//! WatchDirectives stream that is never read while directives pile up, an SSE
//! stream, half a request) cannot hold the servers past their deadline; health
//! turns NOT_SERVING first; directive streams end with UNAVAILABLE. Also:
//! directives for calls that have ended are refused, and a click that reached
//! no phone system says so.
//!
//! Real servers on 127.0.0.1 (any free port) over a temporary sled store
//! holding the demo user (tenant `demo`); the binary for the SIGTERM test.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::{Duration as ChronoDuration, Utc};
use contactbridge::api::auth::{self, Scope};
use contactbridge::api::client::BridgeClient;
use contactbridge::api::pb;
use contactbridge::api::{RunningServer, ServerOptions};
use contactbridge::config::ConnectionsConfig;
use contactbridge::live::{CallHub, DirectiveAction};
use contactbridge::resolve::{CallQuery, Resolver};
use contactbridge::store::{CallStore, SledStore, UserStore};
use contactbridge::user::UserId;
use contactbridge::web;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tower::ServiceExt;

const DEMO_DID: &str = "+49 30 901820";
const ERIKA: &str = "+49301234567";
/// The deadline the servers get in these tests.
const GRACE: Duration = Duration::from_secs(2);
/// What shutdown may take beyond the deadline: cutting, [`contactbridge::shutdown::AFTER_CUT`], a busy machine.
const MARGIN: Duration = Duration::from_millis(1500);
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn connections() -> ConnectionsConfig {
    ConnectionsConfig { shutdown_grace_secs: GRACE.as_secs(), ..ConnectionsConfig::default() }
}

/// The demo data in a temporary store, a hub, and a TSPS key of tenant `demo`.
struct Data {
    store: Arc<SledStore>,
    hub: Arc<CallHub>,
    tsps_key: String,
    /// Last: the store closes before its directory goes (sled's close hangs once it has nowhere to write).
    _dir: tempfile::TempDir,
}

impl Data {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        contactbridge::demo::load(store.as_ref(), &contactbridge::demo::default_dir(), Utc::now()).await.unwrap();
        let tsps_key = auth::create_key(store.as_ref(), "demo", Scope::Tsps, "test").unwrap().text;
        let hub = CallHub::new(store.clone());
        Self { store, hub, tsps_key, _dir: dir }
    }

    async fn grpc(&self) -> RunningServer {
        RunningServer::start(
            self.store.clone(),
            self.store.clone(),
            self.hub.clone(),
            "127.0.0.1:0".parse().unwrap(),
            Some("127.0.0.1:0".parse().unwrap()),
            ServerOptions { connections: connections(), ..ServerOptions::default() },
        )
        .await
        .unwrap()
    }

    /// A call from Erika to the demo user, resolved as ResolveCall does.
    fn ring(&self) -> contactbridge::resolve::Decision {
        let d = Resolver::new(self.store.clone())
            .resolve(&CallQuery {
                called: DEMO_DID.into(),
                cli: ERIKA.into(),
                tsps_call_id: Some("t-1".into()),
                at: Utc::now(),
            })
            .unwrap();
        self.hub.announce(&d);
        d
    }
}

/// Stops the server and returns how long that took; it must end within the deadline.
async fn stop_within_deadline(server: RunningServer) -> Duration {
    let started = Instant::now();
    tokio::time::timeout(GRACE + MARGIN + Duration::from_secs(5), server.stop())
        .await
        .expect("shutdown hangs")
        .unwrap();
    let took = started.elapsed();
    assert!(took <= GRACE + MARGIN, "shutdown took {took:?}, the deadline is {GRACE:?}");
    took
}

/// The peer closed `s` (EOF or reset) within `within`.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // SETTINGS, GOAWAY, …
        }
    }
}

#[tokio::test]
async fn an_idle_tcp_client_does_not_hold_the_grpc_server() {
    let data = Data::new().await;
    let server = data.grpc().await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let mut idle_metrics = TcpStream::connect(server.metrics_addr.unwrap()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let took = stop_within_deadline(server).await;
    println!("gRPC + metrics with idle TCP clients stopped in {took:?}");
    assert!(closed_by_server(&mut idle, Duration::from_secs(1)).await, "the idle connection is closed");
    assert!(closed_by_server(&mut idle_metrics, Duration::from_secs(1)).await, "the idle metrics connection is closed");
}

#[tokio::test]
async fn a_client_that_stops_answering_pings_is_dropped_after_the_keepalive_timeout() {
    let data = Data::new().await;
    let quick = ConnectionsConfig { keepalive_secs: 1, keepalive_timeout_secs: 1, ..connections() };
    let server = RunningServer::start(
        data.store.clone(),
        data.store.clone(),
        data.hub.clone(),
        "127.0.0.1:0".parse().unwrap(),
        None,
        ServerOptions { connections: quick, ..ServerOptions::default() },
    )
    .await
    .unwrap();
    // A client that completes the HTTP/2 handshake (preface, empty SETTINGS), then goes silent.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    silent.write_all(HTTP2_PREFACE).await.unwrap();
    silent.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let started = Instant::now();
    assert!(closed_by_server(&mut silent, Duration::from_secs(6)).await, "the silent client is still connected");
    println!("a client that answers no PING was dropped after {:?} (keepalive 1 s + timeout 1 s)", started.elapsed());
    stop_within_deadline(server).await;
}

#[tokio::test]
async fn a_client_that_sent_only_the_http2_preface_does_not_hold_the_grpc_server() {
    let data = Data::new().await;
    let server = data.grpc().await;
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(HTTP2_PREFACE).await.unwrap();
    // And one that sent half a request to the metrics endpoint.
    let mut slow = TcpStream::connect(server.metrics_addr.unwrap()).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let took = stop_within_deadline(server).await;
    println!("gRPC with a preface-only client (and metrics with half a request) stopped in {took:?}");
    assert!(closed_by_server(&mut half, Duration::from_secs(1)).await, "the half-open connection is closed");
    assert!(closed_by_server(&mut slow, Duration::from_secs(1)).await, "the half request to metrics is cut");
}

#[tokio::test]
async fn an_open_health_watch_sees_not_serving_and_ends() {
    let data = Data::new().await;
    let server = data.grpc().await;
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel);
    let mut watches = Vec::new();
    for service in ["", "contactbridge.v1.CallHandling", "contactbridge.v1.Admin"] {
        let mut w = health.watch(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(w.message().await.unwrap().unwrap().status, ServingStatus::Serving as i32, "{service:?}");
        watches.push((service, w));
    }
    let stopping = tokio::spawn(stop_within_deadline(server));
    for (service, mut w) in watches {
        let mut seen = Vec::new();
        while let Ok(Some(m)) = tokio::time::timeout(GRACE + MARGIN, w.message()).await.expect("the watch ends") {
            seen.push(m.status);
        }
        assert_eq!(seen, [ServingStatus::NotServing as i32], "{service:?} told NOT_SERVING before it ended");
    }
    let took = stopping.await.unwrap();
    println!("gRPC with open Health.Watch streams stopped in {took:?}");
    assert!(took < GRACE, "the watches end on their own, shutdown does not wait for the deadline ({took:?})");
}

#[tokio::test]
async fn a_directive_stream_ends_with_unavailable() {
    let data = Data::new().await;
    let server = data.grpc().await;
    let mut c = BridgeClient::connect(&format!("http://{}", server.addr), &data.tsps_key).await.unwrap();
    let mut stream = c.calls.watch_directives(pb::WatchDirectivesRequest::default()).await.unwrap().into_inner();
    let d = data.ring();
    data.hub.direct(&d.call_id, DirectiveAction::Voicemail, None, None, Utc::now()).unwrap();
    assert_eq!(stream.message().await.unwrap().unwrap().call_id, d.call_id.as_str());

    let stopping = tokio::spawn(stop_within_deadline(server));
    let end = tokio::time::timeout(GRACE, stream.message()).await.expect("the stream ends before the deadline");
    let status = end.expect_err("the stream ends with an error status, not cleanly");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("reconnect"), "{status:?}");
    let took = stopping.await.unwrap();
    println!("gRPC with a read WatchDirectives stream stopped in {took:?}");
}

#[tokio::test]
async fn a_directive_stream_that_is_never_read_does_not_hold_the_grpc_server() {
    let data = Data::new().await;
    let server = data.grpc().await;
    // Small HTTP/2 windows: the client stops taking data after 64 KiB it does not read.
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535);
    let mut c = BridgeClient::connect_with(endpoint, &data.tsps_key).await.unwrap();
    let unread = c.calls.watch_directives(pb::WatchDirectivesRequest::default()).await.unwrap().into_inner();

    // 400 directives of ~300 bytes each (to 100 calls, within the journal's bounds: `by` at most 256
    // characters): ~120 KiB, past the 64 KiB windows of a reader that reads nothing.
    let by = "x".repeat(250);
    let mut delivered = 0;
    let pushing = Instant::now();
    for _ in 0..100 {
        let d = data.ring();
        for _ in 0..4 {
            let (_, n) =
                data.hub.direct(&d.call_id, DirectiveAction::Accept, Some(by.clone()), None, Utc::now()).unwrap();
            delivered += n;
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(delivered, 400, "the stream was subscribed throughout");
    println!("400 directives pushed in {:?}", pushing.elapsed());
    let took = stop_within_deadline(server).await;
    println!("gRPC with an unread WatchDirectives stream (400 x ~300 B pushed) stopped in {took:?}");
    drop(unread);
}

/// The web server on a free port, with a signed-in user; `stop` triggers its shutdown.
struct Web {
    addr: SocketAddr,
    /// The served state (its routes can also be called in process).
    state: web::WebState,
    cookie: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start_web(data: &Data) -> Web {
    let state = web::WebState::new(data.store.clone(), data.store.clone(), data.hub.clone());
    let token = web::auth::issue_login(
        data.store.as_ref(),
        data.store.as_ref(),
        &UserId::parse("demo").unwrap(),
        ChronoDuration::hours(1),
        Utc::now(),
    )
    .unwrap();
    let req = Request::builder().uri(web::auth::login_path(&token)).body(Body::empty()).unwrap();
    let res = web::router(state.clone()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(web::serve(
        state.clone(),
        listener,
        async move {
            let _ = stopped.await;
        },
        GRACE,
    ));
    Web { addr, state, cookie, stop, task }
}

impl Web {
    /// An open `/events` stream, after its `ready` event.
    async fn events(&self) -> TcpStream {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        let req = format!("GET /events HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n", self.cookie);
        s.write_all(req.as_bytes()).await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).contains("event: ready") {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "the stream ended: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
        s
    }

    async fn stop_within_deadline(self) -> Duration {
        let started = Instant::now();
        let _ = self.stop.send(());
        tokio::time::timeout(GRACE + MARGIN + Duration::from_secs(5), self.task)
            .await
            .expect("shutdown hangs")
            .unwrap()
            .unwrap();
        let took = started.elapsed();
        assert!(took <= GRACE + MARGIN, "shutdown took {took:?}, the deadline is {GRACE:?}");
        took
    }
}

#[tokio::test]
async fn sse_streams_end_and_idle_or_half_sent_requests_do_not_hold_the_web_server() {
    let data = Data::new().await;
    let web = start_web(&data).await;
    let mut sse = web.events().await;
    let mut idle = TcpStream::connect(web.addr).await.unwrap();
    let mut half = TcpStream::connect(web.addr).await.unwrap();
    half.write_all(b"GET /api/me HTTP/1.1\r\nHost: x\r\nCookie: ").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let took = web.stop_within_deadline().await;
    println!("web with an SSE stream, an idle and a half-sent request stopped in {took:?}");
    for (what, s) in [("SSE", &mut sse), ("idle", &mut idle), ("half-sent", &mut half)] {
        assert!(closed_by_server(s, Duration::from_secs(1)).await, "the {what} connection is closed");
    }
}

#[tokio::test]
async fn an_sse_stream_alone_ends_at_once() {
    let data = Data::new().await;
    let web = start_web(&data).await;
    let mut sse = web.events().await;
    let took = web.stop_within_deadline().await;
    assert!(took < GRACE, "the event stream ends on the signal, not at the deadline ({took:?})");
    assert!(closed_by_server(&mut sse, Duration::from_secs(1)).await);
}

// ---- the binary ---------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn the_binary_exits_within_its_deadline_after_sigterm_with_hostile_clients() {
    let dir = tempfile::tempdir().unwrap();
    let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let log = dir.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_contactbridge"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["serve", "--demo", "--metrics-listen", &metrics.to_string()])
        .env_remove("CONTACTBRIDGE_CONFIG")
        .env("CONTACTBRIDGE_GRPC__LISTEN", "127.0.0.1:0")
        .env("CONTACTBRIDGE_WEB__LISTEN", "127.0.0.1:0")
        .env("CONTACTBRIDGE_CONNECTIONS__SHUTDOWN_GRACE_SECS", GRACE.as_secs().to_string())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut grpc = None;
    let mut web = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("gRPC on ") {
            grpc = Some(a.parse::<SocketAddr>().unwrap());
        }
        if let Some(a) = line.strip_prefix("notification window on http://") {
            web = Some(a.parse::<SocketAddr>().unwrap());
            break;
        }
    }
    let (grpc, web) = (grpc.expect("the gRPC address"), web.expect("the web address"));

    // Hostile clients on every port: idle, the HTTP/2 preface only, half a request.
    let mut clients = Vec::new();
    clients.push(connect_retrying(grpc));
    let mut preface = connect_retrying(grpc);
    std::io::Write::write_all(&mut preface, HTTP2_PREFACE).unwrap();
    clients.push(preface);
    clients.push(connect_retrying(web));
    let mut half = connect_retrying(web);
    std::io::Write::write_all(&mut half, b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    clients.push(half);
    let mut half_metrics = connect_retrying(metrics);
    std::io::Write::write_all(&mut half_metrics, b"GET /metrics HTTP/1.1\r\n").unwrap();
    clients.push(half_metrics);
    std::thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    // SAFETY: kill(2) on the child's pid, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let limit = GRACE + MARGIN + Duration::from_secs(1); // + flushing the store, process exit
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit + Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("the server did not exit {:?} after SIGTERM", started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    println!("contactbridge serve exited {took:?} after SIGTERM with {} hostile clients", clients.len());
    assert!(status.success(), "{status:?}");
    assert!(took <= limit, "exit took {took:?}, the deadline is {GRACE:?}");
    // The log says what was cut.
    let log = std::fs::read_to_string(&log).unwrap();
    for server in ["gRPC", "web", "metrics"] {
        assert!(log.lines().any(|l| l.contains("shutdown deadline passed") && l.contains(server)), "{log}");
    }
}

fn connect_retrying(addr: SocketAddr) -> std::net::TcpStream {
    for _ in 0..100 {
        if let Ok(s) = std::net::TcpStream::connect(addr) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("cannot connect to {addr}");
}

// ---- ended calls, undelivered clicks --------------------------------------------

#[tokio::test]
async fn directives_for_ended_calls_are_failed_precondition() {
    let data = Data::new().await;
    let server = data.grpc().await;
    let mut c = BridgeClient::connect(&format!("http://{}", server.addr), &data.tsps_key).await.unwrap();
    for end in [pb::CallEventKind::Ended, pb::CallEventKind::Missed] {
        let call = c
            .calls
            .resolve_call(pb::ResolveCallRequest {
                called_number: DEMO_DID.into(),
                cli: ERIKA.into(),
                tsps_call_id: "pbx-9".into(),
                at: None,
            })
            .await
            .unwrap()
            .into_inner();
        let directive = || pb::SendDirectiveRequest {
            call_id: call.call_id.clone(),
            action: pb::DirectiveAction::Voicemail as i32,
            ..Default::default()
        };
        // While it rings, a directive is taken (and a second one overrides the first).
        c.calls.send_directive(directive()).await.unwrap();
        c.calls
            .report_call_event(pb::ReportCallEventRequest {
                call_id: call.call_id.clone(),
                kind: end as i32,
                ..Default::default()
            })
            .await
            .unwrap();
        let e = c.calls.send_directive(directive()).await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "after {end:?}: {e:?}");
        assert!(e.message().contains("has ended"), "{e:?}");
        let record = data.store.call(&contactbridge::calls::CallId(call.call_id.clone())).unwrap().unwrap();
        assert_eq!(record.events.len(), 2, "the refused directive is not in the journal");
    }
    server.stop().await.unwrap();
}

/// A request to the window's routes, in process, as the page's own (same origin: state-changing requests need it).
async fn web_call(state: &web::WebState, method: &str, path: &str, cookie: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "bridge.test")
        .header(header::ORIGIN, "http://bridge.test")
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let res = web::router(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_window_refuses_directives_for_ended_calls_and_says_when_none_was_delivered() {
    let data = Data::new().await;
    let web = start_web(&data).await;
    let state = web.state.clone();
    let mut sse = web.events().await;
    let d = data.ring();
    let path = format!("/api/calls/{}/directive", d.call_id);

    // No phone system watches: the click is kept but reached nobody, and the page is told so.
    let (s, body) = web_call(&state, "POST", &path, &web.cookie, json!({"action": "voicemail"})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["delivered"], 0, "{body}");

    // With one watching, it reached one; the live event says the same.
    let mut tsps = data.hub.watch_directives("demo");
    let (s, body) = web_call(&state, "POST", &path, &web.cookie, json!({"action": "accept"})).await;
    assert_eq!((s, body["delivered"].as_u64()), (StatusCode::OK, Some(1)), "{body}");
    assert_eq!(tsps.recv().await.unwrap().action, DirectiveAction::Accept);

    // The phone system reports the call over: every action is refused with 409, "block" assigns nothing.
    data.hub.report(&d.call_id, contactbridge::calls::CallEventKind::Ended, None, Some("demo"), Utc::now()).unwrap();
    for action in [json!({"action": "reject"}), json!({"action": "block"})] {
        let (s, body) = web_call(&state, "POST", &path, &web.cookie, action.clone()).await;
        assert_eq!(s, StatusCode::CONFLICT, "{action} -> {body}");
        assert!(body["error"].as_str().unwrap().contains("has ended"), "{body}");
    }
    assert!(tsps.try_recv().is_err(), "nothing reached the phone system");
    let key = d.caller.key.clone().unwrap();
    let demo = UserId::parse("demo").unwrap();
    assert_eq!(
        data.store.assignment(&demo, &contactbridge::store::AssignTarget::Number(key)).unwrap(),
        None,
        "block assigned nothing"
    );

    // The live events told the windows how many phone systems got each directive.
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while text.matches("event: directive").count() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(5), sse.read(&mut buf)).await.unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let delivered: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "directive")
        .map(|v| v["delivered"].as_u64().unwrap())
        .collect();
    assert_eq!(delivered, [0, 1]);
    web.stop_within_deadline().await;
}
