//! The replica's lookup cache (`store::cache`) on a real PostgreSQL database
//! (the backend's test harness): two replicas are two stores with pools of
//! their own, replica B's lookups going through the cache and B's bus.
//!
//! - a profile, a called number or an assignment changed on replica A is
//!   seen by B's next lookup (the database's NOTIFY at commit);
//! - B's bus connection killed (`pg_terminate_backend`) and kept out while A
//!   changes a profile: that notification is lost for B, and B does not serve
//!   the old profile, neither while it is not listening nor after it listens again;
//! - a replica that never hears serves nothing older than the cache's TTL;
//! - two tenants' users with the same local part, numbers that differ in one
//!   digit, the same assignment target: never crossed, also across a number moving;
//! - the resolver on PostgreSQL makes fewer round trips per call through the
//!   cache and decides the same.

use contactbridge::resolve::{CallQuery, Resolver};
use contactbridge::store::cache::{self, LookupCache};
use contactbridge::store::postgres::bus::{PgBus, APPLICATION};
use contactbridge::store::postgres::testing::{shared_database, shared_server, wait_for, TestDatabase};
use contactbridge::store::{AssignTarget, EventBus, LocalBus, PgOptions, PgStore, Store, UserStore};
use contactbridge::user::{self, HandlingCode, UserId, UserProfile};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A long TTL: what these tests see comes from notifications, not expiry.
const LONG: Duration = Duration::from_secs(600);

fn replica(db: &TestDatabase) -> PgStore {
    PgStore::open(&PgOptions { pool_size: 2, ..PgOptions::new(db.url.clone()) }, Path::new("")).unwrap()
}

/// Replica B's lookup store: its own pool behind the cache, invalidated through its own bus.
fn cached_replica(db: &TestDatabase, ttl: Duration) -> (Arc<LookupCache>, Arc<PgBus>) {
    let bus = Arc::new(PgBus::connect(&db.url, "replica-b").unwrap());
    (Arc::new(LookupCache::new(Arc::new(replica(db)), bus.clone(), ttl)), bus)
}

fn profile(id: &str, tenant: &str, name: &str, numbers: &[&str]) -> UserProfile {
    let mut p = UserProfile::new(UserId::parse(id).unwrap(), tenant);
    p.display_name = name.into();
    p.called_numbers = numbers.iter().map(|n| n.to_string()).collect();
    p.region = Some("DE".into());
    p
}

fn name_of(s: &dyn UserStore, id: &str) -> Option<String> {
    s.profile(&UserId::parse(id).unwrap()).unwrap().map(|p| p.display_name)
}

fn owner(s: &dyn UserStore, number: &str) -> Option<String> {
    let key = contactbridge::phone::called_number_key(number).unwrap();
    s.user_by_called_number(&key).unwrap().map(|u| u.as_str().to_string())
}

fn admin(sql: &str) -> u64 {
    let mut c = postgres::Client::connect(&shared_server().url("postgres"), postgres::NoTls).unwrap();
    c.execute(sql, &[]).unwrap()
}

#[test]
fn a_change_on_one_replica_reaches_the_other_replicas_cache() {
    let db = shared_database();
    let a = replica(&db);
    user::put_profile(&a, &profile("acme.alice", "acme", "Alice", &["+49 30 1000"])).unwrap();
    let (b, _bus) = cached_replica(&db, LONG);
    assert_eq!(name_of(b.as_ref(), "acme.alice").as_deref(), Some("Alice"));
    assert_eq!(owner(b.as_ref(), "+49 30 1000").as_deref(), Some("acme.alice"));
    let target = AssignTarget::Number("e:+491701".into());
    assert_eq!(b.assignment(&UserId::parse("acme.alice").unwrap(), &target).unwrap(), None);
    let (hits, _) = b.hits_and_misses();
    assert_eq!(name_of(b.as_ref(), "acme.alice").as_deref(), Some("Alice"));
    assert_eq!(b.hits_and_misses().0, hits + 1, "the second read is the cache's");

    // A renames Alice and moves her number to Bob; assigns a code.
    user::put_profile(&a, &profile("acme.alice", "acme", "Alice Renamed", &[])).unwrap();
    user::put_profile(&a, &profile("acme.bob", "acme", "Bob", &["+49 30 1000"])).unwrap();
    let vip = HandlingCode::well_known(HandlingCode::VIP);
    a.assign(&UserId::parse("acme.alice").unwrap(), &target, Some(&vip)).unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || name_of(b.as_ref(), "acme.alice").as_deref() == Some("Alice Renamed")),
        "B still serves the old profile"
    );
    assert!(wait_for(Duration::from_secs(10), || owner(b.as_ref(), "+49 30 1000").as_deref() == Some("acme.bob")));
    assert!(wait_for(Duration::from_secs(10), || {
        b.assignment(&UserId::parse("acme.alice").unwrap(), &target).unwrap() == Some(vip.clone())
    }));
    // A user deleted on A is gone on B.
    a.delete_user(&UserId::parse("acme.bob").unwrap()).unwrap();
    assert!(wait_for(Duration::from_secs(10), || owner(b.as_ref(), "+49 30 1000").is_none()));
    assert_eq!(name_of(b.as_ref(), "acme.bob"), None);
}

