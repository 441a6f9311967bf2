//! Sign-in for the notification window: single-use login links issued by an
//! admin, exchanged for a session cookie, and who a session may see.
//!
//! A token reads `cbw_<secret>` (32 random bytes, base64url). Only its SHA-256
//! is stored, with its kind, user and expiry ([`WebTokenStore`]); as with API
//! keys, a fast hash is right for 256 random bits.

use crate::store::{StoreError, UserStore};
pub use crate::store::{StoredWebToken, TokenKind, WebTokenStore};
use crate::tokens::{self, sha256_hex as hash};
use crate::user::{UserId, UserProfile};
use chrono::{DateTime, Duration, Utc};

/// The session cookie's name.
pub const COOKIE: &str = "cb_session";
/// How long a login link stays valid unless the admin says otherwise.
pub const LOGIN_VALID: Duration = Duration::hours(24);
/// How long a session lasts.
pub const SESSION_VALID: Duration = Duration::hours(12);

/// A token just made: the text goes to the user once and is never stored.
pub struct NewToken {
    pub text: String,
    pub expires: DateTime<Utc>,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken").field("expires", &self.expires).finish_non_exhaustive()
    }
}

/// Why a token was refused (deliberately vague towards the browser).
#[derive(Debug, thiserror::Error)]
pub enum WebAuthError {
    #[error("not signed in, or the session or link has expired")]
    Invalid,
    #[error("user {0} does not exist")]
    NoSuchUser(UserId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn issue(
    store: &dyn WebTokenStore,
    user: &UserId,
    kind: TokenKind,
    valid: Duration,
    now: DateTime<Utc>,
) -> Result<NewToken, StoreError> {
    let text = format!("cbw_{}", tokens::random_secret()?);
    let expires = now + valid;
    store.put_web_token(&StoredWebToken { sha256: hash(&text), kind, user: user.clone(), created: now, expires })?;
    Ok(NewToken { text, expires })
}

/// Issues a login link token for an existing user, valid for `valid`.
pub fn issue_login(
    tokens: &dyn WebTokenStore,
    users: &dyn UserStore,
    user: &UserId,
    valid: Duration,
    now: DateTime<Utc>,
) -> Result<NewToken, WebAuthError> {
    if users.profile(user)?.is_none() {
        return Err(WebAuthError::NoSuchUser(user.clone()));
    }
    Ok(issue(tokens, user, TokenKind::Login, valid, now)?)
}

/// What the Admin RPC `IssueWebLogin` needs: where tokens go and the window's
/// address as users reach it; and whom to tell when an admin changes users.
#[derive(Clone)]
pub struct WebLogins {
    pub tokens: std::sync::Arc<dyn WebTokenStore>,
    /// E.g. `http://127.0.0.1:8080` (no trailing slash).
    pub base_url: String,
    /// The web server's [`SessionChecks`] (`WebState::session_checks`): PutUser
    /// and DeleteUser make open event streams re-check their viewer at once.
    pub sessions: SessionChecks,
}

/// Tells the open event streams of a web server to re-check their session and
/// viewer now (a logout; a user deleted or changed by an admin). Cheap to clone.
#[derive(Clone)]
pub struct SessionChecks(std::sync::Arc<tokio::sync::watch::Sender<u64>>);

impl Default for SessionChecks {
    fn default() -> Self {
        Self(std::sync::Arc::new(tokio::sync::watch::channel(0).0))
    }
}

impl SessionChecks {
    /// Every open stream re-checks now.
    pub fn recheck(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.subscribe()
    }
}

impl std::fmt::Debug for WebLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebLogins").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

/// The path of the login link for a token (`/login?token=…`; the token is URL-safe).
pub fn login_path(token: &NewToken) -> String {
    format!("/login?token={}", token.text)
}

/// Exchanges a login token (once) for a session token valid for [`SESSION_VALID`].
pub fn exchange_login(
    store: &dyn WebTokenStore,
    login: &str,
    now: DateTime<Utc>,
) -> Result<(UserId, NewToken), WebAuthError> {
    exchange_login_for(store, login, SESSION_VALID, now)
}

/// Exchanges a login token (once) for a session token valid for `valid`.
pub fn exchange_login_for(
    store: &dyn WebTokenStore,
    login: &str,
    valid: Duration,
    now: DateTime<Utc>,
) -> Result<(UserId, NewToken), WebAuthError> {
    let stored = check(store, login, TokenKind::Login, now)?;
    // Single use: a link that leaks after use opens nothing.
    if !store.delete_web_token(&stored.sha256)? {
        return Err(WebAuthError::Invalid);
    }
    let session = issue(store, &stored.user, TokenKind::Session, valid, now)?;
    Ok((stored.user, session))
}

/// The user a valid login token would sign in, without using it up.
pub fn login_user(store: &dyn WebTokenStore, login: &str, now: DateTime<Utc>) -> Result<UserId, WebAuthError> {
    Ok(check(store, login, TokenKind::Login, now)?.user)
}

/// The user of a valid session token.
pub fn session_user(store: &dyn WebTokenStore, token: &str, now: DateTime<Utc>) -> Result<UserId, WebAuthError> {
    Ok(session(store, token, now)?.user)
}

/// A valid session token as stored (its user and when it expires).
pub fn session(store: &dyn WebTokenStore, token: &str, now: DateTime<Utc>) -> Result<StoredWebToken, WebAuthError> {
    check(store, token, TokenKind::Session, now)
}

/// Ends a session.
pub fn end_session(store: &dyn WebTokenStore, session: &str) -> Result<(), StoreError> {
    store.delete_web_token(&hash(session)).map(|_| ())
}

fn check(
    store: &dyn WebTokenStore,
    text: &str,
    kind: TokenKind,
    now: DateTime<Utc>,
) -> Result<StoredWebToken, WebAuthError> {
    if !text.starts_with("cbw_") || text.len() > 100 {
        return Err(WebAuthError::Invalid);
    }
    let stored = store.web_token(&hash(text))?.ok_or(WebAuthError::Invalid)?;
    if stored.kind != kind {
        return Err(WebAuthError::Invalid);
    }
    if stored.expires <= now {
        store.delete_web_token(&stored.sha256)?;
        return Err(WebAuthError::Invalid);
    }
    Ok(stored)
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').filter_map(|c| c.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// Who is looking: the signed-in user and the users who designated them as attendant.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub profile: UserProfile,
    /// Users of the same tenant whose profile names this user as `attendant.user`.
    pub attends: Vec<UserProfile>,
}

impl Viewer {
    /// Loads the viewer for a signed-in user.
    pub fn load(store: &dyn UserStore, user: &UserId) -> Result<Self, WebAuthError> {
        let profile = store.profile(user)?.ok_or_else(|| WebAuthError::NoSuchUser(user.clone()))?;
        let attends = store
            .profiles()?
            .into_iter()
            // Only users of the viewer's tenant: an attendant named across tenants (data
            // written before PutUser checked it) sees and directs nothing.
            .filter(|p| {
                p.id != *user
                    && p.tenant == profile.tenant
                    && p.attendant.as_ref().and_then(|a| a.user.as_ref()) == Some(user)
            })
            .collect();
        Ok(Self { profile, attends })
    }

    /// Whether this viewer, loaded earlier, still stands as loaded: the user
    /// exists and every user they attend still names them as attendant (an
    /// open event stream asks this on every event and every few seconds).
    pub fn still_current(&self, store: &dyn UserStore) -> Result<bool, WebAuthError> {
        let Some(profile) = store.profile(self.id())? else { return Ok(false) };
        if profile.tenant != self.profile.tenant {
            return Ok(false);
        }
        for attended in &self.attends {
            match store.profile(&attended.id)? {
                Some(now) if now.tenant == attended.tenant && Self::names_as_attendant(&now, &profile) => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Whether `attended` names `viewer` as its attendant (as [`Viewer::load`] counts it).
    fn names_as_attendant(attended: &UserProfile, viewer: &UserProfile) -> bool {
        attended.id != viewer.id && attended.attendant.as_ref().and_then(|a| a.user.as_ref()) == Some(&viewer.id)
    }

    pub fn id(&self) -> &UserId {
        &self.profile.id
    }

    /// The profile of `user` if this viewer may see their calls and contacts.
    pub fn may_see(&self, user: &UserId) -> Option<&UserProfile> {
        if *user == self.profile.id {
            return Some(&self.profile);
        }
        self.attends.iter().find(|p| p.id == *user)
    }

    /// How this viewer signs what they do to `user`'s call: the user id, or `attendant:<id>`.
    pub fn acting_for(&self, user: &UserId) -> String {
        if *user == self.profile.id {
            self.profile.id.to_string()
        } else {
            format!("attendant:{}", self.profile.id)
        }
    }

    /// Every user whose calls this viewer sees (themselves first).
    pub fn users(&self) -> impl Iterator<Item = &UserProfile> {
        std::iter::once(&self.profile).chain(self.attends.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let h = "a=1; cb_session_x=2; cb_session=cbw_abc";
        assert_eq!(cookie(h, COOKIE), Some("cbw_abc"));
        assert_eq!(cookie("x=1", COOKIE), None);
    }

    #[test]
    fn token_debug_hides_the_text() {
        let t = NewToken { text: "cbw_secret".into(), expires: Utc::now() };
        assert!(!format!("{t:?}").contains("secret"));
    }
}
