//! The bridge's plain data: what the store keeps and every layer passes
//! around. Users and their profiles, handling codes and tables, statuses,
//! call records, registered accounts and their schedules, record references.
//!
//! It sits below the store and imports nothing from the bridge but the
//! connector contract ([`crate::connector`]) and phone-number parsing
//! ([`crate::phone`], for profile validation); `tests/layers.rs` checks it.
//! Behaviour that needs more (the resolver, the index) lives above, next to
//! its callers; the old paths (`crate::user`, `crate::calls`, …) re-export
//! these types.

pub mod account;
pub mod calls;
mod handling;
pub mod limits;
mod record;
mod schedule;
mod status;
mod user;
mod writeback;

pub use account::{AccountSpec, SourceKind, SyncOutcome};
pub use calls::{CallEvent, CallEventKind, CallId, CallPhase, CallRecord, CallerKind};
pub use handling::{AnyMarker, HandlingCode, HandlingMethod, HandlingRule, HandlingTable, Match};
pub use record::RecordRef;
pub use schedule::{Schedule, ScheduleError};
pub use status::{BusySpan, Status};
pub use user::{Attendant, ContextCriteria, CriteriaOutOfRange, ForwardTarget, ManualStatus, UserId, UserProfile};
pub use writeback::{CodeWriteBack, WriteBackState};
