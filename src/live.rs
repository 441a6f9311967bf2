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
//! Across replicas ([`CallHub::with_bus`]): a directive or a ringing call is
//! delivered to this replica's subscribers at once and published on the
//! [`EventBus`]; every other replica's hub delivers it to its own. A directive
//! travels whole (a few hundred bytes); a ringing call travels as its call id
//! and user, and the receiving replica rebuilds the decision from the call
//! record in the shared store (where the resolver wrote it before announcing):
//! the caller, the matched contact, handling code, status and method as
//! recorded; the code's source, the status reason and the handling-table row
//! are not carried (a decision that was not recorded does not cross). The
//! counts [`CallHub::direct`] and [`CallHub::announce`] return are of this
//! replica's subscribers.
//!
//! Directives and call events are also written to the call's journal in the
//! store ([`CallHub::direct`], [`CallHub::report`]), so the call history shows
//! them. A slow subscriber that falls more than [`CallHub::CAPACITY`] messages
//! behind loses the oldest ones (it is told how many).

use crate::calls::{CallEvent, CallEventKind, CallId, CallRecord, MAX_EVENTS, MAX_JOURNAL_TEXT_BYTES};
use crate::resolve::Decision;
use crate::store::{EventBus, Store, StoreError};
use crate::user::UserId;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// What to do with a ringing call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    /// The other replicas, if any.
    bus: Option<Arc<dyn EventBus>>,
}

/// What the hub publishes on the bus (topic [`CallHub::TOPIC`]).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum HubMessage {
    Directive {
        tenant: String,
        directive: Directive,
    },
    /// A recorded call is ringing: the receiver reads it from the store.
    Call {
        user: UserId,
        call_id: CallId,
    },
    /// A call changed (directive, chat, phone-system event): for the windows.
    Change {
        change: Box<CallChange>,
    },
}

impl CallHub {
    /// Messages a subscriber may fall behind before it loses the oldest.
    pub const CAPACITY: usize = 256;

