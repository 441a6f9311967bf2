//! The account registry: adds, lists, removes and syncs accounts, keeping
//! their secrets sealed, and answers what each account's sync is doing.

use super::progress::{Progress, ProgressHandle, Tracked};
use super::subset::Subset;
use crate::config::AccountsConfig;
use crate::model::{AccountSpec, SourceKind};
use crate::secrets::{SecretError, SecretKey};
use crate::store::{CollectionState, IndexStore, StoreError};
use crate::store::{RegistryStore, RunRecord};
use crate::sync::scheduler::{Runner, Schedule, Scheduled};
use crate::sync::{self, AccountSyncReport, Indexer};
use crate::user::{HandlingCode, UserId};
use chrono::{DateTime, Utc};
use contactbridge_connector::{echo, Connector, Error, ErrorKind, NetPolicy};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// What went wrong, in words an admin can act on. Never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no account {} (`contactbridge account list` shows them)", echo(.0))]
    NotFound(String),
    #[error("account {} already exists; remove it first or pick another id", echo(.0))]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("account {} is already syncing", echo(.0))]
    Busy(String),
    /// A connector failure, explained ([`explain`]).
    #[error("{message}")]
    Source { kind: ErrorKind, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// One collection's sync state, for status.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionStatus {
    pub user: UserId,
    pub collection: String,
    pub state: CollectionState,
}

/// How one part of an account (a mailbox; "" for the whole account) answered a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartCheck {
    pub part: String,
    /// The failure's kind and its explanation ([`explain`]); `None`: the part answered.
    pub error: Option<(ErrorKind, String)>,
}

/// After the n-th failure in a row, scheduled syncs leave a collection out for
/// `COLLECTION_BACKOFF_BASE × 2^(n-1)`, up to `COLLECTION_BACKOFF_MAX` (the scheduler's
/// defaults for whole accounts).
pub const COLLECTION_BACKOFF_BASE: std::time::Duration = std::time::Duration::from_secs(60);
pub const COLLECTION_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Past this age, a sync discovers the account's collections again even when all went well
/// (collections added at the source show up within it; `sync --once --rediscover` at once).
pub const DISCOVERY_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A hash of the account's settings (without its secret): discovery's results depend on them.
fn settings_fingerprint(spec: &AccountSpec) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut source = spec.source.clone();
    source.take_secret();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&source).unwrap_or_default().hash(&mut h);
    h.finish()
}

fn seconds_since(t: DateTime<Utc>) -> f64 {
    (Utc::now() - t).to_std().unwrap_or_default().as_secs_f64()
}

fn collection_backoff(failures: u32) -> chrono::Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
    chrono::Duration::from_std(COLLECTION_BACKOFF_BASE.saturating_mul(factor).min(COLLECTION_BACKOFF_MAX))
        .unwrap_or_default()
}

/// Everything `account show` and the admin API tell about an account.
#[derive(Debug, Clone)]
pub struct AccountStatus {
    pub spec: AccountSpec,
    pub schedule: Schedule,
    /// The next time the schedule fires (without jitter or backoff).
    pub next_run: Option<DateTime<Utc>>,
    pub last_run: Option<RunRecord>,
    /// Set while a sync runs.
    pub progress: Option<Progress>,
    pub collections: Vec<CollectionStatus>,
    /// Records held, by kind (contact, event, mail, document, out_of_office), over all its users.
    pub records: BTreeMap<String, usize>,
}

/// The registry. Share it in an `Arc`; it is also the scheduler's [`Runner`].
pub struct Registry {
    store: Arc<dyn RegistryStore>,
    key: SecretKey,
    default_schedule: Schedule,
    /// What accounts registered by tenant admins may reach.
    limits: AccountsConfig,
    running: Mutex<HashMap<String, ProgressHandle>>,
    /// Where syncs started in the background run ([`Registry::sync_runtime`]).
    sync_runtime: Option<tokio::runtime::Handle>,
    /// (account, contact record id) → when its drive was last searched for it.
    searched: Mutex<HashMap<(String, String), DateTime<Utc>>>,
    /// Sync leases for syncs started by hand, with several replicas on one store.
    leasing: Option<crate::sync::lease::Leasing>,
    /// Every sync's outcome, for the metrics endpoint.
    metrics: Arc<super::metrics::SyncMetrics>,
}

/// Drive searches after a scheduled sync: for the contacts of calls in these last days …
pub const SEARCH_RECENT_DAYS: i64 = 7;
/// … at most this many contacts per sync (each up to three Graph requests per mailbox) …
pub const SEARCH_CONTACTS_PER_SYNC: usize = 20;
/// … each searched again only after this long.
pub const SEARCH_AGAIN_AFTER_HOURS: i64 = 24;

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("key", &self.key).finish_non_exhaustive()
    }
}

/// A built connector, and the Graph token cache whose rotated refresh token is kept.
struct Built {
    connector: Box<dyn Connector>,
    graph_tokens: Option<Arc<contactbridge_graph::TokenCache>>,
    secret: Option<String>,
}

/// Removes an account's running entry when its sync ends or is dropped.
struct RunningGuard<'a> {
    registry: &'a Registry,
    id: String,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.registry.running.lock().expect("running lock").remove(&self.id);
    }
}

impl Registry {
    pub fn new(store: Arc<dyn RegistryStore>, key: SecretKey, default_schedule: Schedule) -> Self {
        Self {
            store,
            key,
            default_schedule,
            limits: AccountsConfig::default(),
            running: Mutex::new(HashMap::new()),
            sync_runtime: None,
            searched: Mutex::default(),
            leasing: None,
            metrics: Arc::default(),
        }
    }

    /// The sync metrics (`serve` registers them on its metrics endpoint).
    pub fn sync_metrics(&self) -> &Arc<super::metrics::SyncMetrics> {
        &self.metrics
    }

    /// Runs the syncs started in the background on `runtime` (`serve`: the
    /// [`crate::sync::SyncRuntime`], apart from the runtime serving lookups).
    pub fn with_sync_runtime(self, runtime: tokio::runtime::Handle) -> Self {
        Self { sync_runtime: Some(runtime), ..self }
    }

