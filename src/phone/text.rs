//! Text surgery shared by stored numbers and CLIs: unwrap URIs, split off the extension, take digits.

use std::borrow::Cow;

use rlibphonenumber::PHONE_NUMBER_UTIL;

use super::{MIN_TAIL_DIGITS, TAIL_DIGITS};

/// The full-width plus, which libphonenumber reads as `+`.
const FULL_WIDTH_PLUS: char = '\u{ff0b}';

/// The text with every Unicode decimal digit (full-width `０`, Arabic-Indic `٠`, Devanagari `०`, …) as its
/// ASCII digit and the full-width plus `＋` as `+`, one character for one, so character positions stay the
/// same. libphonenumber reads these too; its own mapping decides what is a digit (`normalize_digits_only`),
/// so stored numbers and CLIs agree with what the numbering plan parses. Borrowed when there is none.
pub(crate) fn ascii_digits(s: &str) -> Cow<'_, str> {
    let foreign = |c: char| !c.is_ascii() && (c.is_numeric() || c == FULL_WIDTH_PLUS);
    if s.is_ascii() || !s.chars().any(foreign) {
        return Cow::Borrowed(s);
    }
    let mut buf = [0u8; 4];
    Cow::Owned(
        s.chars()
            .map(|c| {
                if !foreign(c) {
                    return c;
                }
                if c == FULL_WIDTH_PLUS {
                    return '+';
                }
                let digit = PHONE_NUMBER_UTIL.normalize_digits_only(&*c.encode_utf8(&mut buf));
                digit.chars().next().filter(|_| digit.len() == 1).unwrap_or(c)
            })
            .collect(),
    )
}

/// A number as written, split into the number proper and its extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split<'a> {
    /// The number without URI scheme, URI parameters and extension; a sub-slice of the input.
    pub number: &'a str,
    pub extension: Option<String>,
    /// The URI scheme found (`tel`, `sip`, `sips`), lower case.
    pub scheme: Option<&'static str>,
}

/// Byte offset of `part` inside `whole` (`part` must be a sub-slice of `whole`).
pub(crate) fn offset_in(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

/// Unwraps `"Name" <sip:…>`, `tel:`/`sip:`/`sips:` URIs and splits off the extension.
pub(crate) fn split(raw: &str) -> Split<'_> {
    let mut s = raw.trim();
    if let (Some(open), Some(close)) = (s.find('<'), s.rfind('>')) {
        if open < close {
            s = s[open + 1..close].trim();
        }
    }
    let mut scheme = None;
    for (name, prefix) in [("tel", "tel:"), ("sips", "sips:"), ("sip", "sip:")] {
        // `get`, not indexing: the text may have a multi-byte character where the prefix would end.
        if s.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix)) {
            scheme = Some(name);
            s = s[prefix.len()..].trim_start();
            break;
        }
    }
    if matches!(scheme, Some("sip" | "sips")) {
        if let Some(at) = s.find('@') {
            s = &s[..at];
        }
    }
    // URI parameters: `;ext=12;phone-context=…` (also accepted without a scheme, as vCards write them).
    let mut extension = None;
    if let Some(semi) = s.find(';') {
        for param in s[semi + 1..].split(';') {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if name.trim().eq_ignore_ascii_case("ext") {
                let digits: String = value.chars().filter(char::is_ascii_digit).collect();
                if !digits.is_empty() {
                    extension = Some(digits);
                }
            }
        }
        s = s[..semi].trim_end();
    }
    if extension.is_none() {
        if let Some((number, ext)) = split_trailing_extension(s) {
            s = number;
            extension = Some(ext);
        }
    }
    let number = s.trim_end().trim_end_matches('#').trim_end();
    Split { number, extension, scheme }
}

/// `…x12`, `… ext. 12`, `… extension 12`, `…#12`, `…,,12` → (number, "12").
fn split_trailing_extension(s: &str) -> Option<(&str, String)> {
    let s = s.trim_end();
    let digits_start = s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let ext_len = s.len() - digits_start;
    if ext_len == 0 || ext_len > 10 {
        return None;
    }
    let before = s[..digits_start].trim_end_matches([' ', '.', ':', '=']);
    let lower = before.to_ascii_lowercase();
    let marker = ["extension", "extn", "ext", "x", "#", ","].into_iter().find(|m| lower.ends_with(m))?;
    let mut number = &before[..before.len() - marker.len()];
    if marker == "," {
        number = number.trim_end_matches(',');
    }
    let number = number.trim_end_matches([' ', '.', ',']);
    // The marker must follow the number itself (`fax12` or a bare `x12` is not a number with extension).
    let last = number.chars().last()?;
    (last.is_ascii_digit() || last == ')').then(|| (number, s[digits_start..].to_string()))
}

/// The ASCII digits of `s`.
pub(crate) fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The tail used by `t:`/`n:` keys: leading zeros (trunk and international prefixes) dropped, then the
/// last [`TAIL_DIGITS`] digits; `None` if fewer than [`MIN_TAIL_DIGITS`] remain.
pub(crate) fn tail(digits: &str) -> Option<&str> {
    let d = digits.trim_start_matches('0');
    (d.len() >= MIN_TAIL_DIGITS).then(|| &d[d.len().saturating_sub(TAIL_DIGITS)..])
}

