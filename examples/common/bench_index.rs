//! The generated index both benchmarks use (`bench_resolve`, `load_grpc`):
//! users with contacts stored nationally (`030 …`, as address books write them),
//! optionally mail and events, and the mix of calls placed against it. Included
//! with `#[path]`; deterministic, so every run builds the same index.

use chrono::{DateTime, Duration, Utc};
use contactbridge::connector::*;
use contactbridge::store::{Backend, CollectionScope, IndexBatch};
use contactbridge::sync::Indexer;
use contactbridge::user::{self, UserId, UserProfile};
use std::collections::HashMap;

pub const CONTACTS_PER_USER: usize = 100;

/// A tiny deterministic generator (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The national number of contact `c` of user `u`: Berlin landlines, unique per (u, c).
pub fn national(u: usize, c: usize) -> String {
    format!("30{:04}{:04}", u % 10_000, c % 10_000)
}

/// The called number (DID) of user `u`.
pub fn called(u: usize) -> String {
    format!("+4940{u:07}")
}

/// The next call of the mix: 80% from a known contact of a random user (written
/// another way than stored), 15% from an unknown number, 5% withheld.
/// Returns (called number, CLI).
pub fn next_call(rng: &mut Rng, users: usize) -> (String, String) {
    let u = rng.below(users);
    let roll = rng.below(100);
    let cli = if roll < 80 {
        format!("+49{}", national(u, rng.below(CONTACTS_PER_USER)))
    } else if roll < 95 {
        format!("+44 20 7946 {:04}", rng.below(10_000))
    } else {
        "anonymous".into()
    };
    (called(u), cli)
}

/// What to generate per user besides the contacts.
pub struct Shape<'a> {
    /// Every user's tenant (the API key of a benchmark must belong to it).
    pub tenant: &'a str,
    pub users: usize,
    pub mail_per_user: usize,
    pub events_per_user: usize,
}

/// Builds the index through the sync path (indexer + atomic batches).
pub fn build(store: &dyn Backend, shape: &Shape<'_>, now: DateTime<Utc>, rng: &mut Rng) -> anyhow::Result<()> {
    for u in 0..shape.users {
        let mut p = UserProfile::new(UserId::parse(&format!("user{u}")).map_err(anyhow::Error::msg)?, shape.tenant);
        p.called_numbers = vec![called(u)];
        p.region = Some("DE".into());
        user::put_profile(store, &p)?;
        let indexer = Indexer::for_profile(&p, &HashMap::new());
        let apply = |collection: &str, records: Vec<Record>| -> anyhow::Result<()> {
            for chunk in records.chunks(500) {
                store.apply(&IndexBatch {
                    scope: CollectionScope {
                        user: p.id.clone(),
                        account: "bench".into(),
                        collection: collection.into(),
                    },
                    upserts: chunk.iter().cloned().map(|r| indexer.index(r)).collect(),
                    deletions: vec![],
                    retained: vec![],
                    rejected: vec![],
                    checkpoint: Some(Checkpoint::new("bench")),
                    snapshot: None,
                    at: now,
                })?;
            }
            Ok(())
        };
        let email = |c: usize| format!("c{c}@company{}.example", c % 37);
        apply(
            "contacts",
            (0..CONTACTS_PER_USER)
                .map(|c| {
                    let n = national(u, c);
                    Record::Contact(Contact {
                        id: RecordId::new(format!("c{c}")),
                        display_name: format!("Contact {c} of user {u}"),
                        company: Some(format!("Company {}", c % 37)),
                        phones: vec![
                            PhoneNumber::new(format!("0{} {}", &n[..2], &n[2..]), PhoneKind::Work),
                            PhoneNumber::new(format!("0171 {:07}", u * 100 + c), PhoneKind::Mobile),
                        ],
                        emails: vec![email(c)],
                        categories: if c % 10 == 0 { vec!["VIP".into()] } else { vec![] },
                        ..Default::default()
                    })
                })
                .collect(),
        )?;
        apply(
            "inbox",
            (0..shape.mail_per_user)
                .map(|m| {
                    let c = rng.below(CONTACTS_PER_USER);
                    Record::Mail(MailMessage {
                        id: RecordId::new(format!("m{m}")),
                        direction: if m % 3 == 0 { MailDirection::Sent } else { MailDirection::Received },
                        from: Person { email: email(c), name: None },
                        to: vec![Person { email: format!("user{u}@bench.example"), name: None }],
                        cc: vec![],
                        subject: format!("Message {m}"),
                        date: now - Duration::minutes(rng.below(180 * 24 * 60) as i64),
                        preview: "Lorem ipsum dolor sit amet, consectetur adipiscing elit.".into(),
                        web_link: None,
                    })
                })
                .collect(),
        )?;
        apply(
            "calendar",
            (0..shape.events_per_user)
                .map(|e| {
                    let start = now - Duration::days(30) + Duration::minutes(rng.below(120 * 24 * 60) as i64);
                    Record::Event(CalendarEvent {
                        id: RecordId::new(format!("e{e}")),
                        subject: format!("Meeting {e}"),
                        busy: BusyStatus::Busy,
                        attendees: vec![email(rng.below(CONTACTS_PER_USER))],
                        occurrences: vec![Occurrence { start, end: start + Duration::minutes(45) }],
                        ..Default::default()
                    })
                })
                .collect(),
        )?;
    }
    store.flush()?;
    Ok(())
}
