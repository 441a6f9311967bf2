//! Handling codes written back to the source (issue 12 §1) against a real Radicale: a code set
//! through the path every interface takes appears as a category in the card on the server (every
//! other byte kept), survives the next sync, is removed again; a change of category at the source
//! after the write wins; a server that is down leaves the write-back failed, retried by the next
//! sync; another user cannot write to the contact. The same against the Graph connector's fake:
//! the code becomes an Outlook category on the contact. And on Xandikos, which keeps the bytes it is
//! given: the card changes by its category alone.

#[path = "../connectors/graph/tests/support/fake_graph.rs"]
mod fake_graph;

use chrono::Utc;
use contactbridge::accounts::{assign_code, AccountError, AccountSpec, AssignOutcome, Registry, SourceKind};
use contactbridge::connector::RecordId;
use contactbridge::model::{CodeWriteBack, WriteBackState};
use contactbridge::resolve::{CallQuery, CodeSource, Resolver};
use contactbridge::secrets::SecretKey;
use contactbridge::store::{AccountStore, AssignTarget, RecordRef, SledStore, Store, UserStore};
use contactbridge::sync::scheduler::Schedule;
use contactbridge::user::{self, HandlingCode, UserId, UserProfile};
use contactbridge_dav::{Credentials, DavAccount, Server};
use std::path::PathBuf;
use std::sync::Arc;
use support::radicale::{collection, Radicale};
use support::xandikos::Xandikos;

mod support;

const USER: &str = "dana";
const PASSWORD: &str = "Radicale-Otter-5521";
const DID: &str = "+49 30 901820";
const ACCOUNT: &str = "dana-carddav";

/// A card with a folded unknown property, a quoted parameter holding `:` and an unmapped category.
const CARD: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:erika\r\nFN:Erika Mustermann\r\n\
X-ODD-THING;X-P=\"a:b,c\":a value long enough that the client folded it in an odd \r\n  place\r\n\
TEL;TYPE=CELL:0170 1234567\r\nCATEGORIES:Friends\r\nNOTE:keep\\, me\r\nEND:VCARD\r\n";

/// The card as Radicale stores it, unfolded lines sorted: Radicale re-serialises what it is
/// given (byte-for-byte edits are tested on Xandikos in connectors/dav/tests/sync.rs).
fn stored_card(server: &Radicale) -> Vec<String> {
    lines(&std::fs::read_to_string(card_path(server)).unwrap())
}

fn card_path(server: &Radicale) -> PathBuf {
    server.home().join("contacts/erika.vcf")
}

