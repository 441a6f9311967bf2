//! Issue 14 part 1: Debian's Kamailio as a stateful proxy (`examples/kamailio/proxy.cfg`)
//! routes real SIP calls between real user agents (Debian's `baresip`, headless, driven
//! over its ctrl_tcp interface) by the bridge's decisions, reports the calls' SIP
//! outcome back through `examples/kamailio/sidecar.py` (gRPC ReportCallEvent), and
//! moves a ringing call when a directive arrives (WatchDirectives -> htable + tm.cancel).
//!
//! Dana (the demo user) is in a meeting: Erika (VIP) is forwarded to Dana's mobile,
//! Cold Calls Inc. (blocked) gets 603 Decline, an unknown caller reaches the attendant,
//! Hans rings Dana's desk phone until a directive sends him to voicemail. Hostile caller
//! ids do not break routing; with the bridge slow or down, calls ring the called number.

mod support;

use chrono::{Duration as Span, Utc};
use contactbridge::api::client::BridgeClient;
use contactbridge::api::pb;
use contactbridge::api::{RunningServer, ServerOptions};
use contactbridge::calls::{CallEventKind, CallRecord};
use contactbridge::connector::{BusyStatus, CalendarEvent, Occurrence, Record, RecordId};
use contactbridge::live::CallHub;
use contactbridge::resolve::Status;
use contactbridge::store::{CallStore, SledStore, TimeWindow, UserStore};
use contactbridge::user::{self, HandlingCode, HandlingMethod, HandlingRule, HandlingTable, Match, UserId};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use support::lookup::Fixture;
use support::tools::{free_port, tools_dir};

