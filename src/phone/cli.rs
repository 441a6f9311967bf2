//! The caller's number as the phone system sends it (CLI), and the keys to probe for it, best first.

use rlibphonenumber::{ParseError, PhoneNumberFormat, ValidationError, PHONE_NUMBER_UTIL};
use serde::Serialize;

use super::key::{KeyKind, LookupKey};
use super::region::Region;
use super::{text, MAX_DIRECT_DIAL_DIGITS, MIN_COMPANY_PREFIX_DIGITS, MIN_TAIL_DIGITS};

/// Longest digit string accepted before the numbering plan is asked: 15 (E.164) after `+`, else 15 plus
/// room for an international prefix (`0011`) and a trunk digit.
const MAX_DIGITS_WITH_PLUS: usize = 15;
const MAX_DIGITS_DIALLED: usize = 19;

/// What the phone system said about the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cli {
    Number(CliNumber),
    /// The caller withheld the number (`withheld`, `private`, `restricted`, `blocked`, `P`, `CLIR`).
    Withheld,
    /// The caller is anonymous (`anonymous`, `sip:anonymous@anonymous.invalid`).
    Anonymous,
    /// The network did not deliver a number (empty, `unavailable`, `unknown`, `0`, `-`, `O`, `out of area`).
    Unavailable,
}

/// A CLI that is not a number and not a known "no number" word. The message names the problem and,
/// for a character, its 1-based position in the CLI as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error("contains letter '{letter}' at position {position}")]
    Letter { letter: char, position: usize },
    #[error("contains '{character}' at position {position}, which has no place in a phone number")]
    Character { character: char, position: usize },
    #[error("'+' at position {position} is not at the start of the number")]
    MisplacedPlus { position: usize },
    #[error("contains no digits")]
    NoDigits,
    #[error("too short ({digits} digits)")]
    TooShort { digits: usize },
    #[error("too long ({digits} digits)")]
    TooLong { digits: usize },
    #[error("no country has the calling code this number starts with")]
    UnknownCountryCode,
    #[error("not a phone number")]
    NotANumber,
    #[error("needs a country code (+49…) or must be a short internal extension")]
    NeedsCountryCode,
}

/// A caller's number, read with the user's region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliNumber {
    form: Form,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Form {
    /// Normalised to E.164.
    International { e164: String, nsn: String, extension: Option<String>, display: String },
    /// A short internal extension.
    Internal { digits: String },
    /// A national number without a region to read it with.
    Unqualified { digits: String, extension: Option<String> },
}

/// How well a probe's hits match the caller. Sorts best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchQuality {
    /// Same number (and same extension, if any).
    Exact,
    /// Same number; the extension is only on one side.
    ExtensionDropped,
    /// Same company: the caller dials directly into the range of a stored main number, or the same number
    /// with another extension.
    TrunkPrefix,
    /// Same number, but only in a second reading of the stored one: written in another country's
    /// format or international dialling form (`(212) 200-0003` in a German address book). Ranked below
    /// every match of the number as the user's region reads it.
    OtherReading,
    /// The last 6–8 digits agree, and one side had no country code.
    Tail,
    /// Same short internal extension.
    Internal,
}

/// One key to look up, with the quality of what it finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub key: LookupKey,
    pub quality: MatchQuality,
}

/// Reads a CLI: `+4930123456`, `030 123456`, `sip:+4930123456@pbx;user=phone`, `tel:+49-30-123456;ext=12`,
/// `123` (internal), or a "no number" word. `region` reads national numbers; without it they can only be
/// matched by their last digits.
pub fn parse_cli(cli: &str, region: Option<&Region>) -> Result<Cli, CliError> {
    // Full-width and other Unicode decimal digits are digits; one character each, so positions hold.
    let cli = &*text::ascii_digits(cli);
    let split = text::split(cli);
    if let Some(no_number) = no_number(split.number) {
        return Ok(no_number);
    }
    let number = split.number;
    check_characters(cli, number)?;
    let digits = text::digits(number);
    let plus = number.starts_with('+');
    let form = if digits.is_empty() {
        return Err(CliError::NoDigits);
    } else if text::is_internal(number, &digits) {
        Form::Internal { digits }
    } else if digits.len() < 2 {
        return Err(CliError::TooShort { digits: digits.len() });
    } else if digits.len() > if plus { MAX_DIGITS_WITH_PLUS } else { MAX_DIGITS_DIALLED } {
        return Err(CliError::TooLong { digits: digits.len() });
    } else if plus || region.is_some() {
        international(number, &digits, region, split.extension)?
    } else if digits.trim_start_matches('0').len() < MIN_TAIL_DIGITS {
        return Err(CliError::TooShort { digits: digits.len() });
    } else {
        Form::Unqualified { digits, extension: split.extension }
    };
    Ok(Cli::Number(CliNumber { form }))
}

