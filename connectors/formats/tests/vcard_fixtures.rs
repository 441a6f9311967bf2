//! Every vCard fixture (real exports by Android, Evolution, Gmail, iPhone,
//! Outlook, and RFC 6350's example), with what a person reads in the file.

use contactbridge_connector::{Contact, PhoneKind, PhoneKind::*, PhotoRef, RecordId};
use contactbridge_formats::{parse_vcard, parse_vcard_file, MAX_INLINE_PHOTO};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture exists")
}

fn contacts(name: &str) -> Vec<Contact> {
    parse_vcard_file(&fixture(name)).into_iter().map(|r| r.expect("every fixture card parses")).collect()
}

fn phones(c: &Contact) -> Vec<(&str, PhoneKind)> {
    c.phones.iter().map(|p| (p.raw.as_str(), p.kind)).collect()
}

/// The base64 payload of the first PHOTO in a file, as its bytes decode.
fn photo_bytes(text: &[u8]) -> usize {
    use base64::Engine;
    let text = String::from_utf8_lossy(text).replace("\r\r\n ", "").replace("\r\n ", "");
    let start = text.find("PHOTO").unwrap();
    let value_start = start + text[start..].find(':').unwrap() + 1;
    let value: String = text[value_start..].lines().next().unwrap().trim().to_string();
    base64::engine::general_purpose::STANDARD.decode(value).unwrap().len()
}

#[test]
fn android_21_quoted_printable_and_nameless_cards() {
    let c = contacts("John_Doe_ANDROID.vcf");
    assert_eq!(c.len(), 6);
    let n4 = |n: usize| vec!["Ñ"; n].join(" ");
    // Two cards with only an email: kept (the email identifies them).
    for (card, email) in [(&c[0], "john.doe@company.com"), (&c[1], "jane.doe@company.com")] {
        assert_eq!(card.display_name, "");
        assert_eq!(card.emails, vec![email]);
        assert_eq!(card.categories, vec!["My Contacts"]);
        assert!(card.phones.is_empty());
        assert_eq!(card.id, RecordId::new(if email.starts_with("john") { "card-1" } else { "card-2" }));
    }
    assert_eq!(c[2].display_name, n4(5));
    assert_eq!(c[2].family_name.as_deref(), Some(n4(4).as_str()));
    assert_eq!(phones(&c[2]), vec![("123456789", Mobile)]);
    assert_eq!(c[2].categories, vec!["My Contacts"]);
    // QP soft line breaks inside N and FN.
    assert_eq!(c[3].display_name, n4(11));
    assert_eq!(c[3].family_name.as_deref(), Some(n4(11).as_str()));
    assert_eq!(phones(&c[3]), vec![("123456", Mobile), ("234567", Home), ("3456789", Mobile), ("45678901", Home)]);
    assert!(c[3].emails.is_empty());
    assert_eq!(c[3].categories, vec!["My Contacts"]);

    assert_eq!(c[4].display_name, n4(4));
    assert_eq!(c[4].family_name.as_deref(), Some("Ñ Ñ"));
    assert_eq!(c[4].given_name.as_deref(), Some("Ñ Ñ Ñ"));
    assert_eq!(phones(&c[4]), vec![("123456", Mobile), ("123456", Work), ("123456", Fax)]);
    assert_eq!(c[4].emails, vec!["bob@company.com".to_string(), "Ñ".repeat(14)]);
    assert_eq!(c[4].company, Some("Ñ".repeat(12)));
    assert!(c[4].categories.is_empty());
    // `PHOTO;ENCODING=BASE64;JPEG:` — a small inline photo is kept.
    match &c[4].photo {
        Some(PhotoRef::Inline { media_type, base64 }) => {
            assert_eq!(media_type, "image/jpeg");
            assert!(base64.starts_with("/9j/4AAQ") && base64.ends_with("/2Q=="), "{base64}");
        }
        other => panic!("expected an inline photo, got {other:?}"),
    }

    assert_eq!(c[5].display_name, "ÑÑÑÑ");
    assert_eq!(c[5].family_name.as_deref(), Some("ÑÑÑÑ"));
    assert_eq!(phones(&c[5]), vec![("55556666", Mobile)]);
    assert_eq!(c[5].emails, vec!["henry@company.com"]);
    assert_eq!(c[5].company, Some("Ñ".repeat(44)));
    assert_eq!(c[5].categories, vec!["My Contacts"]);
}

