//! Accounts: the sources an admin registers for users (Graph, CardDAV, CalDAV,
//! files), their sealed secrets, and the [`Registry`] that syncs them.
//!
//! An account's settings are stored without their secret; the secret is sealed
//! with the data directory's key ([`crate::secrets`]) and stored apart, and put
//! back only in memory to build a connector.

mod codes;
pub mod metrics;
pub mod notify;
mod progress;
mod reach;
mod registry;
mod settings;
mod subset;

pub use crate::model::{AccountSpec, SourceKind};
pub use crate::store::{AccountStore, CollectionBackoff, RegistryStore, RunRecord};
pub use codes::{assign_code, AssignOutcome};
pub use progress::{Progress, ProgressHandle};
pub use registry::{explain, AccountError, AccountStatus, CollectionStatus, PartCheck, Registry};
pub use settings::{settings_json, spec_from_registration, Registration};
