//! Handling codes, handling methods and the table that joins them with status.

use super::Status;
use serde::{Deserialize, Serialize};

/// What the user thinks of a caller: `vip`, `blocked`, `default`… A code is a
/// lower-case word; users may define their own. Three codes are assigned by the
/// bridge itself: [`HandlingCode::DEFAULT`] for a known contact without a code,
/// [`HandlingCode::UNKNOWN`] for a number that matches no contact, and
/// [`HandlingCode::WITHHELD`] for a call without a number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HandlingCode(String);

impl HandlingCode {
    pub const DEFAULT: &'static str = "default";
    pub const UNKNOWN: &'static str = "unknown";
    pub const WITHHELD: &'static str = "withheld";
    pub const VIP: &'static str = "vip";
    pub const BLOCKED: &'static str = "blocked";

    /// Parses a code: trimmed, lower-cased, 1–32 characters of `a-z 0-9 - _`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let code = s.trim().to_ascii_lowercase();
        if code.is_empty() || code.len() > 32 {
            return Err(format!("handling code {} must be 1 to 32 characters", crate::connector::echo(s)));
        }
        if let Some(bad) = code.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(format!("handling code {s:?} contains {bad:?}; use letters, digits, '-' and '_'"));
        }
        Ok(Self(code))
    }

    /// A code known to be valid (the constants above).
    pub fn well_known(code: &'static str) -> Self {
        Self(code.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HandlingCode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<HandlingCode> for String {
    fn from(c: HandlingCode) -> String {
        c.0
    }
}

impl std::fmt::Display for HandlingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the phone system does with the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum HandlingMethod {
    /// Forward to a phone number.
    Forward { number: String },
    /// Send to an interactive voice response menu.
    Ivr { ivr_id: String },
    /// Ring the user's computer: the notification window shows the caller and
    /// offers the user's forward targets.
    Notify,
    /// Send to the user's voicemail.
    Voicemail,
    /// Send to the user's attendant (falls back to voicemail without one).
    Attendant,
    /// Reject the call.
    Reject,
}

impl HandlingMethod {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Forward { .. } => "forward",
            Self::Ivr { .. } => "ivr",
            Self::Notify => "notify",
            Self::Voicemail => "voicemail",
            Self::Attendant => "attendant",
            Self::Reject => "reject",
        }
    }
}

/// A wildcard-able match on one axis of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Match<T> {
    Is(T),
    Any(AnyMarker),
}

/// Serialised as the string `"*"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnyMarker {
    #[serde(rename = "*")]
    Any,
}

impl<T: PartialEq> Match<T> {
    pub const ANY: Match<T> = Match::Any(AnyMarker::Any);

    fn matches(&self, value: &T) -> bool {
        match self {
            Match::Is(v) => v == value,
            Match::Any(_) => true,
        }
    }

    fn is_any(&self) -> bool {
        matches!(self, Match::Any(_))
    }
}

/// One row: for this code and this status, this method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlingRule {
    pub code: Match<HandlingCode>,
    pub status: Match<Status>,
    #[serde(flatten)]
    pub method: HandlingMethod,
}

/// The user's handling table. The most specific row wins: code and status
/// both given, then code with any status, then any code with the status, then
/// the fallback. Within one level the first row wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlingTable {
    pub rules: Vec<HandlingRule>,
    pub fallback: HandlingMethod,
}

impl HandlingTable {
    /// The method for `code` while the user is `status`, and the rule index that
    /// decided (`None`: the fallback).
    pub fn method_for(&self, code: &HandlingCode, status: Status) -> (&HandlingMethod, Option<usize>) {
        let specificity = |r: &HandlingRule| match (r.code.is_any(), r.status.is_any()) {
            (false, false) => 0,
            (false, true) => 1,
            (true, false) => 2,
            (true, true) => 3,
        };
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.code.matches(code) && r.status.matches(&status))
            .min_by_key(|(i, r)| (specificity(r), *i))
            .map(|(i, r)| (&r.method, Some(i)))
            .unwrap_or((&self.fallback, None))
    }

    /// Sets the method for one (code, status) cell, replacing an identical match.
    pub fn set(&mut self, code: Match<HandlingCode>, status: Match<Status>, method: HandlingMethod) {
        match self.rules.iter_mut().find(|r| r.code == code && r.status == status) {
            Some(rule) => rule.method = method,
            None => self.rules.push(HandlingRule { code, status, method }),
        }
    }
}

