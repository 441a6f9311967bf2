//! RRULE expansion with the `rrule` crate, on the wall clock of the event's
//! zone (so that Windows names, VTIMEZONE offsets and floating times all work).
//!
//! Work is bounded by the window, not by DTSTART: a rule without calendar
//! dependent parts (BYMONTH, BYMONTHDAY, …) repeats with a fixed period, so the
//! expansion starts at the last instance before the window (COUNT reduced by the
//! instances skipped). Every rule stops after [`MAX_ITERATIONS`] instances, and
//! at most a caller-given number of instances is kept: those nearest to a focus
//! time (now), so that a dense series still shows in the status.

use super::time::{When, Zone};
use chrono::{DateTime, Duration, NaiveDateTime, NaiveTime, TimeZone, Utc};
use rrule::{Frequency, NWeekday, RRule, Unvalidated};
use std::collections::VecDeque;

/// At most this many instances are generated per rule, inside the window or not.
pub(crate) const MAX_ITERATIONS: usize = 100_000;

/// The spacing under which a rule is dense (see [`Bounds::dense_keep`]).
const DAY_SECS: i64 = 86_400;

/// Where and how much to expand.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Instances starting from here (wall clock of any zone: a day of margin is added)…
    pub from: DateTime<Utc>,
    /// …up to here are wanted.
    pub to: DateTime<Utc>,
    /// When more than `keep` instances fall between `from` and `to`, those
    /// starting at or after `focus` are kept first.
    pub focus: DateTime<Utc>,
    pub keep: usize,
    /// A rule denser than daily (more than one instance a day on average)
    /// keeps at most this many (fewer than `keep`), nearest to `focus` too.
    pub dense_keep: usize,
    /// How long each instance lasts (on the wall clock): when instances touch
    /// or overlap and more than `keep` fall inside, their union is returned
    /// as one [`Expansion::span`] instead.
    pub length: Duration,
}

/// The wall-clock starts a rule yields inside the bounds.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Expansion {
    pub walls: Vec<NaiveDateTime>,
    /// Set when instances inside the bounds were left out (`keep` or [`MAX_ITERATIONS`]).
    pub truncated: bool,
    /// The rule is denser than daily: [`Bounds::dense_keep`] applies to the
    /// event as a whole (its DTSTART and RDATEs included).
    pub dense: bool,
    /// A dense rule whose instances touch or overlap: the first and the last
    /// instance inside the bounds (every one between them is covered).
    pub span: Option<(NaiveDateTime, NaiveDateTime)>,
}

