//! Errors of the bridge → gRPC status codes that say what went wrong, without
//! internals (store failures are logged here and answered in general words).

use super::auth::AuthError;
use crate::live::LiveError;
use crate::resolve::ResolveError;
use crate::store::StoreError;
use tonic::Status;

pub fn store(e: StoreError) -> Status {
    match e {
        StoreError::Invalid(msg) => Status::invalid_argument(msg),
        StoreError::Locked { .. } => Status::unavailable("the store is not available"),
        StoreError::LowSpace(msg) => {
            tracing::error!(error = %msg, "the disk is too full while serving a request");
            Status::resource_exhausted("the bridge's disk is too full; see the server log")
        }
        other => {
            tracing::error!(error = %other, "storage failure while serving a request");
            Status::internal("the bridge could not read or write its store; see the server log")
        }
    }
}

pub fn resolve(e: ResolveError) -> Status {
    match e {
        e @ (ResolveError::InvalidCalledNumber { .. } | ResolveError::InvalidCli { .. }) => {
            Status::invalid_argument(e.to_string())
        }
        e @ ResolveError::UnknownCalledNumber(_) => Status::not_found(e.to_string()),
        ResolveError::Store(e) => store(e),
    }
}

/// A live-call error for `call`: another tenant's call answers exactly as an unknown one.
pub fn live(e: LiveError, call: &crate::calls::CallId) -> Status {
    match e {
        LiveError::UnknownCall(_) | LiveError::OtherTenant => no_call(call),
        e @ LiveError::CallEnded(_) => Status::failed_precondition(e.to_string()),
        LiveError::Invalid(msg) => Status::invalid_argument(msg),
        e @ LiveError::JournalFull(_) => Status::resource_exhausted(e.to_string()),
        LiveError::Store(e) => store(e),
    }
}

pub fn auth(e: AuthError) -> Status {
    match e {
        AuthError::Store(e) => store(e),
        other => Status::unauthenticated(other.to_string()),
    }
}

// Another tenant's object answers exactly as one that does not exist (same code,
// same message): a key learns nothing about what other tenants hold.

/// An unknown user, or another tenant's.
pub fn no_user() -> Status {
    Status::not_found("no such user")
}

/// An unknown call, or another tenant's.
pub fn no_call(call: &crate::calls::CallId) -> Status {
    Status::not_found(LiveError::UnknownCall(call.clone()).to_string())
}

/// A called number no user has, or one of another tenant's users.
pub fn unknown_called_number(called: &str) -> Status {
    resolve(ResolveError::UnknownCalledNumber(called.to_string()))
}
