//! `sync`: run every enabled account's sync once (for the system's cron), or
//! run the scheduler in the foreground without serving.

use super::{Exit, EXIT_FAILED, EXIT_PARTIAL};
use contactbridge::accounts::{ProgressHandle, Registry};
use contactbridge::config::Config;
use contactbridge::sync::scheduler::{Scheduler, SchedulerOptions, SystemClock};
use contactbridge::sync::SyncOutcome;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Sync once and exit (for a crontab line) instead of running the schedules.
    ///
    /// Exit status: 0 when every account synced completely; 2 when the sync was partial
    /// (some collections or mailboxes failed while the others synced, or some accounts
    /// failed while others synced); 1 when nothing synced (every account failed).
    #[arg(long)]
    pub(crate) once: bool,
    /// Only this account (with --once: also when it is disabled); repeat for several.
    #[arg(long = "account", requires = "once")]
    accounts: Vec<String>,
    /// Discover each account's collections again (new address books, calendars, folders)
    /// instead of syncing those the last complete sync found (re-found daily anyway).
    #[arg(long, requires = "once")]
    rediscover: bool,
}

pub async fn run(config: Config, args: Args) -> anyhow::Result<()> {
    let registry = super::account::registry(&config)?;
    if !args.once {
        return foreground(registry, &config).await;
    }
    let ids: Vec<String> = if args.accounts.is_empty() {
        registry.list()?.into_iter().filter(|a| a.enabled).map(|a| a.id).collect()
    } else {
        args.accounts
    };
    let mut outcomes = Vec::with_capacity(ids.len());
    for id in &ids {
        match sync_one(&registry, id, args.rediscover).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                errln!("{id}: {e:#}");
                outcomes.push(SyncOutcome::Failed);
            }
        }
    }
    let count = |o: SyncOutcome| outcomes.iter().filter(|x| **x == o).count();
    let (complete, failed) = (count(SyncOutcome::Complete), count(SyncOutcome::Failed));
    if complete == outcomes.len() {
        return Ok(());
    }
    if failed == outcomes.len() {
        return Err(
            Exit::new(EXIT_FAILED, format!("{failed} of {} account(s) failed: nothing synced", ids.len())).into()
        );
    }
    Err(Exit::new(
        EXIT_PARTIAL,
        format!(
            "partial sync: {complete} of {} account(s) complete, {} partial, {failed} failed",
            ids.len(),
            count(SyncOutcome::Partial)
        ),
    )
    .into())
}

async fn sync_one(registry: &Registry, id: &str, rediscover: bool) -> anyhow::Result<SyncOutcome> {
    let progress = ProgressHandle::default();
    let bar = ProgressBar::with_draw_target(
        None,
        if super::session::stdout_is_terminal() { ProgressDrawTarget::stdout() } else { ProgressDrawTarget::hidden() },
    );
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} collections, {msg} ({elapsed})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(id.to_string());
    let sync = async {
        match rediscover {
            true => registry.sync_rediscovering(id, progress.clone()).await,
            false => registry.sync_with(id, progress.clone()).await,
        }
    };
    tokio::pin!(sync);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let report = loop {
        tokio::select! {
            r = &mut sync => break r,
            _ = tick.tick() => {
                let p = progress.get();
                if let Some(t) = p.collections_total { bar.set_length(t as u64); }
                bar.set_position(p.collections_done as u64);
                bar.set_message(format!("{} records{}", p.records, p.current.map(|c| format!(", in {c}")).unwrap_or_default()));
            }
        }
    };
    bar.finish_and_clear();
    let report = report?;
    if let Some(e) = &report.error {
        anyhow::bail!("{}", contactbridge::accounts::explain(&registry.get(id)?, e));
    }
    let t = report.totals();
    let outcome = report.outcome();
    outln!(
        "{id}: {} collections, {} records written, {} removed, {} failed ({})",
        report.collections.len(),
        t.upserted,
        t.deleted + t.swept,
        report.failed(),
        outcome.as_str()
    );
    let spec = registry.get(id)?;
    for c in report.collections.iter().filter(|c| c.error.is_some()) {
        if let Some(e) = &c.error {
            // The server names its collections: quoted, control characters escaped, cut short.
            use contactbridge::connector::echo;
            let part = match &c.collection.owner {
                Some(owner) if !c.collection.name.contains(owner.as_str()) => {
                    format!("{} ({})", echo(&c.collection.name), echo(owner))
                }
                _ => echo(&c.collection.name).to_string(),
            };
            errln!("  {part}: {}", contactbridge::accounts::explain(&spec, e));
        }
    }
    Ok(outcome)
}

/// Runs the schedules until Ctrl-C, without the gRPC server.
async fn foreground(registry: Arc<Registry>, config: &Config) -> anyhow::Result<()> {
    let options = SchedulerOptions { max_concurrent: config.sync.max_concurrent, ..SchedulerOptions::default() };
    let store: Arc<dyn contactbridge::store::IndexStore> = registry.store().clone();
    let handle = Scheduler::new(registry, Arc::new(SystemClock), options).spawn();
    let rebuild =
        tokio::spawn(contactbridge::sync::scheduler::rebuild_index_on_damage(store, handle.scheduler().clone()));
    outln!("syncing on schedule; Ctrl-C stops");
    tokio::signal::ctrl_c().await?;
    rebuild.abort();
    handle.shutdown(Duration::from_secs(30)).await;
    Ok(())
}
