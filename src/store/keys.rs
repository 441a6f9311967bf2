//! Key layout of the index. Every key is text: parts joined by NUL, user first.
//!
//! | prefix | key                                                  | value                      |
//! |--------|------------------------------------------------------|----------------------------|
//! | `r`    | user, account, collection, record id                 | record entry (`entry.rs`)  |
//! | `p`    | user, phone lookup key, record ref                   | –                          |
//! | `e`    | user, email, record ref                              | –                          |
//! | `t`    | user, start of an occurrence ≤ 1 day, record ref     | end, busy status           |
//! | `T`    | user, start of a longer occurrence, record ref       | end, busy status           |
//! | `a`    | user, attendee email, last occurrence start, ref     | first occurrence start     |
//! | `m`    | user, correspondent email, date, record ref          | –                          |
//! | `d`    | user, person (email or name), modified, record ref   | –                          |
//! | `o`    | user, record ref                                     | – (out-of-office settings) |
//! | `k`    | user, account, collection                            | collection state           |
//! | `~`    | `~epoch`, `~format`                                  | index epoch, index format  |
//!
//! A record's secondary keys are not listed in its entry: the store derives
//! them again from the record ([`super::derive`]) to remove them. Values
//! hold only what the key and the record do not (a phone key's kind is in the
//! contact).
//! Times are encoded as 16 hex digits of the offset-binary Unix second, so
//! byte order is time order. A record ref is `account NUL collection NUL id`.
//! Because the user comes first, a prefix scan can never reach another user.

use crate::model::UserId;
use chrono::{DateTime, Utc};

pub(crate) const SEP: u8 = 0;

/// Builds a key from parts; parts must not contain NUL (checked by callers
/// through [`check_part`]).
pub(crate) fn key(prefix: u8, parts: &[&str]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.push(SEP);
        k.extend_from_slice(p.as_bytes());
    }
    k
}

/// Like [`key`], with a trailing separator: the prefix of all keys below.
pub(crate) fn prefix(prefix: u8, parts: &[&str]) -> Vec<u8> {
    let mut k = key(prefix, parts);
    k.push(SEP);
    k
}

/// Rejects parts that would break the layout.
pub(crate) fn check_part(what: &str, part: &str) -> Result<(), String> {
    if part.as_bytes().contains(&SEP) {
        return Err(format!("{what} {} contains a NUL byte", crate::connector::echo(part)));
    }
    Ok(())
}

pub(crate) fn time(t: DateTime<Utc>) -> String {
    format!("{:016x}", (t.timestamp() as u64) ^ (1 << 63))
}

pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let v = u64::from_str_radix(s, 16).ok()?;
    DateTime::from_timestamp((v ^ (1 << 63)) as i64, 0)
}

/// The last NUL-separated parts of a key, after `skip` leading parts (prefix byte included).
pub(crate) fn parts(key: &[u8]) -> Vec<&str> {
    key.split(|b| *b == SEP).skip(1).map(|p| std::str::from_utf8(p).unwrap_or("")).collect()
}

pub(crate) fn user(u: &UserId) -> &str {
    u.as_str()
}

/// What [`SpanningScan::next`] makes of one attendee key.
pub(crate) enum Scan {
    Skip,
    Take(crate::model::RecordRef),
    Stop,
}

/// Chooses, from attendee keys (`a` keys: last occurrence start in the key, first start in the
/// value) read latest first from the window's start on, the events whose occurrences span into the
/// window: all that go on past its end (at most [`SpanningScan::MAX_SPANNING`]), then up to `limit`
/// that end inside it. Both backends read the keys their way and let this decide.
pub(crate) struct SpanningScan {
    to: String,
    limit: usize,
    spanning: usize,
    inside: usize,
}

impl SpanningScan {
    /// Recurring events with one person that go on past the window's end.
    pub(crate) const MAX_SPANNING: usize = 1_000;

    pub(crate) fn new(to: DateTime<Utc>, limit: usize) -> Self {
        Self { to: time(to), limit, spanning: 0, inside: 0 }
    }

    pub(crate) fn next(&mut self, key: &[u8], value: &[u8]) -> Scan {
        let parts = parts(key);
        let n = parts.len();
        if n < 4 {
            return Scan::Skip;
        }
        let beyond = parts[n - 4] >= self.to.as_str();
        // Keys written before the value held the first start: first = last.
        let first = if value.is_empty() { parts[n - 4] } else { std::str::from_utf8(value).unwrap_or("") };
        if first >= self.to.as_str() {
            return Scan::Skip;
        }
        if beyond {
            if self.spanning >= Self::MAX_SPANNING {
                return Scan::Skip;
            }
            self.spanning += 1;
        } else {
            if self.inside >= self.limit {
                return Scan::Stop;
            }
            self.inside += 1;
        }
        Scan::Take(crate::model::RecordRef {
            account: parts[n - 3].into(),
            collection: parts[n - 2].into(),
            id: contactbridge_connector::RecordId::new(parts[n - 1]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_encoding_sorts_like_time_and_round_trips() {
        let times = [-86_400 * 365, -1, 0, 1, 1_700_000_000, 4_000_000_000i64];
        let encoded: Vec<String> = times.iter().map(|s| time(DateTime::from_timestamp(*s, 0).unwrap())).collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(sorted, encoded);
        for (s, e) in times.iter().zip(&encoded) {
            assert_eq!(parse_time(e).unwrap().timestamp(), *s);
        }
    }

    #[test]
    fn a_users_prefix_never_covers_another_user() {
        let a = prefix(b'p', &["alice"]);
        let b = key(b'p', &["alice2", "e:+49"]);
        assert!(!b.starts_with(&a));
        assert_eq!(parts(&key(b'r', &["u", "acc", "col", "id"])), ["u", "acc", "col", "id"]);
    }
}
