//! resolve(called number, CLI, time) → decision, written to the call history.

use super::candidates::{self, Candidate};
use super::status::{self, Status, StatusReason};
use crate::calls::{CallId, CallRecord, CallerKind};
use crate::connector::echo;
use crate::phone::{self, Cli, CliError};
use crate::store::{AssignTarget, Store, StoreError};
use crate::user::{HandlingCode, HandlingMethod, UserId, UserProfile};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;

/// Why a call could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("called number {} is not valid: {reason}", echo(number))]
    InvalidCalledNumber { number: String, reason: String },
    #[error("called number {} belongs to no user", echo(.0))]
    UnknownCalledNumber(String),
    #[error("calling number (CLI) {} is not valid: {error}", echo(cli))]
    InvalidCli { cli: String, error: CliError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who is calling, as far as the number tells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Caller {
    /// The CLI as received.
    pub cli: String,
    pub kind: CallerKind,
    /// The number in E.164, where it parsed to one.
    pub e164: Option<String>,
    /// The key under which this caller's history and choices are kept.
    pub key: Option<String>,
}

/// Where the handling code came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum CodeSource {
    /// The user assigned it to this number.
    LocalNumber,
    /// The user assigned it to the matched contact.
    LocalContact,
    /// The contact carries it in the user's contact system (category or property).
    Contact { account: String },
    /// A known contact without a code.
    KnownContact,
    /// No contact matched.
    UnknownCaller,
    /// The caller withheld the number.
    Withheld,
}

/// What to do with a call, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub call_id: CallId,
    pub user: UserId,
    pub at: DateTime<Utc>,
    pub caller: Caller,
    /// Contacts that may be the caller, best first. Empty for unknown callers.
    pub candidates: Vec<Candidate>,
    pub handling_code: HandlingCode,
    pub code_source: CodeSource,
    pub status: Status,
    pub status_reason: StatusReason,
    pub method: HandlingMethod,
    /// The index of the handling-table row that decided (`None`: the fallback).
    pub rule: Option<usize>,
    /// Where the call goes for forward and attendant methods.
    pub target: Option<String>,
    /// Set when the method could not be carried out as configured
    /// (e.g. "attendant" without an attendant): what was done instead.
    pub note: Option<String>,
    /// Whether the call record was written, so that `call_id` names a stored
    /// call. False for [`Resolver::decide_for`], and for [`Resolver::resolve_for`]
    /// when the write failed (a full disk): the decision stands all the same.
    pub recorded: bool,
    /// The index is being rebuilt from the sources after damage was found:
    /// the candidates and the status come from what has been synced again so
    /// far, so an unknown caller may be a contact not yet back.
    pub index_rebuilding: bool,
}

impl Decision {
    /// The best candidate's name, if any.
    pub fn caller_name(&self) -> Option<String> {
        self.candidates.first().map(|c| c.stored.contact.best_name())
    }
}

/// What the phone system asks.
#[derive(Debug, Clone)]
pub struct CallQuery {
    pub called: String,
    pub cli: String,
    pub tsps_call_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// Resolves calls against a store. Cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    store: Arc<dyn Store>,
    /// Called number as sent → its key. The phone system sends the same few
    /// DIDs over and over; the mapping is a pure function, so it never goes stale.
    called_keys: Arc<std::sync::RwLock<std::collections::HashMap<String, String>>>,
}

/// The called-number cache is cleared when it grows past this many entries.
const MAX_CACHED_CALLED_NUMBERS: usize = 65_536;

