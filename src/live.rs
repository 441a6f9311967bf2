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
    /// Place an outgoing call from the user's phone to a number (not about a
    /// ringing call: the directive's `call_id` is empty).
    Dial {
        to: String,
    },
}

impl DirectiveAction {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Forward { .. } => "forward",
            Self::Voicemail => "voicemail",
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::Dial { .. } => "dial",
        }
    }

    pub fn target(&self) -> Option<&str> {
        match self {
            Self::Forward { to } | Self::Dial { to } => Some(to),
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
    /// A directive for a call the phone system reported over (ended, missed).
    #[error("call {0} has ended: there is nothing left to direct")]
    CallEnded(CallId),
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

/// One change of a call: an event appended to its journal (a directive, a
/// chat message, what the phone system reported), with the record as it is
/// now. Every change goes out through [`CallHub::watch_changes`], the one
/// place the windows learn what happens to calls.
#[derive(Debug, Clone)]
pub struct CallChange {
    /// The call's user's tenant.
    pub tenant: String,
    /// The call after the change (its last event is `event`).
    pub record: CallRecord,
    pub event: CallEvent,
    /// For a directive: how many phone-system streams received it.
    pub delivered: Option<usize>,
}

/// The hub. One per server; cheap to share (`Arc`).
pub struct CallHub {
    store: Arc<dyn Store>,
    calls: Mutex<HashMap<UserId, broadcast::Sender<Arc<Decision>>>>,
    directives: Mutex<HashMap<String, broadcast::Sender<Directive>>>,
    /// Every change of every call (subscribers filter by what they may see).
    changes: broadcast::Sender<Arc<CallChange>>,
    /// Serialises read-modify-write of call journals (events for one call may race).
    journal: Mutex<()>,
}

impl CallHub {
    /// Messages a subscriber may fall behind before it loses the oldest.
    pub const CAPACITY: usize = 256;

    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            store,
            calls: Mutex::default(),
            directives: Mutex::default(),
            changes: broadcast::channel(Self::CAPACITY).0,
            journal: Mutex::default(),
        })
    }

    /// Every change of every call from now on ([`CallChange`]): directives,
    /// chat, events the phone system reported. A subscriber shows only what
    /// its viewer may see.
    pub fn watch_changes(&self) -> broadcast::Receiver<Arc<CallChange>> {
        self.changes.subscribe()
    }

    fn publish(&self, change: CallChange) {
        // No subscriber is fine: nobody has a window open.
        let _ = self.changes.send(Arc::new(change));
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
    /// systems watching the call's tenant. A call that has ended
    /// ([`CallRecord::has_ended`]) is refused ([`LiveError::CallEnded`]). `tenant`, if given, is the only
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
        if matches!(action, DirectiveAction::Dial { .. }) {
            return Err(LiveError::Invalid("a dial directive is not about a ringing call: use dial".into()));
        }
        let (record, call_tenant) = self.append(call, kind, by.clone(), tenant, at, true)?;
        let directive = Directive {
            call_id: record.id.clone(),
            tsps_call_id: record.tsps_call_id.clone(),
            user: record.user.clone(),
            action,
            by,
            at,
        };
        let delivered = self.send_directive(&call_tenant, &directive);
        tracing::info!(call = %directive.call_id, action = directive.action.name(), delivered, "directive");
        let event = record.events.last().cloned().expect("the directive was appended");
        self.publish(CallChange { tenant: call_tenant, record, event, delivered: Some(delivered) });
        Ok((directive, delivered))
    }

    /// Delivers a directive to the phone systems watching `tenant`; returns how many got it.
    fn send_directive(&self, tenant: &str, directive: &Directive) -> usize {
        let mut map = self.directives.lock().expect("hub lock poisoned");
        match map.get(tenant) {
            Some(tx) if tx.receiver_count() > 0 => tx.send(directive.clone()).unwrap_or(0),
            Some(_) => {
                map.remove(tenant);
                0
            }
            None => 0,
        }
    }

    /// `user` (of `tenant`) asks the phone system to place a call from their
    /// phone to `to`: a [`DirectiveAction::Dial`] directive with an empty
    /// call id, delivered to the phone systems watching the tenant (not kept
    /// in any journal: there is no call yet). The number must look like one
    /// ([`dialable`]). Returns the directive and how many watchers received it.
    pub fn dial(
        &self,
        user: &UserId,
        tenant: &str,
        to: &str,
        by: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<(Directive, usize), LiveError> {
        let to = dialable(to)?;
        let owner_tenant = self.store.profile(user)?.map(|p| p.tenant);
        if owner_tenant.as_deref() != Some(tenant) {
            return Err(LiveError::OtherTenant);
        }
        let directive = Directive {
            call_id: CallId(String::new()),
            tsps_call_id: None,
            user: user.clone(),
            action: DirectiveAction::Dial { to },
            by,
            at,
        };
        let delivered = self.send_directive(tenant, &directive);
        tracing::info!(user = %user, delivered, "dial directive");
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
        let (record, call_tenant) = self.append(call, kind, by, tenant, at, false)?;
        let event = record.events.last().cloned().expect("the event was appended");
        self.publish(CallChange { tenant: call_tenant, record: record.clone(), event, delivered: None });
        Ok(record)
    }

    /// Appends one event to a call's journal; returns the record and its tenant.
    /// With `unless_ended`, a call that has ended is refused (under the same lock, so no race).
    fn append(
        &self,
        call: &CallId,
        kind: CallEventKind,
        by: Option<String>,
        tenant: Option<&str>,
        at: DateTime<Utc>,
        unless_ended: bool,
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
        if unless_ended && record.has_ended() {
            return Err(LiveError::CallEnded(record.id));
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

/// The most characters a number to dial or forward to may have.
pub const MAX_DIAL_CHARS: usize = 40;

/// A number a phone system may dial or forward to: digits with an optional
/// leading `+` and the usual separators (space, `-`, `/`, `.`, parentheses),
/// at most [`MAX_DIAL_CHARS`] characters and at least three digits. Anything
/// else (SIP URIs, `*` and `#` feature codes, letters, markup, control
/// characters) is refused with a clear error. Returns the number trimmed.
pub fn dialable(number: &str) -> Result<String, LiveError> {
    let n = number.trim();
    let digits = n.chars().filter(char::is_ascii_digit).count();
    let shape = n.chars().enumerate().all(|(i, c)| c.is_ascii_digit() || " -/.()".contains(c) || (c == '+' && i == 0));
    if n.chars().count() > MAX_DIAL_CHARS || digits < 3 || !shape {
        return Err(LiveError::Invalid(format!(
            "{} is not a phone number to dial: use digits, a leading + and spaces, - / . ( ), at most {MAX_DIAL_CHARS} characters",
            crate::connector::echo(n)
        )));
    }
    Ok(n.to_string())
}