fn lines(card: &str) -> Vec<String> {
    let mut lines: Vec<String> = card.replace("\r\n ", "").lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn card_with(categories: &str) -> Vec<String> {
    lines(&CARD.replace("CATEGORIES:Friends", categories))
}

/// The bridge's side: a store with two users of two tenants, the registry with one CardDAV
/// account of `acme.dana` that writes codes back (category VIP mapped to code vip), a resolver.
struct Bridge {
    store: Arc<SledStore>,
    registry: Registry,
    resolver: Resolver,
    dana: UserId,
    _dir: tempfile::TempDir,
}

impl Bridge {
    async fn new(url: String, credentials: Credentials) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        for (id, did) in [("acme.dana", DID), ("globex.otto", "+49 89 555000")] {
            let mut p = UserProfile::new(UserId::parse(id).unwrap(), id.split('.').next().unwrap());
            p.called_numbers = vec![did.into()];
            p.region = Some("DE".into());
            user::put_profile(store.as_ref(), &p).unwrap();
        }
        let key = SecretKey::from_file(&dir.path().join("secret.key"), true).unwrap();
        let registry = Registry::new(store.clone(), key, Schedule::new("*/15 * * * *", "UTC").unwrap());
        let dana = UserId::parse("acme.dana").unwrap();
        let account = DavAccount::new(Server::Url(url), credentials);
        let mut spec = AccountSpec::new(ACCOUNT, dana.clone(), SourceKind::CardDav(account));
        spec.write_back_codes = true;
        spec.category_codes.insert("VIP".into(), HandlingCode::parse("vip").unwrap());
        registry.add(spec).unwrap();
        let resolver = Resolver::new(store.clone() as Arc<dyn Store>);
        let b = Self { store, registry, resolver, dana, _dir: dir };
        b.sync().await;
        b
    }

    async fn sync(&self) {
        let report = self.registry.sync(ACCOUNT).await.unwrap();
        assert_eq!(report.failed(), 0, "{report:?}");
    }

    fn erika(&self) -> RecordRef {
        let found = self.call();
        assert_eq!(found.candidates.len(), 1);
        found.candidates[0].stored.at.clone()
    }

    fn call(&self) -> contactbridge::resolve::Decision {
        self.resolver
            .resolve(&CallQuery {
                called: DID.into(),
                cli: "+49 170 1234567".into(),
                tsps_call_id: None,
                at: Utc::now(),
            })
            .unwrap()
    }

    fn assign(&self, code: Option<&str>) -> AssignOutcome {
        let code = code.map(|c| HandlingCode::parse(c).unwrap());
        let target = AssignTarget::Contact(self.erika());
        assign_code(self.store.as_ref(), &self.dana, &target, code.as_ref(), Utc::now()).unwrap()
    }

    fn state(&self) -> WriteBackState {
        let spec = self.store.account(ACCOUNT).unwrap().unwrap();
        spec.code_write_backs[&CodeWriteBack::key(&self.dana, &self.erika())].state.clone()
    }
}

/// A Radicale with the card and the bridge syncing it.
struct World {
    server: Radicale,
    bridge: Bridge,
}

impl World {
    async fn new() -> Self {
        let server = Radicale::with_rights(USER, PASSWORD, "RrWw", |home| {
            collection(home, "contacts", "VADDRESSBOOK", &[("erika.vcf", CARD.to_string())])
        });
        let credentials =
            Credentials::Basic { username: USER.into(), password: contactbridge_dav::Secret::new(PASSWORD) };
        let bridge = Bridge::new(server.url(), credentials).await;
        Self { server, bridge }
    }
}

impl std::ops::Deref for World {
    type Target = Bridge;
    fn deref(&self) -> &Bridge {
        &self.bridge
    }
}

/// The card on Xandikos (it keeps the bytes of the cards it is given; its default address book).
fn card_url(server: &Xandikos) -> String {
    server.url("/user/contacts/erika.vcf")
}

/// Writes the card as another client would.
async fn put(server: &Xandikos, card: &str) {
    let response = reqwest::Client::new()
        .put(card_url(server))
        .header("Content-Type", "text/vcard")
        .body(card.to_string())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "PUT: {}", response.status());
}

