//! Request metrics (count and latency per gRPC method and status code) as a
//! tower layer in front of every service, a tracing span per request, and
//! the Prometheus text endpoint (`GET /metrics`). The layer also corrects the
//! status of oversized requests to RESOURCE_EXHAUSTED.
//!
//! A request's latency counts from when hyper hands it to the layers (the
//! outermost per-request hook). Before that it may have waited for a worker
//! thread: while every worker of the serving runtime is busy, nobody reads the
//! socket. That wait is what the lateness probe measures
//! ([`Metrics::probe_lateness`]: how late a 10 ms timer fires on the serving
//! runtime), exported as `runtime_lateness_seconds`.
//!
//! The layer runs before authentication and routing, so anyone who reaches the
//! port chooses the request path: only the methods the server serves (read
//! from the services' descriptors) are labels of their own; every other path
//! counts as [`UNKNOWN_METHOD`], so the label set stays fixed.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tracing::Instrument as _;

/// The `method` label of every request to a path the server does not serve.
pub const UNKNOWN_METHOD: &str = "unknown";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    /// The gRPC path, e.g. `/contactbridge.v1.CallHandling/ResolveCall`, or [`UNKNOWN_METHOD`].
    method: String,
    /// The gRPC status code name, e.g. `OK`, `NOT_FOUND`.
    code: String,
}

/// The server's metrics registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram>,
    /// ResolveCall answers whose call record could not be written.
    calls_not_recorded: Counter,
    /// How late the serving runtime's timer fires ([`Metrics::probe_lateness`]).
    lateness: Histogram,
    /// The paths that get a label of their own.
    known: HashSet<String>,
}

/// Every method the server serves, as its request path (`/package.Service/Method`): the bridge's
/// services, grpc.health.v1 and server reflection (v1, v1alpha).
fn known_methods() -> HashSet<String> {
    use prost::Message as _;
    let sets = [
        super::pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut out = HashSet::new();
    for set in sets {
        let files = prost_types::FileDescriptorSet::decode(set).map(|s| s.file).unwrap_or_default();
        for file in files {
            for service in &file.service {
                for method in &service.method {
                    out.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
                }
            }
        }
    }
    out
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<Labels, Counter>::default();
        // 25 µs … ~6.5 s, doubling.
        let latency = Family::<Labels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.000_025, 2.0, 19))) as fn() -> Histogram,
        );
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("contactbridge_grpc");
        registry.register("requests", "gRPC requests by method and status code", requests.clone());
        registry.register(
            "request_duration_seconds",
            "Time to the response headers (for streams: to the stream's start), by method and status code, \
             from when the server's layers first see the request (a wait for a busy worker before that: \
             runtime_lateness_seconds)",
            latency.clone(),
        );
        let calls_not_recorded = Counter::default();
        registry.register(
            "calls_not_recorded",
            "ResolveCall answers whose call record could not be written (full disk, I/O error): the call was handled, \
             its id names no stored call",
            calls_not_recorded.clone(),
        );
        let lateness = Histogram::new(exponential_buckets(0.000_025, 2.0, 19));
        registry.register(
            "runtime_lateness_seconds",
            "How late a 10 ms timer fires on the serving runtime: how long a ready task (a request that arrived) \
             waits for a worker thread before request_duration_seconds starts counting",
            lateness.clone(),
        );
        Self { registry: root, requests, latency, calls_not_recorded, lateness, known: known_methods() }
    }
}

impl Metrics {
    /// Adds the sync metrics (`contactbridge_sync_*`, src/accounts/metrics.rs).
    pub fn with_sync(mut self, sync: &crate::accounts::metrics::SyncMetrics) -> Self {
        sync.register(self.registry.sub_registry_with_prefix("contactbridge_sync"));
        self
    }

    /// The `method` label for a request path: the path if the server serves it, else [`UNKNOWN_METHOD`].
    pub fn method_label(&self, path: &str) -> String {
        if self.known.contains(path) { path } else { UNKNOWN_METHOD }.to_string()
    }

    fn observe(&self, method: &str, code: &str, seconds: f64) {
        let labels = Labels { method: method.to_string(), code: code.to_string() };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
    }

    /// Counts a ResolveCall answered without its call record written.
    pub fn call_not_recorded(&self) {
        self.calls_not_recorded.inc();
    }

    /// Measures, for ever, how late a timer fires on the current runtime: sleeps
    /// [`LATENESS_PERIOD`], records how long after it was due the task runs again,
    /// repeats. A late wake means every worker was busy; a request arriving then
    /// waited as long before the layers saw it. Spawn it on the serving runtime
    /// and abort it when serving ends.
    pub async fn probe_lateness(self: Arc<Self>) {
        probe_lateness(|_, late| self.lateness.observe(late.as_secs_f64())).await
    }

