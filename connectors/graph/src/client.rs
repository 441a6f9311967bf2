//! Sending Graph requests: graph-rs-sdk for URLs and tokens, with our own bounded retry
//! (Retry-After as seconds or HTTP-date), a per-mailbox concurrency limit and error mapping.

use crate::auth::{GraphApp, TokenCache, TokenSource};
use crate::config::{GraphAccount, RetryPolicy};
use contactbridge_connector::{Error, ErrorKind, ThrottleTally};
use graph_http::api_impl::RequestHandler;
use graph_rs_sdk::http::BodyRead;
use graph_rs_sdk::http::{Method, Url};
use graph_rs_sdk::{GraphClient, GraphClientConfiguration};
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;

/// Microsoft's Graph hosts (worldwide and national clouds), accepted by the SDK as endpoints.
const MICROSOFT_HOSTS: &[&str] = &[
    "graph.microsoft.com",
    "graph.microsoft.us",
    "dod-graph.microsoft.us",
    "graph.microsoft.de",
    "microsoftgraph.chinacloudapi.cn",
    "canary.graph.microsoft.com",
];

/// One page of a Graph collection.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Value>,
    pub next_link: Option<String>,
    pub delta_link: Option<String>,
}

impl Page {
    pub fn from_json(mut body: Value) -> Result<Page, Error> {
        let items = match body.get_mut("value").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => return Err(Error::invalid_data("a Graph collection page without a \"value\" array")),
        };
        let link = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(Page { items, next_link: link("@odata.nextLink"), delta_link: link("@odata.deltaLink") })
    }
}

/// Graph's HTTP side for one account.
pub struct GraphHttp {
    graph: GraphClient,
    base: Url,
    tokens: Arc<TokenCache>,
    limits: HashMap<String, Arc<Semaphore>>,
    per_mailbox: usize,
    retry: RetryPolicy,
    requests: AtomicU64,
}

/// Builds a request with graph-rs-sdk; called again for every attempt.
pub type MakeRequest<'a> = &'a (dyn Fn(&GraphClient) -> RequestHandler + Send + Sync);

impl GraphHttp {
    pub fn new(account: &GraphAccount, tokens: Arc<TokenCache>) -> Result<Self, Error> {
        let base = Url::parse(&account.graph_base)
            .map_err(|e| Error::local(format!("invalid Graph base URL {:?}: {e}", account.graph_base)))?;
        if account.https_only && base.scheme() != "https" {
            return Err(Error::local(format!("the Graph base URL {base} is not HTTPS")));
        }
        let host = base.host_str().unwrap_or_default().to_ascii_lowercase();
        let microsoft = MICROSOFT_HOSTS.contains(&host.as_str());
        let loopback = matches!(base.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
            || matches!(base.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
            || host == "localhost";
        if !microsoft && !loopback {
            // Tokens must only go to Microsoft or to a local test server.
            return Err(Error::local(format!("{host} is not a Microsoft Graph host")));
        }
        let config = GraphClientConfiguration::new()
            .client_application(GraphApp(tokens.clone()))
            .https_only(account.https_only)
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(15));
        let mut graph = GraphClient::from(config);
        if microsoft {
            graph.use_endpoint(&base);
        } else {
            graph.use_test_endpoint(&base);
        }
        let per_mailbox = account.max_concurrent_per_mailbox.max(1);
        let limits =
            account.mailboxes.iter().map(|m| (m.to_ascii_lowercase(), Arc::new(Semaphore::new(per_mailbox)))).collect();
        Ok(Self { graph, base, tokens, limits, per_mailbox, retry: account.retry, requests: AtomicU64::new(0) })
    }

    /// Requests sent so far (every attempt counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn sdk(&self) -> &GraphClient {
        &self.graph
    }

