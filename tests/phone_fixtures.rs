//! Stored numbers and CLIs meet on the same keys: the users.md formats, foreign plans, extensions, tails,
//! company main numbers, internal extensions, and every TEL of the shared vCard fixtures.

use std::collections::BTreeSet;
use std::path::PathBuf;

use contactbridge::phone::{keys_for_stored, parse_cli, Cli, CliError, MatchQuality, Region};

fn region(code: &str) -> Option<Region> {
    (!code.is_empty()).then(|| Region::parse(code).unwrap())
}

/// The quality of the best probe of `cli` that hits a key of the stored number, as the resolver finds it.
fn best_match(stored: &str, stored_region: &str, cli: &str, cli_region: &str) -> Option<MatchQuality> {
    let keys = keys_for_stored(stored, region(stored_region).as_ref()).keys;
    let Ok(Cli::Number(n)) = parse_cli(cli, region(cli_region).as_ref()) else { panic!("{cli:?} is not a number") };
    n.probes().into_iter().find(|p| keys.contains(&p.key)).map(|p| p.quality)
}

fn stored_keys(raw: &str, region_code: &str) -> Vec<String> {
    keys_for_stored(raw, region(region_code).as_ref()).keys.into_iter().map(|k| k.into_string()).collect()
}

#[test]
fn users_md_formats_match_exactly_for_de() {
    let forms = ["+4930123456", "030 123456", "(030) 12 34 56", "+49 (30) 123456", "0049 30 123456"];
    for stored in forms {
        assert!(stored_keys(stored, "DE").contains(&"e:+4930123456".to_string()), "{stored}");
        for cli in forms {
            assert_eq!(best_match(stored, "DE", cli, "DE"), Some(MatchQuality::Exact), "stored {stored} / CLI {cli}");
        }
    }
}

#[test]
fn foreign_numbering_plans() {
    // (stored, stored region, CLI as the network sends it, user region, E.164)
    let cases = [
        ("01 42 68 53 00", "FR", "+33142685300", "DE", "+33142685300"),
        ("+33 (0)1 42 68 53 00", "", "0033142685300", "DE", "+33142685300"),
        ("06 12 34 56 78", "FR", "+33 6 12 34 56 78", "FR", "+33612345678"),
        ("020 7031 3000", "GB", "+442070313000", "GB", "+442070313000"),
        ("07911 123456", "GB", "07911123456", "GB", "+447911123456"),
        ("(650) 253-0000", "US", "+1 650 253 0000", "US", "+16502530000"),
        ("1-650-253-0000", "US", "6502530000", "US", "+16502530000"),
        ("044 668 18 00", "CH", "+41446681800", "CH", "+41446681800"),
        ("+41 (0)44 668 18 00", "", "0041 44 668 18 00", "DE", "+41446681800"),
        ("01 58858-0", "AT", "+431588580", "AT", "+431588580"),
        ("0664 123 4567", "AT", "+43 664 1234567", "DE", "+436641234567"),
        ("8 800 555-35-35", "RU", "+78005553535", "RU", "+78005553535"),
        ("8 (495) 123-45-67", "RU", "84951234567", "RU", "+74951234567"),
        ("+7 800 555 35 35", "", "88005553535", "RU", "+78005553535"),
        ("+39 06 1234 5678", "", "0612345678", "IT", "+390612345678"),
    ];
    for (stored, sr, cli, cr, e164) in cases {
        assert!(stored_keys(stored, sr).contains(&format!("e:{e164}")), "{stored}");
        let Ok(Cli::Number(n)) = parse_cli(cli, region(cr).as_ref()) else { panic!("{cli}") };
        assert_eq!(n.e164(), Some(e164), "{cli}");
        assert_eq!(best_match(stored, sr, cli, cr), Some(MatchQuality::Exact), "{stored} / {cli}");
    }
}

#[test]
fn international_prefixes_00_011_810() {
    for (cli, r) in
        [("0049 30 123456", "DE"), ("00 49 30 123456", "CH"), ("011 49 30 123456", "US"), ("810 49 30 123456", "RU")]
    {
        assert_eq!(best_match("+49 30 123456", "", cli, r), Some(MatchQuality::Exact), "{cli} from {r}");
    }
    assert!(stored_keys("011 44 20 7031 3000", "US").contains(&"e:+442070313000".to_string()));
}

