//! Minimal edits of vCard text for write-back: add one category and leave
//! every other byte as it was.

use crate::content::Prop;
use crate::prepass::split_line;
use crate::values::{decoded, split_unescaped};
use crate::ParseError;

/// Longest physical line we produce when appending (RFC 6350: 75 octets).
const FOLD_AT: usize = 75;

/// One physical line with its terminator, and where it sits in the text.
struct Physical<'a> {
    start: usize,
    content: &'a str,
    ending: &'a str,
}

fn physical_lines(text: &str) -> Vec<Physical<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i + 1);
        let line = &text[start..end];
        let content = line.trim_end_matches(['\r', '\n']);
        out.push(Physical { start, content, ending: &line[content.len()..] });
        start = end;
    }
    out
}

/// A logical line: the indices of its physical lines.
struct Logical {
    first: usize,
    last: usize,
    text: String,
}

fn logical_lines(lines: &[Physical<'_>]) -> Vec<Logical> {
    let mut out: Vec<Logical> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let qp_pending = out.last().is_some_and(|l: &Logical| {
            l.text.ends_with('=')
                && l.text.split(':').next().unwrap_or_default().to_ascii_uppercase().contains("QUOTED-PRINTABLE")
        });
        match out.last_mut() {
            Some(l) if qp_pending => {
                l.text.pop();
                l.text.push_str(line.content);
                l.last = i;
            }
            Some(l) if line.content.starts_with([' ', '\t']) => {
                l.text.push_str(&line.content[1..]);
                l.last = i;
            }
            _ => out.push(Logical { first: i, last: i, text: line.content.to_string() }),
        }
    }
    out
}

fn name_of(line: &str) -> String {
    let end = line.find([';', ':']).unwrap_or(line.len());
    let name = &line[..end];
    name.rsplit('.').next().unwrap_or(name).trim().to_ascii_uppercase()
}

/// The card's own `CATEGORIES` lines (not those of a card nested in it), whether a `BEGIN:VCARD`
/// was seen, and the card's `END:VCARD` line (`None`: the card is cut off).
fn categories_lines(logical: &[Logical]) -> (Vec<&Logical>, bool, Option<&Logical>) {
    let mut depth = 0usize;
    let mut begin_seen = false;
    let mut found = Vec::new();
    for l in logical {
        let name = name_of(&l.text);
        let value = l.text.split_once(':').map(|(_, v)| v.trim().to_ascii_uppercase()).unwrap_or_default();
        match name.as_str() {
            "BEGIN" if value == "VCARD" => {
                depth += 1;
                begin_seen = true;
            }
            "END" if value == "VCARD" && depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    return (found, begin_seen, Some(l));
                }
            }
            "CATEGORIES" if depth == 1 => found.push(l),
            _ => {}
        }
    }
    (found, begin_seen, None)
}

/// A property line's value decoded (quoted-printable, charset) as the parser would.
fn decoded_value(split: &crate::prepass::SplitLine<'_>) -> String {
    let prop = Prop {
        params: split.params.iter().map(|(k, v)| (k.clone(), v.iter().cloned().collect())).collect(),
        value: split.value.to_string(),
        ..Default::default()
    };
    decoded(&prop)
}

/// See [`crate::add_vcard_category`].
pub(crate) fn add_category(text: &str, category: &str) -> Result<String, ParseError> {
    let category = category.trim();
    if category.is_empty() {
        return Err(ParseError::new("the category to add is empty"));
    }
    let lines = physical_lines(text);
    let logical = logical_lines(&lines);
    let (categories, begin_seen, end_line) = categories_lines(&logical);
    for l in &categories {
        if let Some(split) = split_line(&l.text) {
            if split_unescaped(&decoded_value(&split), ',').iter().any(|c| c.trim().eq_ignore_ascii_case(category)) {
                return Ok(text.to_string());
            }
        }
    }
    let first_categories = categories.first().copied();
    if !begin_seen {
        return Err(ParseError::new("no BEGIN:VCARD found: not a vCard"));
    }
    let end_line = end_line.ok_or_else(|| ParseError::new("missing END:VCARD (the card is cut off)"))?;

    let mut out = String::with_capacity(text.len() + category.len() + 32);
    match first_categories {
        Some(cat) => {
            let last = &lines[cat.last];
            let qp = cat.text.split(':').next().unwrap_or_default().to_ascii_uppercase().contains("QUOTED-PRINTABLE");
            let empty = cat.text.split_once(':').is_none_or(|(_, v)| v.trim().is_empty());
            let addition = format!("{}{}", if empty { "" } else { "," }, encode(category, qp));
            let insert_at = last.start + last.content.len();
            out.push_str(&text[..insert_at]);
            let fits = last.content.len() + addition.len() <= FOLD_AT;
            if fits || qp || addition.len() >= FOLD_AT {
                out.push_str(&addition);
            } else {
                let ending = if last.ending.is_empty() { "\r\n" } else { last.ending };
                out.push_str(ending);
                out.push(' ');
                out.push_str(&addition);
            }
            out.push_str(&text[insert_at..]);
        }
        None => {
            let end = &lines[end_line.first];
            let ending = lines.iter().find(|l| !l.ending.is_empty()).map_or("\r\n", |l| l.ending);
            out.push_str(&text[..end.start]);
            out.push_str("CATEGORIES:");
            out.push_str(&encode(category, false));
            out.push_str(ending);
            out.push_str(&text[end.start..]);
        }
    }
    Ok(out)
}

