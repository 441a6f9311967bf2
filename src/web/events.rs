//! What the page is told live (server-sent events on `/events`): ringing calls
//! of the viewer and of the users they attend, directives and chat messages
//! about those calls.

use super::error::WebError;
use super::session::{forward_buttons, Session};
use super::WebState;
use crate::calls::{CallEvent, CallEventKind, CallId, CallPhase, CallRecord};
use crate::live::CallChange;
use crate::resolve::Decision;
use crate::user::{ForwardTarget, UserId, UserProfile};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, Stream, StreamExt};
use serde::Serialize;
use std::convert::Infallible;
use std::sync::Arc;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

/// A call as the notification card shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CallView {
    pub call_id: CallId,
    /// Whose call it is.
    pub user: UserId,
    pub user_name: String,
    pub at: DateTime<Utc>,
    /// The CLI as received.
    pub cli: String,
    pub caller_key: Option<String>,
    pub caller_name: Option<String>,
    pub company: Option<String>,
    pub handling_code: String,
    pub status: String,
    pub method: String,
    pub target: Option<String>,
    /// The forward buttons of the call's user.
    pub forward: Vec<ForwardTarget>,
    /// The call's journal (directives, chat, what the phone system reported).
    pub events: Vec<CallEvent>,
    /// Where the call stands (ringing, answered by whom, forwarded where, voicemail, ended).
    pub phase: CallPhase,
}

impl CallView {
    pub fn from_decision(d: &Decision, owner: &UserProfile) -> Self {
        let best = d.candidates.first().map(|c| &c.stored.contact);
        Self {
            call_id: d.call_id.clone(),
            user: d.user.clone(),
            user_name: owner.display_name.clone(),
            at: d.at,
            cli: d.caller.cli.clone(),
            caller_key: d.caller.key.clone(),
            caller_name: d.caller_name(),
            company: best.and_then(|c| c.company.clone()),
            handling_code: d.handling_code.as_str().to_string(),
            status: d.status.as_str().to_string(),
            method: d.method.name().to_string(),
            target: d.target.clone(),
            forward: forward_buttons(owner),
            events: Vec::new(),
            phase: CallPhase::Ringing,
        }
    }

    pub fn from_record(r: &CallRecord, owner: &UserProfile, company: Option<String>) -> Self {
        let target = match &r.method {
            crate::user::HandlingMethod::Forward { number } => Some(number.clone()),
            crate::user::HandlingMethod::Attendant => owner.attendant.as_ref().map(|a| a.number.clone()),
            _ => None,
        };
        Self {
            call_id: r.id.clone(),
            user: r.user.clone(),
            user_name: owner.display_name.clone(),
            at: r.at,
            cli: r.cli.clone(),
            caller_key: r.caller_key.clone(),
            caller_name: r.contact_name.clone(),
            company,
            handling_code: r.handling_code.as_str().to_string(),
            status: r.status.as_str().to_string(),
            method: r.method.name().to_string(),
            target,
            forward: forward_buttons(owner),
            events: r.events.clone(),
            phase: r.phase(),
        }
    }
}

/// One server-sent event; its SSE event name is the `type`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WebEvent {
    /// The stream is open and subscribed: calls from now on arrive.
    Ready { user: UserId },
    /// A call is ringing.
    Call(CallView),
    /// Someone decided about a ringing call; `delivered`: how many phone-system streams got it (0: none connected).
    Directive {
        call_id: CallId,
        user: UserId,
        action: String,
        target: Option<String>,
        by: String,
        at: DateTime<Utc>,
        delivered: usize,
        /// Where the call stands after it.
        phase: CallPhase,
    },
    /// A chat message about a call.
    Chat { call_id: CallId, user: UserId, text: String, by: String, at: DateTime<Utc> },
    /// The phone system reported what happened to a call (ReportCallEvent:
    /// ringing, answered, forwarded, missed, ended).
    Update {
        call_id: CallId,
        user: UserId,
        event: CallEvent,
        /// Where the call stands after it.
        phase: CallPhase,
    },
}

impl WebEvent {
    fn name(&self) -> &'static str {
        match self {
            Self::Ready { .. } => "ready",
            Self::Call(_) => "call",
            Self::Directive { .. } => "directive",
            Self::Chat { .. } => "chat",
            Self::Update { .. } => "update",
        }
    }
}

