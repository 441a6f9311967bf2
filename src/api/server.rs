//! Assembles and runs the gRPC server: both services behind the API-key
//! interceptor, grpc.health.v1, server reflection (v1 and v1alpha, for
//! grpcurl), the metrics layer and endpoint, optional TLS / mutual TLS, HTTP/2
//! and TCP keepalives, and a bounded shutdown: health turns NOT_SERVING for
//! `""` and every service first, health watches end after telling it,
//! directive streams end with UNAVAILABLE ("reconnect"), the listeners close,
//! and open connections get [`ConnectionsConfig::shutdown_grace`] before they
//! are cut ([`crate::shutdown`]).

use super::admin::AdminService;
use super::auth::{self, ApiKeyStore, Principal};
use super::call_handling::CallHandlingService;
use super::metrics::{Metrics, MetricsLayer};
use super::panics::PanicIsInternal;
use super::{error, pb};
use crate::accounts::Registry;
use crate::config::ConnectionsConfig;
use crate::live::CallHub;
use crate::shutdown::{bounded, CuttableListener, Drain};
use crate::store::Store;
use futures::{FutureExt as _, Stream, StreamExt as _};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;
use tower::layer::util::Stack;
use tower_http::catch_panic::CatchPanicLayer;

/// PEM files for TLS; with `client_ca`, clients must present a certificate it signed (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest request message accepted; larger ones are RESOURCE_EXHAUSTED.
    pub max_request_bytes: usize,
    pub tls: Option<TlsFiles>,
    /// The account registry behind the Admin account RPCs (`None`: they answer UNIMPLEMENTED).
    pub accounts: Option<Arc<Registry>>,
    /// The notification window's sign-in, for Admin `IssueWebLogin` (`None`: UNIMPLEMENTED).
    pub web_logins: Option<crate::web::auth::WebLogins>,
    /// Keepalives and the shutdown deadline.
    pub connections: ConnectionsConfig,
    /// The store `ResolveCall` and `GetCallerContext` run on, when not the
    /// server's (reads from a hot standby: [`crate::store::split`]).
    pub lookups: Option<LookupStore>,
}

/// The lookup path's store ([`ServerOptions::lookups`]).
#[derive(Clone)]
pub struct LookupStore(pub Arc<dyn Store>);

impl std::fmt::Debug for LookupStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LookupStore")
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_request_bytes: 64 * 1024,
            tls: None,
            accounts: None,
            web_logins: None,
            connections: ConnectionsConfig::default(),
            lookups: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reading TLS file {path}: {source}")]
    TlsFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("setting up the gRPC server: {0}")]
    Setup(String),
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("the metrics endpoint failed: {0}")]
    Metrics(std::io::Error),
}

/// Checks the `authorization` header and attaches the [`Principal`].
#[derive(Clone)]
struct Authenticate(Arc<dyn ApiKeyStore>);

impl tonic::service::Interceptor for Authenticate {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let header = req.metadata().get("authorization").map(|v| v.to_str().unwrap_or_default());
        let token = auth::bearer(header).map_err(error::auth)?;
        let principal: Principal = auth::verify(self.0.as_ref(), token).map_err(|e| {
            tracing::info!(reason = %e, "request refused");
            error::auth(e)
        })?;
        tracing::Span::current().record("key", principal.key_id.as_str());
        req.extensions_mut().insert(principal);
        Ok(req)
    }
}

/// The layers every gRPC request passes, outermost first: the metrics (count, latency, span), then the
/// panic guard ([`super::panics`]: a panic answers INTERNAL, which the metrics count). Public so that a
/// test can run a service of its own through the same stack.
pub fn grpc_layers(metrics: Arc<Metrics>) -> Stack<CatchPanicLayer<PanicIsInternal>, MetricsLayer> {
    Stack::new(super::panics::layer(), MetricsLayer(metrics))
}

