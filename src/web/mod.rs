//! The notification window: a web page per user, served by the bridge (axum,
//! assets embedded), that pops ringing calls live, shows the caller's context,
//! sends directives, keeps the call history and a chat per call (claims 2–10).
//!
//! | route                          | what                                               |
//! |--------------------------------|----------------------------------------------------|
//! | `GET /login?token=…`           | exchanges a login link for the session cookie       |
//! | `POST /logout`                 | ends the session                                    |
//! | `GET /`, `/assets/*`           | the page (HTML, CSS, JS; no CDN)                    |
//! | `GET /api/me`                  | the viewer, their forward buttons, attended users   |
//! | `GET /events`                  | server-sent events: ringing calls, directives, chat |
//! | `GET /api/calls/{id}`          | one call record with its journal                    |
//! | `POST /api/calls/{id}/directive` | forward, voicemail, accept, reject, block         |
//! | `GET /api/calls/{id}/context`  | the caller's context within the user's criteria     |
//! | `POST /api/calls/{id}/chat`    | a chat message about the call                       |
//! | `GET /api/history`             | calls of a user (`?user=`), per caller (`?caller=`) |
//! | `GET`, `PUT /api/criteria`     | the user's context criteria                         |
//!
//! Every route but `/login` needs a session; a session sees its user's calls
//! and those of the users who designated it as attendant, nothing else (404).

mod assets;
pub mod auth;
mod calls;
mod error;
mod events;
mod session;

pub use events::WebEvent;

use crate::live::CallHub;
use crate::shutdown::{bounded, CuttableListener, Drain};
use crate::store::Store;
use auth::WebTokenStore;
use axum::routing::{get, post};
use axum::Router;
use std::future::Future;
use std::future::IntoFuture as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct WebState {
    store: Arc<dyn Store>,
    tokens: Arc<dyn WebTokenStore>,
    hub: Arc<CallHub>,
    /// Directives and chat messages, for every open event stream (each filters by what its viewer may see).
    events: broadcast::Sender<Arc<WebEvent>>,
    /// Turns true when the server stops: event streams end so shutdown does not wait on them.
    stopping: Arc<watch::Sender<bool>>,
}

impl WebState {
    pub fn new(store: Arc<dyn Store>, tokens: Arc<dyn WebTokenStore>, hub: Arc<CallHub>) -> Self {
        Self {
            store,
            tokens,
            hub,
            events: broadcast::channel(CallHub::CAPACITY).0,
            stopping: Arc::new(watch::channel(false).0),
        }
    }

    /// Ends every open event stream (graceful shutdown would otherwise wait for them).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }
}

/// The routes, for [`serve`] and for tests.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{name}", get(assets::asset))
        .route("/login", get(session::login))
        .route("/logout", post(session::logout))
        .route("/api/me", get(session::me))
        .route("/events", get(events::stream))
        .route("/api/calls/{id}", get(calls::get_call))
        .route("/api/calls/{id}/directive", post(calls::directive))
        .route("/api/calls/{id}/context", get(calls::context))
        .route("/api/calls/{id}/chat", post(calls::chat))
        .route("/api/history", get(calls::history))
        .route("/api/criteria", get(calls::criteria).put(calls::put_criteria))
        .with_state(state)
}

/// Serves the window on `listener` until `shutdown` resolves; open event
/// streams are ended then, open requests get at most `grace`, then the
/// connections still open are cut ([`crate::shutdown`]).
pub async fn serve(
    state: WebState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    match state.tokens.purge_web_tokens(chrono::Utc::now()) {
        Ok(n) if n > 0 => tracing::info!(removed = n, "expired web sign-in tokens removed"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not remove expired web sign-in tokens"),
    }
    let stopper = state.clone();
    let app = router(state);
    let drain = Drain::default();
    let (stopped_tx, mut stopped_rx) = watch::channel(false);
    let served = axum::serve(CuttableListener::new(listener, drain.clone()), app).with_graceful_shutdown(async move {
        shutdown.await;
        stopper.stop();
        stopped_tx.send_replace(true);
    });
    let stopping = async move {
        let _ = stopped_rx.wait_for(|s| *s).await;
    };
    let result = bounded("web", served.into_future(), stopping, grace, &drain).await.unwrap_or(Ok(()));
    tracing::info!("web server stopped");
    result
}
