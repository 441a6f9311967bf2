//! VEVENTs → [`CalendarEvent`]s: a master with its RECURRENCE-ID overrides,
//! expanded into UTC occurrences inside a [`Window`].

mod recurrence;
mod time;

use crate::content::{self, Component, Prop};
use crate::prepass::Dialect;
use crate::values::{strip_mailto, text};
use crate::{ParseError, Window};
use chrono::NaiveDate;
use contactbridge_connector::{BusyStatus, CalendarEvent, Occurrence, RecordId};
use std::collections::{HashMap, HashSet};
use time::{parse_duration, parse_when, prop_when, Length, When, Zones};

/// RRULEs beyond this many per event are ignored (RFC 5545 allows one).
const MAX_RULES: usize = 4;

/// At most this many occurrences of one event are kept in the window: those
/// nearest to now. The event is kept with a note saying so.
pub const MAX_OCCURRENCES_PER_EVENT: usize = 1_000;

/// A rule denser than daily (more than one instance a day on average) keeps
/// at most this many instances, those nearest to now: no more than a weekly
/// rule gives in the default 120-day sync window (17–18), so that a hostile
/// dense rule costs what a weekly one costs (issue 10: at most 2×). Dense
/// instances that touch or overlap (DTEND at or after the next start) become
/// one occurrence over the window past this many; instants (no DTEND or
/// DURATION: they end where they start, RFC 5545 3.6.1) never touch and are
/// cut here, with a note. That is all a status needs: an instant makes nobody
/// busy, and the next ones show what comes.
pub const MAX_OCCURRENCES_PER_DENSE_EVENT: usize = 16;

/// At most this many occurrences are read from one calendar file; the events
/// after that are skipped (each with a reason), the ones before are kept.
pub const MAX_OCCURRENCES_PER_FILE: usize = 100_000;

/// An event, and what had to be left out of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadEvent {
    pub event: CalendarEvent,
    /// Set when occurrences were left out (too many in the window).
    pub note: Option<String>,
}

/// One VEVENT with the zones of the calendar it came from.
struct Vevent<'a> {
    comp: &'a Component,
    zones: &'a Zones,
}

