//! What every response and every state-changing request goes through: the
//! same-origin check (403) and the security headers.
//!
//! A request that changes state (any method but GET, HEAD, OPTIONS) passes only
//! when the browser says it comes from this origin:
//! - `Sec-Fetch-Site`, if sent, decides: `same-origin` passes, anything else
//!   (`same-site` too: another port on the same host is the same site but a
//!   stranger; `none`, `cross-site`) is refused. Browsers send it to HTTPS and
//!   localhost origins, and pages cannot forge it;
//! - else `Origin` must name this host as the request's `Host` does (scheme
//!   not compared: a TLS-terminating proxy in front changes it);
//! - with neither header the request is refused: browsers send `Origin` on
//!   every POST, PUT and DELETE, so only a non-browser client lacks both, and
//!   the window has no such clients.

use axum::extract::Request;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, HOST, ORIGIN, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

/// Only the bridge's own files; no inline script; never in a frame.
pub const CSP: &str =
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The router with the same-origin check inside and the headers around everything (404s and 403s too).
pub fn layers(router: Router, tls: bool) -> Router {
    let header = |name, value: &'static str| SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value));
    let router = router
        .layer(middleware::from_fn(same_origin_only))
        .layer(header(CONTENT_SECURITY_POLICY, CSP))
        .layer(header(X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(X_FRAME_OPTIONS, "DENY"))
        .layer(header(REFERRER_POLICY, "no-referrer"));
    if tls {
        router.layer(header(STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
    } else {
        router
    }
}

async fn same_origin_only(req: Request, next: Next) -> Response {
    // Graph's notifications carry no cookie and no Origin; they are checked by clientState instead.
    let webhook = super::notifications::is_webhook(req.uri().path());
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || webhook || is_same_origin(req.headers()) {
        return next.run(req).await;
    }
    tracing::info!(
        method = %req.method(),
        path = req.uri().path(),
        origin = ?req.headers().get(ORIGIN),
        "cross-origin request refused"
    );
    (StatusCode::FORBIDDEN, axum::Json(serde_json::json!({ "error": "cross-origin request refused" }))).into_response()
}

/// Whether a state-changing request comes from a page of this origin (see the module docs).
pub fn is_same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).map(|v: &HeaderValue| v.to_str().unwrap_or("\u{fffd}"));
    match text("sec-fetch-site") {
        // The browser's own word (pages cannot set it): enough, also behind a proxy that rewrites Host.
        Some("same-origin") => return true,
        Some(_) => return false,
        None => {}
    }
    match text(ORIGIN.as_str()) {
        Some(origin) => {
            let authority = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            match (authority, text(HOST.as_str())) {
                (Some(a), Some(host)) => !a.is_empty() && !a.contains('/') && a.eq_ignore_ascii_case(host),
                _ => false,
            }
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn same_origin_is_decided_by_origin_and_fetch_site() {
        let host = ("host", "bridge.example:8080");
        assert!(is_same_origin(&headers(&[host, ("origin", "http://bridge.example:8080")])));
        assert!(is_same_origin(&headers(&[host, ("origin", "https://BRIDGE.example:8080")])));
        assert!(is_same_origin(&headers(&[host, ("sec-fetch-site", "same-origin")])));
        // Behind a proxy that rewrites Host, the browser's Sec-Fetch-Site still says it.
        assert!(is_same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://bridge.example"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(is_same_origin(&headers(&[
            host,
            ("origin", "http://bridge.example:8080"),
            ("sec-fetch-site", "same-origin")
        ])));
        for refused in [
            vec![host],
            vec![host, ("origin", "http://bridge.example:8081")],
            vec![host, ("origin", "http://evil.example")],
            vec![host, ("origin", "null")],
            vec![host, ("origin", "http://bridge.example:8080/x")],
            vec![host, ("origin", "http://bridge.example:8080"), ("sec-fetch-site", "same-site")],
            vec![host, ("origin", "http://bridge.example:8080"), ("sec-fetch-site", "cross-site")],
            vec![host, ("sec-fetch-site", "none")],
            vec![("origin", "http://bridge.example:8080")],
        ] {
            assert!(!is_same_origin(&headers(&refused)), "{refused:?}");
        }
    }
}