impl Default for HandlingTable {
    /// Sensible defaults: VIPs always ring through; blocked callers go to
    /// voicemail; withheld numbers to voicemail; everyone else rings when the
    /// user is available or tentative, goes to voicemail in a meeting or under
    /// do-not-disturb, and to the attendant when the user is out of office.
    fn default() -> Self {
        let code = |c: &'static str| Match::Is(HandlingCode::well_known(c));
        let rule = |code, status, method| HandlingRule { code, status, method };
        Self {
            rules: vec![
                rule(code(HandlingCode::VIP), Match::ANY, HandlingMethod::Notify),
                rule(code(HandlingCode::BLOCKED), Match::ANY, HandlingMethod::Voicemail),
                rule(code(HandlingCode::WITHHELD), Match::ANY, HandlingMethod::Voicemail),
                rule(code(HandlingCode::UNKNOWN), Match::Is(Status::Available), HandlingMethod::Notify),
                rule(code(HandlingCode::UNKNOWN), Match::ANY, HandlingMethod::Attendant),
                rule(Match::ANY, Match::Is(Status::Busy), HandlingMethod::Voicemail),
                rule(Match::ANY, Match::Is(Status::DoNotDisturb), HandlingMethod::Voicemail),
                rule(Match::ANY, Match::Is(Status::OutOfOffice), HandlingMethod::Attendant),
            ],
            fallback: HandlingMethod::Notify,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: &str) -> HandlingCode {
        HandlingCode::parse(c).unwrap()
    }

    #[test]
    fn codes_are_normalised_and_validated() {
        assert_eq!(code(" VIP ").as_str(), "vip");
        assert!(HandlingCode::parse("").is_err());
        assert!(HandlingCode::parse("a b").unwrap_err().contains("' '"));
        assert!(HandlingCode::parse(&"x".repeat(33)).is_err());
    }

    #[test]
    fn most_specific_rule_wins_then_first() {
        let t = HandlingTable::default();
        assert_eq!(t.method_for(&code("vip"), Status::Busy).0, &HandlingMethod::Notify);
        assert_eq!(t.method_for(&code("default"), Status::Busy).0, &HandlingMethod::Voicemail);
        assert_eq!(t.method_for(&code("default"), Status::Available), (&HandlingMethod::Notify, None));
        assert_eq!(t.method_for(&code("unknown"), Status::Available).0, &HandlingMethod::Notify);
        assert_eq!(t.method_for(&code("unknown"), Status::Busy).0, &HandlingMethod::Attendant);
        assert_eq!(t.method_for(&code("blocked"), Status::Available).0, &HandlingMethod::Voicemail);
        assert_eq!(t.method_for(&code("default"), Status::OutOfOffice).0, &HandlingMethod::Attendant);
    }

    #[test]
    fn set_replaces_a_cell_and_table_round_trips_as_json() {
        let mut t = HandlingTable::default();
        let n = t.rules.len();
        t.set(Match::Is(code("vip")), Match::ANY, HandlingMethod::Forward { number: "+4917012345".into() });
        assert_eq!(t.rules.len(), n);
        t.set(Match::Is(code("family")), Match::Is(Status::Busy), HandlingMethod::Ivr { ivr_id: "menu-1".into() });
        assert_eq!(t.rules.len(), n + 1);
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains("\"code\":\"*\""), "{json}");
        assert_eq!(serde_json::from_str::<HandlingTable>(&json).unwrap(), t);
    }
}
