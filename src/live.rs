//! The live-call hub: calls that are ringing now, and what users and attendants
//! decide about them while they ring (claim 1: "contradicting a handling code
//! for one call"; claim 10: the attendant monitoring a user's calls).
//!
//! Two kinds of subscription, both in-memory `tokio::sync::broadcast` channels:
//! - **ringing calls per user** ([`CallHub::watch_calls`]): every decision for
//!   that user, as it is made (the notification window, the attendant view);
//! - **directives per tenant** ([`CallHub::watch_directives`]): what the phone
//!   system of that tenant must do with a ringing call (gRPC `WatchDirectives`).
//!
//! Directives and call events are also written to the call's journal in the
//! store ([`CallHub::direct`], [`CallHub::report`]), so the call history shows
//! them. A slow subscriber that falls more than [`CallHub::CAPACITY`] messages
//! behind loses the oldest ones (it is told how many).

use crate::calls::{CallEvent, CallEventKind, CallId, CallRecord, MAX_EVENTS, MAX_JOURNAL_TEXT_BYTES};
use crate::resolve::Decision;
use crate::store::{Store, StoreError};
use crate::user::UserId;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// What to do with a ringing call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectiveAction {
    /// Forward to a number.
    Forward {
        to: String,
    },
    Voicemail,
    /// Put the call through to the user.
    Accept,
    Reject,
}

impl DirectiveAction {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Forward { .. } => "forward",
            Self::Voicemail => "voicemail",
            Self::Accept => "accept",
            Self::Reject => "reject",
        }
    }

    pub fn target(&self) -> Option<&str> {
        match self {
            Self::Forward { to } => Some(to),
            _ => None,
        }
    }
}

/// A decision about one ringing call, for the phone system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub call_id: CallId,
    pub tsps_call_id: Option<String>,
    pub user: UserId,
    pub action: DirectiveAction,
    /// Who decided: a user id or `attendant:<id>`.
    pub by: Option<String>,
    pub at: DateTime<Utc>,
}