#[test]
fn a_notification_lost_while_the_bus_is_down_is_not_served_stale_after_reconnect() {
    let db = shared_database();
    let a = replica(&db);
    user::put_profile(&a, &profile("acme.alice", "acme", "v1", &["+49 30 1000"])).unwrap();
    let (b, bus) = cached_replica(&db, LONG);
    assert_eq!(name_of(b.as_ref(), "acme.alice").as_deref(), Some("v1"));
    let (hits, _) = b.hits_and_misses();
    assert_eq!(name_of(b.as_ref(), "acme.alice").as_deref(), Some("v1"));
    assert_eq!(b.hits_and_misses().0, hits + 1, "cached");
    let listening = bus.epoch().expect("listening");

    // B's bus connection is killed and kept out (the pools keep theirs) while A writes.
    admin(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", db.name));
    let killed = admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{APPLICATION}' AND datname = '{}'",
        db.name
    ));
    assert!(killed >= 1, "no bus connection found");
    user::put_profile(&a, &profile("acme.alice", "acme", "v2", &["+49 30 1000"])).unwrap();
    assert!(wait_for(Duration::from_secs(10), || bus.epoch().is_none()), "the listener did not notice the drop");
    // Not listening: the notification of v2 is lost for B, which reads through meanwhile.
    assert_eq!(name_of(b.as_ref(), "acme.alice").as_deref(), Some("v2"), "served the old profile while deaf");
    admin(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", db.name));
    assert!(
        wait_for(Duration::from_secs(15), || bus.epoch().is_some_and(|e| e != listening)),
        "the listener did not listen again"
    );
    assert_eq!(name_of(b.as_ref(), "acme.alice").as_deref(), Some("v2"));
    // And it caches again, and hears again.
    let (hits, _) = b.hits_and_misses();
    assert_eq!(name_of(b.as_ref(), "acme.alice").as_deref(), Some("v2"));
    assert_eq!(b.hits_and_misses().0, hits + 1);
    user::put_profile(&a, &profile("acme.alice", "acme", "v3", &["+49 30 1000"])).unwrap();
    assert!(wait_for(Duration::from_secs(10), || name_of(b.as_ref(), "acme.alice").as_deref() == Some("v3")));
}

#[test]
fn a_replica_that_never_hears_serves_nothing_older_than_the_ttl() {
    let db = shared_database();
    let a = replica(&db);
    user::put_profile(&a, &profile("acme.alice", "acme", "v1", &["+49 30 1000"])).unwrap();
    // A bus no writer reaches (the database's notifications go elsewhere).
    let deaf: Arc<dyn EventBus> = Arc::new(LocalBus::new("deaf"));
    let ttl = Duration::from_millis(700);
    let b = LookupCache::new(Arc::new(replica(&db)), deaf, ttl);
    assert_eq!(name_of(&b, "acme.alice").as_deref(), Some("v1"));
    user::put_profile(&a, &profile("acme.alice", "acme", "v2", &["+49 30 1000"])).unwrap();
    let changed = std::time::Instant::now();
    // The control: it is the cache that answers v1 now (a stale entry, within its TTL).
    assert_eq!(name_of(&b, "acme.alice").as_deref(), Some("v1"));
    assert!(wait_for(Duration::from_secs(5), || name_of(&b, "acme.alice").as_deref() == Some("v2")));
    assert!(changed.elapsed() <= ttl + Duration::from_millis(300), "stale for {:?}", changed.elapsed());
}

