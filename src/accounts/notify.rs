//! Keeps Graph change-notification subscriptions in step with the accounts
//! (`web.public_url` set): one subscription per enabled Graph account, mailbox
//! and part (contacts, events, messages), each with its own `clientState`;
//! renewed before they expire, created again when Graph lost one (404 on
//! renewal, `subscriptionRemoved`), deleted when the account is removed or
//! disabled. Accepted notifications reach the scheduler
//! ([`crate::sync::scheduler::Scheduler::sync_soon`]) through the web route.
//!
//! The subscription table is kept in the store ([`Subscriptions::shared`]): it
//! survives a restart, and with several replicas on one store each knows every
//! subscription, so a notification counts on whichever replica the load balancer
//! hands it to. Creating, renewing and deleting run under one lease
//! ([`LEASE`], the sync leases' store): one replica at a time reconciles, each
//! pass starting from the store's table, so replicas never subscribe twice. A
//! lifecycle notification received while another replica reconciles waits for the
//! lease a little ([`HANDLE_TRIES`]) and is otherwise left to the next pass. A
//! removed account's subscriptions are deleted at the next check
//! ([`RECONCILE_EVERY`]) with the connector they were made with.

use super::Registry;
use crate::sync::notifications::{new_client_state, Action, Subscriptions, Watch};
use chrono::{DateTime, Duration, Utc};
use contactbridge_connector::ErrorKind;
use contactbridge_graph::subscriptions::PARTS;
use contactbridge_graph::GraphConnector;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::mpsc;

/// How long a subscription is asked for (Graph allows up to 7 days for Outlook resources).
pub const LIFETIME: Duration = Duration::days(3);
/// Renewed when less than this is left.
pub const RENEW_AHEAD: Duration = Duration::days(1);
/// How often subscriptions are checked against the accounts when nothing asks sooner.
pub const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);
/// The lease one replica at a time reconciles under (a name no account id takes: ids
/// cannot start with `~`... and should one, it only takes turns with this).
pub const LEASE: &str = "~graph-notifications";
/// How often a lifecycle notification asks for the lease, a second apart, before it is
/// left to the next reconciliation.
pub const HANDLE_TRIES: u32 = 5;

/// Creates, renews and deletes the subscriptions.
pub struct Notifier {
    registry: Arc<Registry>,
    subscriptions: Arc<Subscriptions>,
    changes_url: String,
    lifecycle_url: String,
    /// The connector each account's subscriptions were made with: after the account is
    /// removed (and its secret with it) this one still deletes them at Graph.
    connectors: std::sync::Mutex<std::collections::HashMap<String, Arc<GraphConnector>>>,
}

impl Notifier {
    /// `public_url`: the checked `web.public_url` ([`crate::config::WebConfig::public_url`]).
    pub fn new(registry: Arc<Registry>, subscriptions: Arc<Subscriptions>, public_url: &url::Url) -> Self {
        let base = public_url.as_str().trim_end_matches('/');
        Self {
            registry,
            subscriptions,
            changes_url: crate::sync::notifications::changes_url(public_url),
            lifecycle_url: format!("{base}{}", crate::sync::notifications::LIFECYCLE_PATH),
            connectors: Default::default(),
        }
    }

    /// The account's connector: built once, kept while it has subscriptions.
    fn connector(&self, account: &str) -> Option<Arc<GraphConnector>> {
        if let Some(c) = self.connectors.lock().expect("connectors lock").get(account) {
            return Some(c.clone());
        }
        match self.registry.graph_connector(account) {
            Ok(Some(c)) => {
                let c = Arc::new(c);
                self.connectors.lock().expect("connectors lock").insert(account.to_string(), c.clone());
                Some(c)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(account, error = %e, "no Graph connector for change notifications");
                None
            }
        }
    }

    async fn create(&self, c: &GraphConnector, account: &str, mailbox: &str, part: &str, now: DateTime<Utc>) {
        let state = new_client_state();
        match c.subscribe(mailbox, part, &self.changes_url, &self.lifecycle_url, &state, now + LIFETIME).await {
            Ok(sub) => {
                let watch = Watch { account: account.into(), mailbox: mailbox.into(), part: part.into() };
                self.subscriptions.insert(&sub.id, watch, &state, sub.expires);
                tracing::info!(account, mailbox, part, expires = %sub.expires, "subscribed to Graph change notifications");
            }
            Err(e) => {
                tracing::warn!(account, mailbox, part, error = %e, "subscribing to Graph change notifications failed; schedules still sync")
            }
        }
    }

    /// Runs `work` under [`LEASE`] when replicas share the store (after reading the
    /// store's table: the last pass may have been another replica's); `false` when
    /// another replica holds it.
    async fn leased<F: std::future::Future<Output = ()>>(&self, work: F) -> bool {
        let Some(leasing) = self.registry.leasing() else {
            work.await;
            return true;
        };
        let subscriptions = self.subscriptions.clone();
        let run = async move {
            subscriptions.reload();
            work.await
        };
        match crate::sync::lease::run_leased(leasing, LEASE, run).await {
            crate::sync::lease::Leased::Ran(()) => true,
            crate::sync::lease::Leased::HeldElsewhere { holder } => {
                tracing::debug!(holder = ?holder, "another replica is reconciling the change-notification subscriptions");
                false
            }
            crate::sync::lease::Leased::Lost => {
                tracing::warn!("the change-notification lease was lost during a pass; the next pass finishes it");
                true
            }
            crate::sync::lease::Leased::Failed(e) => {
                tracing::warn!(error = %e, "the change-notification lease could not be taken");
                true
            }
        }
    }

