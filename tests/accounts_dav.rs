//! CardDAV and CalDAV accounts against a real Radicale (from tests/setup-tools.sh):
//! registered with a sealed password, tested (a wrong password gets an answer a
//! person can act on), synced through the registry into the index, and the
//! contact found by the resolver from a differently written number.

use chrono::Utc;
use contactbridge::accounts::{AccountError, AccountSpec, AccountStore as _, Registry, SourceKind};
use contactbridge::connector::ErrorKind;
use contactbridge::resolve::{CallQuery, Resolver};
use contactbridge::secrets::SecretKey;
use contactbridge::store::{SledStore, Store};
use contactbridge::sync::scheduler::Schedule;
use contactbridge::user::{self, UserId, UserProfile};
use contactbridge_dav::{Credentials, DavAccount, Server};
use std::sync::Arc;
use support::radicale::{collection, Radicale};

mod support;

const USER: &str = "dana";
const PASSWORD: &str = "Radicale-Otter-5521";
const DID: &str = "+49 30 901820";

fn card(uid: &str, name: &str, tel: &str) -> String {
    format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nTEL;TYPE=CELL:{tel}\r\nCATEGORIES:VIP\r\nEND:VCARD\r\n")
}

fn event() -> String {
    let start = (Utc::now() + chrono::Duration::days(1)).format("%Y%m%dT100000Z");
    let end = (Utc::now() + chrono::Duration::days(1)).format("%Y%m%dT110000Z");
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:ev1\r\nDTSTAMP:20260101T000000Z\r\n\
         DTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:Planning\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

fn dav(kind: &str, url: &str, password: &str) -> AccountSpec {
    let account = DavAccount::new(
        Server::Url(url.into()),
        Credentials::Basic { username: USER.into(), password: contactbridge_dav::Secret::new(password) },
    );
    let source = if kind == "carddav" { SourceKind::CardDav(account) } else { SourceKind::CalDav(account) };
    AccountSpec::new(&format!("dana-{kind}"), UserId::parse("acme.dana").unwrap(), source)
}

#[tokio::test]
async fn carddav_and_caldav_accounts_sync_from_radicale_into_the_index_and_the_resolver_finds_the_caller() {
    let server = Radicale::start(USER, PASSWORD, |home| {
        collection(
            home,
            "contacts",
            "VADDRESSBOOK",
            &[("erika.vcf", card("erika", "Erika Mustermann", "0170 1234567"))],
        );
        collection(home, "calendar", "VCALENDAR", &[("ev1.ics", event())]);
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let mut dana = UserProfile::new(UserId::parse("acme.dana").unwrap(), "acme");
    dana.called_numbers = vec![DID.into()];
    dana.region = Some("DE".into());
    user::put_profile(store.as_ref(), &dana).unwrap();
    let key = SecretKey::from_file(&dir.path().join("secret.key"), true).unwrap();
    let registry = Registry::new(store.clone(), key, Schedule::new("*/15 * * * *", "UTC").unwrap());

    // A wrong password: the test says what failed and what to do.
    registry.add(dav("carddav", &server.url(), "wrong-password")).unwrap();
    let e = registry.test("dana-carddav").await.unwrap_err();
    assert!(matches!(e, AccountError::Source { kind: ErrorKind::Auth, .. }), "{e}");
    let message = e.to_string();
    assert!(
        message.contains("user dana's password") && message.contains("account set-secret dana-carddav"),
        "{message}"
    );
    registry.set_secret("dana-carddav", PASSWORD).unwrap();
    registry.test("dana-carddav").await.unwrap();

    let report = registry.sync("dana-carddav").await.unwrap();
    assert_eq!((report.failed(), report.totals().upserted), (0, 1), "{report:?}");
    let resolver = Resolver::new(store.clone() as Arc<dyn Store>);
    let decision = resolver
        .resolve(&CallQuery { called: DID.into(), cli: "+49 170 1234567".into(), tsps_call_id: None, at: Utc::now() })
        .unwrap();
    assert_eq!(decision.candidates.len(), 1);
    assert_eq!(decision.candidates[0].stored.contact.best_name(), "Erika Mustermann");
    assert_eq!(decision.handling_code.as_str(), "vip");

    registry.add(dav("caldav", &server.url(), PASSWORD)).unwrap();
    let report = registry.sync("dana-caldav").await.unwrap();
    assert_eq!((report.failed(), report.totals().upserted), (0, 1), "{report:?}");
    let status = registry.status("dana-caldav").unwrap();
    assert_eq!(status.records.get("event"), Some(&1), "{:?}", status.records);
    let status = registry.status("dana-carddav").unwrap();
    assert_eq!(status.records.get("contact"), Some(&1));
    assert!(status.collections.iter().all(|c| c.state.last_error.is_none() && c.state.checkpoint.is_some()));

    // An incremental sync fetches nothing new; removing the account removes its contact.
    assert_eq!(registry.sync("dana-carddav").await.unwrap().totals().upserted, 0);
    assert_eq!(registry.remove("dana-carddav").unwrap(), 1);
    let decision = resolver
        .resolve(&CallQuery { called: DID.into(), cli: "01701234567".into(), tsps_call_id: None, at: Utc::now() })
        .unwrap();
    assert!(decision.candidates.is_empty());

    store.flush().unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{USER}:{PASSWORD}"));
    for needle in [PASSWORD.to_string(), b64] {
        let mut stack = vec![dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let bytes = std::fs::read(&p).unwrap();
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                        "{} holds the password",
                        p.display()
                    );
                }
            }
        }
    }
}

