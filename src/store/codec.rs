//! Value encoding: one format-version byte, then JSON. Old versions are
//! migrated here when the format changes; unknown newer versions are refused.

use super::StoreError;
use serde::{de::DeserializeOwned, Serialize};

/// The version of everything this build writes.
pub(crate) const VERSION: u8 = contactbridge_connector::FORMAT_VERSION;

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![VERSION];
    serde_json::to_writer(&mut out, value).expect("serialising plain data to memory cannot fail");
    out
}

pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&VERSION, json)) => {
            serde_json::from_slice(json).map_err(|e| StoreError::Corrupt { what, reason: e.to_string() })
        }
        Some((v, _)) => {
            Err(StoreError::Corrupt { what, reason: format!("format version {v}, this build reads {VERSION}") })
        }
        None => Err(StoreError::Corrupt { what, reason: "empty value".into() }),
    }
}
