//! Value encoding: one format-version byte, then the value.
//!
//! | version | body                                                     |
//! |---------|----------------------------------------------------------|
//! | 1       | JSON (written up to the first compact build; still read) |
//! | 2       | CBOR (RFC 8949), through serde                           |
//!
//! Why CBOR for these values: they are the user-owned types (profiles and
//! their handling tables, accounts, API keys, web tokens, call records), whose
//! serde attributes (`flatten`, `untagged`, internally tagged enums,
//! `skip_serializing_if`) need a self-describing format; a positional one
//! (postcard, bincode) mis-reads them. CBOR is an IETF standard, binary
//! (no quoting or escaping, byte strings as bytes), and `ciborium` is the serde
//! implementation the archived `serde_cbor` points to. It reads untrusted
//! lengths in chunks (no allocation by a claimed length) and limits nesting.
//! The hot index records use the positional form of [`super::compact`] instead.
//!
//! An older version is read as it is ([`super::sled`] rewrites user data in
//! the current version on open); a newer one is refused, saying so.

use super::StoreError;
use serde::{de::DeserializeOwned, Serialize};

/// The version of everything this build writes.
pub(crate) const VERSION: u8 = 2;
/// Version 1: JSON.
pub(crate) const JSON: u8 = 1;

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![VERSION];
    ciborium::into_writer(value, &mut out).expect("serialising plain data to memory cannot fail");
    out
}

pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { what, reason };
    match bytes.split_first() {
        Some((&VERSION, cbor)) => {
            ciborium::from_reader(cbor).map_err(|e| corrupt(format!("format version {VERSION} (CBOR): {e}")))
        }
        Some((&JSON, json)) => {
            serde_json::from_slice(json).map_err(|e| corrupt(format!("format version {JSON} (JSON): {e}")))
        }
        Some((&v, _)) => Err(corrupt(version_error(v))),
        None => Err(corrupt("empty value".into())),
    }
}

/// Whether a value is stored in an older version than this build writes.
pub(crate) fn is_old(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|v| *v < VERSION)
}

/// Why a version byte cannot be read: newer than this build, or no version at all (damage).
pub(crate) fn version_error(v: u8) -> String {
    if v > VERSION {
        format!(
            "format version {v} is newer than this build reads (up to {VERSION}): written by a newer contactbridge; \
             upgrade it"
        )
    } else {
        format!("unknown format version {v} (damaged value?)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Tagged {
        A {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            x: Option<u32>,
            #[serde(flatten)]
            rest: Inner,
        },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Inner {
        name: String,
        at: chrono::DateTime<chrono::Utc>,
    }

    fn sample() -> Tagged {
        Tagged::A { x: None, rest: Inner { name: "n".into(), at: chrono::DateTime::from_timestamp(1, 5).unwrap() } }
    }

    #[test]
    fn round_trips_serde_attributes_and_reads_version_1_json() {
        let v = encode(&sample());
        assert_eq!(v[0], VERSION);
        assert_eq!(decode::<Tagged>("t", &v).unwrap(), sample());
        let mut json = vec![JSON];
        json.extend(serde_json::to_vec(&sample()).unwrap());
        assert_eq!(decode::<Tagged>("t", &json).unwrap(), sample());
        assert!(is_old(&json) && !is_old(&v));
    }

    #[test]
    fn damage_is_corrupt_with_what_and_why_and_only_newer_versions_say_newer() {
        let msg = |bytes: &[u8]| match decode::<Tagged>("thing", bytes) {
            Err(e @ StoreError::Corrupt { what: "thing", .. }) => e.to_string(),
            other => panic!("{other:?}"),
        };
        assert!(msg(&[]).contains("empty value"));
        let newer = msg(&[VERSION + 1, 0xa0]);
        assert!(newer.contains("newer"), "{newer}");
        for damaged in [&[0u8, 1, 2][..], &[VERSION, 0xff, 0x13], &[JSON, b'{']] {
            let m = msg(damaged);
            assert!(!m.contains("newer"), "{m}");
        }
        // Cut short anywhere, or bytes flipped: an error, never a panic.
        let good = encode(&sample());
        for n in 1..good.len() {
            assert!(decode::<Tagged>("thing", &good[..n]).is_err());
        }
        let mut rng = 0x2545f491u64;
        for _ in 0..2000 {
            let mut bytes = good.clone();
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let i = 1 + (rng as usize) % (bytes.len() - 1);
            bytes[i] = (rng >> 32) as u8;
            let _ = decode::<Tagged>("thing", &bytes);
        }
        // A claimed length far beyond the value allocates nothing.
        let huge = [VERSION, 0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert!(decode::<String>("thing", &huge).is_err());
        let huge_array = [VERSION, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert!(decode::<Vec<u64>>("thing", &huge_array).is_err());
    }
}
