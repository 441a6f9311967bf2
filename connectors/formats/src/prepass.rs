//! The tolerant pre-pass: raw bytes → clean logical content lines that `ical`
//! can parse (charset fallback, unfolding, QP soft breaks, bare 2.1 parameters).

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

/// Property values longer than this are inspected for inline binary data.
const HUGE_VALUE: usize = 64 * 1024;

/// Real properties have a handful of parameters; more are dropped (a line with
/// thousands would make `ical`'s parameter loop quadratic).
const MAX_PARAMS: usize = 32;

/// Parameter the pre-pass puts on a binary property whose (huge) value it
/// dropped: the estimated decoded size in bytes.
pub(crate) const SIZE_PARAM: &str = "X-CONTACTBRIDGE-SIZE";

/// Which format the lines belong to: only vCard has bare 2.1 parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    VCard,
    ICalendar,
}

/// Turns raw bytes into logical lines: unfolded, decoded to UTF-8, with
/// parameters rewritten into the `NAME=VALUE` form `ical` understands.
pub(crate) fn logical_lines(bytes: &[u8], dialect: Dialect) -> Vec<String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    unfold(bytes).into_iter().map(|raw| normalize_line(&decode_line(&raw), dialect)).collect()
}

/// Splits on LF (any number of CRs before it are dropped) and joins folded
/// lines: a line starting with one space or tab continues the previous one
/// (that one character is removed, nothing else), and a quoted-printable value
/// ending in `=` (a vCard 2.1 soft line break) continues on the next line.
pub(crate) fn unfold(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut current: Option<(Vec<u8>, bool)> = None; // (line, is quoted-printable)
    let physical = if !bytes.contains(&b'\n') && bytes.contains(&b'\r') {
        bytes.split(|&b| b == b'\r').collect::<Vec<_>>()
    } else {
        bytes.split(|&b| b == b'\n').collect()
    };
    for line in physical {
        let mut end = line.len();
        while end > 0 && line[end - 1] == b'\r' {
            end -= 1;
        }
        let line = &line[..end];
        if let Some((cur, qp)) = current.as_mut() {
            if *qp && cur.last() == Some(&b'=') {
                cur.pop();
                cur.extend_from_slice(line);
                continue;
            }
            if matches!(line.first(), Some(b' ' | b'\t')) {
                cur.extend_from_slice(&line[1..]);
                continue;
            }
        }
        if let Some((cur, _)) = current.take() {
            out.push(cur);
        }
        let trimmed = trim_start(line);
        if trimmed.is_empty() {
            continue;
        }
        let qp = is_quoted_printable(trimmed);
        current = Some((trimmed.to_vec(), qp));
    }
    if let Some((cur, _)) = current {
        out.push(cur);
    }
    out
}

fn trim_start(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(line.len());
    &line[start..]
}

/// The part of a raw line before its first `:` (name and parameters).
fn header(line: &[u8]) -> &[u8] {
    let limit = line.len().min(4096);
    let end = line[..limit].iter().position(|&b| b == b':').unwrap_or(limit);
    &line[..end]
}

fn is_quoted_printable(line: &[u8]) -> bool {
    header(line).to_ascii_uppercase().windows(16).any(|w| w == b"QUOTED-PRINTABLE")
}

/// UTF-8 if valid; otherwise the line's CHARSET if it names one; otherwise CP1252
/// (a superset of Latin-1 for printable characters).
pub(crate) fn decode_line(raw: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(raw) {
        return s.to_string();
    }
    let encoding = charset_of(header(raw)).filter(|e| *e != UTF_8).unwrap_or(WINDOWS_1252);
    encoding.decode_without_bom_handling(raw).0.into_owned()
}

fn charset_of(header: &[u8]) -> Option<&'static Encoding> {
    let upper = header.to_ascii_uppercase();
    let pos = upper.windows(8).position(|w| w == b"CHARSET=")?;
    let rest = &header[pos + 8..];
    let end = rest.iter().position(|&b| b == b';' || b == b':').unwrap_or(rest.len());
    let label: Vec<u8> = rest[..end].iter().copied().filter(|&b| b != b'"').collect();
    Encoding::for_label(&label)
}

