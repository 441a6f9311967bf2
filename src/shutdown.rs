//! Bounded shutdown for the bridge's servers (gRPC, the notification window).
//!
//! Graceful shutdown waits for open connections to finish, and a client may
//! never finish: an idle TCP connection, one that sent only the HTTP/2
//! preface, a `Health.Watch` or an event stream, a stream whose reader
//! stopped reading. So every accepted connection is wrapped in a [`Cuttable`]
//! counted by a [`Drain`], and [`bounded`] gives a stopping server a deadline:
//! past it, the open connections are cut (their reads and writes fail, hyper
//! drops them) and the number cut is logged.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

/// How long a server whose connections were cut may take to notice before it is dropped.
pub const AFTER_CUT: Duration = Duration::from_millis(500);

/// The open connections of one server, and the switch that cuts them all. Cheap to clone.
#[derive(Clone)]
pub struct Drain {
    cut: Arc<watch::Sender<bool>>,
    open: Arc<AtomicUsize>,
}

impl Default for Drain {
    fn default() -> Self {
        Self { cut: Arc::new(watch::channel(false).0), open: Arc::default() }
    }
}

impl Drain {
    /// Counts `io` as open until it is dropped; [`Drain::cut`] makes it fail.
    pub fn wrap<IO>(&self, io: IO) -> Cuttable<IO> {
        self.open.fetch_add(1, Ordering::SeqCst);
        let mut rx = self.cut.subscribe();
        let cut = Box::pin(async move {
            let _ = rx.wait_for(|c| *c).await;
        });
        Cuttable { io, cut, is_cut: false, open: self.open.clone() }
    }

    /// Connections accepted and not yet closed.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Cuts every open connection (and any accepted later); returns how many were open.
    pub fn cut(&self) -> usize {
        self.cut.send_replace(true);
        self.open()
    }
}

/// A connection that fails with `ConnectionAborted` once its [`Drain`] is cut.
pub struct Cuttable<IO> {
    io: IO,
    cut: Pin<Box<dyn Future<Output = ()> + Send>>,
    is_cut: bool,
    open: Arc<AtomicUsize>,
}

impl<IO> Cuttable<IO> {
    /// Registers the task for the cut and answers an error once it happened.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.is_cut && self.cut.as_mut().poll(cx).is_ready() {
            self.is_cut = true;
        }
        if self.is_cut {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "cut: the shutdown deadline passed"));
        }
        Ok(())
    }
}

impl<IO> Drop for Cuttable<IO> {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Cuttable<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Cuttable<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Cuttable<IO> {
    type ConnectInfo = IO::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// An axum listener whose connections a [`Drain`] counts and can cut.
pub struct CuttableListener<L> {
    inner: L,
    drain: Drain,
}

impl<L> CuttableListener<L> {
    pub fn new(inner: L, drain: Drain) -> Self {
        Self { inner, drain }
    }
}

impl<L: axum::serve::Listener> axum::serve::Listener for CuttableListener<L> {
    type Io = Cuttable<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.inner.accept().await;
        (self.drain.wrap(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Runs `serve` (a server with graceful shutdown on the same signal as
/// `stopping`) to its end, but once `stopping` has resolved, for at most
/// `grace`: then `drain`'s connections are cut, and if the server has not
/// ended [`AFTER_CUT`] later, it is dropped. `None` when it was dropped.
pub async fn bounded<T>(
    name: &'static str,
    serve: impl Future<Output = T>,
    stopping: impl Future<Output = ()>,
    grace: Duration,
    drain: &Drain,
) -> Option<T> {
    tokio::pin!(serve);
    tokio::select! {
        out = &mut serve => return Some(out),
        () = stopping => {}
    }
    if let Ok(out) = tokio::time::timeout(grace, &mut serve).await {
        return Some(out);
    }
    let cut = drain.cut();
    tracing::warn!(
        server = name,
        cut,
        grace_secs = grace.as_secs_f64(),
        "shutdown deadline passed: open connections cut"
    );
    match tokio::time::timeout(AFTER_CUT, &mut serve).await {
        Ok(out) => Some(out),
        Err(_) => {
            tracing::warn!(server = name, "the server did not end after its connections were cut; dropped");
            None
        }
    }
}
