//! Which request learns most cheaply that a collection did not change, chosen per
//! collection by measurement.
//!
//! With a sync token there are two ways: the sync-collection REPORT with the token
//! (it also says what changed), or first a depth-0 PROPFIND for the collection's
//! ctag, and the REPORT only when the ctag moved. Servers differ by orders of
//! magnitude: Radicale hashes every item for the ctag (the REPORT with a valid
//! token is cheaper), SabreDAV/Nextcloud store it (the PROPFIND takes
//! milliseconds). [`ProbeStats`] keeps, in the collection's checkpoint, an EWMA of
//! each request's time and of how often a sync found a change; the expected costs
//! are `t_ctag + p_change·t_report` (ctag first) and `t_report` (REPORT only).
//! Every [`REPROBE_EVERY`]th sync sends both (PROPFIND, then REPORT whatever the
//! ctag says), so a server that changed is noticed and a stale or lying ctag
//! cannot hide changes for more than that many syncs.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Every this many syncs of a collection both requests are measured (the ctag
/// PROPFIND, then the REPORT even if the ctag is unchanged).
pub const REPROBE_EVERY: u16 = 8;

/// Weight of a new sample in the moving averages.
const ALPHA: f64 = 0.25;

/// Weight of the samples of a sync that measures both: the probe not chosen is
/// measured only then, so its few samples count more (a changed server is noticed
/// at the first re-probe).
const ALPHA_BOTH: f64 = 0.5;

/// Longest sync token or ctag kept from a server; longer ones are refused (they
/// would bloat every checkpoint and every request).
pub const MAX_TAG_BYTES: usize = 1024;

/// The request(s) a sync sends to find out whether the collection changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The depth-0 PROPFIND for the ctag; the REPORT only if it moved.
    Ctag,
    /// The sync-collection REPORT with the token.
    Report,
    /// Both, to measure them (PROPFIND first, then the REPORT in any case).
    Both,
}

/// What was measured of the two requests of one collection (stored compactly in
/// its checkpoint; absent in checkpoints written before this existed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeStats {
    /// EWMA of the ctag PROPFIND's time in microseconds (0: never measured).
    #[serde(rename = "c", default)]
    pub ctag_us: u32,
    /// EWMA of the sync-collection REPORT's time in microseconds (0: never measured).
    #[serde(rename = "r", default)]
    pub report_us: u32,
    /// EWMA of how often a sync found a change, in thousandths.
    #[serde(rename = "p", default)]
    pub change_permille: u16,
    /// Syncs since both requests were last measured.
    #[serde(rename = "n", default)]
    pub since_both: u16,
}

impl ProbeStats {
    /// The probe for the next sync. `have_ctag`: the checkpoint holds a ctag to compare with.
    pub fn next(stats: Option<&Self>, have_ctag: bool) -> Probe {
        match stats {
            Some(s) if s.ctag_us > 0 && s.report_us > 0 && s.since_both + 1 < REPROBE_EVERY => {
                if have_ctag && s.prefers_ctag() {
                    Probe::Ctag
                } else {
                    Probe::Report
                }
            }
            _ => Probe::Both,
        }
    }

    /// Whether checking the ctag first is expected to cost less than the REPORT alone.
    pub fn prefers_ctag(&self) -> bool {
        let p = f64::from(self.change_permille) / 1000.0;
        f64::from(self.ctag_us) + p * f64::from(self.report_us) < f64::from(self.report_us)
    }

    /// The figures after a sync that sent `probe`, took `ctag` / `report` for the
    /// requests it sent, and found a change (`changed`).
    pub fn after(
        stats: Option<Self>,
        probe: Probe,
        ctag: Option<Duration>,
        report: Option<Duration>,
        changed: bool,
    ) -> Self {
        let mut s = stats.unwrap_or_default();
        let first = stats.is_none();
        let alpha = if probe == Probe::Both { ALPHA_BOTH } else { ALPHA };
        if let Some(t) = ctag {
            s.ctag_us = average(s.ctag_us, micros(t), alpha);
        }
        if let Some(t) = report {
            s.report_us = average(s.report_us, micros(t), alpha);
        }
        let sample = if changed { 1000.0 } else { 0.0 };
        s.change_permille = if first {
            sample as u16
        } else {
            (f64::from(s.change_permille) + ALPHA * (sample - f64::from(s.change_permille))).round() as u16
        };
        s.since_both = if probe == Probe::Both { 0 } else { s.since_both.saturating_add(1) };
        s
    }

    /// A ctag that stayed the same while the REPORT found changes: trust it no more
    /// than the figures say (a change is then expected on every sync).
    pub fn ctag_missed_a_change(&mut self) {
        self.change_permille = 1000;
    }

    /// For admins: the probe chosen and its figures, e.g.
    /// `sync-collection REPORT (ctag PROPFIND 712 ms, REPORT 301 ms, changes in 4% of syncs)`.
    pub fn describe(&self) -> String {
        let chosen = if self.prefers_ctag() { "ctag PROPFIND first" } else { "sync-collection REPORT" };
        format!(
            "{chosen} (ctag PROPFIND {}, REPORT {}, changes in {}% of syncs; both measured every {REPROBE_EVERY} syncs)",
            shown(self.ctag_us),
            shown(self.report_us),
            (u32::from(self.change_permille) + 5) / 10
        )
    }
}

fn shown(us: u32) -> String {
    match us {
        0 => "not measured".into(),
        us if us < 10_000 => format!("{:.1} ms", f64::from(us) / 1000.0),
        us => format!("{} ms", us / 1000),
    }
}

