//! Numbers written the way people write them (issue 12 §2): another country's exit code or national
//! format in a user's address book gets a second reading, found with its own lower quality, ranked below
//! the number as the user's region reads it and never shadowing it. Through the real sled index, the
//! sync engine's indexer and the resolver.

use chrono::{DateTime, TimeZone, Utc};
use contactbridge::connector::*;
use contactbridge::phone::{keys_for_stored, Region, SecondReading};
use contactbridge::resolve::{CallQuery, Decision, MatchQuality, Resolver};
use contactbridge::store::{CollectionScope, IndexBatch, IndexStore, SledStore, Store, UserStore};
use contactbridge::sync::Indexer;
use contactbridge::user::{self, UserId, UserProfile};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use MatchQuality::*;

const REGIONS: [&str; 7] = ["US", "DE", "GB", "FR", "CH", "AT", "IT"];

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap()
}

fn did(region: &str) -> String {
    // One called number per user; the digits only tell the users apart.
    let n = REGIONS.iter().position(|r| *r == region).unwrap();
    format!("+49 30 90182{n}")
}

fn user_id(region: &str) -> UserId {
    UserId::parse(&format!("t{}.user", region.to_lowercase())).unwrap()
}

struct World {
    store: Arc<SledStore>,
    resolver: Resolver,
}

impl World {
    fn new() -> Self {
        let store = Arc::new(SledStore::temporary().unwrap());
        for r in REGIONS {
            let mut p = UserProfile::new(user_id(r), format!("t{}", r.to_lowercase()));
            p.called_numbers = vec![did(r)];
            p.region = Some(r.into());
            user::put_profile(store.as_ref(), &p).unwrap();
        }
        let resolver = Resolver::new(store.clone() as Arc<dyn Store>);
        Self { store, resolver }
    }

    /// Indexes one address book of contacts `(name, number)` for the user in `region`, the way a sync does.
    fn book(&self, region: &str, collection: &str, contacts: &[(&str, &str)]) {
        let profile = self.store.profile(&user_id(region)).unwrap().unwrap();
        let indexer = Indexer::for_profile(&profile, &HashMap::new());
        let upserts = contacts
            .iter()
            .map(|(name, number)| {
                indexer.index(Record::Contact(Contact {
                    id: RecordId::new(format!("{collection}/{name}")),
                    uid: name.to_string(),
                    display_name: name.to_string(),
                    phones: vec![PhoneNumber::new(*number, PhoneKind::Work)],
                    ..Default::default()
                }))
            })
            .collect();
        self.store
            .apply(&IndexBatch {
                scope: CollectionScope { user: profile.id, account: "acc".into(), collection: collection.into() },
                upserts,
                deletions: vec![],
                retained: vec![],
                rejected: vec![],
                checkpoint: None,
                snapshot: None,
                at: now(),
            })
            .unwrap();
    }

    fn call(&self, region: &str, cli: &str) -> Decision {
        self.resolver
            .resolve(&CallQuery { called: did(region), cli: cli.into(), tsps_call_id: None, at: now() })
            .unwrap_or_else(|e| panic!("{region} {cli}: {e}"))
    }

    /// The candidates as (name, quality), best first.
    fn ranked(&self, region: &str, cli: &str) -> Vec<(String, MatchQuality)> {
        self.call(region, cli).candidates.iter().map(|c| (c.stored.contact.display_name.clone(), c.quality)).collect()
    }
}

