//! The gRPC API end to end: a real server on 127.0.0.1 (any free port) over
//! a temporary sled store holding the demo user (tenant `demo`) and a second
//! tenant, driven by the tonic client in `contactbridge::api::client`.

use chrono::Utc;
use contactbridge::api::auth::{self, Scope};
use contactbridge::api::client::BridgeClient;
use contactbridge::api::pb;
use contactbridge::api::{RunningServer, ServerOptions};
use contactbridge::connector::{Contact, PhoneKind, PhoneNumber, Record, RecordId};
use contactbridge::live::CallHub;
use contactbridge::store::SledStore;
use contactbridge::user::{self, UserId, UserProfile};
use futures::StreamExt;
use std::sync::Arc;
use tonic::Code;

mod support;

const DEMO_DID: &str = "+49 30 901820";
const ERIKA_CLI: &str = "+49301234567";
const OTHER_DID: &str = "+49 89 555000";

struct Bridge {
    server: RunningServer,
    hub: Arc<CallHub>,
    demo_tsps: String,
    demo_admin: String,
    other_tsps: String,
    other_admin: String,
}

impl Bridge {
    async fn start() -> Self {
        Self::start_with(None).await
    }

    /// With `accounts_dir`, the server gets an account registry keeping its key there.
    async fn start_with(accounts_dir: Option<&std::path::Path>) -> Self {
        let store = Arc::new(SledStore::temporary().unwrap());
        contactbridge::demo::load(store.as_ref(), &contactbridge::demo::default_dir(), Utc::now()).await.unwrap();

        // A second tenant with one user and one contact.
        let mut olga = UserProfile::new(UserId::parse("other.olga").unwrap(), "other");
        olga.called_numbers = vec![OTHER_DID.into()];
        olga.region = Some("DE".into());
        user::put_profile(store.as_ref(), &olga).unwrap();
        let contact = Record::Contact(Contact {
            id: RecordId::new("c1"),
            display_name: "Secret Sam".into(),
            phones: vec![PhoneNumber::new("+49 89 1111111", PhoneKind::Work)],
            ..Default::default()
        });
        support::index::put(store.as_ref(), &olga.id, "files", "c", vec![contact]);

        let key = |tenant: &str, scope| auth::create_key(store.as_ref(), tenant, scope, "test").unwrap().text;
        let (demo_tsps, demo_admin) = (key("demo", Scope::Tsps), key("demo", Scope::Admin));
        let (other_tsps, other_admin) = (key("other", Scope::Tsps), key("other", Scope::Admin));
        let hub = CallHub::new(store.clone());
        let accounts = accounts_dir.map(|dir| {
            // Files accounts of tenant admins may read below the temporary directory.
            let accounts =
                contactbridge::config::AccountsConfig { files_roots: vec![std::env::temp_dir()], ..Default::default() };
            let config = contactbridge::config::Config { data_dir: dir.to_path_buf(), accounts, ..Default::default() };
            Arc::new(contactbridge::accounts::Registry::open(store.clone(), &config).unwrap())
        });
        let server = RunningServer::start(
            store.clone(),
            store,
            hub.clone(),
            "127.0.0.1:0".parse().unwrap(),
            Some("127.0.0.1:0".parse().unwrap()),
            ServerOptions { accounts, ..ServerOptions::default() },
        )
        .await
        .unwrap();
        Self { server, hub, demo_tsps, demo_admin, other_tsps, other_admin }
    }

    async fn client(&self, key: &str) -> BridgeClient {
        BridgeClient::connect(&format!("http://{}", self.server.addr), key).await.unwrap()
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr)
    }
}

fn resolve_req(called: &str, cli: &str) -> pb::ResolveCallRequest {
    pb::ResolveCallRequest { called_number: called.into(), cli: cli.into(), tsps_call_id: "pbx-1".into(), at: None }
}

