//! iCalendar date, date-time, duration and zone values: TZID (IANA, Windows,
//! VTIMEZONE), UTC, floating and all-day dates, all turned into UTC.

use crate::content::{Component, Prop};
use crate::timezone::zone_from_name;
use chrono::{DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;

/// The zone a wall-clock time is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zone {
    Utc,
    Iana(Tz),
    /// A VTIMEZONE with one offset and no IANA name.
    Fixed(FixedOffset),
}

impl Zone {
    /// Wall-clock time → instant. In a DST gap the offset before the gap applies;
    /// in an overlap the earlier instant is taken (RFC 5545 §3.3.5).
    pub fn to_utc(self, wall: NaiveDateTime) -> DateTime<Utc> {
        match self {
            Zone::Utc => wall.and_utc(),
            Zone::Fixed(offset) => (wall - Duration::seconds(offset.local_minus_utc() as i64)).and_utc(),
            Zone::Iana(tz) => match tz.from_local_datetime(&wall) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
                // In a gap: the offset from before the gap (RFC 5545 §3.3.5).
                LocalResult::None => tz
                    .from_local_datetime(&(wall - Duration::hours(3)))
                    .earliest()
                    .map_or_else(|| wall.and_utc(), |t| t.with_timezone(&Utc) + Duration::hours(3)),
            },
        }
    }

    /// Instant → wall-clock time in this zone.
    pub fn to_wall(self, utc: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Utc => utc.naive_utc(),
            Zone::Fixed(offset) => utc.with_timezone(&offset).naive_local(),
            Zone::Iana(tz) => utc.with_timezone(&tz).naive_local(),
        }
    }

    /// The IANA name, for [`contactbridge_connector::CalendarEvent::time_zone`].
    pub fn iana_name(self) -> Option<String> {
        match self {
            Zone::Utc => Some("UTC".into()),
            Zone::Iana(tz) => Some(tz.name().to_string()),
            Zone::Fixed(_) => None,
        }
    }
}

/// The zones a calendar defines: its VTIMEZONEs and the zone for floating times.
#[derive(Debug, Clone)]
pub(crate) struct Zones {
    defined: HashMap<String, Zone>,
    /// Floating times and all-day dates are read in the calendar's
    /// `X-WR-TIMEZONE` if it has one, else in UTC.
    pub floating: Zone,
}

impl Default for Zones {
    fn default() -> Self {
        Self { defined: HashMap::new(), floating: Zone::Utc }
    }
}

impl Zones {
    pub fn from_calendar(calendar: &Component) -> Self {
        let mut defined = HashMap::new();
        for vtz in calendar.children.iter().filter(|c| c.name == "VTIMEZONE") {
            let Some(tzid) = vtz.prop("TZID").map(|p| crate::values::unescape(p.value.trim())) else { continue };
            if let Some(zone) = zone_of_vtimezone(&tzid, vtz) {
                defined.insert(tzid, zone);
            }
        }
        let floating =
            calendar.prop("X-WR-TIMEZONE").and_then(|p| zone_from_name(&p.value)).map_or(Zone::Utc, Zone::Iana);
        Self { defined, floating }
    }

    /// A TZID → zone: an IANA or Windows name, else the calendar's VTIMEZONE of
    /// that id; an unknown zone is read as UTC (the event is kept, with a warning).
    pub fn resolve(&self, tzid: &str) -> Zone {
        let tzid = tzid.trim().trim_matches('"');
        if let Some(tz) = zone_from_name(tzid) {
            return Zone::Iana(tz);
        }
        if let Some(zone) = self.defined.get(tzid) {
            return *zone;
        }
        tracing::warn!(tzid, "unknown time zone: reading the times as UTC");
        Zone::Utc
    }
}

/// A VTIMEZONE without a known name: its `X-LIC-LOCATION`, its single offset,
/// or the IANA zone with its winter and summer offsets.
fn zone_of_vtimezone(tzid: &str, vtz: &Component) -> Option<Zone> {
    if let Some(tz) = zone_from_name(tzid) {
        return Some(Zone::Iana(tz));
    }
    if let Some(tz) = vtz.prop("X-LIC-LOCATION").and_then(|p| zone_from_name(&p.value)) {
        return Some(Zone::Iana(tz));
    }
    // Per kind, the observance that started last (Exchange also lists old rules).
    let latest = |kind: &str| {
        vtz.children
            .iter()
            .filter(|c| c.name == kind)
            .filter_map(|c| {
                let offset = c.prop("TZOFFSETTO").and_then(|p| parse_offset(&p.value))?;
                let start = c.prop("DTSTART").map(|p| p.value.trim().to_string()).unwrap_or_default();
                let month = c
                    .prop("RRULE")
                    .and_then(|r| {
                        r.value.split(';').find_map(|part| part.trim().strip_prefix("BYMONTH=")?.parse::<u32>().ok())
                    })
                    .or_else(|| start.get(4..6)?.parse().ok())
                    .unwrap_or(1);
                Some((start, offset, month))
            })
            .max()
    };
    let zone = match (latest("STANDARD"), latest("DAYLIGHT")) {
        (Some((_, std, _)), None) | (None, Some((_, std, _))) => FixedOffset::east_opt(std).map(Zone::Fixed),
        (Some((_, std, _)), Some((_, dst, _))) if std == dst => FixedOffset::east_opt(std).map(Zone::Fixed),
        (Some((_, std, std_month)), Some((_, dst, dst_month))) => {
            let (january, july) = if dst_month < std_month { (std, dst) } else { (dst, std) };
            crate::timezone::zone_from_offsets(january, july, 2024).map(Zone::Iana)
        }
        (None, None) => None,
    };
    if let Some(zone) = zone {
        tracing::debug!(tzid, ?zone, "time zone matched by its VTIMEZONE offsets");
    }
    zone
}

