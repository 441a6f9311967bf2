//! Call records: one per resolved call, completed by later call events, and
//! the journal of what was done with the call.

use crate::resolve::Status;
use crate::store::RecordRef;
use crate::user::{HandlingCode, HandlingMethod, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The bridge's id of a call (a UUIDv7: sortable by creation time).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub String);

impl CallId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the caller presented themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerKind {
    Number,
    Withheld,
    Anonymous,
    Unavailable,
}

/// Something that happened to a call after it was resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CallEventKind {
    Ringing,
    Answered,
    Forwarded {
        to: String,
    },
    Missed,
    Ended,
    /// The user or attendant decided while the call rang (contradicting the handling code for this call).
    Directive {
        action: String,
        target: Option<String>,
    },
    /// A chat message about the call.
    Chat {
        text: String,
    },
}

impl CallEventKind {
    /// The phone system reported the call over (`ended`, `missed`): directives
    /// for it are refused. A directive itself is not final: it asks the phone
    /// system, the user or attendant may still change their mind while the
    /// call rings, and what happened comes back as events.
    pub fn ends_call(&self) -> bool {
        matches!(self, Self::Ended | Self::Missed)
    }
}

/// One entry of a call's journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEvent {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: CallEventKind,
    /// Who did it: a user id, `attendant:<id>`, or "tsps".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// A call as the bridge saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub id: CallId,
    pub user: UserId,
    /// The phone system's own id for the call, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsps_call_id: Option<String>,
    pub at: DateTime<Utc>,
    pub called: String,
    /// The CLI as received.
    pub cli: String,
    pub caller_kind: CallerKind,
    /// The caller's number key (exact E.164 key where the CLI parsed), for per-caller history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<RecordRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_name: Option<String>,
    pub handling_code: HandlingCode,
    pub status: Status,
    pub method: HandlingMethod,
    #[serde(default)]
    pub events: Vec<CallEvent>,
}

impl CallRecord {
    /// Whether the phone system reported the call over ([`CallEventKind::ends_call`]).
    pub fn has_ended(&self) -> bool {
        self.events.iter().any(|e| e.kind.ends_call())
    }
}