    /// Syncs started by hand ([`Registry::sync`]) take the account's lease too
    /// (several replicas on one store; scheduled syncs take it in the scheduler):
    /// one held by another replica fails with [`AccountError::Busy`].
    pub fn with_leasing(self, leasing: crate::sync::lease::Leasing) -> Self {
        Self { leasing: Some(leasing), ..self }
    }

    /// How this replica takes leases, when several replicas share the store.
    pub fn leasing(&self) -> Option<&crate::sync::lease::Leasing> {
        self.leasing.as_ref()
    }

    /// The runtime for syncs started in the background: the one given with
    /// [`Registry::with_sync_runtime`], else the current one.
    pub fn sync_runtime(&self) -> tokio::runtime::Handle {
        self.sync_runtime.clone().unwrap_or_else(tokio::runtime::Handle::current)
    }

    /// Sets what accounts registered by tenant admins may reach (files roots, hosts
    /// allowed although inner). Without it: no files, only public addresses.
    pub fn with_limits(self, limits: AccountsConfig) -> Self {
        Self { limits, ..self }
    }

    /// The registry for a data directory: the key from `secret.key` (created if
    /// missing) or the environment, and the configured default schedule (UTC).
    pub fn open(store: Arc<dyn RegistryStore>, config: &crate::config::Config) -> Result<Self, AccountError> {
        let key = SecretKey::load_or_create(&config.data_dir)?;
        let schedule =
            Schedule::new(&config.sync.default_schedule, "UTC").map_err(|e| AccountError::Invalid(e.to_string()))?;
        let metrics = super::metrics::SyncMetrics::with_max_collection_series(config.metrics.max_collection_series);
        Ok(Self { metrics: Arc::new(metrics), ..Self::new(store, key, schedule).with_limits(config.accounts.clone()) })
    }

    pub fn store(&self) -> &Arc<dyn RegistryStore> {
        &self.store
    }

    /// Registers an account; the secret inside `spec.source` is sealed and stored apart.
    pub fn add(&self, mut spec: AccountSpec) -> Result<AccountSpec, AccountError> {
        // `<tenant>/<id>` for accounts of tenant admins, the bare id otherwise.
        let public = AccountSpec::public_id(&spec.id);
        AccountSpec::check_id(public).map_err(AccountError::Invalid)?;
        let expected = spec.tenant.as_deref().map_or_else(|| public.to_string(), |t| AccountSpec::scoped_id(t, public));
        if spec.id != expected {
            return Err(AccountError::Invalid(
                AccountSpec::check_id(&spec.id)
                    .err()
                    .unwrap_or_else(|| format!("account id {} is not scoped by its tenant", echo(&spec.id))),
            ));
        }
        if self.store.account(&spec.id)?.is_some() {
            return Err(AccountError::Exists(spec.id));
        }
        self.validate(&spec)?;
        let secret = spec.source.take_secret();
        let sealed = match (&secret, spec.source.secret_name()) {
            (Some(s), Some(_)) if !s.is_empty() => Some(self.key.seal(&spec.id, s.as_bytes())?),
            (_, Some(name)) => return Err(AccountError::Invalid(format!("account {} needs a {name}", spec.id))),
            _ => None,
        };
        self.store.put_account(&spec, sealed.as_deref())?;
        tracing::info!(account = %spec.id, user = %spec.user, kind = spec.source.name(), "account registered");
        Ok(spec)
    }

    fn validate(&self, spec: &AccountSpec) -> Result<(), AccountError> {
        let invalid = |m: String| AccountError::Invalid(m);
        for user in spec.users() {
            if self.store.profile(&user)?.is_none() {
                return Err(invalid(format!(
                    "user {user} does not exist; create it with `contactbridge user add {user} --tenant …`"
                )));
            }
        }
        if let Some(s) = &spec.schedule {
            Schedule::new(&s.cron, &s.time_zone).map_err(|e| invalid(e.to_string()))?;
        }
        if let Some(r) = &spec.region {
            crate::phone::Region::parse(r).map_err(|e| invalid(e.to_string()))?;
        }
        // Before anything that looks at the target: a refused target answers alike
        // whether it exists or not.
        self.check_reach(spec)?;
        match &spec.source {
            SourceKind::CardDav(d) | SourceKind::CalDav(d) => d.validate().map_err(|e| invalid(e.message))?,
            SourceKind::Graph(g) => {
                if g.mailboxes.is_empty() {
                    return Err(invalid("a Graph account needs at least one mailbox (--mailbox)".into()));
                }
                if let Some(m) = spec.mailbox_users.keys().find(|m| !g.mailboxes.contains(m)) {
                    return Err(invalid(format!(
                        "mailbox {} is mapped to a user but not among the mailboxes",
                        echo(m)
                    )));
                }
            }
            SourceKind::Files { path } => {
                if !path.exists() {
                    return Err(invalid(format!("{} does not exist", echo(&path.to_string_lossy()))));
                }
            }
        }
        Ok(())
    }

    /// Assigns a handling code through the one path every interface takes ([`super::assign_code`]).
    pub fn assign_code(
        &self,
        user: &UserId,
        target: &crate::store::AssignTarget,
        code: Option<&HandlingCode>,
        now: DateTime<Utc>,
    ) -> Result<super::AssignOutcome, AccountError> {
        super::assign_code(self.store.as_ref(), user, target, code, now)
    }

    /// An account as stored (its secret empty).
    pub fn get(&self, id: &str) -> Result<AccountSpec, AccountError> {
        self.store.account(id)?.ok_or_else(|| AccountError::NotFound(id.to_string()))
    }

    pub fn list(&self) -> Result<Vec<AccountSpec>, AccountError> {
        Ok(self.store.accounts()?)
    }

