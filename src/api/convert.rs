//! Conversions between the bridge's types and the protobuf messages.

use super::pb;
use crate::calls::{CallEvent, CallEventKind, CallRecord, CallerKind};
use crate::live::{Directive, DirectiveAction};
use crate::resolve::{Candidate, CodeSource, Decision, MatchQuality, Status, StatusReason};
use crate::store::{RecordRef, StoredContact};
use crate::user::{
    Attendant, ContextCriteria, ForwardTarget, HandlingCode, HandlingMethod, HandlingRule, HandlingTable, ManualStatus,
    Match, UserId, UserProfile,
};
use chrono::{DateTime, Utc};
use contactbridge_connector::{CalendarEvent, Document, MailMessage, Person};
use tonic::Status as RpcStatus;

/// INVALID_ARGUMENT naming `field` when `value` has more than `max` characters.
pub fn check_len(field: &str, value: &str, max: usize) -> Result<(), RpcStatus> {
    match value.chars().count() {
        n if n > max => {
            Err(RpcStatus::invalid_argument(format!("{field} has {n} characters; it may have at most {max}")))
        }
        _ => Ok(()),
    }
}

pub fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

fn opt_ts(t: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    t.map(ts)
}

/// A timestamp from a request; `None` when unset, INVALID_ARGUMENT when out of range.
pub fn from_ts(t: Option<&prost_types::Timestamp>, field: &str) -> Result<Option<DateTime<Utc>>, RpcStatus> {
    t.map(|t| {
        DateTime::from_timestamp(t.seconds, t.nanos.try_into().unwrap_or(u32::MAX))
            .ok_or_else(|| RpcStatus::invalid_argument(format!("{field} is not a valid time")))
    })
    .transpose()
}

pub fn status(s: Status) -> pb::Status {
    match s {
        Status::Available => pb::Status::Available,
        Status::WorkingElsewhere => pb::Status::WorkingElsewhere,
        Status::Tentative => pb::Status::Tentative,
        Status::Busy => pb::Status::Busy,
        Status::OutOfOffice => pb::Status::OutOfOffice,
        Status::DoNotDisturb => pb::Status::DoNotDisturb,
    }
}

/// A status from a request; `None` for STATUS_UNSPECIFIED.
pub fn from_status(v: i32, field: &str) -> Result<Option<Status>, RpcStatus> {
    Ok(
        match pb::Status::try_from(v)
            .map_err(|_| RpcStatus::invalid_argument(format!("{field}: unknown status {v}")))?
        {
            pb::Status::Unspecified => None,
            pb::Status::Available => Some(Status::Available),
            pb::Status::WorkingElsewhere => Some(Status::WorkingElsewhere),
            pb::Status::Tentative => Some(Status::Tentative),
            pb::Status::Busy => Some(Status::Busy),
            pb::Status::OutOfOffice => Some(Status::OutOfOffice),
            pb::Status::DoNotDisturb => Some(Status::DoNotDisturb),
        },
    )
}

pub fn method(m: &HandlingMethod) -> pb::HandlingMethod {
    use pb::HandlingMethodKind as K;
    let (kind, target) = match m {
        HandlingMethod::Forward { number } => (K::Forward, number.clone()),
        HandlingMethod::Ivr { ivr_id } => (K::Ivr, ivr_id.clone()),
        HandlingMethod::Notify => (K::Notify, String::new()),
        HandlingMethod::Voicemail => (K::Voicemail, String::new()),
        HandlingMethod::Attendant => (K::Attendant, String::new()),
        HandlingMethod::Reject => (K::Reject, String::new()),
    };
    pb::HandlingMethod { kind: kind as i32, target }
}

pub fn from_method(m: Option<&pb::HandlingMethod>, field: &str) -> Result<HandlingMethod, RpcStatus> {
    use pb::HandlingMethodKind as K;
    let m = m.ok_or_else(|| RpcStatus::invalid_argument(format!("{field} is required")))?;
    let kind = K::try_from(m.kind).unwrap_or(K::Unspecified);
    let target = || {
        let t = m.target.trim();
        if t.is_empty() {
            Err(RpcStatus::invalid_argument(format!("{field}.target is required for {}", kind.as_str_name())))
        } else {
            Ok(t.to_string())
        }
    };
    Ok(match kind {
        K::Forward => HandlingMethod::Forward { number: target()? },
        K::Ivr => HandlingMethod::Ivr { ivr_id: target()? },
        K::Notify => HandlingMethod::Notify,
        K::Voicemail => HandlingMethod::Voicemail,
        K::Attendant => HandlingMethod::Attendant,
        K::Reject => HandlingMethod::Reject,
        K::Unspecified => return Err(RpcStatus::invalid_argument(format!("{field}.kind is required"))),
    })
}

