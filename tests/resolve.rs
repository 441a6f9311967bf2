//! The resolver end to end through the public API: profiles and records go in
//! the way the sync engine writes them; decisions come out.

use chrono::{DateTime, Duration, TimeZone, Utc};
use contactbridge::connector::*;
use contactbridge::resolve::{
    CallQuery, CodeSource, ContextQuery, ContextSubject, MatchQuality, ResolveError, Resolver, Status, StatusReason,
};
use contactbridge::store::{
    AssignTarget, CallStore, CollectionScope, IndexBatch, IndexStore, SledStore, Store, UserStore,
};
use contactbridge::sync::Indexer;
use contactbridge::user::{
    self, Attendant, ForwardTarget, HandlingCode, HandlingMethod, ManualStatus, Match, UserId, UserProfile,
};
use std::collections::HashMap;
use std::sync::Arc;

const DANA_DID: &str = "+49 30 901820";
const OTTO_DID: &str = "+49 89 555000";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap()
}

fn contact(id: &str, name: &str, phones: &[&str], categories: &[&str], emails: &[&str]) -> Record {
    Record::Contact(Contact {
        id: RecordId::new(id),
        uid: id.into(),
        display_name: name.into(),
        phones: phones.iter().map(|p| PhoneNumber::new(*p, PhoneKind::Work)).collect(),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        emails: emails.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    })
}

fn event(id: &str, subject: &str, busy: BusyStatus, start: DateTime<Utc>, hours: i64, attendees: &[&str]) -> Record {
    Record::Event(CalendarEvent {
        id: RecordId::new(id),
        subject: subject.into(),
        busy,
        attendees: attendees.iter().map(|a| a.to_string()).collect(),
        occurrences: vec![Occurrence { start, end: start + Duration::hours(hours) }],
        ..Default::default()
    })
}

struct World {
    store: Arc<SledStore>,
    resolver: Resolver,
}

impl World {
    fn new() -> Self {
        let store = Arc::new(SledStore::temporary().unwrap());
        let mut dana = UserProfile::new(UserId::parse("acme.dana").unwrap(), "acme");
        dana.called_numbers = vec![DANA_DID.into()];
        dana.region = Some("DE".into());
        dana.time_zone = "Europe/Berlin".into();
        dana.forward_targets = vec![ForwardTarget { label: "Mobile".into(), number: "+49 170 1234567".into() }];
        user::put_profile(store.as_ref(), &dana).unwrap();
        let mut otto = UserProfile::new(UserId::parse("globex.otto").unwrap(), "globex");
        otto.called_numbers = vec![OTTO_DID.into()];
        otto.region = Some("DE".into());
        user::put_profile(store.as_ref(), &otto).unwrap();
        let resolver = Resolver::new(store.clone() as Arc<dyn Store>);
        Self { store, resolver }
    }

    fn profile(&self, user: &str) -> UserProfile {
        self.store.profile(&UserId::parse(user).unwrap()).unwrap().unwrap()
    }

    fn update(&self, user: &str, f: impl FnOnce(&mut UserProfile)) {
        let mut p = self.profile(user);
        f(&mut p);
        user::put_profile(self.store.as_ref(), &p).unwrap();
    }

    fn sync(&self, user: &str, collection: &str, records: Vec<Record>) {
        let profile = self.profile(user);
        let indexer = Indexer::for_profile(&profile, &HashMap::new());
        self.store
            .apply(&IndexBatch {
                scope: CollectionScope {
                    user: profile.id.clone(),
                    account: "acc".into(),
                    collection: collection.into(),
                },
                upserts: records.into_iter().map(|r| indexer.index(r)).collect(),
                deletions: vec![],
                retained: vec![],
                rejected: vec![],
                checkpoint: None,
                snapshot: None,
                at: now(),
            })
            .unwrap();
    }

    fn call(&self, called: &str, cli: &str) -> Result<contactbridge::resolve::Decision, ResolveError> {
        self.resolver.resolve(&CallQuery {
            called: called.into(),
            cli: cli.into(),
            tsps_call_id: Some("tsps-1".into()),
            at: now(),
        })
    }

    fn dana(&self, cli: &str) -> contactbridge::resolve::Decision {
        self.call(DANA_DID, cli).unwrap()
    }
}

