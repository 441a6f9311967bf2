//! Property values: quoted-printable and base64 decoding with CHARSET, and
//! RFC 6350 / 5545 unescaping and splitting of structured values.

use crate::content::Prop;
use base64::Engine;
use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

/// Text values longer than this are not base64-decoded (they are not text).
const MAX_DECODED_TEXT: usize = 1024 * 1024;

/// The property's value with its transfer encoding undone (QP, base64) and its
/// CHARSET applied. Escapes are still in place.
pub(crate) fn decoded(prop: &Prop) -> String {
    let encoding = prop.param("ENCODING").unwrap_or_default();
    let bytes = if encoding.eq_ignore_ascii_case("QUOTED-PRINTABLE") || encoding.eq_ignore_ascii_case("QP") {
        qp_decode(prop.value.as_bytes())
    } else if (encoding.eq_ignore_ascii_case("B") || encoding.eq_ignore_ascii_case("BASE64"))
        && prop.value.len() <= MAX_DECODED_TEXT
    {
        let compact: String = prop.value.chars().filter(|c| !c.is_whitespace()).collect();
        match base64::engine::general_purpose::STANDARD.decode(compact.trim_end_matches('=')) {
            Ok(b) => b,
            Err(_) => match base64::engine::general_purpose::STANDARD_NO_PAD.decode(compact.trim_end_matches('=')) {
                Ok(b) => b,
                Err(_) => return prop.value.clone(),
            },
        }
    } else {
        return prop.value.clone();
    };
    decode_charset(&bytes, prop.param("CHARSET"))
}

/// Bytes → text with the named charset; without one, UTF-8 if valid, else CP1252.
/// Invalid sequences become U+FFFD.
pub(crate) fn decode_charset(bytes: &[u8], charset: Option<&str>) -> String {
    let named = charset.and_then(|c| Encoding::for_label(c.trim().as_bytes()));
    let encoding = match named {
        Some(e) => e,
        None if std::str::from_utf8(bytes).is_ok() => UTF_8,
        None => WINDOWS_1252,
    };
    encoding.decode_without_bom_handling(bytes).0.into_owned()
}

/// Decodes quoted-printable (`=XX`); malformed escapes are kept as written and
/// soft line breaks (already joined by the pre-pass) are removed.
pub(crate) fn qp_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'=' {
            if let (Some(h), Some(l)) = (input.get(i + 1).and_then(|&b| hex(b)), input.get(i + 2).and_then(|&b| hex(b)))
            {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            if i + 1 == input.len() {
                break; // a trailing soft break
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// Undoes backslash escapes: `\n` `\N` → newline, `\,` `\;` `\:` `\\` → the character.
pub(crate) fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(c @ (',' | ';' | ':' | '\\' | '"')) => out.push(c),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Splits on `sep` where it is not escaped, then unescapes each part.
pub(crate) fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(unescape(&s[start..i]));
            start = i + c.len_utf8();
        }
    }
    parts.push(unescape(&s[start..]));
    parts
}

/// The value as text: decoded, unescaped, trimmed.
pub(crate) fn text(prop: &Prop) -> String {
    unescape(&decoded(prop)).trim().to_string()
}

/// Strips a `mailto:` prefix (any case).
pub(crate) fn strip_mailto(s: &str) -> &str {
    let s = s.trim();
    match s.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("mailto:") => s[7..].trim(),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(params: &[(&str, &str)], value: &str) -> Prop {
        Prop {
            name: "X".into(),
            params: params.iter().map(|(k, v)| (k.to_string(), vec![v.to_string()])).collect(),
            value: value.into(),
            ..Default::default()
        }
    }

    #[test]
    fn quoted_printable_with_charset() {
        let p = prop(&[("ENCODING", "QUOTED-PRINTABLE"), ("CHARSET", "UTF-8")], "=C3=91=20=C3=91;x");
        assert_eq!(decoded(&p), "Ñ Ñ;x");
        let p = prop(&[("ENCODING", "QUOTED-PRINTABLE"), ("CHARSET", "ISO-8859-1")], "M=FCller=0D=0Ax");
        assert_eq!(decoded(&p), "Müller\r\nx");
        // No charset: UTF-8 when valid, else CP1252.
        assert_eq!(decoded(&prop(&[("ENCODING", "QUOTED-PRINTABLE")], "=E2=82=AC")), "€");
        assert_eq!(decoded(&prop(&[("ENCODING", "QUOTED-PRINTABLE")], "=80")), "€");
        // Malformed escapes are kept.
        assert_eq!(decoded(&prop(&[("ENCODING", "QUOTED-PRINTABLE")], "a=ZZb=")), "a=ZZb");
    }

    #[test]
    fn base64_text_values() {
        assert_eq!(decoded(&prop(&[("ENCODING", "b")], "SMO2cmc=")), "Hörg");
        assert_eq!(decoded(&prop(&[("ENCODING", "BASE64")], "not base64!")), "not base64!");
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape(r"a\, b\; c\nd\\e\:f"), "a, b; c\nd\\e:f");
        assert_eq!(split_unescaped(r"Doe;John;Richter\, James;;", ';'), vec!["Doe", "John", "Richter, James", "", ""]);
        assert_eq!(split_unescaped(r"a\,b,c", ','), vec!["a,b", "c"]);
        assert_eq!(strip_mailto(" MAILTO:A@B.example"), "A@B.example");
    }
}
