//! The page's files, embedded in the binary (no build step, no CDN).

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("assets/index.html");
const FILES: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("assets/app.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("assets/app.css")),
    ("icon.svg", "image/svg+xml", include_str!("assets/icon.svg")),
];
const MANIFEST: &str = include_str!("assets/manifest.webmanifest");

/// `GET /manifest.webmanifest`: makes the window installable as an app window (beside the softphone).
pub async fn manifest() -> Response {
    ([(CONTENT_TYPE, "application/manifest+json"), (CACHE_CONTROL, "no-cache")], MANIFEST).into_response()
}
/// `GET /`: the page (it asks `/api/me` and sends the visitor to sign in if needed).
/// Its Content-Security-Policy (no inline script) is set for every response (`guard`).
pub async fn index() -> Response {
    ([(CONTENT_TYPE, "text/html; charset=utf-8"), (CACHE_CONTROL, "no-cache")], INDEX).into_response()
}

/// `GET /assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => ([(CONTENT_TYPE, *mime), (CACHE_CONTROL, "no-cache")], *body).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