    /// Removes an account and every record it brought into its users' indexes.
    /// Returns how many records were removed.
    pub fn remove(&self, id: &str) -> Result<usize, AccountError> {
        let spec = self.get(id)?;
        if self.running.lock().expect("running lock").contains_key(id) {
            return Err(AccountError::Busy(id.to_string()));
        }
        let mut removed = 0;
        for user in spec.users() {
            removed += self.store.remove_account(&user, &spec.id)?;
        }
        self.store.delete_account(id)?;
        self.metrics.forget_account(id);
        tracing::info!(account = %id, records = removed, "account removed");
        Ok(removed)
    }

    pub fn set_enabled(&self, id: &str, enabled: bool) -> Result<AccountSpec, AccountError> {
        let mut spec = self.get(id)?;
        spec.enabled = enabled;
        self.store.put_account(&spec, None)?;
        Ok(spec)
    }

    /// Takes the account as the operator's (not limited by `[accounts]`): for accounts
    /// stored before registrants were recorded. Refused for an account of a tenant admin.
    pub fn adopt(&self, id: &str) -> Result<AccountSpec, AccountError> {
        let mut spec = self.get(id)?;
        if let Some(t) = &spec.tenant {
            return Err(AccountError::Invalid(format!(
                "account {id} was registered by an admin of tenant {t}; register it again with the CLI instead"
            )));
        }
        spec.operator = true;
        self.store.put_account(&spec, None)?;
        Ok(spec)
    }

    /// Replaces the account's schedule (`None`: the default).
    pub fn set_schedule(&self, id: &str, schedule: Option<Schedule>) -> Result<AccountSpec, AccountError> {
        let mut spec = self.get(id)?;
        if let Some(s) = &schedule {
            Schedule::new(&s.cron, &s.time_zone).map_err(|e| AccountError::Invalid(e.to_string()))?;
        }
        spec.schedule = schedule;
        self.store.put_account(&spec, None)?;
        Ok(spec)
    }

    /// Replaces the account's secret (password, token, client secret).
    pub fn set_secret(&self, id: &str, secret: &str) -> Result<(), AccountError> {
        let spec = self.get(id)?;
        let Some(name) = spec.source.secret_name() else {
            return Err(AccountError::Invalid(format!("account {id} has no secret")));
        };
        if secret.is_empty() {
            return Err(AccountError::Invalid(format!("the {name} is empty")));
        }
        self.store.put_sealed_secret(id, &self.key.seal(id, secret.as_bytes())?)?;
        Ok(())
    }

    /// The schedule an account runs on.
    pub fn schedule_of(&self, spec: &AccountSpec) -> Schedule {
        spec.schedule.clone().unwrap_or_else(|| self.default_schedule.clone())
    }

    /// The network policy of an account's connections.
    fn net_policy(&self, spec: &AccountSpec) -> NetPolicy {
        if spec.operator {
            NetPolicy::open()
        } else {
            NetPolicy::restricted(&self.limits.allow_hosts)
        }
    }

    /// Refuses what an account may not reach: for accounts of tenant admins, files
    /// outside the operator's `files_roots` and inner network addresses; for every
    /// DAV account, plain `http://` to another machine without its opt-in. Checked
    /// when it is registered and whenever its connector is built.
    fn check_reach(&self, spec: &AccountSpec) -> Result<(), AccountError> {
        let policy = self.net_policy(spec);
        let local = |e: Error| AccountError::Invalid(e.message);
        if let SourceKind::CardDav(d) | SourceKind::CalDav(d) = &spec.source {
            d.check_target(&policy).map_err(local)?;
        }
        if spec.operator {
            return Ok(());
        }
        let tenant = match &spec.tenant {
            Some(t) => Some(t.clone()),
            None => self.store.profile(&spec.user)?.map(|p| p.tenant),
        };
        match &spec.source {
            SourceKind::Files { path } => {
                super::reach::check_files_path(path, &self.limits.files_roots, tenant.as_deref())
            }
            SourceKind::CardDav(d) | SourceKind::CalDav(d) => match &d.ca_file {
                Some(ca) => super::reach::check_files_path(ca, &self.limits.files_roots, tenant.as_deref()),
                None => Ok(()),
            },
            SourceKind::Graph(g) => super::reach::check_graph_endpoints(g, &policy),
        }
        .map_err(AccountError::Invalid)
    }

    fn build(&self, spec: &AccountSpec) -> Result<Built, AccountError> {
        self.check_reach(spec)?;
        let policy = self.net_policy(spec);
        let mut source = spec.source.clone();
        let secret = match self.store.sealed_secret(&spec.id)? {
            Some(sealed) => {
                let plain = self.key.open(&spec.id, &sealed)?;
                let s = String::from_utf8(plain)
                    .map_err(|_| SecretError::Damaged { account: spec.id.clone(), reason: "not UTF-8".into() })?;
                source.put_secret(s.clone());
                Some(s)
            }
            None => None,
        };
        let explain_err = |e: Error| AccountError::Source { kind: e.kind, message: explain(spec, &e) };
        Ok(match source {
            SourceKind::Graph(g) => {
                let c = contactbridge_graph::GraphConnector::new(g).map_err(explain_err)?;
                let tokens = c.tokens().clone();
                Built { connector: Box::new(c), graph_tokens: Some(tokens), secret }
            }
            SourceKind::CardDav(d) => Built {
                connector: Box::new(
                    contactbridge_dav::DavConnector::with_policy(d, contactbridge_dav::DavKind::CardDav, policy)
                        .map_err(explain_err)?,
                ),
                graph_tokens: None,
                secret,
            },
            SourceKind::CalDav(d) => Built {
                connector: Box::new(
                    contactbridge_dav::DavConnector::with_policy(d, contactbridge_dav::DavKind::CalDav, policy)
                        .map_err(explain_err)?,
                ),
                graph_tokens: None,
                secret,
            },
            SourceKind::Files { path } => Built {
                connector: Box::new(if spec.operator {
                    contactbridge_files::FilesConnector::new(path)
                } else {
                    contactbridge_files::FilesConnector::new(path).confined()
                }),
                graph_tokens: None,
                secret,
            },
        })
    }