    /// A GET of a link Graph gave us (nextLink, deltaLink), checked to stay on our Graph host.
    pub fn follow(&self, link: &str) -> Result<Url, Error> {
        let url = Url::parse(link).map_err(|e| Error::invalid_data(format!("unparsable link from Graph: {e}")))?;
        if url.origin() != self.base.origin() {
            return Err(Error::invalid_data(format!(
                "Graph sent a link to another host: {}",
                url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    /// A request to an absolute URL, through the SDK's client.
    pub fn custom(graph: &GraphClient, method: Method, url: &Url, body: Option<&Value>) -> RequestHandler {
        let body = body.map(|b| BodyRead::from_serialize(b).unwrap_or_else(|_| BodyRead::from(String::new())));
        let mut handler = graph.custom(method, body);
        *handler.as_mut() = url.clone();
        handler
    }

    fn limit(&self, mailbox: &str) -> Arc<Semaphore> {
        self.limits.get(&mailbox.to_ascii_lowercase()).cloned().unwrap_or_else(|| {
            // Unknown mailbox (not configured): still bounded, though not shared.
            Arc::new(Semaphore::new(self.per_mailbox))
        })
    }

    /// GETs one page of a collection.
    pub async fn page(&self, mailbox: &str, what: &str, make: MakeRequest<'_>) -> Result<Page, Error> {
        Page::from_json(self.send(mailbox, what, make).await?)
    }

    /// [`GraphHttp::page`], counting throttling waits into `tally`.
    pub async fn page_counting(
        &self,
        mailbox: &str,
        what: &str,
        make: MakeRequest<'_>,
        tally: &ThrottleTally,
    ) -> Result<Page, Error> {
        Page::from_json(self.send_counting(mailbox, what, make, Some(tally)).await?)
    }

    /// Sends a request with retries and returns its JSON body (`Null` when empty).
    pub async fn send(&self, mailbox: &str, what: &str, make: MakeRequest<'_>) -> Result<Value, Error> {
        self.send_counting(mailbox, what, make, None).await
    }

    /// [`GraphHttp::send`], counting the waits for a throttling Graph (429/503/504) into `tally`.
    pub async fn send_counting(
        &self,
        mailbox: &str,
        what: &str,
        make: MakeRequest<'_>,
        tally: Option<&ThrottleTally>,
    ) -> Result<Value, Error> {
        let limit = self.limit(mailbox);
        let mut reauthenticated = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // Fetch (or reuse) the token ourselves first, so that auth errors keep their kind.
            let token = self.tokens.token().await?;
            let outcome = {
                let _permit = limit.acquire().await.map_err(|_| Error::local("request limiter closed"))?;
                self.requests.fetch_add(1, Ordering::Relaxed);
                match make(&self.graph).send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        let headers = resp.headers().clone();
                        match resp.bytes().await {
                            Ok(body) => Ok((status, headers, body)),
                            Err(e) => Err(Error::unreachable(format!("{what}: reading the response failed: {e}"))),
                        }
                    }
                    Err(failure) => Err(transport_error(what, failure)),
                }
            };
            let wait = match outcome {
                Ok((status, _, body)) if status.is_success() => {
                    if body.is_empty() {
                        return Ok(Value::Null);
                    }
                    return serde_json::from_slice(&body)
                        .map_err(|e| Error::invalid_data(format!("{what}: the response is not JSON: {e}")));
                }
                Ok((StatusCode::UNAUTHORIZED, _, _)) if !reauthenticated => {
                    // A revoked or rotated token: get a new one, once.
                    reauthenticated = true;
                    self.tokens.invalidate(&token).await;
                    continue;
                }
                Ok((status, headers, body)) if is_throttling(status) => {
                    let asked = retry_after(&headers, SystemTime::now());
                    let wait = asked.unwrap_or_else(|| backoff(&self.retry, attempt));
                    if attempt >= self.retry.max_attempts || wait > Duration::from_secs(self.retry.max_wait_secs) {
                        let err = status_error(what, status, &body);
                        return Err(Error::new(ErrorKind::Throttled, err.message).with_retry_after(wait));
                    }
                    tracing::info!(
                        what,
                        status = status.as_u16(),
                        wait_ms = wait.as_millis() as u64,
                        attempt,
                        "Graph throttled; waiting"
                    );
                    if let Some(tally) = tally {
                        tally.record(wait);
                    }
                    wait
                }
                Ok((status, _, body)) => return Err(status_error(what, status, &body)),
                Err(e) if e.kind == ErrorKind::Unreachable && attempt < self.retry.max_attempts => {
                    let wait = backoff(&self.retry, attempt);
                    tracing::info!(what, error = %e, wait_ms = wait.as_millis() as u64, attempt, "Graph unreachable; retrying");
                    wait
                }
                Err(e) => return Err(e),
            };
            tokio::time::sleep(wait).await;
        }
    }
}

fn is_throttling(status: StatusCode) -> bool {
    matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT)
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Exponential backoff with full jitter: a random wait in [base·2^(n-1) / 2, base·2^(n-1)].
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let ceiling = policy.base_backoff_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(16));
    let ceiling = ceiling.min(policy.max_wait_secs.saturating_mul(1000)).max(1);
    Duration::from_millis(ceiling / 2 + fastrand::u64(0..=ceiling / 2))
}

