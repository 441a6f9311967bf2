//! The journal file's bytes: a header, then entries, each framed as
//! `len: u32 LE | crc32(body): u32 LE | body` (`len` = body bytes).
//!
//! | body kind | after the kind byte                                                     |
//! |-----------|-------------------------------------------------------------------------|
//! | `1` call  | at (µs, i64 LE), id, user, caller key, then the record (`codec::encode`) |
//! | `2` delete| user: every call of that user written before this entry is gone        |
//!
//! Strings are `len: u16 LE | UTF-8`; an absent caller key is the length `0xFFFF`.
//! The index fields ahead of the record let opening rebuild the index without
//! decoding records.

use crate::model::CallRecord;
use crate::store::{codec, Result, StoreError};

/// The first bytes of a journal file: a name and the frame format's version.
pub(super) const HEADER: &[u8; 8] = b"CBCALLS\x01";
/// Bytes ahead of every body.
pub(super) const FRAME_HEAD: usize = 8;
/// A body is at most this big. A call record stays near 12 KB (`crate::model::calls::MAX_EVENTS`,
/// `MAX_JOURNAL_TEXT_BYTES`); a length above this is damage, not a record.
pub(super) const MAX_BODY: usize = 1 << 20;

const KIND_CALL: u8 = 1;
const KIND_DELETE_USER: u8 = 2;
const NO_CALLER: u16 = u16::MAX;

