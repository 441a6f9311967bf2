//! `LookupKey`: the ordered byte-string key under which numbers are indexed (`e:+4930123456`, `t:30123456`…).

use std::fmt;

/// An index key for a phone number. Opaque to callers: compare, store and look up; never parse digits out.
///
/// The text is ASCII: a one-letter kind, `:`, then digits (with `+` and `;` for some kinds). Ordering is
/// byte order, so all keys of one kind are adjacent in an ordered store.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupKey(String);

/// What a key was made from (see the table in [`crate::phone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// `e:` E.164 without extension.
    Exact,
    /// `x:` E.164 with extension, `+4930123456;12`.
    Extension,
    /// `b:` the E.164 of a stored number that has an extension, without it.
    Base,
    /// `p:` a company's direct-dial prefix (its main number without the final `0`).
    CompanyPrefix,
    /// `n:` last digits of the national number of a normalised stored number.
    NationalTail,
    /// `r:` E.164 of a second reading of a stored number (another country's format or dialling form).
    Reading,
    /// `t:` last digits of a stored number that could not be normalised.
    Tail,
    /// `i:` a short internal extension.
    Internal,
}

impl KeyKind {
    fn tag(self) -> char {
        match self {
            KeyKind::Exact => 'e',
            KeyKind::Extension => 'x',
            KeyKind::Base => 'b',
            KeyKind::CompanyPrefix => 'p',
            KeyKind::NationalTail => 'n',
            KeyKind::Reading => 'r',
            KeyKind::Tail => 't',
            KeyKind::Internal => 'i',
        }
    }

    fn from_tag(tag: u8) -> Option<Self> {
        Some(match tag {
            b'e' => KeyKind::Exact,
            b'x' => KeyKind::Extension,
            b'b' => KeyKind::Base,
            b'p' => KeyKind::CompanyPrefix,
            b'n' => KeyKind::NationalTail,
            b'r' => KeyKind::Reading,
            b't' => KeyKind::Tail,
            b'i' => KeyKind::Internal,
            _ => return None,
        })
    }
}

impl LookupKey {
    pub(crate) fn new(kind: KeyKind, body: &str) -> Self {
        let mut s = String::with_capacity(body.len() + 2);
        s.push(kind.tag());
        s.push(':');
        s.push_str(body);
        Self(s)
    }

    /// Reads back a key taken from the index; `None` if it is not one this module makes.
    pub fn from_stored(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let ok = b.len() > 2
            && KeyKind::from_tag(b[0]).is_some()
            && b[1] == b':'
            && b[2..].iter().all(|c| c.is_ascii_digit() || *c == b'+' || *c == b';');
        ok.then(|| Self(text.to_string()))
    }

    pub fn kind(&self) -> KeyKind {
        // Every constructor writes a valid tag first.
        KeyKind::from_tag(self.0.as_bytes()[0]).unwrap_or(KeyKind::Exact)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for LookupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LookupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_order_by_bytes() {
        let e = LookupKey::new(KeyKind::Exact, "+4930123456");
        assert_eq!(e.as_str(), "e:+4930123456");
        assert_eq!(e.as_bytes(), b"e:+4930123456");
        assert_eq!(LookupKey::from_stored(e.as_str()), Some(e.clone()));
        assert_eq!(LookupKey::new(KeyKind::Extension, "+4930123456;12").kind(), KeyKind::Extension);
        assert!(LookupKey::new(KeyKind::Exact, "+1") < LookupKey::new(KeyKind::Exact, "+49"));
        assert!(LookupKey::new(KeyKind::Exact, "+49") < LookupKey::new(KeyKind::Tail, "1"));
    }

    #[test]
    fn foreign_text_is_not_a_key() {
        for bad in ["", "e:", "z:123", "e+49", "e:+49 30", "t:12a"] {
            assert_eq!(LookupKey::from_stored(bad), None, "{bad}");
        }
    }
}
