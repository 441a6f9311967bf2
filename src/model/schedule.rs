//! When an account syncs: a cron expression and the time zone it is read in.
//! The scheduler (`sync::scheduler`) runs it.

use chrono::{DateTime, Utc};
use contactbridge_connector::{echo, shorten_quoted};
use serde::{Deserialize, Serialize};
use std::str::FromStr as _;

/// A cron expression and the time zone it is read in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// `min hour dom month dow`, or with seconds first (`0 */15 * * * *`).
    pub cron: String,
    /// IANA time zone name (`Europe/Berlin`); `UTC` by default.
    #[serde(default = "utc")]
    pub time_zone: String,
}

fn utc() -> String {
    "UTC".into()
}

/// A schedule that does not parse, or has no next run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("cron expression {} is invalid: {} (use `min hour day month weekday`, e.g. `*/15 * * * *`, or with seconds first)", echo(.cron), shorten_quoted(.reason))]
    Cron { cron: String, reason: String },
    #[error("time zone {} is not an IANA time zone name (e.g. Europe/Berlin, UTC)", echo(.0))]
    TimeZone(String),
    #[error("cron expression {} never fires again", echo(.0))]
    Never(String),
}

impl Schedule {
    /// A checked schedule.
    pub fn new(cron: &str, time_zone: &str) -> Result<Self, ScheduleError> {
        let s = Schedule { cron: cron.trim().to_string(), time_zone: time_zone.trim().to_string() };
        s.parsed()?;
        Ok(s)
    }

    fn parsed(&self) -> Result<(croner::Cron, chrono_tz::Tz), ScheduleError> {
        let cron = croner::Cron::from_str(&self.cron)
            .map_err(|e| ScheduleError::Cron { cron: self.cron.clone(), reason: e.to_string() })?;
        let tz =
            self.time_zone.parse::<chrono_tz::Tz>().map_err(|_| ScheduleError::TimeZone(self.time_zone.clone()))?;
        Ok((cron, tz))
    }

    /// The first time strictly after `t` the schedule fires.
    pub fn next_after(&self, t: DateTime<Utc>) -> Result<DateTime<Utc>, ScheduleError> {
        let (cron, tz) = self.parsed()?;
        cron.find_next_occurrence(&t.with_timezone(&tz), false)
            .map(|n| n.with_timezone(&Utc))
            .map_err(|_| ScheduleError::Never(self.cron.clone()))
    }
}
