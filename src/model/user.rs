//! The user profile: who the user is to the phone system and how they want calls handled.

use super::HandlingTable;
use super::Status;
use crate::connector::echo;
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
            return Err(format!("user id {} must be 1 to 128 characters", echo(s)));
        }
        if s.chars().any(|c| c.is_control() || c == '/') {
            return Err(format!("user id {} must not contain '/' or control characters", echo(s)));
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

impl ContextCriteria {
    /// The most days a context window reaches back or ahead (about ten years). The one cap for gRPC
    /// (`GetCallerContext`, `PutUser`), the notification window and stored profiles.
    pub const MAX_DAYS: u32 = 3650;
    /// The most items of one kind a context holds.
    pub const MAX_ITEMS: u32 = 200;

    /// Each field with its name and cap.
    fn fields(&self) -> [(&'static str, u32, u32); 6] {
        let (days, items) = (Self::MAX_DAYS, Self::MAX_ITEMS);
        [
            ("days_back", self.days_back, days),
            ("days_ahead", self.days_ahead, days),
            ("max_mail", self.max_mail, items),
            ("max_events", self.max_events, items),
            ("max_documents", self.max_documents, items),
            ("max_calls", self.max_calls, items),
        ]
    }

    /// Checks every field against its cap; the error names the first field over it.
    pub fn check(&self) -> Result<(), CriteriaOutOfRange> {
        match self.fields().into_iter().find(|(_, value, max)| value > max) {
            Some((field, value, max)) => Err(CriteriaOutOfRange { field, value, max }),
            None => Ok(()),
        }
    }

    /// Every field at most its cap: for profiles stored before the caps existed (read, never refused).
    pub fn clamped(&self) -> Self {
        Self {
            days_back: self.days_back.min(Self::MAX_DAYS),
            days_ahead: self.days_ahead.min(Self::MAX_DAYS),
            max_mail: self.max_mail.min(Self::MAX_ITEMS),
            max_events: self.max_events.min(Self::MAX_ITEMS),
            max_documents: self.max_documents.min(Self::MAX_ITEMS),
            max_calls: self.max_calls.min(Self::MAX_ITEMS),
        }
    }
}

/// A context criterion over its cap ([`ContextCriteria::MAX_DAYS`], [`ContextCriteria::MAX_ITEMS`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} is {value}; it may be at most {max}")]
pub struct CriteriaOutOfRange {
    /// The field's name (`days_back`, `max_mail`, …).
    pub field: &'static str,
    pub value: u32,
    pub max: u32,
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

    /// Checks what serde cannot: the time zone and region are real, and every
    /// field is within its bound ([`super::limits`]).
    pub fn validate(&self) -> Result<(), String> {
        if self.tenant.trim().is_empty() {
            return Err("tenant must not be empty".into());
        }
        super::limits::check(self).map_err(|e| e.to_string())?;
        self.time_zone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| format!("time zone {} is not an IANA zone such as Europe/Berlin", echo(&self.time_zone)))?;
        if let Some(region) = &self.region {
            crate::phone::Region::parse(region).map_err(|e| e.to_string())?;
        }
        self.context.check().map_err(|e| format!("context.{e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criteria_caps_name_the_field_and_clamp_on_read() {
        let mut c = ContextCriteria::default();
        assert_eq!(c.check(), Ok(()));
        c.max_calls = 201;
        c.days_back = 4_000_000_000;
        let e = c.check().unwrap_err();
        assert_eq!(e.to_string(), "days_back is 4000000000; it may be at most 3650");
        let clamped = c.clamped();
        assert_eq!((clamped.days_back, clamped.max_calls), (3650, 200));
        assert_eq!(clamped.check(), Ok(()));
        let mut p = UserProfile::new(UserId::parse("u").unwrap(), "t");
        p.context.days_ahead = 3651;
        assert_eq!(p.validate().unwrap_err(), "context.days_ahead is 3651; it may be at most 3650");
    }
}
