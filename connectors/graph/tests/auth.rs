//! Token flows: client credentials against the real npm oauth2-mock-server, the device-code
//! flow against the fake identity endpoints, the shared cache, and secrets kept out of output.

mod support;

use contactbridge_connector::{
    Collection, CollectionKind, Connector, ErrorKind, NoKnownVersions, SyncRequest, VecSink,
};
use contactbridge_graph::{Credential, DeviceLogin, GraphConnector, Secret, TokenCache, TokenSource};
use std::sync::Arc;
use std::time::Duration;
use support::fake_graph::{self, FakeGraph};
use support::OAuthMockServer;

#[tokio::test]
async fn client_credentials_from_oauth2_mock_server_are_fetched_once_for_concurrent_callers() {
    let oauth = OAuthMockServer::start().await;
    let fake = FakeGraph::start().await;
    let mut account = support::account(&fake, &["adele@contoso.com"]);
    account.token_url = Some(oauth.token_url());
    let cache = Arc::new(TokenCache::new(&account).unwrap());
    let calls = (0..16).map(|_| {
        let c = cache.clone();
        tokio::spawn(async move { c.token().await.unwrap() })
    });
    let tokens: Vec<String> = futures::future::join_all(calls).await.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(cache.fetches(), 1, "one token request for 16 concurrent callers");
    assert!(tokens.iter().all(|t| t == &tokens[0]));
    assert_eq!(tokens[0].split('.').count(), 3, "oauth2-mock-server issues JWTs");

    // The mock's token lives 3600 s: with a larger margin every call renews before expiry.
    let eager = TokenCache::new(&account).unwrap().with_refresh_margin(Duration::from_secs(7200));
    eager.token().await.unwrap();
    eager.token().await.unwrap();
    assert_eq!(eager.fetches(), 2);

    // And the token works end to end: the Graph connector syncs with it.
    fake.put(
        "adele@contoso.com/contacts",
        fake_graph::contact("AAMk1", "Ada Lovelace", "+44 20 7946 0001", "ada@example.com", &[]),
    );
    let conn = GraphConnector::with_tokens(account, cache.clone()).unwrap();
    let coll = Collection {
        id: "adele@contoso.com/contacts".into(),
        name: "Contacts".into(),
        kind: CollectionKind::AddressBook,
        owner: Some("adele@contoso.com".into()),
    };
    let mut sink = VecSink::default();
    conn.sync(SyncRequest { collection: &coll, since: None, known: &NoKnownVersions }, &mut sink).await.unwrap();
    assert_eq!(sink.upserts().count(), 1);
    assert_eq!(cache.fetches(), 1, "the connector reuses the cached token");
}

#[tokio::test]
async fn device_code_flow_polls_until_signed_in_and_refresh_tokens_rotate() {
    let fake = FakeGraph::start().await;
    fake.set_device_pending(2);
    let mut account = support::account(&fake, &["me@contoso.com"]);
    account.credential = Credential::DeviceCode { refresh_token: Secret::default() };
    let login = DeviceLogin::start(&account).await.unwrap();
    assert_eq!(login.user_code(), "FJKLSLDJX");
    assert_eq!(login.verification_uri(), "https://microsoft.com/devicelogin");
    let tokens = login.finish(Duration::from_secs(30)).await.unwrap();
    assert_eq!(fake.stats().device_polls, 3, "two authorization_pending answers, then the token");
    let refresh = tokens.refresh_token.expect("a refresh token");

    account.credential = Credential::DeviceCode { refresh_token: refresh.clone() };
    let cache = TokenCache::new(&account).unwrap();
    cache.token().await.unwrap();
    let rotated = cache.refresh_token().unwrap();
    assert_ne!(rotated, refresh, "the server rotated the refresh token and the cache kept the new one");
}

