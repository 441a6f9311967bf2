//! One error type for every connector, with kinds a user understands.

use std::time::Duration;

/// What went wrong, in words an admin can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Credentials rejected or expired: fix the account's credentials.
    Auth,
    /// Credentials valid, but this mailbox or collection is fenced off (403).
    Forbidden,
    /// The server could not be reached (DNS, connection, TLS, timeout).
    Unreachable,
    /// The server asks us to slow down (429, 503) and retries ran out.
    Throttled,
    /// The server sent something we cannot understand.
    InvalidData,
    /// The checkpoint is no longer valid (410, expired sync token): resync.
    Gone,
    /// The collection or item does not exist.
    NotFound,
    /// The source cannot do this (e.g. write to a read-only source).
    Unsupported,
    /// A local problem: configuration, file system, index.
    Local,
}

impl ErrorKind {
    /// Whether retrying later may succeed without anyone changing anything.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Unreachable | Self::Throttled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "authentication failed",
            Self::Forbidden => "access denied",
            Self::Unreachable => "server unreachable",
            Self::Throttled => "throttled by server",
            Self::InvalidData => "invalid data from server",
            Self::Gone => "sync state expired",
            Self::NotFound => "not found",
            Self::Unsupported => "not supported",
            Self::Local => "local error",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connector error: a kind, a message with context, and an optional cause.
/// Messages must never contain secrets (passwords, tokens, client secrets).
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// For [`ErrorKind::Throttled`]: how long the server asked us to wait.
    pub retry_after: Option<Duration>,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), retry_after: None, source: None }
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unreachable, message)
    }
    pub fn invalid_data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidData, message)
    }
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Gone, message)
    }
    pub fn local(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Local, message)
    }
}