/// The key that identifies a caller's number in call history, last choices and per-number
/// assignments (the CLI's most specific key). Fails for text that is not a number.
pub fn history_key(number: &str, region: Option<&Region>) -> Result<String, CliError> {
    history_key_if_number(number, region)?.ok_or(CliError::NotANumber)
}

/// [`history_key`], with `Ok(None)` for the "no number" words (`anonymous`, `withheld`, …).
pub fn history_key_if_number(number: &str, region: Option<&Region>) -> Result<Option<String>, CliError> {
    Ok(match parse_cli(number, region)? {
        Cli::Number(n) => Some(n.history_key().into_string()),
        _ => None,
    })
}

/// The key of a called number (a user's DID or internal extension), as the phone system sends it and as
/// the admin writes it: with a country code (`+4930111`) or a short internal extension (`201`).
pub fn called_number_key(called: &str) -> Result<String, CliError> {
    match parse_cli(called, None)? {
        Cli::Number(CliNumber { form: Form::Unqualified { .. } }) => Err(CliError::NeedsCountryCode),
        Cli::Number(n) => Ok(n.history_key().into_string()),
        _ => Err(CliError::NotANumber),
    }
}

fn international(
    number: &str,
    digits: &str,
    region: Option<&Region>,
    extension: Option<String>,
) -> Result<Form, CliError> {
    let too_short = || CliError::TooShort { digits: digits.len() };
    let too_long = || CliError::TooLong { digits: digits.len() };
    let mut parsed = PHONE_NUMBER_UTIL.parse(number, region.map(Region::plan)).map_err(|e| match e {
        ParseError::InvalidCountryCode => CliError::UnknownCountryCode,
        ParseError::TooShortAfterIdd | ParseError::TooShortNsn => too_short(),
        ParseError::TooLongNsn => too_long(),
        ParseError::NotANumber(_) => CliError::NotANumber,
    })?;
    match parsed.is_possible_with_reason() {
        Err(ValidationError::TooShort) => return Err(too_short()),
        Err(ValidationError::TooLong) => return Err(too_long()),
        Err(ValidationError::InvalidCountryCode) => return Err(CliError::UnknownCountryCode),
        // A length between two valid lengths: a range the metadata may not know yet. Still look it up.
        Err(ValidationError::InvalidLength) | Ok(_) => {}
    }
    let e164 = parsed.format_as(PhoneNumberFormat::E164).into_owned();
    let nsn = parsed.get_national_significant_number();
    // Possible lengths are generous (`030 1` reads as +49 0301); a short number must be a valid one.
    if nsn.len() < MIN_TAIL_DIGITS && !parsed.is_valid() {
        return Err(too_short());
    }
    parsed.extension = extension.clone();
    let display = parsed.format_as(PhoneNumberFormat::International).into_owned();
    Ok(Form::International { e164, nsn, extension, display })
}

/// Only digits, a leading `+` and the usual separators may appear in the number part.
fn check_characters(cli: &str, number: &str) -> Result<(), CliError> {
    let start = text::offset_in(cli, number);
    let position = |i: usize| cli[..start + i].chars().count() + 1;
    for (i, c) in number.char_indices() {
        match c {
            '0'..='9' | ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}' => {}
            '+' if number[..i].trim().is_empty() => {}
            '+' => return Err(CliError::MisplacedPlus { position: position(i) }),
            c if c.is_alphabetic() => return Err(CliError::Letter { letter: c, position: position(i) }),
            c => return Err(CliError::Character { character: c, position: position(i) }),
        }
    }
    Ok(())
}

