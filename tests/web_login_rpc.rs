//! Admin `IssueWebLogin` over a real gRPC server: an admin key issues a link to
//! the notification window for a user of its tenant only, and the link signs in
//! once on the web router.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::Utc;
use contactbridge::api::auth::{self, Scope};
use contactbridge::api::client::BridgeClient;
use contactbridge::api::pb;
use contactbridge::api::{RunningServer, ServerOptions};
use contactbridge::live::CallHub;
use contactbridge::store::SledStore;
use contactbridge::user::{self, UserId, UserProfile};
use contactbridge::web::{self, auth::WebLogins};
use std::sync::Arc;
use tonic::Code;
use tower::ServiceExt;

#[tokio::test]
async fn an_admin_issues_a_login_link_for_users_of_its_tenant_only() {
    let store = Arc::new(SledStore::temporary().unwrap());
    contactbridge::demo::load(store.as_ref(), &contactbridge::demo::default_dir(), Utc::now()).await.unwrap();
    let mut olga = UserProfile::new(UserId::parse("other.olga").unwrap(), "other");
    olga.called_numbers = vec!["+49 89 555000".into()];
    user::put_profile(store.as_ref(), &olga).unwrap();
    let key = |tenant: &str, scope| auth::create_key(store.as_ref(), tenant, scope, "test").unwrap().text;
    let (admin, tsps) = (key("demo", Scope::Admin), key("demo", Scope::Tsps));
    let hub = CallHub::new(store.clone());
    let web_logins =
        WebLogins { tokens: store.clone(), base_url: "http://window.test:8080/".into(), sessions: Default::default() };
    let server = RunningServer::start(
        store.clone(),
        store.clone(),
        hub.clone(),
        "127.0.0.1:0".parse().unwrap(),
        None,
        ServerOptions { web_logins: Some(web_logins), ..ServerOptions::default() },
    )
    .await
    .unwrap();
    let endpoint = format!("http://{}", server.addr);
    let mut c = BridgeClient::connect(&endpoint, &admin).await.unwrap();

    let issued = c
        .admin
        .issue_web_login(pb::IssueWebLoginRequest { user_id: "demo".into(), valid_seconds: 600 })
        .await
        .unwrap()
        .into_inner();
    let path = issued.url.strip_prefix("http://window.test:8080").unwrap_or_else(|| panic!("{}", issued.url));
    assert!(path.starts_with("/login?token=cbw_"), "{path}");
    let expires = issued.expires.unwrap().seconds;
    assert!((expires - (Utc::now().timestamp() + 600)).abs() < 60, "{expires}");

    let router = web::router(web::WebState::new(store.clone(), store.clone(), hub));
    let login = |p: &str| Request::builder().uri(p).body(Body::empty()).unwrap();
    let res = router.clone().oneshot(login(path)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    let me = Request::builder().uri("/api/me").header(header::COOKIE, cookie).body(Body::empty()).unwrap();
    assert_eq!(router.clone().oneshot(me).await.unwrap().status(), StatusCode::OK);
    assert_eq!(router.oneshot(login(path)).await.unwrap().status(), StatusCode::UNAUTHORIZED, "once only");

    let refused = |r: Result<tonic::Response<pb::IssueWebLoginResponse>, tonic::Status>| r.unwrap_err().code();
    let other_tenant =
        c.admin.issue_web_login(pb::IssueWebLoginRequest { user_id: "other.olga".into(), valid_seconds: 0 }).await;
    assert_eq!(refused(other_tenant), Code::NotFound, "another tenant's user answers as an unknown one");
    let nobody = c.admin.issue_web_login(pb::IssueWebLoginRequest { user_id: "nobody".into(), valid_seconds: 0 }).await;
    assert_eq!(refused(nobody), Code::NotFound);
    let too_long =
        c.admin.issue_web_login(pb::IssueWebLoginRequest { user_id: "demo".into(), valid_seconds: 90 * 86_400 }).await;
    assert_eq!(refused(too_long), Code::InvalidArgument);
    let mut t = BridgeClient::connect(&endpoint, &tsps).await.unwrap();
    let by_tsps = t.admin.issue_web_login(pb::IssueWebLoginRequest { user_id: "demo".into(), valid_seconds: 0 }).await;
    assert_eq!(refused(by_tsps), Code::PermissionDenied);
}

#[tokio::test]
async fn a_server_without_the_window_answers_unimplemented() {
    let store = Arc::new(SledStore::temporary().unwrap());
    contactbridge::demo::load(store.as_ref(), &contactbridge::demo::default_dir(), Utc::now()).await.unwrap();
    let admin = auth::create_key(store.as_ref(), "demo", Scope::Admin, "test").unwrap().text;
    let server = RunningServer::start(
        store.clone(),
        store.clone(),
        CallHub::new(store.clone()),
        "127.0.0.1:0".parse().unwrap(),
        None,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let mut c = BridgeClient::connect(&format!("http://{}", server.addr), &admin).await.unwrap();
    let r = c.admin.issue_web_login(pb::IssueWebLoginRequest { user_id: "demo".into(), valid_seconds: 0 }).await;
    assert_eq!(r.unwrap_err().code(), Code::Unimplemented);
}
