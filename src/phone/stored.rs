//! Keys for a number stored in an address book (see the rules in [`crate::phone`]).

use rlibphonenumber::{PhoneNumber, PhoneNumberFormat, PHONE_NUMBER_UTIL};

use super::key::{KeyKind, LookupKey};
use super::reading::{second_reading, SecondReading};
use super::region::Region;
use super::{text, MIN_COMPANY_PREFIX_DIGITS};

/// What the source knows about a number beyond its text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredHints<'a> {
    /// An extension kept in a separate field; wins over one written in the number.
    pub extension: Option<&'a str>,
    /// The source labels the number as a company's main number (switchboard), so calls from its
    /// direct-dial range match it even if it is not written with a final `-0`.
    pub company_main: bool,
}

/// Everything derived from one stored number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredKeys {
    /// Index the number under each of these keys (no duplicates, most specific first).
    pub keys: Vec<LookupKey>,
    /// E.164 without extension, when the number could be normalised.
    pub e164: Option<String>,
    /// International display form, e.g. `+49 30 123456 ext. 12`, when the number could be normalised.
    pub international: Option<String>,
    /// The extension, digits only.
    pub extension: Option<String>,
    /// The number is treated as a company main number (it produced a `p:` key).
    pub company_main: bool,
    /// The numbering plan knows the number's range (false for normalised numbers in unassigned ranges and
    /// for numbers that could not be normalised). Keys are made either way.
    pub valid: bool,
    /// The number was also read another way (its `r:` keys); `e164` and `international` are then that
    /// reading's.
    pub second_reading: Option<SecondReading>,
}

impl StoredKeys {
    /// The best form to show: international format when normalised, else the text as given.
    pub fn display<'a>(&'a self, raw: &'a str) -> &'a str {
        self.international.as_deref().unwrap_or_else(|| raw.trim())
    }
}

/// Keys for a number as an address book wrote it, read with `region` as the default for national numbers.
pub fn keys_for_stored(raw: &str, region: Option<&Region>) -> StoredKeys {
    keys_for_stored_with(raw, region, StoredHints::default())
}

/// [`keys_for_stored`] with what the source knows beyond the text.
pub fn keys_for_stored_with(raw: &str, region: Option<&Region>, hints: StoredHints<'_>) -> StoredKeys {
    // Full-width and other Unicode decimal digits are digits (as for a CLI).
    let raw = &*text::ascii_digits(raw);
    let split = text::split(raw);
    let number = split.number;
    let digits = text::digits(number);
    let extension =
        hints.extension.map(|e| text::digits(&text::ascii_digits(e))).filter(|e| !e.is_empty()).or(split.extension);
    let mut out = StoredKeys { extension, ..StoredKeys::default() };

    if text::is_internal(number, &digits) && !number.chars().any(char::is_alphabetic) {
        out.keys.push(LookupKey::new(KeyKind::Internal, &digits));
        if let Some(t) = text::tail(&digits) {
            out.keys.push(LookupKey::new(KeyKind::Tail, t));
        }
        return out;
    }
    let first = normalise(number, region);
    let second = region.and_then(|r| second_reading(number, &digits, r, first.as_ref()));
    let Some(mut parsed) = first else {
        if let Some((why, reading)) = &second {
            out.keys.push(LookupKey::new(KeyKind::Reading, &reading.format_as(PhoneNumberFormat::E164)));
            out.second_reading = Some(*why);
        }
        if let Some(t) = text::tail(&digits) {
            out.keys.push(LookupKey::new(KeyKind::Tail, t));
        }
        if let Some((_, reading)) = second {
            out.describe(reading);
        }
        return out;
    };

    let e164 = parsed.format_as(PhoneNumberFormat::E164).into_owned();
    let nsn = parsed.get_national_significant_number();
    // A valid first reading of a number written the way another country writes them is only a reading.
    let ambiguous = parsed.is_valid() && matches!(second, Some((SecondReading::ForeignFormat, _)));
    match &out.extension {
        _ if ambiguous => out.keys.push(LookupKey::new(KeyKind::Reading, &e164)),
        Some(ext) => {
            out.keys.push(LookupKey::new(KeyKind::Extension, &format!("{e164};{ext}")));
            out.keys.push(LookupKey::new(KeyKind::Base, &e164));
        }
        None => {
            out.keys.push(LookupKey::new(KeyKind::Exact, &e164));
            if let Some(prefix) = company_prefix(number, &e164, nsn.len(), hints.company_main) {
                out.keys.push(LookupKey::new(KeyKind::CompanyPrefix, prefix));
                out.company_main = true;
            }
        }
    }
    if let Some((why, reading)) = &second {
        let key = LookupKey::new(KeyKind::Reading, &reading.format_as(PhoneNumberFormat::E164));
        if !out.keys.contains(&key) {
            out.keys.push(key);
        }
        out.second_reading = Some(*why);
    }
    if let Some(t) = text::tail(&nsn) {
        out.keys.push(LookupKey::new(KeyKind::NationalTail, t));
    }
    if let Some((_, reading)) = second {
        out.describe(reading);
        return out;
    }
    out.valid = parsed.is_valid();
    parsed.extension = out.extension.clone();
    out.international = Some(parsed.format_as(PhoneNumberFormat::International).into_owned());
    out.e164 = Some(e164);
    out
}

impl StoredKeys {
    /// Shows the number as `reading` (valid, with this number's extension).
    fn describe(&mut self, mut reading: PhoneNumber) {
        self.valid = true;
        self.e164 = Some(reading.format_as(PhoneNumberFormat::E164).into_owned());
        reading.extension = self.extension.clone();
        self.international = Some(reading.format_as(PhoneNumberFormat::International).into_owned());
    }
}

