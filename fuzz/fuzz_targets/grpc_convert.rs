//! gRPC request conversion: the first byte picks a request message, the rest is
//! decoded as that message (prost), and the request goes through the same
//! conversions its handler runs before it touches the store or the live-call hub
//! (src/api/convert.rs and the parsers the handlers call). Properties checked on
//! the way: a stored profile reads back as itself, a contact id token reads back
//! as the same record ref.
#![no_main]

use contactbridge::accounts::{spec_from_registration, Registration};
use contactbridge::api::{convert, pb};
use contactbridge::phone::{called_number_key, history_key_if_number, parse_cli, Region};
use contactbridge::store::RecordRef;
use contactbridge::user::{HandlingCode, UserId, UserProfile};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn region_of(profile_region: &str) -> Option<Region> {
    Region::parse(profile_region).ok()
}

fn contact_id(id: &str) {
    if let Ok(at) = convert::from_contact_id(id) {
        let token = convert::contact_id(&at);
        assert_eq!(RecordRef::parse(&token).as_ref(), Some(&at), "contact id {id:?} → {token:?} does not read back");
    }
}

fn put_user(r: pb::PutUserRequest) {
    let Some(mut given) = r.profile else { return };
    if given.tenant.trim().is_empty() {
        given.tenant = "tenant-a".into();
    }
    let Ok(profile) = convert::from_profile(&given) else { return };
    if profile.validate().is_err() {
        return;
    }
    for n in &profile.called_numbers {
        let _ = called_number_key(n);
    }
    // GetUser answers with convert::profile; an admin who puts that back must not change the user.
    let shown = convert::profile(&profile);
    let again = convert::from_profile(&shown).expect("a stored profile converts back");
    assert_eq!(again, profile, "profile does not survive PutUser → GetUser → PutUser");
}

fn set_handling_method(r: pb::SetHandlingMethodRequest) {
    let _ = convert::user_id(&r.user_id);
    let (Ok(code), Ok(status), Ok(method)) = (
        convert::from_code_match(&r.code),
        convert::from_status_match(r.status, "status"),
        convert::from_method(r.method.as_ref(), "method"),
    ) else {
        return;
    };
    let mut profile = UserProfile::new(UserId::parse("fuzz").unwrap(), "tenant-a");
    profile.handling.set(code, status, method);
    let _ = convert::handling_table(&profile.handling);
}

fn assign_handling_code(r: pb::AssignHandlingCodeRequest, region: Option<&Region>) {
    use pb::assign_handling_code_request::Target;
    let _ = convert::user_id(&r.user_id);
    match r.target {
        Some(Target::ContactId(id)) => contact_id(&id),
        Some(Target::Number(n)) => {
            let _ = history_key_if_number(&n, region);
        }
        None => {}
    }
    if !r.code.trim().is_empty() {
        let _ = HandlingCode::parse(&r.code);
    }
}

fn set_manual_status(r: pb::SetManualStatusRequest) {
    let _ = convert::user_id(&r.user_id);
    let _ = convert::from_status(r.status, "status");
    let _ = convert::from_ts(r.until.as_ref(), "until");
}

fn list_calls(r: pb::ListCallsRequest) {
    let _ = convert::user_id(&r.user_id);
    let _ = convert::from_ts(r.from.as_ref(), "from");
    let _ = convert::from_ts(r.to.as_ref(), "to");
}

fn resolve_call(r: pb::ResolveCallRequest, region: Option<&Region>) {
    let _ = convert::from_ts(r.at.as_ref(), "at");
    let _ = called_number_key(&r.called_number);
    if let Ok(contactbridge::phone::Cli::Number(n)) = parse_cli(&r.cli, region) {
        let _ = n.probes();
    }
}

fn get_caller_context(r: pb::GetCallerContextRequest, region: Option<&Region>) {
    let _ = convert::user_id(&r.user_id);
    let _ = convert::from_ts(r.now.as_ref(), "now");
    if !r.contact_id.is_empty() {
        contact_id(&r.contact_id);
    }
    if !r.cli.is_empty() {
        let _ = history_key_if_number(&r.cli, region);
    }
    let base = UserProfile::new(UserId::parse("fuzz").unwrap(), "tenant-a").context;
    let _ = convert::merge_criteria(&base, r.criteria.as_ref());
}

fn send_directive(r: pb::SendDirectiveRequest) {
    let _ = convert::from_directive_action(r.action, &r.target);
}

fn report_call_event(r: pb::ReportCallEventRequest) {
    let _ = convert::from_event_kind(r.kind, &r.target);
    let _ = convert::from_ts(r.at.as_ref(), "at");
}

fn register_account(r: pb::RegisterAccountRequest) {
    let Some(a) = r.account else { return };
    let kind = match pb::AccountKind::try_from(a.kind).unwrap_or(pb::AccountKind::Unspecified) {
        pb::AccountKind::Graph => "graph",
        pb::AccountKind::Carddav => "carddav",
        pb::AccountKind::Caldav => "caldav",
        pb::AccountKind::Files => "files",
        pb::AccountKind::Unspecified => return,
    };
    let _ = spec_from_registration(&Registration {
        id: &a.id,
        user: &a.user_id,
        kind,
        location: &a.location,
        settings_json: &a.settings_json,
        schedule: &a.schedule,
        time_zone: &a.schedule_time_zone,
        secret: &r.secret,
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else { return };
    // The profile's region (the user's numbering plan) for the number-taking requests.
    let region = region_of(["DE", "US", "GB", "CH", ""][(pick >> 4) as usize % 5]);
    let region = region.as_ref();
    match pick % 10 {
        0 => pb::PutUserRequest::decode(bytes).map(put_user),
        1 => pb::SetHandlingMethodRequest::decode(bytes).map(set_handling_method),
        2 => pb::AssignHandlingCodeRequest::decode(bytes).map(|r| assign_handling_code(r, region)),
        3 => pb::SetManualStatusRequest::decode(bytes).map(set_manual_status),
        4 => pb::ListCallsRequest::decode(bytes).map(list_calls),
        5 => pb::ResolveCallRequest::decode(bytes).map(|r| resolve_call(r, region)),
        6 => pb::GetCallerContextRequest::decode(bytes).map(|r| get_caller_context(r, region)),
        7 => pb::SendDirectiveRequest::decode(bytes).map(send_directive),
        8 => pb::ReportCallEventRequest::decode(bytes).map(report_call_event),
        _ => pb::RegisterAccountRequest::decode(bytes).map(register_account),
    }
    .unwrap_or(());
});