#[test]
fn a_cli_written_differently_from_the_stored_number_finds_the_contact() {
    let w = World::new();
    w.sync("acme.dana", "ab", vec![contact("erika", "Erika Mustermann", &["(030) 123 45 67"], &["VIP"], &[])]);
    for cli in ["+49301234567", "0049301234567", "030 1234567", "sip:+49301234567@pbx.example;user=phone"] {
        let d = w.dana(cli);
        assert_eq!(d.candidates.len(), 1, "{cli}");
        assert_eq!(d.candidates[0].stored.contact.display_name, "Erika Mustermann");
        assert_eq!(d.candidates[0].quality, MatchQuality::Exact, "{cli}");
        assert_eq!(d.handling_code.as_str(), "vip", "{cli}: category VIP maps to the vip code");
        assert_eq!(d.code_source, CodeSource::Contact { account: "acc".into() });
        assert_eq!(d.method, HandlingMethod::Notify);
    }
}

#[test]
fn unknown_and_withheld_callers_get_their_own_codes() {
    let w = World::new();
    let d = w.dana("+44 20 7946 0000");
    assert!(d.candidates.is_empty());
    assert_eq!((d.handling_code.as_str(), d.code_source.clone()), ("unknown", CodeSource::UnknownCaller));
    assert_eq!(d.caller.e164.as_deref(), Some("+442079460000"), "never 'Unknown' when there is a number to show");
    assert_eq!(d.method, HandlingMethod::Notify, "unknown + available → notify by default");
    for cli in ["anonymous", "", "withheld", "sip:anonymous@anonymous.invalid"] {
        let d = w.dana(cli);
        assert_eq!(d.handling_code.as_str(), "withheld", "{cli:?}");
        assert_eq!(d.code_source, CodeSource::Withheld);
        assert_eq!(d.method, HandlingMethod::Voicemail);
        assert!(d.caller.key.is_none());
    }
}

#[test]
fn bad_numbers_are_errors_that_say_what_is_wrong() {
    let w = World::new();
    let e = w.call(DANA_DID, "+49 30 12q4567").unwrap_err();
    assert!(matches!(e, ResolveError::InvalidCli { .. }), "{e:?}");
    assert!(e.to_string().contains("letter 'q' at position 10"), "{e}");
    let e = w.call("+49 40 999999", "+49301234567").unwrap_err();
    assert!(matches!(e, ResolveError::UnknownCalledNumber(_)), "{e:?}");
    let e = w.call("not a number", "+49301234567").unwrap_err();
    assert!(matches!(e, ResolveError::InvalidCalledNumber { .. }), "{e:?}");
}

#[test]
fn several_contacts_on_one_number_are_all_returned_and_the_last_choice_ranks_first() {
    let w = World::new();
    w.sync(
        "acme.dana",
        "ab",
        vec![
            contact("hans", "Hans Schmidt", &["+49 (30) 555 0199"], &[], &[]),
            contact("greta", "Greta Schmidt", &["0049 30 5550199"], &[], &[]),
        ],
    );
    let d = w.dana("+49305550199");
    let names: Vec<String> = d.candidates.iter().map(|c| c.stored.contact.display_name.clone()).collect();
    assert_eq!(names, ["Greta Schmidt", "Hans Schmidt"], "same quality: by name");
    let hans = d.candidates[1].stored.at.clone();
    w.store.set_last_choice(&d.user, d.caller.key.as_ref().unwrap(), &hans).unwrap();
    let d = w.dana("+49305550199");
    assert_eq!(d.candidates[0].stored.contact.display_name, "Hans Schmidt");
    assert!(d.candidates[0].preferred);
    assert_eq!(d.candidates.len(), 2);
}

#[test]
fn a_direct_dial_into_a_company_range_matches_its_main_number_below_exact_matches() {
    let w = World::new();
    w.sync("acme.dana", "ab", vec![contact("acme", "ACME Reception", &["+49 30 9876-0"], &[], &[])]);
    let d = w.dana("+49 30 9876 123");
    assert_eq!(d.candidates.len(), 1);
    assert_eq!(d.candidates[0].quality, MatchQuality::TrunkPrefix);
    assert_eq!(d.handling_code.as_str(), "default");
}

