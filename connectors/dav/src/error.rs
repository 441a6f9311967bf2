//! Turns libdav and HTTP failures into connector errors with kinds an admin can act on.

use crate::http::{chain, TransportError};
use contactbridge_connector::{Error, ErrorKind};
use http::StatusCode;
use libdav::dav::{RequestError, WebDavError};

/// The kind of error an HTTP status means for a DAV request.
pub(crate) fn status_kind(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        401 => ErrorKind::Auth,
        403 => ErrorKind::Forbidden,
        404 | 410 => ErrorKind::NotFound,
        429 | 503 => ErrorKind::Throttled,
        502 | 504 => ErrorKind::Unreachable,
        _ => ErrorKind::InvalidData,
    }
}

/// A transport failure (no HTTP response at all).
pub(crate) fn request_error(context: &str, error: RequestError<TransportError>) -> Error {
    match error {
        RequestError::Client(TransportError::Token(inner)) => {
            Error::new(inner.kind, format!("{context}: could not get an access token: {}", inner.message))
        }
        RequestError::Client(TransportError::BadHeader) => Error::local(format!("{context}: unusable credentials")),
        RequestError::Client(other) => match refusal(&other) {
            // The account's network policy (or plain-http rule) refused the target: that is
            // the operator's setting, not DNS or a firewall, and retrying will not change it.
            Some(refused) => Error::new(refused.kind, format!("{context}: {}", refused.message)),
            None => Error::unreachable(format!("{context}: {}", chain(&other))).with_source(other),
        },
        RequestError::Http(inner) => Error::unreachable(format!("{context}: reading the response: {}", chain(&*inner))),
    }
}

/// The connector's own refusal ([`crate::guard`]) behind a connection failure, if that is what it was.
fn refusal(error: &TransportError) -> Option<&Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Error>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

/// Any libdav request error.
pub(crate) fn dav_error(context: &str, error: WebDavError<TransportError>) -> Error {
    match error {
        WebDavError::Request(inner) => request_error(context, inner),
        WebDavError::BadStatusCode(status) => {
            let kind = status_kind(status);
            let hint = match kind {
                ErrorKind::Auth => ": check the username and password (or token)",
                _ => "",
            };
            Error::new(kind, format!("{context}: the server answered {status}{hint}"))
        }
        WebDavError::Xml(e) => Error::invalid_data(format!("{context}: malformed XML from the server: {e}")),
        WebDavError::InvalidResponse(e) => Error::invalid_data(format!("{context}: {}", chain(&*e))),
        WebDavError::InvalidInput(e) => Error::local(format!("{context}: cannot build the request URL: {e}")),
        WebDavError::PreconditionFailed(p) => {
            Error::invalid_data(format!("{context}: the server refused a precondition ({p})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(status_kind(StatusCode::UNAUTHORIZED), ErrorKind::Auth);
        assert_eq!(status_kind(StatusCode::FORBIDDEN), ErrorKind::Forbidden);
        assert_eq!(status_kind(StatusCode::TOO_MANY_REQUESTS), ErrorKind::Throttled);
        assert_eq!(status_kind(StatusCode::NOT_FOUND), ErrorKind::NotFound);
        assert_eq!(status_kind(StatusCode::INTERNAL_SERVER_ERROR), ErrorKind::InvalidData);
    }
}
