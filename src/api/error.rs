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

pub fn live(e: LiveError) -> Status {
    match e {
        e @ LiveError::UnknownCall(_) => Status::not_found(e.to_string()),
        LiveError::OtherTenant => other_tenant(),
        e @ LiveError::CallEnded(_) => Status::failed_precondition(e.to_string()),
        LiveError::Invalid(msg) => Status::invalid_argument(msg),
        LiveError::Store(e) => store(e),
    }
}

pub fn auth(e: AuthError) -> Status {
    match e {
        AuthError::Store(e) => store(e),
        other => Status::unauthenticated(other.to_string()),
    }
}

/// The same answer whatever the other tenant holds: nothing is revealed.
pub fn other_tenant() -> Status {
    Status::permission_denied("this API key's tenant has no access to that user or call")
}
