//! Secrets at rest: account passwords, tokens and client secrets are sealed with
//! XChaCha20-Poly1305 under a 32-byte key from `<data_dir>/secret.key` (mode 0600)
//! or from `CONTACTBRIDGE_SECRET_KEY` (base64).
//!
//! Each sealed value is `version byte ‖ 24-byte random nonce ‖ ciphertext+tag`; the
//! associated data is the account id, so a sealed secret moved to another account
//! does not open.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The environment variable that may hold the key (base64 of 32 bytes).
pub const KEY_ENV: &str = "CONTACTBRIDGE_SECRET_KEY";
/// The key file's name in the data directory.
pub const KEY_FILE: &str = "secret.key";

const SEALED_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// What went wrong with the key or a sealed secret. Never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret key file {path} could not be {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the secret key file {path} is readable by group or others (mode {mode:o}); \
         run `chmod 600 {path}` (and check who could have read it)"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("the secret key from {from} is invalid: {reason}")]
    BadKey { from: String, reason: String },
    #[error(
        "the stored secret of account {account} cannot be decrypted: the secret key ({from}) is not the one it \
         was written with; restore the original key, or set the secret again \
         (`contactbridge account set-secret {account} …`)"
    )]
    WrongKey { account: String, from: String },
    #[error("the stored secret of account {account} is damaged: {reason}")]
    Damaged { account: String, reason: String },
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
}

/// The key secrets are sealed with. Its `Debug` shows only where it came from.
#[derive(Clone)]
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
    from: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey").field("from", &self.from).finish_non_exhaustive()
    }
}

impl SecretKey {
    /// The key from [`KEY_ENV`] if set, else from `<data_dir>/secret.key`, which is
    /// created (mode 0600, 32 random bytes) if it does not exist.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SecretError> {
        Self::load(data_dir, std::env::var(KEY_ENV).ok().as_deref())
    }

    /// [`SecretKey::load_or_create`] with the environment variable's value given.
    pub fn load(data_dir: &Path, from_env: Option<&str>) -> Result<Self, SecretError> {
        match from_env {
            Some(v) => Self::from_base64(v, KEY_ENV),
            None => Self::from_file(&data_dir.join(KEY_FILE), true),
        }
    }

    /// A key from base64 text (32 bytes once decoded).
    pub fn from_base64(text: &str, from: &str) -> Result<Self, SecretError> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|e| SecretError::BadKey {
            from: from.into(),
            reason: format!("not base64 ({e}); make one with `head -c 32 /dev/urandom | base64`"),
        })?;
        Self::from_bytes(&bytes, from)
    }

    fn from_bytes(bytes: &[u8], from: &str) -> Result<Self, SecretError> {
        if bytes.len() != 32 {
            return Err(SecretError::BadKey {
                from: from.into(),
                reason: format!("{} bytes instead of 32", bytes.len()),
            });
        }
        Ok(Self { cipher: XChaCha20Poly1305::new(Key::from_slice(bytes)), from: from.into() })
    }

    /// The key in `path`; with `create`, a new random key is written there if the file is missing.
    /// A file readable by group or others is refused.
    pub fn from_file(path: &Path, create: bool) -> Result<Self, SecretError> {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let io = |doing: &'static str| move |source| SecretError::Io { path: path.to_path_buf(), doing, source };
        let from = path.display().to_string();
        match std::fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(SecretError::Permissions { path: path.to_path_buf(), mode });
                }
                let text = std::fs::read_to_string(path).map_err(io("read"))?;
                Self::from_base64(&text, &from)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io("given a directory"))?;
                }
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io("created"))?;
                let text = base64::engine::general_purpose::STANDARD.encode(bytes);
                file.write_all(format!("{text}\n").as_bytes()).and_then(|_| file.sync_all()).map_err(io("written"))?;
                tracing::info!(path = %path.display(), "created a new secret key; back it up with the data directory");
                Self::from_bytes(&bytes, &from)
            }
            Err(e) => Err(io("read")(e)),
        }
    }

    /// Where the key came from (a path or the environment variable's name).
    pub fn source(&self) -> &str {
        &self.from
    }

    /// Seals `plain` for `account` with a fresh random nonce.
    pub fn seal(&self, account: &str, plain: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SecretError::Random(e.to_string()))?;
        let sealed =
            self.cipher
                .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad: account.as_bytes() })
                .map_err(|_| SecretError::Damaged { account: account.into(), reason: "encryption failed".into() })?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(SEALED_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`SecretKey::seal`] sealed for `account`.
    pub fn open(&self, account: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        let damaged = |reason: &str| SecretError::Damaged { account: account.into(), reason: reason.into() };
        let (version, rest) = sealed.split_first().ok_or_else(|| damaged("empty"))?;
        if *version != SEALED_VERSION {
            return Err(damaged(&format!("format version {version}, this build reads {SEALED_VERSION}")));
        }
        if rest.len() < NONCE_LEN + 16 {
            return Err(damaged("too short"));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: account.as_bytes() })
            .map_err(|_| SecretError::WrongKey { account: account.into(), from: self.from.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_with_fresh_nonces() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::from_file(&dir.path().join(KEY_FILE), true).unwrap();
        let a = key.seal("acc", b"hunter2").unwrap();
        let b = key.seal("acc", b"hunter2").unwrap();
        assert_ne!(a, b, "a fresh nonce each time");
        assert_eq!(key.open("acc", &a).unwrap(), b"hunter2");
        assert!(!a.windows(7).any(|w| w == b"hunter2"));
    }

    #[test]
    fn a_secret_does_not_open_for_another_account_or_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::from_file(&dir.path().join(KEY_FILE), true).unwrap();
        let sealed = key.seal("acc", b"hunter2").unwrap();
        assert!(matches!(key.open("other", &sealed), Err(SecretError::WrongKey { .. })));
        let other =
            SecretKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]), "env").unwrap();
        let e = other.open("acc", &sealed).unwrap_err();
        assert!(e.to_string().contains("not the one it was written with"), "{e}");
    }

    #[test]
    fn key_file_is_created_0600_and_reused_and_loose_permissions_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let key = SecretKey::from_file(&path, true).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let sealed = key.seal("acc", b"x").unwrap();
        let again = SecretKey::from_file(&path, false).unwrap();
        assert_eq!(again.open("acc", &sealed).unwrap(), b"x");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SecretKey::from_file(&path, false).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }

    #[test]
    fn a_key_from_the_environment_wins_and_no_key_file_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let env = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        let key = SecretKey::load(dir.path(), Some(&env)).unwrap();
        assert_eq!(key.source(), KEY_ENV);
        assert!(!dir.path().join(KEY_FILE).exists());
        let sealed = key.seal("acc", b"x").unwrap();
        assert_eq!(SecretKey::load(dir.path(), Some(&env)).unwrap().open("acc", &sealed).unwrap(), b"x");
        let from_file = SecretKey::load(dir.path(), None).unwrap();
        assert!(dir.path().join(KEY_FILE).exists());
        assert!(from_file.open("acc", &sealed).is_err());
    }

    #[test]
    fn bad_keys_say_what_is_wrong() {
        let e = SecretKey::from_base64("not base64!", KEY_ENV).unwrap_err().to_string();
        assert!(e.contains(KEY_ENV) && e.contains("base64"), "{e}");
        let e = SecretKey::from_base64("AAAA", KEY_ENV).unwrap_err().to_string();
        assert!(e.contains("3 bytes instead of 32"), "{e}");
    }
}
