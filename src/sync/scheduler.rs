//! The scheduler: runs each account's sync on its cron schedule (in its time
//! zone), with jitter, a cap on concurrent syncs, no overlapping runs of one
//! account, and exponential backoff after failures.
//!
//! Cron expressions are parsed by `croner` (5 fields, or 6 with seconds first);
//! time zones are IANA names (chrono-tz). Time comes from a [`Clock`] and sleeps
//! are `tokio::time` sleeps, so tests drive it with tokio's paused time.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

pub use crate::model::{Schedule, ScheduleError};

/// Where the scheduler reads the time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that starts at a given time and follows tokio's clock, so that
/// `tokio::time::pause()` / `advance()` move it (for tests).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(base: DateTime<Utc>) -> Self {
        Self { base, start: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.base + chrono::Duration::from_std(self.start.elapsed()).unwrap_or_default()
    }
}

/// One account as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub id: String,
    pub schedule: Schedule,
    pub enabled: bool,
    /// Failed runs in a row before the scheduler started (kept by the runner), and
    /// when the last one ended: the backoff carries over a restart.
    pub failures: u32,
    pub last_finished: Option<DateTime<Utc>>,
}

/// What the scheduler runs: the account registry in the bridge.
#[async_trait::async_trait]
pub trait Runner: Send + Sync + 'static {
    /// The accounts to schedule (re-read on every scheduler tick).
    fn scheduled(&self) -> Result<Vec<Scheduled>, String>;
    /// One sync of the account. `Err` with a message when it failed.
    async fn run(&self, account: &str) -> Result<(), String>;
    /// When the account's last sync finished, on any replica (the shared
    /// store's run record), read fresh: a replica that takes an account's
    /// lease skips the run when a sync has finished since the schedule's
    /// latest occurrence (another replica served it). `None`: unknown.
    fn last_finished(&self, account: &str) -> Option<DateTime<Utc>> {
        let _ = account;
        None
    }
}

/// How the scheduler behaves.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// At most this many syncs at once.
    pub max_concurrent: usize,
    /// Each run starts up to this fraction of the schedule's interval late (random),
    /// so accounts on the same schedule do not all start at once.
    pub jitter_fraction: f64,
    /// … but never more than this late.
    pub jitter_cap: Duration,
    /// After the n-th failure in a row, runs are skipped for `base × 2^(n-1)` …
    pub backoff_base: Duration,
    /// … up to this long.
    pub backoff_max: Duration,
    /// How often the account list is re-read when nothing is due.
    pub poll: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            max_concurrent: 4,
            jitter_fraction: 0.1,
            jitter_cap: Duration::from_secs(300),
            backoff_base: Duration::from_secs(60),
            backoff_max: Duration::from_secs(6 * 3600),
            poll: Duration::from_secs(60),
        }
    }
}

/// The scheduler's view of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountSchedule {
    /// When it runs next (`None` while running or disabled).
    pub next_run: Option<DateTime<Utc>>,
    pub running: bool,
    /// Runs started by the scheduler.
    pub runs: u64,
    /// Scheduled runs left out because the account was backing off.
    pub skipped: u64,
    pub consecutive_failures: u32,
    /// No run starts before this (after failures).
    pub backoff_until: Option<DateTime<Utc>>,
    pub last_started: Option<DateTime<Utc>>,
    pub last_finished: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    schedule: Option<Schedule>,
    /// Asked to run now by [`Scheduler::resync_all`], whatever its schedule and backoff.
    resync: bool,
    /// Asked to run soon by [`Scheduler::sync_soon`] (a change notification).
    soon: bool,
    /// Runs started by [`Scheduler::sync_soon`].
    pub notified_runs: u64,
}

/// The pass of [`Scheduler::resync_all`] being served.
#[derive(Default)]
struct Resync {
    /// The last pass asked for, and the one the accounts in `waiting` serve.
    asked: u64,
    serving: u64,
    waiting: std::collections::HashSet<String>,
}

struct Inner {
    runner: Arc<dyn Runner>,
    clock: Arc<dyn Clock>,
    options: SchedulerOptions,
    permits: Arc<Semaphore>,
    states: Mutex<HashMap<String, AccountSchedule>>,
    wake: Notify,
    resync: Mutex<Resync>,
    /// The last pass of [`Scheduler::resync_all`] that has finished.
    resynced: watch::Sender<u64>,
    /// Sync leases, when several replicas share the store ([`Scheduler::with_leasing`]).
    leasing: std::sync::OnceLock<super::lease::Leasing>,
}