fn transport_error(what: &str, failure: graph_rs_sdk::GraphFailure) -> Error {
    // The SDK wraps connection errors in several variants (`ReqwestError`, `Other` around a
    // boxed tower error, `Io`...): the chain of causes says what happened.
    if let Some(e) = our_error(&failure) {
        // The token source's own error (the SDK asked it for a token): keep its kind.
        return Error::new(e.kind, format!("{what}: {}", e.message));
    }
    if let Some(network) = network_failure(&failure) {
        return Error::unreachable(format!("{what}: {network}"));
    }
    match failure {
        graph_rs_sdk::GraphFailure::ReqwestError(e) => {
            // Display of a reqwest error names the URL, never headers.
            Error::unreachable(format!("{what}: {e}"))
        }
        // The SDK's other failures can print request headers: keep only their kind.
        other => Error::local(format!("{what}: the request could not be built ({})", failure_kind(&other))),
    }
}

/// A connector error somewhere in the chain (our token source's, passed through the SDK).
fn our_error<'e>(failure: &'e (dyn std::error::Error + 'static)) -> Option<&'e Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(failure);
    while let Some(c) = cause {
        if let Some(e) = c.downcast_ref::<Error>() {
            return Some(e);
        }
        cause = c.source();
    }
    None
}

/// Connection refused or reset, a timeout or a failed DNS lookup anywhere in the chain of
/// causes, described with the host and port (never the path or query: they can hold tokens).
pub fn network_failure(failure: &(dyn std::error::Error + 'static)) -> Option<String> {
    use std::io::ErrorKind as Io;
    let mut target: Option<String> = None;
    let mut network = false;
    let mut timeout = false;
    let mut dns = false;
    let mut root = String::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(failure);
    while let Some(c) = cause {
        let reqwest_error =
            c.downcast_ref::<reqwest::Error>().or_else(|| c.downcast_ref::<Box<reqwest::Error>>().map(|b| b.as_ref()));
        if let Some(r) = reqwest_error {
            if let Some(url) = r.url() {
                target.get_or_insert_with(|| {
                    format!("{}:{}", url.host_str().unwrap_or("?"), url.port_or_known_default().unwrap_or(0))
                });
            }
            network |= r.is_connect() || r.is_timeout() || r.is_request() || r.is_body();
            timeout |= r.is_timeout();
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            network |= matches!(
                io.kind(),
                Io::ConnectionRefused
                    | Io::ConnectionReset
                    | Io::ConnectionAborted
                    | Io::NotConnected
                    | Io::BrokenPipe
                    | Io::TimedOut
                    | Io::UnexpectedEof
                    | Io::HostUnreachable
                    | Io::NetworkUnreachable
                    | Io::AddrNotAvailable
            );
            timeout |= io.kind() == Io::TimedOut;
        }
        let text = c.to_string();
        let lower = text.to_ascii_lowercase();
        if lower.contains("dns error") || lower.contains("failed to lookup address") {
            dns = true;
            network = true;
        }
        if lower.contains("connection refused")
            || lower.contains("connection reset")
            || lower.contains("connection closed")
            || lower.contains("operation timed out")
        {
            network = true;
        }
        // The innermost cause is the most precise ("Connection refused (os error 111)").
        if !text.is_empty() && !text.contains('\n') && text.len() < 300 {
            root = text;
        }
        cause = c.source();
    }
    if !network {
        return None;
    }
    let target = target.unwrap_or_else(|| "the server".into());
    let what = if dns {
        "DNS lookup failed for"
    } else if timeout {
        "timed out talking to"
    } else {
        "cannot connect to"
    };
    Some(if root.is_empty() { format!("{what} {target}") } else { format!("{what} {target} ({root})") })
}

fn failure_kind(failure: &graph_rs_sdk::GraphFailure) -> &'static str {
    use graph_rs_sdk::GraphFailure as F;
    match failure {
        F::Io(_) => "I/O",
        F::UrlParse(_) => "URL",
        F::SerdeJson(_) => "JSON",
        F::PreFlightError { .. } => "pre-flight",
        _ => "other",
    }
}

/// The Graph error code and message of an error body, if it has the documented shape.
pub fn graph_error_code(body: &[u8]) -> (String, String) {
    let json: Value = serde_json::from_slice(body).unwrap_or_default();
    let err = json.get("error");
    let code = err.and_then(|e| e.get("code")).and_then(Value::as_str).unwrap_or_default().to_string();
    let message = err.and_then(|e| e.get("message")).and_then(Value::as_str).unwrap_or_default().to_string();
    (code, message)
}

