//! A second reading of a stored number whose first reading (with the user's region) is impossible or
//! whose written form points to another country (see the rules in [`crate::phone`]).

use rlibphonenumber::{PhoneNumber, PhoneNumberFormat, PHONE_NUMBER_UTIL};

use super::region::Region;

/// Why a stored number was given a second reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecondReading {
    /// Written in international dialling form with another country's exit code (`00 1 212 555 7777` for a
    /// US user, `011 44 20 7946 0958` for a German one): the region's own reading is impossible.
    DiallingForm,
    /// Written like a North American number, `(212) 200-0003`, `212.200.0005`, `1-212-200-0003`, by a
    /// user outside North America whose national numbers start with a trunk prefix.
    ForeignFormat,
}

/// Exit codes tried on a number whose first reading is impossible, longest first: `0011` (AU), `011`
/// (North America), `810` (RU, BY), `010` (JP), `00` (most of the world).
const EXIT_CODES: [&str; 5] = ["0011", "011", "810", "010", "00"];

/// More digits than any E.164 number with an exit code in front: not read a second time.
const MAX_READ_DIGITS: usize = 19;

/// The second reading of `number` (its ASCII `digits` given) stored by a user in `region`, whose first
/// reading is `first` (`None`: the plan could not parse it). Only valid numbers are returned.
pub(crate) fn second_reading(
    number: &str,
    digits: &str,
    region: &Region,
    first: Option<&PhoneNumber>,
) -> Option<(SecondReading, PhoneNumber)> {
    if number.contains('+') || digits.len() > MAX_READ_DIGITS {
        return None;
    }
    if let Some(nanp) = written_as_nanp(number, region) {
        if let Some(parsed) = valid(&format!("+1{nanp}")) {
            return Some((SecondReading::ForeignFormat, parsed));
        }
    }
    if first.is_some_and(PhoneNumber::is_valid) {
        return None;
    }
    EXIT_CODES
        .iter()
        .filter_map(|code| digits.strip_prefix(code))
        .find_map(|rest| valid(&format!("+{rest}")))
        .map(|parsed| (SecondReading::DiallingForm, parsed))
}

fn valid(e164ish: &str) -> Option<PhoneNumber> {
    PHONE_NUMBER_UTIL.parse(e164ish, None).ok().filter(PhoneNumber::is_valid)
}

/// The ten national digits of a number written the North American way — groups of 3, 3 and 4 digits, the
/// first two starting with 2–9, an optional leading `1`, separated by spaces, `-`, `.`, `()` or any
/// other punctuation (full-width `（）－` too) — by a
/// user in a region outside +1 whose national numbers are written with a trunk prefix (`0` in DE, GB,
/// FR, CH, AT…), so that a number without it is not written as a national one there.
fn written_as_nanp(number: &str, region: &Region) -> Option<String> {
    let separator = |c: char| !c.is_alphanumeric() && c != '+';
    if region.calling_code() == 1 || !number.chars().all(|c| c.is_ascii_digit() || separator(c)) {
        return None;
    }
    let trunk = trunk_prefix(region)?;
    let groups: Vec<&str> = number.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty()).collect();
    let groups = match groups.as_slice() {
        ["1", rest @ ..] => rest,
        all => all,
    };
    let [area, exchange, line] = groups else { return None };
    let leads = |g: &str, len: usize| g.len() == len && g.as_bytes()[0] >= b'2';
    (leads(area, 3) && leads(exchange, 3) && line.len() == 4 && !area.starts_with(trunk.as_str()))
        .then(|| format!("{area}{exchange}{line}"))
}

/// The national (trunk) prefix the region writes before its national numbers (`0` in DE, `8` in RU),
/// read off the plan's example number in national format; `None` where there is none (IT, NANP).
fn trunk_prefix(region: &Region) -> Option<String> {
    let example = PHONE_NUMBER_UTIL.get_example_number(region.plan()).ok()?;
    let national = PHONE_NUMBER_UTIL.format(&example, PhoneNumberFormat::National);
    let digits: String = national.chars().filter(char::is_ascii_digit).collect();
    let trunk = digits.strip_suffix(&*example.get_national_significant_number())?;
    (!trunk.is_empty()).then(|| trunk.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(code: &str) -> Region {
        Region::parse(code).unwrap()
    }

    fn read(number: &str, code: &str) -> Option<(SecondReading, String)> {
        let r = region(code);
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        let first = PHONE_NUMBER_UTIL.parse(number, Some(r.plan())).ok();
        second_reading(number, &digits, &r, first.as_ref())
            .map(|(why, n)| (why, n.format_as(PhoneNumberFormat::E164).into_owned()))
    }

    #[test]
    fn nanp_written_forms_outside_north_america() {
        for n in ["(212) 200-0003", "212.200.0005", "212-200-0003", "1-212-200-0003", "1 (212) 200 0003"] {
            let (why, e164) = read(n, "DE").unwrap_or_else(|| panic!("{n}"));
            assert_eq!(why, SecondReading::ForeignFormat, "{n}");
            assert!(e164.starts_with("+1212200000"), "{n}: {e164}");
        }
        // Not that form, or a user whose own numbers look like it.
        for (n, r) in
            [("(212) 200-0003", "US"), ("(212) 200-0003", "CA"), ("0212 2000003", "DE"), ("212 20 00 03", "DE")]
        {
            assert_eq!(read(n, r), None, "{n} in {r}");
        }
    }

    #[test]
    fn trunk_prefixes_from_the_plan() {
        for (r, t) in
            [("DE", Some("0")), ("GB", Some("0")), ("FR", Some("0")), ("RU", Some("8")), ("IT", None), ("US", None)]
        {
            assert_eq!(trunk_prefix(&region(r)).as_deref(), t, "{r}");
        }
    }

    #[test]
    fn exit_codes_only_when_the_first_reading_is_impossible() {
        assert_eq!(read("00-1-212-555-7777", "US"), Some((SecondReading::DiallingForm, "+12125557777".into())));
        assert_eq!(read("011 44 20 7946 0958", "DE"), Some((SecondReading::DiallingForm, "+442079460958".into())));
        assert_eq!(read("0212 2000003", "DE"), None);
        assert_eq!(read(&"0".repeat(40), "DE"), None);
    }
}
