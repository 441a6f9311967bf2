//! TLS and mutual TLS on the gRPC port, with certificates made by rcgen for
//! the test (a CA, a server certificate for `localhost`, a client certificate).

use contactbridge::api::auth::{self, Scope};
use contactbridge::api::client::BridgeClient;
use contactbridge::api::pb;
use contactbridge::api::{RunningServer, ServerOptions, TlsFiles};
use contactbridge::live::CallHub;
use contactbridge::store::SledStore;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::Path;
use std::sync::Arc;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    client_cert: String,
    client_key: String,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_key = KeyPair::generate().unwrap();
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |names: Vec<String>, usage| {
            let mut p = CertificateParams::new(names).unwrap();
            p.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(vec!["localhost".into()], ExtendedKeyUsagePurpose::ServerAuth);
        let (client_cert, client_key) = leaf(vec!["pbx.example".into()], ExtendedKeyUsagePurpose::ClientAuth);
        std::fs::write(dir.path().join("ca.pem"), &ca_pem).unwrap();
        std::fs::write(dir.path().join("server.pem"), server_cert).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key).unwrap();
        Self { dir, ca_pem, client_cert, client_key }
    }

    fn files(&self, mutual: bool) -> TlsFiles {
        let p = |f: &str| self.dir.path().join(f);
        TlsFiles { cert: p("server.pem"), key: p("server.key"), client_ca: mutual.then(|| p("ca.pem")) }
    }
}

async fn start(tls: TlsFiles) -> (RunningServer, String) {
    let store = Arc::new(SledStore::temporary().unwrap());
    let key = auth::create_key(store.as_ref(), "acme", Scope::Tsps, "tls test").unwrap().text;
    let hub = CallHub::new(store.clone());
    let options = ServerOptions { tls: Some(tls), ..ServerOptions::default() };
    let server =
        RunningServer::start(store.clone(), store, hub, "127.0.0.1:0".parse().unwrap(), None, options).await.unwrap();
    (server, key)
}

async fn ping(server: &RunningServer, key: &str, tls: Option<ClientTlsConfig>) -> Result<(), String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut ep = Endpoint::from_shared(format!("{scheme}://127.0.0.1:{}", server.addr.port())).unwrap();
    if let Some(t) = tls {
        ep = ep.tls_config(t).map_err(|e| e.to_string())?;
    }
    let mut client = BridgeClient::connect_with(ep, key).await.map_err(|e| e.to_string())?;
    client.calls.ping(pb::PingRequest {}).await.map(|_| ()).map_err(|e| e.to_string())
}

fn client_tls(pki: &Pki, with_identity: bool) -> ClientTlsConfig {
    let mut t = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.ca_pem)).domain_name("localhost");
    if with_identity {
        t = t.identity(Identity::from_pem(&pki.client_cert, &pki.client_key));
    }
    t
}

#[tokio::test]
async fn tls_serves_encrypted_clients_only() {
    let pki = Pki::new();
    let (server, key) = start(pki.files(false)).await;
    ping(&server, &key, Some(client_tls(&pki, false))).await.unwrap();
    assert!(ping(&server, &key, None).await.is_err(), "plaintext must not be served on a TLS port");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_from_the_ca() {
    let pki = Pki::new();
    let (server, key) = start(pki.files(true)).await;
    ping(&server, &key, Some(client_tls(&pki, true))).await.unwrap();
    assert!(ping(&server, &key, Some(client_tls(&pki, false))).await.is_err(), "no client certificate");
    // TLS does not replace the API key.
    assert!(ping(&server, "cb_00000000_x", Some(client_tls(&pki, true))).await.unwrap_err().contains("API key"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn missing_tls_files_are_reported_with_their_path() {
    let store = Arc::new(SledStore::temporary().unwrap());
    let hub = CallHub::new(store.clone());
    let tls =
        TlsFiles { cert: Path::new("/nonexistent/server.pem").into(), key: "/nonexistent/k".into(), client_ca: None };
    let options = ServerOptions { tls: Some(tls), ..ServerOptions::default() };
    let server =
        RunningServer::start(store.clone(), store, hub, "127.0.0.1:0".parse().unwrap(), None, options).await.unwrap();
    let e = server.wait().await.unwrap_err();
    assert!(e.to_string().contains("/nonexistent/server.pem"), "{e}");
}
