//! Quoting an input back in a message without repeating all of it.

use std::fmt;

/// The most characters of an input a message repeats.
pub const MAX_ECHO_CHARS: usize = 64;

/// An input as a message quotes it: like `{:?}` (quoted, escaped), but at most
/// [`MAX_ECHO_CHARS`] characters, then `…` and how many were left out:
/// `"0301234…" (59993 more characters)`. Cut at characters, never inside one.
#[derive(Debug, Clone, Copy)]
pub struct Echo<'a>(pub &'a str);

/// See [`Echo`]: `format!("number {} is not valid", echo(input))`.
pub fn echo(input: &str) -> Echo<'_> {
    Echo(input)
}

impl fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(MAX_ECHO_CHARS) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => {
                let (shown, rest) = self.0.split_at(cut);
                let quoted = format!("{shown:?}");
                let more = rest.chars().count();
                write!(f, "{}…\" ({more} more characters)", &quoted[..quoted.len() - 1])
            }
        }
    }
}

/// A message from a library that may quote its input whole (serde's ``unknown field `…` ``
/// and `invalid type: string "…"`, a cron parser's reason): every quoted part
/// (between `` ` `` or `"`) longer than [`MAX_ECHO_CHARS`] characters is cut there and
/// its rest counted, as [`Echo`] does; the words around them stay. Text outside quotes
/// past 4 × [`MAX_ECHO_CHARS`] characters is cut too (an unmatched quote leaves input unquoted).
pub fn shorten_quoted(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    let mut outside = 0;
    while let Some(open) = rest.find(['`', '"']) {
        let (before, from_quote) = rest.split_at(open);
        outside += push_cut(&mut out, before, 4 * MAX_ECHO_CHARS - outside.min(4 * MAX_ECHO_CHARS));
        let quote = from_quote.chars().next().unwrap_or('"');
        let inner_and_on = &from_quote[quote.len_utf8()..];
        // The closing quote: the next one not escaped by a backslash.
        let mut close = None;
        let mut escaped = false;
        for (i, c) in inner_and_on.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                c if c == quote && !escaped => {
                    close = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(close) = close else {
            out.push(quote);
            push_cut(&mut out, inner_and_on, MAX_ECHO_CHARS);
            return out;
        };
        out.push(quote);
        let inner = &inner_and_on[..close];
        // A part [`Echo`] already cut ends in `…`: left as it is.
        let body = inner.strip_suffix('…').unwrap_or(inner);
        match body.char_indices().nth(MAX_ECHO_CHARS) {
            None => out.push_str(inner),
            Some((cut, _)) => {
                out.push_str(&inner[..cut]);
                out.push('…');
                out.push(quote);
                out.push_str(&format!(" ({} more characters)", inner[cut..].chars().count()));
                rest = &inner_and_on[close + quote.len_utf8()..];
                continue;
            }
        }
        out.push(quote);
        rest = &inner_and_on[close + quote.len_utf8()..];
    }
    push_cut(&mut out, rest, 4 * MAX_ECHO_CHARS - outside.min(4 * MAX_ECHO_CHARS));
    out
}

/// Appends at most `max` characters of `text` (then `…` and the count left out); returns the characters taken.
fn push_cut(out: &mut String, text: &str, max: usize) -> usize {
    match text.char_indices().nth(max) {
        None => {
            out.push_str(text);
            text.chars().count()
        }
        Some((cut, _)) => {
            out.push_str(&text[..cut]);
            out.push_str(&format!("… ({} more characters)", text[cut..].chars().count()));
            max
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_parts_of_a_message_are_shortened() {
        let long = "x".repeat(60_000);
        let serde = format!("unknown field `{long}`, expected one of `url`, `username`");
        assert_eq!(
            shorten_quoted(&serde),
            format!("unknown field `{}…` (59936 more characters), expected one of `url`, `username`", "x".repeat(64))
        );
        let typed = format!("invalid type: string \"{}\\\"{long}\", expected u64", "ü");
        let short = shorten_quoted(&typed);
        assert!(short.ends_with("(59939 more characters), expected u64"), "{short}");
        assert!(short.chars().count() < 150, "{short}");
        assert_eq!(shorten_quoted("no quotes here"), "no quotes here");
        assert_eq!(shorten_quoted("a `short` one"), "a `short` one");
        let echoed = format!("code {} is bad", echo(&long));
        assert_eq!(shorten_quoted(&echoed), echoed, "an echo is not cut again");
        let unmatched = format!("bad `{long}");
        assert!(shorten_quoted(&unmatched).chars().count() < 100);
        assert!(shorten_quoted(&long).chars().count() < 4 * MAX_ECHO_CHARS + 30);
    }

    #[test]
    fn short_inputs_are_quoted_whole() {
        assert_eq!(echo("+49 30 12a").to_string(), "\"+49 30 12a\"");
        assert_eq!(echo("").to_string(), "\"\"");
        assert_eq!(echo(&"1".repeat(64)).to_string(), format!("\"{}\"", "1".repeat(64)));
    }

    #[test]
    fn long_inputs_are_cut_at_a_character_with_the_rest_counted() {
        let long = "1".repeat(60_000);
        let e = echo(&long).to_string();
        assert_eq!(e, format!("\"{}…\" (59936 more characters)", "1".repeat(64)));
        // Multi-byte characters: cut between them, counted as characters.
        let wide = "０".repeat(100);
        assert_eq!(echo(&wide).to_string(), format!("\"{}…\" (36 more characters)", "０".repeat(64)));
        assert!(echo(&"\n".repeat(70)).to_string().starts_with("\"\\n\\n"));
    }
}