#[test]
fn extensions_in_every_form() {
    let forms = [
        "+49 30 123456 x12",
        "+49 30 123456x12",
        "030 123456 ext. 12",
        "030 123456 ext 12",
        "030 123456 extension 12",
        "+49 30 123456;ext=12",
        "tel:+49-30-123456;ext=12",
        "030 123456#12",
    ];
    for stored in forms {
        assert_eq!(stored_keys(stored, "DE")[..2], ["x:+4930123456;12", "b:+4930123456"], "{stored}");
        assert_eq!(best_match(stored, "DE", "sip:+4930123456;ext=12@pbx", "DE"), Some(MatchQuality::Exact));
        // The caller's PBX drops the extension, or the stored number has none.
        assert_eq!(best_match(stored, "DE", "+4930123456", "DE"), Some(MatchQuality::ExtensionDropped));
        assert_eq!(best_match("+4930123456", "DE", stored, "DE"), Some(MatchQuality::ExtensionDropped));
        // Another extension at the same number: the same company.
        assert_eq!(best_match(stored, "DE", "+4930123456 x13", "DE"), Some(MatchQuality::TrunkPrefix));
    }
}

#[test]
fn tail_match_when_stored_number_has_no_country_and_no_region() {
    for stored in ["030 123456", "(030) 12 34 56", "0049 30 123456", "30123456"] {
        assert_eq!(stored_keys(stored, ""), ["t:30123456"], "{stored}");
        assert_eq!(best_match(stored, "", "+4930123456", "DE"), Some(MatchQuality::Tail), "{stored}");
    }
    // A CLI without region meets normalised stored numbers by their national tail.
    assert_eq!(best_match("+49 30 123456", "", "030123456", ""), Some(MatchQuality::Tail));
    // A stored number with fewer than 8 digits matches by all of its digits.
    assert_eq!(best_match("0301234", "", "+49301234", "DE"), Some(MatchQuality::Tail));
    // Different last digits never match.
    assert_eq!(best_match("030 123457", "", "+4930123456", "DE"), None);
    // A normalised caller does not meet normalised numbers of other countries by their tail.
    assert_eq!(best_match("+33 1 30 12 34 56", "", "+49 30 12 34 56", ""), None);
}

#[test]
fn direct_dial_matches_company_main_number() {
    for main in ["+49 30 1234 0", "+49 30 1234-0", "030 1234-0"] {
        for cli in ["+49 30 1234 567", "+49 30 1234 5", "030 1234 5678", "+49301234 12"] {
            assert_eq!(best_match(main, "DE", cli, "DE"), Some(MatchQuality::TrunkPrefix), "{main} / {cli}");
        }
        assert_eq!(best_match(main, "DE", "+49 30 12340", "DE"), Some(MatchQuality::Exact));
        // Five extra digits is beyond a direct-dial range; another company is not a match.
        assert_eq!(best_match(main, "DE", "+49 30 1234 56789", "DE"), None);
        assert_eq!(best_match(main, "DE", "+49 30 1235 567", "DE"), None);
    }
    // A number that merely ends in 0 is not a switchboard.
    assert_eq!(best_match("+49 30 12340", "DE", "+49 30 1234 567", "DE"), None);
    assert_eq!(best_match("01 58858-0", "AT", "+43 1 58858 123", "AT"), Some(MatchQuality::TrunkPrefix));
}

#[test]
fn internal_extensions() {
    assert_eq!(stored_keys("123", ""), ["i:123"]);
    assert_eq!(stored_keys("4711", "DE"), ["i:4711"]);
    assert_eq!(best_match("123", "", "123", ""), Some(MatchQuality::Internal));
    assert_eq!(best_match("123", "", "sip:123@pbx.local", "DE"), Some(MatchQuality::Internal));
    assert_eq!(best_match("4711", "DE", "4712", "DE"), None);
}