/// Parses with the numbering plan; `None` when neither a `+` nor a region says which plan applies.
pub(crate) fn normalise(number: &str, region: Option<&Region>) -> Option<PhoneNumber> {
    if region.is_none() && !number.contains('+') {
        return None;
    }
    PHONE_NUMBER_UTIL.parse(number, region.map(Region::plan)).ok()
}

/// The `p:` prefix of a company main number: the E.164 without a final `0` that is written as its own
/// group (`+49 30 1234-0`, `030 1234 0`); for a number the source marks as main, without its final `0`
/// if it has one, else the whole number. `None` if fewer than [`MIN_COMPANY_PREFIX_DIGITS`] national
/// digits would remain.
fn company_prefix<'a>(written: &str, e164: &'a str, nsn_len: usize, marked_main: bool) -> Option<&'a str> {
    let drop_zero = e164.ends_with('0') && (marked_main || written_as_main(written));
    if !drop_zero && !marked_main {
        return None;
    }
    let cut = usize::from(drop_zero);
    (nsn_len.saturating_sub(cut) >= MIN_COMPANY_PREFIX_DIGITS).then(|| &e164[..e164.len() - cut])
}

/// `…1234-0`, `…1234 0`, `…1234/0`, `…1234.0`: a lone final `0` after a separator.
fn written_as_main(written: &str) -> bool {
    const SEPARATORS: [char; 4] = [' ', '-', '/', '.'];
    let Some(body) = written.trim_end().strip_suffix('0') else { return false };
    if !body.ends_with(SEPARATORS) {
        return false;
    }
    body.trim_end_matches(SEPARATORS).ends_with(|c: char| c.is_ascii_digit() || c == ')')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn de() -> Region {
        Region::parse("DE").unwrap()
    }

    fn keys(raw: &str, region: Option<&Region>) -> Vec<String> {
        keys_for_stored(raw, region).keys.into_iter().map(LookupKey::into_string).collect()
    }

    #[test]
    fn unicode_digits_key_like_ascii_ones() {
        let de = de();
        assert_eq!(keys("０３０ １２３４５６", Some(&de)), keys("030 123456", Some(&de)));
        assert_eq!(keys("+٤٩ ٣٠ ١٢٣٤٥٦ x١٢", None), keys("+49 30 123456 x12", None));
        assert_eq!(keys("ab€", Some(&de)), Vec::<String>::new());
    }

    #[test]
    fn messy_german_forms_share_the_exact_key() {
        let de = de();
        for raw in
            ["+4930123456", "030 123456", "(030) 12 34 56", "+49 (30) 123456", "0049 30 123456", "+49 (0)30 123456"]
        {
            assert_eq!(keys(raw, Some(&de)), ["e:+4930123456", "n:30123456"], "{raw}");
        }
    }

    #[test]
    fn display_forms() {
        let k = keys_for_stored("030 123456 x12", Some(&de()));
        assert_eq!(k.e164.as_deref(), Some("+4930123456"));
        assert_eq!(k.international.as_deref(), Some("+49 30 123456 ext. 12"));
        assert_eq!(k.display("030 123456 x12"), "+49 30 123456 ext. 12");
        assert_eq!(keys_for_stored("123456", None).display(" 123456 "), "123456");
    }

    #[test]
    fn extension_gives_extension_and_base_keys() {
        assert_eq!(keys("+49 30 123456 ext. 12", None), ["x:+4930123456;12", "b:+4930123456", "n:30123456"]);
        let hinted =
            keys_for_stored_with("+49 30 123456", None, StoredHints { extension: Some(" 34 "), company_main: false });
        assert_eq!(hinted.extension.as_deref(), Some("34"));
        assert_eq!(hinted.keys[0].as_str(), "x:+4930123456;34");
    }

    #[test]
    fn company_main_number_gives_a_prefix_key() {
        let de = de();
        for raw in ["+49 30 1234-0", "+49 30 1234 0", "030 1234-0", "030/1234/0"] {
            let k = keys_for_stored(raw, Some(&de));
            assert!(k.company_main, "{raw}");
            assert_eq!(
                k.keys[..2],
                [LookupKey::new(KeyKind::Exact, "+493012340"), LookupKey::new(KeyKind::CompanyPrefix, "+49301234")]
            );
        }
        // A final 0 inside a group is not a switchboard marker.
        for raw in ["+49 30 12340", "+33 1 42 68 53 00", "+1 650 253 0000", "+49 30 1234-0 x5"] {
            assert!(!keys_for_stored(raw, Some(&de)).company_main, "{raw}");
        }
        let marked = keys_for_stored_with("+49 30 12345", None, StoredHints { extension: None, company_main: true });
        assert!(marked.keys.contains(&LookupKey::new(KeyKind::CompanyPrefix, "+493012345")));
        // Too short a prefix would match half a city.
        assert!(!keys_for_stored("+49 30 12-0", None).company_main);
    }

    #[test]
    fn without_country_or_region_a_tail_key() {
        assert_eq!(keys("030 123456", None), ["t:30123456"]);
        assert_eq!(keys("0049 30 123456", None), ["t:30123456"]);
        assert_eq!(keys("3456789", None), ["t:3456789"]);
        assert_eq!(keys("", None), Vec::<String>::new());
    }

    #[test]
    fn short_numbers_are_internal() {
        let de = de();
        assert_eq!(keys("123", None), ["i:123"]);
        assert_eq!(keys("123", Some(&de)), ["i:123"]);
        assert_eq!(keys("123456", Some(&de)), ["i:123456", "t:123456"]);
        assert_eq!(keys("1-800-FLOWERS", Some(&Region::parse("US").unwrap())), ["e:+18003569377", "n:03569377"]);
    }
}
