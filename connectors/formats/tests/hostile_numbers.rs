//! Numbers written in multi-byte text (full-width, Arabic-Indic digits, currency
//! signs) next to ordinary cards: every card is read, the number as written.

use contactbridge_connector::RecordId;
use contactbridge_formats::{parse_vcard, parse_vcard_file};

#[test]
fn a_full_width_tel_does_not_cost_the_cards_around_it() {
    let file = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Anna Before\r\nTEL:+49 40 1111111\r\nEND:VCARD\r\n\
                BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Zenji Zenkaku\r\nTEL;TYPE=CELL:＋４９ ４０ ２２２２２２２\r\nEND:VCARD\r\n\
                BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Otto After\r\nTEL:040 4444444\r\nEND:VCARD\r\n";
    let cards: Vec<_> = parse_vcard_file(file.as_bytes()).into_iter().map(|c| c.expect("every card parses")).collect();
    let read: Vec<(&str, Vec<&str>)> =
        cards.iter().map(|c| (c.display_name.as_str(), c.phones.iter().map(|p| p.raw.as_str()).collect())).collect();
    assert_eq!(
        read,
        [
            ("Anna Before", vec!["+49 40 1111111"]),
            ("Zenji Zenkaku", vec!["＋４９ ４０ ２２２２２２２"]),
            ("Otto After", vec!["040 4444444"])
        ]
    );
}

#[test]
fn tel_values_starting_with_multi_byte_characters_are_read_as_written() {
    // Each of these once cut a character in two while looking for a `tel:` prefix.
    for (value, raw) in [
        ("＋４９３０１２３４５６", "＋４９３０１２３４５６"),
        ("٠٣٠١٢٣٤٥٦", "٠٣٠١٢٣٤٥٦"),
        ("ab€", "ab€"),
        ("€", "€"),
        ("t€l:1", "t€l:1"),
        ("tel:€1", "€1"),
        ("TEL:＋４９", "＋４９"),
    ] {
        let card = format!("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:X\r\nTEL:{value}\r\nEND:VCARD\r\n");
        let c = parse_vcard(RecordId::new("x"), None, card.as_bytes()).expect(value);
        assert_eq!(c.phones.iter().map(|p| p.raw.as_str()).collect::<Vec<_>>(), [raw], "{value}");
    }
}
