//! The resolver: from (called number, CLI, time) to a [`Decision`], and the
//! caller's context for the notification window.
//!
//! The decision reads only the local index and user data — never the network —
//! and never waits on the context: [`Resolver::resolve`] returns the decision,
//! [`Resolver::context`] is asked separately.

mod candidates;
pub mod context;
mod decision;
pub mod status;

pub use candidates::{find as find_candidates, Candidate, MatchQuality};
pub use context::{CallerContext, ContextQuery, ContextSubject};
pub use decision::{CallQuery, Caller, CodeSource, Decision, ResolveError, Resolver};
pub use status::{Status, StatusReason};
