//! The user's status at the moment of a call, and which rule decided it.
//!
//! Sources: the manual status (with its expiry), an out-of-office setting that
//! is on, and calendar events in progress. The most restrictive wins.

use crate::model::ManualStatus;
pub use crate::model::{BusySpan, Status};
use chrono::{DateTime, Utc};
use contactbridge_connector::OutOfOffice;
use serde::{Deserialize, Serialize};

/// Which rule set the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum StatusReason {
    /// Nothing applies: the user is available.
    Default,
    /// The user set it by hand.
    Manual { until: Option<DateTime<Utc>> },
    /// Automatic replies are on.
    OutOfOfficeReplies,
    /// A calendar event is in progress.
    Calendar { subject: String, start: DateTime<Utc>, end: DateTime<Utc> },
}

/// Derives the status from its three sources; the most restrictive wins, and
/// on a tie the first source in the order manual, out-of-office, calendar.
pub fn derive(
    now: DateTime<Utc>,
    manual: Option<&ManualStatus>,
    out_of_office: &[OutOfOffice],
    in_progress: &[BusySpan],
) -> (Status, StatusReason) {
    let mut best = (Status::Available, StatusReason::Default);
    let mut consider = |status: Status, reason: StatusReason| {
        if status > best.0 {
            best = (status, reason);
        }
    };
    if let Some(m) = manual.filter(|m| m.active_at(now)) {
        consider(m.status, StatusReason::Manual { until: m.until });
    }
    if out_of_office.iter().any(|o| o.active_at(now)) {
        consider(Status::OutOfOffice, StatusReason::OutOfOfficeReplies);
    }
    for span in in_progress.iter().filter(|s| s.start <= now && now < s.end) {
        consider(
            Status::from_busy(span.busy),
            StatusReason::Calendar { subject: span.subject.clone(), start: span.start, end: span.end },
        );
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use contactbridge_connector::{BusyStatus, Occurrence, RecordId};

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(h * 3600, 0).unwrap()
    }

    fn span(start: i64, end: i64, busy: BusyStatus) -> BusySpan {
        BusySpan { start: t(start), end: t(end), busy, subject: format!("{busy:?}") }
    }

    #[test]
    fn available_when_nothing_applies() {
        assert_eq!(derive(t(10), None, &[], &[]), (Status::Available, StatusReason::Default));
    }

    #[test]
    fn each_source_alone() {
        let manual = ManualStatus { status: Status::DoNotDisturb, until: Some(t(12)) };
        assert_eq!(derive(t(10), Some(&manual), &[], &[]).0, Status::DoNotDisturb);
        assert_eq!(derive(t(12), Some(&manual), &[], &[]).0, Status::Available, "expired");

        let oof = OutOfOffice {
            id: RecordId::new("o"),
            enabled: true,
            scheduled: Some(Occurrence { start: t(0), end: t(24) }),
        };
        assert_eq!(
            derive(t(10), None, std::slice::from_ref(&oof), &[]),
            (Status::OutOfOffice, StatusReason::OutOfOfficeReplies)
        );
        assert_eq!(derive(t(30), None, &[oof], &[]).0, Status::Available);

        for (busy, status) in [
            (BusyStatus::Busy, Status::Busy),
            (BusyStatus::Tentative, Status::Tentative),
            (BusyStatus::OutOfOffice, Status::OutOfOffice),
            (BusyStatus::WorkingElsewhere, Status::WorkingElsewhere),
            (BusyStatus::Free, Status::Available),
        ] {
            assert_eq!(derive(t(10), None, &[], &[span(9, 11, busy)]).0, status, "{busy:?}");
        }
        assert_eq!(derive(t(11), None, &[], &[span(9, 11, BusyStatus::Busy)]).0, Status::Available, "end is exclusive");
    }

    #[test]
    fn most_restrictive_wins_and_names_its_rule() {
        let manual = ManualStatus { status: Status::Tentative, until: None };
        let (status, reason) =
            derive(t(10), Some(&manual), &[], &[span(9, 11, BusyStatus::Tentative), span(10, 12, BusyStatus::Busy)]);
        assert_eq!(status, Status::Busy);
        assert!(matches!(reason, StatusReason::Calendar { ref subject, .. } if subject == "Busy"));

        let manual = ManualStatus { status: Status::Available, until: None };
        assert_eq!(derive(t(10), Some(&manual), &[], &[span(9, 11, BusyStatus::Busy)]).0, Status::Busy);
    }

    #[test]
    fn parse_accepts_common_spellings() {
        assert_eq!(Status::parse("DND").unwrap(), Status::DoNotDisturb);
        assert_eq!(Status::parse("do-not-disturb").unwrap(), Status::DoNotDisturb);
        assert_eq!(Status::parse("out of office").unwrap(), Status::OutOfOffice);
        assert!(Status::parse("asleep").unwrap_err().contains("available"));
    }
}