impl Resolver {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, called_keys: Default::default() }
    }

    fn called_key(&self, called: &str) -> Result<String, ResolveError> {
        if let Some(k) = self.called_keys.read().expect("called-number cache lock").get(called) {
            return Ok(k.clone());
        }
        let key = phone::called_number_key(called)
            .map_err(|e| ResolveError::InvalidCalledNumber { number: called.to_string(), reason: e.to_string() })?;
        let mut cache = self.called_keys.write().expect("called-number cache lock");
        if cache.len() >= MAX_CACHED_CALLED_NUMBERS {
            cache.clear();
        }
        cache.insert(called.to_string(), key.clone());
        Ok(key)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Called number → user and profile.
    pub fn user_for_called(&self, called: &str) -> Result<UserProfile, ResolveError> {
        let key = self.called_key(called)?;
        let user = self
            .store
            .user_by_called_number(&key)?
            .ok_or_else(|| ResolveError::UnknownCalledNumber(called.to_string()))?;
        self.store.profile(&user)?.ok_or_else(|| ResolveError::UnknownCalledNumber(called.to_string()))
    }

    /// Decides what to do with a call and writes its call record.
    pub fn resolve(&self, q: &CallQuery) -> Result<Decision, ResolveError> {
        self.resolve_for(&self.user_for_called(&q.called)?, q)
    }

    /// [`Resolver::resolve`] for a caller that already has the called user's
    /// profile (e.g. to check the tenant first), so it is not looked up twice.
    ///
    /// A call record that cannot be written (full disk, I/O error) does not
    /// stop the call: the decision comes back with `recorded: false`, and the
    /// failure is logged here as an error (callers count it in their metrics).
    pub fn resolve_for(&self, profile: &UserProfile, q: &CallQuery) -> Result<Decision, ResolveError> {
        let mut decision = self.decide_for(profile, q)?;
        match self.store.put_call(&call_record(&decision, q)) {
            Ok(()) => decision.recorded = true,
            Err(e) => tracing::error!(
                call = %decision.call_id, user = %decision.user, error = %e,
                "the call record was not written: the call is handled as decided, but it is not in the history \
                 and its events will be refused"
            ),
        }
        Ok(decision)
    }

    /// The decision [`Resolver::resolve_for`] would make, without writing a
    /// call record (a name lookup by a phone system is not a call). Its
    /// `call_id` names no stored call.
    pub fn decide_for(&self, profile: &UserProfile, q: &CallQuery) -> Result<Decision, ResolveError> {
        let region = profile.region.as_deref().and_then(|r| phone::Region::parse(r).ok());
        let cli = phone::parse_cli(&q.cli, region.as_ref())
            .map_err(|error| ResolveError::InvalidCli { cli: q.cli.clone(), error })?;
        let store = self.store.as_ref();
        let user = &profile.id;

        let (caller, candidates) = match &cli {
            Cli::Number(n) => {
                let found = candidates::find(store, user, n)?;
                let key = n.history_key().into_string();
                (
                    Caller {
                        cli: q.cli.clone(),
                        kind: CallerKind::Number,
                        e164: n.e164().map(str::to_string),
                        key: Some(key),
                    },
                    found,
                )
            }
            other => {
                let kind = match other {
                    Cli::Anonymous => CallerKind::Anonymous,
                    Cli::Unavailable => CallerKind::Unavailable,
                    _ => CallerKind::Withheld,
                };
                (Caller { cli: q.cli.clone(), kind, e164: None, key: None }, Vec::new())
            }
        };

        let (handling_code, code_source) = self.handling_code(user, &caller, &candidates)?;
        let (status, status_reason) = status::derive(
            q.at,
            profile.manual_status.as_ref(),
            &store.out_of_office(user)?,
            &store.busy_spans(user, q.at)?,
        );
        let (method, rule) = profile.handling.method_for(&handling_code, status);
        let (method, target, note) = carry_out(method.clone(), profile);

        let decision = Decision {
            call_id: CallId::generate(),
            user: user.clone(),
            at: q.at,
            caller,
            candidates,
            handling_code,
            code_source,
            status,
            status_reason,
            method,
            rule,
            target,
            note,
            recorded: false,
            index_rebuilding: store.index_rebuilding(),
        };
        Ok(decision)
    }

    /// The caller's context for the notification window (local data only).
    pub fn context(
        &self,
        user: &UserId,
        subject: &super::ContextSubject,
        query: &super::ContextQuery,
    ) -> Result<super::CallerContext, ResolveError> {
        Ok(super::context::fetch(self.store.as_ref(), user, subject, query)?)
    }

    fn handling_code(
        &self,
        user: &UserId,
        caller: &Caller,
        candidates: &[Candidate],
    ) -> Result<(HandlingCode, CodeSource), ResolveError> {
        let Some(key) = &caller.key else {
            return Ok((HandlingCode::well_known(HandlingCode::WITHHELD), CodeSource::Withheld));
        };
        if let Some(code) = self.store.assignment(user, &AssignTarget::Number(key.clone()))? {
            return Ok((code, CodeSource::LocalNumber));
        }
        let Some(best) = candidates.first() else {
            return Ok((HandlingCode::well_known(HandlingCode::UNKNOWN), CodeSource::UnknownCaller));
        };
        if let Some(code) = self.store.assignment(user, &AssignTarget::Contact(best.stored.at.clone()))? {
            return Ok((code, CodeSource::LocalContact));
        }
        Ok(match &best.stored.handling_code {
            Some(code) => (code.clone(), CodeSource::Contact { account: best.stored.at.account.clone() }),
            None => (HandlingCode::well_known(HandlingCode::DEFAULT), CodeSource::KnownContact),
        })
    }
}

/// The method as it can be carried out for this user, its target, and a note
/// when it had to fall back.
fn carry_out(method: HandlingMethod, profile: &UserProfile) -> (HandlingMethod, Option<String>, Option<String>) {
    match method {
        HandlingMethod::Forward { ref number } => {
            let target = Some(number.clone());
            (method, target, None)
        }
        HandlingMethod::Attendant => match &profile.attendant {
            Some(a) => (HandlingMethod::Attendant, Some(a.number.clone()), None),
            None => (
                HandlingMethod::Voicemail,
                None,
                Some("the handling table says attendant, but the user has no attendant: voicemail instead".into()),
            ),
        },
        other => (other, None, None),
    }
}

fn call_record(d: &Decision, q: &CallQuery) -> CallRecord {
    CallRecord {
        id: d.call_id.clone(),
        user: d.user.clone(),
        tsps_call_id: q.tsps_call_id.clone(),
        at: d.at,
        called: q.called.clone(),
        cli: q.cli.clone(),
        caller_kind: d.caller.kind,
        caller_key: d.caller.key.clone(),
        contact: d.candidates.first().map(|c| c.stored.at.clone()),
        contact_name: d.caller_name(),
        handling_code: d.handling_code.clone(),
        status: d.status,
        method: d.method.clone(),
        events: Vec::new(),
    }
}