#[test]
fn tenants_are_not_crossed() {
    let db = shared_database();
    let a = replica(&db);
    // The same local part in two tenants; numbers one digit apart; the same assignment target.
    user::put_profile(&a, &profile("acme.alice", "acme", "Acme Alice", &["+49 30 1000"])).unwrap();
    user::put_profile(&a, &profile("globex.alice", "globex", "Globex Alice", &["+49 30 10000"])).unwrap();
    let target = AssignTarget::Number("e:+491701".into());
    let (acme, globex) = (UserId::parse("acme.alice").unwrap(), UserId::parse("globex.alice").unwrap());
    a.assign(&acme, &target, Some(&HandlingCode::well_known(HandlingCode::VIP))).unwrap();
    let (b, _bus) = cached_replica(&db, LONG);
    for _ in 0..2 {
        // Filled, then from the cache.
        assert_eq!(owner(b.as_ref(), "+49 30 1000").as_deref(), Some("acme.alice"));
        assert_eq!(owner(b.as_ref(), "+49 30 10000").as_deref(), Some("globex.alice"));
        assert_eq!(owner(b.as_ref(), "+49 30 100"), None);
        assert_eq!(name_of(b.as_ref(), "acme.alice").as_deref(), Some("Acme Alice"));
        assert_eq!(name_of(b.as_ref(), "globex.alice").as_deref(), Some("Globex Alice"));
        assert_eq!(b.assignment(&acme, &target).unwrap(), Some(HandlingCode::well_known(HandlingCode::VIP)));
        assert_eq!(b.assignment(&globex, &target).unwrap(), None);
    }
    // Acme's number moves to Globex's user: neither tenant is answered with the other's old entry.
    user::put_profile(&a, &profile("acme.alice", "acme", "Acme Alice", &[])).unwrap();
    user::put_profile(&a, &profile("globex.alice", "globex", "Globex Alice", &["+49 30 10000", "+49 30 1000"]))
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || owner(b.as_ref(), "+49 30 1000").as_deref() == Some("globex.alice")));
    assert_eq!(b.assignment(&globex, &target).unwrap(), None);
    assert_eq!(name_of(b.as_ref(), "acme.alice").as_deref(), Some("Acme Alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolving_on_postgresql_through_the_cache_takes_fewer_round_trips_and_decides_the_same() {
    let db = shared_database();
    let store = replica(&db);
    let demo =
        contactbridge::demo::load(&store, &contactbridge::demo::default_dir(), chrono::Utc::now()).await.unwrap();
    let bus: Arc<dyn EventBus> = Arc::new(tokio::task::block_in_place(|| PgBus::connect(&db.url, "r")).unwrap());
    let plain: Arc<dyn Store> = Arc::new(store.clone());
    let cached = cache::for_lookups(plain.clone(), Some(bus));
    assert!(!Arc::ptr_eq(&cached, &plain), "a remote store is cached");
    let called = demo.profile.called_numbers[0].clone();
    // A known caller (a contact of the demo), an unknown one, a withheld one.
    let clis = ["+49 30 1234567", "+49 89 99999999", "anonymous"];
    let per_call = |resolver: &Resolver| {
        tokio::task::block_in_place(|| {
            let before = store.round_trips();
            let mut decisions = Vec::new();
            for _ in 0..5 {
                for cli in clis {
                    let q = CallQuery {
                        called: called.clone(),
                        cli: cli.into(),
                        tsps_call_id: None,
                        at: chrono::Utc::now(),
                    };
                    let d = resolver.resolve(&q).unwrap();
                    decisions.push((d.caller_name(), d.handling_code, d.method, d.status));
                }
            }
            ((store.round_trips() - before) as f64 / 15.0, decisions)
        })
    };
    let (uncached, plain_decisions) = per_call(&Resolver::new(plain));
    let (through_cache, cached_decisions) = per_call(&Resolver::new(cached));
    assert_eq!(plain_decisions, cached_decisions);
    assert!(plain_decisions[0].0.is_some(), "the known caller was found: {:?}", plain_decisions[0]);
    assert!(through_cache <= 5.0, "{through_cache} round trips per call through the cache");
    assert!(uncached >= through_cache + 2.0, "{uncached} round trips per call without the cache, {through_cache} with");
}