/// The wall-clock starts an RRULE yields for `start` inside `bounds`.
///
/// `rrule` only knows IANA zones; we hand it the wall clock as if it were UTC
/// and convert each result with the event's own zone afterwards. UNTIL (an
/// instant in UTC, or a date) is converted to that same wall clock first.
pub(crate) fn expand(rule: &str, start: When, bounds: Bounds) -> Result<Expansion, String> {
    // RFC 5545 writes a rule in ASCII; the rrule crate cuts non-ASCII text at byte positions and panics.
    if !rule.is_ascii() {
        return Err(format!("RRULE {}: a rule is written in ASCII", contactbridge_connector::echo(rule)));
    }
    let zone = start.zone();
    let mut parts = Vec::new();
    let mut rule_until = None;
    for part in rule.trim().trim_start_matches("RRULE:").split(';').filter(|p| !p.trim().is_empty()) {
        match part.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("UNTIL") => rule_until = Some(v.trim().to_string()),
            _ => parts.push(part.trim()),
        }
    }
    let mut parsed: RRule<Unvalidated> =
        parts.join(";").parse().map_err(|e| format!("RRULE {}: {e}", contactbridge_connector::echo(rule)))?;
    let mut until_wall = None;
    if let Some(u) = rule_until {
        let wall = until_wall_of(&u, zone).ok_or_else(|| format!("RRULE {rule:?}: bad UNTIL"))?;
        until_wall = Some(wall);
        parsed = parsed.until(rrule::Tz::UTC.from_utc_datetime(&wall));
    }
    let dtstart_wall = start.wall();
    // Validate against the real DTSTART, so that a bad rule is reported as such.
    parsed
        .clone()
        .validate(rrule::Tz::UTC.from_utc_datetime(&dtstart_wall))
        .map_err(|e| format!("RRULE {rule:?}: {e}"))?;

    let margin = Duration::days(1);
    let lo = zone.to_wall(bounds.from) - margin;
    let hi = zone.to_wall(bounds.to) + margin;
    let focus = zone.to_wall(bounds.focus.clamp(bounds.from, bounds.to));
    let mut keep = bounds.keep.max(1);
    let dense = has_no_filters(&parsed) && fixed_period(&parsed).is_some_and(|p| p.num_seconds() < DAY_SECS);
    if dense {
        // Known dense before iterating: the lower cap applies from the start.
        keep = keep.min(bounds.dense_keep.max(1));
    }

    if let Some(span) = continuous_span(&parsed, dtstart_wall, until_wall, lo, hi, keep, bounds.length) {
        return Ok(Expansion { walls: Vec::new(), truncated: false, span, dense });
    }

    // Skip ahead: to the window, or (dense rules) to `keep` periods before the focus.
    let mut first = dtstart_wall;
    let mut truncated = false;
    if let Some(period) = fixed_period(&parsed) {
        let secs = period.num_seconds();
        let dense_start = focus - Duration::seconds(secs.saturating_mul(keep as i64).min(100 * 365 * 86_400));
        let target = lo.max(dense_start);
        let periods = if target > dtstart_wall { (target - dtstart_wall).num_seconds() / secs } else { 0 };
        if periods > 0 {
            if let Some(count) = parsed.get_count() {
                if !has_no_filters(&parsed) {
                    // How many instances the skipped periods held is not known: iterate.
                    return iterate(parsed, dtstart_wall, lo, hi, focus, keep, false)
                        .map(|e| cut_dense(e, focus, bounds.dense_keep.max(1), dense));
                }
                // Instances are counted from DTSTART: `periods` of them are behind us.
                let Some(left) = i64::from(count).checked_sub(periods).filter(|l| *l > 0) else {
                    return Ok(Expansion::default());
                };
                parsed = parsed.count(u32::try_from(left).unwrap_or(u32::MAX));
            }
            first = dtstart_wall + Duration::seconds(periods * secs);
            // Instances between the window's start and the dense start are left out.
            truncated = target > lo && first > lo;
        }
    }
    if until_wall.is_some_and(|u| first > u) {
        return Ok(Expansion::default());
    }
    iterate(parsed, first, lo, hi, focus, keep, truncated).map(|e| cut_dense(e, focus, bounds.dense_keep.max(1), dense))
}

/// Rules whose density shows only after iterating (BYxxx parts): past `keep`
/// instances averaging more than one a day, the `keep` from the first at or
/// after `focus` (or the last `keep`).
fn cut_dense(mut e: Expansion, focus: NaiveDateTime, keep: usize, known_dense: bool) -> Expansion {
    e.dense = known_dense;
    let n = e.walls.len();
    let (Some(first), Some(last)) = (e.walls.first(), e.walls.last()) else { return e };
    let n_i64 = i64::try_from(n).unwrap_or(i64::MAX);
    if n <= keep || (*last - *first).num_seconds() >= (n_i64 - 1).saturating_mul(DAY_SECS) {
        return e;
    }
    let from = e.walls.partition_point(|w| *w < focus).min(n - keep);
    e.walls.drain(..from);
    e.walls.truncate(keep);
    e.truncated = true;
    e.dense = true;
    e
}

