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

#[cfg(test)]
mod tests {
    use super::*;

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
