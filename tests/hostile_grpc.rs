//! Hostile input at the gRPC interface (issue 10, slice A): nothing a client
//! sends makes the bridge panic, overflow a time, grow a journal, a message or
//! the metrics without bound. A real server on 127.0.0.1 over a temporary
//! sled store with the demo user (tenant `demo`, region DE), driven by the
//! tonic client in `contactbridge::api::client`.

use chrono::{DateTime, Utc};
use contactbridge::api::auth::{self, Scope};
use contactbridge::api::client::BridgeClient;
use contactbridge::api::metrics::Metrics;
use contactbridge::api::pb;
use contactbridge::api::{RunningServer, ServerOptions};
use contactbridge::live::CallHub;
use contactbridge::store::SledStore;
use std::path::Path;
use std::sync::Arc;
use tonic::Code;

const DEMO_DID: &str = "+49 30 901820";
/// Erika Mustermann in the demo contacts.
const ERIKA_CLI: &str = "+49301234567";

struct Bridge {
    server: RunningServer,
    store: Arc<SledStore>,
    tsps: String,
    admin: String,
}

impl Bridge {
    async fn start() -> Self {
        Self::start_from(&contactbridge::demo::default_dir()).await
    }

    /// The demo user and the files in `demo_dir` (a copy of `examples/demo`, maybe with more files).
    async fn start_from(demo_dir: &Path) -> Self {
        let store = Arc::new(SledStore::temporary().unwrap());
        let summary = contactbridge::demo::load(store.as_ref(), demo_dir, Utc::now()).await.unwrap();
        assert_eq!(summary.rejected, 0, "every demo record is kept");
        let key = |scope| auth::create_key(store.as_ref(), "demo", scope, "test").unwrap().text;
        let (tsps, admin) = (key(Scope::Tsps), key(Scope::Admin));
        let server = RunningServer::start(
            store.clone(),
            store.clone(),
            CallHub::new(store.clone()),
            "127.0.0.1:0".parse().unwrap(),
            Some("127.0.0.1:0".parse().unwrap()),
            ServerOptions::default(),
        )
        .await
        .unwrap();
        Self { server, store, tsps, admin }
    }

    async fn client(&self, key: &str) -> BridgeClient {
        BridgeClient::connect(&format!("http://{}", self.server.addr), key).await.unwrap()
    }

    async fn metrics_text(&self) -> String {
        let addr = self.server.metrics_addr.unwrap();
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .await
        .unwrap()
    }
}

fn resolve_req(called: &str, cli: &str) -> pb::ResolveCallRequest {
    pb::ResolveCallRequest { called_number: called.into(), cli: cli.into(), tsps_call_id: "pbx-1".into(), at: None }
}