#[test]
fn every_withheld_form() {
    let de = region("DE");
    for (cli, want) in [
        ("", Cli::Unavailable),
        ("unavailable", Cli::Unavailable),
        ("unknown", Cli::Unavailable),
        ("0", Cli::Unavailable),
        ("-", Cli::Unavailable),
        ("anonymous", Cli::Anonymous),
        ("Anonymous", Cli::Anonymous),
        ("sip:anonymous@anonymous.invalid", Cli::Anonymous),
        ("<sip:anonymous@anonymous.invalid>", Cli::Anonymous),
        ("withheld", Cli::Withheld),
        ("private", Cli::Withheld),
        ("restricted", Cli::Withheld),
        ("Restricted", Cli::Withheld),
    ] {
        assert_eq!(parse_cli(cli, de.as_ref()), Ok(want), "{cli:?}");
    }
}

#[test]
fn invalid_clis_give_the_error_the_api_returns() {
    let de = region("DE");
    for (cli, want, message) in [
        ("0301q3456", CliError::Letter { letter: 'q', position: 5 }, "contains letter 'q' at position 5"),
        ("+49 30 1234567890123456", CliError::TooLong { digits: 20 }, "too long (20 digits)"),
        ("5", CliError::TooShort { digits: 1 }, "too short (1 digits)"),
        ("+49 30", CliError::TooShort { digits: 4 }, "too short (4 digits)"),
        ("+999 1234567", CliError::UnknownCountryCode, "no country has the calling code this number starts with"),
        (
            "030!123456",
            CliError::Character { character: '!', position: 4 },
            "contains '!' at position 4, which has no place in a phone number",
        ),
    ] {
        let err = parse_cli(cli, de.as_ref()).unwrap_err();
        assert_eq!((&err, err.to_string().as_str()), (&want, message), "{cli}");
    }
}