    /// The Graph connector of a Graph account (its secret in place); `None` for other kinds.
    pub fn graph_connector(&self, id: &str) -> Result<Option<contactbridge_graph::GraphConnector>, AccountError> {
        let spec = self.get(id)?;
        let SourceKind::Graph(_) = &spec.source else {
            return Ok(None);
        };
        self.check_reach(&spec)?;
        let mut source = spec.source.clone();
        if let Some(sealed) = self.store.sealed_secret(&spec.id)? {
            let plain = self.key.open(&spec.id, &sealed)?;
            let s = String::from_utf8(plain)
                .map_err(|_| SecretError::Damaged { account: spec.id.clone(), reason: "not UTF-8".into() })?;
            source.put_secret(s);
        }
        let SourceKind::Graph(g) = source else {
            return Ok(None);
        };
        let c = contactbridge_graph::GraphConnector::new(g)
            .map_err(|e| AccountError::Source { kind: e.kind, message: explain(&spec, &e) })?;
        Ok(Some(c))
    }

    /// Searches the OneDrive of each of `user`'s mailboxes in Graph account `id` for a
    /// contact's name, company and email (each one Graph request, at most three per
    /// mailbox, through the account's per-mailbox request limit) and keeps the files
    /// found as Document records of the collection `{mailbox}/driveSearch`, filed under
    /// the contact (its email and name as the document's person), so the caller's
    /// context finds them from the index, off the network. Returns the files kept.
    pub async fn search_drive_for(
        &self,
        id: &str,
        user: &UserId,
        name: &str,
        company: Option<&str>,
        email: Option<&str>,
    ) -> Result<usize, AccountError> {
        use contactbridge_connector::{ChangeSet, ChangeSink as _, Person};
        let spec = self.get(id)?;
        let Some(c) = self.graph_connector(id)? else {
            return Ok(0);
        };
        let SourceKind::Graph(g) = &spec.source else { return Ok(0) };
        let owners = spec.owners();
        let indexer = self.indexer_for(&spec, user)?;
        let person = Person {
            email: email.map(|e| e.trim().to_lowercase()).unwrap_or_default(),
            name: Some(name.to_string()).filter(|n| !n.trim().is_empty()),
        };
        let terms: Vec<&str> =
            [Some(name), company, email].into_iter().flatten().map(str::trim).filter(|t| t.len() >= 3).collect();
        let mut kept = 0;
        for mailbox in &g.mailboxes {
            let owner = owners.get(&mailbox.to_ascii_lowercase()).or_else(|| owners.get(mailbox)).unwrap_or(&spec.user);
            if owner != user {
                continue;
            }
            let mut found: Vec<contactbridge_connector::Document> = Vec::new();
            for t in &terms {
                let hits = c
                    .search_drive(mailbox, t)
                    .await
                    .map_err(|e| AccountError::Source { kind: e.kind, message: explain(&spec, &e) })?;
                for mut d in hits {
                    if found.iter().any(|f| f.id == d.id) {
                        continue;
                    }
                    d.people.push(person.clone());
                    found.push(d);
                }
            }
            if found.is_empty() {
                continue;
            }
            kept += found.len();
            let scope = crate::store::CollectionScope {
                user: user.clone(),
                account: spec.id.clone(),
                collection: format!("{mailbox}/driveSearch"),
            };
            let index: &dyn IndexStore = self.store.as_ref();
            let mut sink = sync::IndexSink::new(index, scope, &indexer);
            let changes = ChangeSet {
                upserts: found.into_iter().map(contactbridge_connector::Record::Document).collect(),
                ..Default::default()
            };
            sink.apply(changes).await.map_err(|e| AccountError::Source { kind: e.kind, message: e.to_string() })?;
        }
        Ok(kept)
    }

    /// The account's connector, its secret in place.
    pub fn connector(&self, id: &str) -> Result<Box<dyn Connector>, AccountError> {
        Ok(self.build(&self.get(id)?)?.connector)
    }

    /// Checks credentials and reachability (no sync). The error says what to do; with
    /// several mailboxes, it names each failing one ([`Registry::test_parts`] has all).
    pub async fn test(&self, id: &str) -> Result<(), AccountError> {
        let parts = self.test_parts(id).await?;
        let failed: Vec<&PartCheck> = parts.iter().filter(|p| p.error.is_some()).collect();
        let Some(first) = failed.first().and_then(|p| p.error.as_ref()) else { return Ok(()) };
        let kind = first.0;
        let message = if parts.len() == 1 {
            first.1.clone()
        } else {
            let each: Vec<String> =
                failed.iter().filter_map(|p| p.error.as_ref().map(|(_, m)| format!("{}: {m}", p.part))).collect();
            format!("{} ({} of {} mailboxes failed)", each.join("; "), failed.len(), parts.len())
        };
        Err(AccountError::Source { kind, message })
    }

    /// Checks each part of the account on its own (each mailbox of an organisation-wide
    /// Graph account; the account as one part "" otherwise), with what to do for each failure.
    pub async fn test_parts(&self, id: &str) -> Result<Vec<PartCheck>, AccountError> {
        let spec = self.get(id)?;
        let built = self.build(&spec)?;
        let checked = built.connector.check_parts().await;
        // A refresh token rotated while checking is kept even if the check failed later.
        self.keep_rotated_token(&spec, &built)?;
        Ok(checked
            .into_iter()
            .map(|(part, result)| PartCheck { part, error: result.err().map(|e| (e.kind, explain(&spec, &e))) })
            .collect())
    }

    /// The live progress of a running sync.
    pub fn progress(&self, id: &str) -> Option<Progress> {
        self.running.lock().expect("running lock").get(id).map(|p| p.get())
    }

    /// Syncs an account now, every collection (also those backing off). Fails with
    /// [`AccountError::Busy`] if it is already syncing. Collection failures are in the
    /// report (and in the run record). Dropping the future stops the sync between two
    /// committed change sets.
    pub async fn sync(&self, id: &str) -> Result<AccountSyncReport, AccountError> {
        self.sync_with(id, ProgressHandle::default()).await
    }