/// (user's region, number as stored in their address book, CLI the network sends, quality found; `None`: not found)
const TABLE: &[(&str, &str, &str, Option<MatchQuality>)] = &[
    // International dialling form with another country's exit code: the region's reading is impossible.
    ("US", "00-1-212-555-7777", "+1 212 555 7777", Some(OtherReading)),
    ("US", "00 49 30 123456", "+49 30 123456", Some(OtherReading)),
    ("DE", "011 44 20 7946 0958", "+44 20 7946 0958", Some(OtherReading)),
    ("GB", "011 49 30 123456", "+49 30 123456", Some(OtherReading)),
    ("CH", "011 33 1 42 68 53 00", "+33 1 42 68 53 00", Some(OtherReading)),
    ("AT", "0011 61 2 9374 4000", "+61 2 9374 4000", Some(OtherReading)),
    // The region's own exit code is the first reading, exact as before.
    ("US", "011 44 20 7946 0958", "+44 20 7946 0958", Some(Exact)),
    ("DE", "00 1 212 200 0003", "+1 212 200 0003", Some(Exact)),
    ("FR", "00 1 212 200 0005", "+1 212 200 0005", Some(Exact)),
    ("AT", "0043 1 58858 0", "+43 1 58858 0", Some(Exact)),
    // North American format in a book outside +1: both readings, neither exact.
    ("DE", "(212) 200-0003", "+1 212 200 0003", Some(OtherReading)),
    ("DE", "212.200.0005", "+1 212 200 0005", Some(OtherReading)),
    ("DE", "(212) 200-0003", "+49 212 2000003", Some(OtherReading)),
    ("GB", "(212) 200-0003", "+1 212 200 0003", Some(OtherReading)),
    ("FR", "212.200.0005", "+1 212 200 0005", Some(OtherReading)),
    ("CH", "1-212-200-0003", "+1 212 200 0003", Some(OtherReading)),
    ("AT", "(212) 200-0003", "+1 212 200 0003", Some(OtherReading)),
    // Written the user's own way: exact, no second reading.
    ("US", "(212) 200-0003", "+1 212 200 0003", Some(Exact)),
    ("DE", "0212 2000003", "+49 212 2000003", Some(Exact)),
    ("GB", "020 7946 0958", "+44 20 7946 0958", Some(Exact)),
    ("FR", "01 42 68 53 00", "+33 1 42 68 53 00", Some(Exact)),
    ("CH", "044 668 18 00", "+41 44 668 18 00", Some(Exact)),
    // Italy writes national numbers without a trunk prefix: a 3-3-4 mobile stays Italian and exact.
    ("IT", "347 123 4567", "+39 347 123 4567", Some(Exact)),
    ("IT", "347 123 4567", "+1 347 123 4567", None),
    // A second reading is one number, not a pattern: neighbours are not found.
    ("DE", "(212) 200-0003", "+1 212 200 0004", None),
    ("US", "00-1-212-555-7777", "+1 212 555 7778", None),
];

#[test]
fn a_table_of_foreign_formats_and_dialling_forms_from_several_regions() {
    for (region, stored, cli, want) in TABLE {
        // A store per case: an exact match in one case would shadow another case's reading.
        let w = World::new();
        w.book(region, "ab", &[("Contact", stored)]);
        let got: Vec<_> = w.call(region, cli).candidates.iter().map(|c| c.quality).collect();
        assert_eq!(got, want.iter().copied().collect::<Vec<_>>(), "{region} user, stored {stored:?}, call from {cli}");
    }
}

#[test]
fn the_real_solingen_number_wins_over_a_new_york_number_written_the_american_way() {
    let w = World::new();
    w.book("DE", "ab", &[("NY Office", "(212) 200-0003"), ("Solingen Shop", "0212 2000003")]);
    // The real Solingen number: the exact match only; the NY office is not even listed.
    assert_eq!(w.ranked("DE", "+49 212 2000003"), [("Solingen Shop".to_string(), Exact)]);
    assert_eq!(w.ranked("DE", "0212 2000003"), [("Solingen Shop".to_string(), Exact)]);
    // New York calling: the second reading finds the office.
    assert_eq!(w.ranked("DE", "+1 212 200 0003"), [("NY Office".to_string(), OtherReading)]);
    assert_eq!(w.call("DE", "+1 212 200 0003").caller_name().as_deref(), Some("NY Office"));
    // Without the Solingen contact, the Solingen number still finds the NY card, but never as exact.
    let w = World::new();
    w.book("DE", "ab", &[("NY Office", "(212) 200-0003")]);
    assert_eq!(w.ranked("DE", "+49 212 2000003"), [("NY Office".to_string(), OtherReading)]);
}