/// The scheduler. Cheap to clone; [`Scheduler::spawn`] starts it.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

impl Scheduler {
    pub fn new(runner: Arc<dyn Runner>, clock: Arc<dyn Clock>, options: SchedulerOptions) -> Self {
        let permits = Arc::new(Semaphore::new(options.max_concurrent.max(1)));
        Self {
            inner: Arc::new(Inner {
                runner,
                clock,
                options,
                permits,
                states: Mutex::new(HashMap::new()),
                wake: Notify::new(),
                resync: Mutex::default(),
                resynced: watch::Sender::new(0),
                leasing: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Runs every sync under the account's lease ([`super::lease`]), for
    /// several replicas on one store: a run whose account another replica
    /// holds is tried again after `leasing.ttl` (it takes over when the holder
    /// died, and skips when the holder finished the run meanwhile); a run
    /// whose schedule occurrence another replica already served is skipped.
    /// Call before [`Scheduler::spawn`]; a second call is ignored.
    pub fn with_leasing(self, leasing: super::lease::Leasing) -> Self {
        let _ = self.inner.leasing.set(leasing);
        self
    }

    /// Every scheduled account's state.
    pub fn status(&self) -> HashMap<String, AccountSchedule> {
        self.inner.states.lock().expect("scheduler state lock").clone()
    }

    /// One account's state.
    pub fn account(&self, id: &str) -> Option<AccountSchedule> {
        self.inner.states.lock().expect("scheduler state lock").get(id).cloned()
    }

    /// Re-reads the accounts now (after one was added, changed or removed).
    pub fn refresh(&self) {
        self.inner.wake.notify_one();
    }

    /// Runs `account` as soon as a permit is free (a change notification said
    /// something changed), unless it is backing off after failures. Requests
    /// coalesce: any number of them before the run starts make one run, and
    /// those arriving while it runs make one more after it (never two at once).
    pub fn sync_soon(&self, account: &str) {
        self.inner.states.lock().expect("scheduler state lock").entry(account.to_string()).or_default().soon = true;
        self.inner.wake.notify_one();
    }

    /// Runs every enabled account once more as soon as a permit is free,
    /// whatever its schedule and backoff (a running one again after it ends):
    /// the index was replaced and must be synced again from the sources.
    /// Returns the pass's number; [`Scheduler::resynced`] reaches it when every
    /// account of the pass has run.
    pub fn resync_all(&self) -> u64 {
        let mut r = self.inner.resync.lock().expect("scheduler resync lock");
        r.asked += 1;
        self.inner.wake.notify_one();
        r.asked
    }

    /// The last finished pass of [`Scheduler::resync_all`].
    pub fn resynced(&self) -> watch::Receiver<u64> {
        self.inner.resynced.subscribe()
    }

    /// Starts the scheduler on the current tokio runtime.
    pub fn spawn(self) -> SchedulerHandle {
        self.spawn_on(&tokio::runtime::Handle::current())
    }

    /// Starts the scheduler on `runtime`; its syncs run there too (`serve`: the
    /// [`super::SyncRuntime`], apart from the runtime that serves lookups).
    pub fn spawn_on(self, runtime: &tokio::runtime::Handle) -> SchedulerHandle {
        let (stop, stopped) = watch::channel(None);
        let task = runtime.spawn(self.clone().run(stopped));
        SchedulerHandle { stop, task, scheduler: self }
    }

    async fn run(self, mut stop: watch::Receiver<Option<Duration>>) {
        let mut tasks: JoinSet<()> = JoinSet::new();
        loop {
            let wake_at = self.tick(&mut tasks);
            let wait = (wake_at - self.inner.clock.now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.inner.wake.notified() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = stop.changed() => break,
            }
        }
        let grace = (*stop.borrow()).unwrap_or_default();
        if !tasks.is_empty() {
            tracing::info!(running = tasks.len(), grace_secs = grace.as_secs(), "waiting for running syncs to finish");
        }
        let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                running = tasks.len(),
                "syncs still running after the grace period: stopping them between change sets"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            for st in self.inner.states.lock().expect("scheduler state lock").values_mut() {
                st.running = false;
            }
        }
    }

    /// Starts what is due; returns when to look again.
    fn tick(&self, tasks: &mut JoinSet<()>) -> DateTime<Utc> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let mut wake_at = now + chrono::Duration::from_std(inner.options.poll).unwrap_or(chrono::Duration::minutes(1));
        let accounts = match inner.runner.scheduled() {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "reading the accounts to schedule failed");
                return wake_at;
            }
        };
        let mut states = inner.states.lock().expect("scheduler state lock");
        states.retain(|id, s| s.running || accounts.iter().any(|a| &a.id == id));
        let mut resync = inner.resync.lock().expect("scheduler resync lock");
        let new_pass = resync.asked > resync.serving;
        if new_pass {
            resync.serving = resync.asked;
            resync.waiting = accounts.iter().filter(|a| a.enabled).map(|a| a.id.clone()).collect();
            tracing::info!(accounts = resync.waiting.len(), "syncing every account now");
        }
        // An account removed or disabled meanwhile is no longer waited for.
        resync.waiting.retain(|id| accounts.iter().any(|a| &a.id == id && a.enabled));
        self.finish_resync(&mut resync);
        for a in &accounts {
            let st = states.entry(a.id.clone()).or_insert_with(|| {
                let mut st = AccountSchedule { consecutive_failures: a.failures, ..AccountSchedule::default() };
                if a.failures > 0 {
                    st.backoff_until = a.last_finished.map(|t| t + self.backoff(a.failures));
                }
                st
            });
            if !a.enabled {
                st.next_run = None;
                st.soon = false;
                st.schedule = Some(a.schedule.clone());
                continue;
            }
            st.resync |= new_pass && resync.waiting.contains(&a.id);
            if st.running {
                continue;
            }
            if st.schedule.as_ref() != Some(&a.schedule) || st.next_run.is_none() {
                st.schedule = Some(a.schedule.clone());
                st.next_run = self.next_run(a, now);
            }
            let due = match st.next_run {
                _ if st.resync || st.soon => now,
                Some(due) => due,
                None => continue,
            };
            if due <= now {
                if !st.resync && st.backoff_until.is_some_and(|b| now < b) {
                    st.skipped += 1;
                    st.soon = false;
                    tracing::info!(account = %a.id, until = ?st.backoff_until, "skipping a scheduled sync: backing off after failures");
                    st.next_run = self.next_run(a, now);
                } else {
                    st.running = true;
                    st.next_run = None;
                    st.runs += 1;
                    if std::mem::take(&mut st.soon) {
                        st.notified_runs += 1;
                    }
                    let resync = std::mem::take(&mut st.resync).then_some(resync.serving);
                    tasks.spawn(self.clone().run_one(a.clone(), resync));
                }
            }
            if let Some(n) = st.next_run {
                wake_at = wake_at.min(n);
            }
        }
        wake_at
    }