/// A content line split into its parts (parameter values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitLine<'a> {
    pub name: &'a str,
    pub params: Vec<(String, Option<String>)>,
    pub value: &'a str,
}

/// Splits `name;p=v;bare:value`, honouring double quotes in parameter values.
/// `None` when the line has no `:` outside quotes.
pub(crate) fn split_line(line: &str) -> Option<SplitLine<'_>> {
    let mut in_quotes = false;
    let mut colon = None;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let colon = colon?;
    let head = &line[..colon];
    let value = &line[colon + 1..];
    let mut parts = Vec::new();
    let mut start = 0;
    in_quotes = false;
    for (i, c) in head.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => {
                parts.push(&head[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&head[start..]);
    let name = parts[0].trim();
    let params = parts[1..]
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_uppercase(), Some(v.trim().replace('"', ""))),
            None => (p.trim().to_string(), None),
        })
        .collect();
    Some(SplitLine { name, params, value })
}

/// What a bare vCard 2.1 parameter (`TEL;CELL;VOICE:`) stands for.
fn bare_param_key(value: &str) -> &'static str {
    match value.to_ascii_uppercase().as_str() {
        "QUOTED-PRINTABLE" | "BASE64" | "B" | "8BIT" | "7BIT" => "ENCODING",
        "URL" | "URI" | "INLINE" | "CID" | "CONTENT-ID" => "VALUE",
        _ => "TYPE",
    }
}

/// Rewrites one decoded logical line: bare parameters become `TYPE=`/`ENCODING=`/
/// `VALUE=`, parameter values holding `,` `:` or `;` are quoted (so `ical` keeps
/// them whole), and a huge inline binary value is replaced by its size.
pub(crate) fn normalize_line(line: &str, dialect: Dialect) -> String {
    let Some(split) = split_line(line) else {
        return line.to_string();
    };
    let mut params = split.params;
    if params.len() > MAX_PARAMS {
        tracing::debug!(name = split.name, count = params.len(), "dropping excess parameters");
        params.truncate(MAX_PARAMS);
    }
    let mut value = split.value;
    if dialect == Dialect::VCard {
        for (key, val) in params.iter_mut() {
            if val.is_none() {
                *val = Some(std::mem::take(key));
                *key = bare_param_key(val.as_deref().unwrap_or_default()).to_string();
            }
        }
    } else {
        // `ical` rejects a whole line for one bare parameter: drop the parameter.
        params.retain(|(_, v)| v.is_some());
    }
    if value.len() > HUGE_VALUE && is_binary(split.name, &params) {
        params.push((SIZE_PARAM.to_string(), Some(estimate_base64_size(value).to_string())));
        value = "";
    }
    let mut out = String::with_capacity(line.len() + 16);
    out.push_str(split.name);
    for (key, val) in &params {
        out.push(';');
        out.push_str(key);
        if let Some(val) = val {
            out.push('=');
            if val.contains([',', ':', ';']) {
                out.push('"');
                out.push_str(val);
                out.push('"');
            } else {
                out.push_str(val);
            }
        }
    }
    out.push(':');
    out.push_str(value);
    out
}

fn is_binary(name: &str, params: &[(String, Option<String>)]) -> bool {
    let base = name.rsplit('.').next().unwrap_or(name).to_ascii_uppercase();
    matches!(base.as_str(), "PHOTO" | "LOGO" | "SOUND" | "KEY" | "ATTACH")
        || params.iter().any(|(k, v)| {
            k == "ENCODING"
                && v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case("b") || v.eq_ignore_ascii_case("base64"))
        })
}

