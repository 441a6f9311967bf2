//! Command-line interface (clap). Each subcommand lives in its own module.

#[macro_use]
mod session;
mod account;
mod admin_socket;
mod backup;
mod import;
mod key;
mod lookup;
mod output;
mod serve;
mod sync;
mod user;

use clap::{Parser, Subcommand};
use contactbridge::config::{Config, LogFormat};
use contactbridge::store::Backend;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// contactbridge tells your phone system who is calling, how the called user
/// wants the call handled, and what the user knows about the caller, from the
/// contact systems the user already has (Microsoft 365, CardDAV, CalDAV, files).
///
/// Start with the demo:   contactbridge serve --demo
/// Then, in another shell: contactbridge lookup --called +4930901820 --cli 0049301234567
#[derive(Parser)]
#[command(name = "contactbridge", version, max_term_width = 100)]
struct Cli {
    /// Configuration file (TOML). Environment variables CONTACTBRIDGE_* override it.
    #[arg(long, short, global = true, env = "CONTACTBRIDGE_CONFIG")]
    config: Option<PathBuf>,
    /// Where the index and user data are kept (overrides the configuration).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge: open the index and serve the phone system and admins.
    Serve(serve::Args),
    /// Load the demo user and data from examples/demo into the store, then exit.
    Demo(serve::DemoArgs),
    /// Import .vcf and .ics files (or folders of them) into a user's index.
    Import(import::Args),
    /// Resolve a call as the phone system would, and print the decision and the caller's context.
    Lookup(lookup::Args),
    /// Manage users: profiles, handling methods, status, handling-code assignments.
    #[command(subcommand)]
    User(user::Command),
    /// Manage API keys of the gRPC interface (scopes tsps and admin, one tenant each).
    #[command(subcommand)]
    Key(key::Command),
    /// Manage accounts: the Graph, CardDAV, CalDAV and file sources synced into users' indexes.
    #[command(subcommand)]
    Account(account::Command),
    /// Sync accounts: `--once` for a crontab line, else run the schedules in the foreground.
    ///
    /// Exit status of `--once`: 0 complete (every collection of every account synced),
    /// 2 partial (some collections, mailboxes or accounts failed, the others synced),
    /// 1 failed (nothing synced).
    ///
    /// Crontab example (every 15 minutes; do not also run `serve`, which schedules itself):
    ///   */15 * * * * contactbridge --config /etc/contactbridge.toml sync --once
    Sync(sync::Args),
    /// Write all user-owned data (profiles, assignments, call history) to a file.
    Backup {
        /// The file to write (JSON lines).
        file: PathBuf,
    },
    /// Replace all user-owned data with a backup's content.
    Restore {
        /// A file written by `contactbridge backup`.
        file: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A server logs what it does; a one-shot command only what went wrong.
    let default_level = if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" };
    init_logging(config.log.format, default_level);
    // A running server on this data directory runs the command (src/cli/admin_socket.rs).
    let data_dir = cli.data_dir.as_deref().unwrap_or(&config.data_dir);
    if let Some(code) = admin_socket::client(&cli.command, data_dir) {
        return code;
    }
    let (code, message) = outcome(run(cli, config));
    if let Some(m) = message {
        eprintln!("{m}");
    }
    ExitCode::from(code)
}

/// A command's exit status and error message, the same in the CLI and through the admin socket.
fn outcome(result: anyhow::Result<()>) -> (u8, Option<String>) {
    match result {
        Ok(()) => (0, None),
        Err(e) => match e.downcast_ref::<Exit>() {
            Some(exit) => (exit.code, Some(format!("error: {}", exit.message))),
            None => (EXIT_FAILED, Some(format!("error: {e:#}"))),
        },
    }
}

/// Exit status of a command that failed as a whole (also usage and local errors).
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit status of a command that did part of its work: some parts failed, others did not.
pub(crate) const EXIT_PARTIAL: u8 = 2;

/// An error that ends the command with its own exit status.
#[derive(Debug)]
pub(crate) struct Exit {
    pub code: u8,
    pub message: String,
}

impl Exit {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Logs go to stderr, as text (coloured only on a terminal) or JSON lines.
fn init_logging(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal as _;
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("CONTACTBRIDGE_LOG").unwrap_or_else(|_| default_level.into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
}

fn run(cli: Cli, mut config: Config) -> anyhow::Result<()> {
    if let Some(d) = cli.data_dir {
        config.data_dir = d;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(dispatch(cli.command, config))
}

/// [`dispatch`] for the admin socket.
fn dispatch_boxed(
    command: Command,
    config: Config,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>> {
    Box::pin(dispatch(command, config))
}

/// Runs a command: in this process, or in `serve` for a client of the admin socket.
async fn dispatch(command: Command, config: Config) -> anyhow::Result<()> {
    {
        match command {
            Command::Serve(a) => serve::run(config, a).await,
            Command::Demo(a) => serve::demo(config, a).await,
            Command::Import(a) => import::run(config, a).await,
            Command::Lookup(a) => lookup::run(config, a).await,
            Command::User(c) => user::run(config, c),
            Command::Account(c) => account::run(config, c).await,
            Command::Sync(a) => sync::run(config, a).await,
            Command::Key(c) => key::run(open(&config)?.as_ref(), c),
            Command::Backup { file } => backup::backup(open(&config)?.as_ref(), &file),
            Command::Restore { file } => backup::restore(&config, &file),
        }
    }
}

/// Opens the configured backend in the configured data directory.
pub(crate) fn open(config: &Config) -> anyhow::Result<Arc<dyn Backend>> {
    use anyhow::Context as _;
    if let Some(served) = session::served_store() {
        return Ok(served);
    }
    contactbridge::store::open(&config.store.open_options(&config.data_dir)).with_context(|| {
        match config.store.backend {
            contactbridge::store::BackendKind::Sled => format!("opening the store in {}", config.data_dir.display()),
            contactbridge::store::BackendKind::Postgres => "opening the PostgreSQL store".to_string(),
        }
    })
}
