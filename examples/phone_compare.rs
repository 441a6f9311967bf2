//! Compares the two libphonenumber ports on tricky inputs and times the parse of a CLI.
//!
//! Run: `cargo run -p contactbridge --example phone_compare` (add `--release` for meaningful timings).
//! `rlibphonenumber` is the production dependency; `phonenumber` is a dev-dependency used only here.
//! The expected results come from the national numbering plans (trunk prefix, international prefix,
//! number lengths), not from either crate.

use std::hint::black_box;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::time::Instant;

use contactbridge::phone::{parse_cli, Region};

/// What a correct parser must produce.
#[derive(Clone, Copy)]
enum Expect {
    /// E.164, with `;ext=N` appended when the input carries an extension.
    Number(&'static str),
    /// Not a usable number: the parser must fail or report the number as invalid.
    Invalid,
}

/// (input, default region or "", expected, why the case is tricky)
const CASES: &[(&str, &str, Expect, &str)] = &[
    ("+4930123456", "", Expect::Number("+4930123456"), "plain E.164"),
    ("030 123456", "DE", Expect::Number("+4930123456"), "DE trunk prefix 0"),
    ("(030) 12 34 56", "DE", Expect::Number("+4930123456"), "parentheses, grouped pairs"),
    ("+49 (30) 123456", "DE", Expect::Number("+4930123456"), "area code in parentheses"),
    ("0049 30 123456", "DE", Expect::Number("+4930123456"), "IDD 00 from DE"),
    ("+49 (0)30 123456", "DE", Expect::Number("+4930123456"), "(0) trunk prefix after +49"),
    ("+49 30 1234-0", "", Expect::Number("+493012340"), "company main number -0"),
    ("030/1234-567", "DE", Expect::Number("+49301234567"), "slash and dash"),
    ("0171 1234567", "DE", Expect::Number("+491711234567"), "DE mobile"),
    ("030 123456 x12", "DE", Expect::Number("+4930123456;ext=12"), "extension x12"),
    ("+49 30 123456 ext. 12", "", Expect::Number("+4930123456;ext=12"), "extension ext. 12"),
    ("tel:+49-30-123456;ext=12", "", Expect::Number("+4930123456;ext=12"), "RFC 3966 URI with ext"),
    ("0033 1 42 68 53 00", "DE", Expect::Number("+33142685300"), "FR number dialled from DE"),
    ("01 42 68 53 00", "FR", Expect::Number("+33142685300"), "FR national"),
    ("+33 (0)1 42 68 53 00", "", Expect::Number("+33142685300"), "FR (0) after +33"),
    ("06 12 34 56 78", "FR", Expect::Number("+33612345678"), "FR mobile"),
    ("020 7031 3000", "GB", Expect::Number("+442070313000"), "GB London"),
    ("+44 (0)20 7031 3000", "", Expect::Number("+442070313000"), "GB (0) after +44"),
    ("07911 123456", "GB", Expect::Number("+447911123456"), "GB mobile"),
    ("00 44 20 7031 3000", "CH", Expect::Number("+442070313000"), "IDD 00 from CH"),
    ("044 668 18 00", "CH", Expect::Number("+41446681800"), "CH national"),
    ("+41 (0)44 668 18 00", "", Expect::Number("+41446681800"), "CH (0) after +41"),
    ("01 58858-0", "AT", Expect::Number("+431588580"), "AT Vienna, switchboard -0"),
    ("0664 123 4567", "AT", Expect::Number("+436641234567"), "AT mobile"),
    ("+43 664 1234567", "", Expect::Number("+436641234567"), "AT mobile E.164"),
    ("+39 06 1234 5678", "", Expect::Number("+390612345678"), "IT keeps the leading 0"),
    ("02 1234 5678", "IT", Expect::Number("+390212345678"), "IT national with leading 0"),
    ("+1 650 253 0000", "", Expect::Number("+16502530000"), "NANP with spaces"),
    ("+1 650-253-0000", "", Expect::Number("+16502530000"), "NANP spaces and dashes"),
    ("(650) 253-0000", "US", Expect::Number("+16502530000"), "US national"),
    ("1-650-253-0000", "US", Expect::Number("+16502530000"), "US trunk prefix 1"),
    ("650.253.0000 ext. 123", "US", Expect::Number("+16502530000;ext=123"), "US dots + ext."),
    ("011 49 30 123456", "US", Expect::Number("+4930123456"), "IDD 011 from US"),
    ("011 44 20 7031 3000", "US", Expect::Number("+442070313000"), "IDD 011 to GB"),
    ("tel:+1-418-656-9254;ext=102", "", Expect::Number("+14186569254;ext=102"), "RFC 6350 sample"),
    ("1-800-FLOWERS", "US", Expect::Number("+18003569377"), "vanity letters"),
    ("(905) 555-1234", "CA", Expect::Number("+19055551234"), "CA national (Outlook sample)"),
    ("8 800 555-35-35", "RU", Expect::Number("+78005553535"), "RU trunk prefix 8, toll-free"),
    ("8 (495) 123-45-67", "RU", Expect::Number("+74951234567"), "RU Moscow with 8"),
    ("+7 800 555 35 35", "", Expect::Number("+78005553535"), "RU toll-free E.164"),
    ("810 49 30 123456", "RU", Expect::Number("+4930123456"), "IDD 810 from RU"),
    ("+330631966543", "", Expect::Number("+33631966543"), "FR trunk 0 kept after +33"),
    ("+49 030 123456", "", Expect::Number("+4930123456"), "DE trunk 0 kept after +49"),
    ("+81 090-1234-5678", "", Expect::Number("+819012345678"), "JP trunk 0 kept after +81"),
    ("+687 11.11.11", "", Expect::Number("+687111111"), "New Caledonia, dots"),
    ("3912312312", "IT", Expect::Number("+393912312312"), "IT mobile starting with 39"),
    ("+3367a829916", "", Expect::Invalid, "stray letter in a FR mobile"),
    ("030 12", "DE", Expect::Invalid, "too short"),
    ("+49 30 12345678901234567", "", Expect::Invalid, "too long"),
    ("+999 1234567", "", Expect::Invalid, "unassigned country code"),
];

/// A parse outcome reduced to something comparable.
#[derive(Debug)]
enum Outcome {
    Number { e164: String, valid: bool },
    Error(String),
}

impl Outcome {
    fn matches(&self, expect: Expect) -> bool {
        match (self, expect) {
            (Outcome::Number { e164, .. }, Expect::Number(want)) => e164 == want,
            (Outcome::Number { valid, .. }, Expect::Invalid) => !valid,
            (Outcome::Error(_), Expect::Invalid) => true,
            (Outcome::Error(_), Expect::Number(_)) => false,
        }
    }

