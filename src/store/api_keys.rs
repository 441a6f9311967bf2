//! API keys of the gRPC interface, as stored: the key's id, tenant, scope and
//! the hash of its secret, never the secret (creating and checking keys is
//! `api::auth`'s). User-owned: backups carry them.

use super::StoreError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The phone system: ResolveCall, GetCallerContext, WatchDirectives, ReportCallEvent, SendDirective.
    Tsps,
    /// Tenant administration: the Admin service, and SendDirective.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Tsps => "tsps",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tsps" => Ok(Scope::Tsps),
            "admin" => Ok(Scope::Admin),
            other => Err(format!("unknown key scope {}; use tsps or admin", contactbridge_connector::echo(other))),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key as stored: no secret, only its hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// The key's public id (the `<id>` of `cb_<id>_<secret>`).
    pub id: String,
    pub tenant: String,
    pub scope: Scope,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub label: String,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("scope", &self.scope)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// Where keys are kept (the sled backend keeps them with the user data, so
/// `backup` and `restore` carry them).
pub trait ApiKeyStore: Send + Sync {
    fn put_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    fn key(&self, id: &str) -> Result<Option<StoredKey>, StoreError>;
    /// All keys, or a tenant's.
    fn keys(&self, tenant: Option<&str>) -> Result<Vec<StoredKey>, StoreError>;
    fn delete_key(&self, id: &str) -> Result<bool, StoreError>;
}
