//! TLS for the notification window's listener (`[web] tls_cert`, `tls_key`).
//!
//! rustls through tokio-rustls with the ring provider: the same stack tonic
//! already uses for the gRPC port (`tls-ring`), so nothing new is compiled.
//! [`WebListener`] plugs into `axum::serve` (graceful shutdown unchanged);
//! handshakes run in their own tasks, at most [`MAX_HANDSHAKES`] at once and
//! each within [`HANDSHAKE_TIMEOUT`], so a client that opens a connection and
//! never speaks holds up nobody else.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

pub use tokio_rustls::rustls::ServerConfig;

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at most; further connections wait in the kernel's backlog.
pub const MAX_HANDSHAKES: usize = 256;

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("{path}: {reason}")]
    Pem { path: String, reason: String },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A server configuration from a PEM certificate chain and a PEM private key (HTTP/1.1 only).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |p: &Path| std::fs::read(p).map_err(|source| TlsError::Read { path: p.display().to_string(), source });
    let pem_err = |p: &Path, e: rustls::pki_types::pem::Error| TlsError::Pem {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    let cert_pem = read(cert)?;
    let chain =
        CertificateDer::pem_slice_iter(&cert_pem).collect::<Result<Vec<_>, _>>().map_err(|e| pem_err(cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert.display().to_string() });
    }
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| pem_err(key, e))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A connection as `axum::serve` gets it: plain TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The web listener: plain, or TLS with handshakes off the accept loop.
pub enum WebListener {
    Plain(TcpListener),
    Tls { local: SocketAddr, ready: mpsc::Receiver<(Box<dyn Io>, SocketAddr)>, _accepting: AbortOnDrop },
}

/// Stops the accept task when the listener goes.
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl WebListener {
    /// Serves `listener` over TLS when `tls` is given, else as it is.
    pub fn new(listener: TcpListener, tls: Option<Arc<ServerConfig>>) -> Self {
        let Some(config) = tls else { return Self::Plain(listener) };
        let local = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, ready) = mpsc::channel(16);
        let accepting = tokio::spawn(accept_tls(listener, TlsAcceptor::from(config), tx));
        Self::Tls { local, ready, _accepting: AbortOnDrop(accepting) }
    }
}

async fn accept_tls(listener: TcpListener, acceptor: TlsAcceptor, ready: mpsc::Sender<(Box<dyn Io>, SocketAddr)>) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // As axum's own listener does: out of file descriptors and the like pass.
                    tracing::warn!(error = %e, "web listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = ready.closed() => return,
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((Box::new(tls) as Box<dyn Io>, addr)).await;
                }
                Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %addr, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for WebListener {
    type Io = Box<dyn Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self {
            Self::Plain(l) => {
                let (io, addr) = axum::serve::Listener::accept(l).await;
                (Box::new(io), addr)
            }
            Self::Tls { ready, .. } => match ready.recv().await {
                Some(c) => c,
                // The accept task ended (it only does when this listener goes): nothing more comes.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        match self {
            Self::Plain(l) => l.local_addr(),
            Self::Tls { local, .. } => Ok(*local),
        }
    }
}
