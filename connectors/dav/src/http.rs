//! HTTP transport for libdav: a hyper-util client over rustls (web PKI roots plus an
//! optional private CA), with the account's authorization and a response timeout.

use crate::account::{Credentials, DavAccount};
use async_trait::async_trait;
use base64::Engine as _;
use contactbridge_connector::Error;
use http::{header::AUTHORIZATION, HeaderValue, Request, Response};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls_pki_types::{pem::PemObject, CertificateDer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Gives a current bearer token for each request (an OAuth token cache that
/// refreshes before expiry). Plugged in with [`crate::DavConnector::with_token_source`].
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// A valid access token. Errors keep their kind (usually [`contactbridge_connector::ErrorKind::Auth`]).
    async fn token(&self) -> Result<String, Error>;
}

/// Why a request did not get a response.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("connection failed: {}", chain(.0))]
    Connect(#[source] hyper_util::client::legacy::Error),
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("could not get an access token: {0}")]
    Token(#[source] Error),
    #[error("invalid credentials for an HTTP header")]
    BadHeader,
}

/// An error and its sources on one line (rustls puts the certificate problem in a source).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[derive(Clone)]
enum Auth {
    None,
    Header(HeaderValue),
    Tokens(Arc<dyn TokenSource>),
}

type HyperClient = Client<HttpsConnector<HttpConnector>, String>;

/// The tower service libdav sends its requests through.
#[derive(Clone)]
pub struct DavHttp {
    client: HyperClient,
    auth: Auth,
    timeout: Duration,
}

impl std::fmt::Debug for DavHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DavHttp").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl DavHttp {
    /// Builds the transport for `account`. A `tokens` source overrides the
    /// account's credentials with a per-request bearer token.
    pub fn new(account: &DavAccount, tokens: Option<Arc<dyn TokenSource>>) -> Result<Self, Error> {
        let timeout = Duration::from_secs(account.timeout_secs.max(1));
        let tls = tls_config(account)?;
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(timeout));
        let https =
            HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new()).build(https);
        let auth = match (tokens, &account.credentials) {
            (Some(tokens), _) => Auth::Tokens(tokens),
            (None, Credentials::None) => Auth::None,
            (None, Credentials::Basic { username, password }) => {
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{}", password.expose()));
                Auth::Header(sensitive(&format!("Basic {encoded}"))?)
            }
            (None, Credentials::Bearer { token }) => Auth::Header(sensitive(&format!("Bearer {}", token.expose()))?),
        };
        Ok(Self { client, auth, timeout })
    }
}

fn sensitive(value: &str) -> Result<HeaderValue, Error> {
    let mut header =
        HeaderValue::from_str(value).map_err(|_| Error::local("credentials contain characters not allowed in HTTP"))?;
    header.set_sensitive(true);
    Ok(header)
}

/// rustls with the ring provider, the Mozilla roots, and the account's extra CA.
fn tls_config(account: &DavAccount) -> Result<rustls::ClientConfig, Error> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = &account.ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| Error::local(format!("cannot read CA file {}: {e}", path.display())))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| Error::local(format!("bad certificate in CA file {}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| Error::local(format!("unusable certificate in CA file {}: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::local(format!("CA file {} holds no certificate", path.display())));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::local(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<hyper::body::Incoming>, TransportError>> + Send + 'static>>;

impl tower_service::Service<Request<String>> for DavHttp {
    type Response = Response<hyper::body::Incoming>;
    type Error = TransportError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The legacy client is always ready; libdav does not call this anyway.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<String>) -> Self::Future {
        let client = self.client.clone();
        let auth = self.auth.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            match auth {
                Auth::None => {}
                Auth::Header(value) => {
                    request.headers_mut().insert(AUTHORIZATION, value);
                }
                Auth::Tokens(source) => {
                    let token = source.token().await.map_err(TransportError::Token)?;
                    let mut value =
                        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| TransportError::BadHeader)?;
                    value.set_sensitive(true);
                    request.headers_mut().insert(AUTHORIZATION, value);
                }
            }
            tracing::trace!(method = %request.method(), uri = %request.uri(), "dav request");
            match tokio::time::timeout(timeout, client.request(request)).await {
                Ok(result) => result.map_err(TransportError::Connect),
                Err(_) => Err(TransportError::Timeout(timeout)),
            }
        })
    }
}