/// The VEVENTs of a text, grouped by UID in order of first appearance. Events
/// without UID form a group each, named `event-<n>` (n counts VEVENTs from 1).
fn grouped<'a>(roots: &'a [Component], zones: &'a [Zones]) -> Vec<(String, bool, Vec<Vevent<'a>>)> {
    let mut groups: Vec<(String, bool, Vec<Vevent<'a>>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut n = 0;
    for (root, zones) in roots.iter().zip(zones) {
        let events: Vec<&Component> = if root.name == "VEVENT" {
            vec![root]
        } else {
            root.children.iter().filter(|c| c.name == "VEVENT").collect()
        };
        for comp in events {
            n += 1;
            let uid = comp.prop("UID").map(text).filter(|u| !u.is_empty());
            let event = Vevent { comp, zones };
            match uid {
                Some(uid) => match index.get(&uid) {
                    Some(&i) => groups[i].2.push(event),
                    None => {
                        index.insert(uid.clone(), groups.len());
                        groups.push((uid, true, vec![event]));
                    }
                },
                None => groups.push((format!("event-{n}"), false, vec![event])),
            }
        }
    }
    groups
}

fn parse_roots(bytes: &[u8]) -> (Vec<Component>, Vec<Zones>) {
    let roots: Vec<Component> = content::parse(bytes, Dialect::ICalendar)
        .into_iter()
        .filter(|c| c.name == "VCALENDAR" || c.name == "VEVENT")
        .collect();
    let zones = roots.iter().map(Zones::from_calendar).collect();
    (roots, zones)
}

/// See [`crate::parse_calendar_object`].
pub(crate) fn parse_object(
    id: RecordId,
    version: Option<String>,
    bytes: &[u8],
    window: Window,
) -> Result<ReadEvent, ParseError> {
    let (roots, zones) = parse_roots(bytes);
    if roots.is_empty() {
        return Err(ParseError::new("no BEGIN:VCALENDAR found: not an iCalendar object"));
    }
    let groups = grouped(&roots, &zones);
    if groups.len() > 1 {
        tracing::debug!(%id, uids = groups.len(), "calendar object holds several UIDs; using the first");
    }
    let (uid, has_uid, members) = groups.into_iter().next().ok_or_else(|| {
        let other: Vec<&str> =
            roots.iter().flat_map(|r| &r.children).map(|c| c.name.as_str()).filter(|n| *n != "VTIMEZONE").collect();
        if other.is_empty() {
            ParseError::new("the calendar object holds no VEVENT")
        } else {
            ParseError::new(format!("the calendar object holds no VEVENT (only {})", other.join(", ")))
        }
    })?;
    let mut read = build(id, if has_uid { uid } else { String::new() }, &members, window, MAX_OCCURRENCES_PER_EVENT)?;
    read.event.version = version;
    Ok(read)
}

/// See [`crate::parse_ics_file`].
pub(crate) fn parse_file(bytes: &[u8], window: Window) -> Vec<Result<ReadEvent, ParseError>> {
    let (roots, zones) = parse_roots(bytes);
    if roots.is_empty() && bytes.iter().any(|b| !b.is_ascii_whitespace()) {
        return vec![Err(ParseError::new("no BEGIN:VCALENDAR found: not an iCalendar file"))];
    }
    let mut budget = MAX_OCCURRENCES_PER_FILE;
    grouped(&roots, &zones)
        .into_iter()
        .map(|(key, has_uid, members)| {
            if budget == 0 {
                return Err(ParseError::new(format!(
                    "skipped: the file already gave {MAX_OCCURRENCES_PER_FILE} occurrences in the sync window"
                )));
            }
            let keep = budget.min(MAX_OCCURRENCES_PER_EVENT);
            let read =
                build(RecordId::new(key.clone()), if has_uid { key } else { String::new() }, &members, window, keep)?;
            budget -= read.event.occurrences.len().min(budget);
            Ok(read)
        })
        .collect()
}

fn is_cancelled(comp: &Component) -> bool {
    comp.prop("STATUS").is_some_and(|p| p.value.trim().eq_ignore_ascii_case("CANCELLED"))
}

/// The event's length: DTEND, else DURATION, else a day (dates) or nothing.
fn length(comp: &Component, start: When, zones: &Zones) -> Length {
    if let Some(end) = comp.prop("DTEND").and_then(|p| prop_when(p, zones)) {
        return Length::between(start, end);
    }
    if let Some(d) = comp.prop("DURATION").and_then(|p| parse_duration(&p.value)) {
        return d;
    }
    if start.is_date() {
        Length::Nominal { days: 1, exact: chrono::Duration::zero() }
    } else {
        Length::ZERO
    }
}

/// The instant (and, for dates, the day) an instance is known by.
#[derive(Default)]
struct Keys {
    instants: HashSet<chrono::DateTime<chrono::Utc>>,
    days: HashSet<NaiveDate>,
}

impl Keys {
    fn add(&mut self, when: When) {
        self.instants.insert(when.utc());
        if let When::Date(d, _) = when {
            self.days.insert(d);
        }
    }
    fn contains(&self, when: When) -> bool {
        self.instants.contains(&when.utc()) || self.days.contains(&when.wall().date())
    }
}

/// Every value of every `name` property (comma lists, VALUE=PERIOD `start/end`).
fn multi_values(comp: &Component, name: &str, zones: &Zones, master: When) -> Vec<(When, Option<Length>)> {
    let mut out = Vec::new();
    for p in comp.props(name) {
        for v in p.value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            let (start, tail) = match v.split_once('/') {
                Some((s, t)) => (s, Some(t)),
                None => (v, None),
            };
            let Some(mut when) = parse_when(start, p, zones) else {
                tracing::debug!(name, value = v, "skipping unreadable date");
                continue;
            };
            // A date-time RDATE/EXDATE on an all-day event (and vice versa) means its day.
            if master.is_date() {
                when = When::Date(when.wall().date(), master.zone());
            }
            let len = tail.and_then(|t| {
                parse_duration(t).or_else(|| parse_when(t, p, zones).map(|end| Length::between(when, end)))
            });
            out.push((when, len));
        }
    }
    out
}

