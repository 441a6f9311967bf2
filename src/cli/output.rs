//! Human-readable rendering of decisions and context for the terminal.

use contactbridge::resolve::{CallerContext, CodeSource, Decision, StatusReason};
use contactbridge::user::{HandlingMethod, UserProfile};
use std::fmt::Write;

fn local(t: chrono::DateTime<chrono::Utc>, profile: &UserProfile) -> String {
    match profile.time_zone.parse::<chrono_tz::Tz>() {
        Ok(tz) => t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
        Err(_) => t.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

pub fn decision(d: &Decision, profile: &UserProfile) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "call     {} for {} ({}) at {} {}",
        d.call_id,
        d.user,
        profile.display_name,
        local(d.at, profile),
        profile.time_zone
    );
    if !d.recorded {
        let _ =
            writeln!(s, "warning  the call record could not be written (see the log): this call is not in the history");
    }
    let number = d.caller.e164.as_deref().unwrap_or("(no number)");
    let _ = writeln!(s, "caller   {number}  [{:?}, CLI {:?}]", d.caller.kind, d.caller.cli);
    if d.candidates.is_empty() {
        let _ = writeln!(s, "contact  none matches");
    }
    for (i, c) in d.candidates.iter().enumerate() {
        let contact = &c.stored.contact;
        let company = contact.company.as_deref().map(|c| format!(", {c}")).unwrap_or_default();
        let preferred = if c.preferred { ", picked last time" } else { "" };
        let label = if i == 0 { "contact " } else { "         " };
        let _ = writeln!(
            s,
            "{label} {}{company}  [{:?} match on {}{preferred}]",
            contact.best_name(),
            c.quality,
            c.matched_key
        );
    }
    let source = match &d.code_source {
        CodeSource::LocalNumber => "assigned by the user to this number".to_string(),
        CodeSource::LocalContact => "assigned by the user to this contact".to_string(),
        CodeSource::Contact { account } => format!("from the contact in account {account}"),
        CodeSource::KnownContact => "known contact without a code".to_string(),
        CodeSource::UnknownCaller => "no contact matches".to_string(),
        CodeSource::Withheld => "the caller withheld the number".to_string(),
    };
    let _ = writeln!(s, "code     {}  ({source})", d.handling_code);
    let why = match &d.status_reason {
        StatusReason::Default => "nothing applies".to_string(),
        StatusReason::Manual { until: Some(u) } => format!("set by hand until {}", local(*u, profile)),
        StatusReason::Manual { until: None } => "set by hand".to_string(),
        StatusReason::OutOfOfficeReplies => "automatic replies are on".to_string(),
        StatusReason::Calendar { subject, start, end } => {
            format!("in \"{subject}\" {}–{}", local(*start, profile), local(*end, profile))
        }
    };
    let _ = writeln!(s, "status   {}  ({why})", d.status);
    let method = match &d.method {
        HandlingMethod::Forward { number } => format!("forward to {number}"),
        HandlingMethod::Ivr { ivr_id } => format!("IVR {ivr_id}"),
        HandlingMethod::Notify => {
            let offers: Vec<String> =
                profile.forward_targets.iter().map(|t| format!("{} {}", t.label, t.number)).collect();
            format!(
                "notify the user's computer (forward buttons: {})",
                if offers.is_empty() { "none".into() } else { offers.join(", ") }
            )
        }
        HandlingMethod::Voicemail => "voicemail".to_string(),
        HandlingMethod::Attendant => format!("attendant {}", d.target.as_deref().unwrap_or("")),
        HandlingMethod::Reject => "reject".to_string(),
    };
    let rule = d.rule.map(|r| format!("handling rule #{}", r + 1)).unwrap_or_else(|| "fallback".into());
    let _ = writeln!(s, "method   {method}  ({rule})");
    if let Some(n) = &d.note {
        let _ = writeln!(s, "note     {n}");
    }
    if d.index_rebuilding {
        let _ = writeln!(s, "index    being rebuilt after damage: contacts may be missing until every account synced");
    }
    s
}

pub fn context(c: &CallerContext, profile: &UserProfile, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut s = String::new();
    for m in &c.mail_received {
        let _ = writeln!(s, "mail in  {}  {} — {}", local(m.date, profile), m.subject, m.preview);
    }
    for m in &c.mail_sent {
        let _ = writeln!(s, "mail out {}  {} — {}", local(m.date, profile), m.subject, m.preview);
    }
    for e in &c.events {
        let last =
            e.occurrences.iter().rev().find(|o| o.start <= now).map(|o| format!("last {}", local(o.start, profile)));
        let next = e.occurrences.iter().find(|o| o.start > now).map(|o| format!("next {}", local(o.start, profile)));
        let when: Vec<String> = last.into_iter().chain(next).collect();
        let _ = writeln!(s, "meeting  {}  {}", when.join(", "), e.subject);
    }
    for d in &c.documents {
        let _ = writeln!(s, "document {}  {}", local(d.modified, profile), d.name);
    }
    for call in &c.calls {
        let _ = writeln!(s, "call     {}  {} → {}", local(call.at, profile), call.handling_code, call.method.name());
    }
    s
}