#[test]
fn each_handling_method_comes_out_of_the_table_with_its_target() {
    let w = World::new();
    w.sync("acme.dana", "ab", vec![contact("c", "Carl", &["+49 30 1111111"], &["Family"], &[])]);
    let family = || Match::Is(HandlingCode::parse("family").unwrap());
    let cases = [
        (HandlingMethod::Forward { number: "+49 170 1234567".into() }, Some("+49 170 1234567")),
        (HandlingMethod::Ivr { ivr_id: "menu-7".into() }, None),
        (HandlingMethod::Notify, None),
        (HandlingMethod::Voicemail, None),
        (HandlingMethod::Reject, None),
        (HandlingMethod::Attendant, Some("+49 30 901829")),
    ];
    w.update("acme.dana", |p| p.attendant = Some(Attendant { number: "+49 30 901829".into(), user: None }));
    for (method, target) in cases {
        w.update("acme.dana", |p| p.handling.set(family(), Match::ANY, method.clone()));
        // "family" is in the table now, so the category maps to it on the next sync.
        w.sync("acme.dana", "ab", vec![contact("c", "Carl", &["+49 30 1111111"], &["Family"], &[])]);
        let d = w.dana("+49301111111");
        assert_eq!(d.handling_code.as_str(), "family");
        assert_eq!(d.method, method);
        assert_eq!(d.target.as_deref(), target, "{method:?}");
    }
    // Attendant without an attendant falls back to voicemail and says so.
    w.update("acme.dana", |p| p.attendant = None);
    let d = w.dana("+49301111111");
    assert_eq!(d.method, HandlingMethod::Voicemail);
    assert!(d.note.unwrap().contains("no attendant"));
}

#[test]
fn each_status_source_changes_the_method() {
    let w = World::new();
    w.sync("acme.dana", "ab", vec![contact("c", "Carl", &["+49 30 1111111"], &[], &[])]);
    assert_eq!(
        (w.dana("+49301111111").status, w.dana("+49301111111").method),
        (Status::Available, HandlingMethod::Notify)
    );

    w.sync(
        "acme.dana",
        "cal",
        vec![event("m", "Board meeting", BusyStatus::Busy, now() - Duration::minutes(30), 1, &[])],
    );
    let d = w.dana("+49301111111");
    assert_eq!((d.status, d.method.clone()), (Status::Busy, HandlingMethod::Voicemail));
    assert!(matches!(d.status_reason, StatusReason::Calendar { ref subject, .. } if subject == "Board meeting"));

    w.sync(
        "acme.dana",
        "settings",
        vec![Record::OutOfOffice(OutOfOffice { id: RecordId::new("oof"), enabled: true, scheduled: None })],
    );
    let d = w.dana("+49301111111");
    assert_eq!((d.status, d.status_reason.clone()), (Status::OutOfOffice, StatusReason::OutOfOfficeReplies));
    assert_eq!(d.method, HandlingMethod::Voicemail, "attendant without attendant → voicemail");

    w.update("acme.dana", |p| {
        p.manual_status = Some(ManualStatus { status: Status::DoNotDisturb, until: Some(now() + Duration::hours(1)) })
    });
    let d = w.dana("+49301111111");
    assert_eq!(d.status, Status::DoNotDisturb);
    assert!(matches!(d.status_reason, StatusReason::Manual { .. }));
    // VIPs still ring through a do-not-disturb with the default table.
    w.store
        .assign(&d.user, &AssignTarget::Number(d.caller.key.clone().unwrap()), Some(&HandlingCode::well_known("vip")))
        .unwrap();
    let d = w.dana("+49301111111");
    assert_eq!(
        (d.handling_code.as_str(), d.code_source.clone(), d.method.clone()),
        ("vip", CodeSource::LocalNumber, HandlingMethod::Notify)
    );
}

#[test]
fn a_local_assignment_overrides_the_contact_system() {
    let w = World::new();
    w.sync("acme.dana", "ab", vec![contact("spam", "Cold Calls Inc.", &["0800 1234567"], &["VIP"], &[])]);
    let d = w.dana("+498001234567");
    assert_eq!(d.handling_code.as_str(), "vip");
    let at = d.candidates[0].stored.at.clone();
    w.store.assign(&d.user, &AssignTarget::Contact(at), Some(&HandlingCode::well_known("blocked"))).unwrap();
    let d = w.dana("+498001234567");
    assert_eq!((d.handling_code.as_str(), d.code_source.clone()), ("blocked", CodeSource::LocalContact));
    assert_eq!(d.method, HandlingMethod::Voicemail);
}

