//! The window's "Set code" (`PUT /api/contact/code`) on a PostgreSQL store that fails in
//! the middle of it: the assignment is written, then writing the account's pending
//! write-back fails as a full disk does (a trigger on the real server raises PostgreSQL's
//! `disk_full` for account rows). The viewer gets a 5xx with a message and no secret,
//! and nothing of the change is left behind: no assignment, no write-back; the next call
//! is handled as before. Once the disk has room again the same request succeeds.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::{Duration, Utc};
use contactbridge::accounts::{AccountSpec, AccountStore as _, SourceKind};
use contactbridge::live::CallHub;
use contactbridge::resolve::{CallQuery, Resolver};
use contactbridge::store::postgres::testing::shared_database;
use contactbridge::store::postgres::{PgOptions, PgStore};
use contactbridge::store::{AssignTarget, Store, UserStore};
use contactbridge::user::{HandlingCode, UserId};
use contactbridge::web::{self, auth};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;

const DEMO_DID: &str = "+49 30 901820";
const ERIKA: &str = "+49301234567";

/// Account rows of `user_kv` (keys starting with `A`) cannot be written: "No space left on device".
const DISK_FULL: &str = "
    CREATE FUNCTION cb_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'could not extend file \"base/16384/16385\": No space left on device'
        USING ERRCODE = 'disk_full'; END $$;
    CREATE TRIGGER cb_test_disk_full BEFORE INSERT OR UPDATE ON user_kv
        FOR EACH ROW WHEN (get_byte(NEW.k, 0) = 65) EXECUTE FUNCTION cb_test_disk_full();";
const ROOM_AGAIN: &str = "DROP TRIGGER cb_test_disk_full ON user_kv; DROP FUNCTION cb_test_disk_full();";

async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    cookie: &str,
    body: Option<Value>,
) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "bridge.test")
        .header(header::ORIGIN, "http://bridge.test")
        .header(header::COOKIE, cookie);
    let req = match body {
        Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_code_on_a_store_that_fails_mid_write_answers_5xx_and_leaves_nothing_half_written() {
    let db = shared_database();
    let store = Arc::new(PgStore::open(&PgOptions::new(db.url.clone()), Path::new("")).unwrap());
    contactbridge::demo::load(store.as_ref(), &contactbridge::demo::default_dir(), Utc::now()).await.unwrap();
    let demo = UserId::parse("demo").unwrap();
    let dynstore: Arc<dyn Store> = store.clone();
    let hub = CallHub::new(dynstore.clone());
    let router = web::router(web::WebState::new(dynstore.clone(), store.clone(), hub).with_accounts(store.clone()));
    let resolver = Resolver::new(dynstore);
    let ring = || {
        resolver
            .resolve(&CallQuery { called: DEMO_DID.into(), cli: ERIKA.into(), tsps_call_id: None, at: Utc::now() })
            .unwrap()
    };

    // Signed in as demo; Erika's account writes codes back (category Family carries code family).
    let token = auth::issue_login(store.as_ref(), store.as_ref(), &demo, Duration::hours(1), Utc::now()).unwrap();
    let res = router
        .clone()
        .oneshot(Request::builder().uri(auth::login_path(&token)).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    let at = ring().candidates[0].stored.at.clone();
    let code_before = ring().handling_code;
    let mut spec = AccountSpec::new(&at.account, demo.clone(), SourceKind::Files { path: "/nowhere".into() });
    spec.write_back_codes = true;
    spec.category_codes.insert("Family".into(), HandlingCode::parse("family").unwrap());
    store.put_account(&spec, None).unwrap();
    let (_, hits) = call(&router, "GET", "/api/search?q=Erika", &cookie, None).await;
    let hits: Value = serde_json::from_str(&hits).unwrap();
    let set = json!({ "contact": hits[0]["contact"].as_str().unwrap(), "code": "family" });

    let sql = |statements: &str| {
        tokio::task::block_in_place(|| {
            let mut sql = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
            sql.batch_execute(statements).unwrap();
        })
    };
    sql(DISK_FULL);
    let (status, body) = call(&router, "PUT", "/api/contact/code", &cookie, Some(set.clone())).await;
    assert!(status.is_server_error(), "{status}: {body}");
    let error: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert!(!error["error"].as_str().unwrap_or_default().is_empty(), "no message: {body}");
    for secret in ["cbtest-password", "postgres://", "No space left", "user_kv"] {
        assert!(!body.contains(secret), "{secret:?} told to the client: {body}");
    }
    // Nothing half-written: neither the assignment nor the pending write-back.
    assert_eq!(store.assignment(&demo, &AssignTarget::Contact(at.clone())).unwrap(), None, "the code was half-set");
    assert!(store.account(&at.account).unwrap().unwrap().code_write_backs.is_empty());
    assert_eq!(ring().handling_code, code_before, "the next call is handled as before");

    // Room again: the same request succeeds.
    sql(ROOM_AGAIN);
    let (status, body) = call(&router, "PUT", "/api/contact/code", &cookie, Some(set)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ring().handling_code.as_str(), "family");
    assert_eq!(store.account(&at.account).unwrap().unwrap().code_write_backs.len(), 1);
}