    /// [`Registry::sync`], reporting into `progress` (e.g. for a progress bar).
    pub async fn sync_with(&self, id: &str, progress: ProgressHandle) -> Result<AccountSyncReport, AccountError> {
        self.sync_leased(id, progress, false).await
    }

    /// [`Registry::sync_with`], discovering the account's collections again first
    /// (new address books, calendars or folders at the source), not from what the last sync found.
    pub async fn sync_rediscovering(
        &self,
        id: &str,
        progress: ProgressHandle,
    ) -> Result<AccountSyncReport, AccountError> {
        self.sync_leased(id, progress, true).await
    }

    /// A sync started by hand, under the account's lease when replicas share the store.
    async fn sync_leased(
        &self,
        id: &str,
        progress: ProgressHandle,
        rediscover: bool,
    ) -> Result<AccountSyncReport, AccountError> {
        use crate::sync::lease::{run_leased, Leased};
        let Some(leasing) = &self.leasing else { return self.sync_inner(id, progress, false, rediscover).await };
        self.get(id)?;
        match run_leased(leasing, id, self.sync_inner(id, progress, false, rediscover)).await {
            Leased::Ran(r) => r,
            Leased::HeldElsewhere { holder } => {
                tracing::info!(
                    account = id,
                    holder = holder.as_deref().unwrap_or("?"),
                    "the account is syncing on another replica"
                );
                Err(AccountError::Busy(id.to_string()))
            }
            Leased::Lost => Err(AccountError::Invalid(format!(
                "the sync of account {} stopped: another replica took the account over",
                crate::connector::echo(id)
            ))),
            Leased::Failed(e) => Err(AccountError::Invalid(e)),
        }
    }

    /// A scheduled sync: collections backing off after failures are left out until
    /// their backoff ends (unless every collection is), the others sync.
    pub async fn sync_scheduled(&self, id: &str) -> Result<AccountSyncReport, AccountError> {
        let report = self.sync_inner(id, ProgressHandle::default(), true, false).await?;
        self.search_for_recent_callers(id).await;
        Ok(report)
    }

