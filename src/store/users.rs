//! User data: what only users own (profiles, called numbers, local
//! handling-code assignments, last choices). Never rebuilt, so backed up.

use super::{AssignTarget, RecordRef, Result};
use crate::model::{HandlingCode, UserId, UserProfile};

/// What only users own: never rebuilt from sources, so backed up.
pub trait UserStore: Send + Sync {
    /// Stores a profile and its called numbers (keys as `phone::called_number_key` makes them).
    /// Fails if a called number belongs to another user.
    fn put_profile(&self, profile: &UserProfile, called_keys: &[String]) -> Result<()>;
    fn profile(&self, user: &UserId) -> Result<Option<UserProfile>>;
    fn profiles(&self) -> Result<Vec<UserProfile>>;
    /// Deletes a profile, its called numbers, assignments, choices and calls.
    fn delete_user(&self, user: &UserId) -> Result<bool>;
    /// The user a called-number key belongs to.
    fn user_by_called_number(&self, key: &str) -> Result<Option<UserId>>;

    /// A handling code the user assigned locally to a contact or a number.
    fn assignment(&self, user: &UserId, target: &AssignTarget) -> Result<Option<HandlingCode>>;
    fn assign(&self, user: &UserId, target: &AssignTarget, code: Option<&HandlingCode>) -> Result<()>;
    /// The contact the user picked last for calls from this number key.
    fn last_choice(&self, user: &UserId, number_key: &str) -> Result<Option<RecordRef>>;
    fn set_last_choice(&self, user: &UserId, number_key: &str, contact: &RecordRef) -> Result<()>;
}