fn caller_kind(k: CallerKind) -> pb::CallerKind {
    match k {
        CallerKind::Number => pb::CallerKind::Number,
        CallerKind::Withheld => pb::CallerKind::Withheld,
        CallerKind::Anonymous => pb::CallerKind::Anonymous,
        CallerKind::Unavailable => pb::CallerKind::Unavailable,
    }
}

fn quality(q: MatchQuality) -> pb::MatchQuality {
    match q {
        MatchQuality::Exact => pb::MatchQuality::Exact,
        MatchQuality::ExtensionDropped => pb::MatchQuality::ExtensionDropped,
        MatchQuality::TrunkPrefix => pb::MatchQuality::TrunkPrefix,
        MatchQuality::Tail => pb::MatchQuality::Tail,
        MatchQuality::Internal => pb::MatchQuality::Internal,
        MatchQuality::OtherReading => pb::MatchQuality::OtherReading,
    }
}

/// A contact id for clients: the record ref's token, which never contains
/// anything but the account, collection and id the user's own source gave.
pub fn contact_id(r: &RecordRef) -> String {
    r.to_token()
}

pub fn from_contact_id(s: &str) -> Result<RecordRef, RpcStatus> {
    RecordRef::parse(s).ok_or_else(|| RpcStatus::invalid_argument("contact_id is not a contact id from this bridge"))
}

pub fn contact(s: &StoredContact) -> pb::Candidate {
    let c = &s.contact;
    pb::Candidate {
        contact_id: contact_id(&s.at),
        display_name: c.best_name(),
        company: c.company.clone().unwrap_or_default(),
        job_title: c.job_title.clone().unwrap_or_default(),
        emails: c.emails.clone(),
        quality: pb::MatchQuality::Unspecified as i32,
        preferred: false,
        account: crate::accounts::AccountSpec::public_id(&s.at.account).to_string(),
    }
}

fn candidate(c: &Candidate) -> pb::Candidate {
    pb::Candidate { quality: quality(c.quality) as i32, preferred: c.preferred, ..contact(&c.stored) }
}

fn code_source(s: &CodeSource) -> pb::CodeSource {
    use pb::CodeSourceKind as K;
    let (kind, account) = match s {
        CodeSource::LocalNumber => (K::LocalNumber, String::new()),
        CodeSource::LocalContact => (K::LocalContact, String::new()),
        CodeSource::Contact { account } => (K::Contact, crate::accounts::AccountSpec::public_id(account).to_string()),
        CodeSource::KnownContact => (K::KnownContact, String::new()),
        CodeSource::UnknownCaller => (K::UnknownCaller, String::new()),
        CodeSource::Withheld => (K::Withheld, String::new()),
    };
    pb::CodeSource { kind: kind as i32, account }
}

fn status_reason(r: &StatusReason) -> pb::StatusReason {
    use pb::StatusReasonKind as K;
    let mut out = pb::StatusReason::default();
    match r {
        StatusReason::Default => out.kind = K::Default as i32,
        StatusReason::Manual { until } => {
            out.kind = K::Manual as i32;
            out.until = opt_ts(*until);
        }
        StatusReason::OutOfOfficeReplies => out.kind = K::OutOfOfficeReplies as i32,
        StatusReason::Calendar { subject, start, end } => {
            out.kind = K::Calendar as i32;
            out.subject = subject.clone();
            out.start = Some(ts(*start));
            out.end = Some(ts(*end));
        }
    }
    out
}

fn forward_target(f: &ForwardTarget) -> pb::ForwardTarget {
    pb::ForwardTarget { label: f.label.clone(), number: f.number.clone() }
}

