//! Users and what they own: the profile (called numbers, region, time zone,
//! attendant, forward targets, context criteria, manual status) and the
//! handling table that maps handling code × status to a handling method.
//!
//! The types are defined in [`crate::model`] (below the store, which keeps
//! them) and re-exported here; what needs more than the data stays here.

pub use crate::model::limits;
pub use crate::model::{
    Attendant, ContextCriteria, ForwardTarget, HandlingCode, HandlingMethod, HandlingRule, HandlingTable, ManualStatus,
    Match, UserId, UserProfile,
};

use crate::store::{StoreError, UserStore};
use std::path::Path;

/// Reads a profile from a TOML file (see `examples/demo/user.toml`).
pub fn load_profile_file(path: &Path) -> Result<UserProfile, StoreError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StoreError::Invalid(format!("reading profile {}: {e}", path.display())))?;
    let profile: UserProfile =
        toml::from_str(&text).map_err(|e| StoreError::Invalid(format!("profile {}: {e}", path.display())))?;
    profile.validate().map_err(|e| StoreError::Invalid(format!("profile {}: {e}", path.display())))?;
    Ok(profile)
}

/// Stores a profile with the lookup keys of its called numbers.
pub fn put_profile(store: &dyn UserStore, profile: &UserProfile) -> Result<(), StoreError> {
    limits::check(profile).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let keys = profile
        .called_numbers
        .iter()
        .map(|n| {
            crate::phone::called_number_key(n)
                .map_err(|e| StoreError::Invalid(format!("called number {}: {e}", crate::connector::echo(n))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    store.put_profile(profile, &keys)
}