    /// The next occurrence after `now`, plus jitter.
    fn next_run(&self, a: &Scheduled, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = match a.schedule.next_after(now) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(account = %a.id, error = %e, "account not scheduled");
                return None;
            }
        };
        let interval = a.schedule.next_after(next).map(|n| (n - next).to_std().unwrap_or_default()).unwrap_or_default();
        Some(next + chrono::Duration::from_std(self.jitter(interval)).unwrap_or_default())
    }

    /// A random delay up to `jitter_fraction` of `interval`, capped.
    pub fn jitter(&self, interval: Duration) -> Duration {
        let o = &self.inner.options;
        let max = interval.mul_f64(o.jitter_fraction.clamp(0.0, 1.0)).min(o.jitter_cap);
        if max.is_zero() {
            return Duration::ZERO;
        }
        let r = getrandom::u64().unwrap_or(0) as f64 / u64::MAX as f64;
        max.mul_f64(r)
    }

    /// How long runs are skipped after `failures` failures in a row.
    fn backoff(&self, failures: u32) -> chrono::Duration {
        let o = &self.inner.options;
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        chrono::Duration::from_std(o.backoff_base.saturating_mul(factor).min(o.backoff_max)).unwrap_or_default()
    }

    /// Marks a resync pass finished once no account is left to run in it.
    fn finish_resync(&self, resync: &mut Resync) {
        if resync.waiting.is_empty() && *self.inner.resynced.borrow() < resync.serving {
            self.inner.resynced.send_replace(resync.serving);
        }
    }

    /// One run; `resync`: the pass of [`Scheduler::resync_all`] it serves.
    async fn run_one(self, a: Scheduled, resync: Option<u64>) {
        let inner = &self.inner;
        let permit = inner.permits.clone().acquire_owned().await;
        let started = inner.clock.now();
        if let Some(st) = inner.states.lock().expect("scheduler state lock").get_mut(&a.id) {
            st.last_started = Some(started);
        }
        tracing::info!(account = %a.id, "scheduled sync starting");
        let result = match inner.leasing.get() {
            None => Some(inner.runner.run(&a.id).await),
            Some(leasing) => self.run_leased(leasing, &a, resync.is_some()).await,
        };
        drop(permit);
        let now = inner.clock.now();
        let mut next = self.next_run(&a, now);
        let mut states = inner.states.lock().expect("scheduler state lock");
        let st = states.entry(a.id.clone()).or_default();
        st.running = false;
        match result {
            None => {
                // Another replica holds or held it: look again once its lease may have lapsed.
                let ttl = inner.leasing.get().map(|l| l.ttl).unwrap_or_default();
                next = Some(now + chrono::Duration::from_std(ttl).unwrap_or_default()).min(next).or(next);
            }
            Some(_) => st.last_finished = Some(now),
        }
        match result.unwrap_or(Ok(())) {
            Ok(()) => {
                st.consecutive_failures = 0;
                st.backoff_until = None;
                st.last_error = None;
            }
            Err(e) => {
                st.consecutive_failures += 1;
                let delay = self.backoff(st.consecutive_failures);
                st.backoff_until = Some(now + delay);
                tracing::warn!(account = %a.id, failures = st.consecutive_failures, backoff_secs = delay.num_seconds(), error = %e, "scheduled sync failed; backing off");
                st.last_error = Some(e);
            }
        }
        st.next_run = next;
        drop(states);
        let mut r = inner.resync.lock().expect("scheduler resync lock");
        if resync == Some(r.serving) {
            r.waiting.remove(&a.id);
            self.finish_resync(&mut r);
        }
        drop(r);
        inner.wake.notify_one();
    }
}

