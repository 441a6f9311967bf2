//! Graph's change notifications arrive here (`web.public_url` + [`CHANGES`] /
//! [`LIFECYCLE`], the URLs the bridge subscribes with).
//!
//! - The validation handshake: a POST with `?validationToken=…` is answered
//!   200 `text/plain` with the (decoded) token, at once.
//! - A notification request is answered 202 whatever it holds, so a sender
//!   learns nothing about which subscriptions exist; each item counts only if
//!   its subscription is ours and its `clientState` is that subscription's
//!   ([`crate::sync::notifications::Subscriptions::check`]); the rest are
//!   counted and dropped, and never start a sync.
//! - Bounded: bodies over [`MAX_BODY`] get 413, more than [`MAX_PER_REQUEST`]
//!   items are not looked at, at most [`MAX_IN_FLIGHT`] requests are worked on
//!   at once (503 beyond: Graph retries), and the syncs asked for go through the
//!   scheduler, which coalesces them per account.

use super::WebState;
use crate::sync::notifications::{Action, Notifications, Subscriptions, MAX_PER_REQUEST};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

pub use crate::sync::notifications::{CHANGES_PATH as CHANGES, LIFECYCLE_PATH as LIFECYCLE};
/// The largest notification request read.
pub const MAX_BODY: usize = 256 * 1024;
/// The longest validation token echoed (Graph's are a few hundred characters).
pub const MAX_TOKEN: usize = 4096;
/// Notification requests worked on at once.
pub const MAX_IN_FLIGHT: usize = 32;

/// Whether `path` is one of the notification routes (no cookie, no same-origin check).
pub fn is_webhook(path: &str) -> bool {
    path == CHANGES || path == LIFECYCLE
}

/// What the routes need: the subscription table and what to do with an accepted notification.
#[derive(Clone)]
pub struct Receiver {
    subscriptions: Arc<Subscriptions>,
    on_action: Arc<dyn Fn(Action) + Send + Sync>,
    in_flight: Arc<Semaphore>,
}

impl Receiver {
    /// `on_action` must return at once (ask the scheduler, queue a renewal).
    pub fn new(subscriptions: Arc<Subscriptions>, on_action: Arc<dyn Fn(Action) + Send + Sync>) -> Self {
        Self { subscriptions, on_action, in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)) }
    }
}

pub fn routes() -> Router<WebState> {
    Router::new().route(CHANGES, post(receive)).route(LIFECYCLE, post(receive)).layer(DefaultBodyLimit::max(MAX_BODY))
}

async fn receive(State(state): State<WebState>, Query(query): Query<HashMap<String, String>>, body: Bytes) -> Response {
    let Some(receiver) = state.notifications.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(token) = query.get("validationToken") {
        if token.len() > MAX_TOKEN {
            return StatusCode::BAD_REQUEST.into_response();
        }
        return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], token.clone()).into_response();
    }
    let Ok(_permit) = receiver.in_flight.try_acquire() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let request: Notifications = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(_) => return StatusCode::ACCEPTED.into_response(),
    };
    let (mut accepted, mut dropped) = (0u32, 0u32);
    for n in request.value.iter().take(MAX_PER_REQUEST) {
        match receiver.subscriptions.check(n) {
            Some(action) => {
                accepted += 1;
                (receiver.on_action)(action);
            }
            None => dropped += 1,
        }
    }
    if dropped > 0 {
        tracing::info!(
            dropped,
            accepted,
            "change notifications with an unknown subscription or a wrong clientState dropped"
        );
    }
    StatusCode::ACCEPTED.into_response()
}
