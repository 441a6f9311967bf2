//! vCard parsing: any bytes as a .vcf file, as one CardDAV resource, and (when
//! they are text) through the CATEGORIES write-back.
#![no_main]

use contactbridge_connector::RecordId;
use contactbridge_formats::{add_vcard_category, parse_vcard, parse_vcard_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_vcard_file(data);
    let _ = parse_vcard(RecordId::new("fuzz"), Some("etag".into()), data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(written) = add_vcard_category(text, "vip") {
            // What the bridge writes back must read again.
            let _ = parse_vcard_file(written.as_bytes());
        }
    }
});
