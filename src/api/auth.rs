//! API keys: creation, storage format, and checking a request's
//! `authorization: Bearer <key>` header.
//!
//! A key reads `cb_<id>_<secret>`: `id` is 8 hex digits that name the key
//! (safe to log), `secret` is 32 random bytes in base64url. Only the SHA-256 of
//! the secret is stored. A fast hash is right here: the secret is 256 bits of
//! randomness, so there is nothing to brute-force and nothing a slow password
//! hash (argon2) would protect; it would only slow down every call.
//!
//! Each key has one tenant and one [`Scope`]: `tsps` keys resolve and report
//! calls, `admin` keys manage users. A key never reaches another tenant's users.

use crate::store::StoreError;
pub use crate::store::{ApiKeyStore, Scope, StoredKey};
use crate::tokens::{self, constant_time_eq, hex, sha256_hex};
use chrono::Utc;

/// A freshly created key: the text is shown once and never stored.
pub struct NewKey {
    pub text: String,
    pub stored: StoredKey,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey").field("stored", &self.stored).finish_non_exhaustive()
    }
}

/// Who is calling, once the key checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub tenant: String,
    pub scope: Scope,
}

/// Why a key was refused. Deliberately vague towards the client.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing API key: send `authorization: Bearer <key>`")]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a random key for `tenant` with `scope` and stores its hash.
pub fn create_key(store: &dyn ApiKeyStore, tenant: &str, scope: Scope, label: &str) -> Result<NewKey, StoreError> {
    check_tenant(tenant)?;
    let id = hex(&tokens::random_bytes::<4>()?);
    let secret = tokens::random_secret()?;
    let stored = StoredKey {
        id: id.clone(),
        tenant: tenant.to_string(),
        scope,
        secret_sha256: sha256_hex(&secret),
        created: Utc::now(),
        label: label.to_string(),
    };
    store.put_key(&stored)?;
    Ok(NewKey { text: format!("cb_{id}_{secret}"), stored })
}

/// Stores a key with a fixed, known text (the demo's `demo-tsps-key`). Only
/// for demos and tests: such a key is as strong as its text.
pub fn put_fixed_key(
    store: &dyn ApiKeyStore,
    text: &str,
    tenant: &str,
    scope: Scope,
    label: &str,
) -> Result<StoredKey, StoreError> {
    check_tenant(tenant)?;
    let (id, secret) = split(text);
    let stored = StoredKey {
        id,
        tenant: tenant.to_string(),
        scope,
        secret_sha256: sha256_hex(secret),
        created: Utc::now(),
        label: label.to_string(),
    };
    store.put_key(&stored)?;
    Ok(stored)
}

/// Checks a key's text against the store.
pub fn verify(store: &dyn ApiKeyStore, text: &str) -> Result<Principal, AuthError> {
    let text = text.trim();
    if text.is_empty() || text.len() > 512 {
        return Err(AuthError::Invalid);
    }
    let (id, secret) = split(text);
    let stored = store.key(&id)?.ok_or(AuthError::Invalid)?;
    if !constant_time_eq(sha256_hex(secret).as_bytes(), stored.secret_sha256.as_bytes()) {
        return Err(AuthError::Invalid);
    }
    Ok(Principal { key_id: stored.id, tenant: stored.tenant, scope: stored.scope })
}

/// The bearer token of an `authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Invalid);
    }
    Ok(token.trim())
}

/// `cb_<id>_<secret>` → (id, secret); any other text (fixed demo keys) is
/// named by a hash of itself.
fn split(text: &str) -> (String, &str) {
    if let Some((id, secret)) = text.strip_prefix("cb_").and_then(|rest| rest.split_once('_')) {
        if id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return (id.to_ascii_lowercase(), secret);
        }
    }
    (format!("fixed-{}", &sha256_hex(text)[..12]), text)
}

fn check_tenant(tenant: &str) -> Result<(), StoreError> {
    if tenant.trim().is_empty() || tenant.len() > 128 || tenant.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "tenant {} must be 1 to 128 printable characters",
            crate::connector::echo(tenant)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    #[test]
    fn created_keys_verify_and_near_misses_do_not() {
        let store = SledStore::temporary().unwrap();
        let k = create_key(&store, "acme", Scope::Tsps, "pbx").unwrap();
        assert!(k.text.starts_with(&format!("cb_{}_", k.stored.id)));
        let p = verify(&store, &k.text).unwrap();
        assert_eq!((p.tenant.as_str(), p.scope), ("acme", Scope::Tsps));
        let mut wrong = k.text.clone();
        wrong.pop();
        wrong.push(if k.text.ends_with('A') { 'B' } else { 'A' });
        assert!(matches!(verify(&store, &wrong), Err(AuthError::Invalid)));
        assert!(matches!(verify(&store, "cb_00000000_nope"), Err(AuthError::Invalid)));
        assert!(!format!("{:?}", k).contains(&k.text[12..]), "Debug must not show the secret");
        let stored = store.key(&k.stored.id).unwrap().unwrap();
        assert!(!stored.secret_sha256.contains(&k.text[12..]));
    }

    #[test]
    fn fixed_keys_and_bearer_headers() {
        let store = SledStore::temporary().unwrap();
        put_fixed_key(&store, "demo-admin-key", "demo", Scope::Admin, "demo").unwrap();
        assert_eq!(verify(&store, "demo-admin-key").unwrap().scope, Scope::Admin);
        assert!(verify(&store, "demo-admin-kez").is_err());
        assert_eq!(bearer(Some("Bearer abc")).unwrap(), "abc");
        assert!(matches!(bearer(None), Err(AuthError::Missing)));
        assert!(matches!(bearer(Some("Basic abc")), Err(AuthError::Invalid)));
        assert_eq!(store.keys(Some("demo")).unwrap().len(), 1);
        assert!(store.keys(Some("other")).unwrap().is_empty());
    }
}
