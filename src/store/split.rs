//! Lookups from a read-only hot standby, writes to the primary
//! (`[store.postgres] standby_url`).
//!
//! [`ReadSplit`] is the store the lookup path (gRPC `ResolveCall` and
//! `GetCallerContext`) runs on: the index and the users' profiles, called
//! numbers, assignments and last choices are read from the standby; every
//! write (the call journal, last choices) and every read of call records goes
//! to the primary — a call record is written by `ResolveCall` and read back
//! moments later (`GetCallerContext`, `ReportCallEvent`), which a lagging
//! standby could not yet answer. The sync state (checkpoints, versions) is
//! read from the primary too, though syncs do not run on this view.
//!
//! # What a lookup sees during replication lag
//!
//! A streaming standby replays the primary's WAL a little behind it
//! (milliseconds on a healthy link; as long as the link is down, or replay
//! is paused, otherwise). A lookup then answers from the index and the user
//! data **as they were on the primary that long ago**: a contact synced, a
//! handling code assigned, a called number moved or a profile changed within
//! the lag is not seen yet; one removed within the lag is still seen. Each
//! change set commits with its checkpoint in one transaction and the standby
//! replays whole transactions, so a lookup never sees half a change set. The
//! call it records is written to the primary either way. When the standby
//! cannot be reached at all, lookups fail with a store error (no silent
//! fallback to the primary, which would hide a dead standby): point
//! `standby_url` elsewhere or remove it.

use super::{
    ApplyStats, AssignTarget, CallStore, Capabilities, CollectionScope, CollectionState, IndexBatch, IndexStore,
    RecordRef, Result, Store, StoredContact, TimeWindow, UserStore,
};
use crate::model::{BusySpan, CallId, CallRecord, HandlingCode, UserId, UserProfile};
use chrono::{DateTime, Utc};
use contactbridge_connector::{CalendarEvent, Document, MailMessage, OutOfOffice, RecordId};
use std::collections::HashMap;
use std::sync::Arc;

/// Reads from `standby`, writes (and call records) to `primary`.
pub struct ReadSplit {
    pub primary: Arc<dyn Store>,
    pub standby: Arc<dyn Store>,
}

impl Capabilities for ReadSplit {
    fn blocking(&self) -> bool {
        self.primary.blocking() || self.standby.blocking()
    }
}

impl IndexStore for ReadSplit {
    fn apply(&self, batch: &IndexBatch) -> Result<ApplyStats> {
        self.primary.apply(batch)
    }
    fn apply_fenced(&self, batch: &IndexBatch, fence: &super::Fence) -> Result<ApplyStats> {
        self.primary.apply_fenced(batch, fence)
    }
    fn collection_state(&self, scope: &CollectionScope) -> Result<Option<CollectionState>> {
        self.primary.collection_state(scope)
    }
    fn set_collection_error(&self, scope: &CollectionScope, error: Option<String>, at: DateTime<Utc>) -> Result<()> {
        self.primary.set_collection_error(scope, error, at)
    }
    fn collection_states(&self, user: &UserId, account: &str) -> Result<Vec<(String, CollectionState)>> {
        self.primary.collection_states(user, account)
    }
    fn known_versions(&self, scope: &CollectionScope) -> Result<HashMap<RecordId, String>> {
        self.primary.known_versions(scope)
    }
    fn remove_account(&self, user: &UserId, account: &str) -> Result<usize> {
        self.primary.remove_account(user, account)
    }
    fn count_records(&self, user: &UserId, account: &str) -> Result<HashMap<String, usize>> {
        self.primary.count_records(user, account)
    }
    fn contacts_by_phone(&self, user: &UserId, key: &str) -> Result<Vec<StoredContact>> {
        self.standby.contacts_by_phone(user, key)
    }
    fn contacts_by_phones(&self, user: &UserId, keys: &[&str]) -> Result<Vec<Vec<StoredContact>>> {
        self.standby.contacts_by_phones(user, keys)
    }
    fn contacts_by_email(&self, user: &UserId, email: &str) -> Result<Vec<StoredContact>> {
        self.standby.contacts_by_email(user, email)
    }
    fn contact(&self, user: &UserId, record: &RecordRef) -> Result<Option<StoredContact>> {
        self.standby.contact(user, record)
    }
    fn scan_contacts(&self, user: &UserId, visit: &mut dyn FnMut(StoredContact) -> bool) -> Result<()> {
        self.standby.scan_contacts(user, visit)
    }
    fn busy_spans(&self, user: &UserId, at: DateTime<Utc>) -> Result<Vec<BusySpan>> {
        self.standby.busy_spans(user, at)
    }
    fn out_of_office(&self, user: &UserId) -> Result<Vec<OutOfOffice>> {
        self.standby.out_of_office(user)
    }
    fn mail_with(&self, user: &UserId, email: &str, window: TimeWindow, limit: usize) -> Result<Vec<MailMessage>> {
        self.standby.mail_with(user, email, window, limit)
    }
    fn events_with(&self, user: &UserId, email: &str, window: TimeWindow, limit: usize) -> Result<Vec<CalendarEvent>> {
        self.standby.events_with(user, email, window, limit)
    }
    fn documents_for(&self, user: &UserId, person: &str, window: TimeWindow, limit: usize) -> Result<Vec<Document>> {
        self.standby.documents_for(user, person, window, limit)
    }
    fn index_rebuilding(&self) -> bool {
        self.primary.index_rebuilding()
    }
}

impl UserStore for ReadSplit {
    fn put_profile(&self, profile: &UserProfile, called_keys: &[String]) -> Result<()> {
        self.primary.put_profile(profile, called_keys)
    }
    fn profile(&self, user: &UserId) -> Result<Option<UserProfile>> {
        self.standby.profile(user)
    }
    fn profiles(&self) -> Result<Vec<UserProfile>> {
        self.standby.profiles()
    }
    fn delete_user(&self, user: &UserId) -> Result<bool> {
        self.primary.delete_user(user)
    }
    fn user_by_called_number(&self, key: &str) -> Result<Option<UserId>> {
        self.standby.user_by_called_number(key)
    }
    fn assignment(&self, user: &UserId, target: &AssignTarget) -> Result<Option<HandlingCode>> {
        self.standby.assignment(user, target)
    }
    fn assign(&self, user: &UserId, target: &AssignTarget, code: Option<&HandlingCode>) -> Result<()> {
        self.primary.assign(user, target, code)
    }
    fn last_choice(&self, user: &UserId, number_key: &str) -> Result<Option<RecordRef>> {
        self.standby.last_choice(user, number_key)
    }
    fn set_last_choice(&self, user: &UserId, number_key: &str, contact: &RecordRef) -> Result<()> {
        self.primary.set_last_choice(user, number_key, contact)
    }
}

impl CallStore for ReadSplit {
    fn put_call(&self, call: &CallRecord) -> Result<()> {
        self.primary.put_call(call)
    }
    fn call(&self, id: &CallId) -> Result<Option<CallRecord>> {
        self.primary.call(id)
    }
    fn calls(&self, user: &UserId, window: TimeWindow, limit: usize) -> Result<Vec<CallRecord>> {
        self.primary.calls(user, window, limit)
    }
    fn calls_from(&self, user: &UserId, caller_key: &str, window: TimeWindow, limit: usize) -> Result<Vec<CallRecord>> {
        self.primary.calls_from(user, caller_key, window, limit)
    }
}
