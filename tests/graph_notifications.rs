//! Graph change notifications end to end: the bridge subscribes at the fake Graph
//! (which runs the validation handshake against the real web server), the fake
//! sends notifications (duplicated, forged), the web route checks them, and the
//! scheduler syncs the account: a contact changed at the source is findable
//! within 5 s of the notification. Hostile: forged notifications (wrong
//! clientState, unknown or another tenant's subscription, huge bodies, floods)
//! start no sync and are answered like genuine ones; lifecycle notifications
//! renew or re-create the subscription.

#[path = "../connectors/graph/tests/support/fake_graph.rs"]
mod fake_graph;
mod support;

use contactbridge::accounts::notify::Notifier;
use contactbridge::accounts::{AccountSpec, Registry, SourceKind};
use contactbridge::live::CallHub;
use contactbridge::resolve::{CallQuery, Resolver};
use contactbridge::secrets::SecretKey;
use contactbridge::store::{SledStore, Store};
use contactbridge::sync::notifications::{Action, Subscriptions};
use contactbridge::sync::scheduler::{Schedule, Scheduler, SchedulerHandle, SchedulerOptions, SystemClock};
use contactbridge::user::{self, UserId, UserProfile};
use contactbridge::web::notifications::{Receiver, CHANGES, LIFECYCLE};
use contactbridge::web::WebState;
use contactbridge_graph::{Credential, GraphAccount, Secret};
use fake_graph::{contact, Delivery, FakeGraph};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Bridge {
    fake: FakeGraph,
    store: Arc<SledStore>,
    registry: Arc<Registry>,
    scheduler: SchedulerHandle,
    subscriptions: Arc<Subscriptions>,
    notifier: Arc<Notifier>,
    web: String,
    _dir: tempfile::TempDir,
}

const DANA: &str = "dana@contoso.example";
const OTTO: &str = "otto@fabrikam.example";

fn graph_account(fake: &FakeGraph, tenant: &str, mailbox: &str) -> SourceKind {
    let credential = Credential::ClientSecret { secret: Secret::new(fake_graph::CLIENT_SECRET) };
    let mut g = GraphAccount::new(tenant, fake_graph::CLIENT_ID, credential, vec![mailbox.to_string()]);
    g.authority = fake.authority();
    g.graph_base = fake.base.clone();
    g.https_only = false;
    SourceKind::Graph(g)
}

/// Two tenants' accounts (each its own user), a scheduler that would not run them
/// before next year, the web server with the notification routes, and the notifier.
async fn bridge() -> Bridge {
    let fake = FakeGraph::start().await;
    fake.put(&format!("{DANA}/contacts"), contact("c1", "Erika Muster", "+49 30 1111111", "e@x.example", &[]));
    fake.put(&format!("{OTTO}/contacts"), contact("c9", "Franz Huber", "+43 1 2222222", "f@x.example", &[]));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    for (id, tenant, did) in
        [("contoso.dana", "contoso", "+49 30 901820"), ("fabrikam.otto", "fabrikam", "+43 1 5334455")]
    {
        let mut p = UserProfile::new(UserId::parse(id).unwrap(), tenant);
        p.called_numbers = vec![did.into()];
        p.region = Some("DE".into());
        user::put_profile(store.as_ref(), &p).unwrap();
    }
    let key = SecretKey::from_file(&dir.path().join("secret.key"), true).unwrap();
    let yearly = Schedule::new("0 0 1 1 *", "UTC").unwrap();
    let registry = Arc::new(Registry::new(store.clone(), key, yearly));
    let mut dana =
        AccountSpec::new("dana-m365", UserId::parse("contoso.dana").unwrap(), graph_account(&fake, "contoso", DANA));
    dana.schedule = Some(Schedule::new("0 0 1 1 *", "UTC").unwrap());
    registry.add(dana).unwrap();
    let mut otto =
        AccountSpec::new("otto-m365", UserId::parse("fabrikam.otto").unwrap(), graph_account(&fake, "fabrikam", OTTO));
    otto.schedule = Some(Schedule::new("0 0 1 1 *", "UTC").unwrap());
    registry.add(otto).unwrap();
    for id in ["dana-m365", "otto-m365"] {
        let report = registry.sync(id).await.unwrap();
        assert_eq!(report.failed(), 0, "{report:?}");
    }
    let scheduler = Scheduler::new(
        registry.clone(),
        Arc::new(SystemClock),
        SchedulerOptions { jitter_fraction: 0.0, ..SchedulerOptions::default() },
    )
    .spawn();
    let subscriptions = Arc::new(Subscriptions::new());
    let sched = scheduler.scheduler().clone();
    let on_action = Arc::new(move |a: Action| match &a {
        Action::Sync(w) | Action::Renew(_, w) | Action::Recreate(_, w) => sched.sync_soon(&w.account),
    });
    let hub = CallHub::new(store.clone() as Arc<dyn Store>);
    let state = WebState::new(store.clone(), store.clone(), hub)
        .with_notifications(Receiver::new(subscriptions.clone(), on_action));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(contactbridge::web::serve(state, listener, std::future::pending(), Duration::from_secs(1)));
    // Graph needs https; the fake also takes a loopback http:// URL (the config's check is
    // `config::tests::the_public_url_must_be_plain_https`).
    let notifier = Arc::new(Notifier::new(registry.clone(), subscriptions.clone(), &url::Url::parse(&web).unwrap()));
    notifier.reconcile().await;
    Bridge { fake, store, registry, scheduler, subscriptions, notifier, web, _dir: dir }
}