/// The words and placeholders phone systems send instead of a number.
fn no_number(text: &str) -> Option<Cli> {
    let word = text.trim().trim_matches(['"', '\'']).trim().to_lowercase();
    Some(match word.as_str() {
        "" | "unavailable" | "unknown" | "unknown number" | "not available" | "n/a" | "0" | "-" | "o"
        | "out of area" => Cli::Unavailable,
        "anonymous" | "anonym" | "anon" => Cli::Anonymous,
        "withheld" | "private" | "private number" | "restricted" | "blocked" | "p" | "clir" | "unterdrückt" => {
            Cli::Withheld
        }
        _ => return None,
    })
}

impl CliNumber {
    /// E.164 without extension, when the number could be normalised.
    pub fn e164(&self) -> Option<&str> {
        match &self.form {
            Form::International { e164, .. } => Some(e164),
            _ => None,
        }
    }

    /// The extension, digits only.
    pub fn extension(&self) -> Option<&str> {
        match &self.form {
            Form::International { extension, .. } | Form::Unqualified { extension, .. } => extension.as_deref(),
            Form::Internal { .. } => None,
        }
    }

    /// The digits of a short internal extension.
    pub fn internal(&self) -> Option<&str> {
        match &self.form {
            Form::Internal { digits } => Some(digits),
            _ => None,
        }
    }

    /// The number to show: international format when normalised, else its digits.
    pub fn display(&self) -> &str {
        match &self.form {
            Form::International { display, .. } => display,
            Form::Internal { digits } | Form::Unqualified { digits, .. } => digits,
        }
    }

    /// The caller's own key: `x:`/`e:` when normalised, `i:` for an internal extension, else its `t:` tail.
    pub fn history_key(&self) -> LookupKey {
        match &self.form {
            Form::International { e164, extension: Some(ext), .. } => {
                LookupKey::new(KeyKind::Extension, &format!("{e164};{ext}"))
            }
            Form::International { e164, extension: None, .. } => LookupKey::new(KeyKind::Exact, e164),
            Form::Internal { digits } => LookupKey::new(KeyKind::Internal, digits),
            Form::Unqualified { digits, .. } => LookupKey::new(KeyKind::Tail, text::tail(digits).unwrap_or(digits)),
        }
    }

