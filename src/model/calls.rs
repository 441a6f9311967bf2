//! Call records: one per resolved call, completed by later call events, and
//! the journal of what was done with the call.

use super::{HandlingCode, HandlingMethod, RecordRef, Status, UserId};
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

/// A called number or CLI as the phone system sends it: at most this many characters (a SIP URI with a
/// display name fits).
pub const MAX_NUMBER_CHARS: usize = 256;
/// The phone system's own call id: at most this many characters.
pub const MAX_TSPS_CALL_ID_CHARS: usize = 256;

/// A call's journal holds at most this many events; more are refused.
pub const MAX_EVENTS: usize = 100;
/// The text of a call's journal (every event's `by`, target and chat text) is at most this many bytes;
/// with [`MAX_EVENTS`] this keeps a call record near 12 KB, so 200 calls fit a 4 MB response.
pub const MAX_JOURNAL_TEXT_BYTES: usize = 8 * 1024;
/// Who did it (`by`): at most this many characters (a user id is up to 128, plus `attendant:`).
pub const MAX_BY_CHARS: usize = 256;
/// A forward target: at most this many characters.
pub const MAX_TARGET_CHARS: usize = 256;
/// A chat message: at most this many characters.
pub const MAX_CHAT_CHARS: usize = 2000;

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

impl CallEvent {
    /// The event's text fields with their names as the APIs call them (`by`, `target`, `text`) and
    /// their limits in characters.
    pub fn text_fields(&self) -> Vec<(&'static str, &str, usize)> {
        let mut out = Vec::with_capacity(2);
        if let Some(by) = &self.by {
            out.push(("by", by.as_str(), MAX_BY_CHARS));
        }
        match &self.kind {
            CallEventKind::Forwarded { to } => out.push(("target", to.as_str(), MAX_TARGET_CHARS)),
            CallEventKind::Directive { action, target } => {
                out.push(("action", action.as_str(), MAX_TARGET_CHARS));
                if let Some(t) = target {
                    out.push(("target", t.as_str(), MAX_TARGET_CHARS));
                }
            }
            CallEventKind::Chat { text } => out.push(("text", text.as_str(), MAX_CHAT_CHARS)),
            CallEventKind::Ringing | CallEventKind::Answered | CallEventKind::Missed | CallEventKind::Ended => {}
        }
        out
    }

    /// Bytes of text the event adds to its journal.
    pub fn text_bytes(&self) -> usize {
        self.text_fields().iter().map(|(_, text, _)| text.len()).sum()
    }
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

    /// Where the call stands after its journal ([`CallPhase::of`]).
    pub fn phase(&self) -> CallPhase {
        CallPhase::of(&self.events)
    }
}

/// Where a call stands, as the window's cards show it: folded from its
/// journal, the last word wins (a directive asks, the phone system's report
/// of what happened comes after it). Only a ringing call offers actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum CallPhase {
    Ringing,
    /// Someone took it (`by`: a user id, `attendant:<id>`, or none if the phone system did not say).
    Answered {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Forwarded (reported), or a forward was sent (directive).
    Forwarded {
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Sent to voicemail.
    Voicemail {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    Rejected {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Nobody took it.
    Missed,
    /// Over (after it was answered, `answered_by` says by whom).
    Ended {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answered_by: Option<String>,
    },
}

impl CallPhase {
    /// Folds a journal (oldest first) into the call's phase.
    pub fn of(events: &[CallEvent]) -> Self {
        let mut phase = Self::Ringing;
        let mut answered_by = None;
        for e in events {
            let by = e.by.clone();
            phase = match (&e.kind, phase) {
                (CallEventKind::Chat { .. }, p) => p,
                // It rings (again, e.g. at a forward target): the phase stays.
                (CallEventKind::Ringing, p) => p,
                (CallEventKind::Answered, _) => {
                    answered_by = Some(by.clone());
                    Self::Answered { by }
                }
                (CallEventKind::Forwarded { to }, _) => Self::Forwarded { to: to.clone(), by },
                // Sent to voicemail, then missed: it stays "voicemail" (the caller left a message or hung up there).
                (CallEventKind::Missed, p @ Self::Voicemail { .. }) => p,
                (CallEventKind::Missed, _) => Self::Missed,
                (CallEventKind::Ended, Self::Voicemail { by }) => Self::Voicemail { by },
                (CallEventKind::Ended, Self::Forwarded { to, by }) => Self::Forwarded { to, by },
                (CallEventKind::Ended, _) => Self::Ended { answered_by: answered_by.clone().flatten() },
                // Directives after the call ended are refused; these are while it rang.
                (CallEventKind::Directive { action, target }, p) => match action.as_str() {
                    "forward" => Self::Forwarded { to: target.clone().unwrap_or_default(), by },
                    "voicemail" => Self::Voicemail { by },
                    "reject" => Self::Rejected { by },
                    _ => p,
                },
            };
        }
        phase
    }

    /// Nothing more will happen to the call (ended, missed).
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Missed | Self::Ended { .. })
    }

    /// The call still rings: the window offers accept, forward, voicemail.
    pub fn is_ringing(&self) -> bool {
        matches!(self, Self::Ringing)
    }
}

#[cfg(test)]
mod phase_tests {
    use super::*;

    fn ev(kind: CallEventKind, by: Option<&str>) -> CallEvent {
        CallEvent { at: Utc::now(), kind, by: by.map(Into::into) }
    }

    fn directive(action: &str, target: Option<&str>) -> CallEventKind {
        CallEventKind::Directive { action: action.into(), target: target.map(Into::into) }
    }

    #[test]
    fn the_last_word_wins_and_chat_or_ringing_change_nothing() {
        use CallEventKind::*;
        assert_eq!(CallPhase::of(&[]), CallPhase::Ringing);
        let chat = ev(Chat { text: "hi".into() }, Some("demo"));
        assert_eq!(CallPhase::of(std::slice::from_ref(&chat)), CallPhase::Ringing);
        let fwd = ev(directive("forward", Some("+49 30 1")), Some("attendant:desk"));
        assert_eq!(
            CallPhase::of(&[fwd.clone(), chat.clone(), ev(Ringing, None)]),
            CallPhase::Forwarded { to: "+49 30 1".into(), by: Some("attendant:desk".into()) }
        );
        // Accept asks; only the phone system's report says it was answered.
        assert_eq!(CallPhase::of(&[ev(directive("accept", None), Some("demo"))]), CallPhase::Ringing);
        let answered = ev(Answered, Some("demo"));
        assert_eq!(
            CallPhase::of(&[fwd.clone(), answered.clone(), ev(Ended, None)]),
            CallPhase::Ended { answered_by: Some("demo".into()) }
        );
        let vm = ev(directive("voicemail", None), Some("demo"));
        assert_eq!(CallPhase::of(&[vm.clone(), ev(Missed, None)]), CallPhase::Voicemail { by: Some("demo".into()) });
        assert_eq!(CallPhase::of(&[ev(Missed, None), ev(Ringing, None)]), CallPhase::Missed);
        assert_eq!(CallPhase::of(&[ev(directive("reject", None), None)]), CallPhase::Rejected { by: None });
        assert!(CallPhase::of(&[answered, ev(Ended, None)]).is_final());
    }
}