/// Discovery (principal, home set, collections: on Radicale the costly part of a
/// no-change sync) is kept from a complete sync to the next; a collection gone at
/// the source, or `sync --once --rediscover`, has it done again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_is_kept_while_syncs_succeed_and_redone_when_a_collection_is_gone_or_on_request() {
    let server = Radicale::start(USER, PASSWORD, |home| {
        collection(
            home,
            "contacts",
            "VADDRESSBOOK",
            &[("erika.vcf", card("erika", "Erika Mustermann", "0170 1234567"))],
        );
    });
    let home = server.home();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let dana = UserProfile::new(UserId::parse("acme.dana").unwrap(), "acme");
    user::put_profile(store.as_ref(), &dana).unwrap();
    let key = SecretKey::from_file(&dir.path().join("secret.key"), true).unwrap();
    let registry = Registry::new(store.clone(), key, Schedule::new("*/15 * * * *", "UTC").unwrap());
    registry.add(dav("carddav", &server.url(), PASSWORD)).unwrap();
    let names = |r: &contactbridge::sync::AccountSyncReport| {
        let mut n: Vec<String> = r.collections.iter().map(|c| c.collection.name.clone()).collect();
        n.sort();
        n
    };

    let first = registry.sync("dana-carddav").await.unwrap();
    assert_eq!((names(&first), first.totals().upserted), (vec!["contacts".to_string()], 1), "{first:?}");
    // An address book added at the source: the next syncs use what discovery found.
    collection(&home, "more", "VADDRESSBOOK", &[("hans.vcf", card("hans", "Hans Schmidt", "0170 7654321"))]);
    let kept = registry.sync("dana-carddav").await.unwrap();
    assert_eq!((names(&kept), kept.totals().upserted), (vec!["contacts".to_string()], 0), "{kept:?}");
    assert!(store.run_record("dana-carddav").unwrap().unwrap().discovered.is_some());
    // On request: discovered again, the new address book synced.
    let again = registry.sync_rediscovering("dana-carddav", Default::default()).await.unwrap();
    assert_eq!(names(&again), vec!["contacts".to_string(), "more".to_string()], "{again:?}");
    assert_eq!(again.totals().upserted, 1);

    // An address book gone at the source: that sync fails for it (and keeps nothing),
    // the next discovers again and is complete.
    std::fs::remove_dir_all(home.join("more")).unwrap();
    let gone = registry.sync("dana-carddav").await.unwrap();
    assert_eq!(gone.failed(), 1, "{gone:?}");
    assert_eq!(store.run_record("dana-carddav").unwrap().unwrap().discovered, None);
    let after = registry.sync("dana-carddav").await.unwrap();
    assert_eq!((names(&after), after.failed()), (vec!["contacts".to_string()], 0), "{after:?}");
    assert_eq!(after.outcome(), contactbridge::sync::SyncOutcome::Complete);
}