#[tokio::test]
async fn resolve_call_returns_the_decision_for_a_known_contact() {
    let b = Bridge::start().await;
    let mut c = b.client(&b.demo_tsps).await;
    let d = c.calls.resolve_call(resolve_req(DEMO_DID, ERIKA_CLI)).await.unwrap().into_inner();
    assert_eq!(d.user_id, "demo");
    assert_eq!(d.user_display_name, "Dana Demo");
    assert!(!d.call_id.is_empty());
    assert_eq!(d.candidates[0].display_name, "Erika Mustermann");
    assert_eq!(d.candidates[0].quality, pb::MatchQuality::Exact as i32);
    assert_eq!(d.handling_code, "vip");
    assert_eq!(d.code_source.unwrap().kind, pb::CodeSourceKind::Contact as i32);
    assert_ne!(d.status, pb::Status::Unspecified as i32);
    assert!(d.status_reason.is_some());
    assert_ne!(d.method.unwrap().kind, pb::HandlingMethodKind::Unspecified as i32);
    assert_eq!(d.forward_targets.len(), 2);
    assert_eq!(d.caller.unwrap().e164, "+49301234567");
    assert!(!d.index_rebuilding, "a healthy index is not being rebuilt");

    // Withheld numbers and unknown callers get the bridge's own codes.
    let w = c.calls.resolve_call(resolve_req(DEMO_DID, "anonymous")).await.unwrap().into_inner();
    assert_eq!((w.handling_code.as_str(), w.candidates.len()), ("withheld", 0));
    let u = c.calls.resolve_call(resolve_req(DEMO_DID, "+49 40 9999999")).await.unwrap().into_inner();
    assert_eq!(u.handling_code, "unknown");
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_and_unknown_numbers_say_what_is_wrong() {
    let b = Bridge::start().await;
    let mut c = b.client(&b.demo_tsps).await;
    let e = c.calls.resolve_call(resolve_req(DEMO_DID, "+49 30 12a4567")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("CLI") && e.message().contains("letter 'a' at position"), "{}", e.message());

    let e = c.calls.resolve_call(resolve_req("030 901820", ERIKA_CLI)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("called number"), "{}", e.message());

    let e = c.calls.resolve_call(resolve_req("+49 40 1234567", ERIKA_CLI)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{}", e.message());
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn missing_or_wrong_keys_are_unauthenticated() {
    let b = Bridge::start().await;
    let channel = tonic::transport::Endpoint::from_shared(b.endpoint()).unwrap().connect().await.unwrap();
    let mut bare = pb::call_handling_client::CallHandlingClient::new(channel);
    let e = bare.ping(pb::PingRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = bare.resolve_call(resolve_req(DEMO_DID, ERIKA_CLI)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    let mut wrong = b.client(&format!("{}x", b.demo_tsps)).await;
    assert_eq!(wrong.calls.ping(pb::PingRequest {}).await.unwrap_err().code(), Code::Unauthenticated);
    let mut wrong = b.client("cb_00000000_AAAA").await;
    assert_eq!(wrong.admin.list_users(pb::ListUsersRequest {}).await.unwrap_err().code(), Code::Unauthenticated);
    let mut ok = b.client(&b.demo_tsps).await;
    ok.calls.ping(pb::PingRequest {}).await.unwrap();
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn scopes_and_tenants_are_enforced() {
    let b = Bridge::start().await;
    let mut demo_tsps = b.client(&b.demo_tsps).await;
    let mut demo_admin = b.client(&b.demo_admin).await;
    let mut other_tsps = b.client(&b.other_tsps).await;
    let mut other_admin = b.client(&b.other_admin).await;

    // Scopes.
    let e = demo_tsps.admin.list_users(pb::ListUsersRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = demo_admin.calls.resolve_call(resolve_req(DEMO_DID, ERIKA_CLI)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // A tsps key of another tenant learns nothing about the demo user.
    let e = other_tsps.calls.resolve_call(resolve_req(DEMO_DID, ERIKA_CLI)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(!e.message().contains("demo") && !e.message().contains("Dana"), "{}", e.message());
    let e = other_tsps
        .calls
        .get_caller_context(pb::GetCallerContextRequest {
            user_id: "demo".into(),
            cli: ERIKA_CLI.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = other_tsps
        .calls
        .watch_directives(pb::WatchDirectivesRequest { user_ids: vec!["demo".into()] })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // ... nor about its calls.
    let call = demo_tsps.calls.resolve_call(resolve_req(DEMO_DID, ERIKA_CLI)).await.unwrap().into_inner().call_id;
    let e = other_tsps
        .calls
        .report_call_event(pb::ReportCallEventRequest {
            call_id: call.clone(),
            kind: pb::CallEventKind::Answered as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = other_admin
        .calls
        .send_directive(pb::SendDirectiveRequest {
            call_id: call.clone(),
            action: pb::DirectiveAction::Reject as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // An admin key of another tenant can neither read nor change the demo user.
    let e = other_admin.admin.get_user(pb::GetUserRequest { user_id: "demo".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = other_admin
        .admin
        .set_manual_status(pb::SetManualStatusRequest {
            user_id: "demo".into(),
            status: pb::Status::DoNotDisturb as i32,
            until: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // Deleting another tenant's user answers as deleting an unknown one.
    let d = other_admin.admin.delete_user(pb::DeleteUserRequest { user_id: "demo".into() }).await.unwrap();
    assert!(!d.into_inner().deleted);
    let e = other_admin.admin.list_calls(pb::ListCallsRequest { user_id: "demo".into(), ..Default::default() }).await;
    assert_eq!(e.unwrap_err().code(), Code::NotFound);
    // Taking over the id, or writing into another tenant, is refused too.
    let hijack = pb::UserProfile { id: "demo".into(), tenant: "other".into(), ..Default::default() };
    let e = other_admin.admin.put_user(pb::PutUserRequest { profile: Some(hijack) }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let foreign = pb::UserProfile { id: "other.new".into(), tenant: "demo".into(), ..Default::default() };
    let e = other_admin.admin.put_user(pb::PutUserRequest { profile: Some(foreign) }).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Claiming the demo user's number does not reveal whose it is.
    let grab = pb::UserProfile { id: "other.eve".into(), called_numbers: vec![DEMO_DID.into()], ..Default::default() };
    let e = other_admin.admin.put_user(pb::PutUserRequest { profile: Some(grab) }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(!e.message().contains("demo"), "{}", e.message());

    let users = other_admin.admin.list_users(pb::ListUsersRequest {}).await.unwrap().into_inner().users;
    assert_eq!(users.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["other.olga"]);
    // The demo user is untouched.
    let demo = demo_admin.admin.get_user(pb::GetUserRequest { user_id: "demo".into() }).await.unwrap().into_inner();
    assert_eq!(demo.tenant, "demo");
    assert!(demo.manual_status.is_none());
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_requests_are_resource_exhausted() {
    let b = Bridge::start().await;
    let mut c = b.client(&b.demo_tsps).await;
    let e = c.calls.resolve_call(resolve_req(DEMO_DID, &"1".repeat(100_000))).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn directives_reach_the_watching_tsps_and_the_call_history() {
    let b = Bridge::start().await;
    let mut tsps = b.client(&b.demo_tsps).await;
    let mut admin = b.client(&b.demo_admin).await;
    let mut other = b.client(&b.other_tsps).await;
    let mut stream = tsps.calls.watch_directives(pb::WatchDirectivesRequest::default()).await.unwrap().into_inner();
    let mut other_stream =
        other.calls.watch_directives(pb::WatchDirectivesRequest::default()).await.unwrap().into_inner();

    let call = tsps.calls.resolve_call(resolve_req(DEMO_DID, ERIKA_CLI)).await.unwrap().into_inner();
    let sent = tsps
        .calls
        .send_directive(pb::SendDirectiveRequest {
            call_id: call.call_id.clone(),
            action: pb::DirectiveAction::Forward as i32,
            target: "+49 170 1234567".into(),
            by: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.delivered, 1, "exactly the demo tenant's stream");

    let got = stream.message().await.unwrap().expect("a directive");
    assert_eq!(got.call_id, call.call_id);
    assert_eq!(got.tsps_call_id, "pbx-1");
    assert_eq!(got.action, pb::DirectiveAction::Forward as i32);
    assert_eq!((got.target.as_str(), got.by.as_str(), got.user_id.as_str()), ("+49 170 1234567", "demo", "demo"));

    // The other tenant's stream gets its own tenant's directive first, never the demo one.
    let olga_call = other.calls.resolve_call(resolve_req(OTHER_DID, "+49 89 1111111")).await.unwrap().into_inner();
    assert_eq!(olga_call.candidates[0].display_name, "Secret Sam");
    let mut other_admin = b.client(&b.other_admin).await;
    other_admin
        .calls
        .send_directive(pb::SendDirectiveRequest {
            call_id: olga_call.call_id.clone(),
            action: pb::DirectiveAction::Voicemail as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    let first = other_stream.message().await.unwrap().unwrap();
    assert_eq!(first.call_id, olga_call.call_id);

    // A FORWARD without a number is refused; the history shows the directive.
    let e = admin
        .calls
        .send_directive(pb::SendDirectiveRequest {
            call_id: call.call_id.clone(),
            action: pb::DirectiveAction::Forward as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // DIAL: a call from the user's phone, to the tenant's streams, in no journal.
    let dial = |user: &str, call: &str, to: &str| pb::SendDirectiveRequest {
        call_id: call.into(),
        action: pb::DirectiveAction::Dial as i32,
        target: to.into(),
        user_id: user.into(),
        by: "demo".into(),
    };
    let sent = admin.calls.send_directive(dial("demo", "", "+49 30 1234567")).await.unwrap().into_inner();
    assert_eq!(sent.delivered, 1);
    let got = stream.message().await.unwrap().expect("a dial directive");
    assert_eq!(got.action, pb::DirectiveAction::Dial as i32);
    assert_eq!((got.call_id.as_str(), got.user_id.as_str(), got.target.as_str()), ("", "demo", "+49 30 1234567"));
    for (user, call, to) in
        [("demo", "", "sip:x@example.com"), ("demo", "", "*21#"), ("demo", call.call_id.as_str(), "+49 30 1")]
    {
        let e = admin.calls.send_directive(dial(user, call, to)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{to}: {e:?}");
    }
    let e = other_admin.calls.send_directive(dial("demo", "", "+49 30 1234567")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "another tenant's user");
    let calls = admin
        .admin
        .list_calls(pb::ListCallsRequest { user_id: "demo".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .calls;
    let rec = calls.iter().find(|c| c.call_id == call.call_id).unwrap();
    assert_eq!(rec.events.len(), 1);
    assert_eq!(rec.events[0].kind, pb::CallEventKind::Directive as i32);
    assert_eq!((rec.events[0].action.as_str(), rec.events[0].target.as_str()), ("forward", "+49 170 1234567"));
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn call_events_show_in_history_and_context() {
    let b = Bridge::start().await;
    let mut tsps = b.client(&b.demo_tsps).await;
    let call = tsps.calls.resolve_call(resolve_req(DEMO_DID, ERIKA_CLI)).await.unwrap().into_inner();
    let report = |kind: pb::CallEventKind, target: &str, by: &str| pb::ReportCallEventRequest {
        call_id: call.call_id.clone(),
        kind: kind as i32,
        target: target.into(),
        by: by.into(),
        at: None,
    };
    tsps.calls.report_call_event(report(pb::CallEventKind::Ringing, "", "")).await.unwrap();
    tsps.calls
        .report_call_event(report(pb::CallEventKind::Forwarded, "+49 30 901829", "attendant:desk"))
        .await
        .unwrap();
    let last = tsps.calls.report_call_event(report(pb::CallEventKind::Answered, "", "attendant:desk")).await.unwrap();
    let rec = last.into_inner().call.unwrap();
    let kinds: Vec<i32> = rec.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [pb::CallEventKind::Ringing as i32, pb::CallEventKind::Forwarded as i32, pb::CallEventKind::Answered as i32]
    );
    assert_eq!(rec.events[1].target, "+49 30 901829");
    assert_eq!(rec.events[2].by, "attendant:desk");

    let e = tsps.calls.report_call_event(report(pb::CallEventKind::Forwarded, "", "")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = tsps.calls.report_call_event(report(pb::CallEventKind::Directive, "", "")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let mut unknown = report(pb::CallEventKind::Ended, "", "");
    unknown.call_id = "no-such-call".into();
    assert_eq!(tsps.calls.report_call_event(unknown).await.unwrap_err().code(), Code::NotFound);

    // The caller context: mail both ways, documents, and the call with its journal.
    let ctx = tsps
        .calls
        .get_caller_context(pb::GetCallerContextRequest {
            user_id: "demo".into(),
            cli: ERIKA_CLI.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ctx.contact.unwrap().display_name, "Erika Mustermann");
    assert!(ctx.mail_received.iter().any(|m| m.subject == "Order 4711: delivery date"));
    assert!(ctx.mail_sent.iter().any(|m| m.subject.starts_with("Re: Order 4711")));
    assert!(ctx.documents.iter().any(|d| d.name.starts_with("ACME framework")));
    let hist = ctx.calls.iter().find(|c| c.call_id == call.call_id).expect("the call in the caller's history");
    assert_eq!(hist.events.len(), 3);

    // Only the kinds asked for, within the limits given.
    let only_calls = tsps
        .calls
        .get_caller_context(pb::GetCallerContextRequest {
            user_id: "demo".into(),
            contact_id: call.candidates[0].contact_id.clone(),
            kinds: vec![pb::ContextKind::Calls as i32],
            criteria: Some(pb::ContextCriteria { max_calls: 1, ..Default::default() }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(only_calls.mail_received.is_empty() && only_calls.documents.is_empty());
    assert_eq!(only_calls.calls.len(), 1);
    let e = tsps
        .calls
        .get_caller_context(pb::GetCallerContextRequest { user_id: "demo".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn admins_manage_users_handling_and_status() {
    let b = Bridge::start().await;
    let mut admin = b.client(&b.demo_admin).await;
    let mut tsps = b.client(&b.demo_tsps).await;

    let profile = pb::UserProfile {
        id: "demo.max".into(),
        display_name: "Max".into(),
        called_numbers: vec!["+49 30 901821".into()],
        region: "DE".into(),
        time_zone: "Europe/Berlin".into(),
        ..Default::default()
    };
    let put = admin.admin.put_user(pb::PutUserRequest { profile: Some(profile) }).await.unwrap().into_inner();
    assert_eq!(put.tenant, "demo", "the key's tenant is filled in");
    assert!(!put.handling.as_ref().unwrap().rules.is_empty(), "the default table");
    let got = admin.admin.get_user(pb::GetUserRequest { user_id: "demo.max".into() }).await.unwrap().into_inner();
    assert_eq!(got, put);
    let bad = pb::UserProfile { id: "demo.bad".into(), time_zone: "Mars/Olympus".into(), ..Default::default() };
    let e = admin.admin.put_user(pb::PutUserRequest { profile: Some(bad) }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let ids: Vec<String> = admin
        .admin
        .list_users(pb::ListUsersRequest {})
        .await
        .unwrap()
        .into_inner()
        .users
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(ids, ["demo", "demo.max"]);

    // A number assigned "blocked", and blocked callers rejected whatever the status.
    admin
        .admin
        .assign_handling_code(pb::AssignHandlingCodeRequest {
            user_id: "demo.max".into(),
            target: Some(pb::assign_handling_code_request::Target::Number("0171 9999999".into())),
            code: "blocked".into(),
        })
        .await
        .unwrap();
    let reject = pb::HandlingMethod { kind: pb::HandlingMethodKind::Reject as i32, target: String::new() };
    let table = admin
        .admin
        .set_handling_method(pb::SetHandlingMethodRequest {
            user_id: "demo.max".into(),
            code: "blocked".into(),
            status: pb::Status::Unspecified as i32,
            method: Some(reject.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(table.rules.iter().any(|r| r.code == "blocked" && r.method.as_ref() == Some(&reject)));
    let d = tsps.calls.resolve_call(resolve_req("+49 30 901821", "+49 171 9999999")).await.unwrap().into_inner();
    assert_eq!(d.handling_code, "blocked");
    assert_eq!(d.code_source.unwrap().kind, pb::CodeSourceKind::LocalNumber as i32);
    assert_eq!(d.method.unwrap().kind, pb::HandlingMethodKind::Reject as i32);

    // A contact assigned a code of the user's own; a manual status.
    let erika = tsps.calls.resolve_call(resolve_req(DEMO_DID, ERIKA_CLI)).await.unwrap().into_inner();
    admin
        .admin
        .assign_handling_code(pb::AssignHandlingCodeRequest {
            user_id: "demo".into(),
            target: Some(pb::assign_handling_code_request::Target::ContactId(erika.candidates[0].contact_id.clone())),
            code: "family".into(),
        })
        .await
        .unwrap();
    admin
        .admin
        .set_manual_status(pb::SetManualStatusRequest {
            user_id: "demo".into(),
            status: pb::Status::DoNotDisturb as i32,
            until: None,
        })
        .await
        .unwrap();
    let d = tsps.calls.resolve_call(resolve_req(DEMO_DID, ERIKA_CLI)).await.unwrap().into_inner();
    assert_eq!(d.handling_code, "family");
    assert_eq!(d.code_source.unwrap().kind, pb::CodeSourceKind::LocalContact as i32);
    assert_eq!(d.status, pb::Status::DoNotDisturb as i32);
    assert_eq!(d.status_reason.unwrap().kind, pb::StatusReasonKind::Manual as i32);
    let cleared = admin
        .admin
        .set_manual_status(pb::SetManualStatusRequest { user_id: "demo".into(), status: 0, until: None })
        .await
        .unwrap()
        .into_inner();
    assert!(cleared.manual_status.is_none());

    // This server runs without an account registry.
    let e = admin.admin.list_accounts(pb::ListAccountsRequest { user_id: "demo".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);

    let del = admin.admin.delete_user(pb::DeleteUserRequest { user_id: "demo.max".into() }).await.unwrap();
    assert!(del.into_inner().deleted);
    let e = tsps.calls.resolve_call(resolve_req("+49 30 901821", ERIKA_CLI)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn reflection_lists_the_services_and_health_is_serving() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let b = Bridge::start().await;
    let channel = tonic::transport::Endpoint::from_shared(b.endpoint()).unwrap().connect().await.unwrap();
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = reflection.server_reflection_info(futures::stream::iter([req])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.next().await.unwrap().unwrap().message_response else {
        panic!("expected a service list")
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    for want in ["contactbridge.v1.Admin", "contactbridge.v1.CallHandling", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }

    // What grpcurl asks next: the service's file, then its imports by name.
    for request in [
        MessageRequest::FileContainingSymbol("contactbridge.v1.CallHandling".into()),
        MessageRequest::FileByFilename("google/protobuf/timestamp.proto".into()),
        MessageRequest::FileByFilename("contactbridge/v1/types.proto".into()),
    ] {
        let req = ServerReflectionRequest { host: String::new(), message_request: Some(request.clone()) };
        let mut resp = reflection.server_reflection_info(futures::stream::iter([req])).await.unwrap().into_inner();
        let answer = resp.next().await.unwrap().unwrap().message_response;
        assert!(
            matches!(answer, Some(MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
            "{request:?} -> {answer:?}"
        );
    }

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "contactbridge.v1.CallHandling", "contactbridge.v1.Admin"] {
        let r = health.check(tonic_health::pb::HealthCheckRequest { service: service.into() }).await.unwrap();
        assert_eq!(r.into_inner().status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    }
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_count_requests_by_method_and_code() {
    let b = Bridge::start().await;
    let mut c = b.client(&b.demo_tsps).await;
    c.calls.resolve_call(resolve_req(DEMO_DID, ERIKA_CLI)).await.unwrap();
    c.calls.resolve_call(resolve_req("+49 40 1234567", ERIKA_CLI)).await.unwrap_err();
    let addr = b.server.metrics_addr.unwrap();
    let text = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"), "{text}");
    let ok = r#"contactbridge_grpc_requests_total{method="/contactbridge.v1.CallHandling/ResolveCall",code="OK"} 1"#;
    let nf =
        r#"contactbridge_grpc_requests_total{method="/contactbridge.v1.CallHandling/ResolveCall",code="NOT_FOUND"} 1"#;
    assert!(text.contains(ok) && text.contains(nf), "{text}");
    assert!(text.contains("contactbridge_grpc_request_duration_seconds_bucket"), "{text}");
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_ends_open_directive_streams() {
    let b = Bridge::start().await;
    let mut c = b.client(&b.demo_tsps).await;
    let mut stream = c.calls.watch_directives(pb::WatchDirectivesRequest::default()).await.unwrap().into_inner();
    let stopping = tokio::spawn(b.server.stop());
    // The stream ends (cleanly or with an error) instead of holding the server open.
    let end = stream.message().await;
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn ringing_calls_reach_the_users_window_subscribers() {
    let b = Bridge::start().await;
    let mut dana = b.hub.watch_calls(&UserId::parse("demo").unwrap());
    let mut olga = b.hub.watch_calls(&UserId::parse("other.olga").unwrap());
    let mut c = b.client(&b.demo_tsps).await;
    let d = c.calls.resolve_call(resolve_req(DEMO_DID, ERIKA_CLI)).await.unwrap().into_inner();
    let rang = dana.recv().await.unwrap();
    assert_eq!(rang.call_id.as_str(), d.call_id);
    assert_eq!(rang.caller_name().as_deref(), Some("Erika Mustermann"));
    assert!(olga.try_recv().is_err(), "another user's window sees nothing");
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn accounts_register_sync_report_status_and_remove() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(
        files.path().join("extra.vcf"),
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x1\r\nFN:Xaver Extra\r\nTEL:+49 30 7777777\r\nEND:VCARD\r\n",
    )
    .unwrap();
    let b = Bridge::start_with(Some(data.path())).await;
    let mut admin = b.client(&b.demo_admin).await;
    let mut other = b.client(&b.other_admin).await;
    let mut tsps = b.client(&b.demo_tsps).await;
    let account = pb::Account {
        id: "demo-extra".into(),
        user_id: "demo".into(),
        kind: pb::AccountKind::Files as i32,
        location: files.path().display().to_string(),
        ..Default::default()
    };
    let req = |a: &pb::Account| pb::RegisterAccountRequest { account: Some(a.clone()), secret: String::new() };

    // Another tenant's admin can neither register for, list, test nor remove the demo user's accounts.
    let e = other.admin.register_account(req(&account)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let stored = admin.admin.register_account(req(&account)).await.unwrap().into_inner();
    assert_eq!((stored.id.as_str(), stored.kind, stored.enabled), ("demo-extra", pb::AccountKind::Files as i32, true));
    assert_eq!(admin.admin.register_account(req(&account)).await.unwrap_err().code(), Code::AlreadyExists);
    let listed = admin.admin.list_accounts(pb::ListAccountsRequest { user_id: "demo".into() }).await.unwrap();
    assert_eq!(listed.into_inner().accounts.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["demo-extra"]);
    let e = other.admin.list_accounts(pb::ListAccountsRequest { user_id: "demo".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let ids = |id: &str| (id.to_string(), "demo".to_string());
    let (account_id, user_id) = ids("demo-extra");
    let e =
        other.admin.test_account(pb::TestAccountRequest { user_id: user_id.clone(), account_id: account_id.clone() });
    assert_eq!(e.await.unwrap_err().code(), Code::NotFound);
    let e = other
        .admin
        .remove_account(pb::RemoveAccountRequest { user_id: user_id.clone(), account_id: account_id.clone() });
    assert_eq!(e.await.unwrap_err().code(), Code::NotFound);

    let t = admin
        .admin
        .test_account(pb::TestAccountRequest { user_id: user_id.clone(), account_id: account_id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(t.ok, "{}", t.message);
    let started = admin
        .admin
        .sync_account(pb::SyncAccountRequest { user_id: user_id.clone(), account_id: account_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .started;
    assert!(started);
    // SyncAccount returns once the sync is started; wait for it to finish.
    let mut status = pb::SyncStatus::default();
    for _ in 0..200 {
        status = admin
            .admin
            .get_sync_status(pb::GetSyncStatusRequest { user_id: user_id.clone(), account_id: account_id.clone() })
            .await
            .unwrap()
            .into_inner();
        if !status.running && status.last_finished.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(status.last_finished.is_some(), "{status:?}");
    assert_eq!(status.last_error, "");
    assert_eq!(status.records.get("contact"), Some(&1), "{status:?}");
    let d = tsps.calls.resolve_call(resolve_req(DEMO_DID, "+49 30 7777777")).await.unwrap().into_inner();
    assert_eq!(d.candidates[0].display_name, "Xaver Extra");
    assert_eq!(d.candidates[0].account, "demo-extra");

    let removed = admin
        .admin
        .remove_account(pb::RemoveAccountRequest { user_id, account_id })
        .await
        .unwrap()
        .into_inner()
        .records_removed;
    assert_eq!(removed, 1);
    let d = tsps.calls.resolve_call(resolve_req(DEMO_DID, "+49 30 7777777")).await.unwrap().into_inner();
    assert!(d.candidates.is_empty());
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_running_sync_reports_its_progress() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    // Large enough that parsing takes a while in a debug build.
    let cards: String = (0..10_000)
        .map(|i| {
            format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:p{i}\r\nFN:Person {i}\r\nTEL:+49 30 {i:07}\r\nEND:VCARD\r\n")
        })
        .collect();
    std::fs::write(files.path().join("big.vcf"), cards).unwrap();
    let b = Bridge::start_with(Some(data.path())).await;
    let mut admin = b.client(&b.demo_admin).await;
    let account = pb::Account {
        id: "demo-big".into(),
        user_id: "demo".into(),
        kind: pb::AccountKind::Files as i32,
        location: files.path().display().to_string(),
        ..Default::default()
    };
    admin
        .admin
        .register_account(pb::RegisterAccountRequest { account: Some(account), secret: String::new() })
        .await
        .unwrap();
    let ids = pb::GetSyncStatusRequest { user_id: "demo".into(), account_id: "demo-big".into() };
    let started = admin
        .admin
        .sync_account(pb::SyncAccountRequest { user_id: "demo".into(), account_id: "demo-big".into() })
        .await
        .unwrap()
        .into_inner()
        .started;
    assert!(started);
    let mut seen_progress = None;
    let mut status = pb::SyncStatus::default();
    for _ in 0..1500 {
        status = admin.admin.get_sync_status(ids.clone()).await.unwrap().into_inner();
        if status.running {
            let p = status.progress.clone().expect("a running sync has progress");
            assert!(p.started.is_some(), "{p:?}");
            if p.collections_total > 0 {
                seen_progress = Some(p);
            }
        } else if status.last_finished.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let p = seen_progress.expect("the sync was seen running after listing its collections");
    assert_eq!((p.collections_total, p.current_collection.as_str()), (1, "big"), "{p:?}");
    assert!(!status.running && status.progress.is_none(), "{status:?}");
    assert_eq!(status.records.get("contact"), Some(&10_000));
    b.server.stop().await.unwrap();
}