fn context_req(cli: &str, criteria: Option<pb::ContextCriteria>) -> pb::GetCallerContextRequest {
    pb::GetCallerContextRequest { user_id: "demo".into(), cli: cli.into(), criteria, ..Default::default() }
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

/// Asserts an error is INVALID_ARGUMENT and its message mentions every one of `words`.
#[track_caller]
fn invalid(r: Result<impl std::fmt::Debug, tonic::Status>, words: &[&str]) -> tonic::Status {
    let e = r.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    for w in words {
        assert!(e.message().contains(w), "{w:?} not in {:?}", e.message());
    }
    e
}

#[tokio::test]
async fn unicode_decimal_digits_in_numbers_resolve_like_ascii_digits() {
    let b = Bridge::start().await;
    let mut c = b.client(&b.tsps).await;
    // Full-width (U+FF10…), Arabic-Indic (U+0660…), Extended Arabic-Indic (U+06F0…), Devanagari (U+0966…).
    for (called, cli) in [
        ("+４９ ３０ ９０１８２０", "+４９ ３０ １２３４５６７"),
        ("+٤٩ ٣٠ ٩٠١٨٢٠", "+٤٩٣٠١٢٣٤٥٦٧"),
        (DEMO_DID, "۰۳۰ ۱۲۳۴۵۶۷"),
        (DEMO_DID, "०३० १२३४५६७"),
        (DEMO_DID, "sip:０３０１２３４５６７@pbx"),
    ] {
        let d = c.calls.resolve_call(resolve_req(called, cli)).await.unwrap().into_inner();
        assert_eq!(d.user_id, "demo", "{called}");
        assert_eq!(d.caller.as_ref().unwrap().e164, ERIKA_CLI, "{cli}");
        assert_eq!(d.candidates[0].display_name, "Erika Mustermann", "{cli}");
        assert_eq!(d.candidates[0].quality, pb::MatchQuality::Exact as i32, "{cli}");
        // The call record keeps the CLI as received.
        assert_eq!(d.caller.unwrap().cli, cli);
    }
    let ctx = c.calls.get_caller_context(context_req("０３０ １２３４５６７", None)).await.unwrap().into_inner();
    assert_eq!(ctx.contact.unwrap().display_name, "Erika Mustermann");
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn multi_byte_text_that_is_no_number_is_invalid_argument() {
    let b = Bridge::start().await;
    let mut c = b.client(&b.tsps).await;
    for text in ["ab€", "€", "t€l:+49", "€€€€", "sip€:1", "+49 30 ½234567", "+49 ３０ １２３€"]
    {
        invalid(c.calls.resolve_call(resolve_req(DEMO_DID, text)).await, &["CLI"]);
        invalid(c.calls.resolve_call(resolve_req(text, ERIKA_CLI)).await, &["called number"]);
        invalid(c.calls.get_caller_context(context_req(text, None)).await, &["CLI"]);
    }
    let e = invalid(c.calls.resolve_call(resolve_req(DEMO_DID, "ab€")).await, &[]);
    assert!(e.message().contains("letter 'a' at position 1"), "{}", e.message());
    // The server is still there.
    c.calls.ping(pb::PingRequest {}).await.unwrap();
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn context_windows_past_their_caps_are_refused_naming_the_field() {
    let b = Bridge::start().await;
    let mut c = b.client(&b.tsps).await;
    for (criteria, field) in [
        (pb::ContextCriteria { days_back: 100_000_000, ..Default::default() }, "criteria.days_back"),
        (pb::ContextCriteria { days_ahead: 100_000_000, ..Default::default() }, "criteria.days_ahead"),
        (pb::ContextCriteria { days_back: u32::MAX, ..Default::default() }, "criteria.days_back"),
        (pb::ContextCriteria { days_back: 3651, ..Default::default() }, "criteria.days_back"),
        (pb::ContextCriteria { max_calls: 201, ..Default::default() }, "criteria.max_calls"),
        (pb::ContextCriteria { max_mail: u32::MAX, ..Default::default() }, "criteria.max_mail"),
    ] {
        invalid(c.calls.get_caller_context(context_req(ERIKA_CLI, Some(criteria))).await, &[field, "at most"]);
    }
    // At the caps: answered.
    let widest = pb::ContextCriteria {
        days_back: 3650,
        days_ahead: 3650,
        max_mail: 200,
        max_events: 200,
        max_documents: 200,
        max_calls: 200,
    };
    let ctx = c.calls.get_caller_context(context_req(ERIKA_CLI, Some(widest))).await.unwrap().into_inner();
    assert!(!ctx.mail_received.is_empty());
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn times_at_the_ends_of_the_calendar_do_not_overflow() {
    let b = Bridge::start().await;
    let mut c = b.client(&b.tsps).await;
    let widest = pb::ContextCriteria { days_back: 3650, days_ahead: 3650, ..Default::default() };
    for t in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
        let mut req = resolve_req(DEMO_DID, ERIKA_CLI);
        req.at = Some(ts(t));
        let d = c.calls.resolve_call(req).await.unwrap().into_inner();
        assert_eq!(d.candidates[0].display_name, "Erika Mustermann");

        let mut req = context_req(ERIKA_CLI, Some(widest));
        req.now = Some(ts(t));
        c.calls.get_caller_context(req).await.unwrap();

        let report = pb::ReportCallEventRequest {
            call_id: d.call_id,
            kind: pb::CallEventKind::Ended as i32,
            at: Some(ts(t)),
            ..Default::default()
        };
        c.calls.report_call_event(report).await.unwrap();
    }
    // Past what a timestamp can hold: refused, naming the field.
    let mut req = resolve_req(DEMO_DID, ERIKA_CLI);
    req.at = Some(prost_types::Timestamp { seconds: i64::MIN, nanos: 0 });
    invalid(c.calls.resolve_call(req).await, &["at"]);
    let mut admin = b.client(&b.admin).await;
    let calls = admin
        .admin
        .list_calls(pb::ListCallsRequest { user_id: "demo".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(!calls.calls.is_empty());
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn put_user_refuses_criteria_past_their_caps() {
    let b = Bridge::start().await;
    let mut admin = b.client(&b.admin).await;
    let get = pb::GetUserRequest { user_id: "demo".into() };
    let mut profile = admin.admin.get_user(get.clone()).await.unwrap().into_inner();
    let before = profile.context;
    for (field, set) in [
        ("context.days_back", (|c: &mut pb::ContextCriteria| c.days_back = 4_000_000_000) as fn(&mut _)),
        ("context.days_ahead", |c| c.days_ahead = 3651),
        ("context.max_documents", |c| c.max_documents = 201),
    ] {
        let mut p = profile.clone();
        set(p.context.as_mut().unwrap());
        let put = pb::PutUserRequest { profile: Some(p) };
        invalid(admin.admin.put_user(put).await, &[field, "at most"]);
    }
    // Nothing was stored; the caller's context still works.
    assert_eq!(admin.admin.get_user(get).await.unwrap().into_inner().context, before);
    let mut c = b.client(&b.tsps).await;
    c.calls.get_caller_context(context_req(ERIKA_CLI, None)).await.unwrap();
    // At the caps: stored.
    profile.context = Some(pb::ContextCriteria { days_back: 3650, days_ahead: 3650, ..profile.context.unwrap() });
    admin.admin.put_user(pb::PutUserRequest { profile: Some(profile) }).await.unwrap();
    c.calls.get_caller_context(context_req(ERIKA_CLI, None)).await.unwrap();
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn error_messages_quote_at_most_64_characters_of_the_input() {
    let b = Bridge::start().await;
    let mut c = b.client(&b.tsps).await;
    // 60,000 digits: refused for its length, without repeating it.
    let huge = "1".repeat(60_000);
    let e = invalid(c.calls.resolve_call(resolve_req(DEMO_DID, &huge)).await, &["cli", "256"]);
    assert!(e.message().len() < 200, "{} bytes: {}", e.message().len(), e.message());
    eprintln!("a 60,000-digit CLI to ResolveCall: a {}-byte message: {}", e.message().len(), e.message());
    let e = invalid(c.calls.get_caller_context(context_req(&huge, None)).await, &["CLI"]);
    eprintln!("a 60,000-digit CLI to GetCallerContext: a {}-byte message: {}", e.message().len(), e.message());
    assert!(e.message().len() < 300, "{} bytes", e.message().len());
    let e = invalid(c.calls.resolve_call(resolve_req(&huge, ERIKA_CLI)).await, &["called_number"]);
    assert!(e.message().len() < 200, "{} bytes", e.message().len());
    // Within the length bound, a malformed CLI is quoted shortened.
    let long = format!("+49 30 {}q", " ".repeat(200));
    let e = invalid(c.calls.resolve_call(resolve_req(DEMO_DID, &long)).await, &["letter 'q'", "more characters"]);
    eprintln!("a 208-character malformed CLI: a {}-byte message: {}", e.message().len(), e.message());
    assert!(e.message().len() < 300, "{} bytes: {}", e.message().len(), e.message());
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_call_journal_is_bounded_and_stays_readable() {
    let b = Bridge::start().await;
    let mut c = b.client(&b.tsps).await;
    let d = c.calls.resolve_call(resolve_req(DEMO_DID, ERIKA_CLI)).await.unwrap().into_inner();
    let event = |by: &str| pb::ReportCallEventRequest {
        call_id: d.call_id.clone(),
        kind: pb::CallEventKind::Ringing as i32,
        by: by.into(),
        ..Default::default()
    };
    // The report that once grew responses past 4 MB: one 60 KB `by`.
    invalid(c.calls.report_call_event(event(&"x".repeat(60_000))).await, &["by", "256"]);
    invalid(c.calls.report_call_event(event(&"€".repeat(257))).await, &["by", "257", "256"]);
    let forwarded =
        pb::ReportCallEventRequest { kind: pb::CallEventKind::Forwarded as i32, target: "1".repeat(300), ..event("") };
    invalid(c.calls.report_call_event(forwarded).await, &["target", "256"]);
    let directive = pb::SendDirectiveRequest {
        call_id: d.call_id.clone(),
        action: pb::DirectiveAction::Reject as i32,
        by: "y".repeat(300),
        ..Default::default()
    };
    invalid(c.calls.send_directive(directive).await, &["by", "256"]);

    // 100 events fit; the 101st is refused and not recorded.
    for _ in 0..100 {
        c.calls.report_call_event(event("")).await.unwrap();
    }
    let e = c.calls.report_call_event(event("")).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("100 events"), "{}", e.message());
    let e = c
        .calls
        .send_directive(pb::SendDirectiveRequest {
            call_id: d.call_id.clone(),
            action: pb::DirectiveAction::Reject as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");

    // Text: 8192 bytes per journal (32 events with a 256-byte `by`), then refused.
    let d2 = c.calls.resolve_call(resolve_req(DEMO_DID, ERIKA_CLI)).await.unwrap().into_inner();
    let by = "b".repeat(256);
    for _ in 0..32 {
        c.calls
            .report_call_event(pb::ReportCallEventRequest { call_id: d2.call_id.clone(), ..event(&by) })
            .await
            .unwrap();
    }
    let e = c
        .calls
        .report_call_event(pb::ReportCallEventRequest { call_id: d2.call_id.clone(), ..event("b") })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("8192 bytes"), "{}", e.message());

    // Both calls come back in full through a client with default limits.
    let widest = pb::ContextCriteria { max_calls: 200, ..Default::default() };
    let ctx = c.calls.get_caller_context(context_req(ERIKA_CLI, Some(widest))).await.unwrap().into_inner();
    let journals: Vec<usize> = ctx.calls.iter().map(|c| c.events.len()).collect();
    assert_eq!(journals, [32, 100]);
    {
        use prost::Message as _;
        let sizes: Vec<usize> = ctx.calls.iter().map(|c| c.encoded_len()).collect();
        eprintln!(
            "full journals: call records of {sizes:?} bytes encoded; GetCallerContext {} bytes",
            ctx.encoded_len()
        );
    }
    let mut admin = b.client(&b.admin).await;
    let list = pb::ListCallsRequest { user_id: "demo".into(), ..Default::default() };
    let calls = admin.admin.list_calls(list).await.unwrap().into_inner().calls;
    assert_eq!(calls.iter().map(|c| c.events.len()).collect::<Vec<_>>(), [32, 100]);
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn many_calls_with_full_journals_fit_a_default_client() {
    use contactbridge::calls::{CallEvent, CallEventKind, CallId, MAX_JOURNAL_TEXT_BYTES};
    use contactbridge::store::CallStore;
    use prost::Message as _;
    let b = Bridge::start().await;
    let mut c = b.client(&b.tsps).await;
    let d = c.calls.resolve_call(resolve_req(DEMO_DID, ERIKA_CLI)).await.unwrap().into_inner();
    let base = b.store.call(&CallId(d.call_id)).unwrap().unwrap();
    // 500 calls from Erika (4.5 MB), each journal at its bounds (32 events with a 256-character `by`: 8 KiB).
    let full: Vec<CallEvent> = (0..MAX_JOURNAL_TEXT_BYTES / 256)
        .map(|_| CallEvent { at: base.at, kind: CallEventKind::Ringing, by: Some("b".repeat(256)) })
        .collect();
    for _ in 0..500 {
        b.store
            .put_call(&contactbridge::calls::CallRecord {
                id: CallId::generate(),
                events: full.clone(),
                ..base.clone()
            })
            .unwrap();
    }
    let mut admin = b.client(&b.admin).await;
    let list = pb::ListCallsRequest { user_id: "demo".into(), limit: 1000, ..Default::default() };
    let listed = admin.admin.list_calls(list).await.unwrap().into_inner();
    eprintln!("ListCalls limit 1000 over 501 full calls: {} calls, {} bytes", listed.calls.len(), listed.encoded_len());
    assert!((300..501).contains(&listed.calls.len()), "{} calls: fewer than asked, as many as fit", listed.calls.len());
    assert!(listed.encoded_len() <= 3 * 1024 * 1024 + 1024);
    // Newest first: the oldest call listed tells where the next request starts.
    assert!(listed.calls.windows(2).all(|w| w[0].at.unwrap().seconds >= w[1].at.unwrap().seconds));

    let widest = pb::ContextCriteria { max_calls: 200, ..Default::default() };
    let ctx = c.calls.get_caller_context(context_req(ERIKA_CLI, Some(widest))).await.unwrap().into_inner();
    eprintln!("GetCallerContext max_calls 200: {} calls, {} bytes", ctx.calls.len(), ctx.encoded_len());
    assert_eq!(ctx.calls.len(), 200);
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn made_up_paths_share_one_metrics_label() {
    let b = Bridge::start().await;
    let before = b.metrics_text().await.len();
    // Keyless requests to 3,000 paths the server does not serve, over one HTTP/2 connection.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", b.server.addr)).unwrap().connect().await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    for i in 0..3000 {
        grpc.ready().await.unwrap();
        let path = http::uri::PathAndQuery::try_from(format!("/made.up.v{i}.Service/Method{i}")).unwrap();
        let codec = tonic_prost::ProstCodec::<pb::PingRequest, pb::PingResponse>::default();
        let e = grpc.unary(tonic::Request::new(pb::PingRequest {}), path, codec).await.unwrap_err();
        assert_eq!(e.code(), Code::Unimplemented);
    }
    let text = b.metrics_text().await;
    eprintln!("/metrics: {before} bytes before, {} bytes after 3,000 made-up paths", text.len());
    assert!(
        text.contains(r#"contactbridge_grpc_requests_total{method="unknown",code="UNIMPLEMENTED"} 3000"#),
        "{text}"
    );
    assert!(!text.contains("made.up"));
    // One label set more (a counter and a histogram), whatever the number of paths.
    assert!(text.len() < before + 8 * 1024, "metrics grew from {before} to {} bytes", text.len());
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_vcard_file_with_a_full_width_number_keeps_every_card() {
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(contactbridge::demo::default_dir()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.path().join(f.file_name())).unwrap();
    }
    // A card whose only number is written in full-width digits, between two ordinary cards.
    std::fs::write(
        dir.path().join("wide.vcf"),
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Anna Before\r\nTEL;TYPE=WORK:+49 40 1111111\r\nEND:VCARD\r\n\
         BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Zenji Zenkaku\r\nTEL;TYPE=CELL:＋４９ ４０ ２２２２２２２\r\nEND:VCARD\r\n\
         BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Tel Wide\r\nTEL;VALUE=uri:tel:＋４９４０３３３３３３３\r\nEND:VCARD\r\n\
         BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Otto After\r\nTEL;TYPE=HOME:040 4444444\r\nEND:VCARD\r\n",
    )
    .unwrap();
    let b = Bridge::start_from(dir.path()).await;
    let mut c = b.client(&b.tsps).await;
    for (cli, name) in [
        ("+49 40 1111111", "Anna Before"),
        ("+49 40 2222222", "Zenji Zenkaku"),
        ("040 3333333", "Tel Wide"),
        ("+49404444444", "Otto After"),
    ] {
        let d = c.calls.resolve_call(resolve_req(DEMO_DID, cli)).await.unwrap().into_inner();
        assert_eq!(d.candidates.first().map(|c| c.display_name.as_str()), Some(name), "{cli}");
        assert_eq!(d.candidates[0].quality, pb::MatchQuality::Exact as i32, "{cli}");
    }
    b.server.stop().await.unwrap();
}

/// A CallHandling service whose every method panics, to run through the server's real layer stack.
struct Panicking;

#[tonic::async_trait]
impl pb::call_handling_server::CallHandling for Panicking {
    async fn resolve_call(
        &self,
        _: tonic::Request<pb::ResolveCallRequest>,
    ) -> Result<tonic::Response<pb::ResolveCallResponse>, tonic::Status> {
        panic!("resolve_call panicked on purpose")
    }
    async fn get_caller_context(
        &self,
        _: tonic::Request<pb::GetCallerContextRequest>,
    ) -> Result<tonic::Response<pb::GetCallerContextResponse>, tonic::Status> {
        panic!("get_caller_context panicked on purpose")
    }
    type WatchDirectivesStream = futures::stream::Empty<Result<pb::Directive, tonic::Status>>;
    async fn watch_directives(
        &self,
        _: tonic::Request<pb::WatchDirectivesRequest>,
    ) -> Result<tonic::Response<Self::WatchDirectivesStream>, tonic::Status> {
        panic!("watch_directives panicked on purpose")
    }
    async fn send_directive(
        &self,
        _: tonic::Request<pb::SendDirectiveRequest>,
    ) -> Result<tonic::Response<pb::SendDirectiveResponse>, tonic::Status> {
        panic!("send_directive panicked on purpose")
    }
    async fn report_call_event(
        &self,
        _: tonic::Request<pb::ReportCallEventRequest>,
    ) -> Result<tonic::Response<pb::ReportCallEventResponse>, tonic::Status> {
        panic!("report_call_event panicked on purpose")
    }
    async fn ping(
        &self,
        _: tonic::Request<pb::PingRequest>,
    ) -> Result<tonic::Response<pb::PingResponse>, tonic::Status> {
        panic!("ping panicked on purpose: {}", "0".repeat(60_000))
    }
}

#[tokio::test]
async fn a_handler_panic_answers_internal_and_is_counted() {
    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(contactbridge::api::grpc_layers(metrics.clone()))
            .add_service(pb::call_handling_server::CallHandlingServer::new(Panicking))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let mut c = pb::call_handling_client::CallHandlingClient::connect(format!("http://{addr}")).await.unwrap();
    for _ in 0..3 {
        let e = c.ping(pb::PingRequest {}).await.unwrap_err();
        assert_eq!(e.code(), Code::Internal, "not CANCELLED: {e:?}");
        assert!(!e.message().contains("000000"), "the panic message stays in the log: {}", e.message());
    }
    let e = c.resolve_call(resolve_req(DEMO_DID, ERIKA_CLI)).await.unwrap_err();
    assert_eq!(e.code(), Code::Internal);
    // The connection survives: the same client goes on.
    let e = c.report_call_event(pb::ReportCallEventRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::Internal);
    let text = metrics.render();
    for line in [
        r#"contactbridge_grpc_requests_total{method="/contactbridge.v1.CallHandling/Ping",code="INTERNAL"} 3"#,
        r#"contactbridge_grpc_requests_total{method="/contactbridge.v1.CallHandling/ResolveCall",code="INTERNAL"} 1"#,
    ] {
        assert!(text.contains(line), "{line} not in {text}");
    }
    server.abort();
}

/// The notification window's chat writes to the same journal: the same bounds, answered 400.
#[tokio::test]
async fn the_windows_chat_and_criteria_keep_the_same_bounds() {
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use contactbridge::resolve::{CallQuery, Resolver};
    use contactbridge::store::{CallStore, Store};
    use contactbridge::web::{self, auth};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let store = Arc::new(SledStore::temporary().unwrap());
    contactbridge::demo::load(store.as_ref(), &contactbridge::demo::default_dir(), Utc::now()).await.unwrap();
    let dynstore: Arc<dyn Store> = store.clone();
    let hub = CallHub::new(dynstore.clone());
    let router = web::router(web::WebState::new(dynstore.clone(), store.clone(), hub.clone()));
    let send = |method: &str, path: &str, cookie: Option<&str>, body: Option<serde_json::Value>| {
        // Same origin, as the page's own requests (the window refuses state changes from elsewhere).
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
        };
        let router = router.clone();
        async move {
            let res = router.oneshot(req.unwrap()).await.unwrap();
            let (status, cookie) = (res.status(), res.headers().get(header::SET_COOKIE).cloned());
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).to_string(), cookie)
        }
    };
    let demo = contactbridge::user::UserId::parse("demo").unwrap();
    let token =
        auth::issue_login(store.as_ref(), store.as_ref(), &demo, chrono::Duration::hours(1), Utc::now()).unwrap();
    let (_, _, set_cookie) = send("GET", &auth::login_path(&token), None, None).await;
    let cookie = set_cookie.unwrap().to_str().unwrap().split(';').next().unwrap().to_string();
    let cookie = Some(cookie.as_str());
    let d = Resolver::new(dynstore)
        .resolve(&CallQuery { called: DEMO_DID.into(), cli: ERIKA_CLI.into(), tsps_call_id: None, at: Utc::now() })
        .unwrap();
    let chat = format!("/api/calls/{}/chat", d.call_id);

    let (s, body, _) = send("POST", &chat, cookie, Some(serde_json::json!({ "text": "x".repeat(2001) }))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    // Four 2,000-character messages fill most of the journal's 8,192 bytes; the fifth does not fit.
    for _ in 0..4 {
        let (s, body, _) = send("POST", &chat, cookie, Some(serde_json::json!({ "text": "y".repeat(2000) }))).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let (s, body, _) = send("POST", &chat, cookie, Some(serde_json::json!({ "text": "z".repeat(200) }))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("journal is full"), "{body}");
    assert_eq!(store.call(&d.call_id).unwrap().unwrap().events.len(), 4);

    let criteria = serde_json::json!({
        "days_back": 3651, "days_ahead": 30, "max_mail": 10, "max_events": 5, "max_documents": 5, "max_calls": 10
    });
    let (s, body, _) = send("PUT", "/api/criteria", cookie, Some(criteria)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("days_back"), "{body}");
}