pub fn decision(d: &Decision, profile: &UserProfile) -> pb::ResolveCallResponse {
    pb::ResolveCallResponse {
        call_id: d.call_id.to_string(),
        user_id: d.user.to_string(),
        user_display_name: profile.display_name.clone(),
        caller: Some(pb::Caller {
            cli: d.caller.cli.clone(),
            kind: caller_kind(d.caller.kind) as i32,
            e164: d.caller.e164.clone().unwrap_or_default(),
        }),
        candidates: d.candidates.iter().map(candidate).collect(),
        handling_code: d.handling_code.to_string(),
        code_source: Some(code_source(&d.code_source)),
        status: status(d.status) as i32,
        status_reason: Some(status_reason(&d.status_reason)),
        method: Some(method(&d.method)),
        rule: d.rule.map_or(-1, |r| r as i32),
        target: d.target.clone().unwrap_or_default(),
        note: d.note.clone().unwrap_or_default(),
        forward_targets: profile.forward_targets.iter().map(forward_target).collect(),
        not_recorded: !d.recorded,
        index_rebuilding: d.index_rebuilding,
    }
}

fn call_event(e: &CallEvent) -> pb::CallEvent {
    use pb::CallEventKind as K;
    let (kind, target, action) = match &e.kind {
        CallEventKind::Ringing => (K::Ringing, String::new(), String::new()),
        CallEventKind::Answered => (K::Answered, String::new(), String::new()),
        CallEventKind::Forwarded { to } => (K::Forwarded, to.clone(), String::new()),
        CallEventKind::Missed => (K::Missed, String::new(), String::new()),
        CallEventKind::Ended => (K::Ended, String::new(), String::new()),
        CallEventKind::Directive { action, target } => {
            (K::Directive, target.clone().unwrap_or_default(), action.clone())
        }
        CallEventKind::Chat { text } => (K::Chat, text.clone(), String::new()),
    };
    pb::CallEvent { at: Some(ts(e.at)), kind: kind as i32, target, action, by: e.by.clone().unwrap_or_default() }
}

/// A reported event kind (RINGING … ENDED) from a request.
pub fn from_event_kind(kind: i32, target: &str) -> Result<CallEventKind, RpcStatus> {
    use pb::CallEventKind as K;
    Ok(match K::try_from(kind).unwrap_or(K::Unspecified) {
        K::Ringing => CallEventKind::Ringing,
        K::Answered => CallEventKind::Answered,
        K::Forwarded => CallEventKind::Forwarded { to: target.trim().to_string() },
        K::Missed => CallEventKind::Missed,
        K::Ended => CallEventKind::Ended,
        K::Directive | K::Chat | K::Unspecified => {
            return Err(RpcStatus::invalid_argument(
                "kind must be RINGING, ANSWERED, FORWARDED, MISSED or ENDED (directives go through SendDirective)",
            ))
        }
    })
}

pub fn call(c: &CallRecord) -> pb::CallRecord {
    pb::CallRecord {
        call_id: c.id.to_string(),
        user_id: c.user.to_string(),
        tsps_call_id: c.tsps_call_id.clone().unwrap_or_default(),
        at: Some(ts(c.at)),
        called_number: c.called.clone(),
        cli: c.cli.clone(),
        caller_kind: caller_kind(c.caller_kind) as i32,
        contact_id: c.contact.as_ref().map(contact_id).unwrap_or_default(),
        contact_name: c.contact_name.clone().unwrap_or_default(),
        handling_code: c.handling_code.to_string(),
        status: status(c.status) as i32,
        method: Some(method(&c.method)),
        events: c.events.iter().map(call_event).collect(),
    }
}

/// The most bytes of call records one response holds (clients accept 4 MB by default).
pub const MAX_CALLS_BYTES: usize = 3 * 1024 * 1024;

/// The calls in order, as many as fit in [`MAX_CALLS_BYTES`] encoded.
pub fn calls_within_budget(calls: &[CallRecord]) -> Vec<pb::CallRecord> {
    use prost::Message as _;
    let mut used = 0;
    calls
        .iter()
        .map(call)
        .take_while(|c| {
            used += c.encoded_len() + 4;
            used <= MAX_CALLS_BYTES
        })
        .collect()
}

