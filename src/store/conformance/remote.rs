//! A backend as a network one behaves: every call waits, and it says it may
//! block. For tests of the async callers ([`crate::store::offload`]).

use crate::model::{BusySpan, CallId, CallRecord, HandlingCode, UserId, UserProfile};
use crate::store::{
    ApplyStats, AssignTarget, CallStore, Capabilities, CollectionScope, CollectionState, IndexBatch, IndexStore,
    RecordRef, Result, Store, StoredContact, TimeWindow, UserStore,
};
use chrono::{DateTime, Utc};
use contactbridge_connector::{CalendarEvent, Document, MailMessage, OutOfOffice, RecordId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Wraps a store: each call sleeps `delay` (a round trip) first; `blocking`
/// is what [`Capabilities::blocking`] reports.
pub struct Remote {
    pub inner: Arc<dyn Store>,
    pub delay: Duration,
    pub blocking: bool,
}

impl Remote {
    fn wait(&self) {
        std::thread::sleep(self.delay);
    }
}

impl Capabilities for Remote {
    fn blocking(&self) -> bool {
        self.blocking
    }
}

impl IndexStore for Remote {
    fn apply(&self, batch: &IndexBatch) -> Result<ApplyStats> {
        self.wait();
        self.inner.apply(batch)
    }
    fn collection_state(&self, scope: &CollectionScope) -> Result<Option<CollectionState>> {
        self.wait();
        self.inner.collection_state(scope)
    }
    fn set_collection_error(&self, scope: &CollectionScope, error: Option<String>, at: DateTime<Utc>) -> Result<()> {
        self.wait();
        self.inner.set_collection_error(scope, error, at)
    }
    fn collection_states(&self, user: &UserId, account: &str) -> Result<Vec<(String, CollectionState)>> {
        self.wait();
        self.inner.collection_states(user, account)
    }
    fn known_versions(&self, scope: &CollectionScope) -> Result<HashMap<RecordId, String>> {
        self.wait();
        self.inner.known_versions(scope)
    }
    fn remove_account(&self, user: &UserId, account: &str) -> Result<usize> {
        self.wait();
        self.inner.remove_account(user, account)
    }
    fn count_records(&self, user: &UserId, account: &str) -> Result<HashMap<String, usize>> {
        self.wait();
        self.inner.count_records(user, account)
    }
    fn contacts_by_phone(&self, user: &UserId, key: &str) -> Result<Vec<StoredContact>> {
        self.wait();
        self.inner.contacts_by_phone(user, key)
    }
    fn contacts_by_phones(&self, user: &UserId, keys: &[&str]) -> Result<Vec<Vec<StoredContact>>> {
        self.wait();
        self.inner.contacts_by_phones(user, keys)
    }
    fn contacts_by_email(&self, user: &UserId, email: &str) -> Result<Vec<StoredContact>> {
        self.wait();
        self.inner.contacts_by_email(user, email)
    }
    fn contact(&self, user: &UserId, record: &RecordRef) -> Result<Option<StoredContact>> {
        self.wait();
        self.inner.contact(user, record)
    }
    fn scan_contacts(&self, user: &UserId, visit: &mut dyn FnMut(StoredContact) -> bool) -> Result<()> {
        self.wait();
        self.inner.scan_contacts(user, visit)
    }
    fn busy_spans(&self, user: &UserId, at: DateTime<Utc>) -> Result<Vec<BusySpan>> {
        self.wait();
        self.inner.busy_spans(user, at)
    }
    fn out_of_office(&self, user: &UserId) -> Result<Vec<OutOfOffice>> {
        self.wait();
        self.inner.out_of_office(user)
    }
    fn mail_with(&self, user: &UserId, email: &str, window: TimeWindow, limit: usize) -> Result<Vec<MailMessage>> {
        self.wait();
        self.inner.mail_with(user, email, window, limit)
    }
    fn events_with(&self, user: &UserId, email: &str, window: TimeWindow, limit: usize) -> Result<Vec<CalendarEvent>> {
        self.wait();
        self.inner.events_with(user, email, window, limit)
    }
    fn documents_for(&self, user: &UserId, person: &str, window: TimeWindow, limit: usize) -> Result<Vec<Document>> {
        self.wait();
        self.inner.documents_for(user, person, window, limit)
    }
}

impl UserStore for Remote {
    fn put_profile(&self, profile: &UserProfile, called_keys: &[String]) -> Result<()> {
        self.wait();
        self.inner.put_profile(profile, called_keys)
    }
    fn profile(&self, user: &UserId) -> Result<Option<UserProfile>> {
        self.wait();
        self.inner.profile(user)
    }
    fn profiles(&self) -> Result<Vec<UserProfile>> {
        self.wait();
        self.inner.profiles()
    }
    fn delete_user(&self, user: &UserId) -> Result<bool> {
        self.wait();
        self.inner.delete_user(user)
    }
    fn user_by_called_number(&self, key: &str) -> Result<Option<UserId>> {
        self.wait();
        self.inner.user_by_called_number(key)
    }
    fn assignment(&self, user: &UserId, target: &AssignTarget) -> Result<Option<HandlingCode>> {
        self.wait();
        self.inner.assignment(user, target)
    }
    fn assign(&self, user: &UserId, target: &AssignTarget, code: Option<&HandlingCode>) -> Result<()> {
        self.wait();
        self.inner.assign(user, target, code)
    }
    fn last_choice(&self, user: &UserId, number_key: &str) -> Result<Option<RecordRef>> {
        self.wait();
        self.inner.last_choice(user, number_key)
    }
    fn set_last_choice(&self, user: &UserId, number_key: &str, contact: &RecordRef) -> Result<()> {
        self.wait();
        self.inner.set_last_choice(user, number_key, contact)
    }
}

impl CallStore for Remote {
    fn put_call(&self, call: &CallRecord) -> Result<()> {
        self.wait();
        self.inner.put_call(call)
    }
    fn call(&self, id: &CallId) -> Result<Option<CallRecord>> {
        self.wait();
        self.inner.call(id)
    }
    fn calls(&self, user: &UserId, window: TimeWindow, limit: usize) -> Result<Vec<CallRecord>> {
        self.wait();
        self.inner.calls(user, window, limit)
    }
    fn calls_from(&self, user: &UserId, caller_key: &str, window: TimeWindow, limit: usize) -> Result<Vec<CallRecord>> {
        self.wait();
        self.inner.calls_from(user, caller_key, window, limit)
    }
}