#[tokio::test]
async fn secrets_and_tokens_never_appear_in_errors_or_debug_output() {
    let fake = FakeGraph::start().await;
    let mut account = support::account(&fake, &["adele@contoso.com"]);
    let wrong = "wrong-secret-value-123";
    account.credential = Credential::ClientSecret { secret: Secret::new(wrong) };
    let cache = TokenCache::new(&account).unwrap();
    let err = cache.token().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    for text in [format!("{err}"), format!("{err:?}"), format!("{account:?}"), format!("{cache:?}")] {
        assert!(!text.contains(wrong), "secret leaked: {text}");
    }
    assert!(err.to_string().contains("invalid_client"), "{err}");

    // A Graph error after a successful sign-in names neither the token nor the secret.
    let account = support::account(&fake, &["fenced@contoso.com"]);
    fake.fence("fenced@contoso.com");
    let conn = GraphConnector::new(account.clone()).unwrap();
    let token = conn.tokens().token().await.unwrap();
    let coll = Collection {
        id: "fenced@contoso.com/contacts".into(),
        name: "Contacts".into(),
        kind: CollectionKind::AddressBook,
        owner: None,
    };
    let err = conn
        .sync(SyncRequest { collection: &coll, since: None, known: &NoKnownVersions }, &mut VecSink::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    for text in [format!("{err}"), format!("{err:?}"), format!("{conn:?}")] {
        assert!(!text.contains(&token) && !text.contains(fake_graph::CLIENT_SECRET), "leak: {text}");
    }
}

#[tokio::test]
async fn certificate_credentials_sign_a_client_assertion_the_identity_platform_verifies() {
    let fake = FakeGraph::start().await;
    let private = include_str!("support/cert/test_key.pem");
    let public = include_bytes!("support/cert/test_key.pub.pem");
    let thumbprint = "5A7A2D3C9B1E0F4D6C8B2A19384756AFBECD0123";
    // base64url of the 20 thumbprint bytes, as Azure expects in the `x5t` header.
    fake.register_certificate(public, "WnotPJseD01siyoZOEdWr77NASM");
    let mut account = support::account(&fake, &["adele@contoso.com"]);
    account.credential =
        Credential::Certificate { private_key_pem: Secret::new(private), thumbprint: thumbprint.into() };
    assert!(!format!("{account:?}").contains("PRIVATE KEY"));
    let cache = TokenCache::new(&account).unwrap();
    cache.token().await.unwrap();
    assert_eq!(fake.stats().assertions_verified, 1);

    // An assertion for another certificate (thumbprint) is refused: an auth error.
    fake.register_certificate(public, "AAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let err = TokenCache::new(&account).unwrap().token().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(!err.to_string().contains("PRIVATE KEY"));

    account.credential = Credential::Certificate { private_key_pem: Secret::new(private), thumbprint: "abc".into() };
    assert_eq!(TokenCache::new(&account).unwrap_err().kind, ErrorKind::Local);
}

/// Token errors keep the HTTP status and the identity provider's error code, and their kind
/// follows it: an unknown tenant (AADSTS90002) is "not found", not rejected credentials; a
/// 404 page that is no OAuth answer says 404; a closed port names host and port.
#[tokio::test]
async fn token_errors_keep_the_status_and_the_identity_providers_code() {
    let fake = FakeGraph::start().await;
    let mut account = support::account(&fake, &["adele@contoso.com"]);
    account.tenant = "unknown-tenant.example".into();
    let err = TokenCache::new(&account).unwrap().token().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    for part in ["HTTP 400", "invalid_request", "AADSTS90002", "unknown-tenant.example"] {
        assert!(err.message.contains(part), "{part} in {err}");
    }
    assert!(!err.message.contains("Trace ID"), "only the first line of the description: {err}");

    account.tenant = "missing-tenant".into();
    let err = TokenCache::new(&account).unwrap().token().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert!(err.message.contains("HTTP 404") && err.message.contains("Not Found"), "{err}");
    assert!(!err.message.contains("unreadable"), "{err}");

    account.tenant = fake_graph::TENANT.into();
    account.client_id = "00000000-0000-0000-0000-000000000000".into();
    let err = TokenCache::new(&account).unwrap().token().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "an unknown app is not a wrong secret: {err}");
    assert!(err.message.contains("AADSTS700016"), "{err}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    account.authority = format!("http://127.0.0.1:{closed}");
    let err = TokenCache::new(&account).unwrap().token().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unreachable, "{err}");
    assert!(err.message.contains(&format!("127.0.0.1:{closed}")), "{err}");
}