#[test]
fn evolution_30_folded_lines_and_escapes() {
    let c = contacts("John_Doe_EVOLUTION.vcf");
    assert_eq!(c.len(), 1);
    let c = &c[0];
    assert_eq!(c.id, RecordId::new("477343c8e6bf375a9bac1f96a5000837"));
    assert_eq!(c.uid, "477343c8e6bf375a9bac1f96a5000837");
    assert_eq!(c.display_name, "Mr. John Richter, James Doe Sr.");
    assert_eq!((c.given_name.as_deref(), c.family_name.as_deref()), (Some("John"), Some("Doe")));
    assert_eq!(c.company.as_deref(), Some("IBM"));
    assert_eq!(c.job_title.as_deref(), Some("Money Counter"));
    // Numbers folded in the middle: "905-666\r\n -1234".
    assert_eq!(phones(c), vec![("905-666-1234", Mobile), ("905-555-1234", Work)]);
    assert_eq!(c.emails, vec!["john.doe@ibm.com"]);
    assert_eq!(c.categories, vec!["VIP"]);
    assert_eq!(c.photo, None);
}

#[test]
fn gmail_30_export() {
    let c = contacts("John_Doe_GMAIL.vcf");
    assert_eq!(c.len(), 1);
    let c = &c[0];
    assert_eq!(c.id, RecordId::new("card-1"));
    assert_eq!(c.display_name, "Mr. John Richter, James Doe Sr.");
    assert_eq!((c.given_name.as_deref(), c.family_name.as_deref()), (Some("John"), Some("Doe")));
    assert_eq!(c.company.as_deref(), Some("IBM"));
    assert_eq!(c.job_title.as_deref(), Some("Money Counter"));
    assert_eq!(phones(c), vec![("905-555-1234", Mobile), ("905-666-1234", Home)]);
    assert_eq!(c.emails, vec!["john.doe@ibm.com"]);
    assert!(c.categories.is_empty());
}

#[test]
fn gmail_list_three_cards() {
    let c = contacts("gmail-list.vcf");
    let got: Vec<(&str, &str, &str, &str)> = c
        .iter()
        .map(|c| {
            (
                c.display_name.as_str(),
                c.given_name.as_deref().unwrap(),
                c.family_name.as_deref().unwrap(),
                c.emails[0].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("Arnold Smith", "Arnold", "Smith", "asmithk@gmail.com"),
            ("Chris Beatle", "Chris", "Beatle", "chrisy55d@yahoo.com"),
            ("Doug White", "Doug", "White", "dwhite@gmail.com"),
        ]
    );
    for card in &c {
        assert_eq!(card.emails.len(), 1);
        assert!(card.phones.is_empty() && card.categories.is_empty());
    }
    let ids: Vec<&str> = c.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, vec!["card-1", "card-2", "card-3"]);
}

#[test]
fn iphone_30_groups_labels_and_large_photo() {
    let bytes = fixture("John_Doe_IPHONE.vcf");
    let c = contacts("John_Doe_IPHONE.vcf");
    assert_eq!(c.len(), 1);
    let c = &c[0];
    assert_eq!(c.display_name, "Mr. John Richter James Doe Sr.");
    assert_eq!((c.given_name.as_deref(), c.family_name.as_deref()), (Some("John"), Some("Doe")));
    assert_eq!(c.company.as_deref(), Some("IBM"));
    assert_eq!(c.job_title.as_deref(), Some("Money Counter"));
    assert_eq!(
        phones(c),
        vec![
            ("905-555-1234", Mobile),
            ("905-666-1234", Home),
            ("905-777-1234", Work),
            ("905-888-1234", Fax),
            ("905-999-1234", Fax),
            ("905-111-1234", Pager),
            // item2.TEL with item2.X-ABLabel:_$!<AssistantPhone>!$_
            ("905-222-1234", Other),
        ]
    );
    assert_eq!(c.emails, vec!["john.doe@ibm.com"]);
    assert!(c.categories.is_empty());
    let size = photo_bytes(&bytes);
    assert!(size as u64 > MAX_INLINE_PHOTO);
    assert_eq!(c.photo, Some(PhotoRef::AtSource { bytes: size as u64 }));
}