    /// After a scheduled sync of a Graph account: searches its users' drives for the
    /// contacts of their calls of the last [`SEARCH_RECENT_DAYS`] days (at most
    /// [`SEARCH_CONTACTS_PER_SYNC`], each once per [`SEARCH_AGAIN_AFTER_HOURS`]), so the
    /// context of their next call has the files that mention them. Failures are logged.
    pub async fn search_for_recent_callers(&self, id: &str) {
        let Ok(spec) = self.get(id) else { return };
        let SourceKind::Graph(_) = &spec.source else { return };
        let now = Utc::now();
        let mut users: Vec<UserId> = spec.owners().into_values().collect();
        users.push(spec.user.clone());
        users.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        users.dedup();
        let window = crate::store::TimeWindow { from: now - chrono::Duration::days(SEARCH_RECENT_DAYS), to: now };
        let mut budget = SEARCH_CONTACTS_PER_SYNC;
        for user in users {
            let calls = match self.store.calls(&user, window, 200) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(account = id, error = %e, "reading recent calls for drive search failed");
                    continue;
                }
            };
            for r in calls.iter().filter_map(|c| c.contact.as_ref()) {
                if budget == 0 {
                    return;
                }
                let key = (id.to_string(), format!("{}/{}/{}", r.account, r.collection, r.id.as_str()));
                let again = now - chrono::Duration::hours(SEARCH_AGAIN_AFTER_HOURS);
                if self.searched.lock().expect("searched lock").get(&key).is_some_and(|t| *t > again) {
                    continue;
                }
                let Ok(Some(stored)) = self.store.contact(&user, r) else { continue };
                budget -= 1;
                self.searched.lock().expect("searched lock").insert(key, now);
                let c = &stored.contact;
                let email = c.emails.first().map(String::as_str);
                match self.search_drive_for(id, &user, &c.best_name(), c.company.as_deref(), email).await {
                    Ok(n) => tracing::debug!(account = id, files = n, "drive searched for a recent caller"),
                    Err(e) => tracing::info!(account = id, error = %e, "drive search for a recent caller failed"),
                }
            }
        }
    }

    async fn sync_inner(
        &self,
        id: &str,
        progress: ProgressHandle,
        honour_backoff: bool,
        rediscover: bool,
    ) -> Result<AccountSyncReport, AccountError> {
        let spec = self.get(id)?;
        let _guard = {
            let mut running = self.running.lock().expect("running lock");
            if running.contains_key(id) {
                return Err(AccountError::Busy(id.to_string()));
            }
            running.insert(id.to_string(), progress.clone());
            RunningGuard { registry: self, id: id.to_string() }
        };
        let started = Utc::now();
        let mut run = self.store.run_record(id)?.unwrap_or_default();
        let previous = run.outcome;
        let backing_off: HashMap<String, (u32, DateTime<Utc>)> = if honour_backoff {
            run.backoff
                .iter()
                .filter(|(_, b)| b.until > started)
                .map(|(c, b)| (c.clone(), (b.failures, b.until)))
                .collect()
        } else {
            HashMap::new()
        };
        // What discovery found last time, while the syncs since went well and the settings are the same.
        let settings = settings_fingerprint(&spec);
        let cached = run.discovered.take().filter(|d| {
            !rediscover
                && d.settings == settings
                && run.outcome == Some(sync::SyncOutcome::Complete)
                && started - d.at < DISCOVERY_MAX_AGE
                && started >= d.at
        });
        let outcome =
            self.sync_spec(&spec, progress, &backing_off, cached.as_ref().map(|d| d.collections.clone())).await;
        let (report, listing) = match outcome {
            Ok(r) => r,
            Err(e) => {
                let kind = match &e {
                    AccountError::Source { kind, .. } => *kind,
                    _ => ErrorKind::Local,
                };
                self.metrics.observe(
                    spec.source.name(),
                    sync::SyncOutcome::Failed,
                    seconds_since(started),
                    (0, 0),
                    [kind],
                );
                self.metrics.observe_account(id, seconds_since(started), Some(kind), false);
                run.started = Some(started);
                run.finished = Some(Utc::now());
                run.error = Some(e.to_string());
                run.outcome = Some(sync::SyncOutcome::Failed);
                run.consecutive_failures += 1;
                self.store.put_run_record(id, &run)?;
                return Err(e);
            }
        };
        let totals = report.totals();
        let finished = Utc::now();
        run.started = Some(started);
        run.finished = Some(finished);
        run.upserted = totals.upserted;
        run.deleted = totals.deleted + totals.swept;
        run.failed_collections = report.collections.iter().filter(|c| c.error.is_some()).count();
        run.error = report.error.as_ref().map(|e| explain(&spec, e)).or_else(|| {
            report
                .collections
                .iter()
                .find_map(|c| c.error.as_ref().map(|e| format!("{}: {}", part_name(&c.collection), explain(&spec, e))))
        });
        // Each collection's own backoff: failures in a row, cleared by a success.
        if report.error.is_none() {
            run.backoff.retain(|c, _| report.collections.iter().any(|r| r.collection.id == *c));
        }
        for c in &report.collections {
            if backing_off.contains_key(&c.collection.id) {
                continue;
            }
            match &c.error {
                None => {
                    run.backoff.remove(&c.collection.id);
                }
                Some(e) => {
                    let failures = run.backoff.get(&c.collection.id).map_or(0, |b| b.failures) + 1;
                    let mut until = finished + collection_backoff(failures);
                    if let Some(asked) = e.retry_after.and_then(|r| chrono::Duration::from_std(r).ok()) {
                        until = until.max(finished + asked);
                    }
                    run.backoff.insert(c.collection.id.clone(), crate::store::CollectionBackoff { failures, until });
                }
            }
        }
        let outcome = report.outcome();
        if report.error.is_none() {
            // The account's collections as listed: series of those gone go too.
            self.metrics.retain_collections(id, listing.iter().map(|c| c.id.as_str()));
        }
        // Kept only after a complete sync: a collection gone (404), moved (301) or failing
        // otherwise, or the listing failing, has the next sync discover again.
        run.discovered = (outcome == sync::SyncOutcome::Complete).then(|| crate::store::Discovered {
            at: cached.map_or(started, |d| d.at),
            settings,
            collections: listing,
        });
        self.metrics.observe(
            spec.source.name(),
            outcome,
            seconds_since(started),
            (totals.upserted as u64, (totals.deleted + totals.swept) as u64),
            report.error.iter().chain(report.collections.iter().filter_map(|c| c.error.as_ref())).map(|e| e.kind),
        );
        self.observe_parts(id, &report, &backing_off, seconds_since(started));
        run.outcome = Some(outcome);
        match outcome {
            sync::SyncOutcome::Complete => {
                run.consecutive_failures = 0;
                run.last_success = run.finished;
            }
            // The healthy collections synced: the account as a whole is not backed off.
            sync::SyncOutcome::Partial => run.consecutive_failures = 0,
            sync::SyncOutcome::Failed => run.consecutive_failures += 1,
        }
        // Lost in a crash, a complete sync that changed nothing after a complete one
        // costs only its times: it does not wait for the disk.
        let changed_nothing = totals.upserted + totals.deleted + totals.swept == 0 && run.backoff.is_empty();
        if outcome == sync::SyncOutcome::Complete && previous == Some(outcome) && changed_nothing {
            self.store.put_run_record_lazily(id, &run)?;
        } else {
            self.store.put_run_record(id, &run)?;
        }
        Ok(report)
    }

    /// The per-account and per-collection sync metrics of a sync (collections left out
    /// while backing off were not synced: not recorded).
    fn observe_parts(
        &self,
        id: &str,
        report: &AccountSyncReport,
        backing_off: &HashMap<String, (u32, DateTime<Utc>)>,
        seconds: f64,
    ) {
        let outcome = report.outcome();
        self.metrics.observe_account(
            id,
            seconds,
            report.error.as_ref().map(|e| e.kind),
            outcome == sync::SyncOutcome::Complete,
        );
        for c in report.collections.iter().filter(|c| !backing_off.contains_key(&c.collection.id)) {
            self.metrics.observe_collection(
                id,
                &super::metrics::CollectionSync {
                    id: &c.collection.id,
                    kind: c.collection.kind,
                    seconds: c.duration.as_secs_f64(),
                    upserted: c.stats.upserted as u64,
                    removed: (c.stats.deleted + c.stats.swept) as u64,
                    error: c.error.as_ref().map(|e| e.kind),
                    throttling: c.throttling,
                },
            );
        }
    }

    /// Syncs every collection of the account, each user's collections with that
    /// user's indexer (region, handling codes): one listing, synced per user.
    /// Collections in `backing_off` (id → failures, until) are left out with an error
    /// in the report, unless that would leave out every collection.
    async fn sync_spec(
        &self,
        spec: &AccountSpec,
        progress: ProgressHandle,
        backing_off: &HashMap<String, (u32, DateTime<Utc>)>,
        cached: Option<Vec<contactbridge_connector::Collection>>,
    ) -> Result<(AccountSyncReport, Vec<contactbridge_connector::Collection>), AccountError> {
        progress.mark_started(Utc::now());
        let built = self.build(spec)?;
        let tracked = Tracked { inner: built.connector.as_ref(), progress: progress.clone() };
        let listed = match cached {
            Some(c) => {
                tracing::debug!(account = %spec.id, collections = c.len(), "collections as the last sync found them");
                progress.update(|p| p.collections_total = Some(c.len()));
                Ok(c)
            }
            None => tracked.collections().await,
        };
        self.keep_rotated_token(spec, &built)?;
        let collections = match listed {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(account = %spec.id, error = %e, "listing collections failed");
                return Ok((AccountSyncReport { error: Some(e), collections: Vec::new() }, Vec::new()));
            }
        };
        let listing = collections.clone();
        let mut report = AccountSyncReport::default();
        let all_backing_off = collections.iter().all(|c| backing_off.contains_key(&c.id));
        let collections: Vec<_> = if all_backing_off {
            collections
        } else {
            let (left_out, due): (Vec<_>, Vec<_>) =
                collections.into_iter().partition(|c| backing_off.contains_key(&c.id));
            for c in left_out {
                let (failures, until) = backing_off[&c.id];
                tracing::info!(account = %spec.id, collection = %c.id, failures, %until, "collection backing off: left out");
                let owner = c.owner.as_ref().and_then(|o| spec.owners().get(o).cloned());
                report.collections.push(sync::CollectionReport {
                    error: Some(Error::new(
                        ErrorKind::Local,
                        format!(
                            "left out until {} after {failures} failed sync(s) in a row (`contactbridge sync --once --account {}` tries it now)",
                            until.format("%Y-%m-%d %H:%M:%S UTC"),
                            spec.id
                        ),
                    )),
                    collection: c,
                    user: owner.or_else(|| Some(spec.user.clone())),
                    stats: Default::default(),
                    rejected: 0,
                    batches: 0,
                    throttling: Default::default(),
                    duration: Default::default(),
                });
            }
            due
        };
        let listed_collections = collections.clone();
        let owners = spec.owners();
        let mut groups: Vec<(UserId, Vec<contactbridge_connector::Collection>)> = Vec::new();
        for c in collections {
            // Unmapped mailboxes stay with the owner: the engine reports them.
            let user = c.owner.as_ref().and_then(|o| owners.get(o)).unwrap_or(&spec.user).clone();
            match groups.iter_mut().find(|(u, _)| *u == user) {
                Some((_, cs)) => cs.push(c),
                None => groups.push((user, vec![c])),
            }
        }
        let index: &dyn IndexStore = self.store.as_ref();
        for (user, collections) in groups {
            let indexer = self.indexer_for(spec, &user)?;
            let subset = Subset { inner: &tracked, collections };
            let target = sync::SyncTarget { account: &spec.id, user: &spec.user, owners: &owners, indexer: &indexer };
            let part = sync::sync_account(index, &subset, &target).await;
            report.collections.extend(part.collections);
            report.error = report.error.or(part.error);
        }
        // Handling codes users set: written after the sync, so the index holds what the source has.
        let (written, failed) =
            super::codes::write_back(self.store.as_ref(), &spec.id, &tracked, &listed_collections).await?;
        if written + failed > 0 {
            tracing::info!(account = %spec.id, written, failed, "handling codes written back");
        }
        self.keep_rotated_token(spec, &built)?;
        Ok((report, listing))
    }

    /// The indexer for `user`'s part of an account: the user's profile, the
    /// account's category mapping and region.
    fn indexer_for(&self, spec: &AccountSpec, user: &UserId) -> Result<Indexer, AccountError> {
        let profile = self.store.profile(user)?.ok_or_else(|| {
            AccountError::Invalid(format!("account {} feeds user {user}, who no longer exists", spec.id))
        })?;
        let mut indexer = Indexer::for_profile(&profile, &category_codes(spec));
        if let Some(r) = spec.region.as_deref().and_then(|r| crate::phone::Region::parse(r).ok()) {
            indexer.region = Some(r);
        }
        Ok(indexer)
    }

    /// Persists a Graph refresh token the identity provider rotated.
    fn keep_rotated_token(&self, spec: &AccountSpec, built: &Built) -> Result<(), AccountError> {
        let Some(tokens) = &built.graph_tokens else { return Ok(()) };
        if let Some(rt) = tokens.refresh_token() {
            if Some(rt.expose()) != built.secret.as_deref() && !rt.expose().is_empty() {
                self.store.put_sealed_secret(&spec.id, &self.key.seal(&spec.id, rt.expose().as_bytes())?)?;
                tracing::info!(account = %spec.id, "stored the rotated refresh token");
            }
        }
        Ok(())
    }

    /// Status of one account.
    pub fn status(&self, id: &str) -> Result<AccountStatus, AccountError> {
        let spec = self.get(id)?;
        let schedule = self.schedule_of(&spec);
        let next_run = if spec.enabled { schedule.next_after(Utc::now()).ok() } else { None };
        let mut collections = Vec::new();
        let mut records = BTreeMap::new();
        for user in spec.users() {
            for (collection, state) in self.store.collection_states(&user, &spec.id)? {
                collections.push(CollectionStatus { user: user.clone(), collection, state });
            }
            for (kind, n) in self.store.count_records(&user, &spec.id)? {
                *records.entry(kind).or_insert(0) += n;
            }
        }
        Ok(AccountStatus {
            last_run: self.store.run_record(id)?,
            progress: self.progress(id),
            spec,
            schedule,
            next_run,
            collections,
            records,
        })
    }
}

