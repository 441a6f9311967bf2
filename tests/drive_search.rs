//! Drive search against the fake Graph: a OneDrive file that names the caller (or the
//! caller's company) only in its file name shows in the caller's context, read from
//! the index; a name with quotes and OData syntax is searched literally, never
//! injected; another user's drive never shows.

#[path = "../connectors/graph/tests/support/fake_graph.rs"]
mod fake_graph;

use contactbridge::accounts::{AccountSpec, Registry, SourceKind};
use contactbridge::resolve::context::{fetch, ContextQuery, ContextSubject};
use contactbridge::resolve::{CallQuery, Resolver};
use contactbridge::secrets::SecretKey;
use contactbridge::store::{SledStore, Store};
use contactbridge::sync::scheduler::Schedule;
use contactbridge::user::{self, UserId, UserProfile};
use contactbridge_graph::{Credential, GraphAccount, Secret};
use fake_graph::{contact, drive_file, FakeGraph};
use serde_json::json;
use std::sync::Arc;

const DANA: &str = "dana@contoso.example";
const OTTO: &str = "otto@contoso.example";
const NAME: &str = "Erika O'Brien";

#[tokio::test]
async fn a_file_naming_the_caller_only_in_its_name_shows_in_the_context() {
    let fake = FakeGraph::start().await;
    let mut c = contact("c1", NAME, "+49 30 1111111", "erika@obrien.example", &[]);
    c["companyName"] = json!("Muster & Söhne (GmbH)");
    fake.put(&format!("{DANA}/contacts"), c);
    // Nobody on these files is the caller: only the file names mention her or her company.
    fake.put(&format!("{DANA}/drive"), drive_file("d1", "Angebot Erika O'Brien 2026.docx", "megan@contoso.com", None));
    fake.put(
        &format!("{DANA}/drive"),
        drive_file("d2", "Muster & Söhne (GmbH) Rahmenvertrag.pdf", "megan@contoso.com", None),
    );
    fake.put(&format!("{DANA}/drive"), drive_file("d3", "Quartalszahlen.xlsx", "megan@contoso.com", None));
    // Otto's drive (another user of the same organisation) also names her.
    fake.put(&format!("{OTTO}/drive"), drive_file("o1", "Erika O'Brien Gehalt.xlsx", "otto@contoso.com", None));

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let dana = UserId::parse("contoso.dana").unwrap();
    let otto = UserId::parse("contoso.otto").unwrap();
    for (id, did) in [(&dana, "+49 30 901820"), (&otto, "+49 30 901821")] {
        let mut p = UserProfile::new(id.clone(), "contoso");
        p.called_numbers = vec![did.into()];
        p.region = Some("DE".into());
        user::put_profile(store.as_ref(), &p).unwrap();
    }
    let key = SecretKey::from_file(&dir.path().join("secret.key"), true).unwrap();
    let registry = Registry::new(store.clone(), key, Schedule::new("0 0 1 1 *", "UTC").unwrap());
    let credential = Credential::ClientSecret { secret: Secret::new(fake_graph::CLIENT_SECRET) };
    let mut g =
        GraphAccount::new(fake_graph::TENANT, fake_graph::CLIENT_ID, credential, vec![DANA.into(), OTTO.into()]);
    g.authority = fake.authority();
    g.graph_base = fake.base.clone();
    g.https_only = false;
    let mut spec = AccountSpec::new("contoso", dana.clone(), SourceKind::Graph(g));
    spec.mailbox_users.insert(OTTO.into(), otto.clone());
    registry.add(spec).unwrap();
    registry.sync("contoso").await.unwrap();

    let resolver = Resolver::new(store.clone() as Arc<dyn Store>);
    let decision = resolver
        .resolve(&CallQuery {
            called: "+49 30 901820".into(),
            cli: "+49 30 1111111".into(),
            tsps_call_id: None,
            at: chrono::Utc::now(),
        })
        .unwrap();
    let stored = decision.candidates[0].stored.clone();
    let subject = ContextSubject { contact: Some(stored.clone()), caller_key: None };
    let query = ContextQuery { now: chrono::Utc::now(), criteria: UserProfile::new(dana.clone(), "contoso").context };
    let names = |store: &SledStore| -> Vec<String> {
        let mut n: Vec<String> =
            fetch(store, &dana, &subject, &query).unwrap().documents.into_iter().map(|d| d.name).collect();
        n.sort();
        n
    };
    assert!(names(&store).is_empty(), "before the search, people on files are all the context knows");

    // The call above is recorded; the next scheduled sync searches Dana's drive for its contact.
    registry.sync_scheduled("contoso").await.unwrap();
    assert_eq!(fake.stats().searches.len(), 3, "name, company, email");
    registry.sync_scheduled("contoso").await.unwrap();
    assert_eq!(fake.stats().searches.len(), 3, "not searched again within a day");
    // Off the network from here: the fake is gone, the context still has them.
    let searches = fake.stats().searches;
    drop(fake);
    assert_eq!(names(&store), ["Angebot Erika O'Brien 2026.docx", "Muster & Söhne (GmbH) Rahmenvertrag.pdf"]);
    // Graph read the terms exactly as written (the quote doubled in the literal, undone by Graph),
    // and only Dana's drive was searched.
    let terms: Vec<&str> = searches.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(terms, [NAME, "Muster & Söhne (GmbH)", "erika@obrien.example"]);
    assert!(searches.iter().all(|(m, _)| m == DANA), "{searches:?}");
}

#[tokio::test]
async fn odata_syntax_in_a_name_is_searched_literally() {
    let fake = FakeGraph::start().await;
    fake.put(&format!("{DANA}/drive"), drive_file("d1", "notes.docx", "megan@contoso.com", None));
    let credential = Credential::ClientSecret { secret: Secret::new(fake_graph::CLIENT_SECRET) };
    let mut g = GraphAccount::new(fake_graph::TENANT, fake_graph::CLIENT_ID, credential, vec![DANA.into()]);
    g.authority = fake.authority();
    g.graph_base = fake.base.clone();
    g.https_only = false;
    let c = contactbridge_graph::GraphConnector::new(g).unwrap();
    for hostile in ["x') or (q='notes", "')/../../../users/otto@contoso.example/drive/root/search(q='", "a%27b?c#d&e"] {
        let hits = c.search_drive(DANA, hostile).await.expect("searched, not a syntax error");
        assert!(hits.is_empty(), "{hostile}: {hits:?}");
    }
    let terms: Vec<String> = fake.stats().searches.into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        terms,
        ["x') or (q='notes", "')/../../../users/otto@contoso.example/drive/root/search(q='", "a%27b?c#d&e"]
    );
    assert!(fake.stats().searches.iter().all(|(m, _)| m == DANA));
    assert_eq!(c.search_drive(DANA, "NOTES").await.unwrap().len(), 1);
}