pub fn directive_action(a: &DirectiveAction) -> pb::DirectiveAction {
    match a {
        DirectiveAction::Forward { .. } => pb::DirectiveAction::Forward,
        DirectiveAction::Voicemail => pb::DirectiveAction::Voicemail,
        DirectiveAction::Accept => pb::DirectiveAction::Accept,
        DirectiveAction::Reject => pb::DirectiveAction::Reject,
        DirectiveAction::Dial { .. } => pb::DirectiveAction::Dial,
    }
}

pub fn from_directive_action(action: i32, target: &str) -> Result<DirectiveAction, RpcStatus> {
    use pb::DirectiveAction as A;
    Ok(match A::try_from(action).unwrap_or(A::Unspecified) {
        A::Forward => {
            let to = target.trim();
            if to.is_empty() {
                return Err(RpcStatus::invalid_argument("target (the number to forward to) is required for FORWARD"));
            }
            DirectiveAction::Forward { to: to.to_string() }
        }
        A::Voicemail => DirectiveAction::Voicemail,
        A::Accept => DirectiveAction::Accept,
        A::Reject => DirectiveAction::Reject,
        A::Dial => DirectiveAction::Dial { to: target.trim().to_string() },
        A::Unspecified => return Err(RpcStatus::invalid_argument("action is required")),
    })
}

pub fn directive(d: &Directive) -> pb::Directive {
    pb::Directive {
        call_id: d.call_id.to_string(),
        tsps_call_id: d.tsps_call_id.clone().unwrap_or_default(),
        user_id: d.user.to_string(),
        action: directive_action(&d.action) as i32,
        target: d.action.target().unwrap_or_default().to_string(),
        by: d.by.clone().unwrap_or_default(),
        at: Some(ts(d.at)),
    }
}

fn person(p: &Person) -> pb::Person {
    pb::Person { email: p.email.clone(), name: p.name.clone().unwrap_or_default() }
}

pub fn mail(m: &MailMessage) -> pb::MailMessage {
    pb::MailMessage {
        id: m.id.to_string(),
        from: Some(person(&m.from)),
        to: m.to.iter().map(person).collect(),
        cc: m.cc.iter().map(person).collect(),
        subject: m.subject.clone(),
        date: Some(ts(m.date)),
        preview: m.preview.clone(),
        web_link: m.web_link.clone().unwrap_or_default(),
    }
}

pub fn event(e: &CalendarEvent) -> pb::CalendarEvent {
    pb::CalendarEvent {
        id: e.id.to_string(),
        subject: e.subject.clone(),
        location: e.location.clone().unwrap_or_default(),
        all_day: e.all_day,
        organizer: e.organizer.clone().unwrap_or_default(),
        attendees: e.attendees.clone(),
        occurrences: e
            .occurrences
            .iter()
            .map(|o| pb::Occurrence { start: Some(ts(o.start)), end: Some(ts(o.end)) })
            .collect(),
        web_link: e.web_link.clone().unwrap_or_default(),
    }
}

pub fn document(d: &Document) -> pb::Document {
    pb::Document {
        id: d.id.to_string(),
        name: d.name.clone(),
        web_link: d.web_link.clone().unwrap_or_default(),
        modified: Some(ts(d.modified)),
        people: d.people.iter().map(person).collect(),
    }
}

pub fn criteria(c: &ContextCriteria) -> pb::ContextCriteria {
    pb::ContextCriteria {
        days_back: c.days_back,
        days_ahead: c.days_ahead,
        max_mail: c.max_mail,
        max_events: c.max_events,
        max_documents: c.max_documents,
        max_calls: c.max_calls,
    }
}

/// The user's criteria with the request's non-zero fields over them.
pub fn merge_criteria(base: &ContextCriteria, over: Option<&pb::ContextCriteria>) -> ContextCriteria {
    let Some(o) = over else { return base.clone() };
    let pick = |v: u32, d: u32| if v == 0 { d } else { v };
    ContextCriteria {
        days_back: pick(o.days_back, base.days_back),
        days_ahead: pick(o.days_ahead, base.days_ahead),
        max_mail: pick(o.max_mail, base.max_mail),
        max_events: pick(o.max_events, base.max_events),
        max_documents: pick(o.max_documents, base.max_documents),
        max_calls: pick(o.max_calls, base.max_calls),
    }
}

