//! A per-replica cache, in front of a store that answers over the network,
//! of what the lookup path reads on every call and what changes rarely: the
//! called-number → user map, user profiles (with their handling tables,
//! manual status and attendant) and local handling-code assignments.
//!
//! [`for_lookups`] puts it in front of a store whose
//! [`Capabilities::blocking`] says reads are remote (PostgreSQL), given the
//! replicas' [`EventBus`]; a store answering from memory (sled) is returned
//! as it is. Everything else (the index, last choices, call records) is read
//! through.
//!
//! # Invalidation
//!
//! Every write of a profile, a called number or an assignment, by any
//! replica or the CLI, tells every replica: the PostgreSQL backend sends a
//! `NOTIFY` on the bus's channel in the write's own transaction (topic
//! [`TOPIC`], the user's id; an empty payload for "every user", after a
//! restore), so it reaches the listeners at commit, never before the data.
//! A replica applies what its bus brought before each cached read: the
//! user's profile and assignments are dropped, and the whole called-number
//! map (a write may move a number between users). A write through this
//! cache also drops its entries at once (read your own writes); a write on
//! another replica is seen here once its notification arrives (milliseconds).
//!
//! A read that raced a change does not put the old value back: a value read
//! from the store is kept only if no notification arrived between the start
//! of the read and its end (any later one drops it as usual).
//!
//! # Faults and bounds
//!
//! - **The bus connection drops.** Notifications sent while it is down are
//!   lost for this replica ([`super::bus`]). While the bus says it is not
//!   listening ([`EventBus::epoch`] `None`) every read goes to the store, and
//!   when it listens again (a new epoch) the whole cache is dropped. Between
//!   the drop and the listener noticing it (up to ≈ ¼ s of quiet plus a
//!   failed probe), entries may be served that a lost notification would
//!   have dropped.
//! - **A replica falls behind on the bus** (more than its capacity of
//!   messages between two lookups): the whole cache is dropped.
//! - **A replica that never hears** (a listener that looks alive but is
//!   not): every entry expires [`TTL`] after it was read, so no profile,
//!   number or assignment is served more than [`TTL`] staler than the store.
//!
//! # Tenants
//!
//! Entries are keyed exactly as the store keys the data: a profile and its
//! assignments by the user's id (unique across tenants), a called number by
//! its key (a number belongs to one user of one tenant). An entry can only
//! answer the question the store would have answered with it.
//!
//! # Size
//!
//! At most [`MAX_ENTRIES`] entries (negative answers too: a number that is
//! nobody's, a contact without an assignment); past that the cache starts
//! again empty, so a flood of calls to unknown numbers costs round trips,
//! not memory.

use super::{
    ApplyStats, AssignTarget, BusMessage, CallStore, Capabilities, CollectionScope, CollectionState, EventBus,
    IndexBatch, IndexStore, RecordRef, Result, Store, StoredContact, TimeWindow, UserStore,
};
use crate::model::{BusySpan, CallId, CallRecord, HandlingCode, UserId, UserProfile};
use chrono::{DateTime, Utc};
use contactbridge_connector::{CalendarEvent, Document, MailMessage, OutOfOffice, RecordId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::{self, error::TryRecvError};

/// The bus topic of "a user's profile, called numbers or assignments changed".
pub const TOPIC: &str = "store.users";
/// The origin the store's own notifications carry (no replica sends them: the database does, at commit).
pub const ORIGIN: &str = "store";
/// How long an entry is served at most, notification or not.
pub const TTL: Duration = Duration::from_secs(10);
/// Entries kept at most before the cache starts again.
pub const MAX_ENTRIES: usize = 100_000;

/// The payload of a change of `user` (`None`: of every user).
pub fn payload(user: Option<&UserId>) -> Vec<u8> {
    user.map_or_else(Vec::new, |u| u.as_str().as_bytes().to_vec())
}

/// The lookup path's store: `store` behind a cache when it answers over the
/// network and replicas share a `bus`, else `store` itself.
pub fn for_lookups(store: Arc<dyn Store>, bus: Option<Arc<dyn EventBus>>) -> Arc<dyn Store> {
    match bus {
        Some(bus) if store.blocking() => Arc::new(LookupCache::new(store, bus, TTL)),
        _ => store,
    }
}

/// The cache in front of a store ([`for_lookups`]).
pub struct LookupCache {
    inner: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    ttl: Duration,
    state: Mutex<State>,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Timed<T> {
    at: Instant,
    value: T,
}

#[derive(Default)]
struct UserEntry {
    profile: Option<Timed<Option<UserProfile>>>,
    assignments: HashMap<AssignTarget, Timed<Option<HandlingCode>>>,
}

impl UserEntry {
    fn len(&self) -> usize {
        usize::from(self.profile.is_some()) + self.assignments.len()
    }
}

struct State {
    rx: broadcast::Receiver<Arc<BusMessage>>,
    /// The bus epoch the entries were read in (`None`: not listening, nothing kept).
    epoch: Option<u64>,
    /// Bumped by every invalidation: a read that saw it change keeps nothing.
    seq: u64,
    entries: usize,
    users: HashMap<UserId, UserEntry>,
    called: HashMap<String, Timed<Option<UserId>>>,
}

impl State {
    fn clear(&mut self) {
        self.users.clear();
        self.called.clear();
        self.entries = 0;
        self.seq += 1;
    }

    fn forget(&mut self, user: &UserId) {
        if let Some(e) = self.users.remove(user) {
            self.entries = self.entries.saturating_sub(e.len());
        }
        self.entries = self.entries.saturating_sub(self.called.len());
        self.called.clear();
        self.seq += 1;
    }

    /// Applies what the bus brought; whether the cache may be used now.
    fn catch_up(&mut self, bus: &dyn EventBus) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(m) if m.topic == TOPIC => match std::str::from_utf8(&m.payload).ok().map(UserId::parse) {
                    Some(Ok(user)) => self.forget(&user),
                    // Every user (a restore), or a payload not understood: drop everything.
                    _ => self.clear(),
                },
                Ok(_) => {}
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "the lookup cache fell behind on the bus; dropped whole");
                    self.clear();
                }
                Err(TryRecvError::Closed) => {
                    self.clear();
                    self.epoch = None;
                    return false;
                }
            }
        }
        let now = bus.epoch();
        if now != self.epoch {
            if self.epoch.is_some() {
                tracing::debug!("the bus stopped or started listening again; the lookup cache is dropped whole");
            }
            self.clear();
            self.epoch = now;
        }
        now.is_some()
    }

    fn fresh<T: Clone>(t: Option<&Timed<T>>, ttl: Duration) -> Option<T> {
        t.filter(|t| t.at.elapsed() < ttl).map(|t| t.value.clone())
    }

    /// Counts a new entry; starts again empty when full.
    fn make_room(&mut self) {
        if self.entries >= MAX_ENTRIES {
            self.clear();
        }
        self.entries += 1;
    }
}