    /// The bus topic of the hub's messages.
    pub const TOPIC: &'static str = "hub";

    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Self::build(store, None)
    }

    /// A hub that also reaches, and is reached from, the other replicas on
    /// `bus`. Starts its pump on the current tokio runtime; the pump ends
    /// when the hub is dropped.
    pub fn with_bus(store: Arc<dyn Store>, bus: Arc<dyn EventBus>) -> Arc<Self> {
        let incoming = bus.subscribe();
        let hub = Self::build(store, Some(bus));
        tokio::spawn(Self::pump(Arc::downgrade(&hub), incoming));
        hub
    }

    fn build(store: Arc<dyn Store>, bus: Option<Arc<dyn EventBus>>) -> Arc<Self> {
        Arc::new(Self {
            store,
            calls: Mutex::default(),
            directives: Mutex::default(),
            changes: broadcast::channel(Self::CAPACITY).0,
            journal: Mutex::default(),
            bus,
        })
    }

    /// Every change of every call from now on ([`CallChange`]): directives,
    /// chat, events the phone system reported, on this replica or another.
    /// A subscriber shows only what its viewer may see.
    pub fn watch_changes(&self) -> broadcast::Receiver<Arc<CallChange>> {
        self.changes.subscribe()
    }

    /// A change of a call: to this replica's windows and to the other replicas'.
    fn publish_change(&self, change: CallChange) {
        self.publish(&HubMessage::Change { change: Box::new(change.clone()) });
        // No subscriber is fine: nobody has a window open.
        let _ = self.changes.send(Arc::new(change));
    }

    fn publish(&self, message: &HubMessage) {
        let Some(bus) = &self.bus else { return };
        let payload = serde_json::to_vec(message).expect("hub messages serialise");
        if let Err(e) = bus.publish(Self::TOPIC, &payload) {
            tracing::warn!(error = %e, "could not publish to the other replicas");
        }
    }

    /// Delivers the other replicas' messages to this replica's subscribers.
    async fn pump(hub: std::sync::Weak<Self>, mut incoming: broadcast::Receiver<Arc<crate::store::BusMessage>>) {
        loop {
            let message = match incoming.recv().await {
                Ok(m) => m,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(lost = n, "the live hub fell behind the bus and lost messages");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Some(hub) = hub.upgrade() else { return };
            let own = hub.bus.as_ref().is_some_and(|b| b.origin() == message.origin);
            if own || message.topic != Self::TOPIC {
                continue;
            }
            match serde_json::from_slice::<HubMessage>(&message.payload) {
                Ok(HubMessage::Directive { tenant, directive }) => {
                    hub.deliver_directive(&tenant, directive);
                }
                Ok(HubMessage::Change { change }) => {
                    let _ = hub.changes.send(Arc::new(*change));
                }
                Ok(HubMessage::Call { user, call_id }) => {
                    if !hub.has_call_watchers(&user) {
                        continue;
                    }
                    let (store, id) = (hub.store.clone(), call_id.clone());
                    let rebuilt =
                        crate::store::offload(hub.store.as_ref(), move || rebuild_decision(&*store, &id)).await;
                    match rebuilt {
                        Ok(Some(d)) if d.user == user => {
                            hub.deliver_call(&d);
                        }
                        Ok(_) => {
                            tracing::warn!(call = %call_id, "a call announced by another replica is not in the store")
                        }
                        Err(e) => {
                            tracing::warn!(call = %call_id, error = %e, "reading a call announced by another replica failed")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(origin = %message.origin, error = %e, "an undecodable live message from another replica was dropped")
                }
            }
        }
    }

    fn has_call_watchers(&self, user: &UserId) -> bool {
        self.calls.lock().expect("hub lock poisoned").get(user).is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Every decision for `user` from now on (the notification window; an
    /// attendant subscribes to each user they attend).
    pub fn watch_calls(&self, user: &UserId) -> broadcast::Receiver<Arc<Decision>> {
        let mut map = self.calls.lock().expect("hub lock poisoned");
        map.entry(user.clone()).or_insert_with(|| broadcast::channel(Self::CAPACITY).0).subscribe()
    }

    /// Tells the user's subscribers that a call is ringing (on every replica,
    /// when the decision was recorded). Returns how many of this replica's got it.
    pub fn announce(&self, decision: &Decision) -> usize {
        if decision.recorded {
            self.publish(&HubMessage::Call { user: decision.user.clone(), call_id: decision.call_id.clone() });
        }
        self.deliver_call(decision)
    }

    fn deliver_call(&self, decision: &Decision) -> usize {
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
        self.publish(&HubMessage::Directive { tenant: call_tenant.clone(), directive: directive.clone() });
        let delivered = self.deliver_directive(&call_tenant, directive.clone());
        tracing::info!(call = %directive.call_id, action = directive.action.name(), delivered, "directive");
        let event = record.events.last().cloned().expect("the directive was appended");
        self.publish_change(CallChange { tenant: call_tenant, record, event, delivered: Some(delivered) });
        Ok((directive, delivered))
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
        self.publish(&HubMessage::Directive { tenant: tenant.to_string(), directive: directive.clone() });
        let delivered = self.deliver_directive(tenant, directive.clone());
        tracing::info!(user = %user, delivered, "dial directive");
        Ok((directive, delivered))
    }

    /// Sends a directive to this replica's watchers of `tenant`; how many got it.
    fn deliver_directive(&self, tenant: &str, directive: Directive) -> usize {
        let mut map = self.directives.lock().expect("hub lock poisoned");
        match map.get(tenant) {
            Some(tx) if tx.receiver_count() > 0 => tx.send(directive).unwrap_or(0),
            Some(_) => {
                map.remove(tenant);
                0
            }
            None => 0,
        }
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
        self.publish_change(CallChange { tenant: call_tenant, record: record.clone(), event, delivered: None });
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

/// A ringing call's decision as far as its call record tells (for a call
/// another replica resolved; see the module docs for what is not carried).
fn rebuild_decision(store: &dyn Store, id: &CallId) -> Result<Option<Decision>, StoreError> {
    use crate::resolve::{CodeSource, StatusReason};
    use crate::user::HandlingMethod;
    let Some(r) = store.call(id)? else { return Ok(None) };
    let stored = match &r.contact {
        Some(at) => store.contact(&r.user, at)?,
        None => None,
    };
    let code_source = match (&stored, r.caller_kind) {
        (_, crate::calls::CallerKind::Withheld) => CodeSource::Withheld,
        (Some(_), _) => CodeSource::KnownContact,
        (None, _) => CodeSource::UnknownCaller,
    };
    let target = match &r.method {
        HandlingMethod::Forward { number } => Some(number.clone()),
        HandlingMethod::Attendant => store.profile(&r.user)?.and_then(|p| p.attendant.map(|a| a.number)),
        _ => None,
    };
    let candidates = stored
        .map(|stored| crate::resolve::Candidate {
            stored,
            quality: crate::phone::MatchQuality::Exact,
            matched_key: r.caller_key.clone().unwrap_or_default(),
            preferred: false,
        })
        .into_iter()
        .collect();
    Ok(Some(Decision {
        call_id: r.id,
        user: r.user,
        at: r.at,
        caller: crate::resolve::Caller { cli: r.cli, kind: r.caller_kind, e164: None, key: r.caller_key },
        candidates,
        handling_code: r.handling_code,
        code_source,
        status: r.status,
        status_reason: StatusReason::Default,
        method: r.method,
        rule: None,
        target,
        note: None,
        recorded: true,
        index_rebuilding: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::support::{call, contact, profile, scope, user};
    use crate::store::{CallStore, IndexStore, LocalBus, SledStore, UserStore};
    use std::time::Duration;

    /// Two replicas' hubs on one store and one bus, with a call of
    /// `acme.alice` (tenant acme) matched to a contact, and one of `globex.bob`.
    fn two_replicas() -> (tempfile::TempDir, Arc<CallHub>, Arc<CallHub>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        store.put_profile(&profile("acme.alice"), &[]).unwrap();
        store.put_profile(&crate::model::UserProfile::new(user("globex.bob"), "globex"), &[]).unwrap();
        store
            .apply(&crate::store::conformance::support::batch(
                scope("acme.alice", "book"),
                vec![contact("erika", "e:+49301234567")],
                &[],
                "cp1",
            ))
            .unwrap();
        let mut alice_call = call("c-alice", "acme.alice", "+49301234567", 0);
        alice_call.contact = Some(crate::model::RecordRef {
            account: "acc".into(),
            collection: "book".into(),
            id: contactbridge_connector::RecordId::new("erika"),
        });
        store.put_call(&alice_call).unwrap();
        store.put_call(&call("c-bob", "globex.bob", "+4940999", 0)).unwrap();
        let bus = LocalBus::new("replica-a");
        let a = CallHub::with_bus(store.clone(), Arc::new(bus.clone()));
        let b = CallHub::with_bus(store, Arc::new(bus.replica("replica-b")));
        (dir, a, b)
    }

    async fn next<T: Clone>(rx: &mut broadcast::Receiver<T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("delivered in time").unwrap()
    }

    #[tokio::test]
    async fn a_directive_sent_through_one_replica_reaches_the_tenants_watchers_on_another_and_no_other_tenant() {
        let (_dir, a, b) = two_replicas();
        let mut acme_on_b = b.watch_directives("acme");
        let mut globex_on_b = b.watch_directives("globex");
        let mut acme_on_a = a.watch_directives("acme");
        let (sent, delivered) = a
            .direct(
                &CallId("c-alice".into()),
                DirectiveAction::Forward { to: "+4930555".into() },
                None,
                None,
                Utc::now(),
            )
            .unwrap();
        assert_eq!(delivered, 1, "the count is of the sending replica's watchers");
        assert_eq!(next(&mut acme_on_b).await, sent);
        assert_eq!(next(&mut acme_on_a).await, sent);
        // Delivered once on each replica: nothing more for acme, nothing at all for globex.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(acme_on_a.try_recv().is_err(), "the sender's watcher got it twice");
        assert!(acme_on_b.try_recv().is_err());
        assert!(globex_on_b.try_recv().is_err(), "another tenant's stream saw the directive");
        // Another tenant acting through replica B is refused and nothing is sent.
        let refused = b.direct(&CallId("c-alice".into()), DirectiveAction::Reject, None, Some("globex"), Utc::now());
        assert!(matches!(refused, Err(LiveError::OtherTenant)), "{refused:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(acme_on_a.try_recv().is_err(), "a refused directive was delivered");
    }

    #[tokio::test]
    async fn a_change_of_a_call_on_one_replica_reaches_the_windows_on_another() {
        let (_dir, a, b) = two_replicas();
        let mut windows_on_b = b.watch_changes();
        let mut windows_on_a = a.watch_changes();
        let record = a
            .report(&CallId("c-alice".into()), CallEventKind::Answered, Some("desk".into()), Some("acme"), Utc::now())
            .unwrap();
        let on_b = next(&mut windows_on_b).await;
        assert_eq!((on_b.tenant.as_str(), &on_b.record), ("acme", &record), "the whole change crosses");
        assert_eq!(next(&mut windows_on_a).await.record, record);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(windows_on_b.try_recv().is_err(), "delivered twice on the other replica");
        assert!(windows_on_a.try_recv().is_err(), "the sender's own message came back over the bus");
    }

    #[tokio::test]
    async fn a_call_announced_on_one_replica_rings_on_another_rebuilt_from_the_call_record() {
        let (_dir, a, b) = two_replicas();
        let mut alice_on_b = b.watch_calls(&user("acme.alice"));
        let mut bob_on_b = b.watch_calls(&user("globex.bob"));
        let record = b.store.call(&CallId("c-alice".into())).unwrap().unwrap();
        let stored = b.store.contact(&record.user, record.contact.as_ref().unwrap()).unwrap().unwrap();
        let decision = Decision {
            call_id: record.id.clone(),
            user: record.user.clone(),
            at: record.at,
            caller: crate::resolve::Caller {
                cli: record.cli.clone(),
                kind: record.caller_kind,
                e164: Some("+49301234567".into()),
                key: record.caller_key.clone(),
            },
            candidates: vec![crate::resolve::Candidate {
                stored,
                quality: crate::phone::MatchQuality::Exact,
                matched_key: "e:+49301234567".into(),
                preferred: false,
            }],
            handling_code: record.handling_code.clone(),
            code_source: crate::resolve::CodeSource::KnownContact,
            status: record.status,
            status_reason: crate::resolve::StatusReason::Default,
            method: record.method.clone(),
            rule: None,
            target: None,
            note: None,
            recorded: true,
            index_rebuilding: false,
        };
        assert_eq!(a.announce(&decision), 0, "nobody watches on replica A");
        let got = next(&mut alice_on_b).await;
        assert_eq!((&got.call_id, &got.user), (&decision.call_id, &decision.user));
        assert_eq!(got.caller_name(), decision.caller_name(), "the matched contact is carried");
        assert_eq!(
            (&got.handling_code, got.status, &got.method),
            (&decision.handling_code, decision.status, &decision.method)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(bob_on_b.try_recv().is_err(), "another user's window saw the call");
        // A decision that was not recorded does not cross (there is nothing to read there).
        a.announce(&Decision { recorded: false, ..decision });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(alice_on_b.try_recv().is_err());
    }

    #[tokio::test]
    async fn garbage_on_the_bus_is_dropped_and_the_hub_keeps_working() {
        let (_dir, a, b) = two_replicas();
        let mut acme_on_b = b.watch_directives("acme");
        // Whatever reaches the bus (a replica of another version, a bug): B's pump drops what it cannot use.
        let bus = a.bus.clone().unwrap();
        bus.publish(CallHub::TOPIC, b"{not json").unwrap();
        bus.publish(CallHub::TOPIC, &[0xff; 9000]).unwrap();
        bus.publish(CallHub::TOPIC, br#"{"kind":"call","user":"acme.alice","call_id":"no-such-call"}"#).unwrap();
        let (sent, _) =
            a.direct(&CallId("c-alice".into()), DirectiveAction::Voicemail, None, None, Utc::now()).unwrap();
        assert_eq!(next(&mut acme_on_b).await, sent);
    }
}