/// The card's bytes on the server.
async fn card_on(server: &Xandikos) -> String {
    reqwest::get(card_url(server)).await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn xandikos_gets_the_category_byte_for_byte_and_a_later_change_there_wins() {
    let server = Xandikos::start();
    put(&server, CARD).await;
    let b = Bridge::new(format!("http://127.0.0.1:{}/", server.port), Credentials::None).await;
    assert_eq!(b.call().handling_code.as_str(), "default");

    assert_eq!(b.assign(Some("vip")), AssignOutcome::Pending { account: ACCOUNT.into() });
    assert_eq!(b.call().handling_code.as_str(), "vip", "applies at once");
    b.sync().await;
    assert!(matches!(b.state(), WriteBackState::Written { .. }), "{:?}", b.state());
    let with_vip = CARD.replace("CATEGORIES:Friends", "CATEGORIES:Friends,VIP");
    assert_eq!(card_on(&server).await, with_vip, "only the category changed, every other byte kept");
    b.sync().await;
    assert!(matches!(b.state(), WriteBackState::Written { .. }), "{:?}", b.state());
    assert_eq!(b.call().handling_code.as_str(), "vip", "survives the next sync");
    assert_eq!(card_on(&server).await, with_vip, "nothing written again");

    // Another client takes VIP away after the bridge wrote it: the source wins.
    let customers = CARD.replace("CATEGORIES:Friends", "CATEGORIES:Friends,Customers");
    put(&server, &customers).await;
    b.sync().await;
    assert!(matches!(b.state(), WriteBackState::Superseded { .. }), "{:?}", b.state());
    assert_eq!(b.call().handling_code.as_str(), "default", "the older local choice is gone");
    assert_eq!(card_on(&server).await, customers, "and not written again");
}

#[tokio::test]
async fn a_code_set_on_a_contact_is_written_to_the_card_survives_syncs_and_is_removed_again() {
    let w = World::new().await;
    assert_eq!(w.call().handling_code.as_str(), "default", "Friends is not mapped");

    assert_eq!(w.assign(Some("vip")), AssignOutcome::Pending { account: ACCOUNT.into() });
    // Applies at once, before any write.
    assert_eq!((w.call().handling_code.as_str(), w.call().code_source), ("vip", CodeSource::LocalContact));
    assert_eq!(w.state(), WriteBackState::Pending);
    assert_eq!(stored_card(&w.server), lines(CARD), "nothing written before the sync");

    w.sync().await;
    assert!(matches!(w.state(), WriteBackState::Written { .. }), "{:?}", w.state());
    assert_eq!(stored_card(&w.server), card_with("CATEGORIES:Friends,VIP"), "every other line kept");
    // The next syncs read the category back: the code holds, nothing is written again.
    w.sync().await;
    w.sync().await;
    assert!(matches!(w.state(), WriteBackState::Written { .. }), "{:?}", w.state());
    assert_eq!(w.call().handling_code.as_str(), "vip");
    assert!(w.call().candidates[0].stored.contact.categories.iter().any(|c| c == "VIP"));

    // Removing the code removes the category; the card is as it was.
    assert_eq!(w.assign(None), AssignOutcome::Pending { account: ACCOUNT.into() });
    assert_eq!(w.call().handling_code.as_str(), "default", "the removal applies at once");
    w.sync().await;
    assert_eq!(stored_card(&w.server), lines(CARD));
    w.sync().await;
    assert_eq!(w.call().handling_code.as_str(), "default");

    // A code without a mapped category stays local and says so.
    let outcome = w.assign(Some("family"));
    assert_eq!(outcome, AssignOutcome::Local("no category is mapped to code family".into()));
    assert_eq!(w.state(), WriteBackState::LocalOnly { reason: "no category is mapped to code family".into() });
    w.sync().await;
    assert_eq!(stored_card(&w.server), lines(CARD));
    assert_eq!(w.call().handling_code.as_str(), "family");
}

#[tokio::test]
async fn a_change_of_category_at_the_source_after_the_choice_wins() {
    let w = World::new().await;
    w.assign(Some("vip"));
    w.sync().await;
    assert_eq!(stored_card(&w.server), card_with("CATEGORIES:Friends,VIP"));
    // Someone takes VIP away in another client, after the bridge wrote it.
    std::fs::write(card_path(&w.server), CARD.replace("CATEGORIES:Friends", "CATEGORIES:Friends,Customers")).unwrap();
    w.sync().await;
    assert!(matches!(w.state(), WriteBackState::Superseded { .. }), "{:?}", w.state());
    let d = w.call();
    assert_eq!(
        (d.handling_code.as_str(), d.code_source),
        ("default", CodeSource::KnownContact),
        "the local choice is gone"
    );
    assert_eq!(stored_card(&w.server), card_with("CATEGORIES:Friends,Customers"), "and not written again");

    // An older pending choice loses too: chosen, then the source sets VIP before the write-back ran.
    w.assign(Some("blocked"));
    std::fs::write(card_path(&w.server), CARD.replace("CATEGORIES:Friends", "CATEGORIES:VIP")).unwrap();
    w.sync().await;
    assert!(matches!(w.state(), WriteBackState::Superseded { .. }), "{:?}", w.state());
    assert_eq!(w.call().handling_code.as_str(), "vip");
    assert_eq!(stored_card(&w.server), card_with("CATEGORIES:VIP"));
}

#[tokio::test]
async fn a_server_down_during_the_write_back_leaves_it_failed_and_the_next_sync_writes_it() {
    let mut w = World::new().await;
    w.assign(Some("vip"));
    w.server.stop();
    // The sync itself fails (collections cannot be listed), so does the write-back: nothing lost.
    let _ = w.registry.sync(ACCOUNT).await;
    assert!(matches!(w.state(), WriteBackState::Pending | WriteBackState::Failed { .. }), "{:?}", w.state());
    assert_eq!(w.call().handling_code.as_str(), "vip", "the user's choice still applies");
    w.server.run();
    w.sync().await;
    assert!(matches!(w.state(), WriteBackState::Written { .. }), "{:?}", w.state());
    assert_eq!(stored_card(&w.server), card_with("CATEGORIES:Friends,VIP"));
}

#[tokio::test]
async fn a_refused_write_is_failed_keeps_the_choice_and_is_retried_by_every_sync() {
    let mut w = World::new().await;
    w.assign(Some("vip"));
    // The server still lists and serves the card but refuses the PUT (403): the sync succeeds,
    // the write-back fails.
    w.server.restart_with_rights("Rr");
    w.sync().await;
    assert!(matches!(w.state(), WriteBackState::Failed { attempts: 1, .. }), "{:?}", w.state());
    let WriteBackState::Failed { error, .. } = w.state() else { unreachable!() };
    assert!(!error.is_empty() && error.len() <= 300, "{error}");
    assert_eq!(w.call().handling_code.as_str(), "vip", "the user's choice still applies");
    w.sync().await;
    assert!(matches!(w.state(), WriteBackState::Failed { attempts: 2, .. }), "{:?}", w.state());
    assert_eq!(stored_card(&w.server), lines(CARD));
    w.server.restart_with_rights("RrWw");
    w.sync().await;
    assert!(matches!(w.state(), WriteBackState::Written { .. }), "{:?}", w.state());
    assert_eq!(stored_card(&w.server), card_with("CATEGORIES:Friends,VIP"));
}

#[tokio::test]
async fn another_user_cannot_set_a_code_on_the_contact_nor_write_to_it() {
    let w = World::new().await;
    let otto = UserId::parse("globex.otto").unwrap();
    let target = AssignTarget::Contact(w.erika());
    let e = assign_code(w.store.as_ref(), &otto, &target, Some(&HandlingCode::parse("vip").unwrap()), Utc::now())
        .unwrap_err();
    assert!(matches!(e, AccountError::Invalid(_)), "{e}");
    assert!(w.store.account(ACCOUNT).unwrap().unwrap().code_write_backs.is_empty());
    assert_eq!(w.store.assignment(&otto, &target).unwrap(), None);
    // A made-up reference into the account is no contact of dana's either.
    let made_up = RecordRef { account: ACCOUNT.into(), collection: "/dana/contacts/".into(), id: RecordId::new("x") };
    assert!(assign_code(w.store.as_ref(), &w.dana, &AssignTarget::Contact(made_up), None, Utc::now()).is_err());
    w.sync().await;
    assert_eq!(stored_card(&w.server), lines(CARD));
}

#[tokio::test]
async fn graph_a_code_becomes_an_outlook_category_and_a_later_outlook_change_wins() {
    use contactbridge_graph::{Credential, GraphAccount, Secret};
    const BOX: &str = "dana@contoso.example/contacts";
    let fake = fake_graph::FakeGraph::start().await;
    fake.put(BOX, fake_graph::contact("c1", "Erika Muster", "030 1234567", "e@x.example", &["Friends"]));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let dana = UserId::parse("acme.dana").unwrap();
    let mut p = UserProfile::new(dana.clone(), "acme");
    p.called_numbers = vec![DID.into()];
    p.region = Some("DE".into());
    user::put_profile(store.as_ref(), &p).unwrap();
    let key = SecretKey::from_file(&dir.path().join("secret.key"), true).unwrap();
    let registry = Registry::new(store.clone(), key, Schedule::new("*/15 * * * *", "UTC").unwrap());
    let credential = Credential::ClientSecret { secret: Secret::new(fake_graph::CLIENT_SECRET) };
    let mut g =
        GraphAccount::new(fake_graph::TENANT, fake_graph::CLIENT_ID, credential, vec!["dana@contoso.example".into()]);
    g.authority = fake.authority();
    g.graph_base = fake.base.clone();
    g.https_only = false;
    let mut spec = AccountSpec::new("contoso", dana.clone(), SourceKind::Graph(g));
    spec.write_back_codes = true;
    spec.category_codes.insert("Wichtig".into(), HandlingCode::parse("vip").unwrap());
    registry.add(spec).unwrap();
    let sync = || async { assert_eq!(registry.sync("contoso").await.unwrap().failed(), 0) };
    sync().await;
    let resolver = Resolver::new(store.clone() as Arc<dyn Store>);
    let call = || {
        resolver
            .resolve(&CallQuery {
                called: DID.into(),
                cli: "+49 30 1234567".into(),
                tsps_call_id: None,
                at: Utc::now(),
            })
            .unwrap()
    };
    let erika = call().candidates[0].stored.at.clone();
    let categories =
        || -> Vec<String> { serde_json::from_value(fake.item(BOX, "c1").unwrap()["categories"].clone()).unwrap() };
    let state = || {
        store.account("contoso").unwrap().unwrap().code_write_backs[&CodeWriteBack::key(&dana, &erika)].state.clone()
    };

    let target = AssignTarget::Contact(erika.clone());
    let vip = HandlingCode::parse("vip").unwrap();
    let outcome = assign_code(store.as_ref(), &dana, &target, Some(&vip), Utc::now()).unwrap();
    assert_eq!(outcome, AssignOutcome::Pending { account: "contoso".into() });
    sync().await;
    assert_eq!(categories(), ["Friends", "Wichtig"], "the account's own category, as it is written there");
    assert!(matches!(state(), WriteBackState::Written { .. }), "{:?}", state());
    sync().await;
    assert_eq!(call().handling_code.as_str(), "vip");
    assert_eq!(fake.stats().patches.len(), 1, "written once, not on every sync");

    // In Outlook, someone replaces the category after the bridge wrote it: Outlook wins.
    let mut item = fake.item(BOX, "c1").unwrap();
    item["categories"] = serde_json::json!(["Friends"]);
    item["changeKey"] = serde_json::json!("outlook-edit-1");
    fake.put(BOX, item);
    sync().await;
    assert!(matches!(state(), WriteBackState::Superseded { .. }), "{:?}", state());
    assert_eq!(call().handling_code.as_str(), "default");
    assert_eq!(categories(), ["Friends"]);

    // Removing a code that Outlook carries takes the category away there.
    let mut item = fake.item(BOX, "c1").unwrap();
    item["categories"] = serde_json::json!(["Wichtig", "Friends"]);
    item["changeKey"] = serde_json::json!("outlook-edit-2");
    fake.put(BOX, item);
    sync().await;
    assert_eq!(call().handling_code.as_str(), "vip");
    assign_code(store.as_ref(), &dana, &target, None, Utc::now()).unwrap();
    assert_eq!(call().handling_code.as_str(), "default", "at once");
    sync().await;
    assert_eq!(categories(), ["Friends"]);
    assert!(matches!(state(), WriteBackState::Written { .. }), "{:?}", state());
}