/// `+0100`, `-0741`, `+053000` → seconds east of UTC.
fn parse_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    let (sign, digits) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => (1, s),
    };
    if !(digits.len() == 4 || digits.len() == 6) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i32 = digits[0..2].parse().ok()?;
    let m: i32 = digits[2..4].parse().ok()?;
    let sec: i32 = if digits.len() == 6 { digits[4..6].parse().ok()? } else { 0 };
    Some(sign * (h * 3600 + m * 60 + sec))
}

/// A DTSTART-like value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    /// An all-day date, read in the floating zone.
    Date(NaiveDate, Zone),
    /// A wall-clock time in a zone (UTC for `Z` times).
    Time(NaiveDateTime, Zone),
}

impl When {
    pub fn wall(self) -> NaiveDateTime {
        match self {
            When::Date(d, _) => d.and_time(NaiveTime::MIN),
            When::Time(t, _) => t,
        }
    }
    pub fn zone(self) -> Zone {
        match self {
            When::Date(_, z) | When::Time(_, z) => z,
        }
    }
    pub fn utc(self) -> DateTime<Utc> {
        self.zone().to_utc(self.wall())
    }
    pub fn is_date(self) -> bool {
        matches!(self, When::Date(..))
    }
}

/// One value (`20120801T050000`, `20120801T120000Z`, `20120801`, tolerant of
/// `-`, `:` and missing seconds) read with the property's TZID and VALUE.
pub(crate) fn parse_when(value: &str, prop: &Prop, zones: &Zones) -> Option<When> {
    let v: String = value.trim().chars().filter(|c| *c != '-' && *c != ':').collect();
    let date = |s: &str| NaiveDate::parse_from_str(s.get(..8)?, "%Y%m%d").ok();
    let want_date = prop.param_is("VALUE", "DATE");
    if v.len() <= 9 || want_date {
        return date(&v).map(|d| When::Date(d, zones.floating));
    }
    let (body, utc) = match v.strip_suffix(['Z', 'z']) {
        Some(b) => (b, true),
        None => (v.as_str(), false),
    };
    let (d, t) = body.split_once(['T', 't'])?;
    let time = match t.len() {
        6 => NaiveTime::parse_from_str(t, "%H%M%S").ok()?,
        4 => NaiveTime::parse_from_str(t, "%H%M").ok()?,
        _ => NaiveTime::parse_from_str(t.get(..6)?, "%H%M%S").ok()?,
    };
    let wall = date(d)?.and_time(time);
    let zone = if utc {
        Zone::Utc
    } else if let Some(tzid) = prop.param("TZID") {
        zones.resolve(tzid)
    } else {
        zones.floating
    };
    Some(When::Time(wall, zone))
}

/// The first value of a DTSTART/DTEND/RECURRENCE-ID property.
pub(crate) fn prop_when(prop: &Prop, zones: &Zones) -> Option<When> {
    parse_when(prop.value.split(',').next().unwrap_or_default(), prop, zones)
}

/// How long an instance lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Length {
    /// Days added to the wall clock, then an exact span (DURATION, DTEND in the same zone).
    Nominal { days: i64, exact: Duration },
    /// An exact span (DTEND in another zone).
    Exact(Duration),
}

impl Length {
    pub const ZERO: Length = Length::Exact(Duration::zero());

    pub fn end(self, start: When) -> DateTime<Utc> {
        match self {
            Length::Nominal { days, exact } => {
                let wall = start.wall() + Duration::days(days);
                start.zone().to_utc(wall) + exact
            }
            Length::Exact(d) => start.utc() + d,
        }
    }

    /// At least as long as any instance (a day more for nominal days: DST).
    pub fn upper_bound(self) -> Duration {
        match self {
            Length::Nominal { days, exact } => Duration::days(days + 1) + exact,
            Length::Exact(d) => d,
        }
    }

    /// About as long as an instance (DST may change it by an hour).
    pub fn nominal(self) -> Duration {
        match self {
            Length::Nominal { days, exact } => Duration::days(days) + exact,
            Length::Exact(d) => d,
        }
    }