    /// Brings the subscriptions in line with the accounts (under the lease, see
    /// [`Notifier::reconcile_now`]).
    pub async fn reconcile(&self) {
        if self.registry.leasing().is_none() {
            self.subscriptions.reload();
        }
        self.leased(self.reconcile_now()).await;
    }

    /// Creates the missing, renews the expiring (re-creates those Graph no longer has),
    /// deletes those of accounts removed, disabled or no longer holding the mailbox.
    async fn reconcile_now(&self) {
        let now = Utc::now();
        let accounts = match self.registry.list() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "listing accounts for change notifications failed");
                return;
            }
        };
        let mut wanted = HashSet::new();
        for spec in accounts.iter().filter(|a| a.enabled) {
            if let crate::model::SourceKind::Graph(g) = &spec.source {
                for m in &g.mailboxes {
                    for p in PARTS {
                        wanted.insert((spec.id.clone(), m.to_ascii_lowercase(), p.to_string()));
                    }
                }
            }
        }
        // Made for another public URL: deleted at Graph, made again below.
        for (id, w) in self.subscriptions.pointing_elsewhere() {
            tracing::info!(account = %w.account, mailbox = %w.mailbox, part = %w.part, "web.public_url changed: subscribing again");
            self.subscriptions.remove(&id);
            if let Some(c) = self.connector(&w.account) {
                if let Err(e) = c.unsubscribe(&w.mailbox, &id).await {
                    tracing::info!(account = %w.account, error = %e, "deleting a Graph subscription failed; it lapses at its expiration");
                }
            }
        }
        let have = self.subscriptions.watches();
        // Gone: delete at Graph (best effort) and forget.
        for w in &have {
            if !wanted.contains(&(w.account.clone(), w.mailbox.to_ascii_lowercase(), w.part.clone())) {
                self.drop_account_watch(w).await;
            }
        }
        let held: HashSet<_> = self
            .subscriptions
            .watches()
            .into_iter()
            .map(|w| (w.account, w.mailbox.to_ascii_lowercase(), w.part))
            .collect();
        let mut missing: Vec<_> = wanted.difference(&held).cloned().collect();
        missing.sort();
        let mut last: Option<(String, Option<Arc<GraphConnector>>)> = None;
        for (account, mailbox, part) in missing {
            if last.as_ref().is_none_or(|(a, _)| *a != account) {
                last = Some((account.clone(), self.connector(&account)));
            }
            if let Some((_, Some(c))) = &last {
                self.create(c, &account, &mailbox, &part, now).await;
            }
        }
        for (id, w) in self.subscriptions.expiring(now + RENEW_AHEAD) {
            self.renew(&id, &w).await;
        }
    }

    async fn drop_account_watch(&self, w: &Watch) {
        for (id, watch) in self.subscriptions.of_account(&w.account) {
            if watch != *w {
                continue;
            }
            self.subscriptions.remove(&id);
            // The connector the subscription was made with (the account and its secret may be
            // gone). Should the deletion fail, the subscription lapses at its expiration, and its
            // clientState is forgotten, so its notifications do nothing meanwhile.
            if let Some(c) = self.connector(&w.account) {
                if let Err(e) = c.unsubscribe(&w.mailbox, &id).await {
                    tracing::info!(account = %w.account, error = %e, "deleting a Graph subscription failed; it lapses at its expiration");
                }
            }
        }
        if self.subscriptions.of_account(&w.account).is_empty() {
            self.connectors.lock().expect("connectors lock").remove(&w.account);
        }
    }

    async fn renew(&self, id: &str, w: &Watch) {
        let Some(c) = self.connector(&w.account) else { return };
        let now = Utc::now();
        match c.renew(&w.mailbox, id, now + LIFETIME).await {
            Ok(sub) => self.subscriptions.renewed(id, sub.expires),
            Err(e) if e.kind == ErrorKind::NotFound => {
                tracing::info!(account = %w.account, mailbox = %w.mailbox, part = %w.part, "Graph no longer has the subscription; creating it again");
                self.subscriptions.remove(id);
                self.create(&c, &w.account, &w.mailbox, &w.part, now).await;
            }
            Err(e) => {
                tracing::warn!(account = %w.account, error = %e, "renewing a Graph subscription failed; retried at the next check")
            }
        }
    }

    /// Handles what a lifecycle notification asked for, under the lease.
    pub async fn handle(&self, action: Action) {
        for _ in 0..HANDLE_TRIES {
            if self.leased(self.handle_now(action.clone())).await {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        tracing::info!("another replica held the change-notification lease; the next reconciliation handles the lifecycle notification");
    }

    async fn handle_now(&self, action: Action) {
        match action {
            Action::Renew(id, w) => self.renew(&id, &w).await,
            Action::Recreate(id, w) => {
                self.subscriptions.remove(&id);
                if let Some(c) = self.connector(&w.account) {
                    self.create(&c, &w.account, &w.mailbox, &w.part, Utc::now()).await;
                }
            }
            Action::Sync(_) => {}
        }
    }

    /// Runs until `stop` resolves: reconciles now, every [`RECONCILE_EVERY`], and
    /// whenever `wake` gets a lifecycle action or a nudge (`None`, after an account change).
    pub async fn run(
        self: Arc<Self>,
        mut wake: mpsc::Receiver<Option<Action>>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            self.reconcile().await;
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(RECONCILE_EVERY) => {}
                got = wake.recv() => match got {
                    Some(Some(action)) => self.handle(action).await,
                    Some(None) => {}
                    None => break,
                },
            }
        }
    }
}
