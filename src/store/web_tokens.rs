//! Sign-in tokens of the notification window, as stored: login links and
//! browser sessions, only their hashes (issuing and checking them is
//! `web::auth`'s). User-owned: backups carry them.

use super::StoreError;
use crate::model::UserId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a token opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A login link: exchanged once for a session.
    Login,
    /// A browser session (the cookie).
    Session,
}

/// A token as stored: its hash, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredWebToken {
    /// SHA-256 of the token text, hex.
    pub sha256: String,
    pub kind: TokenKind,
    pub user: UserId,
    pub created: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

/// Where web tokens are kept (the sled backend: the user-data database, prefix `w`).
pub trait WebTokenStore: Send + Sync {
    fn put_web_token(&self, token: &StoredWebToken) -> Result<(), StoreError>;
    fn web_token(&self, sha256: &str) -> Result<Option<StoredWebToken>, StoreError>;
    fn delete_web_token(&self, sha256: &str) -> Result<bool, StoreError>;
    /// Removes tokens that expired before `now`; returns how many.
    fn purge_web_tokens(&self, now: DateTime<Utc>) -> Result<usize, StoreError>;
}
