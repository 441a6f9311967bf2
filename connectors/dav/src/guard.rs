//! The TCP side of the DAV client, checked on every connection (also those a
//! redirect or discovery leads to): the account's [`NetPolicy`] on the resolved
//! addresses, and plain `http://` only to loopback or with the account's opt-in.

use contactbridge_connector::net::{is_loopback_host, refused};
use contactbridge_connector::NetPolicy;
use http::Uri;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// The system resolver, keeping only the addresses the policy allows.
#[derive(Clone)]
pub(crate) struct PolicyResolver {
    inner: GaiResolver,
    policy: Arc<NetPolicy>,
}

impl tower_service::Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        let resolving = self.inner.call(name);
        Box::pin(async move {
            policy.check_host(&host)?;
            let all: Vec<SocketAddr> = resolving.await?.collect();
            let allowed: Vec<SocketAddr> = all.iter().copied().filter(|a| policy.allows(&host, a.ip())).collect();
            if allowed.is_empty() && !all.is_empty() {
                tracing::warn!(
                    host,
                    "a connection to a non-public address was refused by the account's network policy"
                );
                return Err(refused(&host).into());
            }
            Ok(allowed.into_iter())
        })
    }
}

/// hyper-util's connector behind the policy: IP literals are checked here (they
/// skip the resolver), names by [`PolicyResolver`].
#[derive(Clone)]
pub(crate) struct GuardedConnector {
    inner: HttpConnector<PolicyResolver>,
    policy: Arc<NetPolicy>,
    allow_plain_http: bool,
}

impl GuardedConnector {
    pub(crate) fn new(policy: NetPolicy, allow_plain_http: bool) -> Self {
        let policy = Arc::new(policy);
        let inner =
            HttpConnector::new_with_resolver(PolicyResolver { inner: GaiResolver::new(), policy: policy.clone() });
        Self { inner, policy, allow_plain_http }
    }

    pub(crate) fn inner_mut(&mut self) -> &mut HttpConnector<PolicyResolver> {
        &mut self.inner
    }

    fn check(&self, uri: &Uri) -> Result<(), BoxError> {
        let host = uri.host().unwrap_or_default();
        if uri.scheme_str() == Some("http") && !self.allow_plain_http && !is_loopback_host(host) {
            return Err(plain_http_refused(host).into());
        }
        self.policy.check_host(host).map_err(Into::into)
    }
}

/// The answer for `http://` to a host that is not this machine, without the opt-in.
pub(crate) fn plain_http_refused(host: &str) -> contactbridge_connector::Error {
    contactbridge_connector::Error::local(format!(
        "plain http:// to {host} would send the credentials unencrypted: use https://, or set \
         \"allow_plain_http\": true in the account's settings"
    ))
}

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if let Err(e) = self.check(&uri) {
            return Box::pin(async move { Err(e) });
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}