/// The account's category mapping, with a Graph account's own `category_codes` under it.
pub(super) fn category_codes(spec: &AccountSpec) -> HashMap<String, HandlingCode> {
    let mut map = HashMap::new();
    if let SourceKind::Graph(g) = &spec.source {
        for (category, code) in &g.category_codes {
            if let Ok(c) = HandlingCode::parse(code) {
                map.insert(category.clone(), c);
            }
        }
    }
    map.extend(spec.category_codes.iter().map(|(k, v)| (k.clone(), v.clone())));
    map
}

/// An admin's text as written when it is short, else quoted and cut ([`echo`]).
fn short(text: &str) -> String {
    if text.chars().nth(contactbridge_connector::echo::MAX_ECHO_CHARS).is_none() {
        text.to_string()
    } else {
        echo(text).to_string()
    }
}

/// A connector error as an admin can act on it: what failed and what to do.
pub fn explain(spec: &AccountSpec, e: &Error) -> String {
    let id = &spec.id;
    let secret = spec.source.secret_name().unwrap_or("credentials");
    let whose = match &spec.source {
        SourceKind::CardDav(d) | SourceKind::CalDav(d) => match &d.credentials {
            contactbridge_dav::Credentials::Basic { username, .. } => format!("user {}'s {secret}", short(username)),
            _ => format!("the {secret}"),
        },
        SourceKind::Graph(g) => format!("the {secret} of app {} in tenant {}", short(&g.client_id), short(&g.tenant)),
        SourceKind::Files { .. } => "nothing".into(),
    };
    let location = spec.source.location();
    let location = short(&location);
    if let SourceKind::Graph(g) = &spec.source {
        if let Some(hint) = entra_hint(&e.message, g, id) {
            return format!("{e} — {hint}");
        }
    }
    let hint = match e.kind {
        ErrorKind::Auth => format!(
            "the server at {location} rejected {whose}; set a new one with `contactbridge account set-secret {id} --secret-file FILE`"
        ),
        ErrorKind::Forbidden => match spec.source {
            SourceKind::Graph(_) => "the app lacks a permission or an application access policy fences the mailbox off; \
                 grant Contacts.Read, Calendars.Read, Mail.ReadBasic.All, Files.Read.All and MailboxSettings.Read \
                 (application) with admin consent"
                .into(),
            _ => format!("{whose} is valid but may not read this collection at {location}"),
        },
        ErrorKind::Unreachable => match spec.source {
            SourceKind::CardDav(_) | SourceKind::CalDav(_) => format!(
                "{location} cannot be reached; check the URL, DNS, firewall or proxy, and for a private CA give --ca-file"
            ),
            _ => format!("{location} cannot be reached; check the URL, DNS, firewall or proxy"),
        },
        ErrorKind::Throttled => "the server asks to slow down; the next scheduled sync retries".into(),
        ErrorKind::NotFound => format!("{location}: check the URL, path or mailbox name"),
        // A 4xx answer is the server refusing our request, not unreadable data.
        ErrorKind::InvalidData if http_status(&e.message).is_some_and(|s| (400..500).contains(&s)) => {
            format!("{location} refused the request; the status and code above say why")
        }
        ErrorKind::InvalidData => format!("{location} sent data that cannot be read"),
        ErrorKind::Gone => "the sync state expired; the next sync starts over".into(),
        ErrorKind::Unsupported | ErrorKind::Local => String::new(),
    };
    if hint.is_empty() {
        e.to_string()
    } else {
        format!("{e} — {hint}")
    }
}