/// Runs the rule from `first`, keeping at most `keep` instances in `lo..=hi`
/// (dropping the earliest while they start before `focus`).
fn iterate(
    rule: RRule<Unvalidated>,
    first: NaiveDateTime,
    lo: NaiveDateTime,
    hi: NaiveDateTime,
    focus: NaiveDateTime,
    keep: usize,
    mut truncated: bool,
) -> Result<Expansion, String> {
    let set = rule.build(rrule::Tz::UTC.from_utc_datetime(&first)).map_err(|e| format!("RRULE: {e}"))?.limit();
    let mut kept: VecDeque<NaiveDateTime> = VecDeque::new();
    for (n, t) in set.into_iter().enumerate() {
        if n >= MAX_ITERATIONS {
            tracing::warn!("recurrence stopped after {MAX_ITERATIONS} instances");
            truncated = true;
            break;
        }
        let wall = t.naive_utc();
        if wall > hi {
            break;
        }
        if wall < lo {
            continue;
        }
        if kept.len() >= keep {
            truncated = true;
            if kept.front().is_some_and(|f| *f < focus) {
                kept.pop_front();
            } else {
                break;
            }
        }
        kept.push_back(wall);
    }
    Ok(Expansion { walls: kept.into(), truncated, span: None, dense: false })
}

/// For a rule without BYxxx parts whose instances touch or overlap (period ≤
/// length) and that has more than `keep` of them in `lo..=hi`: `Some(span)`,
/// the first and last instance there (`Some(None)`: none there), computed
/// without iterating. `None` when that does not apply.
#[allow(clippy::option_option)]
fn continuous_span(
    rule: &RRule<Unvalidated>,
    dtstart: NaiveDateTime,
    until: Option<NaiveDateTime>,
    lo: NaiveDateTime,
    hi: NaiveDateTime,
    keep: usize,
    length: Duration,
) -> Option<Option<(NaiveDateTime, NaiveDateTime)>> {
    if !has_no_filters(rule) {
        return None;
    }
    let p = fixed_period(rule)?.num_seconds();
    if p <= 0 || Duration::seconds(p) > length {
        return None;
    }
    let index_at = |t: NaiveDateTime| (t - dtstart).num_seconds().div_euclid(p);
    // The first instance at or after `lo`.
    let first = if dtstart < lo { ((lo - dtstart).num_seconds() + p - 1) / p } else { 0 };
    let mut last = index_at(hi);
    if let Some(count) = rule.get_count() {
        last = last.min(i64::from(count) - 1);
    }
    if let Some(u) = until {
        last = last.min(if u < dtstart { -1 } else { index_at(u) });
    }
    if last < first {
        return Some(None);
    }
    if usize::try_from(last - first + 1).unwrap_or(usize::MAX) <= keep {
        return None;
    }
    let at = |k: i64| dtstart + Duration::seconds(k * p);
    Some(Some((at(first), at(last))))
}

/// The period after which the rule repeats itself exactly, when it has one
/// that does not depend on the calendar (months, years, week numbers).
fn fixed_period(rule: &RRule<Unvalidated>) -> Option<Duration> {
    let unit: i64 = match rule.get_freq() {
        Frequency::Secondly => 1,
        Frequency::Minutely => 60,
        Frequency::Hourly => 3600,
        Frequency::Daily => 86_400,
        Frequency::Weekly => 7 * 86_400,
        Frequency::Monthly | Frequency::Yearly => return None,
    };
    let calendar_bound = !rule.get_by_month().is_empty()
        || !rule.get_by_month_day().is_empty()
        || !rule.get_by_year_day().is_empty()
        || !rule.get_by_week_no().is_empty()
        || !rule.get_by_set_pos().is_empty()
        || rule.get_by_weekday().iter().any(|d| matches!(d, NWeekday::Nth(..)));
    if calendar_bound {
        return None;
    }
    let base = i64::from(rule.get_interval().max(1)) * unit;
    let cycle = if !rule.get_by_weekday().is_empty() {
        7 * 86_400
    } else if !rule.get_by_hour().is_empty() || !rule.get_by_minute().is_empty() || !rule.get_by_second().is_empty() {
        86_400
    } else {
        base
    };
    let period = base / gcd(base, cycle) * cycle;
    Some(Duration::seconds(period))
}

