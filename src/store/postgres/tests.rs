//! The PostgreSQL backend's own mechanics at the interface where faults
//! arrive: the server down at open, a connection killed in the middle of a
//! change set, replicas migrating at once, a newer schema, the password kept
//! out of errors and logs, and the synchronous client inside tokio.

use super::testing::{shared_database, shared_server, wait_for, PgServer, TestDatabase};
use super::{redact_url, PgOptions, PgStore};
use crate::store::conformance::support::{batch, contact, profile, scope, user};
use crate::store::{IndexStore, StoreError, UserStore};
use std::path::Path;
use std::time::Duration;

fn open(db: &TestDatabase) -> PgStore {
    PgStore::open(&PgOptions { pool_size: 2, ..PgOptions::new(db.url.clone()) }, Path::new("")).unwrap()
}

/// The test server's superuser password (in every test URL).
const PASSWORD: &str = "cbtest-password";

#[test]
fn the_password_is_taken_out_of_urls() {
    assert_eq!(redact_url("postgres://cb:s3cret@db:5432/x"), "postgres://cb:***@db:5432/x");
    assert_eq!(
        redact_url("postgresql://cb@db/x?password=s3cret&sslmode=require"),
        "postgresql://cb@db/x?password=***&sslmode=require"
    );
    assert_eq!(redact_url("host=db user=cb password=s3cret dbname=x"), "host=db user=cb password=*** dbname=x");
    assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
    assert!(!format!("{:?}", PgOptions::new("postgres://cb:s3cret@db/x")).contains("s3cret"));
}

/// Log lines written while `f` runs.
fn logs_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    (out, text)
}

#[test]
fn a_server_that_is_down_at_open_is_a_clear_error_naming_the_url_without_its_password() {
    let server = PgServer::start();
    let url = server.url("postgres");
    server.stop();
    let (result, logs) = logs_of(|| {
        PgStore::open(
            &PgOptions { connect_timeout: Duration::from_secs(2), ..PgOptions::new(url.clone()) },
            Path::new(""),
        )
    });
    let err = match result {
        Err(e) => e.to_string(),
        Ok(_) => panic!("opened a stopped server"),
    };
    assert!(err.contains("connecting to PostgreSQL"), "{err}");
    assert!(err.contains(&format!("postgres://postgres:***@127.0.0.1:{}/postgres", server.port())), "{err}");
    assert!(err.to_lowercase().contains("refused"), "the cause is named: {err}");
    assert!(!err.contains(PASSWORD) && !logs.contains(PASSWORD), "{err}\n{logs}");

    // The server comes back: the next open works.
    server.start_again();
    let (store, logs) = logs_of(|| PgStore::open(&PgOptions::new(url.clone()), Path::new("")));
    let store = store.unwrap();
    assert!(logs.contains("PostgreSQL store open") && !logs.contains(PASSWORD), "{logs}");
    assert!(store.profiles().unwrap().is_empty());
}

#[test]
fn a_wrong_password_is_refused_without_echoing_it() {
    let db = shared_database();
    let wrong = db.url.replace(PASSWORD, "not-the-password");
    let err = match PgStore::open(&PgOptions::new(wrong), Path::new("")) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a wrong password was accepted"),
    };
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
}

#[test]
fn a_connection_killed_in_the_middle_of_a_change_set_leaves_none_of_it() {
    let db = shared_database();
    let store = open(&db);
    let s = scope("alice", "ab");
    store.apply(&batch(s.clone(), vec![contact("keep", "e:+491")], &[], "1")).unwrap();

    // A change set big enough to be caught in flight: deletes the old contact, adds 20,000.
    let big: Vec<_> = (0..20_000).map(|i| contact(&format!("n{i}"), &format!("e:+4930{i:08}"))).collect();
    let name = db.name.clone();
    let admin = shared_server().url("postgres");
    let killer = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        // Only a backend inside a transaction is in the middle of the change set.
        wait_for(Duration::from_secs(30), || {
            c.query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND xact_start IS NOT NULL AND pid <> pg_backend_pid()",
                &[&name],
            )
            .unwrap()
            .get::<_, i64>(0)
                > 0
        })
    });
    let result = store.apply(&batch(s.clone(), big, &["keep"], "2"));
    assert!(killer.join().unwrap(), "the change set's connection was never seen in flight");
    match result {
        Err(StoreError::Backend { doing, cause }) => {
            assert!(!cause.to_string().contains(PASSWORD), "{doing}: {cause}")
        }
        other => panic!("a change set whose connection was killed reported {other:?}"),
    }
    // Nothing of it: the old checkpoint, the old contact, none of the new ones; the pool recovered.
    let state = store.collection_state(&s).unwrap().unwrap();
    assert_eq!(state.checkpoint, Some(contactbridge_connector::Checkpoint::new("1")));
    assert_eq!(store.contacts_by_phone(&user("alice"), "e:+491").unwrap().len(), 1);
    assert!(store.contacts_by_phone(&user("alice"), "e:+493000000000").unwrap().is_empty());
    assert_eq!(store.count_records(&user("alice"), "acc").unwrap().get("contact"), Some(&1));

    // Sent again, it applies whole.
    let again: Vec<_> = (0..100).map(|i| contact(&format!("n{i}"), &format!("e:+4930{i:08}"))).collect();
    store.apply(&batch(s.clone(), again, &["keep"], "2")).unwrap();
    assert_eq!(store.count_records(&user("alice"), "acc").unwrap().get("contact"), Some(&100));
}