/// The tails a caller's digits probe, longest first: last 8, 7 and 6 digits (as many as exist). A
/// shorter-than-8 tail starting with `0` is skipped: [`tail`] never makes one.
pub(crate) fn probe_tails(digits: &str) -> impl Iterator<Item = &str> {
    let d = digits.trim_start_matches('0');
    (MIN_TAIL_DIGITS..=TAIL_DIGITS)
        .rev()
        .filter(move |n| *n <= d.len())
        .map(move |n| &d[d.len() - n..])
        .filter(|t| t.len() == TAIL_DIGITS || !t.starts_with('0'))
}

/// True for a short internal extension: 2–6 digits, no `+`, not starting with `0` (a trunk prefix).
pub(crate) fn is_internal(number: &str, digits: &str) -> bool {
    (2..=MIN_TAIL_DIGITS).contains(&digits.len()) && !digits.starts_with('0') && !number.contains('+')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(raw: &str) -> (&str, Option<String>) {
        let s = split(raw);
        (s.number, s.extension)
    }

    #[test]
    fn extensions_in_every_written_form() {
        for raw in [
            "+49 30 123456 x12",
            "+49 30 123456x12",
            "+49 30 123456 X 12",
            "+49 30 123456 ext. 12",
            "+49 30 123456 ext 12",
            "+49 30 123456 Ext.12",
            "+49 30 123456 extn 12",
            "+49 30 123456 extension 12",
            "+49 30 123456;ext=12",
            "tel:+49 30 123456;ext=12",
            "+49 30 123456#12",
            "+49 30 123456 # 12",
            "+49 30 123456,,12",
        ] {
            assert_eq!(sp(raw), ("+49 30 123456", Some("12".to_string())), "{raw}");
        }
    }

    #[test]
    fn no_extension_where_none_is_written() {
        for (raw, number) in [
            ("+49 30 1234-0", "+49 30 1234-0"),
            ("(905) 555-1234", "(905) 555-1234"),
            ("1-800-FLOWERS", "1-800-FLOWERS"),
            ("+4930123456#", "+4930123456"),
            ("fax12", "fax12"),
            ("x12", "x12"),
        ] {
            assert_eq!(sp(raw), (number, None), "{raw}");
        }
    }

    #[test]
    fn uris_are_unwrapped() {
        assert_eq!(sp("tel:+1-418-656-9254;ext=102"), ("+1-418-656-9254", Some("102".into())));
        assert_eq!(sp("sip:+4930123456@pbx.example.org;user=phone"), ("+4930123456", None));
        assert_eq!(sp("SIPS:+4930123456;ext=7@pbx"), ("+4930123456", Some("7".into())));
        assert_eq!(sp("\"Alice\" <sip:+4930123456@pbx>"), ("+4930123456", None));
        assert_eq!(sp("tel:030123456;phone-context=+49"), ("030123456", None));
        assert_eq!(split("sip:anonymous@anonymous.invalid").scheme, Some("sip"));
    }

    #[test]
    fn multi_byte_text_is_cut_at_characters() {
        // Each of these once cut a character in two while looking for `tel:`/`sip:`.
        for raw in ["ab€", "０３０ １２３４５６", "€", "t€l:1", "<€>", "tel:€", "١٢٣٤٥٦٧٨"] {
            let _ = split(raw);
        }
        assert_eq!(sp("sip€"), ("sip€", None));
    }

    #[test]
    fn unicode_decimal_digits_become_ascii() {
        assert_eq!(ascii_digits("０３０ １２３４５６"), "030 123456");
        assert_eq!(ascii_digits("＋４９ ３０"), "+49 30");
        assert_eq!(ascii_digits("+٤٩ ٣٠ ١٢٣٤٥٦"), "+49 30 123456");
        assert_eq!(ascii_digits("۰۳۰"), "030"); // Extended Arabic-Indic
        assert_eq!(ascii_digits("०३०"), "030"); // Devanagari
        assert_eq!(ascii_digits("ab€ ½ ²"), "ab€ ½ ²"); // numeric, but not decimal digits
        assert!(matches!(ascii_digits("+49 30 123456"), Cow::Borrowed(_)));
    }

    #[test]
    fn tails_drop_leading_zeros_and_keep_eight_digits() {
        assert_eq!(tail("030123456"), Some("30123456"));
        assert_eq!(tail("004930123456"), Some("30123456"));
        assert_eq!(tail("0301234"), Some("301234"));
        assert_eq!(tail("012345"), None);
        assert_eq!(probe_tails("4930123456").collect::<Vec<_>>(), ["30123456", "123456"]);
        assert_eq!(probe_tails("1234567").collect::<Vec<_>>(), ["1234567", "234567"]);
        assert_eq!(probe_tails("49301023456").collect::<Vec<_>>(), ["01023456", "1023456"]);
    }
}
