//! `serve` and `demo`.

use contactbridge::config::Config;
use contactbridge::store::Store;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// Load the demo user and data (examples/demo) before serving, so lookups work at once.
    #[arg(long)]
    demo: bool,
    /// The demo folder (default: examples/demo of this source tree).
    #[arg(long, requires = "demo")]
    demo_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// The demo folder (default: examples/demo of this source tree).
    #[arg(long)]
    demo_dir: Option<PathBuf>,
}

pub async fn demo(config: Config, args: DemoArgs) -> anyhow::Result<()> {
    let store = super::open(&config)?;
    load_demo(&store, args.demo_dir).await
}

async fn load_demo(store: &dyn Store, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(contactbridge::demo::default_dir);
    let s = contactbridge::demo::load(store, &dir, chrono::Utc::now()).await?;
    println!(
        "demo: user {:?} ({}) answers on {}; {} records loaded, {} rejected",
        s.profile.id.as_str(),
        s.profile.display_name,
        s.profile.called_numbers.join(", "),
        s.records,
        s.rejected
    );
    Ok(())
}

pub async fn run(config: Config, args: Args) -> anyhow::Result<()> {
    let store = super::open(&config)?;
    if args.demo {
        load_demo(&store, args.demo_dir).await?;
    }
    let store: Arc<dyn Store> = Arc::new(store);
    tracing::info!(data_dir = %config.data_dir.display(), "contactbridge is running; Ctrl-C stops it");
    let _ = store;
    tokio::signal::ctrl_c().await?;
    tracing::info!("stopping");
    Ok(())
}
