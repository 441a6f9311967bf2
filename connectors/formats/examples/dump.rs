//! Prints what the parsers make of files: `cargo run -p contactbridge-formats --example dump -- FILE...`.
fn main() {
    let window = contactbridge_formats::Window::around(
        chrono::DateTime::parse_from_rfc3339("2012-08-01T00:00:00Z").unwrap().into(),
        60,
        30,
    );
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).expect("readable file");
        println!("== {path}");
        if path.ends_with(".vcf") {
            for c in contactbridge_formats::parse_vcard_file(&bytes) {
                match c {
                    Ok(mut c) => {
                        if let Some(contactbridge_connector::PhotoRef::Inline { base64, .. }) = c.photo.as_mut() {
                            base64.truncate(10);
                        }
                        println!("{c:#?}")
                    }
                    Err(e) => println!("ERR {e}"),
                }
            }
        } else {
            for e in contactbridge_formats::parse_ics_file(&bytes, window) {
                println!("{e:#?}");
            }
        }
    }
}
