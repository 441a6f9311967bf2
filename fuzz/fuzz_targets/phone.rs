//! Stored-number and CLI parsing: the first byte picks a region (or none), the
//! rest is the text, run through every entry point that takes a number from
//! outside (a contact's stored number, an incoming CLI, a called number).
#![no_main]

use contactbridge::phone::{
    called_number_key, history_key_if_number, keys_for_stored, keys_for_stored_with, parse_cli, Cli, Region,
    StoredHints,
};
use libfuzzer_sys::fuzz_target;

const REGIONS: &[&str] = &["DE", "US", "GB", "FR", "CH", "AT", "IT", "JP", "IN", "BR", "AU", "NL"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let region = REGIONS.get(pick as usize % (REGIONS.len() + 1)).map(|r| Region::parse(r).unwrap());
    let region = region.as_ref();

    let stored = keys_for_stored(text, region);
    let _ = stored.display(text);
    // A source that keeps the extension apart: the text's second half is that field.
    let (number, extension) =
        text.split_at(text.char_indices().map(|(i, _)| i).nth(text.chars().count() / 2).unwrap_or(0));
    let _ =
        keys_for_stored_with(number, region, StoredHints { extension: Some(extension), company_main: pick & 1 == 1 });

    if let Ok(Cli::Number(n)) = parse_cli(text, region) {
        let _ = n.probes();
        let _ = n.history_key();
        let _ = (n.e164(), n.extension(), n.internal(), n.display());
    }
    let _ = history_key_if_number(text, region);
    let _ = called_number_key(text);
    let _ = Region::parse(text);
});
