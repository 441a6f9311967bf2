//! Graph change notifications, receiver side: which subscriptions are ours, what a
//! notification asks for, and the checks that keep forged ones from doing anything.
//!
//! Each subscription has its own `clientState`, a random secret sent to Graph when it
//! is created; only its SHA-256 is kept here. A notification counts only if it names
//! a subscription of ours *and* carries that subscription's `clientState`; then it
//! asks for a sync of the subscription's account (never of another: the account
//! comes from our table, not from the notification). Everything else is counted and
//! dropped, and the sender is answered the same way (202) either way, so it learns
//! nothing about which subscriptions exist.
//!
//! With [`Subscriptions::shared`] the table is kept in the store too (only the hashes),
//! so that it survives a restart and every replica on a shared store knows what any of
//! them subscribed: Graph posts to `web.public_url`, and a load balancer may hand that
//! to any replica. A replica that does not know an id looks it up in the store — at
//! most [`LOOKUPS_PER_SECOND`] times a second, so a flood of invented ids costs the
//! database little (a genuine notification lost to that limit is caught up by the
//! account's schedule).

use crate::store::{AccountStore, SubscriptionRecord};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where change notifications are sent (below `web.public_url`).
pub const CHANGES_PATH: &str = "/graph/notifications";
/// Where lifecycle notifications are sent.
pub const LIFECYCLE_PATH: &str = "/graph/lifecycle";

/// The most notifications one request may carry; Graph batches far fewer.
pub const MAX_PER_REQUEST: usize = 1000;

/// Where Graph sends change notifications for a bridge at `public_url`.
pub fn changes_url(public_url: &url::Url) -> String {
    format!("{}{CHANGES_PATH}", public_url.as_str().trim_end_matches('/'))
}

/// Store look-ups of subscription ids this replica does not know, per second at most.
pub const LOOKUPS_PER_SECOND: u32 = 50;

/// What one subscription watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub account: String,
    pub mailbox: String,
    /// `contacts`, `events` or `messages`.
    pub part: String,
}

#[derive(Debug, Clone)]
struct Entry {
    watch: Watch,
    state_hash: [u8; 32],
    expires: DateTime<Utc>,
    /// The notification URL it was made with.
    url: String,
}

impl Entry {
    fn record(&self) -> SubscriptionRecord {
        SubscriptionRecord {
            account: self.watch.account.clone(),
            mailbox: self.watch.mailbox.clone(),
            part: self.watch.part.clone(),
            state_hash: self.state_hash,
            expires: self.expires,
            notification_url: self.url.clone(),
        }
    }

    fn from_record(r: SubscriptionRecord) -> Self {
        Self {
            watch: Watch { account: r.account, mailbox: r.mailbox, part: r.part },
            state_hash: r.state_hash,
            expires: r.expires,
            url: r.notification_url,
        }
    }
}

/// One item of a notification request's `value` (change or lifecycle notification).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Notification {
    pub subscription_id: String,
    pub client_state: Option<String>,
    pub change_type: Option<String>,
    pub lifecycle_event: Option<String>,
    pub tenant_id: Option<String>,
}

/// A notification request's body.
#[derive(Debug, Default, Deserialize)]
pub struct Notifications {
    #[serde(default)]
    pub value: Vec<Notification>,
}

/// What an accepted notification asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Something changed: sync the account (debounced by the scheduler).
    Sync(Watch),
    /// `reauthorizationRequired`: renew the subscription (and sync: changes may have been held back).
    Renew(String, Watch),
    /// `subscriptionRemoved`: create it again and sync (changes since are not notified).
    Recreate(String, Watch),
}

/// Counts of what arrived, for the logs and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub accepted: u64,
    /// Unknown subscription or wrong `clientState`: dropped.
    pub rejected: u64,
}

