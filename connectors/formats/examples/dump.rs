//! Prints what the parsers make of .vcf and .ics files.
//!
//! `cargo run -p contactbridge-formats --example dump -- [--at 2012-08-01T00:00:00Z] FILE...`
//! (events are expanded 30 days back and 90 ahead of `--at`, default now).

use chrono::{DateTime, Utc};
use contactbridge_connector::PhotoRef;
use contactbridge_formats::{parse_ics_file, parse_vcard_file, Window};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut at = Utc::now();
    if let Some(pos) = args.iter().position(|a| a == "--at") {
        let value = args.get(pos + 1).cloned().unwrap_or_default();
        at = DateTime::parse_from_rfc3339(&value).map(Into::into).unwrap_or_else(|e| panic!("--at {value:?}: {e}"));
        args.drain(pos..(pos + 2).min(args.len()));
    }
    let window = Window::default_at(at);
    for path in args {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        println!("== {path}");
        if path.ends_with(".ics") {
            for event in parse_ics_file(&bytes, window) {
                println!("{event:#?}");
            }
        } else {
            for contact in parse_vcard_file(&bytes) {
                match contact {
                    Ok(mut c) => {
                        if let Some(PhotoRef::Inline { base64, .. }) = c.photo.as_mut() {
                            base64.truncate(16);
                            base64.push('…');
                        }
                        println!("{c:#?}")
                    }
                    Err(e) => println!("rejected: {e}"),
                }
            }
        }
    }
}