impl WebEvent {
    /// What the windows are told about a change of a call ([`crate::live::CallHub::watch_changes`]).
    pub fn of_change(c: &CallChange) -> Self {
        let (call_id, user, phase) = (c.record.id.clone(), c.record.user.clone(), c.record.phase());
        let by = c.event.by.clone().unwrap_or_default();
        match &c.event.kind {
            CallEventKind::Directive { action, target } => Self::Directive {
                call_id,
                user,
                action: action.clone(),
                target: target.clone(),
                by,
                at: c.event.at,
                delivered: c.delivered.unwrap_or(0),
                phase,
            },
            CallEventKind::Chat { text } => Self::Chat { call_id, user, text: text.clone(), by, at: c.event.at },
            _ => Self::Update { call_id, user, event: c.event.clone(), phase },
        }
    }
}

/// The item, or `None` after a lag: the window fell behind and lost events,
/// so `behind` ends its stream; the page reconnects and asks where its calls stand.
fn lagged<T>(r: Result<T, BroadcastStreamRecvError>, behind: &tokio::sync::Notify) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(BroadcastStreamRecvError::Lagged(n)) => {
            tracing::warn!(lost = n, "a notification window fell behind and lost events: ending its stream");
            behind.notify_one();
            None
        }
    }
}

/// `GET /events`: the viewer's live stream. It subscribes before it answers, so
/// once the page has the `ready` event, no call is missed.
///
/// The stream lasts as long as the session and the viewer stand as they were
/// when it opened: before each event it checks that the session is valid, the
/// user exists and the users they attend still name them as attendant, and it
/// ends (delivering nothing more) when one of these fails. Without events it
/// ends when the session expires; at once on logout and when an admin deletes
/// the user or withdraws a designation over gRPC; and, for changes made any
/// other way, within [`WebState::with_recheck_interval`]. The page's `EventSource` reconnects and
/// gets a stream for the viewer as they are then (or 401). A window that falls more than
/// [`crate::live::CallHub::CAPACITY`] events behind has its stream ended too: it reconnects
/// and asks where its calls stand, instead of showing a call as it was.
pub async fn stream(
    State(state): State<WebState>,
    session: Session,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, WebError> {
    let session = Arc::new(session);
    let viewer = &session.viewer;
    let mut streams: Vec<BoxStream<'static, Arc<WebEvent>>> = Vec::new();
    let behind = Arc::new(tokio::sync::Notify::new());
    for owner in viewer.users() {
        let owner = owner.clone();
        let b = behind.clone();
        let calls = BroadcastStream::new(state.hub.watch_calls(&owner.id)).filter_map(move |r| {
            let ev = lagged(r, &b).map(|d| Arc::new(WebEvent::Call(CallView::from_decision(&d, &owner))));
            futures::future::ready(ev)
        });
        streams.push(calls.boxed());
    }
    // Every change of a call the viewer may see (directives, chat, what the phone system reported),
    // whoever made it: this window, another one, gRPC SendDirective or ReportCallEvent.
    let (s, b) = (session.clone(), behind.clone());
    let changes = BroadcastStream::new(state.hub.watch_changes()).filter_map(move |r| {
        let visible =
            lagged(r, &b).filter(|c| c.tenant == s.viewer.profile.tenant && s.viewer.may_see(&c.record.user).is_some());
        futures::future::ready(visible.map(|c| Arc::new(WebEvent::of_change(&c))))
    });
    streams.push(changes.boxed());

    let hello = stream::once(futures::future::ready(Arc::new(WebEvent::Ready { user: viewer.id().clone() })));
    let (s, st) = (session.clone(), state.clone());
    let events = hello
        .chain(stream::select_all(streams))
        .take_until(futures::future::select(
            Box::pin(ended(state.clone(), session.clone())),
            Box::pin(async move { behind.notified().await }),
        ))
        .take_while(move |_| futures::future::ready(s.still_valid(&st)))
        .map(|e| {
            Ok(Event::default()
                .event(e.name())
                .json_data(&*e)
                .unwrap_or_else(|_| Event::default().comment("unencodable")))
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Resolves when the stream must end without an event: the server stops, the
/// session expires, or a re-check (on logout, on an admin's PutUser or
/// DeleteUser, every `recheck`) fails.
async fn ended(state: WebState, session: Arc<Session>) {
    let mut stopping = state.stopping.subscribe();
    let mut revoked = state.sessions.checks.subscribe();
    let mut tick = tokio::time::interval(state.sessions.recheck);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let until_expiry = (session.expires - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(until_expiry) => {}
            r = revoked.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        if !session.still_valid(&state) {
            tracing::info!(user = %session.viewer.id(), "event stream ended: the session or the viewer changed");
            return;
        }
    }
}