/// The subscriptions the bridge holds, by Graph's subscription id.
#[derive(Default)]
pub struct Subscriptions {
    entries: Mutex<HashMap<String, Entry>>,
    /// Where the table is kept for restarts and the other replicas ([`Subscriptions::shared`]).
    store: Option<Arc<dyn AccountStore>>,
    /// The notification URL new subscriptions are made with.
    url: String,
    /// Look-ups of unknown ids in the current second: (second started, count).
    lookups: Mutex<Option<(Instant, u32)>>,
    accepted: AtomicU64,
    rejected: AtomicU64,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriptions")
            .field("held", &self.entries.lock().map(|e| e.len()).unwrap_or(0))
            .field("shared", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

fn hash(state: &str) -> [u8; 32] {
    Sha256::digest(state.as_bytes()).into()
}

/// A new `clientState`: 32 random bytes, base64url (43 characters; Graph allows 128).
pub fn new_client_state() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Subscriptions {
    /// A table in this process only (tests; a bridge without a store to share).
    pub fn new() -> Self {
        Self::default()
    }

    /// A table kept in `store` as well, loaded from it now, for subscriptions that
    /// notify `url` ([`changes_url`]; those of another URL are listed by
    /// [`Subscriptions::pointing_elsewhere`] to be replaced).
    pub fn shared(store: Arc<dyn AccountStore>, url: &str) -> Self {
        let subs = Self { store: Some(store), url: url.to_string(), ..Self::default() };
        subs.reload();
        subs
    }

    /// Replaces what this replica holds in memory by the store's table (a no-op without a
    /// store): done before each reconciliation, which another replica may have done last.
    pub fn reload(&self) {
        let Some(store) = &self.store else { return };
        match store.subscriptions() {
            Ok(all) => {
                let fresh = all.into_iter().map(|(id, r)| (id, Entry::from_record(r))).collect();
                *self.entries.lock().expect("subscriptions lock") = fresh;
            }
            Err(e) => tracing::warn!(error = %e, "reading the change-notification subscriptions failed"),
        }
    }

    fn keep(&self, id: &str, entry: &Entry) {
        if let Some(store) = &self.store {
            if let Err(e) = store.put_subscription(id, &entry.record()) {
                tracing::warn!(error = %e, "storing a change-notification subscription failed; other replicas ignore its notifications");
            }
        }
    }

    /// Records a subscription Graph created, with the `clientState` it was created with.
    pub fn insert(&self, id: &str, watch: Watch, client_state: &str, expires: DateTime<Utc>) {
        let entry = Entry { watch, state_hash: hash(client_state), expires, url: self.url.clone() };
        self.keep(id, &entry);
        self.entries.lock().expect("subscriptions lock").insert(id.to_string(), entry);
    }

    /// A renewed subscription's new expiration.
    pub fn renewed(&self, id: &str, expires: DateTime<Utc>) {
        let entry = {
            let mut entries = self.entries.lock().expect("subscriptions lock");
            entries.get_mut(id).map(|e| {
                e.expires = expires;
                e.clone()
            })
        };
        if let Some(e) = entry {
            self.keep(id, &e);
        }
    }

    /// Forgets a subscription (deleted, or replaced).
    pub fn remove(&self, id: &str) -> Option<Watch> {
        if let Some(store) = &self.store {
            if let Err(e) = store.delete_subscription(id) {
                tracing::warn!(error = %e, "deleting a change-notification subscription from the store failed");
            }
        }
        self.entries.lock().expect("subscriptions lock").remove(id).map(|e| e.watch)
    }

    /// An id this replica does not hold, from the store (within the look-up budget).
    fn look_up(&self, id: &str) -> Option<Entry> {
        let store = self.store.as_ref()?;
        if id.is_empty() || id.len() > 128 {
            return None;
        }
        {
            let mut window = self.lookups.lock().expect("look-up budget lock");
            let now = Instant::now();
            match window.as_mut() {
                Some((start, n)) if now.duration_since(*start).as_secs() < 1 => {
                    if *n >= LOOKUPS_PER_SECOND {
                        return None;
                    }
                    *n += 1;
                }
                _ => *window = Some((now, 1)),
            }
        }
        let entry = Entry::from_record(store.subscription(id).ok()??);
        self.entries.lock().expect("subscriptions lock").insert(id.to_string(), entry.clone());
        Some(entry)
    }

    /// The subscriptions of `account` (to delete them when it is removed).
    pub fn of_account(&self, account: &str) -> Vec<(String, Watch)> {
        let entries = self.entries.lock().expect("subscriptions lock");
        entries
            .iter()
            .filter(|(_, e)| e.watch.account == account)
            .map(|(id, e)| (id.clone(), e.watch.clone()))
            .collect()
    }

    /// Subscriptions made for another notification URL than this table's (`web.public_url`
    /// changed), to delete and make again.
    pub fn pointing_elsewhere(&self) -> Vec<(String, Watch)> {
        let entries = self.entries.lock().expect("subscriptions lock");
        entries.iter().filter(|(_, e)| e.url != self.url).map(|(id, e)| (id.clone(), e.watch.clone())).collect()
    }

    /// Subscriptions expiring before `before`, to renew.
    pub fn expiring(&self, before: DateTime<Utc>) -> Vec<(String, Watch)> {
        let entries = self.entries.lock().expect("subscriptions lock");
        entries.iter().filter(|(_, e)| e.expires < before).map(|(id, e)| (id.clone(), e.watch.clone())).collect()
    }

    /// Every watched (account, mailbox, part).
    pub fn watches(&self) -> Vec<Watch> {
        self.entries.lock().expect("subscriptions lock").values().map(|e| e.watch.clone()).collect()
    }

    /// What one notification asks for, if it is ours and genuine; counted either way.
    pub fn check(&self, n: &Notification) -> Option<Action> {
        let known = self.entries.lock().expect("subscriptions lock").get(&n.subscription_id).cloned();
        let action = {
            known.or_else(|| self.look_up(&n.subscription_id)).and_then(|e| {
                let genuine = n.client_state.as_deref().is_some_and(|s| s.len() <= 256 && hash(s) == e.state_hash);
                genuine.then(|| {
                    let w = e.watch.clone();
                    let id = n.subscription_id.clone();
                    match n.lifecycle_event.as_deref() {
                        Some("reauthorizationRequired") => Action::Renew(id, w),
                        Some("subscriptionRemoved") => Action::Recreate(id, w),
                        // `missed` and every change notification: a delta sync catches up.
                        _ => Action::Sync(w),
                    }
                })
            })
        };
        match &action {
            Some(_) => self.accepted.fetch_add(1, Ordering::Relaxed),
            None => self.rejected.fetch_add(1, Ordering::Relaxed),
        };
        action
    }

    pub fn counts(&self) -> Counts {
        Counts { accepted: self.accepted.load(Ordering::Relaxed), rejected: self.rejected.load(Ordering::Relaxed) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(account: &str) -> Watch {
        Watch { account: account.into(), mailbox: "m@x".into(), part: "contacts".into() }
    }

    fn note(id: &str, state: &str) -> Notification {
        Notification { subscription_id: id.into(), client_state: Some(state.into()), ..Default::default() }
    }

    #[test]
    fn only_a_known_subscription_with_its_own_client_state_counts() {
        let subs = Subscriptions::new();
        let (a, b) = (new_client_state(), new_client_state());
        assert_ne!(a, b);
        subs.insert("sub-a", watch("tenant-a/acc"), &a, Utc::now());
        subs.insert("sub-b", watch("tenant-b/acc"), &b, Utc::now());
        assert_eq!(subs.check(&note("sub-a", &a)), Some(Action::Sync(watch("tenant-a/acc"))));
        // Another subscription's state, an unknown id, no state, a huge state: nothing.
        assert_eq!(subs.check(&note("sub-a", &b)), None);
        assert_eq!(subs.check(&note("sub-x", &a)), None);
        assert_eq!(subs.check(&Notification { subscription_id: "sub-a".into(), ..Default::default() }), None);
        assert_eq!(subs.check(&note("sub-a", &"x".repeat(100_000))), None);
        assert_eq!(subs.counts(), Counts { accepted: 1, rejected: 4 });
    }

    /// A subscription another replica stored after this table was loaded is looked up;
    /// a flood of invented ids spends the look-up budget (and nothing more), after
    /// which even a genuine unknown id waits for the next second.
    #[test]
    fn unknown_ids_are_looked_up_in_the_store_within_a_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(crate::store::SledStore::open(dir.path()).unwrap());
        let here = Subscriptions::shared(store.clone(), "https://b.example/n");
        let elsewhere = Subscriptions::shared(store.clone(), "https://b.example/n");
        elsewhere.insert("sub-new", watch("acc"), "state", Utc::now());
        for n in 0..LOOKUPS_PER_SECOND {
            assert_eq!(here.check(&note(&format!("invented-{n}"), "state")), None);
        }
        assert_eq!(here.check(&note("sub-new", "state")), None, "over the budget: not looked up");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(here.check(&note("sub-new", "state")), Some(Action::Sync(watch("acc"))));
        assert_eq!(here.check(&note("sub-new", "forged")), None, "known now, and still checked");
        elsewhere.remove("sub-new");
        let restarted = Subscriptions::shared(store.clone(), "https://b.example/n");
        assert_eq!(restarted.check(&note("sub-new", "state")), None, "removed from the store too");
        restarted.insert("sub-old-url", watch("acc"), "s2", Utc::now());
        let moved = Subscriptions::shared(store, "https://new.example/n");
        assert_eq!(moved.pointing_elsewhere(), vec![("sub-old-url".to_string(), watch("acc"))]);
        assert!(restarted.pointing_elsewhere().is_empty());
    }

    #[test]
    fn lifecycle_events_renew_recreate_or_sync() {
        let subs = Subscriptions::new();
        subs.insert("s", watch("acc"), "st", Utc::now());
        let life = |e: &str| Notification { lifecycle_event: Some(e.into()), ..note("s", "st") };
        assert_eq!(subs.check(&life("reauthorizationRequired")), Some(Action::Renew("s".into(), watch("acc"))));
        assert_eq!(subs.check(&life("subscriptionRemoved")), Some(Action::Recreate("s".into(), watch("acc"))));
        assert_eq!(subs.check(&life("missed")), Some(Action::Sync(watch("acc"))));
        assert_eq!(subs.remove("s"), Some(watch("acc")));
        assert_eq!(subs.check(&life("missed")), None);
    }
}