#[test]
fn outlook_21_export() {
    let bytes = fixture("John_Doe_MS_OUTLOOK.vcf");
    let c = contacts("John_Doe_MS_OUTLOOK.vcf");
    assert_eq!(c.len(), 1);
    let c = &c[0];
    assert_eq!(c.display_name, "Mr. John Richter James Doe Sr.");
    assert_eq!((c.given_name.as_deref(), c.family_name.as_deref()), (Some("John"), Some("Doe")));
    assert_eq!(c.company.as_deref(), Some("IBM"));
    assert_eq!(c.job_title.as_deref(), Some("Money Counter"));
    assert_eq!(phones(c), vec![("(905) 555-1234", Work), ("(905) 666-1234", Home)]);
    assert_eq!(c.emails, vec!["john.doe@ibm.cm"]);
    assert!(c.categories.is_empty());
    let size = photo_bytes(&bytes);
    assert!(size as u64 <= MAX_INLINE_PHOTO);
    assert!(matches!(&c.photo, Some(PhotoRef::Inline { media_type, .. }) if media_type == "image/jpeg"));
}

#[test]
fn outlook_2007_export() {
    let c = contacts("outlook-2007.vcf");
    assert_eq!(c.len(), 1);
    let c = &c[0];
    assert_eq!(c.display_name, "Mr. Michael Angstadt Jr.");
    assert_eq!((c.given_name.as_deref(), c.family_name.as_deref()), (Some("Michael"), Some("Angstadt")));
    assert_eq!(c.company.as_deref(), Some("TheCompany"));
    assert_eq!(c.job_title.as_deref(), Some("TheJobTitle"));
    // X-MS-TEL is not a TEL.
    assert_eq!(
        phones(c),
        vec![("(111) 555-1111", Work), ("(111) 555-2222", Home), ("(111) 555-4444", Mobile), ("(111) 555-3333", Fax)]
    );
    assert_eq!(c.emails, vec!["mike.angstadt@gmail.com"]);
    assert!(c.categories.is_empty());
    assert!(matches!(&c.photo, Some(PhotoRef::Inline { .. })));
}

#[test]
fn rfc6350_example_uri_phones() {
    let c = contacts("rfc6350-example.vcf");
    assert_eq!(c.len(), 1);
    let c = &c[0];
    assert_eq!(c.display_name, "Simon Perreault");
    assert_eq!((c.given_name.as_deref(), c.family_name.as_deref()), (Some("Simon"), Some("Perreault")));
    assert_eq!(c.company.as_deref(), Some("Viagenie"));
    // VALUE=uri: `tel:` stripped, `;ext=102` kept for the bridge.
    assert_eq!(phones(c), vec![("+1-418-656-9254;ext=102", Work), ("+1-418-262-6501", Mobile)]);
    assert_eq!(c.emails, vec!["simon.perreault@viagenie.ca"]);
    assert!(c.categories.is_empty());
}

/// `vcard_parser` (strict RFC 6350, 4.0 only) as an independent oracle for the
/// one 4.0 fixture: names and email agree with ours.
#[test]
fn rfc6350_example_agrees_with_vcard_parser() {
    use vcard_parser::traits::HasValue;
    let text = String::from_utf8(fixture("rfc6350-example.vcf")).unwrap();
    let strict = vcard_parser::parse_vcards(&text).expect("vcard_parser reads RFC 6350's own example");
    let ours = &contacts("rfc6350-example.vcf")[0];
    let value = |name: &str| {
        let prop = strict[0].get_property_by_name(name).or_else(|| strict[0].get_properties_by_name(name).pop());
        prop.unwrap_or_else(|| panic!("vcard_parser has {name}")).get_value().to_string()
    };
    assert_eq!(value("FN"), ours.display_name);
    assert_eq!(value("EMAIL"), ours.emails[0]);
    assert!(value("N").starts_with("Perreault;Simon;"));
}

#[test]
fn single_card_resource_gets_id_and_version() {
    let c = parse_vcard(RecordId::new("/ab/1.vcf"), Some("\"etag\"".into()), &fixture("John_Doe_GMAIL.vcf")).unwrap();
    assert_eq!(c.id, RecordId::new("/ab/1.vcf"));
    assert_eq!(c.version.as_deref(), Some("\"etag\""));
    assert_eq!(c.display_name, "Mr. John Richter, James Doe Sr.");
}

