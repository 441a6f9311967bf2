//! HTTP transport for libdav: a hyper-util client over rustls (web PKI roots plus an
//! optional private CA), with the account's authorization, a timeout covering the
//! whole response, and bounded retries when the server throttles (429/503 + Retry-After).

use crate::account::{Credentials, DavAccount, Server};
use crate::guard::GuardedConnector;
use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use contactbridge_connector::Error;
use contactbridge_connector::NetPolicy;
use contactbridge_connector::ThrottleTally;
use http::{header::AUTHORIZATION, HeaderValue, Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
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

/// Why a request did not get a response. `target` is the server's `host:port`.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{}", connect_text(.target, .source))]
    Connect {
        target: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("no complete response from {target} within {after:?}")]
    Timeout { target: String, after: Duration },
    #[error("reading the response from {target}: {}", chain(.source))]
    Body {
        target: String,
        #[source]
        source: hyper::Error,
    },
    #[error("could not get an access token: {0}")]
    Token(#[source] Error),
    #[error("invalid credentials for an HTTP header")]
    BadHeader,
}

fn connect_text(target: &str, source: &hyper_util::client::legacy::Error) -> String {
    let text = chain(source);
    let lower = text.to_ascii_lowercase();
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        format!("DNS lookup failed for {target}: {text}")
    } else {
        format!("cannot connect to {target}: {text}")
    }
}

impl TransportError {
    /// Whether the server may answer if asked again soon: the connection was refused,
    /// reset or timed out, or the name did not resolve, and the account's own policy did
    /// not refuse the target.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { source, .. } => !refused_by_policy(source),
            Self::Timeout { .. } | Self::Body { .. } => true,
            Self::Token(_) | Self::BadHeader => false,
        }
    }

    /// Whether the request certainly did not reach the server (safe to send again, whatever its method).
    fn not_sent(&self) -> bool {
        matches!(self, Self::Connect { source, .. } if source.is_connect())
    }
}