    /// The Prometheus text exposition of everything recorded.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Serves `GET /metrics` on `listener` (a TCP listener, or one wrapped to
/// count and cut its connections) until `shutdown` resolves.
pub async fn serve_http<L: axum::serve::Listener<Addr: std::fmt::Debug>>(
    metrics: Arc<Metrics>,
    listener: L,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::http::header;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.render()) }
        }),
    );
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// How often [`Metrics::probe_lateness`] measures (tokio's timer has 1 ms resolution,
/// so an idle runtime shows up to about 1 ms).
pub const LATENESS_PERIOD: Duration = Duration::from_millis(10);

/// Every [`LATENESS_PERIOD`], for ever: `observe(when the timer was due, how late it fired)`.
pub async fn probe_lateness(mut observe: impl FnMut(Instant, Duration)) {
    loop {
        let due = tokio::time::Instant::now() + LATENESS_PERIOD;
        tokio::time::sleep_until(due).await;
        observe(due.into_std(), due.elapsed());
    }
}

/// The tower layer that records every request.
#[derive(Clone)]
pub struct MetricsLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetricsService { inner, metrics: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for MetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The clone is ready only after poll_ready; use the ready one and keep the clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let metrics = self.metrics.clone();
        let method = metrics.method_label(req.uri().path());
        let span =
            tracing::info_span!("grpc", method = %method, key = tracing::field::Empty, code = tracing::field::Empty);
        let start = Instant::now();
        Box::pin(
            async move {
                let mut res = inner.call(req).await;
                if let Ok(r) = &mut res {
                    oversized_is_resource_exhausted(r);
                }
                let code = match &res {
                    Ok(r) => r
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .map_or("OK", code_name),
                    Err(_) => "UNKNOWN",
                };
                let elapsed = start.elapsed().as_secs_f64();
                metrics.observe(&method, code, elapsed);
                tracing::Span::current().record("code", code);
                tracing::debug!(micros = (elapsed * 1e6) as u64, "request done");
                res
            }
            .instrument(span),
        )
    }
}

/// tonic answers a request over `max_decoding_message_size` with OUT_OF_RANGE;
/// the gRPC spec (and clients' retry logic) expect RESOURCE_EXHAUSTED.
fn oversized_is_resource_exhausted<RB>(r: &mut http::Response<RB>) {
    let h = r.headers_mut();
    let out_of_range = h.get("grpc-status").is_some_and(|v| v.as_bytes() == b"11");
    let too_large = h
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| m.contains("message%20length%20too%20large") || m.contains("message length too large"));
    if out_of_range && too_large {
        h.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
}

fn code_name(code: i32) -> &'static str {
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_are_labels() {
        let m = Metrics::default();
        for path in [
            "/contactbridge.v1.CallHandling/ResolveCall",
            "/contactbridge.v1.Admin/PutUser",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(m.method_label(path), path);
        }
        for path in ["/", "/x", "/contactbridge.v1.CallHandling/Nope", "/contactbridge.v1.CallHandling/ResolveCall/"] {
            assert_eq!(m.method_label(path), UNKNOWN_METHOD, "{path}");
        }
    }

    /// Observations of `histogram` of at least `seconds` (bucket bounds are powers of two times 25 µs).
    fn at_least(rendered: &str, histogram: &str, seconds: f64) -> u64 {
        let count = |prefix: &str| {
            rendered.lines().find_map(|l| l.strip_prefix(prefix)).and_then(|v| v.trim().parse::<u64>().ok())
        };
        let total = count(&format!("{histogram}_count ")).expect("the histogram is rendered");
        let below = rendered
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{histogram}_bucket{{le=\"")))
            .filter_map(|l| l.split_once("\"} "))
            .filter_map(|(le, n)| Some((le.parse::<f64>().ok()?, n.trim().parse::<u64>().ok()?)))
            .filter(|(le, _)| *le < seconds)
            .map(|(_, n)| n)
            .max()
            .unwrap_or(0);
        total - below
    }

    /// A worker blocked for 300 ms (as by a sync's commit on the serving runtime)
    /// shows in the lateness histogram; an idle runtime's timer is on time.
    #[test]
    fn the_lateness_probe_sees_a_blocked_worker() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let metrics = Arc::new(Metrics::default());
        let probe = rt.spawn(metrics.clone().probe_lateness());
        let name = "contactbridge_grpc_runtime_lateness_seconds";
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
        let rendered = metrics.render();
        assert!(at_least(&rendered, name, 0.0) >= 5, "{rendered}");
        assert_eq!(at_least(&rendered, name, 0.25), 0, "an idle runtime's timer fired 250 ms late:\n{rendered}");
        rt.block_on(async {
            tokio::spawn(async { std::thread::sleep(Duration::from_millis(300)) }).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
        probe.abort();
        let rendered = metrics.render();
        assert_eq!(at_least(&rendered, name, 0.25), 1, "{rendered}");
    }
}