#[test]
fn bad_cards_are_reported_and_the_others_still_parse() {
    let text = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:First\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:3.0\r\nNOTE:nothing else\r\nEND:VCARD\r\n\
BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Cut off\r\n\
BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Last\r\nTEL;TYPE=WORK,FAX:+49 30 1\r\nEND:VCARD\r\n";
    let got = parse_vcard_file(text);
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].as_ref().unwrap().display_name, "First");
    assert_eq!(
        got[1].as_ref().unwrap_err().reason,
        "the card has no name (FN or N), organisation, email or phone number"
    );
    assert_eq!(got[2].as_ref().unwrap_err().reason, "missing END:VCARD (the card is cut off)");
    let last = got[3].as_ref().unwrap();
    assert_eq!((last.display_name.as_str(), last.phones[0].kind), ("Last", Fax));
    assert_eq!(
        parse_vcard(RecordId::new("x"), None, b"hello").unwrap_err().reason,
        "no BEGIN:VCARD found: not a vCard"
    );
}

#[test]
fn handling_code_categories_and_photo_url() {
    let text = b"BEGIN:VCARD\nVERSION:3.0\nFN:A\nCATEGORIES: VIP , Blocked,vip,\nCATEGORIES:Other\\, Stuff\n\
X-HANDLING-CODE: block \nPHOTO;VALUE=uri:https://example.com/a.jpg\nUID:u-1\nEND:VCARD\n";
    let c = parse_vcard(RecordId::new("id"), None, text).unwrap();
    assert_eq!(c.categories, vec!["VIP", "Blocked", "Other, Stuff"]);
    assert_eq!(c.handling_code.as_deref(), Some("block"));
    assert_eq!(c.photo, Some(PhotoRef::Url("https://example.com/a.jpg".into())));
    assert_eq!(c.uid, "u-1");
    let text = b"BEGIN:VCARD\nFN:A\nX-CONTACTBRIDGE-CODE:vip\nX-HANDLING-CODE:other\nEND:VCARD\n";
    assert_eq!(parse_vcard(RecordId::new("id"), None, text).unwrap().handling_code.as_deref(), Some("vip"));
}

#[test]
fn data_uri_photo_and_latin1_card() {
    let text = b"BEGIN:VCARD\nVERSION:4.0\nFN:J\xFCrgen\nPHOTO:data:image/png;base64,iVBORw0KGgo=\nEND:VCARD\n";
    let c = parse_vcard(RecordId::new("id"), None, text).unwrap();
    assert_eq!(c.display_name, "Jürgen");
    assert_eq!(c.photo, Some(PhotoRef::Inline { media_type: "image/png".into(), base64: "iVBORw0KGgo=".into() }));
}

/// A 10 MB inline photo must not stall parsing; the photo is left at the source.
#[test]
fn ten_megabyte_photo_yields_at_source() {
    let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx";
    let mut text = String::from("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Big Photo\r\nPHOTO;ENCODING=b;TYPE=JPEG:");
    let lines = 10 * 1024 * 1024 / line.len();
    for _ in 0..lines {
        text.push_str(line);
        text.push_str("\r\n ");
    }
    text.push_str("QUJD\r\nTEL;TYPE=CELL:+49 170 1\r\nEND:VCARD\r\n");
    let expected = ((lines * line.len() + 4) * 3 / 4) as u64;
    let c = parse_vcard(RecordId::new("big"), None, text.as_bytes()).unwrap();
    assert_eq!(c.display_name, "Big Photo");
    assert_eq!(c.phones[0].raw, "+49 170 1");
    assert_eq!(c.photo, Some(PhotoRef::AtSource { bytes: expected }));
    // The same as a 2.1 card with a bare BASE64 parameter, inside a file.
    let text21 = text.replace("VERSION:3.0", "VERSION:2.1").replace("ENCODING=b;TYPE=JPEG", "BASE64;JPEG");
    let all = parse_vcard_file(text21.as_bytes());
    assert_eq!(all[0].as_ref().unwrap().photo, Some(PhotoRef::AtSource { bytes: expected }));
}
