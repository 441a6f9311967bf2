//! Assembles and runs the gRPC server: both services behind the API-key
//! interceptor, grpc.health.v1, server reflection (v1 and v1alpha, for
//! grpcurl), the metrics layer and endpoint, optional TLS / mutual TLS, and
//! graceful shutdown (new connections stop, open requests finish, directive
//! streams end, health turns NOT_SERVING first).

use super::admin::AdminService;
use super::auth::{self, ApiKeyStore, Principal};
use super::call_handling::CallHandlingService;
use super::metrics::{Metrics, MetricsLayer};
use super::panics::PanicIsInternal;
use super::{error, pb};
use crate::accounts::Registry;
use crate::live::CallHub;
use crate::store::Store;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Status};
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
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self { max_request_bytes: 64 * 1024, tls: None, accounts: None, web_logins: None }
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
/// `metrics_listener` is given, are served there at `/metrics`.
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
    let metrics = Arc::new(Metrics::default());

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<pb::call_handling_server::CallHandlingServer<CallHandlingService>>().await;
    health.set_serving::<pb::admin_server::AdminServer<AdminService>>().await;
    let reflection_v1 = reflection().build_v1().map_err(|e| ServeError::Setup(e.to_string()))?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(|e| ServeError::Setup(e.to_string()))?;

    let auth = Authenticate(keys);
    let limit = options.max_request_bytes;
    let call_handling = InterceptedService::new(
        pb::call_handling_server::CallHandlingServer::new(CallHandlingService::new(store.clone(), hub, stop_rx))
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

    let mut builder = Server::builder();
    if let Some(tls) = &options.tls {
        builder = builder.tls_config(tls_config(tls)?)?;
    }
    let addr = listener.local_addr().map_err(|e| ServeError::Setup(format!("reading the listen address: {e}")))?;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

    // One signal fans out: health first, then streams and listeners.
    let (signal_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut grpc_stop = signal_tx.subscribe();
    let mut metrics_stop = signal_tx.subscribe();
    let health_on_stop = health.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down the gRPC server: finishing open requests");
        health_on_stop.set_not_serving::<pb::call_handling_server::CallHandlingServer<CallHandlingService>>().await;
        health_on_stop.set_not_serving::<pb::admin_server::AdminServer<AdminService>>().await;
        let _ = stop_tx.send(true);
        let _ = signal_tx.send(());
    });

    let metrics_task = metrics_listener.map(|l| {
        let m = metrics.clone();
        if let Ok(a) = l.local_addr() {
            tracing::info!(addr = %a, "metrics at /metrics");
        }
        tokio::spawn(super::metrics::serve_http(m, l, async move {
            let _ = metrics_stop.recv().await;
        }))
    });

    tracing::info!(addr = %addr, tls = options.tls.is_some(), "gRPC server listening");
    builder
        .layer(grpc_layers(metrics))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(call_handling)
        .add_service(admin)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = grpc_stop.recv().await;
        })
        .await?;
    if let Some(t) = metrics_task {
        match t.await {
            Ok(r) => r.map_err(ServeError::Metrics)?,
            Err(e) => tracing::warn!(error = %e, "metrics task ended abnormally"),
        }
    }
    tracing::info!("gRPC server stopped");
    Ok(())
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

    /// Shuts down gracefully and waits until it has.
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
