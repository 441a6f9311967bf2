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

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Where change notifications are sent (below `web.public_url`).
pub const CHANGES_PATH: &str = "/graph/notifications";
/// Where lifecycle notifications are sent.
pub const LIFECYCLE_PATH: &str = "/graph/lifecycle";

/// The most notifications one request may carry; Graph batches far fewer.
pub const MAX_PER_REQUEST: usize = 1000;

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
#[derive(Debug, Default)]
pub struct Subscriptions {
    entries: Mutex<HashMap<String, Entry>>,
    accepted: AtomicU64,
    rejected: AtomicU64,
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
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a subscription Graph created, with the `clientState` it was created with.
    pub fn insert(&self, id: &str, watch: Watch, client_state: &str, expires: DateTime<Utc>) {
        let entry = Entry { watch, state_hash: hash(client_state), expires };
        self.entries.lock().expect("subscriptions lock").insert(id.to_string(), entry);
    }

    /// A renewed subscription's new expiration.
    pub fn renewed(&self, id: &str, expires: DateTime<Utc>) {
        if let Some(e) = self.entries.lock().expect("subscriptions lock").get_mut(id) {
            e.expires = expires;
        }
    }

    /// Forgets a subscription (deleted, or replaced).
    pub fn remove(&self, id: &str) -> Option<Watch> {
        self.entries.lock().expect("subscriptions lock").remove(id).map(|e| e.watch)
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
        let action = {
            let entries = self.entries.lock().expect("subscriptions lock");
            entries.get(&n.subscription_id).and_then(|e| {
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