#[test]
fn second_readings_rank_below_company_ranges_and_above_tails() {
    let w = World::new();
    w.book(
        "US",
        "ab",
        &[
            ("Dialling form", "00 49 30 1234567"),
            ("Company", "+49 30 12345-0"),
            ("Tail only", "301234567"), // no country: a tail key
        ],
    );
    // A direct dial into the company's range (TrunkPrefix) beats the second reading.
    assert_eq!(w.ranked("US", "+49 30 1234567"), [("Company".to_string(), TrunkPrefix)]);
    let w = World::new();
    w.book("US", "ab", &[("Dialling form", "00 49 30 1234567"), ("Tail only", "30 1234567 0")]);
    assert_eq!(w.ranked("US", "+49 30 1234567"), [("Dialling form".to_string(), OtherReading)]);
    // The same number stored exactly elsewhere shadows the second reading.
    w.book("US", "cd", &[("Exact", "+49 30 1234567")]);
    assert_eq!(w.ranked("US", "+49 30 1234567"), [("Exact".to_string(), Exact)]);
}

#[test]
fn readings_are_reported_and_shown_as_the_number_they_read() {
    let de = Region::parse("DE").unwrap();
    let us = Region::parse("US").unwrap();
    let k = keys_for_stored("(212) 200-0003", Some(&de));
    assert_eq!(k.second_reading, Some(SecondReading::ForeignFormat));
    assert_eq!(k.international.as_deref(), Some("+1 212-200-0003"));
    assert!(k.keys.iter().all(|k| !k.as_str().starts_with("e:")), "{:?}", k.keys);
    let k = keys_for_stored("00-1-212-555-7777 x12", Some(&us));
    assert_eq!(k.second_reading, Some(SecondReading::DiallingForm));
    assert_eq!(k.e164.as_deref(), Some("+12125557777"));
    assert_eq!(keys_for_stored("+1 212 200 0003", Some(&de)).second_reading, None);
}

#[test]
fn hostile_numbers_stay_bounded() {
    let w = World::new();
    let huge = "0".repeat(100_000);
    let huge_nanp = format!("(212) 200-0003{}", " ".repeat(100_000));
    let many_groups = "1-".repeat(50_000);
    // Unicode decimal digits read like ASCII ones (full-width, Arabic-Indic).
    let full_width = "（２１２） ２００－０００３";
    let arabic = "٠٠ ١ ٢١٢ ٥٥٥ ٧٧٧٧";
    let started = Instant::now();
    w.book(
        "DE",
        "ab",
        &[("Huge", &huge), ("Spaces", &huge_nanp), ("Groups", &many_groups), ("Full width", full_width)],
    );
    w.book("US", "ab", &[("Arabic", arabic)]);
    for raw in [huge.as_str(), huge_nanp.as_str(), many_groups.as_str()] {
        let k = keys_for_stored(raw, Some(&Region::parse("DE").unwrap()));
        assert!(k.keys.len() <= 4 && k.keys.iter().all(|k| k.as_str().len() <= 40), "{:?}", k.keys);
    }
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(w.ranked("DE", "+1 212 200 0003")[0], ("Full width".to_string(), OtherReading));
    assert_eq!(w.ranked("US", "+1 212 555 7777"), [("Arabic".to_string(), OtherReading)]);
    // The index still answers for everything else.
    w.book("DE", "cd", &[("Plain", "030 123456")]);
    assert_eq!(w.ranked("DE", "+49 30 123456"), [("Plain".to_string(), Exact)]);
}
