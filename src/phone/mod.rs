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
//! | `n:30123456`         | that normalises: last 8 NSN digits (all if 6–7)               | that could not be normalised (Tail) |
//! | `t:30123456`         | that could not be normalised (no `+`, no region): last 8 digits, leading zeros dropped (all if 6–7) | any 7+-digit CLI: its last 8, 7 and 6 digits (Tail) |
//! | `i:123`              | of 2–6 digits, no `+`, not starting with `0` (region or not)  | of 2–6 digits, no `+`, not starting with `0` (Internal) |
//!
//! Extensions are recognised at the end of a number after `;ext=`, `ext`, `ext.`, `extn`, `extension`,
//! `x`, `#` or `,` (DTMF pause), with 1–10 digits; `tel:`, `sip:` and `sips:` URIs are unwrapped.
//! A tail key never carries the extension.

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
