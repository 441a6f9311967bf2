//! The behaviour every storage backend must show: one public function per
//! behaviour, each taking a factory that returns a fresh, empty backend.
//!
//! A backend's tests run them all with [`store_conformance!`](crate::store_conformance):
//!
//! ```ignore
//! contactbridge::store_conformance!(|| std::sync::Arc::new(MyBackend::temporary()));
//! ```
//!
//! which generates one `#[test]` per behaviour. The sled backend runs them in
//! `store/sled/conformance.rs`; tests of one backend's own mechanics (sled's
//! index epoch, its damaged files, its lock) stay beside that backend.

mod calls;
mod index;
mod maintenance;
mod owned;
mod remote;
/// Record, batch, user and call builders, shared with the backends' own tests.
pub(crate) mod support;
mod users;

pub use calls::*;
pub use index::*;
pub use maintenance::*;
pub use owned::*;
pub use remote::Remote;
pub use users::*;

use super::Backend;
use std::sync::Arc;

/// Makes a fresh, empty backend.
pub type Factory<'a> = &'a dyn Fn() -> Arc<dyn Backend>;

/// Generates one `#[test]` per behaviour of [`crate::store::conformance`] for
/// the backend `$new` makes (an expression callable as `$new()`, returning an
/// `Arc` of the backend).
#[macro_export]
#[doc(hidden)]
macro_rules! store_conformance {
    ($new:expr) => {
        $crate::store_conformance!(@each $new;
            apply_commits_records_with_their_checkpoint,
            upserts_replace_secondary_keys_and_deletions_remove_them,
            a_snapshot_sweeps_what_it_did_not_see_and_keeps_what_it_retained,
            a_snapshot_only_sweeps_its_own_collection,
            rejected_items_are_kept_in_the_collection_state_capped,
            collection_states_versions_and_errors,
            contacts_are_found_by_phone_email_ref_and_scan,
            busy_spans_find_occurrences_in_progress,
            out_of_office_settings_are_listed,
            mail_is_found_in_its_window_newest_first_within_the_limit,
            events_are_found_in_their_window_newest_first_within_the_limit,
            documents_are_found_in_their_window_newest_first_within_the_limit,
            remove_account_deletes_records_keys_and_states,
            several_phone_keys_are_probed_at_once,
            no_index_query_crosses_users,
            profiles_round_trip_and_are_listed,
            invalid_profiles_are_refused,
            called_numbers_belong_to_one_user,
            assignments_and_last_choices_are_per_user,
            delete_user_removes_what_the_user_owns,
            calls_round_trip_and_an_update_replaces,
            calls_are_listed_newest_first_in_their_window_within_the_limit,
            calls_by_caller_are_per_user_and_caller,
            api_keys_round_trip_are_listed_by_tenant_and_deleted,
            web_tokens_round_trip_and_expired_ones_are_purged,
            accounts_round_trip_with_sealed_secrets_and_outcomes,
            subscriptions_round_trip_are_listed_and_deleted,
            export_and_import_round_trip_user_data,
        );
    };
    (@each $new:expr; $($behaviour:ident),* $(,)?) => {
        $(
            #[test]
            fn $behaviour() {
                let new = $new;
                $crate::store::conformance::$behaviour(&move || -> ::std::sync::Arc<dyn $crate::store::Backend> { new() });
            }
        )*
    };
}