/// An entry's fields the index needs.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Entry<'a> {
    Call { at: i64, id: &'a str, user: &'a str, caller: Option<&'a str> },
    DeleteUser { user: &'a str },
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<()> {
    let len = u16::try_from(s.len()).ok().filter(|l| *l != NO_CALLER).ok_or_else(|| {
        StoreError::Invalid(format!("a call's id, user or caller key has {} bytes; at most 65,534 fit", s.len()))
    })?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn frame(body: Vec<u8>) -> Result<Vec<u8>> {
    if body.len() > MAX_BODY {
        return Err(StoreError::Invalid(format!(
            "a call record of {} bytes does not fit the journal (at most {MAX_BODY})",
            body.len()
        )));
    }
    let mut out = Vec::with_capacity(FRAME_HEAD + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The framed entry for a call record.
pub(super) fn call(call: &CallRecord) -> Result<Vec<u8>> {
    let mut body = vec![KIND_CALL];
    body.extend_from_slice(&micros(call.at).to_le_bytes());
    put_str(&mut body, call.id.as_str())?;
    put_str(&mut body, call.user.as_str())?;
    match &call.caller_key {
        Some(c) => put_str(&mut body, c)?,
        None => body.extend_from_slice(&NO_CALLER.to_le_bytes()),
    }
    body.extend_from_slice(&codec::encode(call));
    frame(body)
}

/// The framed entry that deletes a user's calls.
pub(super) fn delete_user(user: &str) -> Result<Vec<u8>> {
    let mut body = vec![KIND_DELETE_USER];
    put_str(&mut body, user)?;
    frame(body)
}

/// A call's time as the index orders it: microseconds since the epoch (every
/// `DateTime<Utc>` fits an i64 of them).
pub(super) fn micros(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp_micros()
}

/// Why the bytes at an offset are not an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Bad {
    /// The frame runs past the end of the bytes given.
    Short,
    /// A length of 0 or above [`MAX_BODY`], a checksum mismatch, or a body that does not parse.
    Damaged(&'static str),
}

/// The body of the frame at the start of `bytes`, checked.
pub(super) fn body(bytes: &[u8]) -> std::result::Result<&[u8], Bad> {
    let Some(head) = bytes.get(..FRAME_HEAD) else { return Err(Bad::Short) };
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_BODY {
        return Err(Bad::Damaged("impossible length"));
    }
    let body = bytes.get(FRAME_HEAD..FRAME_HEAD + len).ok_or(Bad::Short)?;
    if crc32fast::hash(body) != crc {
        return Err(Bad::Damaged("checksum mismatch"));
    }
    Ok(body)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<&'a str> {
        let len = self.u16()? as usize;
        std::str::from_utf8(self.take(len)?).ok()
    }
}

/// A checked body's index fields, and the encoded record of a call entry.
pub(super) fn parse(body: &[u8]) -> std::result::Result<(Entry<'_>, &[u8]), Bad> {
    let bad = Bad::Damaged("unreadable entry");
    let mut r = Reader(body);
    match r.take(1).ok_or(bad.clone())?[0] {
        KIND_CALL => {
            let at = i64::from_le_bytes(r.take(8).ok_or(bad.clone())?.try_into().expect("8 bytes"));
            let id = r.str().ok_or(bad.clone())?;
            let user = r.str().ok_or(bad.clone())?;
            let caller = match Reader(r.0).u16().ok_or(bad.clone())? {
                NO_CALLER => {
                    r.take(2);
                    None
                }
                _ => Some(r.str().ok_or(bad.clone())?),
            };
            Ok((Entry::Call { at, id, user, caller }, r.0))
        }
        KIND_DELETE_USER => {
            let user = r.str().ok_or(bad.clone())?;
            Ok((Entry::DeleteUser { user }, r.0))
        }
        _ => Err(bad),
    }
}

/// Decodes the call record of a whole frame read back from the file.
pub(super) fn record(frame: &[u8]) -> Result<CallRecord> {
    let corrupt = |b: Bad| StoreError::Corrupt {
        what: "call record",
        reason: match b {
            Bad::Short => "the journal entry is cut short".into(),
            Bad::Damaged(why) => format!("the journal entry is damaged ({why})"),
        },
    };
    let (entry, record) = parse(body(frame).map_err(corrupt)?).map_err(corrupt)?;
    match entry {
        Entry::Call { .. } => codec::decode("call record", record),
        Entry::DeleteUser { .. } => Err(corrupt(Bad::Damaged("not a call entry"))),
    }
}

/// What scanning a journal's bytes found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Scan {
    /// Where the valid entries end: a torn last entry starts here (the file is truncated to it).
    pub end: u64,
    /// Damaged byte ranges between valid entries (skipped).
    pub damaged: Vec<std::ops::Range<u64>>,
}

/// Bytes read from the file at a time while scanning (plus one whole frame of lookahead).
const CHUNK: usize = 4 << 20;

/// Walks the frames of `file` from offset `start` to `len`, calling
/// `visit(offset, frame_len, entry)` for each valid one. A bad frame is
/// skipped up to the next offset where a valid frame starts (a damaged range);
/// with none after it, it is a torn tail. Reads in chunks: memory stays at
/// [`CHUNK`] plus one frame whatever the file's size.
pub(super) fn scan(
    file: &std::fs::File,
    start: u64,
    len: u64,
    mut visit: impl FnMut(u64, u32, Entry<'_>),
) -> std::io::Result<Scan> {
    use std::os::unix::fs::FileExt as _;
    let mut out = Scan::default();
    let (mut buf, mut buf_at) = (Vec::new(), start);
    let mut pos = start;
    let mut bad_from: Option<u64> = None;
    loop {
        let rel = (pos - buf_at) as usize;
        let buf_end = buf_at + buf.len() as u64;
        if buf.len() - rel < FRAME_HEAD + MAX_BODY && buf_end < len {
            buf.drain(..rel);
            buf_at = pos;
            let more = (CHUNK + FRAME_HEAD + MAX_BODY - buf.len()).min((len - buf_end) as usize);
            let old = buf.len();
            buf.resize(old + more, 0);
            file.read_exact_at(&mut buf[old..], buf_end)?;
            continue;
        }
        if rel == buf.len() {
            break;
        }
        match body(&buf[rel..]).and_then(|b| Ok(((FRAME_HEAD + b.len()) as u32, parse(b)?.0))) {
            Ok((frame_len, entry)) => {
                if let Some(from) = bad_from.take() {
                    out.damaged.push(from..pos);
                }
                visit(pos, frame_len, entry);
                pos += u64::from(frame_len);
            }
            Err(_) => {
                bad_from.get_or_insert(pos);
                pos += 1;
            }
        }
    }
    out.end = bad_from.unwrap_or(pos);
    Ok(out)
}