/// Runs the server on `listener` until `shutdown` resolves. Metrics, if
/// `metrics_listener` is given, are served there at `/metrics`. After
/// `shutdown`, it ends within `options.connections.shutdown_grace` (and
/// [`crate::shutdown::AFTER_CUT`]) whatever the clients do.
pub async fn serve(
    store: Arc<dyn Store>,
    keys: Arc<dyn ApiKeyStore>,
    hub: Arc<CallHub>,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics = Arc::new(match &options.accounts {
        Some(registry) => Metrics::default().with_sync(registry.sync_metrics()),
        None => Metrics::default(),
    });
    // Measures how long ready tasks wait for a worker of this runtime; ends with `serve` (the set is dropped).
    let mut probe = tokio::task::JoinSet::new();
    probe.spawn(metrics.clone().probe_lateness());

    let (health, _) = tonic_health::server::health_reporter();
    health.set_serving::<pb::call_handling_server::CallHandlingServer<CallHandlingService>>().await;
    health.set_serving::<pb::admin_server::AdminServer<AdminService>>().await;
    let health_service = HealthServer::new(EndingHealth {
        inner: HealthService::from_health_reporter(health.clone()),
        stop: stop_rx.clone(),
    });
    let reflection_v1 = reflection().build_v1().map_err(|e| ServeError::Setup(e.to_string()))?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(|e| ServeError::Setup(e.to_string()))?;

    let auth = Authenticate(keys);
    let limit = options.max_request_bytes;
    let call_handling = InterceptedService::new(
        pb::call_handling_server::CallHandlingServer::new(
            CallHandlingService::new(
                options.lookups.as_ref().map_or_else(|| store.clone(), |l| l.0.clone()),
                hub,
                stop_rx.clone(),
            )
            .with_metrics(metrics.clone()),
        )
        .max_decoding_message_size(limit),
        auth.clone(),
    );
    let admin = InterceptedService::new(
        pb::admin_server::AdminServer::new(
            AdminService::new(store, options.accounts.clone()).with_web_logins(options.web_logins.clone()),
        )
        .max_decoding_message_size(limit),
        auth,
    );

    let conn = &options.connections;
    let mut builder = Server::builder()
        .http2_keepalive_interval(conn.keepalive())
        .http2_keepalive_timeout(Some(conn.keepalive_timeout()));
    if let Some(tls) = &options.tls {
        builder = builder.tls_config(tls_config(tls)?)?;
    }
    let addr = listener.local_addr().map_err(|e| ServeError::Setup(format!("reading the listen address: {e}")))?;
    let drain = Drain::default();
    let accepted = drain.clone();
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(conn.keepalive())
        .map(move |r| r.map(|tcp| accepted.wrap(tcp)));

    // One signal fans out: health first, then streams and listeners.
    let (signal_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut grpc_stop = signal_tx.subscribe();
    let mut grpc_deadline = signal_tx.subscribe();
    let mut metrics_stop = signal_tx.subscribe();
    let mut metrics_deadline = signal_tx.subscribe();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down the gRPC server: health NOT_SERVING, streams end, open requests finish");
        set_not_serving(&health).await;
        let _ = stop_tx.send(true);
        let _ = signal_tx.send(());
    });

    let grace = conn.shutdown_grace();
    let endpoint_metrics = metrics.clone();
    let metrics_served = async move {
        let Some(l) = metrics_listener else { return Ok(()) };
        if let Ok(a) = l.local_addr() {
            tracing::info!(addr = %a, "metrics at /metrics");
        }
        let drain = Drain::default();
        let l = CuttableListener::new(l, drain.clone());
        let served = super::metrics::serve_http(endpoint_metrics, l, async move {
            let _ = metrics_stop.recv().await;
        });
        let stopping = async move {
            let _ = metrics_deadline.recv().await;
        };
        bounded("metrics", served, stopping, grace, &drain).await.unwrap_or(Ok(()))
    };

    tracing::info!(addr = %addr, tls = options.tls.is_some(), "gRPC server listening");
    let grpc_served = builder
        .layer(grpc_layers(metrics.clone()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(call_handling)
        .add_service(admin)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = grpc_stop.recv().await;
        });
    let stopping = async move {
        let _ = grpc_deadline.recv().await;
    };
    let (grpc, metrics_result) = tokio::join!(bounded("gRPC", grpc_served, stopping, grace, &drain), metrics_served);
    grpc.unwrap_or(Ok(()))?;
    metrics_result.map_err(ServeError::Metrics)?;
    tracing::info!("gRPC server stopped");
    Ok(())
}

/// `""` (the whole server) and every service turn NOT_SERVING.
async fn set_not_serving(health: &HealthReporter) {
    health.set_service_status("", ServingStatus::NotServing).await;
    health.set_not_serving::<pb::call_handling_server::CallHandlingServer<CallHandlingService>>().await;
    health.set_not_serving::<pb::admin_server::AdminServer<AdminService>>().await;
}

type HealthStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

/// grpc.health.v1 whose `Watch` streams end once the server stops, after
/// they told the NOT_SERVING that precedes the stop (else every client
/// watching health would hold shutdown until the deadline).
struct EndingHealth {
    inner: HealthService,
    stop: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl Health for EndingHealth {
    async fn check(&self, req: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(req).await
    }

    type WatchStream = HealthStream;

    async fn watch(&self, req: Request<HealthCheckRequest>) -> Result<Response<HealthStream>, Status> {
        let inner = self.inner.watch(req).await?.into_inner();
        let state = (inner, self.stop.clone(), false);
        let stream = futures::stream::unfold(state, |(mut inner, mut stop, done)| async move {
            if done {
                return None;
            }
            tokio::select! {
                biased;
                item = inner.next() => item.map(|i| (i, (inner, stop, false))),
                () = async { let _ = stop.wait_for(|s| *s).await; } => {
                    // The status set before the stop is still told, then the stream ends.
                    let last = inner.next().now_or_never().flatten();
                    last.map(|i| (i, (inner, stop, true)))
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Reflection over the bridge's schemas and grpc.health.v1.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

fn tls_config(tls: &TlsFiles) -> Result<ServerTlsConfig, ServeError> {
    let read = |p: &PathBuf| std::fs::read(p).map_err(|source| ServeError::TlsFile { path: p.clone(), source });
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?));
    if let Some(ca) = &tls.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(config)
}

/// A server running in the background (tests, benchmarks, the CLI).
pub struct RunningServer {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl RunningServer {
    /// Binds `addr` (port 0: any free port) and, if given, `metrics_addr`, and starts serving.
    pub async fn start(
        store: Arc<dyn Store>,
        keys: Arc<dyn ApiKeyStore>,
        hub: Arc<CallHub>,
        addr: SocketAddr,
        metrics_addr: Option<SocketAddr>,
        options: ServerOptions,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let metrics_listener = match metrics_addr {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(serve(store, keys, hub, listener, metrics_listener, options, async move {
            let _ = stopped.await;
        }));
        Ok(Self { addr, metrics_addr, stop: Some(stop), task })
    }

    /// Shuts down and waits until it has: at most the shutdown grace (then
    /// open connections are cut) and [`crate::shutdown::AFTER_CUT`].
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.map_err(|e| ServeError::Setup(format!("server task failed: {e}")))?
    }

    /// Waits until the server ends (after a shutdown signal or an error).
    pub async fn wait(mut self) -> Result<(), ServeError> {
        let _keep = self.stop.take();
        (&mut self.task).await.map_err(|e| ServeError::Setup(format!("server task failed: {e}")))?
    }
}