/// No BYxxx part: every period holds exactly one instance, `DTSTART + n × period`.
fn has_no_filters(rule: &RRule<Unvalidated>) -> bool {
    rule.get_by_weekday().is_empty()
        && rule.get_by_hour().is_empty()
        && rule.get_by_minute().is_empty()
        && rule.get_by_second().is_empty()
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// UNTIL as a wall-clock time of the event's zone: `Z` times are instants,
/// dates include their whole day, floating times are taken as written.
fn until_wall_of(value: &str, zone: Zone) -> Option<NaiveDateTime> {
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

    /// What the product passes (`MAX_OCCURRENCES_PER_DENSE_EVENT`).
    const MAX_DENSE_INSTANCES: usize = 16;
    use chrono::NaiveDate;
    use chrono_tz::Tz;

    fn wall(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        wall(s).and_utc()
    }

    /// Everything from 2000 up to `until`.
    fn upto(until: DateTime<Utc>) -> Bounds {
        let from = utc("2000-01-01 00:00");
        Bounds { from, to: until, focus: from, keep: 1_000_000, dense_keep: 1_000_000, length: Duration::zero() }
    }

    fn expand_walls(rule: &str, start: When, bounds: Bounds) -> Vec<NaiveDateTime> {
        expand(rule, start, bounds).unwrap().walls
    }

    #[test]
    fn daily_with_utc_until_in_a_dst_zone() {
        let start = When::Time(wall("2024-03-29 09:00"), Zone::Iana(Tz::Europe__Berlin));
        // 08:00Z on 1 April is 10:00 Berlin (summer time): 1 April 09:00 is included.
        let got = expand_walls("FREQ=DAILY;UNTIL=20240401T080000Z", start, upto(Utc::now()));
        assert_eq!(got.len(), 4);
        assert_eq!(got[3], wall("2024-04-01 09:00"));
    }

    #[test]
    fn weekly_by_day_with_count() {
        let start = When::Date(NaiveDate::from_ymd_opt(2012, 8, 3).unwrap(), Zone::Utc);
        let got = expand_walls("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;COUNT=3", start, upto(Utc::now()));
        assert_eq!(got, vec![wall("2012-08-03 00:00"), wall("2012-08-06 00:00"), wall("2012-08-07 00:00")]);
    }

    #[test]
    fn stops_after_the_window() {
        let start = When::Time(wall("2012-08-01 05:00"), Zone::Utc);
        let got = expand_walls("FREQ=DAILY", start, upto(utc("2012-08-10 00:00")));
        // A day of margin: the caller filters exactly.
        assert_eq!(got.last(), Some(&wall("2012-08-10 05:00")));
    }

    #[test]
    fn bad_rules_are_errors() {
        let start = When::Time(wall("2012-08-01 05:00"), Zone::Utc);
        assert!(expand("FREQ=SOMETIMES", start, upto(Utc::now())).is_err());
        assert!(expand("FREQ=DAILY;UNTIL=garbage", start, upto(Utc::now())).is_err());
        assert!(expand("FREQ=DAILY;UNTIL=20100101T000000Z", start, upto(Utc::now())).is_err());
        // Impossible rules end (rrule's loop limit) instead of hanging.
        let got = expand_walls("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", start, upto(Utc::now()));
        assert!(got.is_empty());
    }

    fn window(from: &str, to: &str, keep: usize) -> Bounds {
        Bounds { from: utc(from), to: utc(to), focus: utc(from), keep, dense_keep: keep, length: Duration::zero() }
    }

    /// The same instances as expanding from DTSTART, for rules that may skip ahead.
    #[test]
    fn skipping_ahead_gives_what_iterating_from_dtstart_gives() {
        let start = When::Time(wall("2019-03-04 09:30"), Zone::Iana(Tz::Europe__Berlin));
        let rules = [
            "FREQ=HOURLY;INTERVAL=7",
            "FREQ=DAILY;INTERVAL=3",
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH",
            "FREQ=DAILY;BYHOUR=9,17;BYMINUTE=0,30",
            "FREQ=MINUTELY;INTERVAL=7;BYHOUR=10",
            "FREQ=DAILY;INTERVAL=5;BYDAY=MO,WE",
            "FREQ=DAILY;COUNT=2000",
            "FREQ=HOURLY;INTERVAL=5;COUNT=30000",
            "FREQ=WEEKLY;UNTIL=20240501T000000Z",
        ];
        let (from, to) = ("2024-03-20 00:00", "2024-04-10 00:00");
        for rule in rules {
            let skipped = expand_walls(rule, start, window(from, to, 1_000_000));
            let all =
                expand(rule, start, Bounds { from: utc("2019-01-01 00:00"), ..window(from, to, 1_000_000) }).unwrap();
            assert!(!all.truncated, "{rule}");
            let lo = wall(from) - Duration::days(1);
            let all: Vec<_> = all.walls.into_iter().filter(|w| *w >= lo).collect();
            assert!(!all.is_empty(), "{rule}");
            assert_eq!(skipped, all, "{rule}");
        }
    }

    #[test]
    fn count_is_counted_from_dtstart_after_skipping() {
        let start = When::Time(wall("2024-01-01 00:00"), Zone::Utc);
        // The 100th and last instance is 2024-01-01 00:00 + 99 minutes.
        let got = expand_walls("FREQ=MINUTELY;COUNT=100", start, window("2024-01-01 01:30", "2024-01-02 00:00", 10));
        assert_eq!(got.last(), Some(&wall("2024-01-01 01:39")));
        // A window after the last instance: nothing, and no work.
        let got = expand_walls("FREQ=SECONDLY;COUNT=100", start, window("2024-06-01 00:00", "2024-06-02 00:00", 10));
        assert!(got.is_empty());
    }

    #[test]
    fn until_is_kept_after_skipping() {
        let start = When::Time(wall("2010-01-01 00:00"), Zone::Utc);
        let got = expand_walls(
            "FREQ=MINUTELY;UNTIL=20240301T120000Z",
            start,
            Bounds { focus: utc("2024-03-01 11:00"), ..window("2024-02-01 00:00", "2024-04-01 00:00", 100) },
        );
        assert_eq!(got.last(), Some(&wall("2024-03-01 12:00")));
        let got = expand_walls(
            "FREQ=SECONDLY;UNTIL=20200101T000000Z",
            start,
            window("2024-02-01 00:00", "2024-04-01 00:00", 10),
        );
        assert!(got.is_empty());
    }

    /// A secondly series begun years ago costs `keep` instances, kept around the focus.
    #[test]
    fn dense_series_keeps_the_instances_at_the_focus() {
        let start = When::Time(wall("2015-06-01 08:00"), Zone::Utc);
        let bounds = Bounds {
            focus: utc("2024-03-10 12:00"),
            dense_keep: MAX_DENSE_INSTANCES,
            ..window("2024-02-01 00:00", "2024-05-01 00:00", 1000)
        };
        let got = expand("FREQ=SECONDLY", start, bounds).unwrap();
        assert!(got.truncated);
        assert_eq!(got.walls.len(), MAX_DENSE_INSTANCES);
        assert_eq!(got.walls[0], wall("2024-03-10 12:00"));
        assert_eq!(got.walls[15], wall("2024-03-10 12:00") + Duration::seconds(15));
        // A rule whose period depends on BYxxx parts: its density shows after iterating.
        let got = expand("FREQ=MINUTELY;BYHOUR=12,13", start, bounds).unwrap();
        assert!(got.truncated);
        assert_eq!(got.walls.len(), MAX_DENSE_INSTANCES);
        assert_eq!(got.walls[0], wall("2024-03-10 12:00"));
        // A focus past the window is its end.
        let late = Bounds { focus: utc("2024-06-01 00:00"), ..bounds };
        let got = expand("FREQ=HOURLY", start, late).unwrap();
        assert_eq!(got.walls.len(), MAX_DENSE_INSTANCES);
        assert_eq!(got.walls[0], wall("2024-05-01 00:00"));
        // A dense rule that cannot skip ahead stops after MAX_ITERATIONS.
        let list = |n: u32| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let rule = format!("FREQ=MONTHLY;BYMONTHDAY={};BYHOUR={};BYMINUTE={}", &list(29)[2..], list(24), list(60));
        let got = expand(&rule, start, bounds).unwrap();
        assert!(got.truncated);
        assert!(got.walls.is_empty());
    }

    /// Instances that touch (period ≤ length) and are too many: their union, computed.
    #[test]
    fn touching_dense_instances_are_one_span() {
        let start = When::Time(wall("2015-06-01 08:00"), Zone::Utc);
        let b = Bounds {
            length: Duration::seconds(1),
            dense_keep: MAX_DENSE_INSTANCES,
            ..window("2024-02-01 00:00", "2024-05-01 00:00", 1000)
        };
        let got = expand("FREQ=SECONDLY", start, b).unwrap();
        assert_eq!(got.span, Some((wall("2024-01-31 00:00"), wall("2024-05-02 00:00"))));
        assert!(got.walls.is_empty() && !got.truncated);
        // UNTIL and COUNT end the span.
        let got = expand("FREQ=MINUTELY;UNTIL=20240301T120000Z", start, b).unwrap();
        assert_eq!(got.span, None, "a minute apart, a second long: not touching");
        let b = Bounds { length: Duration::minutes(30), ..b };
        let got = expand("FREQ=MINUTELY;UNTIL=20240301T120000Z", start, b).unwrap();
        assert_eq!(got.span, Some((wall("2024-01-31 00:00"), wall("2024-03-01 12:00"))));
        let got = expand("FREQ=MINUTELY;COUNT=100", start, b).unwrap();
        assert!(got.span.is_none() && got.walls.is_empty(), "over long before the window");
        // Zero-length instances never touch: the dense cap applies.
        let got = expand("FREQ=SECONDLY", start, Bounds { length: Duration::zero(), ..b }).unwrap();
        assert!(got.span.is_none() && got.truncated);
        assert_eq!(got.walls.len(), MAX_DENSE_INSTANCES);
        // Touching and more than the dense cap (but fewer than `keep`): one span too.
        let got = expand("FREQ=MINUTELY;COUNT=20", When::Time(wall("2024-03-01 00:00"), Zone::Utc), b).unwrap();
        assert_eq!(got.span, Some((wall("2024-03-01 00:00"), wall("2024-03-01 00:19"))));
    }

    /// Daily and slower rules keep the caller's cap; twice a day is dense.
    #[test]
    fn only_rules_denser_than_daily_get_the_dense_cap() {
        let start = When::Time(wall("2024-02-01 09:00"), Zone::Utc);
        let b = Bounds { dense_keep: MAX_DENSE_INSTANCES, ..window("2024-02-01 00:00", "2024-05-01 00:00", 1000) };
        let got = expand("FREQ=DAILY", start, b).unwrap();
        assert!(!got.truncated);
        assert_eq!(got.walls.len(), 91);
        let got = expand("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", start, b).unwrap();
        assert!(!got.truncated && got.walls.len() > 60, "{}", got.walls.len());
        let got = expand("FREQ=DAILY;BYHOUR=9,17", start, b).unwrap();
        assert!(got.truncated);
        assert_eq!(got.walls.len(), MAX_DENSE_INSTANCES);
    }
}