fn status_error(what: &str, status: StatusCode, body: &[u8]) -> Error {
    let (code, message) = graph_error_code(body);
    let lower = code.to_ascii_lowercase();
    let text = format!("{what}: HTTP {} {code} {message}", status.as_u16()).trim_end().to_string();
    let kind = match status {
        _ if lower == "syncstatenotfound" || lower == "resyncrequired" || lower == "syncstateinvalid" => {
            ErrorKind::Gone
        }
        StatusCode::GONE => ErrorKind::Gone,
        StatusCode::UNAUTHORIZED => ErrorKind::Auth,
        StatusCode::FORBIDDEN => ErrorKind::Forbidden,
        StatusCode::NOT_FOUND => ErrorKind::NotFound,
        s if is_throttling(s) => ErrorKind::Throttled,
        s if s.is_server_error() => ErrorKind::Unreachable,
        _ => ErrorKind::InvalidData,
    };
    Error::new(kind, text)
}

/// Graph's default headers for our requests: page size and UTC times.
pub fn prefer(page_size: u32) -> HeaderValue {
    HeaderValue::from_str(&format!("odata.maxpagesize={page_size}, outlook.timezone=\"UTC\""))
        .unwrap_or_else(|_| HeaderValue::from_static("outlook.timezone=\"UTC\""))
}

/// `Prefer: outlook.timezone="UTC"` alone, for single-object requests.
pub fn prefer_utc() -> HeaderValue {
    HeaderValue::from_static("outlook.timezone=\"UTC\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_both_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 2015-10-21T07:27:50Z
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(10)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:27:00 GMT"));
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let p = RetryPolicy { max_attempts: 5, max_wait_secs: 2, base_backoff_ms: 100 };
        for _ in 0..50 {
            let first = backoff(&p, 1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            assert!(backoff(&p, 10) <= Duration::from_secs(2));
        }
    }

    #[test]
    fn tokens_only_go_to_microsoft_or_loopback_hosts() {
        use crate::config::{Credential, Secret};
        let mut a = GraphAccount::new("t", "c", Credential::ClientSecret { secret: Secret::new("s") }, vec![]);
        let tokens = Arc::new(TokenCache::new(&a).unwrap());
        assert!(GraphHttp::new(&a, tokens.clone()).is_ok());
        a.graph_base = "https://graph.microsoft.us/v1.0".into();
        assert!(GraphHttp::new(&a, tokens.clone()).is_ok(), "national clouds are Microsoft hosts");
        a.graph_base = "https://graph.evil.example/v1.0".into();
        assert_eq!(GraphHttp::new(&a, tokens.clone()).err().map(|e| e.kind), Some(ErrorKind::Local));
        a.graph_base = "http://127.0.0.1:9/v1.0".into();
        assert!(GraphHttp::new(&a, tokens.clone()).is_err(), "plain HTTP needs https_only = false");
        a.https_only = false;
        assert!(GraphHttp::new(&a, tokens).is_ok());
    }

    /// Connection errors arrive from the SDK as `ReqwestError`, or boxed in `Other`: both are
    /// unreachable, named with host and port; DNS failures say so.
    #[tokio::test]
    async fn connection_errors_are_unreachable_with_host_and_port_however_wrapped() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let refused = || async {
            reqwest::get(format!("http://127.0.0.1:{closed}/v1.0/users?$deltatoken=tok")).await.unwrap_err()
        };
        for failure in [
            graph_rs_sdk::GraphFailure::ReqwestError(refused().await),
            graph_rs_sdk::GraphFailure::Other(Box::new(refused().await)),
        ] {
            let e = transport_error("contacts of a@b", failure);
            assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
            assert!(e.message.contains(&format!("cannot connect to 127.0.0.1:{closed}")), "{e}");
            assert!(!e.message.contains("deltatoken"), "no query in the message: {e}");
        }
        let dns = reqwest::get("http://no-such-host.invalid/v1.0/").await.unwrap_err();
        let e = transport_error("x", graph_rs_sdk::GraphFailure::Other(Box::new(dns)));
        assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
        assert!(e.message.contains("DNS lookup failed for no-such-host.invalid:80"), "{e}");
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer");
        assert_eq!(transport_error("x", graph_rs_sdk::GraphFailure::Io(io)).kind, ErrorKind::Unreachable);
        let ours = Error::auth("the identity provider refused");
        assert_eq!(transport_error("x", graph_rs_sdk::GraphFailure::Other(Box::new(ours))).kind, ErrorKind::Auth);
    }

    #[test]
    fn sync_state_errors_are_gone() {
        let body = br#"{"error":{"code":"syncStateNotFound","message":"expired"}}"#;
        assert_eq!(status_error("x", StatusCode::BAD_REQUEST, body).kind, ErrorKind::Gone);
        assert_eq!(status_error("x", StatusCode::GONE, b"").kind, ErrorKind::Gone);
        assert_eq!(status_error("x", StatusCode::FORBIDDEN, b"{}").kind, ErrorKind::Forbidden);
    }
}
