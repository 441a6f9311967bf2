//! `import`: .vcf and .ics files or folders into a user's index.

use anyhow::Context as _;
use contactbridge::config::Config;
use contactbridge::store::IndexStore;
use contactbridge::sync::{self, Indexer};
use contactbridge::user::UserId;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The user whose index receives the data.
    #[arg(long)]
    user: String,
    /// The account id the records are kept under (default: `files:<absolute path>`).
    /// Importing the same path again replaces what it brought before.
    #[arg(long)]
    account: Option<String>,
    /// Files (.vcf, .ics) or folders to import.
    #[arg(required = true)]
    #[arg(value_parser = super::session::path_arg)]
    paths: Vec<PathBuf>,
}

pub async fn run(config: Config, args: Args) -> anyhow::Result<()> {
    let store = super::open(&config)?;
    let user = UserId::parse(&args.user).map_err(anyhow::Error::msg)?;
    let profile = store.profile(&user)?.with_context(|| {
        format!("user {user} does not exist; create it with `contactbridge user add {user} --tenant …`")
    })?;
    let indexer = Indexer::for_profile(&profile, &HashMap::new());
    let owners = HashMap::new();
    let mut failed = 0;
    let (mut imported, mut rejected) = (0usize, 0usize);
    for path in &args.paths {
        let path = std::fs::canonicalize(path).with_context(|| format!("{} cannot be read", path.display()))?;
        let account = args.account.clone().unwrap_or_else(|| format!("files:{}", path.display()));
        let connector = contactbridge_files::FilesConnector::new(&path);
        let target = sync::SyncTarget { account: &account, user: &user, owners: &owners, indexer: &indexer };
        let report = sync::sync_account(store.as_ref() as &dyn IndexStore, &connector, &target).await;
        if let Some(e) = &report.error {
            errln!("{}: {e}", path.display());
            failed += 1;
        }
        for c in &report.collections {
            let s = c.stats;
            imported += s.upserted;
            rejected += c.rejected;
            match &c.error {
                Some(e) => {
                    errln!("{}: {e}", c.collection.id);
                    failed += 1;
                }
                None => outln!(
                    "{}: {} imported, {} removed, {} skipped as malformed or too large",
                    c.collection.id,
                    s.upserted,
                    s.deleted + s.swept,
                    c.rejected
                ),
            }
            if c.rejected > 0 {
                if let Some(state) = store.collection_state(&contactbridge::store::CollectionScope {
                    user: user.clone(),
                    account: account.clone(),
                    collection: c.collection.id.clone(),
                })? {
                    for r in state.rejected.iter().rev().take(c.rejected).rev() {
                        errln!("  skipped {}: {}", r.id, r.reason);
                    }
                }
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} file(s) or collection(s) could not be imported");
    // Nothing usable at all is a failure, not an empty success.
    // Unchanged items of a second import are kept, not written again: ask what the index holds.
    let held = || -> anyhow::Result<usize> {
        let mut n = 0;
        for path in &args.paths {
            let path = std::fs::canonicalize(path)?;
            let account = args.account.clone().unwrap_or_else(|| format!("files:{}", path.display()));
            n += store.count_records(&user, &account)?.values().sum::<usize>();
        }
        Ok(n)
    };
    anyhow::ensure!(
        rejected == 0 || imported > 0 || held()? > 0,
        "nothing imported: every item ({rejected}) was rejected as malformed or too large"
    );
    Ok(())
}