impl Scheduler {
    /// One run under the account's lease. `None`: not run here (another
    /// replica holds the lease, or already served this occurrence, or took
    /// the account over mid-run).
    async fn run_leased(
        &self,
        leasing: &super::lease::Leasing,
        a: &Scheduled,
        forced: bool,
    ) -> Option<Result<(), String>> {
        use super::lease::{run_leased, Leased};
        let inner = &self.inner;
        let now = inner.clock.now();
        let sync = async {
            let finished = inner.runner.last_finished(&a.id);
            // A sync finished after the schedule's latest occurrence: nothing is due.
            if !forced && finished.is_some_and(|f| a.schedule.next_after(f).is_ok_and(|n| n > now)) {
                tracing::info!(account = %a.id, finished = ?finished, "another replica has already synced this account for this occurrence");
                return None;
            }
            Some(inner.runner.run(&a.id).await)
        };
        match run_leased(leasing, &a.id, sync).await {
            Leased::Ran(r) => r,
            Leased::HeldElsewhere { holder } => {
                tracing::info!(account = %a.id, holder = holder.as_deref().unwrap_or("?"), "another replica is syncing this account");
                None
            }
            Leased::Lost => None,
            Leased::Failed(e) => Some(Err(e)),
        }
    }
}

/// Rebuilds the index with `scheduler` whenever the store replaces a damaged
/// one (and at once if it opened as rebuilding): every account syncs now, not
/// at its next cron time, and the store is told when all have run (an account
/// whose run failed is not waited for again: its schedule and backoff take
/// over, and its status shows the failure). Runs until the scheduler stops or
/// the store drops its signal; a store that never replaces its index returns
/// at once.
pub async fn rebuild_index_on_damage(store: Arc<dyn crate::store::IndexStore>, scheduler: Scheduler) {
    let Some(mut replacements) = store.index_replacements() else { return };
    let mut resynced = scheduler.resynced();
    loop {
        if store.index_rebuilding() {
            let replacement = *replacements.borrow_and_update();
            let pass = scheduler.resync_all();
            if resynced.wait_for(|done| *done >= pass).await.is_err() {
                return;
            }
            if let Err(e) = store.index_rebuilt(replacement) {
                tracing::error!(error = %e, "could not mark the index as rebuilt");
            }
            // Replaced again meanwhile: another pass.
            if replacements.has_changed().unwrap_or(false) {
                continue;
            }
        }
        if replacements.changed().await.is_err() {
            return;
        }
    }
}

/// A running scheduler.
pub struct SchedulerHandle {
    stop: watch::Sender<Option<Duration>>,
    task: tokio::task::JoinHandle<()>,
    scheduler: Scheduler,
}

impl SchedulerHandle {
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Stops starting runs, lets running syncs finish for up to `grace`, then
    /// drops them (a sync dropped between change sets loses nothing committed).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(Some(grace));
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the scheduler task failed");
        }
    }
}