/// Why a directive or call event was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no call with id {}", crate::connector::echo(.0.as_str()))]
    UnknownCall(CallId),
    /// The call belongs to a user of another tenant than the caller may act for.
    #[error("the call belongs to another tenant")]
    OtherTenant,
    #[error("{0}")]
    Invalid(String),
    /// The call's journal holds [`MAX_EVENTS`] events or [`MAX_JOURNAL_TEXT_BYTES`] bytes of text.
    #[error(
        "the call's journal is full (at most {MAX_EVENTS} events and {MAX_JOURNAL_TEXT_BYTES} bytes of text): {0}"
    )]
    JournalFull(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The hub. One per server; cheap to share (`Arc`).
pub struct CallHub {
    store: Arc<dyn Store>,
    calls: Mutex<HashMap<UserId, broadcast::Sender<Arc<Decision>>>>,
    directives: Mutex<HashMap<String, broadcast::Sender<Directive>>>,
    /// Serialises read-modify-write of call journals (events for one call may race).
    journal: Mutex<()>,
}

impl CallHub {
    /// Messages a subscriber may fall behind before it loses the oldest.
    pub const CAPACITY: usize = 256;

    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self { store, calls: Mutex::default(), directives: Mutex::default(), journal: Mutex::default() })
    }

    /// Every decision for `user` from now on (the notification window; an
    /// attendant subscribes to each user they attend).
    pub fn watch_calls(&self, user: &UserId) -> broadcast::Receiver<Arc<Decision>> {
        let mut map = self.calls.lock().expect("hub lock poisoned");
        map.entry(user.clone()).or_insert_with(|| broadcast::channel(Self::CAPACITY).0).subscribe()
    }

    /// Tells the user's subscribers that a call is ringing. Returns how many got it.
    pub fn announce(&self, decision: &Decision) -> usize {
        let mut map = self.calls.lock().expect("hub lock poisoned");
        let Some(tx) = map.get(&decision.user) else { return 0 };
        if tx.receiver_count() == 0 {
            map.remove(&decision.user);
            return 0;
        }
        tx.send(Arc::new(decision.clone())).unwrap_or(0)
    }

    /// Every directive for a user of `tenant` from now on (the phone system).
    pub fn watch_directives(&self, tenant: &str) -> broadcast::Receiver<Directive> {
        let mut map = self.directives.lock().expect("hub lock poisoned");
        map.entry(tenant.to_string()).or_insert_with(|| broadcast::channel(Self::CAPACITY).0).subscribe()
    }

    /// The user or attendant decides what happens to a ringing call: the
    /// directive is written to the call's journal and delivered to the phone
    /// systems watching the call's tenant. `tenant`, if given, is the only
    /// tenant the caller may act for. Returns the directive and how many
    /// watchers received it.
    pub fn direct(
        &self,
        call: &CallId,
        action: DirectiveAction,
        by: Option<String>,
        tenant: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(Directive, usize), LiveError> {
        if let DirectiveAction::Forward { to } = &action {
            if to.trim().is_empty() {
                return Err(LiveError::Invalid("a forward directive needs the number to forward to".into()));
            }
        }
        let kind =
            CallEventKind::Directive { action: action.name().to_string(), target: action.target().map(Into::into) };
        let (record, call_tenant) = self.append(call, kind, by.clone(), tenant, at)?;
        let directive =
            Directive { call_id: record.id, tsps_call_id: record.tsps_call_id, user: record.user, action, by, at };
        let delivered = {
            let mut map = self.directives.lock().expect("hub lock poisoned");
            match map.get(&call_tenant) {
                Some(tx) if tx.receiver_count() > 0 => tx.send(directive.clone()).unwrap_or(0),
                Some(_) => {
                    map.remove(&call_tenant);
                    0
                }
                None => 0,
            }
        };
        tracing::info!(call = %directive.call_id, action = directive.action.name(), delivered, "directive");
        Ok((directive, delivered))
    }

    /// The phone system reports what happened to a call (ringing, answered,
    /// forwarded, missed, ended): appended to the call's journal.
    pub fn report(
        &self,
        call: &CallId,
        kind: CallEventKind,
        by: Option<String>,
        tenant: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<CallRecord, LiveError> {
        match &kind {
            CallEventKind::Forwarded { to } if to.trim().is_empty() => {
                return Err(LiveError::Invalid("a forwarded event needs the number it went to".into()))
            }
            CallEventKind::Directive { .. } => {
                return Err(LiveError::Invalid("directives are sent with SendDirective, not reported".into()))
            }
            _ => {}
        }
        Ok(self.append(call, kind, by, tenant, at)?.0)
    }

    /// Appends one event to a call's journal; returns the record and its tenant.
    fn append(
        &self,
        call: &CallId,
        kind: CallEventKind,
        by: Option<String>,
        tenant: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(CallRecord, String), LiveError> {
        let event = CallEvent { at, kind, by };
        for (field, text, max) in event.text_fields() {
            let chars = text.chars().count();
            if chars > max {
                return Err(LiveError::Invalid(format!("{field} has {chars} characters; it may have at most {max}")));
            }
        }
        let _guard = self.journal.lock().expect("journal lock poisoned");
        let mut record = self.store.call(call)?.ok_or_else(|| LiveError::UnknownCall(call.clone()))?;
        let call_tenant = self.store.profile(&record.user)?.map(|p| p.tenant).unwrap_or_default();
        if tenant.is_some_and(|t| t != call_tenant) {
            return Err(LiveError::OtherTenant);
        }
        if record.events.len() >= MAX_EVENTS {
            return Err(LiveError::JournalFull(format!("it has {} events", record.events.len())));
        }
        let text_bytes: usize = record.events.iter().map(CallEvent::text_bytes).sum();
        if text_bytes + event.text_bytes() > MAX_JOURNAL_TEXT_BYTES {
            return Err(LiveError::JournalFull(format!(
                "it has {text_bytes} bytes of text, this event {} more",
                event.text_bytes()
            )));
        }
        record.events.push(event);
        self.store.put_call(&record)?;
        Ok((record, call_tenant))
    }
}