/// Keeps at most `keep` occurrences (those nearest to now).
fn build(
    id: RecordId,
    uid: String,
    members: &[Vevent<'_>],
    window: Window,
    keep: usize,
) -> Result<ReadEvent, ParseError> {
    if members.iter().any(|m| !m.comp.complete) {
        return Err(ParseError::new("missing END:VEVENT (the event is cut off)"));
    }
    let master = members.iter().find(|m| m.comp.prop("RECURRENCE-ID").is_none());
    let overrides: Vec<&Vevent<'_>> = members.iter().filter(|m| m.comp.prop("RECURRENCE-ID").is_some()).collect();
    let base = master.unwrap_or(&members[0]);
    let comp = base.comp;
    let zones = base.zones;
    let start = comp
        .prop("DTSTART")
        .and_then(|p| prop_when(p, zones))
        .ok_or_else(|| ParseError::new("the event has no readable DTSTART"))?;

    let optional = |name: &str| comp.prop(name).map(text).filter(|s| !s.is_empty());
    let mut event = CalendarEvent {
        id,
        uid,
        subject: optional("SUMMARY").unwrap_or_default(),
        location: optional("LOCATION"),
        time_zone: if start.is_date() { None } else { start.zone().iana_name() },
        all_day: start.is_date(),
        busy: busy_status(comp),
        organizer: comp.prop("ORGANIZER").and_then(email),
        attendees: Vec::new(),
        web_link: optional("URL"),
        ..Default::default()
    };
    for a in comp.props("ATTENDEE").filter_map(email) {
        if !event.attendees.contains(&a) {
            event.attendees.push(a);
        }
    }

    // Occurrences that may be in progress now are kept first when there are too many.
    let focus = chrono::Utc::now().clamp(window.start, window.end);
    let mut truncated = false;
    // A rule denser than daily: the event keeps as many as a weekly one.
    let mut dense = false;
    let mut occurrences = Vec::new();
    let mut overridden = Keys::default();
    for o in &overrides {
        if let Some(rid) = o.comp.prop("RECURRENCE-ID").and_then(|p| prop_when(p, o.zones)) {
            overridden.add(rid);
        }
    }
    if let Some(master) = master.filter(|m| !is_cancelled(m.comp)) {
        let len = length(comp, start, zones);
        let lead = len.upper_bound();
        // Instances in progress at `focus` are kept first.
        let in_progress = focus - len.nominal() - chrono::Duration::hours(1);
        let bounds = recurrence::Bounds {
            from: window.start - lead,
            to: window.end,
            focus: in_progress,
            keep,
            dense_keep: keep.min(MAX_OCCURRENCES_PER_DENSE_EVENT),
            length: len.nominal(),
        };
        let mut starts: Vec<(When, Length)> = vec![(start, len)];
        let mut spans = Vec::new();
        for rule in comp.props("RRULE").take(MAX_RULES) {
            match recurrence::expand(&rule.value, start, bounds) {
                Ok(expansion) => {
                    truncated |= expansion.truncated;
                    dense |= expansion.dense;
                    if let Some((first, last)) = expansion.span {
                        // Instances that touch or overlap: one occurrence covering them all.
                        let at = |w: chrono::NaiveDateTime| match start {
                            When::Date(_, z) => When::Date(w.date(), z),
                            When::Time(_, z) => When::Time(w, z),
                        };
                        spans.push(Occurrence { start: at(first).utc(), end: len.end(at(last)) });
                    }
                    starts.extend(expansion.walls.into_iter().map(|w| {
                        let when = match start {
                            When::Date(_, z) => When::Date(w.date(), z),
                            When::Time(_, z) => When::Time(w, z),
                        };
                        (when, len)
                    }));
                }
                Err(e) => tracing::warn!(uid = %event.uid, "ignoring recurrence rule: {e}"),
            }
        }
        for (when, period) in multi_values(master.comp, "RDATE", zones, start) {
            starts.push((when, period.unwrap_or(len)));
        }
        let mut excluded = Keys::default();
        for (when, _) in multi_values(master.comp, "EXDATE", zones, start) {
            excluded.add(when);
        }
        for (when, len) in starts {
            if excluded.contains(when) || overridden.contains(when) {
                continue;
            }
            occurrences.push(Occurrence { start: when.utc(), end: len.end(when) });
        }
        // EXDATEs inside a continuous span are not cut out of it; instances it covers are left out.
        occurrences.retain(|o| !spans.iter().any(|s: &Occurrence| s.start <= o.start && o.end <= s.end));
        occurrences.extend(spans);
    }
    if master.is_none_or(|m| !is_cancelled(m.comp)) {
        for o in overrides.iter().filter(|o| !is_cancelled(o.comp)) {
            let rid = o.comp.prop("RECURRENCE-ID").and_then(|p| prop_when(p, o.zones));
            let Some(ostart) = o.comp.prop("DTSTART").and_then(|p| prop_when(p, o.zones)).or(rid) else { continue };
            let has_own_end = o.comp.prop("DTEND").is_some() || o.comp.prop("DURATION").is_some();
            let len = if has_own_end || master.is_none() {
                length(o.comp, ostart, o.zones)
            } else {
                length(comp, start, zones)
            };
            occurrences.push(Occurrence { start: ostart.utc(), end: len.end(ostart) });
        }
    }
    occurrences.retain(|o| {
        if o.end > o.start {
            o.end > window.start && o.start < window.end
        } else {
            o.start >= window.start && o.start < window.end
        }
    });
    occurrences.sort();
    occurrences.dedup();
    let keep = if dense { keep.min(MAX_OCCURRENCES_PER_DENSE_EVENT) } else { keep };
    if occurrences.len() > keep {
        // The `keep` occurrences from the first one not over by now (or the last `keep`).
        let first = occurrences.partition_point(|o| o.end.max(o.start) < focus).min(occurrences.len() - keep);
        occurrences.drain(..first);
        occurrences.truncate(keep);
        truncated = true;
    }
    let note = truncated.then(|| {
        format!(
            "only the {} occurrences nearest to now are kept; its recurrence gives more in the sync window",
            occurrences.len()
        )
    });
    event.occurrences = occurrences;
    Ok(ReadEvent { event, note })
}

/// X-MICROSOFT-CDO-BUSYSTATUS first, then TRANSP:TRANSPARENT (free), then
/// STATUS:TENTATIVE; busy otherwise.
fn busy_status(comp: &Component) -> BusyStatus {
    let value = |name: &str| comp.prop(name).map(|p| p.value.trim().to_ascii_uppercase());
    match value("X-MICROSOFT-CDO-BUSYSTATUS").as_deref() {
        Some("FREE") => return BusyStatus::Free,
        Some("TENTATIVE") => return BusyStatus::Tentative,
        Some("BUSY") => return BusyStatus::Busy,
        Some("OOF") => return BusyStatus::OutOfOffice,
        Some("WORKINGELSEWHERE") => return BusyStatus::WorkingElsewhere,
        _ => {}
    }
    if value("TRANSP").as_deref() == Some("TRANSPARENT") {
        BusyStatus::Free
    } else if value("STATUS").as_deref() == Some("TENTATIVE") {
        BusyStatus::Tentative
    } else {
        BusyStatus::Busy
    }
}

/// An ORGANIZER/ATTENDEE address, lower-case, `mailto:` stripped (or its EMAIL parameter).
fn email(prop: &Prop) -> Option<String> {
    let value = strip_mailto(&prop.value);
    let address = if value.contains('@') { Some(value) } else { prop.param("EMAIL").map(str::trim) };
    address.filter(|a| !a.is_empty()).map(str::to_lowercase)
}