/// A collection as an admin recognises it: its name, and the mailbox it belongs to.
fn part_name(c: &contactbridge_connector::Collection) -> String {
    match &c.owner {
        Some(owner) if !c.name.contains(owner.as_str()) => format!("{} of {owner}", c.name),
        _ => c.name.clone(),
    }
}

/// The HTTP status a connector's message names ("HTTP 400", "answered 400 Bad Request").
fn http_status(message: &str) -> Option<u16> {
    ["HTTP ", "answered "].iter().find_map(|marker| {
        let at = message.find(marker)? + marker.len();
        message.get(at..at + 3)?.parse().ok()
    })
}

/// What to do about an Entra ID error code (`AADSTS…`) in a Graph account's message.
fn entra_hint(message: &str, g: &contactbridge_graph::GraphAccount, id: &str) -> Option<String> {
    let code = contactbridge_graph::auth::entra_code(message)?;
    let tenant = short(&g.tenant);
    let app = short(&g.client_id);
    Some(match code {
        "AADSTS90002" | "AADSTS900023" | "AADSTS90013" | "AADSTS50128" => format!(
            "the identity provider does not know tenant {tenant}: check the tenant id or domain (and the authority \
             for a national cloud); the client secret is not the problem"
        ),
        "AADSTS700016" => format!(
            "app {app} is not registered in tenant {tenant}: check the client id and the tenant, and that the app \
             was consented to in this tenant"
        ),
        "AADSTS7000215" | "AADSTS7000222" | "AADSTS7000216" => format!(
            "the client secret of app {app} is wrong or expired; set a new one with \
             `contactbridge account set-secret {id} --secret-file FILE`"
        ),
        "AADSTS700027" | "AADSTS700024" => format!(
            "the certificate of app {app} was not accepted: check the thumbprint and that the certificate is \
             uploaded to the app registration"
        ),
        "AADSTS65001" | "AADSTS650057" => {
            format!("app {app} lacks admin consent in tenant {tenant}: grant it in the Entra admin center")
        }
        "AADSTS7000112" | "AADSTS700025" => {
            format!("app {app} is disabled or not a confidential client in tenant {tenant}")
        }
        _ => return None,
    })
}

#[async_trait::async_trait]
impl Runner for Registry {
    fn scheduled(&self) -> Result<Vec<Scheduled>, String> {
        let accounts = self.list().map_err(|e| e.to_string())?;
        accounts
            .into_iter()
            .map(|a| {
                let run = self.store.run_record(&a.id).map_err(|e| e.to_string())?.unwrap_or_default();
                Ok(Scheduled {
                    schedule: self.schedule_of(&a),
                    id: a.id,
                    enabled: a.enabled,
                    failures: run.consecutive_failures,
                    last_finished: run.finished,
                })
            })
            .collect()
    }

    fn last_finished(&self, account: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        self.store.run_record(account).ok().flatten().and_then(|r| r.finished)
    }

    /// Complete and partial syncs are successes for the scheduler: the account keeps
    /// its schedule, and only the failing collections back off (in the run record).
    async fn run(&self, account: &str) -> Result<(), String> {
        match self.sync_scheduled(account).await {
            Ok(report) => match report.outcome() {
                sync::SyncOutcome::Complete => Ok(()),
                sync::SyncOutcome::Partial => {
                    let error = self.store.run_record(account).ok().flatten().and_then(|r| r.error);
                    tracing::warn!(
                        account,
                        failed = report.failed(),
                        collections = report.collections.len(),
                        error = error.as_deref().unwrap_or(""),
                        "partial sync: the other collections synced; the failing ones back off"
                    );
                    Ok(())
                }
                sync::SyncOutcome::Failed => Err(self
                    .store
                    .run_record(account)
                    .ok()
                    .flatten()
                    .and_then(|r| r.error)
                    .unwrap_or_else(|| "a collection failed".into())),
            },
            Err(AccountError::Busy(_)) => {
                tracing::info!(account, "already syncing (started by hand); this scheduled run is left out");
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}
