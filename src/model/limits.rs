//! How much of each field a user profile may hold: the one set of bounds for
//! gRPC `PutUser`, the CLI and profile files. A 64 KiB request could otherwise
//! fill a profile with thousands of forward buttons or a 60,000-character name
//! that every call's context and the notification window then carry.

use super::{HandlingMethod, UserProfile};

/// Characters of `display_name`.
pub const MAX_DISPLAY_NAME_CHARS: usize = 256;
/// Characters of `tenant`.
pub const MAX_TENANT_CHARS: usize = 128;
/// Characters of `time_zone` (the longest IANA name has 32).
pub const MAX_TIME_ZONE_CHARS: usize = 64;
/// Called numbers (DIDs) of one user.
pub const MAX_CALLED_NUMBERS: usize = 100;
/// Characters of any phone number in a profile (called numbers, attendant, forward targets, forward methods).
pub const MAX_NUMBER_CHARS: usize = 64;
/// Forward buttons of the notification window.
pub const MAX_FORWARD_TARGETS: usize = 32;
/// Characters of a forward button's label.
pub const MAX_LABEL_CHARS: usize = 64;
/// Rows of the handling table (handling codes × 7 statuses stay far below it).
pub const MAX_HANDLING_RULES: usize = 256;
/// Characters of an IVR id in a handling method.
pub const MAX_IVR_ID_CHARS: usize = 128;

/// A profile field over its bound: names the field (as the proto spells it) and the bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} has {value} {unit}; it may have at most {max}")]
pub struct OverLimit {
    pub field: String,
    pub value: usize,
    pub max: usize,
    /// `characters` or `entries`.
    pub unit: &'static str,
}

fn chars(field: impl Into<String>, text: &str, max: usize) -> Result<(), OverLimit> {
    // Count only as far as needed: a 60,000-character value is refused after max + 1.
    let value = text.chars().take(max + 1).count();
    if value > max {
        return Err(OverLimit { field: field.into(), value: text.chars().count(), max, unit: "characters" });
    }
    Ok(())
}

fn entries(field: &str, value: usize, max: usize) -> Result<(), OverLimit> {
    if value > max {
        return Err(OverLimit { field: field.into(), value, max, unit: "entries" });
    }
    Ok(())
}

fn method(field: &str, m: &HandlingMethod) -> Result<(), OverLimit> {
    match m {
        HandlingMethod::Forward { number } => chars(format!("{field}.target"), number, MAX_NUMBER_CHARS),
        HandlingMethod::Ivr { ivr_id } => chars(format!("{field}.target"), ivr_id, MAX_IVR_ID_CHARS),
        _ => Ok(()),
    }
}

/// Checks every bound above; the error names the first field over its bound.
pub fn check(p: &UserProfile) -> Result<(), OverLimit> {
    chars("tenant", &p.tenant, MAX_TENANT_CHARS)?;
    chars("display_name", &p.display_name, MAX_DISPLAY_NAME_CHARS)?;
    chars("time_zone", &p.time_zone, MAX_TIME_ZONE_CHARS)?;
    entries("called_numbers", p.called_numbers.len(), MAX_CALLED_NUMBERS)?;
    for (i, n) in p.called_numbers.iter().enumerate() {
        chars(format!("called_numbers[{i}]"), n, MAX_NUMBER_CHARS)?;
    }
    if let Some(a) = &p.attendant {
        chars("attendant.number", &a.number, MAX_NUMBER_CHARS)?;
    }
    entries("forward_targets", p.forward_targets.len(), MAX_FORWARD_TARGETS)?;
    for (i, t) in p.forward_targets.iter().enumerate() {
        chars(format!("forward_targets[{i}].label"), &t.label, MAX_LABEL_CHARS)?;
        chars(format!("forward_targets[{i}].number"), &t.number, MAX_NUMBER_CHARS)?;
    }
    entries("handling.rules", p.handling.rules.len(), MAX_HANDLING_RULES)?;
    for (i, r) in p.handling.rules.iter().enumerate() {
        method(&format!("handling.rules[{i}].method"), &r.method)?;
    }
    method("handling.fallback", &p.handling.fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ForwardTarget, UserId};

    #[test]
    fn each_bound_names_its_field() {
        let mut p = UserProfile::new(UserId::parse("u").unwrap(), "t");
        assert_eq!(check(&p), Ok(()));
        p.display_name = "ä".repeat(MAX_DISPLAY_NAME_CHARS);
        assert_eq!(check(&p), Ok(()), "the bound counts characters, not bytes");
        p.display_name.push('x');
        assert_eq!(check(&p).unwrap_err().to_string(), "display_name has 257 characters; it may have at most 256");
        p.display_name.clear();
        p.forward_targets = vec![ForwardTarget { label: "x".into(), number: "1".into() }; MAX_FORWARD_TARGETS + 1];
        assert_eq!(check(&p).unwrap_err().field, "forward_targets");
        p.forward_targets.truncate(2);
        p.forward_targets[1].label = "l".repeat(65);
        assert_eq!(check(&p).unwrap_err().field, "forward_targets[1].label");
    }
}