    fn show(&self) -> String {
        match self {
            Outcome::Number { e164, valid: true } => e164.clone(),
            Outcome::Number { e164, valid: false } => format!("{e164} (invalid)"),
            Outcome::Error(e) => format!("error: {e}"),
        }
    }
}

fn with_ext(e164: String, ext: Option<String>) -> String {
    match ext {
        Some(ext) if !ext.is_empty() => format!("{e164};ext={ext}"),
        _ => e164,
    }
}

fn run_rlib(input: &str, region: &str) -> Outcome {
    use rlibphonenumber::{enums::Region as R, PhoneNumberFormat, PHONE_NUMBER_UTIL};
    let region = if region.is_empty() { None } else { Some(R::from_code(region).expect("region")) };
    match catch_unwind(AssertUnwindSafe(|| PHONE_NUMBER_UTIL.parse(input, region))) {
        Err(_) => Outcome::Error("panic".into()),
        Ok(Err(e)) => Outcome::Error(e.to_string()),
        Ok(Ok(n)) => Outcome::Number {
            e164: with_ext(n.format_as(PhoneNumberFormat::E164).into_owned(), n.extension.clone()),
            valid: n.is_valid(),
        },
    }
}

fn run_pn(input: &str, region: &str) -> Outcome {
    use phonenumber::{country::Id, Mode};
    let region = if region.is_empty() { None } else { Some(Id::from_str(region).expect("region")) };
    match catch_unwind(AssertUnwindSafe(|| phonenumber::parse(region, input))) {
        Err(_) => Outcome::Error("panic".into()),
        Ok(Err(e)) => Outcome::Error(e.to_string()),
        Ok(Ok(n)) => Outcome::Number {
            e164: with_ext(n.format().mode(Mode::E164).to_string(), n.extension().map(|x| x.to_string())),
            valid: n.is_valid(),
        },
    }
}

/// Mean time of one call of `f` over the whole table, repeated `rounds` times.
fn time_per_call(rounds: usize, mut f: impl FnMut(&str, &str)) -> f64 {
    let start = Instant::now();
    for _ in 0..rounds {
        for (input, region, _, _) in CASES {
            f(input, region);
        }
    }
    start.elapsed().as_secs_f64() * 1e6 / (rounds * CASES.len()) as f64
}

fn main() {
    let (mut ok_r, mut ok_p) = (0, 0);
    println!("{:<30} {:<3} {:<22} {:<30} {:<30}", "input", "rg", "expected", "rlibphonenumber", "phonenumber");
    for (input, region, expect, why) in CASES {
        let (r, p) = (run_rlib(input, region), run_pn(input, region));
        let (hit_r, hit_p) = (r.matches(*expect), p.matches(*expect));
        ok_r += usize::from(hit_r);
        ok_p += usize::from(hit_p);
        let want = match expect {
            Expect::Number(n) => *n,
            Expect::Invalid => "INVALID",
        };
        let mark = |hit: bool| if hit { "ok " } else { "XX " };
        println!(
            "{input:<30} {region:<3} {want:<22} {}{:<27} {}{:<27} {why}",
            mark(hit_r),
            r.show(),
            mark(hit_p),
            p.show()
        );
    }
    let n = CASES.len();
    println!("\nright: rlibphonenumber {ok_r}/{n}, phonenumber {ok_p}/{n}");

    // Warm both metadata stores before timing.
    let _ = (run_rlib("+4930123456", ""), run_pn("+4930123456", ""));
    let rounds = 200;
    let t_r = time_per_call(rounds, |i, r| {
        black_box(run_rlib(i, r));
    });
    let t_p = time_per_call(rounds, |i, r| {
        black_box(run_pn(i, r));
    });
    let de = Region::from_str("DE").expect("DE");
    let t_cli = time_per_call(rounds, |i, _| {
        if let Ok(contactbridge::phone::Cli::Number(n)) = parse_cli(i, Some(&de)) {
            black_box(n.probes());
        }
    });
    println!("mean parse+format per input: rlibphonenumber {t_r:.2} µs, phonenumber {t_p:.2} µs");
    println!("mean contactbridge parse_cli + probes (region DE): {t_cli:.2} µs");
}