impl Bridge {
    fn runs(&self, account: &str) -> u64 {
        self.scheduler.scheduler().account(account).map_or(0, |a| a.runs)
    }

    fn finds(&self, did: &str, cli: &str) -> Option<String> {
        let resolver = Resolver::new(self.store.clone() as Arc<dyn Store>);
        let d = resolver
            .resolve(&CallQuery { called: did.into(), cli: cli.into(), tsps_call_id: None, at: chrono::Utc::now() })
            .unwrap();
        d.candidates.first().map(|c| c.stored.contact.best_name())
    }

    fn subscription(&self, mailbox: &str, part: &str) -> fake_graph::FakeSubscription {
        let resource = format!("users/{mailbox}/{part}");
        self.fake.subscriptions().into_iter().find(|s| s.resource == resource).expect("subscribed")
    }

    async fn post(&self, path: &str, body: &serde_json::Value) -> u16 {
        reqwest::Client::new().post(format!("{}{path}", self.web)).json(body).send().await.unwrap().status().as_u16()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_changed_at_the_source_is_findable_within_5_s_of_the_notification() {
    let b = bridge().await;
    // Validated and created: one per mailbox and part, each with its own clientState, under public_url.
    let subs = b.fake.subscriptions();
    assert_eq!(subs.len(), 6, "{subs:?}");
    let states: std::collections::HashSet<_> = subs.iter().map(|s| s.client_state.clone().unwrap()).collect();
    assert_eq!(states.len(), 6, "a clientState per subscription");
    assert!(subs.iter().all(|s| s.notification_url == format!("{}{CHANGES}", b.web)));
    assert!(subs.iter().all(|s| s.lifecycle_url.as_deref() == Some(&*format!("{}{LIFECYCLE}", b.web))));
    let max = chrono::Utc::now() + chrono::Duration::minutes(10_080);
    assert!(subs.iter().all(|s| s.expires <= max && s.expires > chrono::Utc::now() + chrono::Duration::days(2)));
    // Reconciling again creates nothing new.
    b.notifier.reconcile().await;
    assert_eq!(b.fake.subscriptions().len(), 6);

    assert_eq!(b.finds("+49 30 901820", "+49 30 3333333"), None);
    b.fake.put(&format!("{DANA}/contacts"), contact("c2", "Neu Kontakt", "+49 30 3333333", "n@x.example", &[]));
    // A forged notification first: answered alike, no sync.
    assert_eq!(b.fake.notify(&format!("users/{DANA}/contacts"), "c2", Delivery::WrongClientState).await, [202]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.runs("dana-m365"), 0, "a wrong clientState starts no sync");
    assert_eq!(b.finds("+49 30 901820", "+49 30 3333333"), None);

    let sent = Instant::now();
    assert_eq!(b.fake.notify(&format!("users/{DANA}/contacts"), "c2", Delivery::Duplicate).await, [202, 202]);
    loop {
        if b.finds("+49 30 901820", "+49 30 3333333").as_deref() == Some("Neu Kontakt") {
            break;
        }
        assert!(sent.elapsed() < Duration::from_secs(5), "not findable within 5 s of the notification");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = sent.elapsed();
    eprintln!("findable {} ms after the notification", took.as_millis());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs = b.runs("dana-m365");
    assert!((1..=2).contains(&runs), "a duplicate notification makes at most one more run: {runs}");
    assert_eq!(b.runs("otto-m365"), 0, "the other tenant's account is not synced");
    assert_eq!(b.subscriptions.counts().rejected, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_notifications_start_no_sync_and_tell_nothing() {
    let b = bridge().await;
    let dana = b.subscription(DANA, "contacts");
    let otto = b.subscription(OTTO, "contacts");
    let note = |id: &str, state: &str| {
        json!({ "value": [{ "subscriptionId": id, "clientState": state, "changeType": "updated",
            "resource": "users/x/contacts/c1", "tenantId": "contoso" }] })
    };
    // Unknown subscription; Dana's subscription with Otto's clientState (another tenant's
    // secret); Otto's subscription id with Dana's clientState; no clientState; not JSON.
    let forged = [
        note("00000000-dead-beef-0000-000000000000", dana.client_state.as_deref().unwrap()),
        note(&dana.id, otto.client_state.as_deref().unwrap()),
        note(&otto.id, dana.client_state.as_deref().unwrap()),
        json!({ "value": [{ "subscriptionId": dana.id }] }),
        json!("not a notification"),
        json!({ "value": [{ "subscriptionId": dana.id, "clientState": dana.client_state, "lifecycleEvent": "subscriptionRemoved" }] }),
    ];
    for body in &forged {
        assert_eq!(b.post(CHANGES, body).await, 202, "{body}");
    }
    // Huge body: refused before it is read whole.
    let huge = json!({ "value": [{ "subscriptionId": "x".repeat(400 * 1024), "clientState": "y" }] });
    assert_eq!(b.post(CHANGES, &huge).await, 413);
    // Many per second, in parallel: all answered, none starts a sync.
    let started = Instant::now();
    let client = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..400 {
        let (client, url) = (client.clone(), format!("{}{CHANGES}", b.web));
        let body = note(&format!("sub-{n}"), "guess");
        tasks.spawn(async move { client.post(url).json(&body).send().await.map(|r| r.status().as_u16()).unwrap_or(0) });
    }
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    while let Some(s) = tasks.join_next().await {
        *statuses.entry(s.unwrap()).or_default() += 1;
    }
    eprintln!("400 forged notifications in {} ms: {statuses:?}", started.elapsed().as_millis());
    assert!(statuses.keys().all(|s| *s == 202 || *s == 503), "{statuses:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The lifecycle one carried Dana's own secret: that one is genuine (a re-creation and a sync).
    assert_eq!(b.runs("otto-m365"), 0, "Dana's secret never triggers the other tenant's sync");
    let counts = b.subscriptions.counts();
    assert_eq!(counts.accepted, 1, "{counts:?}");
    assert!(counts.rejected >= 5, "{counts:?}");
    // The validation echo is text/plain (no reflected markup), bounded.
    let r = client.post(format!("{}{CHANGES}?validationToken=%3Cscript%3Ex", b.web)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.text().await.unwrap(), "<script>x");
    let long = "a".repeat(5000);
    assert_eq!(client.post(format!("{}{CHANGES}?validationToken={long}", b.web)).send().await.unwrap().status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_notifications_renew_recreate_and_removal_unsubscribes() {
    let b = bridge().await;
    let before = b.subscription(DANA, "events");
    // reauthorizationRequired: renewed (same id), and the account syncs (changes may be held back).
    assert_eq!(b.fake.lifecycle(&before.id, "reauthorizationRequired").await, 202);
    // subscriptionRemoved for contacts: a new subscription replaces it.
    let contacts = b.subscription(DANA, "contacts");
    assert_eq!(b.fake.lifecycle(&contacts.id, "subscriptionRemoved").await, 202);
    for a in [
        Action::Renew(before.id.clone(), watch("dana-m365", DANA, "events")),
        Action::Recreate(contacts.id.clone(), watch("dana-m365", DANA, "contacts")),
    ] {
        b.notifier.handle(a).await;
    }
    let after = b.subscription(DANA, "events");
    assert_eq!(after.id, before.id);
    assert!(after.expires >= before.expires);
    let recreated = b.subscription(DANA, "contacts");
    assert_ne!(recreated.id, contacts.id);
    // A subscription Graph lost: renewal gets 404 and creates a new one.
    let messages = b.subscription(DANA, "messages");
    b.fake.forget_subscription(&messages.id);
    b.notifier.handle(Action::Renew(messages.id.clone(), watch("dana-m365", DANA, "messages"))).await;
    assert_ne!(b.subscription(DANA, "messages").id, messages.id);
    // A disabled account's subscriptions are deleted at Graph.
    b.registry.set_enabled("otto-m365", false).unwrap();
    b.notifier.reconcile().await;
    assert!(b.fake.subscriptions().iter().all(|s| !s.resource.contains(OTTO)));
    assert_eq!(b.fake.subscriptions().len(), 3);
    // A removed account's subscriptions too, though its credentials are gone with it.
    b.registry.set_enabled("otto-m365", true).unwrap();
    b.notifier.reconcile().await;
    assert_eq!(b.fake.subscriptions().len(), 6);
    b.registry.remove("otto-m365").unwrap();
    b.notifier.reconcile().await;
    assert!(b.fake.subscriptions().iter().all(|s| !s.resource.contains(OTTO)));
    assert_eq!(b.fake.subscriptions().len(), 3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(b.runs("dana-m365") >= 1, "lifecycle events sync the account");
}

fn watch(account: &str, mailbox: &str, part: &str) -> contactbridge::sync::notifications::Watch {
    contactbridge::sync::notifications::Watch { account: account.into(), mailbox: mailbox.into(), part: part.into() }
}

/// Two replicas on one PostgreSQL store, each with its own notifier, table and web
/// server, Graph posting to one public URL that a load balancer may hand to either:
/// reconciling at once they subscribe once (the lease, and the table in the store); a
/// notification for what replica A subscribed counts on replica B; a forged one does
/// not; and a restarted replica still knows every subscription (no re-subscribing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_subscribe_once_and_each_accepts_what_another_subscribed() {
    use contactbridge::store::postgres::testing::shared_database;
    use contactbridge::store::{Maintenance as _, PgOptions, PgStore};
    use contactbridge::sync::lease::Leasing;
    use contactbridge::sync::notifications::changes_url;
    use std::sync::atomic::{AtomicU64, Ordering};
    let fake = FakeGraph::start().await;
    fake.put(&format!("{DANA}/contacts"), contact("c1", "Erika Muster", "+49 30 1111111", "e@x.example", &[]));
    let db = shared_database();
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_file(&dir.path().join("secret.key"), true).unwrap();
    let open = || {
        let options = PgOptions { pool_size: 2, ..PgOptions::new(db.url.clone()) };
        Arc::new(tokio::task::block_in_place(|| PgStore::open(&options, dir.path())).unwrap())
    };
    let yearly = Schedule::new("0 0 1 1 *", "UTC").unwrap();
    let (store_a, store_b) = (open(), open());
    let mut p = UserProfile::new(UserId::parse("contoso.dana").unwrap(), "contoso");
    p.called_numbers = vec!["+49 30 901820".into()];
    tokio::task::block_in_place(|| user::put_profile(store_a.as_ref(), &p)).unwrap();

    struct Replica {
        subscriptions: Arc<Subscriptions>,
        notifier: Arc<Notifier>,
        web: String,
        accepted: Arc<AtomicU64>,
    }
    // Both notifiers give Graph replica A's address as the public URL (the load balancer's).
    let listener_a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = url::Url::parse(&format!("http://{}", listener_a.local_addr().unwrap())).unwrap();
    let replica = |store: Arc<PgStore>, name: &str, listener: tokio::net::TcpListener| {
        let leases = tokio::task::block_in_place(|| store.replication(name)).unwrap().unwrap().leases;
        let registry = Arc::new(Registry::new(store.clone(), key.clone(), yearly.clone()).with_leasing(Leasing {
            store: leases,
            holder: name.to_string(),
            ttl: Duration::from_secs(30),
        }));
        let subscriptions =
            Arc::new(tokio::task::block_in_place(|| Subscriptions::shared(store.clone(), &changes_url(&public))));
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        let on_action = Arc::new(move |_: Action| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        let hub = CallHub::new(store.clone() as Arc<dyn Store>);
        let state = WebState::new(store.clone(), store.clone(), hub)
            .with_notifications(Receiver::new(subscriptions.clone(), on_action));
        let web = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(contactbridge::web::serve(state, listener, std::future::pending(), Duration::from_secs(1)));
        let notifier = Arc::new(Notifier::new(registry.clone(), subscriptions.clone(), &public));
        (registry, Replica { subscriptions, notifier, web, accepted })
    };
    let (registry_a, a) = replica(store_a.clone(), "replica-a", listener_a);
    let (_registry_b, b) =
        replica(store_b.clone(), "replica-b", tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    let mut dana =
        AccountSpec::new("dana-m365", UserId::parse("contoso.dana").unwrap(), graph_account(&fake, "contoso", DANA));
    dana.schedule = Some(yearly.clone());
    tokio::task::block_in_place(|| registry_a.add(dana)).unwrap();

    tokio::join!(a.notifier.reconcile(), b.notifier.reconcile());
    a.notifier.reconcile().await;
    b.notifier.reconcile().await;
    let subs = fake.subscriptions();
    assert_eq!(subs.len(), 3, "one subscription per part, not one per replica: {subs:?}");

    let post = |web: String, body: serde_json::Value| async move {
        reqwest::Client::new().post(format!("{web}{CHANGES}")).json(&body).send().await.unwrap().status().as_u16()
    };
    let note = |id: &str, state: &str| {
        json!({ "value": [{ "subscriptionId": id, "clientState": state, "changeType": "updated",
            "resource": format!("users/{DANA}/contacts/c1"), "tenantId": "contoso" }] })
    };
    let contacts = subs.iter().find(|s| s.resource.ends_with("/contacts")).unwrap();
    let state = contacts.client_state.clone().unwrap();
    for replica in [&a, &b] {
        assert_eq!(post(replica.web.clone(), note(&contacts.id, &state)).await, 202);
        assert_eq!(post(replica.web.clone(), note(&contacts.id, "forged-state")).await, 202);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.accepted.load(Ordering::Relaxed), 1, "{:?}", a.subscriptions.counts());
    assert_eq!(b.accepted.load(Ordering::Relaxed), 1, "B counts what A subscribed: {:?}", b.subscriptions.counts());
    assert_eq!(b.subscriptions.counts().rejected, 1);

    // A restart: a new table from the store knows every subscription; reconciling adds none.
    let restarted =
        Arc::new(tokio::task::block_in_place(|| Subscriptions::shared(store_b.clone(), &changes_url(&public))));
    let n: contactbridge::sync::notifications::Notifications =
        serde_json::from_value(note(&contacts.id, &state)).unwrap();
    assert!(restarted.check(&n.value[0]).is_some());
    b.notifier.reconcile().await;
    assert_eq!(fake.subscriptions().len(), 3);

    // web.public_url changed: the next pass replaces every subscription (deleted at Graph).
    let moved = url::Url::parse(&b.web).unwrap();
    let table = Arc::new(tokio::task::block_in_place(|| Subscriptions::shared(store_b.clone(), &changes_url(&moved))));
    let registry = Arc::new(Registry::new(store_b.clone(), key.clone(), yearly.clone()));
    Notifier::new(registry, table, &moved).reconcile().await;
    let now = fake.subscriptions();
    assert_eq!(now.len(), 3, "{now:?}");
    assert!(now.iter().all(|s| s.notification_url == changes_url(&moved)), "{now:?}");
}

/// The notification routes of the real `serve` binary, over its HTTPS listener: accounts of two
/// tenants registered with the CLI (their Graph is the fake, which trusts the test certificate),
/// `web.public_url` set, so `serve` subscribes at start and the fake runs the validation handshake
/// against it. Then, over the wire: the handshake echoes the token as text; a notification with
/// the wrong clientState and one naming the other tenant's subscription are answered 202 and
/// start no sync (the new contact is not found); an oversized body gets 413; the genuine
/// notification makes the contact findable through the running server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_binary_checks_notifications_on_its_https_listener() {
    use support::binary::{cb, text, Serve};
    let fake = FakeGraph::start().await;
    fake.put(&format!("{DANA}/contacts"), contact("c1", "Erika Muster", "+49 30 1111111", "e@x.example", &[]));
    fake.put(&format!("{OTTO}/contacts"), contact("c9", "Franz Huber", "+43 1 2222222", "f@x.example", &[]));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    fake_graph::trust_root(cert.cert.pem().as_bytes());
    let (authority, base) = (fake.authority(), fake.base.clone());
    let cli = |args: Vec<&str>| {
        let out = tokio::task::block_in_place(|| {
            support::binary::cb_in(dir.path(), &data, &args, &[("CB_S", fake_graph::CLIENT_SECRET)])
        });
        assert!(out.status.success(), "{args:?}: {:?}", text(&out));
        text(&out).0
    };
    for (user, tenant, did, mailbox) in
        [("contoso.dana", "contoso", "+49 30 7001820", DANA), ("fabrikam.otto", "fabrikam", "+43 1 5334455", OTTO)]
    {
        cli(vec!["user", "add", user, "--tenant", tenant, "--number", did]);
        let id = format!("{}-m365", &user[user.find('.').unwrap() + 1..]);
        let add = format!(
            "account add graph --id {id} --user {user} --tenant {tenant} --client-id {} --client-secret-env CB_S \
             --mailbox {mailbox} --authority {authority} --graph-base {base} --allow-plain-http --region DE",
            fake_graph::CLIENT_ID
        );
        cli(add.split_whitespace().chain(["--schedule", "0 0 1 1 *"]).collect());
    }
    cli(vec!["sync", "--once"]);
    let port = support::tools::free_port();
    let p = |f: &str| dir.path().join(f).display().to_string();
    let (web_listen, public_url, cert_path, key_path) =
        (format!("127.0.0.1:{port}"), format!("https://localhost:{port}"), p("cert.pem"), p("key.pem"));
    let serve = tokio::task::block_in_place(|| {
        Serve::start_with(
            &data,
            &[
                ("CONTACTBRIDGE_WEB__LISTEN", &web_listen),
                ("CONTACTBRIDGE_WEB__PUBLIC_URL", &public_url),
                ("CONTACTBRIDGE_WEB__TLS_CERT", &cert_path),
                ("CONTACTBRIDGE_WEB__TLS_KEY", &key_path),
            ],
        )
    });
    // serve subscribes at start: one subscription per mailbox and part, validated against it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let subscription = |mailbox: &str| {
        let resource = format!("users/{mailbox}/contacts");
        fake.subscriptions().into_iter().find(|s| s.resource == resource)
    };
    while subscription(DANA).is_none() || subscription(OTTO).is_none() {
        assert!(Instant::now() < deadline, "serve did not subscribe: {:?}\n{}", fake.subscriptions(), serve.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (dana, otto) = (subscription(DANA).unwrap(), subscription(OTTO).unwrap());
    assert_eq!(dana.notification_url, format!("{public_url}{CHANGES}"));
    let finds = |did: &str, cli: &str| {
        let out = tokio::task::block_in_place(|| cb(&data, &["lookup", "--called", did, "--cli", cli]));
        text(&out).0
    };
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let post = |body: serde_json::Value| {
        let client = client.clone();
        let url = format!("{public_url}{CHANGES}");
        async move { client.post(url).json(&body).send().await.unwrap().status().as_u16() }
    };

    // The handshake: the token back as text, nothing else.
    let r = client.post(format!("{public_url}{CHANGES}?validationToken=%3Cscript%3Ex")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(r.text().await.unwrap(), "<script>x");

    // New contacts at both sources; forged notifications about them start no sync.
    fake.put(&format!("{DANA}/contacts"), contact("c2", "Neu Kontakt", "+49 30 3333333", "n@x.example", &[]));
    fake.put(&format!("{OTTO}/contacts"), contact("c8", "Otto Neu", "+43 1 4444444", "o@x.example", &[]));
    let note = |id: &str, state: &str| {
        json!({ "value": [{ "subscriptionId": id, "clientState": state, "changeType": "updated",
            "resource": "users/x/contacts/c2", "tenantId": "contoso" }] })
    };
    assert_eq!(fake.notify(&format!("users/{DANA}/contacts"), "c2", Delivery::WrongClientState).await, [202]);
    assert_eq!(post(note(&otto.id, dana.client_state.as_deref().unwrap())).await, 202, "another tenant's subscription");
    assert_eq!(post(note(&dana.id, otto.client_state.as_deref().unwrap())).await, 202, "another tenant's secret");
    let huge = json!({ "value": [{ "subscriptionId": "x".repeat(400 * 1024), "clientState": "y" }] });
    assert_eq!(post(huge).await, 413);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!finds("+49 30 7001820", "+49 30 3333333").contains("Neu Kontakt"), "a forged notification synced");
    assert!(!finds("+43 1 5334455", "+43 1 4444444").contains("Otto Neu"), "the other tenant's account synced");

    // The genuine one: the contact is found through the running server.
    assert_eq!(fake.notify(&format!("users/{DANA}/contacts"), "c2", Delivery::Once).await, [202]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !finds("+49 30 7001820", "+49 30 3333333").contains("Neu Kontakt") {
        assert!(Instant::now() < deadline, "not findable after the genuine notification");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!finds("+43 1 5334455", "+43 1 4444444").contains("Otto Neu"), "the other tenant's account synced");
}
