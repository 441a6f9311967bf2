//! Phone numbers → lookup keys: every stored number and every incoming CLI become the same keys.
//!
//! Parsing and formatting use `rlibphonenumber` (a port of Google's libphonenumber whose metadata is
//! compiled into the binary and loaded once per process). Everything here is a pure function.
//!
//! # Keying rules
//!
//! | key                  | made from a stored number…                                    | probed by a CLI…                    |
//! |----------------------|---------------------------------------------------------------|-------------------------------------|
//! | `e:+4930123456`      | that normalises to E.164 and has no extension                 | with that E.164 (no ext: Exact; with ext: ExtensionDropped) |
//! | `x:+4930123456;12`   | that normalises and has an extension                          | with the same E.164 and extension (Exact) |
//! | `b:+4930123456`      | that normalises and has an extension (its base number)        | without extension (ExtensionDropped), with another extension (TrunkPrefix) |
//! | `p:+49301234`        | that is a company main number: written with a lone `0` after a separator (`+49 30 1234-0`, `030 1234 0`) or marked main; the key is the E.164 minus that `0` | whose E.164 shortened by 1..=4 digits equals it (TrunkPrefix) |
//! | `r:+12122000003`     | that has a second reading (below): its E.164 in that reading; also the first reading's E.164 instead of its `e:`/`x:`/`b:`/`p:` keys when the format points elsewhere and both readings are valid | with that E.164 (OtherReading) |
//! | `n:30123456`         | that normalises: last 8 NSN digits (all if 6–7)               | that could not be normalised (Tail) |
//! | `t:30123456`         | that could not be normalised (no `+`, no region): last 8 digits, leading zeros dropped (all if 6–7) | any 7+-digit CLI: its last 8, 7 and 6 digits (Tail) |
//! | `i:123`              | of 2–6 digits, no `+`, not starting with `0` (region or not)  | of 2–6 digits, no `+`, not starting with `0` (Internal) |
//!
//! Extensions are recognised at the end of a number after `;ext=`, `ext`, `ext.`, `extn`, `extension`,
//! `x`, `#` or `,` (DTMF pause), with 1–10 digits; `tel:`, `sip:` and `sips:` URIs are unwrapped.
//! A tail key never carries the extension.
//!
//! # Second readings
//!
//! A stored number written without `+` is read with the user's region first. It gets a second reading
//! ([`SecondReading`]), found with [`MatchQuality::OtherReading`] — below Exact, ExtensionDropped and
//! TrunkPrefix, above Tail — when:
//!
//! - **another country's national format**: the user's region is outside +1 and writes national numbers
//!   with a trunk prefix (`0` in DE, GB, FR, CH, AT; `8` in RU), and the number is written the North
//!   American way: groups of 3, 3 and 4 digits, the first two starting with 2–9, an optional leading
//!   `1` (`(212) 200-0003`, `212.200.0005`, `1-212-200-0003`), valid as a +1 number. If the region's own
//!   reading (Solingen, `+49 212 2000003`) is valid too, it is kept only as a reading: a call from the
//!   real Solingen number finds the card as OtherReading, never Exact, and a contact stored as
//!   `0212 2000003` shadows it. Regions without a trunk prefix (IT) write their own numbers 3-3-4, so
//!   no second reading there.
//! - **international dialling form**: the region's reading is impossible (not a valid number) and the
//!   digits start with a common exit code other than the region's own — `0011`, `011`, `810`, `010`,
//!   `00`, longest first — followed by a valid international number (`00-1-212-555-7777` for a US
//!   user, `011 44 20 7946 0958` for a German one). The region's own exit code (`011` in the US, `00`
//!   in Europe) is its first reading, exact as before.
//!
//! Only valid numbers are second readings, numbers with more than 19 digits are not read twice, and a
//! resolver keeps only the best quality that matched ([`crate::resolve`]), so a second reading never
//! shadows a match of the number as the region reads it. Such a number is shown in its second reading.
//! Records indexed by an older build get their `r:` keys when they are next indexed (a change at the
//! source, or a full sync).

mod cli;
mod key;
mod reading;
mod region;
mod stored;
mod text;

pub use cli::{
    called_number_key, history_key, history_key_if_number, parse_cli, Cli, CliError, CliNumber, MatchQuality, Probe,
};
pub use key::{KeyKind, LookupKey};
pub use reading::SecondReading;
pub use region::{Region, RegionError};
pub use stored::{keys_for_stored, keys_for_stored_with, StoredHints, StoredKeys};

/// Loads the numbering-plan metadata now (a few milliseconds) instead of on the first lookup.
pub fn warm_up() {
    std::sync::LazyLock::force(&rlibphonenumber::PHONE_NUMBER_UTIL);
}

/// Tail keys hold at most this many trailing digits.
pub const TAIL_DIGITS: usize = 8;
/// Tail keys need at least this many digits.
pub const MIN_TAIL_DIGITS: usize = 6;
/// A CLI is probed against company main numbers with its E.164 shortened by 1..=this many digits.
pub const MAX_DIRECT_DIAL_DIGITS: usize = 4;
/// A company prefix (`p:` key) keeps at least this many national digits.
pub const MIN_COMPANY_PREFIX_DIGITS: usize = 5;
