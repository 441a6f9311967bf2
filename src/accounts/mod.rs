//! Accounts: the sources an admin registers for users (Graph, CardDAV, CalDAV,
//! files), their sealed secrets, and the [`Registry`] that syncs them.
//!
//! An account's settings are stored without their secret; the secret is sealed
//! with the data directory's key ([`crate::secrets`]) and stored apart, and put
//! back only in memory to build a connector.

mod progress;
mod reach;
mod registry;
mod settings;
mod spec;
mod store;
mod subset;

pub use progress::{Progress, ProgressHandle};
pub use registry::{explain, AccountError, AccountStatus, CollectionStatus, PartCheck, Registry, RegistryStore};
pub use settings::{settings_json, spec_from_registration, Registration};
pub use spec::{AccountSpec, SourceKind};
pub use store::{AccountStore, CollectionBackoff, RunRecord};
