//! The call journal through the real `contactbridge serve`: a call id that
//! ResolveCall returned survives a SIGKILL right after, and a call record
//! that cannot be written (a full disk) still gets its call answered, with the
//! failure in the answer and in the metrics.

use contactbridge::api::client::BridgeClient;
use contactbridge::api::pb;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const DEMO_DID: &str = "+49 30 901820";
const ERIKA_CLI: &str = "+49301234567";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `serve --demo` on `data`; returns the child and its gRPC address once it listens.
fn serve(data: &Path, metrics: Option<SocketAddr>) -> (Child, SocketAddr) {
    let metrics = metrics.map_or("off".to_string(), |a| a.to_string());
    let mut child = Command::new(env!("CARGO_BIN_EXE_contactbridge"))
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--demo", "--metrics-listen", &metrics])
        .env_remove("CONTACTBRIDGE_CONFIG")
        .env("CONTACTBRIDGE_GRPC__LISTEN", "127.0.0.1:0")
        .env("CONTACTBRIDGE_WEB__LISTEN", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(std::fs::OpenOptions::new().create(true).append(true).open(data.with_extension("log")).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let grpc = loop {
        let line = lines.next().expect("serve stopped before listening").unwrap();
        if let Some(a) = line.strip_prefix("gRPC on ") {
            break a.parse().unwrap();
        }
    };
    // Keep reading, so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, grpc)
}

fn sigkill(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL: no destructor, no flush, no sync
    child.wait().unwrap();
}

async fn client(addr: SocketAddr) -> BridgeClient {
    BridgeClient::connect(&format!("http://{addr}"), "demo-tsps-key").await.unwrap()
}

fn ring() -> pb::ResolveCallRequest {
    pb::ResolveCallRequest {
        called_number: DEMO_DID.into(),
        cli: ERIKA_CLI.into(),
        tsps_call_id: String::new(),
        at: None,
    }
}

async fn report_ringing(c: &mut BridgeClient, id: &str) -> Result<(), tonic::Status> {
    let req = pb::ReportCallEventRequest {
        call_id: id.into(),
        kind: pb::CallEventKind::Ringing as i32,
        ..Default::default()
    };
    c.calls.report_call_event(req).await.map(drop)
}

/// Issue 16's burst: 20 calls, a SIGKILL at once after the last answer, ten
/// times over one data directory. Before the journal, 117 of 200 were lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_id_resolve_call_returned_survives_a_sigkill_right_after() {
    const ROUNDS: usize = 10;
    const PER_ROUND: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut returned = Vec::new();
    for _ in 0..ROUNDS {
        let (mut child, addr) = serve(&data, None);
        let mut c = client(addr).await;
        for _ in 0..PER_ROUND {
            let r = c.calls.resolve_call(ring()).await.unwrap().into_inner();
            assert!(!r.not_recorded);
            returned.push(r.call_id);
        }
        sigkill(&mut child);
    }

    let (mut child, addr) = serve(&data, None);
    let mut c = client(addr).await;
    let mut lost = Vec::new();
    for id in &returned {
        if let Err(s) = report_ringing(&mut c, id).await {
            lost.push((id.clone(), s.code()));
        }
    }
    let mut admin = BridgeClient::connect(&format!("http://{addr}"), "demo-admin-key").await.unwrap();
    let listed = admin
        .admin
        .list_calls(pb::ListCallsRequest { user_id: "demo".into(), limit: 1000, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .calls;
    sigkill(&mut child);
    assert!(lost.is_empty(), "{} of {} returned call ids lost: {lost:?}", lost.len(), returned.len());
    assert_eq!(listed.len(), ROUNDS * PER_ROUND, "ListCalls sees every call once");
    assert!(listed.iter().all(|call| call.events.len() == 1), "each call's event is on its newest version");
}

/// Writes to /dev/full fail with ENOSPC: the journal file is a link to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_record_cannot_be_written_is_answered_marked_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("calls")).unwrap();
    std::os::unix::fs::symlink("/dev/full", data.join("calls").join("journal")).unwrap();
    let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let (mut child, addr) = serve(&data, Some(metrics));
    let mut c = client(addr).await;

    let r = c.calls.resolve_call(ring()).await.expect("the call is answered all the same").into_inner();
    assert!(r.not_recorded, "the answer says the call was not recorded");
    assert_eq!(r.caller.as_ref().map(|c| c.e164.as_str()), Some(ERIKA_CLI), "with the whole decision");
    assert!(!r.call_id.is_empty());
    let refused = report_ringing(&mut c, &r.call_id).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");

    let scraped = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(metrics).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    sigkill(&mut child);
    assert!(scraped.lines().any(|l| l == "contactbridge_grpc_calls_not_recorded_total 1"), "{scraped}");
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(
        log.lines().any(|l| l.contains("the call record was not written") && l.contains("No space left on device")),
        "{log}"
    );
}
