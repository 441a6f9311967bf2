//! The notification window: a web page per user, served by the bridge (axum,
//! assets embedded), that pops ringing calls live, shows the caller's context,
//! sends directives, keeps the call history and a chat per call (claims 2–10).
//!
//! | route                          | what                                               |
//! |--------------------------------|----------------------------------------------------|
//! | `GET /login?token=…`           | exchanges a login link for the session cookie       |
//! | `POST /login`                  | the same, confirmed, when another user is signed in |
//! | `POST /logout`                 | ends the session (and its open event streams)       |
//! | `GET /`, `/assets/*`           | the page (HTML, CSS, JS; no CDN)                    |
//! | `GET /api/me`                  | the viewer, their forward buttons, attended users   |
//! | `GET /events`                  | server-sent events: ringing calls, directives, chat |
//! | `GET /api/calls/{id}`          | one call record with its journal                    |
//! | `POST /api/calls/{id}/directive` | forward, voicemail, accept, reject, block         |
//! | `GET /api/calls/{id}/context`  | the caller's context within the user's criteria     |
//! | `POST /api/calls/{id}/chat`    | a chat message about the call                       |
//! | `GET /api/history`             | calls of a user (`?user=`; default: all the viewer sees), per caller (`?caller=`) |
//! | `GET /api/search?q=`           | contacts by name, company, number, email            |
//! | `GET /api/contact`             | a contact's (or a bare number's) context            |
//! | `PUT /api/contact/code`        | the viewer's handling code for one of their contacts (written back to the source where the account allows it) |
//! | `POST /api/dial`               | a dial directive: call a number from the user's phone |
//! | `GET /manifest.webmanifest`    | the web app manifest (installable app window)       |
//! | `GET`, `PUT /api/criteria`     | the user's context criteria                         |
//! | `POST /graph/notifications`, `/graph/lifecycle` | Graph's change and lifecycle notifications (`notifications`) |
//!
//! Every route but `/login` needs a session; a session sees its user's calls
//! and those of the users who designated it as attendant, nothing else (404).
//! Every request that changes state must come from the window's own origin
//! (403 otherwise), and every response carries the security headers (`guard`).
//! An open event stream ends when its session or viewer no longer stands
//! (`events`). With [`WebState::with_tls`] the listener speaks HTTPS ([`tls`]).

mod assets;
pub mod auth;
mod calls;
mod error;
mod events;
mod guard;
mod lookup;
pub mod notifications;
mod session;
pub mod tls;

pub use events::WebEvent;

use crate::live::CallHub;
use crate::shutdown::{bounded, CuttableListener, Drain};
use crate::store::Store;
use auth::WebTokenStore;
use axum::routing::{get, post, put};
use axum::Router;
use std::future::Future;
use std::future::IntoFuture as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct WebState {
    store: Arc<dyn Store>,
    tokens: Arc<dyn WebTokenStore>,
    hub: Arc<CallHub>,
    /// Turns true when the server stops: event streams end so shutdown does not wait on them.
    stopping: Arc<watch::Sender<bool>>,
    /// Sessions, their lifetime, TLS: see [`Sessions`].
    sessions: Sessions,
    /// Accounts, for the write-back state of a handling code shown with the contact.
    accounts: Option<Arc<dyn crate::store::RegistryStore>>,
    /// Graph's change notifications, when `web.public_url` is set.
    notifications: Option<notifications::Receiver>,
}

/// How long sessions last, and what tells open event streams to check theirs.
#[derive(Clone)]
struct Sessions {
    /// The lifetime of a new session.
    valid: chrono::Duration,
    /// How often an open event stream re-checks its session and its viewer
    /// when nothing happens (a user deleted over gRPC ends it within this).
    recheck: std::time::Duration,
    /// On logout and admin changes to users: open streams check at once.
    checks: auth::SessionChecks,
    /// TLS for the listener; also what makes cookies `Secure`.
    tls: Option<Arc<tls::ServerConfig>>,
}

impl WebState {
    pub fn new(store: Arc<dyn Store>, tokens: Arc<dyn WebTokenStore>, hub: Arc<CallHub>) -> Self {
        Self {
            store,
            tokens,
            hub,
            stopping: Arc::new(watch::channel(false).0),
            sessions: Sessions {
                valid: auth::SESSION_VALID,
                recheck: Self::RECHECK,
                checks: auth::SessionChecks::default(),
                tls: None,
            },
            accounts: None,
            notifications: None,
        }
    }

    /// Shows with each contact how far writing its handling code back got ([`crate::accounts::assign_code`]).
    pub fn with_accounts(mut self, accounts: Arc<dyn crate::store::RegistryStore>) -> Self {
        self.accounts = Some(accounts);
        self
    }

    /// How often an idle event stream re-checks its session by default.
    pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

    /// Sessions opened from now on last `valid` (default [`auth::SESSION_VALID`]).
    pub fn with_session_lifetime(mut self, valid: chrono::Duration) -> Self {
        self.sessions.valid = valid;
        self
    }

    /// Idle event streams re-check their session every `every` (default
    /// [`WebState::RECHECK`]; at least 10 ms).
    pub fn with_recheck_interval(mut self, every: std::time::Duration) -> Self {
        self.sessions.recheck = every.max(std::time::Duration::from_millis(10));
        self
    }

    /// Serves over TLS ([`tls::server_config`]); cookies get `Secure`.
    pub fn with_tls(mut self, config: Arc<tls::ServerConfig>) -> Self {
        self.sessions.tls = Some(config);
        self
    }

    /// Receives Graph's change notifications ([`notifications`]).
    pub fn with_notifications(mut self, receiver: notifications::Receiver) -> Self {
        self.notifications = Some(receiver);
        self
    }

    /// Whether the window is served over TLS.
    pub fn is_tls(&self) -> bool {
        self.sessions.tls.is_some()
    }

    /// Tells every open event stream to check its session and viewer now
    /// (after a logout; an admin's change to users does it through [`auth::WebLogins`]).
    pub fn recheck_sessions(&self) {
        self.sessions.checks.recheck();
    }

    /// What tells this server's open event streams to re-check (for [`auth::WebLogins::sessions`]).
    pub fn session_checks(&self) -> auth::SessionChecks {
        self.sessions.checks.clone()
    }

    /// Ends every open event stream (graceful shutdown would otherwise wait for them).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }
}

/// The routes, for [`serve`] and for tests.
pub fn router(state: WebState) -> Router {
    let router = Router::new()
        .route("/", get(assets::index))
        .route("/assets/{name}", get(assets::asset))
        .route("/login", get(session::login).post(session::switch))
        .route("/logout", post(session::logout))
        .route("/api/me", get(session::me))
        .route("/events", get(events::stream))
        .route("/api/calls/{id}", get(calls::get_call))
        .route("/api/calls/{id}/directive", post(calls::directive))
        .route("/api/calls/{id}/context", get(calls::context))
        .route("/api/calls/{id}/chat", post(calls::chat))
        .route("/api/history", get(calls::history))
        .route("/api/search", get(lookup::search))
        .route("/api/contact", get(lookup::contact))
        .route("/api/contact/code", put(lookup::set_code))
        .route("/api/dial", post(lookup::dial))
        .route("/manifest.webmanifest", get(assets::manifest))
        .route("/api/criteria", get(calls::criteria).put(calls::put_criteria))
        .merge(notifications::routes())
        .with_state(state.clone());
    guard::layers(router, state.is_tls())
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
    let listener = tls::WebListener::new(listener, state.sessions.tls.clone());
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