#[test]
fn tenants_and_users_never_see_each_others_contacts() {
    let w = World::new();
    w.sync("acme.dana", "ab", vec![contact("erika", "Erika Mustermann", &["+49 30 1234567"], &["VIP"], &[])]);
    let d = w.call(OTTO_DID, "+49301234567").unwrap();
    assert_eq!(d.user.as_str(), "globex.otto");
    assert!(d.candidates.is_empty(), "otto's index does not have dana's contact");
    assert_eq!(d.handling_code.as_str(), "unknown");
    assert!(w.store.calls(&d.user, contactbridge::store::TimeWindow::all(), 10).unwrap().len() == 1);
}

#[test]
fn every_resolve_writes_a_call_record_and_the_context_shows_mail_events_documents_and_calls() {
    let w = World::new();
    let erika = "erika@acme.example";
    w.sync("acme.dana", "ab", vec![contact("erika", "Erika Mustermann", &["+49 30 1234567"], &[], &[erika])]);
    let mail = |id: &str, direction, days: i64| {
        Record::Mail(MailMessage {
            id: RecordId::new(id),
            direction,
            from: Person {
                email: if direction == MailDirection::Received { erika.into() } else { "dana@acme.example".into() },
                name: None,
            },
            to: vec![Person {
                email: if direction == MailDirection::Sent { erika.into() } else { "dana@acme.example".into() },
                name: None,
            }],
            cc: vec![],
            subject: id.into(),
            date: now() - Duration::days(days),
            preview: String::new(),
            web_link: None,
        })
    };
    w.sync(
        "acme.dana",
        "mail",
        vec![
            mail("in-1", MailDirection::Received, 1),
            mail("out-1", MailDirection::Sent, 2),
            mail("in-old", MailDirection::Received, 400),
        ],
    );
    w.sync(
        "acme.dana",
        "cal",
        vec![event("e1", "Purchasing sync", BusyStatus::Busy, now() - Duration::days(3), 1, &[erika])],
    );
    w.sync(
        "acme.dana",
        "drive",
        vec![Record::Document(Document {
            id: RecordId::new("doc"),
            name: "Framework agreement.docx".into(),
            web_link: None,
            modified: now() - Duration::days(10),
            people: vec![Person { email: String::new(), name: Some("Erika Mustermann".into()) }],
        })],
    );
    let first = w.dana("+49301234567");
    let second = w.dana("+49301234567");
    assert_ne!(first.call_id, second.call_id);
    let stored = w.store.call(&second.call_id).unwrap().unwrap();
    assert_eq!(stored.tsps_call_id.as_deref(), Some("tsps-1"));
    assert_eq!(stored.contact_name.as_deref(), Some("Erika Mustermann"));
    assert_eq!(stored.method, HandlingMethod::Notify);

    let profile = w.profile("acme.dana");
    let subject =
        ContextSubject { contact: Some(second.candidates[0].stored.clone()), caller_key: second.caller.key.clone() };
    let ctx = w
        .resolver
        .context(&profile.id, &subject, &ContextQuery { now: now(), criteria: profile.context.clone() })
        .unwrap();
    assert_eq!(
        ctx.mail_received.iter().map(|m| m.subject.as_str()).collect::<Vec<_>>(),
        ["in-1"],
        "old mail is outside the window"
    );
    assert_eq!(ctx.mail_sent.iter().map(|m| m.subject.as_str()).collect::<Vec<_>>(), ["out-1"]);
    assert_eq!(ctx.events.iter().map(|e| e.subject.as_str()).collect::<Vec<_>>(), ["Purchasing sync"]);
    assert_eq!(ctx.documents.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["Framework agreement.docx"]);
    assert_eq!(ctx.calls.len(), 2);

    let mut narrow = profile.context.clone();
    narrow.days_back = 2;
    narrow.max_mail = 1;
    let ctx = w.resolver.context(&profile.id, &subject, &ContextQuery { now: now(), criteria: narrow }).unwrap();
    assert_eq!(ctx.mail_received.len() + ctx.mail_sent.len(), 2, "one of each direction");
    assert!(ctx.events.is_empty() && ctx.documents.is_empty(), "outside the narrowed window");
}
