//! Handling codes written back to the source as categories (issue 12 §1): what a user chose on a
//! synced contact, and how far writing it to the contact system got.
//!
//! # The rule for conflicts
//!
//! The source has no clock the bridge can trust for a contact (vCards may lack REV, Graph's
//! `lastModifiedDateTime` moves for any edit), so "newer" is decided by versions (etags), in the
//! order the bridge sees them:
//!
//! - A choice remembers the contact's version when it was made ([`CodeWriteBack::base_version`]).
//!   If, when the write-back runs, the source holds another version whose categories give another
//!   code than they gave then, the source changed after the choice was made: **the source wins**,
//!   the local choice is dropped ([`WriteBackState::Superseded`]).
//! - Otherwise the choice is newer than what the source holds: **it is written back**. Once
//!   written, a later version at the source whose categories no longer agree with the choice is a
//!   change made after it: the source wins again.
//! - A write-back that fails stays [`WriteBackState::Failed`] and is tried again with the next sync;
//!   the local choice keeps applying meanwhile.

use super::{HandlingCode, RecordRef, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One user's choice of handling code for one contact of an account, and its write-back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeWriteBack {
    pub user: UserId,
    pub contact: RecordRef,
    /// The code chosen; `None`: the user removed the code.
    pub code: Option<HandlingCode>,
    /// The category that carries the code at the source (added), or for a removal the categories
    /// that carried the removed code (taken away). Empty: no category is mapped to the code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    pub chosen_at: DateTime<Utc>,
    /// The contact's version (etag) when the choice was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<String>,
    /// The code the contact's categories gave when the choice was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_code: Option<HandlingCode>,
    pub state: WriteBackState,
}

impl CodeWriteBack {
    /// The key of an entry in [`super::AccountSpec::code_write_backs`]: one per user and contact.
    pub fn key(user: &UserId, contact: &RecordRef) -> String {
        format!("{user}\u{1f}{}", contact.to_token())
    }
}

/// How far a write-back got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WriteBackState {
    /// Waits for the account's next sync.
    Pending,
    /// The source holds it (as `version`).
    Written {
        at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    /// The last attempt failed; tried again with the next sync.
    Failed { at: DateTime<Utc>, attempts: u32, error: String },
    /// Not written: no category is mapped to the code (or the account does not write back). The
    /// choice applies in the bridge only.
    LocalOnly { reason: String },
    /// The source changed the contact's categories after the choice: the source won and the local
    /// choice was dropped.
    Superseded { at: DateTime<Utc> },
}

impl WriteBackState {
    /// `pending`, `written`, `failed`, `local only`, `superseded`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Written { .. } => "written",
            Self::Failed { .. } => "failed",
            Self::LocalOnly { .. } => "local only",
            Self::Superseded { .. } => "superseded",
        }
    }

    /// Still to be written by the next sync.
    pub fn is_due(&self) -> bool {
        matches!(self, Self::Pending | Self::Failed { .. })
    }
}