fn table(t: &HandlingTable) -> pb::HandlingTable {
    pb::HandlingTable {
        rules: t
            .rules
            .iter()
            .map(|r| pb::HandlingRule {
                code: match &r.code {
                    Match::Is(c) => c.to_string(),
                    Match::Any(_) => "*".into(),
                },
                status: match &r.status {
                    Match::Is(s) => status(*s) as i32,
                    Match::Any(_) => pb::Status::Unspecified as i32,
                },
                method: Some(method(&r.method)),
            })
            .collect(),
        fallback: Some(method(&t.fallback)),
    }
}

pub fn handling_table(t: &HandlingTable) -> pb::HandlingTable {
    table(t)
}

/// A handling code or `*`.
pub fn from_code_match(code: &str) -> Result<Match<HandlingCode>, RpcStatus> {
    let code = code.trim();
    if code == "*" {
        return Ok(Match::ANY);
    }
    HandlingCode::parse(code).map(Match::Is).map_err(RpcStatus::invalid_argument)
}

pub fn from_status_match(v: i32, field: &str) -> Result<Match<Status>, RpcStatus> {
    Ok(from_status(v, field)?.map_or(Match::ANY, Match::Is))
}

fn from_table(t: &pb::HandlingTable) -> Result<HandlingTable, RpcStatus> {
    let rules = t
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Ok(HandlingRule {
                code: from_code_match(&r.code)
                    .map_err(|e| RpcStatus::invalid_argument(format!("handling.rules[{i}].code: {}", e.message())))?,
                status: from_status_match(r.status, &format!("handling.rules[{i}].status"))?,
                method: from_method(r.method.as_ref(), &format!("handling.rules[{i}].method"))?,
            })
        })
        .collect::<Result<Vec<_>, RpcStatus>>()?;
    Ok(HandlingTable { rules, fallback: from_method(t.fallback.as_ref(), "handling.fallback")? })
}

pub fn profile(p: &UserProfile) -> pb::UserProfile {
    pb::UserProfile {
        id: p.id.to_string(),
        tenant: p.tenant.clone(),
        display_name: p.display_name.clone(),
        called_numbers: p.called_numbers.clone(),
        region: p.region.clone().unwrap_or_default(),
        time_zone: p.time_zone.clone(),
        attendant: p.attendant.as_ref().map(|a| pb::Attendant {
            number: a.number.clone(),
            user_id: a.user.as_ref().map(UserId::to_string).unwrap_or_default(),
        }),
        forward_targets: p.forward_targets.iter().map(forward_target).collect(),
        handling: Some(table(&p.handling)),
        context: Some(criteria(&p.context)),
        manual_status: p
            .manual_status
            .as_ref()
            .map(|m| pb::ManualStatus { status: status(m.status) as i32, until: opt_ts(m.until) }),
    }
}

pub fn user_id(s: &str) -> Result<UserId, RpcStatus> {
    UserId::parse(s).map_err(|e| RpcStatus::invalid_argument(format!("user_id: {e}")))
}

pub fn from_profile(p: &pb::UserProfile) -> Result<UserProfile, RpcStatus> {
    let mut out = UserProfile::new(user_id(&p.id)?, p.tenant.trim());
    out.display_name = p.display_name.clone();
    out.called_numbers = p.called_numbers.iter().map(|n| n.trim().to_string()).collect();
    out.region = Some(p.region.trim().to_string()).filter(|r| !r.is_empty());
    if !p.time_zone.trim().is_empty() {
        out.time_zone = p.time_zone.trim().to_string();
    }
    out.attendant = match &p.attendant {
        Some(a) if !a.number.trim().is_empty() => Some(Attendant {
            number: a.number.trim().to_string(),
            user: if a.user_id.trim().is_empty() { None } else { Some(user_id(&a.user_id)?) },
        }),
        _ => None,
    };
    out.forward_targets =
        p.forward_targets.iter().map(|f| ForwardTarget { label: f.label.clone(), number: f.number.clone() }).collect();
    if let Some(t) = &p.handling {
        out.handling = from_table(t)?;
    }
    if let Some(c) = &p.context {
        out.context = merge_criteria(&ContextCriteria::default(), Some(c));
    }
    if let Some(m) = &p.manual_status {
        if let Some(status) = from_status(m.status, "manual_status.status")? {
            out.manual_status = Some(ManualStatus { status, until: from_ts(m.until.as_ref(), "manual_status.until")? });
        }
    }
    Ok(out)
}