#[test]
fn replicas_opening_at_once_apply_each_migration_once() {
    let db = shared_database();
    let url = db.url.clone();
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::open(&PgOptions { pool_size: 1, ..PgOptions::new(url) }, Path::new("")))
        })
        .collect();
    for o in opened {
        o.join().unwrap().unwrap();
    }
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let versions: Vec<i32> =
        c.query("SELECT version FROM schema_version ORDER BY version", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, (1..=super::schema::latest()).collect::<Vec<_>>());
}

#[test]
fn a_database_of_a_newer_build_is_refused() {
    let db = shared_database();
    drop(open(&db));
    let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    c.execute("INSERT INTO schema_version (version, description) VALUES (9999, 'from the future')", &[]).unwrap();
    let err = match PgStore::open(&PgOptions::new(db.url.clone()), Path::new("")) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("opened a newer schema"),
    };
    assert!(err.contains("schema version 9999") && err.contains("newer"), "{err}");
}

/// The web session extractor and admin RPCs call the store inline on the
/// runtime: a synchronous client must not start its runtime inside tokio's.
#[test]
fn the_store_answers_inline_inside_either_kind_of_tokio_runtime() {
    let db = shared_database();
    let store = std::sync::Arc::new(open(&db));
    store.put_profile(&profile("alice"), &[]).unwrap();
    let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s = store.clone();
    let found = multi.block_on(async move { tokio::spawn(async move { s.profile(&user("alice")) }).await.unwrap() });
    assert!(found.unwrap().is_some());
    let current = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let s = store.clone();
    assert!(current.block_on(async move { s.profile(&user("alice")) }).unwrap().is_some());
    // The last handle dropped inside a runtime closes the pool's connections without a panic.
    current.block_on(async move { drop(store) });
}

#[test]
fn after_a_server_restart_the_pool_recovers_and_nothing_committed_is_lost() {
    let server = PgServer::start();
    let db = server.create_database();
    let store = PgStore::open(&PgOptions { pool_size: 2, ..PgOptions::new(db.url.clone()) }, Path::new("")).unwrap();
    store.put_profile(&profile("alice"), &["e:+4930111".into()]).unwrap();
    server.stop();
    assert!(store.profile(&user("alice")).is_err(), "a stopped server answered");
    server.start_again();
    // Each pooled connection that went down with the server fails the one call that finds it closed.
    let mut failures = 0;
    let found = loop {
        match store.user_by_called_number("e:+4930111") {
            Ok(found) => break found,
            Err(e) => {
                failures += 1;
                assert!(failures <= 2, "still failing after the restart: {e}");
            }
        }
    };
    assert_eq!(found, Some(user("alice")));
    assert!(store.profile(&user("alice")).unwrap().is_some());
}

/// The pool's connections run without JIT (a prepared lookup's generic plan was
/// estimated past `jit_above_cost` and compiled for ≈ 10 ms on every call), and the
/// options a URL gives are kept beside it.
#[test]
fn the_pools_connections_run_without_jit_and_keep_the_urls_options() {
    let db = shared_database();
    let show = |store: &PgStore, setting: &'static str| -> String {
        store.with(|c| c.session().query("showing a setting", setting, &[])).unwrap()[0].get(0)
    };
    let store = open(&db);
    assert_eq!(show(&store, "SHOW jit"), "off");
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}options=-c%20statement_timeout%3D4321", db.url);
    let with_options = PgStore::open(&PgOptions::new(url), Path::new("")).unwrap();
    assert_eq!(show(&with_options, "SHOW jit"), "off");
    assert_eq!(show(&with_options, "SHOW statement_timeout"), "4321ms");
}
