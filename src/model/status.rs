//! The user's status as stored (a manual status, a call record) and the busy
//! spans the index returns for it. Deriving the status is the resolver's
//! (`resolve::status`).

use chrono::{DateTime, Utc};
use contactbridge_connector::BusyStatus;
use serde::{Deserialize, Serialize};

/// The user's status, ordered from least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Available,
    WorkingElsewhere,
    Tentative,
    /// In a meeting.
    Busy,
    OutOfOffice,
    DoNotDisturb,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Available,
        Status::WorkingElsewhere,
        Status::Tentative,
        Status::Busy,
        Status::OutOfOffice,
        Status::DoNotDisturb,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Available => "available",
            Status::WorkingElsewhere => "working_elsewhere",
            Status::Tentative => "tentative",
            Status::Busy => "busy",
            Status::OutOfOffice => "out_of_office",
            Status::DoNotDisturb => "do_not_disturb",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        Status::ALL
            .into_iter()
            .find(|st| {
                st.as_str() == s
                    || (s == "dnd" && *st == Status::DoNotDisturb)
                    || (s == "oof" && *st == Status::OutOfOffice)
            })
            .ok_or_else(|| {
                format!(
                    "unknown status {}; use one of {}",
                    crate::connector::echo(&s),
                    Status::ALL.map(Status::as_str).join(", ")
                )
            })
    }

    /// The status an event with this busy status gives while it is in progress.
    pub fn from_busy(busy: BusyStatus) -> Status {
        match busy {
            BusyStatus::Free => Status::Available,
            BusyStatus::Tentative => Status::Tentative,
            BusyStatus::Busy => Status::Busy,
            BusyStatus::OutOfOffice => Status::OutOfOffice,
            BusyStatus::WorkingElsewhere => Status::WorkingElsewhere,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event occurrence in progress, as the index returns it for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusySpan {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub busy: BusyStatus,
    pub subject: String,
}