fn micros(t: Duration) -> u32 {
    u32::try_from(t.as_micros()).unwrap_or(u32::MAX).max(1)
}

fn average(old: u32, sample: u32, alpha: f64) -> u32 {
    if old == 0 {
        return sample;
    }
    (f64::from(old) + alpha * (f64::from(sample) - f64::from(old))).round().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// Refuses a sync token or ctag from the server that is too long or holds control
/// characters (it goes into every checkpoint and back into requests).
pub fn check_tag(what: &str, collection: &str, tag: &str) -> Result<(), contactbridge_connector::Error> {
    if tag.len() > MAX_TAG_BYTES {
        return Err(contactbridge_connector::Error::invalid_data(format!(
            "the server's {what} for {collection} is {} bytes long (at most {MAX_TAG_BYTES} are accepted); \
             nothing was changed, the collection keeps its last state",
            tag.len()
        )));
    }
    if tag.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return Err(contactbridge_connector::Error::invalid_data(format!(
            "the server's {what} for {collection} holds control characters; nothing was changed, \
             the collection keeps its last state"
        )));
    }
    Ok(())
}

/// One HTTP request as sent, for showing it or sending it with another client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    pub method: String,
    /// Path (and query) on the server.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The request a sync of the collection at `href` with `checkpoint` prefers for
/// learning that nothing changed (the one its figures make cheaper; every
/// [`REPROBE_EVERY`]th sync sends both). `None` when the checkpoint has no sync token.
pub fn probe_request(href: &str, checkpoint: &contactbridge_connector::Checkpoint) -> Option<ProbeRequest> {
    use libdav::requests::DavRequest as _;
    let state = crate::DavCheckpoint::decode(checkpoint).ok()?;
    let token = state.sync_token.as_deref()?;
    let base: http::Uri = "http://server/".parse().expect("a valid URI");
    let ctag_first = state.ctag.is_some() && state.probe.is_some_and(|s| s.prefers_ctag());
    let request = if ctag_first {
        libdav::dav::GetProperties::new(href, &crate::sync::CTAG_PROPERTIES).prepare_request(base)
    } else {
        libdav::dav::SyncCollection::new(href).with_sync_token(token).prepare_request(base)
    }
    .ok()?;
    Some(ProbeRequest {
        method: request.method().to_string(),
        path: request.uri().path_and_query().map_or_else(|| href.to_string(), ToString::to_string),
        headers: request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: request.body().clone(),
    })
}

/// For admins: how the collection with `checkpoint` learns that nothing changed
/// ([`ProbeStats::describe`]); `None` before its first incremental sync.
pub fn describe(checkpoint: &contactbridge_connector::Checkpoint) -> Option<String> {
    let state = crate::DavCheckpoint::decode(checkpoint).ok()?;
    state.sync_token.as_ref()?;
    state.probe.map(|s| s.describe())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn measures_both_first_then_picks_the_cheaper_and_reprobes_every_nth_sync() {
        assert_eq!(ProbeStats::next(None, true), Probe::Both);
        // Radicale-like: the ctag costs more than the REPORT.
        let s = ProbeStats::after(None, Probe::Both, Some(700 * MS), Some(300 * MS), false);
        assert_eq!(ProbeStats::next(Some(&s), true), Probe::Report);
        let cheap = ProbeStats::after(None, Probe::Both, Some(MS), Some(300 * MS), false);
        assert_eq!(ProbeStats::next(Some(&cheap), true), Probe::Ctag);
        assert_eq!(ProbeStats::next(Some(&cheap), false), Probe::Report, "no ctag to compare with");
        let mut s = s;
        let mut probes = Vec::new();
        for _ in 0..REPROBE_EVERY {
            let p = ProbeStats::next(Some(&s), true);
            probes.push(p);
            let ctag = (p != Probe::Report).then_some(700 * MS);
            s = ProbeStats::after(Some(s), p, ctag, Some(300 * MS), false);
        }
        assert_eq!(probes.iter().filter(|p| **p == Probe::Both).count(), 1, "{probes:?}");
        assert_eq!(probes.last(), Some(&Probe::Both), "{probes:?}");
        // SabreDAV-like: a stored ctag answers in a millisecond.
        let s = ProbeStats::after(None, Probe::Both, Some(MS), Some(40 * MS), false);
        assert_eq!(ProbeStats::next(Some(&s), true), Probe::Ctag);
        // ... unless nearly every sync finds a change.
        let mut busy = ProbeStats::after(None, Probe::Both, Some(5 * MS), Some(40 * MS), true);
        assert!(!busy.prefers_ctag());
        busy.ctag_missed_a_change();
        assert_eq!(busy.change_permille, 1000);
        assert!(busy
            .describe()
            .starts_with("sync-collection REPORT (ctag PROPFIND 5.0 ms, REPORT 40 ms, changes in 100%"));
    }

    #[test]
    fn stays_small_and_old_checkpoints_without_it_load() {
        let s = ProbeStats::after(None, Probe::Both, Some(Duration::from_secs(5000)), Some(3 * MS), true);
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"c":4294967295,"r":3000,"p":1000,"n":0}"#);
        assert_eq!(serde_json::from_str::<ProbeStats>("{}").unwrap(), ProbeStats::default());
    }

    #[test]
    fn huge_or_garbage_tags_are_refused() {
        assert!(check_tag("sync token", "/c/", "http://radicale.org/ns/sync/abc").is_ok());
        let e = check_tag("sync token", "/c/", &"x".repeat(MAX_TAG_BYTES + 1)).unwrap_err();
        assert!(e.message.contains("1025 bytes long"), "{e}");
        assert!(check_tag("ctag", "/c/", "a\u{0}b").is_err());
    }
}