const DID: &str = "+4930901820";
const MOBILE: &str = "+491701234567";
const ATTENDANT: &str = "+4930901829";
const ERIKA: &str = "+49301234567";
const COLD_CALLS: &str = "08001234567";
const HANS: &str = "+49305550199";
const STRANGER: &str = "+49409999999";

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A SIP port for baresip: it takes UDP and TCP on the port and TLS on the next one.
fn free_sip_port() -> u16 {
    loop {
        let p = free_port();
        if p < 65000 && UdpSocket::bind(("127.0.0.1", p)).is_ok() && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kamailio's main process stops its forked workers on SIGTERM; SIGKILL would orphan them.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kamailio with `examples/kamailio/proxy.cfg`, its defines given with `-A`.
struct Kamailio {
    _proc: Daemon,
    port: u16,
    rpc: u16,
    _dir: tempfile::TempDir,
}

impl Kamailio {
    fn start(bridge: &str, key: &str, sidecar: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (port, rpc) = (free_udp_port(), free_udp_port());
        let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/kamailio/proxy.cfg");
        let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
        let child = Command::new("kamailio")
            .args(["-DD", "-E", "-f", cfg, "-Y"])
            .arg(dir.path())
            .arg("-A")
            .arg(format!("LISTEN=udp:127.0.0.1:{port}"))
            .arg("-A")
            .arg(format!("BRIDGE=\"{bridge}/lookup/v1/decision\""))
            .arg("-A")
            .arg(format!("BRIDGE_KEY=\"{key}\""))
            .arg("-A")
            .arg(format!("SIDECAR=\"http://127.0.0.1:{sidecar}/event\""))
            .arg("-A")
            .arg(format!("RPC_LISTEN=\"udp:127.0.0.1:{rpc}\""))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("kamailio runs (tests/setup-tools.sh installs it)");
        let k = Self { _proc: Daemon(child), port, rpc, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while k.rpc("core.uptime", &[]).is_none() {
            assert!(Instant::now() < deadline, "kamailio did not start: {}", k.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        k
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("kamailio.log")).unwrap_or_default()
    }

    /// One jsonrpcs command over its UDP socket; `None` if Kamailio does not answer.
    fn rpc(&self, method: &str, params: &[&str]) -> Option<Value> {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let req = serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        s.send_to(req.to_string().as_bytes(), ("127.0.0.1", self.rpc)).ok()?;
        let mut buf = vec![0u8; 65535];
        let n = s.recv(&mut buf).ok()?;
        serde_json::from_slice(&buf[..n]).ok()
    }

    fn wait_registered(&self, aors: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for aor in aors {
            while self.rpc("ul.lookup", &["location", aor]).is_none_or(|r| r.get("result").is_none()) {
                assert!(Instant::now() < deadline, "{aor} did not register: {}", self.log());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn uri(&self, user: &str) -> String {
        format!("sip:{user}@127.0.0.1:{}", self.port)
    }
}

/// A baresip user agent, headless; commands and events over ctrl_tcp (netstrings of JSON).
struct Agent {
    name: &'static str,
    _proc: Proc,
    ctrl: TcpStream,
    events: Arc<(Mutex<Vec<Value>>, Condvar)>,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// `register`: register `user` at Kamailio; `auto`: answer calls at once (the call
    /// then ends after a second, when its audio file ends).
    fn start(name: &'static str, kamailio: &Kamailio, user: &str, register: bool, auto: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (sip, ctrl_port) = (free_sip_port(), free_port());
        let wav = dir.path().join("second.wav");
        write_silence(&wav);
        let config = format!(
            "sip_listen 127.0.0.1:{sip}\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\nmodule aufile.so\nmodule ctrl_tcp.so\n\
             module_app account.so\nmodule_app menu.so\n\
             ctrl_tcp_listen 127.0.0.1:{ctrl_port}\n\
             audio_player aufile,/dev/null\naudio_alert aufile,/dev/null\n\
             audio_source aufile,{}\n\
             rtp_ports {}-{}\n",
            wav.display(),
            20000 + (sip % 400) as u32 * 100,
            20000 + (sip % 400) as u32 * 100 + 98,
        );
        std::fs::write(dir.path().join("config"), config).unwrap();
        let params =
            format!("regint={};answermode={}", if register { 600 } else { 0 }, if auto { "auto" } else { "manual" });
        std::fs::write(dir.path().join("accounts"), format!("<{}>;{params}\n", kamailio.uri(user))).unwrap();
        let log = std::fs::File::create(dir.path().join("baresip.log")).unwrap();
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("baresip runs (tests/setup-tools.sh installs it)");
        let proc = Proc(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let ctrl = loop {
            match TcpStream::connect(("127.0.0.1", ctrl_port)) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(Instant::now() < deadline, "{name}: baresip's ctrl_tcp: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let events = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let (mut reader, sink) = (ctrl.try_clone().unwrap(), events.clone());
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                // netstring: <len>:<json>,
                while let Some(colon) = buf.iter().position(|b| *b == b':') {
                    let Some(len) = std::str::from_utf8(&buf[..colon]).ok().and_then(|l| l.parse::<usize>().ok())
                    else {
                        return;
                    };
                    if buf.len() < colon + 1 + len + 1 {
                        break;
                    }
                    if let Ok(v) = serde_json::from_slice::<Value>(&buf[colon + 1..colon + 1 + len]) {
                        sink.0.lock().unwrap().push(v);
                        sink.1.notify_all();
                    }
                    buf.drain(..colon + 1 + len + 1);
                }
            }
        });
        Self { name, _proc: proc, ctrl, events, _dir: dir }
    }

    fn command(&mut self, command: &str, params: &str) {
        let body = serde_json::json!({"command": command, "params": params, "token": command}).to_string();
        self.ctrl.write_all(format!("{}:{body},", body.len()).as_bytes()).unwrap();
    }

    fn dial(&mut self, uri: &str) {
        self.command("dial", uri);
    }

    /// Waits for an event of `kind` (e.g. CALL_ESTABLISHED) and returns it.
    fn wait(&self, kind: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        let (lock, cv) = &*self.events;
        let mut events = lock.lock().unwrap();
        loop {
            if let Some(i) = events.iter().position(|e| e["type"] == kind) {
                return events.remove(i);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{}: no {kind} within {within:?}; events: {events:?}", self.name);
            events = cv.wait_timeout(events, left).unwrap().0;
        }
    }

    /// Forgets the events so far.
    fn clear(&self) {
        self.events.0.lock().unwrap().clear();
    }

    fn saw(&self, kind: &str) -> bool {
        self.events.0.lock().unwrap().iter().any(|e| e["type"] == kind)
    }
}

/// One second of 8 kHz silence: the audio each agent sends (baresip hangs up at its end).
fn write_silence(path: &Path) {
    let samples = 8000u32;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + samples * 2).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(samples * 2).to_le_bytes());
    w.resize(w.len() + samples as usize * 2, 0);
    std::fs::write(path, w).unwrap();
}

/// The sidecar (examples/kamailio/sidecar.py) in the tools' venv.
fn start_sidecar(grpc: std::net::SocketAddr, key: &str, listen: u16, rpc: u16) -> Proc {
    let python = tools_dir().join("venv/bin/python");
    assert!(python.exists(), "{} is missing: run tests/setup-tools.sh", python.display());
    let child = Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/kamailio/sidecar.py"))
        .args(["--bridge", &grpc.to_string(), "--key", key])
        .args(["--listen", &format!("127.0.0.1:{listen}"), "--kamailio-rpc", &format!("127.0.0.1:{rpc}")])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", listen)).is_err() {
        assert!(Instant::now() < deadline, "the sidecar did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Proc(child)
}

struct Bridge {
    store: Arc<SledStore>,
    hub: Arc<CallHub>,
    grpc: Option<RunningServer>,
    grpc_addr: std::net::SocketAddr,
    lookup: std::net::SocketAddr,
    key: String,
    other_key: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Bridge {
    /// The demo tenant with Dana in a meeting now, and a handling table for it.
    async fn start() -> Self {
        let (store, [key, _, other_key, _]) = Fixture::store().await;
        let dana = UserId::parse("demo").unwrap();
        let meeting = Record::Event(CalendarEvent {
            id: RecordId::new("board"),
            subject: "Board meeting".into(),
            busy: BusyStatus::Busy,
            occurrences: vec![Occurrence { start: Utc::now() - Span::minutes(30), end: Utc::now() + Span::hours(2) }],
            ..Default::default()
        });
        support::index::put(store.as_ref(), &dana, "files", "cal", vec![meeting]);
        let mut profile = store.profile(&dana).unwrap().unwrap();
        let code = |c: &str| Match::Is(HandlingCode::parse(c).unwrap());
        profile.handling = HandlingTable {
            rules: vec![
                HandlingRule {
                    code: code("vip"),
                    status: Match::Is(Status::Busy),
                    method: HandlingMethod::Forward { number: MOBILE.into() },
                },
                HandlingRule { code: code("blocked"), status: Match::ANY, method: HandlingMethod::Reject },
                HandlingRule { code: code("unknown"), status: Match::ANY, method: HandlingMethod::Attendant },
            ],
            fallback: HandlingMethod::Notify,
        };
        user::put_profile(store.as_ref(), &profile).unwrap();

        let hub = CallHub::new(store.clone());
        let grpc = RunningServer::start(
            store.clone(),
            store.clone(),
            hub.clone(),
            "127.0.0.1:0".parse().unwrap(),
            None,
            ServerOptions::default(),
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lookup = listener.local_addr().unwrap();
        let state = contactbridge::http_lookup::LookupState::new(store.clone(), store.clone(), hub.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(contactbridge::http_lookup::serve(state, listener, async move {
            let _ = stopped.await;
        }));
        let grpc_addr = grpc.addr;
        Self { store, hub, grpc: Some(grpc), grpc_addr, lookup, key, other_key, _stop: stop }
    }

    /// Stops the gRPC server (the HTTP lookup keeps answering).
    async fn stop_grpc(&mut self) {
        self.grpc.take().unwrap().stop().await.unwrap();
    }

    /// Starts it again on the same address.
    async fn start_grpc(&mut self) {
        let server = RunningServer::start(
            self.store.clone(),
            self.store.clone(),
            self.hub.clone(),
            self.grpc_addr,
            None,
            ServerOptions::default(),
        )
        .await
        .unwrap();
        self.grpc = Some(server);
    }

    fn calls(&self) -> Vec<CallRecord> {
        self.store.calls(&UserId::parse("demo").unwrap(), TimeWindow::all(), 1000).unwrap()
    }

    /// The newest call from `cli`, once it holds an event matching `done`.
    async fn call_from(&self, cli: &str, done: impl Fn(&CallEventKind) -> bool) -> CallRecord {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let call = self.calls().into_iter().filter(|c| c.cli == cli).max_by_key(|c| c.at);
            if let Some(c) = call.as_ref().filter(|c| c.events.iter().any(|e| done(&e.kind))) {
                return c.clone();
            }
            assert!(Instant::now() < deadline, "the call from {cli} did not get its event: {call:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A plain HTTP/1.0 GET; the status code and body.
fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

fn kinds(c: &CallRecord) -> Vec<String> {
    c.events.iter().map(|e| format!("{:?}", e.kind)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_routes_real_calls_by_the_bridges_decisions() {
    let mut bridge = Bridge::start().await;
    let sidecar_port = free_port();
    let k = Kamailio::start(&format!("http://{}", bridge.lookup), &bridge.key, sidecar_port);
    let _sidecar = start_sidecar(bridge.grpc_addr, &bridge.key, sidecar_port, k.rpc);

    let desk = Agent::start("desk", &k, DID, true, false);
    let mobile = Agent::start("mobile", &k, MOBILE, true, true);
    let attendant = Agent::start("attendant", &k, ATTENDANT, true, true);
    let voicemail = Agent::start("voicemail", &k, "voicemail", true, true);
    k.wait_registered(&[DID, MOBILE, ATTENDANT, "voicemail"]);
    let long = Duration::from_secs(10);

    // Erika (VIP) while Dana is in a meeting: forwarded, the mobile answers.
    let mut erika = Agent::start("erika", &k, ERIKA, false, false);
    erika.dial(&k.uri(DID));
    mobile.wait("CALL_ESTABLISHED", long);
    erika.wait("CALL_ESTABLISHED", long);
    erika.wait("CALL_CLOSED", long);
    let call = bridge.call_from(ERIKA, |k| *k == CallEventKind::Ended).await;
    assert_eq!(call.handling_code.as_str(), "vip");
    assert_eq!(call.status, Status::Busy);
    let ev = kinds(&call);
    assert!(ev.contains(&format!("{:?}", CallEventKind::Forwarded { to: MOBILE.into() })), "{ev:?}");
    assert!(ev.contains(&"Answered".to_string()), "{ev:?}");
    assert!(!desk.saw("CALL_INCOMING"), "the desk phone must not ring for Erika");

    // Cold Calls Inc. (blocked): 603 Decline, and nobody rings.
    let mut cold = Agent::start("cold", &k, COLD_CALLS, false, false);
    cold.dial(&k.uri(DID));
    let closed = cold.wait("CALL_CLOSED", long);
    assert!(closed["param"].as_str().unwrap_or("").contains("603"), "{closed}");
    let call = bridge.call_from(COLD_CALLS, |k| *k == CallEventKind::Ended).await;
    assert_eq!(call.handling_code.as_str(), "blocked");
    assert!(!kinds(&call).contains(&"Answered".to_string()));

    // Somebody unknown: the attendant answers.
    let mut stranger = Agent::start("stranger", &k, STRANGER, false, false);
    stranger.dial(&k.uri(DID));
    attendant.wait("CALL_ESTABLISHED", long);
    stranger.wait("CALL_ESTABLISHED", long);
    let call = bridge.call_from(STRANGER, |k| *k == CallEventKind::Answered).await;
    assert_eq!(call.handling_code.as_str(), "unknown");

    // Hans (known, not VIP): Dana's desk phone rings (notify); a click in the window
    // sends him to voicemail while it rings.
    let mut window = bridge.hub.watch_calls(&UserId::parse("demo").unwrap());
    let mut hans = Agent::start("hans", &k, HANS, false, false);
    hans.dial(&k.uri(DID));
    desk.wait("CALL_INCOMING", long);
    let mut client = BridgeClient::connect(&format!("http://{}", bridge.grpc_addr), &bridge.key).await.unwrap();
    let hans_call = bridge.calls().into_iter().filter(|c| c.cli == HANS).max_by_key(|c| c.at).unwrap();
    let sent = client
        .calls
        .send_directive(pb::SendDirectiveRequest {
            call_id: hans_call.id.0.clone(),
            action: pb::DirectiveAction::Voicemail as i32,
            target: String::new(),
            by: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.delivered, 1, "the sidecar watches directives");
    let popped = window.try_recv().expect("the window was told about the ringing call");
    assert_eq!(popped.call_id, hans_call.id);
    assert_eq!(popped.method, HandlingMethod::Notify);
    desk.wait("CALL_CLOSED", long);
    voicemail.wait("CALL_ESTABLISHED", long);
    hans.wait("CALL_ESTABLISHED", long);
    let call = bridge.call_from(HANS, |k| *k == CallEventKind::Answered).await;
    assert!(
        kinds(&call).contains(&format!("{:?}", CallEventKind::Forwarded { to: "voicemail".into() })),
        "{:?}",
        kinds(&call)
    );

    // The bridge's gRPC server goes away and comes back (the HTTP lookup stays): the call's
    // events wait in the sidecar and arrive, and the directive stream is followed again.
    bridge.stop_grpc().await;
    erika.dial(&k.uri(DID));
    mobile.wait("CALL_ESTABLISHED", long);
    erika.wait("CALL_CLOSED", long);
    let during = bridge.calls().into_iter().filter(|c| c.cli == ERIKA).max_by_key(|c| c.at).unwrap();
    assert_ne!(during.id, call.id);
    assert!(during.events.is_empty(), "{:?}", during.events);
    bridge.start_grpc().await;
    let after = bridge.call_from(ERIKA, |k| *k == CallEventKind::Ended).await;
    assert_eq!(after.id, during.id);
    assert!(kinds(&after).contains(&"Answered".to_string()), "{:?}", kinds(&after));

    hans.dial(&k.uri(DID));
    desk.wait("CALL_INCOMING", long);
    let again = bridge.calls().into_iter().filter(|c| c.cli == HANS).max_by_key(|c| c.at).unwrap();
    assert_ne!(again.id, hans_call.id);
    let mut client = BridgeClient::connect(&format!("http://{}", bridge.grpc_addr), &bridge.key).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sent = client
            .calls
            .send_directive(pb::SendDirectiveRequest {
                call_id: again.id.0.clone(),
                action: pb::DirectiveAction::Forward as i32,
                target: "+49 30 901829".into(),
                by: "demo".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if sent.delivered == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the sidecar did not watch directives again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    attendant.wait("CALL_ESTABLISHED", long);
    hans.wait("CALL_ESTABLISHED", long);
    hans.wait("CALL_CLOSED", long);

    // Hans gives up while the desk phone rings (CANCEL): the call ends unanswered.
    hans.dial(&k.uri(DID));
    desk.wait("CALL_INCOMING", long);
    let third = bridge.calls().into_iter().filter(|c| c.cli == HANS).max_by_key(|c| c.at).unwrap();
    assert_ne!(third.id, again.id);
    hans.command("hangup", "");
    desk.wait("CALL_CLOSED", long);
    let third = bridge.call_from(HANS, |k| *k == CallEventKind::Ended).await;
    assert!(!kinds(&third).contains(&"Answered".to_string()), "{:?}", kinds(&third));
    drop(k);
}

/// Sends one INVITE from a raw UDP socket with `from` as the From header and returns the
/// first ringing or final status line Kamailio relays back (or `None` within 5 s),
/// then cancels a call that still rings.
fn hostile_invite(k: &Kamailio, from: &str, n: u32) -> Option<String> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = s.local_addr().unwrap();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
    let head = |method: &str, cseq: &str, body: &str| {
        format!(
            "{method} sip:{DID}@127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK-hostile-{n}\r\n\
             From: {from};tag=h{n}\r\n\
             To: <sip:{DID}@127.0.0.1>\r\n\
             Call-ID: hostile-{n}@127.0.0.1\r\n\
             CSeq: {cseq}\r\n\
             Contact: <sip:hostile@{me}>\r\n\
             Max-Forwards: 70\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len(),
            port = k.port,
        )
    };
    s.send_to(head("INVITE", "1 INVITE", sdp).as_bytes(), ("127.0.0.1", k.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 65535];
    while Instant::now() < deadline {
        let Ok(len) = s.recv(&mut buf) else { continue };
        let reply = String::from_utf8_lossy(&buf[..len]).into_owned();
        let status = reply.lines().next().unwrap_or("").to_string();
        if status.starts_with("SIP/2.0 100") {
            continue;
        }
        if status.starts_with("SIP/2.0 18") {
            s.send_to(head("CANCEL", "1 CANCEL", "").as_bytes(), ("127.0.0.1", k.port)).unwrap();
        }
        return Some(status);
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_caller_ids_and_a_slow_or_dead_bridge_do_not_stop_calls() {
    let bridge = Bridge::start().await;
    let sidecar_port = free_port();
    let k = Kamailio::start(&format!("http://{}", bridge.lookup), &bridge.key, sidecar_port);
    let sidecar = start_sidecar(bridge.grpc_addr, &bridge.key, sidecar_port, k.rpc);
    let _desk = Agent::start("desk", &k, DID, true, false);
    let attendant = Agent::start("attendant", &k, ATTENDANT, true, true);
    k.wait_registered(&[DID, ATTENDANT]);
    let before = bridge.calls().len();

    let huge = "9".repeat(3000);
    // (From, what Kamailio answers): a call that rings or is answered, or 400 for a From
    // header that is not SIP at all.
    let hostile = [
        (format!("<sip:+49{huge}@127.0.0.1>"), "ring"),
        // parameters of the bridge's lookup URL in the user part
        ("<sip:+49409999999&key=other-key&called=%2B4989555000&record=false@127.0.0.1>".to_string(), "ring"),
        ("\"Ev\\\"il\\\\ \u{1F600} \u{202E}caller\" <sip:+49409999999@127.0.0.1>".to_string(), "ring"),
        ("<sip:%F0%9F%98%80%00%22@127.0.0.1>".to_string(), "ring"),
        ("\"x\" <sip:%F0%9F%98%80%00'\"@127.0.0.1>".to_string(), "SIP/2.0 400"),
    ];
    for (n, (from, expect)) in hostile.iter().enumerate() {
        let (k2, from2) = (&k, from.clone());
        let status = tokio::task::block_in_place(|| hostile_invite(k2, &from2, n as u32));
        let status = status.unwrap_or_else(|| panic!("no answer for From {from:.80}: {}", k.log()));
        let rang = status.starts_with("SIP/2.0 18") || status.starts_with("SIP/2.0 200");
        assert!(if *expect == "ring" { rang } else { status.starts_with(expect) }, "From {from:.80}: {status}");
    }
    // The bridge still decides: an unknown caller reaches the attendant, no call leaked
    // into the other tenant, and the injected parameters did not turn off recording.
    let mut stranger = Agent::start("stranger", &k, STRANGER, false, false);
    stranger.dial(&k.uri(DID));
    attendant.wait("CALL_ESTABLISHED", Duration::from_secs(10));
    let call = bridge.call_from(STRANGER, |k| *k == CallEventKind::Answered).await;
    assert_eq!(call.handling_code.as_str(), "unknown");
    let olga = UserId::parse("other.olga").unwrap();
    assert!(bridge.store.calls(&olga, TimeWindow::all(), 10).unwrap().is_empty());
    assert!(bridge.calls().len() > before);

    // The sidecar's event interface: junk is refused; an event for another tenant's call
    // (its id known) is passed on with this tenant's key and refused by the bridge.
    let sidecar_addr: std::net::SocketAddr = format!("127.0.0.1:{sidecar_port}").parse().unwrap();
    for junk in ["/event", "/event?call=x&kind=exploded", "/other?call=x&kind=ended", "/event?kind=ended"] {
        assert_eq!(http_get(sidecar_addr, junk).0, 400, "{junk}");
    }
    let (status, body) = http_get(
        bridge.lookup,
        &format!("/lookup/v1/decision?key={}&record=true&called=%2B4989555000&cli=%2B49301112222", bridge.other_key),
    );
    assert_eq!(status, 200, "{body}");
    let olgas: Value = serde_json::from_str(&body).unwrap();
    let olgas = olgas["call_id"].as_str().unwrap().to_string();
    for kind in ["answered", "ended", "forwarded&target=%2B4915112345678"] {
        assert_eq!(http_get(sidecar_addr, &format!("/event?call={olgas}&kind={kind}")).0, 204);
    }
    // An event of this tenant's posted after them shows the sidecar got through its queue.
    let (_, body) = http_get(
        bridge.lookup,
        &format!("/lookup/v1/decision?key={}&record=true&called=%2B4930901820&cli=%2B49409999998", bridge.key),
    );
    let ours: Value = serde_json::from_str(&body).unwrap();
    let ours = ours["call_id"].as_str().unwrap().to_string();
    assert_eq!(http_get(sidecar_addr, &format!("/event?call={ours}&kind=ended")).0, 204);
    bridge.call_from("+49409999998", |k| *k == CallEventKind::Ended).await;
    let olgas = bridge.store.call(&contactbridge::calls::CallId(olgas)).unwrap().unwrap();
    assert!(olgas.events.is_empty(), "another tenant's call took events: {:?}", olgas.events);

    // The sidecar killed (SIGKILL) during a call: Kamailio holds the call's events and
    // delivers them, in order, to the sidecar started again.
    stranger.wait("CALL_CLOSED", Duration::from_secs(10));
    bridge.call_from(STRANGER, |k| *k == CallEventKind::Ended).await;
    attendant.clear();
    stranger.clear();
    drop(sidecar);
    stranger.dial(&k.uri(DID));
    attendant.wait("CALL_ESTABLISHED", Duration::from_secs(10));
    stranger.wait("CALL_CLOSED", Duration::from_secs(10));
    let held = bridge.calls().into_iter().filter(|c| c.cli == STRANGER).max_by_key(|c| c.at).unwrap();
    assert!(
        held.events.is_empty(),
        "{:?}",
        bridge.calls().iter().filter(|c| c.cli == STRANGER).map(|c| (c.at, kinds(c))).collect::<Vec<_>>()
    );
    let _sidecar = start_sidecar(bridge.grpc_addr, &bridge.key, sidecar_port, k.rpc);
    let held = bridge.call_from(STRANGER, |k| *k == CallEventKind::Ended).await;
    assert_eq!(
        kinds(&held)[kinds(&held).len() - 3..],
        [
            format!("{:?}", CallEventKind::Forwarded { to: ATTENDANT.into() }),
            "Answered".to_string(),
            "Ended".to_string()
        ]
    );
    drop(k);

    // A bridge that accepts connections and never answers, then one that is gone:
    // Kamailio rings the called number after BRIDGE_TIMEOUT (1 s), or at once.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for conn in silent.incoming().flatten() {
            keep.lock().unwrap().push(conn);
        }
    });
    let k = Kamailio::start(&format!("http://{silent_addr}"), &bridge.key, free_port());
    let desk = Agent::start("desk", &k, DID, true, true);
    k.wait_registered(&[DID]);
    let mut erika = Agent::start("erika", &k, ERIKA, false, false);
    let t = Instant::now();
    erika.dial(&k.uri(DID));
    // (an auto-answering agent reports no CALL_INCOMING, only the SDP offer)
    desk.wait("CALL_REMOTE_SDP", Duration::from_secs(5));
    let slow = t.elapsed();
    erika.wait("CALL_ESTABLISHED", Duration::from_secs(5));
    assert!(!held.lock().unwrap().is_empty(), "Kamailio asked the silent bridge");
    assert!(slow >= Duration::from_millis(900) && slow < Duration::from_secs(4), "{slow:?}");
    drop(k);

    let dead = free_port();
    let k = Kamailio::start(&format!("http://127.0.0.1:{dead}"), &bridge.key, free_port());
    let desk = Agent::start("desk", &k, DID, true, true);
    k.wait_registered(&[DID]);
    let mut erika = Agent::start("erika", &k, ERIKA, false, false);
    let t = Instant::now();
    erika.dial(&k.uri(DID));
    desk.wait("CALL_REMOTE_SDP", Duration::from_secs(5));
    let down = t.elapsed();
    erika.wait("CALL_ESTABLISHED", Duration::from_secs(5));
    assert!(down < Duration::from_secs(1), "{down:?}");
    eprintln!("bridge silent: desk rang after {slow:?}; bridge down: after {down:?}");
}