impl LookupCache {
    /// `inner` cached, invalidated through `bus`, entries kept at most `ttl`.
    pub fn new(inner: Arc<dyn Store>, bus: Arc<dyn EventBus>, ttl: Duration) -> Self {
        let state = State {
            rx: bus.subscribe(),
            epoch: None,
            seq: 0,
            entries: 0,
            users: HashMap::new(),
            called: HashMap::new(),
        };
        Self { inner, bus, ttl, state: Mutex::new(state), hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }

    /// Reads answered from the cache and reads that went to the store, so far.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `get` from the cache, else `read` from the store and `put` it in, unless something changed meanwhile.
    fn through<T: Clone>(
        &self,
        get: impl FnOnce(&State, Duration) -> Option<T>,
        read: impl FnOnce() -> Result<T>,
        put: impl FnOnce(&mut State, Timed<T>),
    ) -> Result<T> {
        let before = {
            let mut st = self.lock();
            if st.catch_up(self.bus.as_ref()) {
                if let Some(v) = get(&st, self.ttl) {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(v);
                }
                Some((st.seq, st.epoch))
            } else {
                None
            }
        };
        self.misses.fetch_add(1, Ordering::Relaxed);
        let at = Instant::now();
        let value = read()?;
        if let Some(before) = before {
            let mut st = self.lock();
            if st.catch_up(self.bus.as_ref()) && (st.seq, st.epoch) == before {
                st.make_room();
                put(&mut st, Timed { at, value: value.clone() });
            }
        }
        Ok(value)
    }

    fn forget(&self, user: &UserId) {
        self.lock().forget(user);
    }
}

impl Capabilities for LookupCache {
    fn blocking(&self) -> bool {
        self.inner.blocking()
    }
}

impl UserStore for LookupCache {
    fn put_profile(&self, profile: &UserProfile, called_keys: &[String]) -> Result<()> {
        let out = self.inner.put_profile(profile, called_keys);
        self.forget(&profile.id);
        out
    }
    fn profile(&self, user: &UserId) -> Result<Option<UserProfile>> {
        self.through(
            |st, ttl| State::fresh(st.users.get(user).and_then(|e| e.profile.as_ref()), ttl),
            || self.inner.profile(user),
            |st, t| {
                if st.users.entry(user.clone()).or_default().profile.replace(t).is_some() {
                    st.entries -= 1;
                }
            },
        )
    }
    fn profiles(&self) -> Result<Vec<UserProfile>> {
        self.inner.profiles()
    }
    fn delete_user(&self, user: &UserId) -> Result<bool> {
        let out = self.inner.delete_user(user);
        self.forget(user);
        out
    }
    fn user_by_called_number(&self, key: &str) -> Result<Option<UserId>> {
        self.through(
            |st, ttl| State::fresh(st.called.get(key), ttl),
            || self.inner.user_by_called_number(key),
            |st, t| {
                if st.called.insert(key.to_string(), t).is_some() {
                    st.entries -= 1;
                }
            },
        )
    }
    fn assignment(&self, user: &UserId, target: &AssignTarget) -> Result<Option<HandlingCode>> {
        self.through(
            |st, ttl| State::fresh(st.users.get(user).and_then(|e| e.assignments.get(target)), ttl),
            || self.inner.assignment(user, target),
            |st, t| {
                if st.users.entry(user.clone()).or_default().assignments.insert(target.clone(), t).is_some() {
                    st.entries -= 1;
                }
            },
        )
    }
    fn assign(&self, user: &UserId, target: &AssignTarget, code: Option<&HandlingCode>) -> Result<()> {
        let out = self.inner.assign(user, target, code);
        self.forget(user);
        out
    }
    fn last_choice(&self, user: &UserId, number_key: &str) -> Result<Option<RecordRef>> {
        self.inner.last_choice(user, number_key)
    }
    fn set_last_choice(&self, user: &UserId, number_key: &str, contact: &RecordRef) -> Result<()> {
        self.inner.set_last_choice(user, number_key, contact)
    }
}

impl IndexStore for LookupCache {
    fn apply(&self, batch: &IndexBatch) -> Result<ApplyStats> {
        self.inner.apply(batch)
    }
    fn apply_fenced(&self, batch: &IndexBatch, fence: &super::Fence) -> Result<ApplyStats> {
        self.inner.apply_fenced(batch, fence)
    }
    fn collection_state(&self, scope: &CollectionScope) -> Result<Option<CollectionState>> {
        self.inner.collection_state(scope)
    }
    fn set_collection_error(&self, scope: &CollectionScope, error: Option<String>, at: DateTime<Utc>) -> Result<()> {
        self.inner.set_collection_error(scope, error, at)
    }
    fn collection_states(&self, user: &UserId, account: &str) -> Result<Vec<(String, CollectionState)>> {
        self.inner.collection_states(user, account)
    }
    fn known_versions(&self, scope: &CollectionScope) -> Result<HashMap<RecordId, String>> {
        self.inner.known_versions(scope)
    }
    fn remove_account(&self, user: &UserId, account: &str) -> Result<usize> {
        self.inner.remove_account(user, account)
    }
    fn count_records(&self, user: &UserId, account: &str) -> Result<HashMap<String, usize>> {
        self.inner.count_records(user, account)
    }
    fn contacts_by_phone(&self, user: &UserId, key: &str) -> Result<Vec<StoredContact>> {
        self.inner.contacts_by_phone(user, key)
    }
    fn contacts_by_phones(&self, user: &UserId, keys: &[&str]) -> Result<Vec<Vec<StoredContact>>> {
        self.inner.contacts_by_phones(user, keys)
    }
    fn contacts_by_email(&self, user: &UserId, email: &str) -> Result<Vec<StoredContact>> {
        self.inner.contacts_by_email(user, email)
    }
    fn contact(&self, user: &UserId, record: &RecordRef) -> Result<Option<StoredContact>> {
        self.inner.contact(user, record)
    }
    fn scan_contacts(&self, user: &UserId, visit: &mut dyn FnMut(StoredContact) -> bool) -> Result<()> {
        self.inner.scan_contacts(user, visit)
    }
    fn busy_spans(&self, user: &UserId, at: DateTime<Utc>) -> Result<Vec<BusySpan>> {
        self.inner.busy_spans(user, at)
    }
    fn out_of_office(&self, user: &UserId) -> Result<Vec<OutOfOffice>> {
        self.inner.out_of_office(user)
    }
    fn mail_with(&self, user: &UserId, email: &str, window: TimeWindow, limit: usize) -> Result<Vec<MailMessage>> {
        self.inner.mail_with(user, email, window, limit)
    }
    fn events_with(&self, user: &UserId, email: &str, window: TimeWindow, limit: usize) -> Result<Vec<CalendarEvent>> {
        self.inner.events_with(user, email, window, limit)
    }
    fn documents_for(&self, user: &UserId, person: &str, window: TimeWindow, limit: usize) -> Result<Vec<Document>> {
        self.inner.documents_for(user, person, window, limit)
    }
    fn index_rebuilding(&self) -> bool {
        self.inner.index_rebuilding()
    }
    fn index_replacements(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.index_replacements()
    }
    fn index_rebuilt(&self, n: u64) -> Result<()> {
        self.inner.index_rebuilt(n)
    }
}

impl CallStore for LookupCache {
    fn put_call(&self, call: &CallRecord) -> Result<()> {
        self.inner.put_call(call)
    }
    fn call(&self, id: &CallId) -> Result<Option<CallRecord>> {
        self.inner.call(id)
    }
    fn calls(&self, user: &UserId, window: TimeWindow, limit: usize) -> Result<Vec<CallRecord>> {
        self.inner.calls(user, window, limit)
    }
    fn calls_from(&self, user: &UserId, caller_key: &str, window: TimeWindow, limit: usize) -> Result<Vec<CallRecord>> {
        self.inner.calls_from(user, caller_key, window, limit)
    }
}
