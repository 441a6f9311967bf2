//! RRULE expansion with the `rrule` crate, on the wall clock of the event's
//! zone (so that Windows names, VTIMEZONE offsets and floating times all work).

use super::time::{When, Zone};
use chrono::{DateTime, Duration, NaiveDateTime, NaiveTime, TimeZone, Utc};
use rrule::{RRule, Unvalidated};

/// At most this many instances are generated per rule (then a warning).
const MAX_INSTANCES: usize = 50_000;

/// The wall-clock starts an RRULE yields for `start`, up to (about) `until`.
///
/// `rrule` only knows IANA zones; we hand it the wall clock as if it were UTC
/// and convert each result with the event's own zone afterwards. UNTIL (an
/// instant in UTC, or a date) is converted to that same wall clock first.
pub(crate) fn expand(rule: &str, start: When, until: DateTime<Utc>) -> Result<Vec<NaiveDateTime>, String> {
    let zone = start.zone();
    let mut parts = Vec::new();
    let mut rule_until = None;
    for part in rule.trim().trim_start_matches("RRULE:").split(';').filter(|p| !p.trim().is_empty()) {
        match part.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("UNTIL") => rule_until = Some(v.trim().to_string()),
            _ => parts.push(part.trim()),
        }
    }
    let mut parsed: RRule<Unvalidated> = parts.join(";").parse().map_err(|e| format!("RRULE {rule:?}: {e}"))?;
    if let Some(u) = rule_until {
        let wall = until_wall(&u, zone).ok_or_else(|| format!("RRULE {rule:?}: bad UNTIL"))?;
        parsed = parsed.until(rrule::Tz::UTC.from_utc_datetime(&wall));
    }
    let dtstart = rrule::Tz::UTC.from_utc_datetime(&start.wall());
    let set = parsed.build(dtstart).map_err(|e| format!("RRULE {rule:?}: {e}"))?.limit();
    // The wall clock runs at most ~26 hours ahead of UTC.
    let stop = zone.to_wall(until) + Duration::hours(27);
    let mut out = Vec::new();
    for t in set.into_iter() {
        let wall = t.naive_utc();
        if wall > stop {
            break;
        }
        if out.len() >= MAX_INSTANCES {
            tracing::warn!(rule, "recurrence stopped after {MAX_INSTANCES} instances");
            break;
        }
        out.push(wall);
    }
    Ok(out)
}

/// UNTIL as a wall-clock time of the event's zone: `Z` times are instants,
/// dates include their whole day, floating times are taken as written.
fn until_wall(value: &str, zone: Zone) -> Option<NaiveDateTime> {
    let v: String = value.chars().filter(|c| *c != '-' && *c != ':').collect();
    let date = chrono::NaiveDate::parse_from_str(v.get(..8)?, "%Y%m%d").ok()?;
    if v.len() <= 9 {
        return Some(date.and_time(NaiveTime::from_hms_opt(23, 59, 59)?));
    }
    let time = NaiveTime::parse_from_str(v.get(9..15)?, "%H%M%S").ok()?;
    let wall = date.and_time(time);
    Some(if v.ends_with(['Z', 'z']) { zone.to_wall(wall.and_utc()) } else { wall })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use chrono_tz::Tz;

    fn wall(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn daily_with_utc_until_in_a_dst_zone() {
        let start = When::Time(wall("2024-03-29 09:00"), Zone::Iana(Tz::Europe__Berlin));
        // 08:00Z on 1 April is 10:00 Berlin (summer time): 1 April 09:00 is included.
        let got = expand("FREQ=DAILY;UNTIL=20240401T080000Z", start, Utc::now()).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[3], wall("2024-04-01 09:00"));
    }

    #[test]
    fn weekly_by_day_with_count() {
        let start = When::Date(NaiveDate::from_ymd_opt(2012, 8, 3).unwrap(), Zone::Utc);
        let got = expand("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;COUNT=3", start, Utc::now()).unwrap();
        assert_eq!(got, vec![wall("2012-08-03 00:00"), wall("2012-08-06 00:00"), wall("2012-08-07 00:00")]);
    }

    #[test]
    fn stops_after_the_window() {
        let start = When::Time(wall("2012-08-01 05:00"), Zone::Utc);
        let until = wall("2012-08-10 00:00").and_utc();
        let got = expand("FREQ=DAILY", start, until).unwrap();
        assert_eq!(got.last(), Some(&wall("2012-08-10 05:00")));
    }

    #[test]
    fn bad_rules_are_errors() {
        let start = When::Time(wall("2012-08-01 05:00"), Zone::Utc);
        assert!(expand("FREQ=SOMETIMES", start, Utc::now()).is_err());
        assert!(expand("FREQ=DAILY;UNTIL=garbage", start, Utc::now()).is_err());
        // Impossible rules end (rrule's loop limit) instead of hanging.
        let got = expand("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", start, Utc::now()).unwrap();
        assert!(got.is_empty());
    }
}
