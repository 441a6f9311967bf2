//! Bearer secrets (API keys, web login links and sessions): random text to hand
//! out once, and the SHA-256 kept in its place. The secrets are 256 random bits,
//! so a fast hash is right; a slow password hash would protect nothing.

use crate::store::StoreError;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// `N` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Backend {
        doing: "drawing random bytes for a secret",
        cause: Box::new(std::io::Error::other(e.to_string())),
    })?;
    Ok(bytes)
}

/// 32 random bytes as base64url without padding (43 characters).
pub fn random_secret() -> Result<String, StoreError> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// The SHA-256 of `text`, lower-case hex: what is stored instead of the secret.
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equality that takes as long for every mismatch position.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_their_hashes_stable() {
        let (a, b) = (random_secret().unwrap(), random_secret().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(
            constant_time_eq(b"same", b"same") && !constant_time_eq(b"same", b"sane") && !constant_time_eq(b"a", b"ab")
        );
    }
}
