//! The value of a record entry: a small fixed header the hot paths read
//! without decoding JSON, then the body.
//!
//! `[format version][generation: u64 BE][record kind][JSON body]`

use crate::model::HandlingCode;
use crate::store::{codec, StoreError};
use contactbridge_connector::{Record, RecordKind};
use serde::{Deserialize, Serialize};

const HEADER: usize = 1 + 8 + 1;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Body {
    pub record: Record,
    /// The secondary keys written for this record, removed with it.
    pub keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<HandlingCode>,
}

/// What reads need of an entry: the body without its key list (skipped
/// while parsing, never allocated).
#[derive(Debug, Deserialize)]
pub(super) struct Read {
    pub record: Record,
    #[serde(default)]
    pub code: Option<HandlingCode>,
}

pub(super) fn read(bytes: &[u8]) -> Result<Read, StoreError> {
    check(bytes)?;
    serde_json::from_slice(&bytes[HEADER..]).map_err(|e| corrupt(&e.to_string()))
}

pub(super) fn encode(generation: u64, body: &Body) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(codec::VERSION);
    out.extend_from_slice(&generation.to_be_bytes());
    out.push(kind_byte(body.record.kind()));
    serde_json::to_writer(&mut out, body).expect("serialising plain data to memory cannot fail");
    out
}

/// The same entry with another generation (for records a snapshot retained).
pub(super) fn with_generation(bytes: &[u8], generation: u64) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[1..9].copy_from_slice(&generation.to_be_bytes());
    out
}

pub(super) fn generation(bytes: &[u8]) -> Result<u64, StoreError> {
    check(bytes)?;
    Ok(u64::from_be_bytes(bytes[1..9].try_into().expect("header length checked")))
}

pub(super) fn kind(bytes: &[u8]) -> Result<RecordKind, StoreError> {
    check(bytes)?;
    RecordKind::ALL.into_iter().find(|k| kind_byte(*k) == bytes[9]).ok_or_else(|| corrupt("unknown record kind"))
}

pub(super) fn body(bytes: &[u8]) -> Result<Body, StoreError> {
    check(bytes)?;
    serde_json::from_slice(&bytes[HEADER..]).map_err(|e| corrupt(&e.to_string()))
}

fn check(bytes: &[u8]) -> Result<(), StoreError> {
    if bytes.len() < HEADER {
        return Err(corrupt("entry shorter than its header"));
    }
    if bytes[0] != codec::VERSION {
        return Err(corrupt(&format!("format version {}, this build reads {}", bytes[0], codec::VERSION)));
    }
    Ok(())
}

fn kind_byte(kind: RecordKind) -> u8 {
    match kind {
        RecordKind::Contact => b'c',
        RecordKind::Event => b'e',
        RecordKind::Mail => b'm',
        RecordKind::Document => b'd',
        RecordKind::OutOfOffice => b'o',
    }
}

fn corrupt(reason: &str) -> StoreError {
    StoreError::Corrupt { what: "record entry", reason: reason.to_string() }
}