/// Every TEL of `shared/fixtures/vcard`, by hand: (file, value as written, region the sample implies,
/// keys, a CLI for the number as a phone system would send it, the CLI's region, the match quality).
/// The John Doe samples are New York (US) cards; the RFC 6350 sample is Québec (CA); the Android sample
/// gives no country, so its numbers are read without region.
type FixtureTel =
    (&'static str, &'static str, &'static str, &'static [&'static str], &'static str, &'static str, MatchQuality);

const FIXTURE_TELS: &[FixtureTel] = {
    use MatchQuality::*;
    &[
        ("John_Doe_ANDROID.vcf", "123456789", "", &["t:23456789"], "+4923456789", "DE", Tail),
        ("John_Doe_ANDROID.vcf", "123456", "", &["i:123456", "t:123456"], "123456", "", Internal),
        ("John_Doe_ANDROID.vcf", "234567", "", &["i:234567", "t:234567"], "234567", "DE", Internal),
        ("John_Doe_ANDROID.vcf", "3456789", "", &["t:3456789"], "+4313456789", "AT", Tail),
        ("John_Doe_ANDROID.vcf", "45678901", "", &["t:45678901"], "030 45678901", "DE", Tail),
        ("John_Doe_ANDROID.vcf", "55556666", "", &["t:55556666"], "55556666", "", Tail),
        (
            "John_Doe_EVOLUTION.vcf",
            "905-666-1234",
            "US",
            &["e:+19056661234", "n:56661234"],
            "+19056661234",
            "DE",
            Exact,
        ),
        ("John_Doe_EVOLUTION.vcf", "905-555-1234", "US", &["e:+19055551234", "n:55551234"], "9055551234", "US", Exact),
        ("John_Doe_GMAIL.vcf", "905-555-1234", "US", &["e:+19055551234", "n:55551234"], "1 905 555 1234", "US", Exact),
        ("John_Doe_GMAIL.vcf", "905-666-1234", "US", &["e:+19056661234", "n:56661234"], "0019056661234", "DE", Exact),
        ("John_Doe_IPHONE.vcf", "905-555-1234", "US", &["e:+19055551234", "n:55551234"], "+1 905-555-1234", "", Exact),
        ("John_Doe_IPHONE.vcf", "905-666-1234", "US", &["e:+19056661234", "n:56661234"], "+19056661234", "", Exact),
        ("John_Doe_IPHONE.vcf", "905-777-1234", "US", &["e:+19057771234", "n:57771234"], "+19057771234", "", Exact),
        ("John_Doe_IPHONE.vcf", "905-888-1234", "US", &["e:+19058881234", "n:58881234"], "+19058881234", "", Exact),
        ("John_Doe_IPHONE.vcf", "905-999-1234", "US", &["e:+19059991234", "n:59991234"], "+19059991234", "", Exact),
        ("John_Doe_IPHONE.vcf", "905-111-1234", "US", &["e:+19051111234", "n:51111234"], "+19051111234", "", Exact),
        ("John_Doe_IPHONE.vcf", "905-222-1234", "US", &["e:+19052221234", "n:52221234"], "+19052221234", "", Exact),
        (
            "John_Doe_MS_OUTLOOK.vcf",
            "(905) 555-1234",
            "US",
            &["e:+19055551234", "n:55551234"],
            "+19055551234",
            "",
            Exact,
        ),
        (
            "John_Doe_MS_OUTLOOK.vcf",
            "(905) 666-1234",
            "US",
            &["e:+19056661234", "n:56661234"],
            "+19056661234",
            "",
            Exact,
        ),
        ("outlook-2007.vcf", "(111) 555-1111", "US", &["e:+11115551111", "n:15551111"], "+11115551111", "", Exact),
        ("outlook-2007.vcf", "(111) 555-2222", "US", &["e:+11115552222", "n:15552222"], "+11115552222", "", Exact),
        ("outlook-2007.vcf", "(111) 555-4444", "US", &["e:+11115554444", "n:15554444"], "+11115554444", "", Exact),
        ("outlook-2007.vcf", "(111) 555-3333", "US", &["e:+11115553333", "n:15553333"], "+11115553333", "", Exact),
        (
            "rfc6350-example.vcf",
            "tel:+1-418-656-9254;ext=102",
            "CA",
            &["x:+14186569254;102", "b:+14186569254", "n:86569254"],
            "+14186569254",
            "CA",
            ExtensionDropped,
        ),
        (
            "rfc6350-example.vcf",
            "tel:+1-418-262-6501",
            "CA",
            &["e:+14182626501", "n:82626501"],
            "4182626501",
            "CA",
            Exact,
        ),
    ]
};

#[test]
fn every_fixture_tel_resolves_to_the_expected_keys() {
    for (file, raw, r, keys, cli, cli_region, quality) in FIXTURE_TELS {
        assert_eq!(stored_keys(raw, r), *keys, "{file}: {raw}");
        assert_eq!(best_match(raw, r, cli, cli_region), Some(*quality), "{file}: {raw} called by {cli}");
    }
    // Read with a region, the bare Android numbers stay internal extensions or become local numbers.
    assert_eq!(stored_keys("123456", "US"), ["i:123456", "t:123456"]);
}

/// The table above covers every TEL property (unfolded, any group prefix) in the fixture files.
#[test]
fn fixture_table_covers_every_tel_in_the_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/vcard");
    let dir = if dir.exists() { dir } else { PathBuf::from("/work/shared/fixtures/vcard") };
    let mut in_files = BTreeSet::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("fixtures at {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "vcf") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap().replace("\r\n ", "").replace("\n ", "");
        for line in text.lines() {
            let name_end = line.find([';', ':']).unwrap_or(line.len());
            let name = line[..name_end].rsplit('.').next().unwrap_or("");
            if !name.eq_ignore_ascii_case("TEL") {
                continue;
            }
            let value = value_of(line);
            in_files.insert((path.file_name().unwrap().to_string_lossy().into_owned(), value.to_string()));
        }
    }
    let in_table: BTreeSet<(String, String)> =
        FIXTURE_TELS.iter().map(|(f, raw, ..)| (f.to_string(), raw.to_string())).collect();
    assert_eq!(in_files, in_table);
}

/// The value of a content line: after the first `:` outside a quoted parameter value.
fn value_of(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => return line[i + 1..].trim(),
            _ => {}
        }
    }
    ""
}
