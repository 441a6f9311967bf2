//! The user profile: who the user is to the phone system and how they want calls handled.

use super::HandlingTable;
use crate::resolve::Status;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A user's id: 1–128 characters, no control characters and no `/`. Unique
/// across tenants (e.g. `acme.alice`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() || s.len() > 128 {
            return Err(format!("user id {s:?} must be 1 to 128 characters"));
        }
        if s.chars().any(|c| c.is_control() || c == '/') {
            return Err(format!("user id {s:?} must not contain '/' or control characters"));
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}
impl From<UserId> for String {
    fn from(u: UserId) -> String {
        u.0
    }
}
impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A number the notification window offers as a forward button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardTarget {
    pub label: String,
    pub number: String,
}

/// Who takes calls for the user when the handling method says "attendant":
/// a phone number, and optionally the attendant's own user id, whose
/// attendant view then shows this user's calls live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attendant {
    pub number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
}

/// A status the user set by hand, with an optional expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualStatus {
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

impl ManualStatus {
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

/// Which caller context the notification window shows: how far back and ahead,
/// and how many items of each kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextCriteria {
    /// Days back from now.
    pub days_back: u32,
    /// Days ahead of now (for upcoming meetings).
    pub days_ahead: u32,
    pub max_mail: u32,
    pub max_events: u32,
    pub max_documents: u32,
    pub max_calls: u32,
}

impl Default for ContextCriteria {
    fn default() -> Self {
        Self { days_back: 90, days_ahead: 30, max_mail: 10, max_events: 5, max_documents: 5, max_calls: 10 }
    }
}

/// Everything the bridge knows about a user that is not synced from a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
    pub id: UserId,
    /// The tenant (organisation) the user belongs to; admin keys are per tenant.
    pub tenant: String,
    #[serde(default)]
    pub display_name: String,
    /// The called numbers (DIDs) that identify this user, as written by the admin.
    #[serde(default)]
    pub called_numbers: Vec<String>,
    /// Default region for numbers written without a country code (ISO 3166, e.g. "DE").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// IANA time zone, e.g. "Europe/Berlin".
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attendant: Option<Attendant>,
    #[serde(default)]
    pub forward_targets: Vec<ForwardTarget>,
    #[serde(default)]
    pub handling: HandlingTable,
    #[serde(default)]
    pub context: ContextCriteria,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_status: Option<ManualStatus>,
}

fn default_time_zone() -> String {
    "UTC".to_string()
}

impl UserProfile {
    /// A new user with the default handling table.
    pub fn new(id: UserId, tenant: impl Into<String>) -> Self {
        Self {
            id,
            tenant: tenant.into(),
            display_name: String::new(),
            called_numbers: Vec::new(),
            region: None,
            time_zone: default_time_zone(),
            attendant: None,
            forward_targets: Vec::new(),
            handling: HandlingTable::default(),
            context: ContextCriteria::default(),
            manual_status: None,
        }
    }

    /// Checks what serde cannot: the time zone and region are real.
    pub fn validate(&self) -> Result<(), String> {
        if self.tenant.trim().is_empty() {
            return Err("tenant must not be empty".into());
        }
        self.time_zone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| format!("time zone {:?} is not an IANA zone such as Europe/Berlin", self.time_zone))?;
        if let Some(region) = &self.region {
            crate::phone::Region::parse(region).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