/// The connector's own refusal (network policy, plain http) behind a connection error.
fn refused_by_policy(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(c) = cause {
        if c.downcast_ref::<Error>().is_some() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// `host:port` of a request URI, for messages (never the path: it can name people).
fn target(uri: &http::Uri) -> String {
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    format!("{}:{port}", uri.host().unwrap_or("?"))
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

type HyperClient = Client<HttpsConnector<GuardedConnector>, String>;

/// Where the account's credentials may go (RFC 6764 discovery and redirects may lead
/// elsewhere; like browsers and pimsync, the credentials stay with the origin):
/// - a URL account: its origin (scheme, host, port) only;
/// - a domain account (discovery): that domain and its subdomains, over HTTPS only
///   (the SRV records and `.well-known` of `example.com` point into `example.com`).
///
/// Requests elsewhere go without `Authorization`; a server there that wants it
/// answers 401, and the account must be registered with that server's URL.
#[derive(Clone, Debug, PartialEq, Eq)]
enum CredentialScope {
    Origin { scheme: String, host: String, port: u16 },
    Domain(String),
}

impl CredentialScope {
    fn of(server: &Server) -> Option<Self> {
        match server {
            Server::Url(url) => {
                let uri: http::Uri = url.parse().ok()?;
                let (scheme, host, port) = origin(&uri)?;
                Some(Self::Origin { scheme, host, port })
            }
            Server::Domain(domain) => {
                // As discovery reads it: `user@host[:port]` -> https://host[:port]/.
                let domain = domain.rsplit('@').next().unwrap_or(domain).trim();
                let uri: http::Uri = format!("https://{domain}/").parse().ok()?;
                Some(Self::Domain(normal_host(uri.host()?)))
            }
        }
    }

    fn allows(&self, uri: &http::Uri) -> bool {
        let Some((scheme, host, port)) = origin(uri) else { return false };
        match self {
            Self::Origin { scheme: s, host: h, port: p } => (&scheme, &host, port) == (s, h, *p),
            Self::Domain(domain) => {
                scheme == "https"
                    && (host == *domain || host.strip_suffix(domain.as_str()).is_some_and(|sub| sub.ends_with('.')))
            }
        }
    }
}

fn normal_host(host: &str) -> String {
    host.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase()
}

/// Scheme, host and port (the scheme's default when not written) of an absolute URI.
fn origin(uri: &http::Uri) -> Option<(String, String, u16)> {
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = normal_host(uri.host()?);
    let port = uri.port_u16().or(match scheme.as_str() {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    })?;
    Some((scheme, host, port))
}

/// The tower service libdav sends its requests through.
#[derive(Clone)]
pub struct DavHttp {
    client: HyperClient,
    auth: Auth,
    /// `None`: the server setting does not parse (validation refuses it); no credentials go anywhere.
    scope: Option<CredentialScope>,
    timeout: Duration,
    network_retries: u32,
    network_backoff: Duration,
    /// Where throttling waits are counted (one collection's sync), if anywhere.
    throttle: Option<ThrottleTally>,
}

impl std::fmt::Debug for DavHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DavHttp").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl DavHttp {
    /// Builds the transport for `account`. A `tokens` source overrides the
    /// account's credentials with a per-request bearer token. Every connection
    /// (redirects and discovered hosts included) passes `policy` on the resolved
    /// addresses; plain `http://` goes only to loopback unless the account opts in.
    pub fn new(account: &DavAccount, tokens: Option<Arc<dyn TokenSource>>, policy: NetPolicy) -> Result<Self, Error> {
        let timeout = Duration::from_secs(account.timeout_secs.max(1));
        let tls = tls_config(account)?;
        let mut tcp = GuardedConnector::new(policy, account.allow_plain_http);
        let inner = tcp.inner_mut();
        inner.enforce_http(false);
        inner.set_nodelay(true);
        inner.set_connect_timeout(Some(timeout));
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
        Ok(Self {
            client,
            auth,
            scope: CredentialScope::of(&account.server),
            timeout,
            network_retries: NETWORK_RETRIES,
            network_backoff: NETWORK_BACKOFF,
            throttle: None,
        })
    }

    /// This transport, counting its throttling waits into `tally` (a collection's sync).
    pub fn counting_throttling(&self, tally: ThrottleTally) -> Self {
        Self { throttle: Some(tally), ..self.clone() }
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

/// Retries of a throttled request (429, 503) before its status is passed on.
const THROTTLE_RETRIES: u32 = 2;
/// Retries of a request the server did not answer (connection refused or reset, DNS,
/// timeout), with backoff from [`NETWORK_BACKOFF`] doubling: 7.5 s in all. A sync cut off
/// for longer resumes from its checkpoint.
const NETWORK_RETRIES: u32 = 4;
const NETWORK_BACKOFF: Duration = Duration::from_millis(500);
/// Longest Retry-After honoured by waiting; longer ones fail the request as throttled.
const MAX_WAIT: Duration = Duration::from_secs(30);

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, TransportError>> + Send + 'static>>;

impl tower_service::Service<Request<String>> for DavHttp {
    type Response = Response<Full<Bytes>>;
    type Error = TransportError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The legacy client is always ready; libdav does not call this anyway.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<String>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let mut attempt = 0;
            let mut network_attempt = 0;
            loop {
                let mut copy = Request::new(request.body().clone());
                *copy.method_mut() = request.method().clone();
                *copy.uri_mut() = request.uri().clone();
                *copy.version_mut() = request.version();
                *copy.headers_mut() = request.headers().clone();
                this.authorize(&mut copy).await?;
                tracing::trace!(method = %copy.method(), uri = %copy.uri(), "dav request");
                let response = match this.send(copy).await {
                    Ok(response) => response,
                    Err(e) if e.is_transient() && network_attempt < this.network_retries => {
                        // Only requests that cannot have taken effect, or that change nothing, go again.
                        let safe =
                            matches!(request.method().as_str(), "GET" | "HEAD" | "OPTIONS" | "PROPFIND" | "REPORT");
                        if !safe && !e.not_sent() {
                            return Err(e);
                        }
                        let wait = this.network_backoff.saturating_mul(1 << network_attempt.min(8));
                        network_attempt += 1;
                        tracing::info!(error = %e, ?wait, attempt = network_attempt, "server did not answer: retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let status = response.status().as_u16();
                if (status == 429 || status == 503) && attempt < THROTTLE_RETRIES {
                    let wait = retry_after(response.headers()).unwrap_or(Duration::from_secs(1 << attempt));
                    if wait <= MAX_WAIT {
                        attempt += 1;
                        tracing::info!(status, ?wait, attempt, "throttled by the server: waiting");
                        tokio::time::sleep(wait).await;
                        if let Some(tally) = &this.throttle {
                            tally.record(wait);
                        }
                        continue;
                    }
                }
                return Ok(response);
            }
        })
    }
}

impl DavHttp {
    async fn authorize(&self, request: &mut Request<String>) -> Result<(), TransportError> {
        if matches!(self.auth, Auth::None) {
            return Ok(());
        }
        if !self.scope.as_ref().is_some_and(|scope| scope.allows(request.uri())) {
            request.headers_mut().remove(AUTHORIZATION);
            tracing::warn!(
                uri = %request.uri(),
                "request to another origin than the account's server: sent without credentials"
            );
            return Ok(());
        }
        match &self.auth {
            Auth::None => {}
            Auth::Header(value) => {
                request.headers_mut().insert(AUTHORIZATION, value.clone());
            }
            Auth::Tokens(source) => {
                let token = source.token().await.map_err(TransportError::Token)?;
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| TransportError::BadHeader)?;
                value.set_sensitive(true);
                request.headers_mut().insert(AUTHORIZATION, value);
            }
        }
        Ok(())
    }

    /// Sends the request and reads the whole response within the timeout.
    async fn send(&self, request: Request<String>) -> Result<Response<Full<Bytes>>, TransportError> {
        let target = target(request.uri());
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|source| TransportError::Connect { target: target.clone(), source })?;
            let (head, body) = response.into_parts();
            let bytes = body
                .collect()
                .await
                .map_err(|source| TransportError::Body { target: target.clone(), source })?
                .to_bytes();
            Ok(Response::from_parts(head, Full::new(bytes)))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout { target: target.clone(), after: self.timeout })?
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{Secret, Server};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower_service::Service;

    /// A loopback HTTP/1.1 peer answering each request with the next canned
    /// response, and handing back the request heads it saw.
    async fn peer(responses: Vec<&'static str>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut heads = Vec::new();
            for response in responses {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buffer = vec![0u8; 8192];
                let mut read = 0;
                while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    read += socket.read(&mut buffer[read..]).await.unwrap();
                }
                heads.push(String::from_utf8_lossy(&buffer[..read]).to_string());
                socket.write_all(response.as_bytes()).await.unwrap();
                socket.shutdown().await.unwrap();
            }
            heads
        });
        (url, task)
    }

    #[tokio::test]
    async fn throttled_requests_wait_and_retry_with_credentials_each_time() {
        let (url, peer) = peer(vec![
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        ])
        .await;
        let account = DavAccount::new(
            Server::Url(url.clone()),
            Credentials::Basic { username: "ann".into(), password: Secret::new("pw") },
        );
        let tally = ThrottleTally::default();
        let mut http = DavHttp::new(&account, None, NetPolicy::open()).unwrap().counting_throttling(tally.clone());
        let response = http.call(Request::get(&url).body(String::new()).unwrap()).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        // Both waits counted: Retry-After 0, then 2 s of backoff for the 503 without one.
        let counted = tally.get();
        assert_eq!((counted.waits, counted.waited), (2, Duration::from_secs(2)));
        let heads = peer.await.unwrap();
        assert_eq!(heads.len(), 3);
        assert!(heads.iter().all(|h| h.to_lowercase().contains("authorization: basic yw5uonb3")), "{heads:?}");
    }

    #[tokio::test]
    async fn a_long_retry_after_is_passed_on() {
        let (url, peer) =
            peer(vec!["HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3600\r\nContent-Length: 0\r\n\r\n"]).await;
        let account = DavAccount::new(Server::Url(url.clone()), Credentials::None);
        let mut http = DavHttp::new(&account, None, NetPolicy::open()).unwrap();
        let response = http.call(Request::get(&url).body(String::new()).unwrap()).await.unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(peer.await.unwrap().len(), 1);
    }

    #[test]
    fn credentials_stay_with_the_accounts_origin() {
        let uri = |u: &str| u.parse::<http::Uri>().unwrap();
        let url = CredentialScope::of(&Server::Url("https://DAV.example.org/remote.php/dav/".into())).unwrap();
        assert!(url.allows(&uri("https://dav.example.org:443/.well-known/carddav")));
        assert!(url.allows(&uri("https://dav.example.org./x")));
        assert!(!url.allows(&uri("http://dav.example.org/x")), "another scheme");
        assert!(!url.allows(&uri("https://dav.example.org:8443/x")), "another port");
        assert!(!url.allows(&uri("https://evil.example.net/x")));
        assert!(!url.allows(&uri("/relative")));
        let domain = CredentialScope::of(&Server::Domain("ann@Example.org".into())).unwrap();
        assert!(domain.allows(&uri("https://example.org/.well-known/carddav")));
        assert!(domain.allows(&uri("https://carddav.example.org:8443/dav/")));
        assert!(!domain.allows(&uri("http://carddav.example.org/dav/")), "plain http");
        assert!(!domain.allows(&uri("https://badexample.org/")));
        assert!(!domain.allows(&uri("https://example.org.evil.net/")));
        let with_port = CredentialScope::of(&Server::Domain("ann@127.0.0.1:5232".into())).unwrap();
        assert!(with_port.allows(&uri("https://127.0.0.1:5232/.well-known/carddav")));
    }

    #[test]
    fn retry_after_forms() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(20));
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(15) && wait <= Duration::from_secs(20), "{wait:?}");
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