    /// The keys to look up, in order of preference; each hit is as good as its probe's quality.
    pub fn probes(&self) -> Vec<Probe> {
        let probe = |kind, body: &str, quality| Probe { key: LookupKey::new(kind, body), quality };
        let mut out = Vec::with_capacity(12);
        match &self.form {
            Form::International { e164, nsn, extension, .. } => {
                match extension {
                    Some(ext) => {
                        out.push(probe(KeyKind::Extension, &format!("{e164};{ext}"), MatchQuality::Exact));
                        out.push(probe(KeyKind::Exact, e164, MatchQuality::ExtensionDropped));
                        out.push(probe(KeyKind::Base, e164, MatchQuality::TrunkPrefix));
                    }
                    None => {
                        out.push(probe(KeyKind::Exact, e164, MatchQuality::Exact));
                        out.push(probe(KeyKind::Base, e164, MatchQuality::ExtensionDropped));
                    }
                }
                for cut in 1..=MAX_DIRECT_DIAL_DIGITS {
                    if nsn.len() < MIN_COMPANY_PREFIX_DIGITS + cut {
                        break;
                    }
                    out.push(probe(KeyKind::CompanyPrefix, &e164[..e164.len() - cut], MatchQuality::TrunkPrefix));
                }
                out.push(probe(KeyKind::Reading, e164, MatchQuality::OtherReading));
                for tail in text::probe_tails(nsn) {
                    out.push(probe(KeyKind::Tail, tail, MatchQuality::Tail));
                }
            }
            Form::Unqualified { digits, .. } => {
                for tail in text::probe_tails(digits) {
                    out.push(probe(KeyKind::NationalTail, tail, MatchQuality::Tail));
                    out.push(probe(KeyKind::Tail, tail, MatchQuality::Tail));
                }
            }
            Form::Internal { digits } => out.push(probe(KeyKind::Internal, digits, MatchQuality::Internal)),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(code: &str) -> Region {
        Region::parse(code).unwrap()
    }

    fn number(cli: &str, region: Option<&Region>) -> CliNumber {
        match parse_cli(cli, region) {
            Ok(Cli::Number(n)) => n,
            other => panic!("{cli}: {other:?}"),
        }
    }

    fn probe_strings(n: &CliNumber) -> Vec<(String, MatchQuality)> {
        n.probes().into_iter().map(|p| (p.key.into_string(), p.quality)).collect()
    }

    #[test]
    fn german_forms_normalise_to_one_number() {
        let de = region("DE");
        for cli in [
            "+4930123456",
            "030 123456",
            "(030) 12 34 56",
            "+49 (30) 123456",
            "0049 30 123456",
            "sip:+4930123456@pbx.example.org;user=phone",
            "<sip:030123456@10.0.0.1>",
            "tel:+49-30-123456",
        ] {
            let n = number(cli, Some(&de));
            assert_eq!((n.e164(), n.extension(), n.display()), (Some("+4930123456"), None, "+49 30 123456"), "{cli}");
        }
    }

    #[test]
    fn probes_of_a_plain_number_in_order() {
        use MatchQuality::*;
        let n = number("+49 30 1234567", None);
        let want: Vec<(String, MatchQuality)> = [
            ("e:+49301234567", Exact),
            ("b:+49301234567", ExtensionDropped),
            ("p:+4930123456", TrunkPrefix),
            ("p:+493012345", TrunkPrefix),
            ("p:+49301234", TrunkPrefix),
            ("p:+4930123", TrunkPrefix),
            ("r:+49301234567", OtherReading),
            ("t:01234567", Tail),
            ("t:1234567", Tail),
            ("t:234567", Tail),
        ]
        .into_iter()
        .map(|(k, q)| (k.to_string(), q))
        .collect();
        assert_eq!(probe_strings(&n), want);
    }

    #[test]
    fn probes_of_a_number_with_extension() {
        use MatchQuality::*;
        let n = number("tel:+49-30-123456;ext=12", None);
        assert_eq!(n.extension(), Some("12"));
        assert_eq!(
            probe_strings(&n)[..3],
            [
                ("x:+4930123456;12".to_string(), Exact),
                ("e:+4930123456".to_string(), ExtensionDropped),
                ("b:+4930123456".to_string(), TrunkPrefix)
            ]
        );
    }

    #[test]
    fn unqualified_and_internal_numbers() {
        let n = number("030 123456", None);
        assert_eq!(n.e164(), None);
        assert_eq!(
            probe_strings(&n).iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["n:30123456", "t:30123456", "n:123456", "t:123456"]
        );
        let de = region("DE");
        for (cli, r) in [("123", None), ("123", Some(&de)), ("4711", Some(&de)), ("sip:123@pbx", None)] {
            let n = number(cli, r);
            assert_eq!(n.internal(), Some(cli.trim_start_matches("sip:").trim_end_matches("@pbx")), "{cli}");
            assert_eq!(probe_strings(&n), [(format!("i:{}", n.internal().unwrap()), MatchQuality::Internal)]);
        }
    }

    #[test]
    fn history_and_called_number_keys() {
        let de = region("DE");
        assert_eq!(history_key("030 123456", Some(&de)).unwrap(), "e:+4930123456");
        assert_eq!(history_key("+49 30 123456 x7", None).unwrap(), "x:+4930123456;7");
        assert_eq!(history_key("030 123456", None).unwrap(), "t:30123456");
        assert_eq!(history_key("201", Some(&de)).unwrap(), "i:201");
        assert_eq!(history_key("anonymous", Some(&de)), Err(CliError::NotANumber));
        assert_eq!(called_number_key(" +49 30 111 ").unwrap(), "e:+4930111");
        assert_eq!(called_number_key("sip:201@pbx").unwrap(), "i:201");
        assert_eq!(called_number_key("030 1112222"), Err(CliError::NeedsCountryCode));
        assert_eq!(called_number_key("030 111"), Err(CliError::TooShort { digits: 6 }));
        assert_eq!(called_number_key(""), Err(CliError::NotANumber));
    }

    #[test]
    fn unicode_digits_read_as_their_ascii_digits() {
        let de = region("DE");
        for cli in ["０３０ １２３４５６", "+٤٩ ٣٠ ١٢٣٤٥٦", "+۴۹۳۰۱۲۳۴۵۶", "sip:+４９３０１２３４５６@pbx"]
        {
            assert_eq!(number(cli, Some(&de)).e164(), Some("+4930123456"), "{cli}");
        }
        assert_eq!(number("２０１", None).internal(), Some("201"));
        assert_eq!(called_number_key("+４９ ３０ ９０１８２０").unwrap(), "e:+4930901820");
    }

    #[test]
    fn multi_byte_text_is_an_error_not_a_panic() {
        let de = region("DE");
        assert_eq!(parse_cli("ab€", Some(&de)), Err(CliError::Letter { letter: 'a', position: 1 }));
        assert_eq!(parse_cli("12€", Some(&de)), Err(CliError::Character { character: '€', position: 3 }));
        assert_eq!(parse_cli("€", None), Err(CliError::Character { character: '€', position: 1 }));
        assert_eq!(parse_cli("030 ½23456", Some(&de)), Err(CliError::Character { character: '½', position: 5 }));
        assert_eq!(parse_cli("+49 30 １２３４５q", Some(&de)), Err(CliError::Letter { letter: 'q', position: 13 }));
    }

    #[test]
    fn every_no_number_form() {
        for (cli, want) in [
            ("", Cli::Unavailable),
            ("   ", Cli::Unavailable),
            ("unavailable", Cli::Unavailable),
            ("Unknown", Cli::Unavailable),
            ("0", Cli::Unavailable),
            ("-", Cli::Unavailable),
            ("O", Cli::Unavailable),
            ("anonymous", Cli::Anonymous),
            ("Anonymous", Cli::Anonymous),
            ("sip:anonymous@anonymous.invalid", Cli::Anonymous),
            ("\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=1", Cli::Anonymous),
            ("withheld", Cli::Withheld),
            ("Withheld", Cli::Withheld),
            ("private", Cli::Withheld),
            ("Private Number", Cli::Withheld),
            ("restricted", Cli::Withheld),
            ("Restricted", Cli::Withheld),
            ("P", Cli::Withheld),
            ("CLIR", Cli::Withheld),
        ] {
            assert_eq!(parse_cli(cli, Some(&region("DE"))), Ok(want.clone()), "{cli:?}");
            assert_eq!(parse_cli(cli, None), Ok(want), "{cli:?} without region");
        }
    }

    #[test]
    fn invalid_clis_say_what_and_where() {
        let de = region("DE");
        let cases = [
            ("0301q3456", CliError::Letter { letter: 'q', position: 5 }),
            ("+49 30 12345q", CliError::Letter { letter: 'q', position: 13 }),
            ("sip:+4930123z@pbx", CliError::Letter { letter: 'z', position: 13 }),
            ("+49 30 12*45", CliError::Character { character: '*', position: 10 }),
            ("030+123456", CliError::MisplacedPlus { position: 4 }),
            ("+", CliError::NoDigits),
            ("()", CliError::NoDigits),
            ("7", CliError::TooShort { digits: 1 }),
            ("030 1", CliError::TooShort { digits: 4 }),
            ("+49 30", CliError::TooShort { digits: 4 }),
            ("+49 30 1234567890123456", CliError::TooLong { digits: 20 }),
            ("0049301234567890123456", CliError::TooLong { digits: 22 }),
            ("+999 1234567", CliError::UnknownCountryCode),
        ];
        for (cli, want) in cases {
            assert_eq!(parse_cli(cli, Some(&de)), Err(want), "{cli}");
        }
        assert_eq!(CliError::Letter { letter: 'q', position: 5 }.to_string(), "contains letter 'q' at position 5");
        assert_eq!(CliError::TooLong { digits: 19 }.to_string(), "too long (19 digits)");
        assert_eq!(parse_cli("01234", None), Err(CliError::TooShort { digits: 5 }));
    }
}