    /// From DTSTART to DTEND: on the wall clock when both share a zone.
    pub fn between(start: When, end: When) -> Length {
        if start.zone() == end.zone() {
            let delta = end.wall() - start.wall();
            let days = delta.num_days();
            Length::Nominal { days, exact: delta - Duration::days(days) }.non_negative()
        } else {
            Length::Exact(end.utc() - start.utc()).non_negative()
        }
    }

    fn non_negative(self) -> Length {
        match self {
            Length::Nominal { days, exact } if days < 0 || exact < Duration::zero() => Length::ZERO,
            Length::Exact(d) if d < Duration::zero() => Length::ZERO,
            other => other,
        }
    }
}

/// An RFC 5545 duration: `P1D`, `PT1H30M`, `P2W`, `-PT15M`, `P1DT12H`.
pub(crate) fn parse_duration(s: &str) -> Option<Length> {
    let s = s.trim().to_ascii_uppercase();
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s.as_str()),
    };
    let rest = rest.strip_prefix('P')?;
    let (mut days, mut secs) = (0i64, 0i64);
    let mut number = String::new();
    let mut in_time = false;
    for c in rest.chars() {
        match c {
            '0'..='9' => number.push(c),
            'T' => in_time = true,
            'W' | 'D' | 'H' | 'M' | 'S' => {
                let n: i64 = number.parse().ok()?;
                number.clear();
                match (c, in_time) {
                    ('W', false) => days = days.checked_add(n.checked_mul(7)?)?,
                    ('D', false) => days = days.checked_add(n)?,
                    ('H', true) => secs = secs.checked_add(n.checked_mul(3600)?)?,
                    ('M', true) => secs = secs.checked_add(n.checked_mul(60)?)?,
                    ('S', true) => secs = secs.checked_add(n)?,
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
    if !number.is_empty() || days > 100_000 || secs > 100_000 * 86_400 {
        return None;
    }
    if negative {
        return Some(Length::ZERO);
    }
    Some(Length::Nominal { days, exact: Duration::seconds(secs) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(params: &[(&str, &str)]) -> Prop {
        Prop {
            params: params.iter().map(|(k, v)| (k.to_string(), vec![v.to_string()])).collect(),
            ..Default::default()
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().into()
    }

    #[test]
    fn values_in_their_zones() {
        let zones = Zones::default();
        let la = prop(&[("TZID", "America/Los_Angeles")]);
        assert_eq!(parse_when("20120801T050000", &la, &zones).unwrap().utc(), utc("2012-08-01T12:00:00Z"));
        let win = prop(&[("TZID", "W. Europe Standard Time")]);
        assert_eq!(parse_when("20240115T090000", &win, &zones).unwrap().utc(), utc("2024-01-15T08:00:00Z"));
        let unknown = prop(&[("TZID", "Atlantis Time")]);
        assert_eq!(parse_when("20240115T090000", &unknown, &zones).unwrap().utc(), utc("2024-01-15T09:00:00Z"));
        assert_eq!(parse_when("20240115T0900Z", &prop(&[]), &zones).unwrap().utc(), utc("2024-01-15T09:00:00Z"));
        assert_eq!(parse_when("2024-01-15T09:00:00Z", &prop(&[]), &zones).unwrap().utc(), utc("2024-01-15T09:00:00Z"));
        let date = parse_when("20131210Z", &prop(&[]), &zones).unwrap();
        assert!(date.is_date());
        assert_eq!(date.utc(), utc("2013-12-10T00:00:00Z"));
        assert!(parse_when("2013121", &prop(&[]), &zones).is_none());
        assert!(parse_when("garbage", &la, &zones).is_none());
    }

    #[test]
    fn dst_gap_moves_forward() {
        let berlin = Zone::Iana(Tz::Europe__Berlin);
        let wall = NaiveDate::from_ymd_opt(2024, 3, 31).unwrap().and_hms_opt(2, 30, 0).unwrap();
        assert_eq!(berlin.to_utc(wall), utc("2024-03-31T01:30:00Z"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("P1D"), Some(Length::Nominal { days: 1, exact: Duration::zero() }));
        assert_eq!(parse_duration("PT1H30M"), Some(Length::Nominal { days: 0, exact: Duration::minutes(90) }));
        assert_eq!(parse_duration("P2W"), Some(Length::Nominal { days: 14, exact: Duration::zero() }));
        assert_eq!(parse_duration("P1DT12H"), Some(Length::Nominal { days: 1, exact: Duration::hours(12) }));
        assert_eq!(parse_duration("-PT15M"), Some(Length::ZERO));
        assert_eq!(parse_duration("P"), Some(Length::Nominal { days: 0, exact: Duration::zero() }));
        assert_eq!(parse_duration("PT"), Some(Length::Nominal { days: 0, exact: Duration::zero() }));
        assert_eq!(parse_duration("1D"), None);
        assert_eq!(parse_duration("P1H"), None);
        assert_eq!(parse_duration("P99999999999999999999D"), None);
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("-0741"), Some(-(7 * 3600 + 41 * 60)));
        assert_eq!(parse_offset("+053000"), Some(5 * 3600 + 30 * 60));
        assert_eq!(parse_offset("0100x"), None);
    }
}