/// See [`crate::remove_vcard_category`].
pub(crate) fn remove_category(text: &str, category: &str) -> Result<String, ParseError> {
    let category = category.trim();
    if category.is_empty() {
        return Err(ParseError::new("the category to remove is empty"));
    }
    let lines = physical_lines(text);
    let logical = logical_lines(&lines);
    let (categories, begin_seen, end_line) = categories_lines(&logical);
    // (logical line, its replacement: `None` drops the line)
    let mut edits: Vec<(&Logical, Option<String>)> = Vec::new();
    for l in categories {
        let Some(split) = split_line(&l.text) else { continue };
        let qp = l.text.split(':').next().unwrap_or_default().to_ascii_uppercase().contains("QUOTED-PRINTABLE");
        let parts: Vec<String> = if qp { split_raw(&decoded_value(&split)) } else { split_raw(split.value) };
        let kept: Vec<&String> = parts.iter().filter(|p| !unescape(p.trim()).eq_ignore_ascii_case(category)).collect();
        if kept.len() == parts.len() {
            continue;
        }
        let head = &l.text[..l.text.len() - split.value.len()];
        let replacement = (!kept.iter().all(|p| p.trim().is_empty())).then(|| {
            let values: Vec<String> =
                kept.iter().map(|p| if qp { encode(&unescape(p), true) } else { p.to_string() }).collect();
            format!("{head}{}", values.join(","))
        });
        edits.push((l, replacement));
    }
    if !begin_seen {
        return Err(ParseError::new("no BEGIN:VCARD found: not a vCard"));
    }
    if end_line.is_none() {
        return Err(ParseError::new("missing END:VCARD (the card is cut off)"));
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (l, replacement) in edits {
        let first = &lines[l.first];
        let last = &lines[l.last];
        out.push_str(&text[at..first.start]);
        if let Some(line) = replacement {
            let ending = if last.ending.is_empty() { "\r\n" } else { last.ending };
            out.push_str(&fold(&line, ending));
            out.push_str(last.ending);
        }
        at = last.start + last.content.len() + last.ending.len();
    }
    out.push_str(&text[at..]);
    Ok(out)
}

/// Splits a CATEGORIES value at unescaped commas, keeping escapes as written.
fn split_raw(value: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in value.chars() {
        if c == ',' && !escaped {
            parts.push(String::new());
            continue;
        }
        escaped = c == '\\' && !escaped;
        if let Some(p) = parts.last_mut() {
            p.push(c);
        }
    }
    parts
}

/// `\,` → `,`, `\;` → `;`, `\\` → `\`, `\n` → newline.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n' | 'N') => out.push('\n'),
                Some(next) => out.push(next),
                None => out.push('\\'),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

/// Folds a logical line at [`FOLD_AT`] octets (at character boundaries) with `ending` + space.
fn fold(line: &str, ending: &str) -> String {
    if line.len() <= FOLD_AT {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len() + line.len() / FOLD_AT * 3);
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > FOLD_AT {
            out.push_str(ending);
            out.push(' ');
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out
}

/// Escapes a category for a CATEGORIES value (or QP-encodes it for a 2.1 QP line).
fn encode(category: &str, quoted_printable: bool) -> String {
    if quoted_printable {
        category
            .bytes()
            .map(|b| match b {
                b'=' | b',' | b';' | b'\\' => format!("={b:02X}"),
                0x21..=0x7e => (b as char).to_string(),
                _ => format!("={b:02X}"),
            })
            .collect()
    } else {
        let mut out = String::with_capacity(category.len());
        for c in category.chars() {
            match c {
                ',' | ';' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                '\n' => out.push_str("\\n"),
                '\r' => {}
                c => out.push(c),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_to_existing_categories_line() {
        let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nCATEGORIES:VIP,Friends\r\nEND:VCARD\r\n";
        let got = add_category(card, "Blocked").unwrap();
        assert_eq!(got, card.replace("VIP,Friends", "VIP,Friends,Blocked"));
    }

    #[test]
    fn creates_the_line_before_end_keeping_line_endings() {
        let card = "BEGIN:VCARD\nVERSION:4.0\nFN:A\nEND:VCARD\n";
        assert_eq!(add_category(card, "a,b").unwrap(), "BEGIN:VCARD\nVERSION:4.0\nFN:A\nCATEGORIES:a\\,b\nEND:VCARD\n");
    }

    #[test]
    fn removes_one_category_and_keeps_every_other_byte() {
        let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nX-ODD;X-P=\"a:b\":v\r\n  folded\r\nCATEGORIES:VIP,Friends\\,old,Blocked\r\nNOTE:x\r\nEND:VCARD\r\n";
        assert_eq!(remove_category(card, "vip").unwrap(), card.replace("VIP,", ""));
        assert_eq!(remove_category(card, "friends,old").unwrap(), card.replace("Friends\\,old,", ""));
        assert_eq!(remove_category(card, "absent").unwrap(), card);
        let only = "BEGIN:VCARD\nFN:A\nitem1.CATEGORIES:vip\nCATEGORIES:a,VIP\nEND:VCARD\n";
        assert_eq!(remove_category(only, "VIP").unwrap(), "BEGIN:VCARD\nFN:A\nCATEGORIES:a\nEND:VCARD\n");
        // Added then removed: the card as it was.
        let plain = "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:A\r\nEND:VCARD\r\n";
        assert_eq!(remove_category(&add_category(plain, "vip").unwrap(), "vip").unwrap(), plain);
        let folded = "BEGIN:VCARD\r\nCATEGORIES:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb,\r\n cccccccccc,vip\r\nEND:VCARD\r\n";
        let got = remove_category(folded, "vip").unwrap();
        assert!(got.lines().all(|l| l.len() <= 75), "{got}");
        assert!(!got.contains("vip") && got.contains("cccccccccc"), "{got}");
        assert!(remove_category("FN:A\r\n", "vip").is_err());
        assert!(remove_category("BEGIN:VCARD\r\nCATEGORIES:vip\r\n", "vip").is_err());
    }

    #[test]
    fn present_in_any_case_means_unchanged() {
        let card = "BEGIN:VCARD\r\nFN:A\r\nitem1.CATEGORIES:vip\r\nEND:VCARD\r\n";
        assert_eq!(add_category(card, "VIP").unwrap(), card);
    }

    #[test]
    fn folded_categories_line_gets_the_value_at_its_end() {
        let card = "BEGIN:VCARD\r\nFN:A\r\nCATEGORIES:One,Tw\r\n o\r\nEND:VCARD\r\n";
        assert_eq!(add_category(card, "Two").unwrap(), card);
        assert_eq!(add_category(card, "X").unwrap(), card.replace(" o\r\n", " o,X\r\n"));
    }

    #[test]
    fn long_lines_are_folded() {
        let long = "C".repeat(70);
        let card = format!("BEGIN:VCARD\r\nFN:A\r\nCATEGORIES:{long}\r\nEND:VCARD\r\n");
        let got = add_category(&card, "Blocked").unwrap();
        assert_eq!(got, card.replace(&format!("{long}\r\n"), &format!("{long}\r\n ,Blocked\r\n")));
        assert_eq!(
            crate::parse_vcard(RecordId::new("x"), None, got.as_bytes()).unwrap().categories,
            vec![long, "Blocked".into()]
        );
    }

    #[test]
    fn nested_agent_categories_and_broken_cards() {
        let card = "BEGIN:VCARD\nFN:A\nAGENT:\nBEGIN:VCARD\nFN:B\nCATEGORIES:X\nEND:VCARD\nEND:VCARD\n";
        assert_eq!(
            add_category(card, "X").unwrap(),
            "BEGIN:VCARD\nFN:A\nAGENT:\nBEGIN:VCARD\nFN:B\nCATEGORIES:X\nEND:VCARD\nCATEGORIES:X\nEND:VCARD\n"
        );
        assert_eq!(
            add_category("BEGIN:VCARD\nFN:A\n", "X").unwrap_err().reason,
            "missing END:VCARD (the card is cut off)"
        );
        assert!(add_category("hello", "X").is_err());
    }

    use contactbridge_connector::RecordId;
}