/// The decoded size of base64 text (data URIs included), without decoding it.
pub(crate) fn estimate_base64_size(value: &str) -> u64 {
    let payload = match value.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("data:") => value.split_once(',').map_or("", |(_, d)| d),
        _ => value,
    };
    let chars = payload.bytes().filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/').count() as u64;
    chars * 3 / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str, dialect: Dialect) -> Vec<String> {
        logical_lines(text.as_bytes(), dialect)
    }

    #[test]
    fn crlf_plus_one_space_is_removed_and_nothing_else() {
        let got = lines("NOTE:NOT LIMITED \r\n TO\r\nFN:x\r\n", Dialect::VCard);
        assert_eq!(got, vec!["NOTE:NOT LIMITED TO", "FN:x"]);
        let got = lines("NOTE:a\r\n\tb\r\n  c\r\n", Dialect::VCard);
        assert_eq!(got, vec!["NOTE:ab c"]);
    }

    #[test]
    fn doubled_cr_and_bare_lf_line_ends() {
        assert_eq!(lines("FN:a\r\r\nN:b;c\n", Dialect::VCard), vec!["FN:a", "N:b;c"]);
    }

    #[test]
    fn quoted_printable_soft_breaks_are_joined() {
        let text = "FN;ENCODING=QUOTED-PRINTABLE:=C3=91=\r\n=20=C3=91\r\nTEL:1\r\n";
        assert_eq!(lines(text, Dialect::VCard), vec!["FN;ENCODING=QUOTED-PRINTABLE:=C3=91=20=C3=91", "TEL:1"]);
        // A soft break followed by an empty line ends the value.
        let text = "ORG;QUOTED-PRINTABLE:A=\r\n\r\nTEL:1\r\n";
        assert_eq!(lines(text, Dialect::VCard), vec!["ORG;ENCODING=QUOTED-PRINTABLE:A", "TEL:1"]);
        // Outside QP, a trailing = is data.
        assert_eq!(lines("NOTE:a=\r\nTEL:1\r\n", Dialect::VCard), vec!["NOTE:a=", "TEL:1"]);
    }

    #[test]
    fn latin1_bytes_decode() {
        let raw = b"FN:M\xFCller \x80\r\nN;CHARSET=ISO-8859-2:\xB3\r\n";
        assert_eq!(logical_lines(raw, Dialect::VCard), vec!["FN:Müller €", "N;CHARSET=ISO-8859-2:ł"]);
        assert_eq!(logical_lines("FN:Ñ\r\n".as_bytes(), Dialect::VCard), vec!["FN:Ñ"]);
    }

    #[test]
    fn bare_params_are_rewritten() {
        assert_eq!(lines("TEL;CELL;VOICE:123", Dialect::VCard), vec!["TEL;TYPE=CELL;TYPE=VOICE:123"]);
        assert_eq!(
            lines("NOTE;QUOTED-PRINTABLE;CHARSET=UTF-8:x", Dialect::VCard),
            vec!["NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:x"]
        );
        assert_eq!(
            lines("PHOTO;VALUE=URL;JPEG:http://x/y", Dialect::VCard),
            vec!["PHOTO;VALUE=URL;TYPE=JPEG:http://x/y"]
        );
        // In iCalendar a bare parameter means nothing: it is dropped.
        assert_eq!(lines("X-A;B;C=d:e", Dialect::ICalendar), vec!["X-A;C=d:e"]);
    }

    #[test]
    fn param_values_with_separators_are_quoted() {
        assert_eq!(
            lines("TEL;VALUE=uri;TYPE=\"work,voice\";PREF=1:tel:+1-418;ext=102", Dialect::VCard),
            vec!["TEL;VALUE=uri;TYPE=\"work,voice\";PREF=1:tel:+1-418;ext=102"]
        );
        assert_eq!(
            lines("DTSTART;TZID=\"(UTC+01:00) Rome\":2012", Dialect::ICalendar),
            vec!["DTSTART;TZID=\"(UTC+01:00) Rome\":2012"]
        );
    }

    #[test]
    fn excess_parameters_are_dropped() {
        let line = format!("TEL{}:1", ";TYPE=CELL".repeat(10_000));
        let got = lines(&line, Dialect::VCard);
        assert_eq!(got, vec![format!("TEL{}:1", ";TYPE=CELL".repeat(MAX_PARAMS))]);
    }

    #[test]
    fn huge_binary_values_are_replaced_by_their_size() {
        let data = "A".repeat(100_000);
        let got = lines(&format!("PHOTO;ENCODING=b;TYPE=JPEG:{data}\r\nFN:x\r\n"), Dialect::VCard);
        assert_eq!(got[0], "PHOTO;ENCODING=b;TYPE=JPEG;X-CONTACTBRIDGE-SIZE=75000:");
        assert_eq!(got[1], "FN:x");
        assert_eq!(estimate_base64_size("data:image/png;base64,AAAA"), 3);
    }
}
