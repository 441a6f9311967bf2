//! `account …`: register, list, show, test, remove, enable and disable accounts.
//!
//! Secrets are never taken as plain arguments (they would land in shell history
//! and `ps`): they come from a file, an environment variable or a prompt.

use anyhow::{bail, Context as _};
use contactbridge::accounts::{AccountSpec, AccountStatus, Registry, SourceKind};
use contactbridge::config::Config;
use contactbridge::sync::scheduler::Schedule;
use contactbridge::sync::SyncOutcome;
use contactbridge::user::{HandlingCode, UserId};
use contactbridge_dav::{Credentials, DavAccount, Server};
use contactbridge_graph::{Credential, GraphAccount};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Register an account (graph, carddav, caldav or files).
    #[command(subcommand)]
    Add(Box<Add>),
    /// List accounts.
    List,
    /// Show an account: settings (never secrets), schedule, last sync, records per kind, errors per collection.
    Show { id: String },
    /// Check an account's credentials and server without syncing; every mailbox of a
    /// Graph account, each listed with its result.
    ///
    /// Exit status: 0 all answered, 2 some mailboxes failed, 1 the account failed.
    Test { id: String },
    /// Remove an account and every record it brought into the index.
    Remove { id: String },
    /// Let the scheduler sync the account again.
    Enable { id: String },
    /// Stop syncing the account (its records stay).
    Disable { id: String },
    /// Take an account as the operator's: no longer limited by `[accounts]` (files roots,
    /// inner network addresses). For accounts stored before registrants were recorded.
    Adopt { id: String },
    /// Replace an account's password, token or client secret.
    SetSecret {
        id: String,
        #[command(flatten)]
        secret: SecretArgs,
    },
    /// Set an account's sync schedule (cron: `min hour day month weekday`, optional seconds first).
    SetSchedule {
        id: String,
        /// The cron expression; `default` for the server's default schedule.
        cron: String,
        /// IANA time zone the expression is read in.
        #[arg(long, default_value = "UTC")]
        time_zone: String,
    },
}

/// Where a secret comes from. Never a plain argument: files, environment variables or a prompt.
#[derive(clap::Args, Debug, Default)]
#[group(multiple = false)]
pub struct SecretArgs {
    /// Read the secret from this file (trailing newline removed).
    #[arg(long, value_name = "FILE")]
    #[arg(value_parser = super::session::path_arg)]
    secret_file: Option<PathBuf>,
    /// Read the secret from this environment variable.
    #[arg(long, value_name = "VAR")]
    secret_env: Option<String>,
}

#[derive(clap::Args)]
pub struct Common {
    /// The account id (letters, digits, . _ - @ :), unique in this bridge.
    #[arg(long)]
    id: String,
    /// The user who owns the account (its records go to this user's index).
    #[arg(long)]
    user: String,
    /// Cron expression for its sync (default: the configuration's `[sync] default_schedule`).
    #[arg(long)]
    schedule: Option<String>,
    /// IANA time zone of --schedule.
    #[arg(long, default_value = "UTC")]
    time_zone: String,
    /// Map a category to a handling code, CATEGORY=CODE (e.g. VIP=vip); repeat for several.
    #[arg(long = "category", value_name = "CATEGORY=CODE")]
    categories: Vec<String>,
    /// Region for numbers without a country code (e.g. DE), over the user's.
    #[arg(long)]
    region: Option<String>,
    /// Register it disabled (no scheduled sync until `account enable`).
    #[arg(long)]
    disabled: bool,
    /// Settings as JSON, the same the admin API's `settings_json` accepts (the connector's
    /// settings, e.g. {"page_size": 50} or {"batch_size": 100}, and `category_codes`,
    /// `region`, `mailbox_users`, `enabled`, `write_back_codes`); they override the options above. A file
    /// holding it: @FILE.
    #[arg(long, value_name = "JSON|@FILE")]
    settings: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum Add {
    /// Microsoft 365 through Microsoft Graph: app-only (client secret or certificate) for
    /// the listed mailboxes, or delegated for one user (--device-code sign-in, or a refresh
    /// token from --refresh-token-file / --refresh-token-env).
    ///
    /// Secrets are read from files or environment variables, never from the command line.
    Graph {
        #[command(flatten)]
        common: Common,
        /// The Entra ID tenant (id or domain).
        #[arg(long)]
        tenant: String,
        /// The app registration's client id.
        #[arg(long)]
        client_id: String,
        /// File holding the client secret.
        #[arg(long, value_name = "FILE", required_unless_present_any = ["client_secret_env", "certificate_key_file", "device_code", "refresh_token_file", "refresh_token_env"])]
        #[arg(value_parser = super::session::path_arg)]
        client_secret_file: Option<PathBuf>,
        /// Environment variable holding the client secret.
        #[arg(long, value_name = "VAR", conflicts_with = "client_secret_file")]
        client_secret_env: Option<String>,
        /// Instead of a client secret: the certificate's RSA private key (PEM), with --certificate-thumbprint.
        #[arg(long, value_name = "FILE", requires = "certificate_thumbprint", conflicts_with_all = ["client_secret_file", "client_secret_env"])]
        #[arg(value_parser = super::session::path_arg)]
        certificate_key_file: Option<PathBuf>,
        /// The certificate's SHA-1 thumbprint in hex, as the Azure portal shows it.
        #[arg(long, value_name = "HEX", requires = "certificate_key_file")]
        certificate_thumbprint: Option<String>,
        /// Delegated access: sign the user in now by the device-code flow (prints the page to
        /// open and the code to enter, then waits); the refresh token is stored sealed.
        #[arg(long, conflicts_with_all = ["client_secret_file", "client_secret_env", "certificate_key_file", "refresh_token_file", "refresh_token_env"])]
        device_code: bool,
        /// How long --device-code waits for the sign-in, in seconds (default 900, the code's life at Entra).
        #[arg(long, value_name = "SECS", requires = "device_code")]
        sign_in_timeout_secs: Option<u64>,
        /// Delegated access with a refresh token obtained elsewhere: the file holding it.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["client_secret_file", "client_secret_env", "certificate_key_file", "refresh_token_env"])]
        #[arg(value_parser = super::session::path_arg)]
        refresh_token_file: Option<PathBuf>,
        /// Delegated access with a refresh token obtained elsewhere: the environment variable holding it.
        #[arg(long, value_name = "VAR", conflicts_with_all = ["client_secret_file", "client_secret_env", "certificate_key_file"])]
        refresh_token_env: Option<String>,
        /// A mailbox (UPN or object id) to sync; repeat for several.
        #[arg(long = "mailbox", required = true)]
        mailboxes: Vec<String>,
        /// Organisation-wide accounts: MAILBOX=USER sends a mailbox to another user's index.
        #[arg(long = "map", value_name = "MAILBOX=USER")]
        maps: Vec<String>,
        /// Identity provider root (national clouds).
        #[arg(long)]
        authority: Option<String>,
        /// Graph service root including the version.
        #[arg(long)]
        graph_base: Option<String>,
        /// Token endpoint (default: {authority}/{tenant}/oauth2/v2.0/token).
        #[arg(long)]
        token_url: Option<String>,
        /// Device authorization endpoint (default: {authority}/{tenant}/oauth2/v2.0/devicecode).
        #[arg(long)]
        device_code_url: Option<String>,
        /// An OAuth scope to ask for instead of the default; repeat for several.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Allow plain http:// for --graph-base and the identity provider: only for a test
        /// server on this machine (Graph accounts talk to Microsoft or to loopback only).
        #[arg(long)]
        allow_plain_http: bool,
        #[command(flatten)]
        window: WindowArgs,
        /// Days of mail metadata kept (default 90).
        #[arg(long, value_name = "DAYS")]
        mail_lookback_days: Option<u32>,
        /// Items per Graph page (default 200).
        #[arg(long)]
        page_size: Option<u32>,
        /// Concurrent requests per mailbox (default 4, as Outlook allows).
        #[arg(long)]
        max_concurrent_per_mailbox: Option<usize>,
        /// Attempts per request when throttled or unreachable (default 5).
        #[arg(long)]
        retry_max_attempts: Option<u32>,
        /// Longest Retry-After waited for, in seconds (default 120).
        #[arg(long)]
        retry_max_wait_secs: Option<u64>,
        /// First backoff without Retry-After, in milliseconds (default 500, doubling).
        #[arg(long)]
        retry_base_backoff_ms: Option<u64>,
    },
    /// A CardDAV address book server.
    ///
    /// The password comes from --password-file, --password-env or a prompt; a bearer
    /// token from --bearer-env or --bearer-file. Never from the command line.
    Carddav(DavArgs),
    /// A CalDAV calendar server (same options as carddav).
    Caldav(DavArgs),
    /// Local .vcf/.ics files or a folder of them.
    Files {
        #[command(flatten)]
        common: Common,
        /// The file or folder.
        #[arg(value_parser = super::session::path_arg)]
        path: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct DavArgs {
    #[command(flatten)]
    common: Common,
    /// The server URL (root, principal or home set).
    #[arg(long, required_unless_present = "email")]
    url: Option<String>,
    /// An email address or domain, for discovery (DNS SRV/TXT, then /.well-known/).
    #[arg(long, conflicts_with = "url")]
    email: Option<String>,
    /// The login name for HTTP Basic authentication.
    #[arg(long)]
    username: Option<String>,
    /// File holding the password.
    #[arg(long, value_name = "FILE", requires = "username")]
    #[arg(value_parser = super::session::path_arg)]
    password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    #[arg(long, value_name = "VAR", requires = "username", conflicts_with = "password_file")]
    password_env: Option<String>,
    /// Environment variable holding a bearer token (instead of a username and password).
    #[arg(long, value_name = "VAR", conflicts_with_all = ["username", "bearer_file"])]
    bearer_env: Option<String>,
    /// File holding a bearer token.
    #[arg(long, value_name = "FILE", conflicts_with = "username")]
    #[arg(value_parser = super::session::path_arg)]
    bearer_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust, for a server with a private CA.
    #[arg(long)]
    #[arg(value_parser = super::session::path_arg)]
    ca_file: Option<PathBuf>,
    /// Only collections whose name matches (`*` wildcards); repeat for several.
    #[arg(long)]
    include: Vec<String>,
    /// Leave out collections whose name matches.
    #[arg(long)]
    exclude: Vec<String>,
    /// Allow a plain http:// URL to another machine: the password then travels unencrypted.
    #[arg(long)]
    allow_plain_http: bool,
    #[command(flatten)]
    window: WindowArgs,
    /// Items fetched per multiget request (default 200).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Do not use sync-collection (RFC 6578): compare the ctag and etags instead.
    #[arg(long)]
    no_sync_collection: bool,
    /// Timeout of one request, in seconds (default 120).
    #[arg(long)]
    timeout_secs: Option<u64>,
}

/// The calendar window synced (CalDAV, Graph calendarView).
#[derive(clap::Args)]
pub struct WindowArgs {
    /// Days of calendar events before today (default 30).
    #[arg(long, value_name = "DAYS")]
    window_back_days: Option<u32>,
    /// Days of calendar events after today (default 90).
    #[arg(long, value_name = "DAYS")]
    window_ahead_days: Option<u32>,
}

fn read_secret(file: Option<&PathBuf>, env: Option<&String>, prompt: Option<&str>) -> anyhow::Result<Option<String>> {
    let value = if let Some(f) = file {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading the secret from {}", f.display()))?;
        text.trim_end_matches(['\r', '\n']).to_string()
    } else if let Some(v) = env {
        super::session::env_var(v).with_context(|| format!("environment variable {v} is not set"))?
    } else if let Some(p) = prompt {
        super::session::prompt_password(p).context("reading the secret from the terminal")?
    } else {
        return Ok(None);
    };
    if value.is_empty() {
        bail!("the secret is empty");
    }
    Ok(Some(value))
}

fn pairs(items: &[String], what: &str) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|i| match i.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => Ok((k.trim().into(), v.trim().into())),
            _ => bail!("{what} {i:?} must be KEY=VALUE"),
        })
        .collect()
}

fn spec(common: &Common, source: SourceKind) -> anyhow::Result<AccountSpec> {
    let user = UserId::parse(&common.user).map_err(anyhow::Error::msg)?;
    let mut spec = AccountSpec::new(&common.id, user, source);
    spec.schedule = common.schedule.as_deref().map(|c| Schedule::new(c, &common.time_zone)).transpose()?;
    spec.enabled = !common.disabled;
    spec.region = common.region.clone();
    for (category, code) in pairs(&common.categories, "--category")? {
        spec.category_codes.insert(category, HandlingCode::parse(&code).map_err(anyhow::Error::msg)?);
    }
    Ok(spec)
}

/// How long a device-code sign-in waits when not told: the life of a code at Entra ID.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(900);

/// An account built from the options, and whether the user must sign in first
/// (`--device-code`: how long to wait for it).
struct Built {
    spec: AccountSpec,
    sign_in: Option<Duration>,
}

fn build(add: Add) -> anyhow::Result<Built> {
    let mut sign_in = None;
    let spec = match add {
        Add::Graph {
            common,
            tenant,
            client_id,
            client_secret_file,
            client_secret_env,
            certificate_key_file,
            certificate_thumbprint,
            device_code,
            sign_in_timeout_secs,
            refresh_token_file,
            refresh_token_env,
            mailboxes,
            maps,
            authority,
            graph_base,
            token_url,
            device_code_url,
            scopes,
            allow_plain_http,
            window,
            mail_lookback_days,
            page_size,
            max_concurrent_per_mailbox,
            retry_max_attempts,
            retry_max_wait_secs,
            retry_base_backoff_ms,
        } => {
            let refresh_token = read_secret(refresh_token_file.as_ref(), refresh_token_env.as_ref(), None)?;
            let credential = match (&certificate_key_file, certificate_thumbprint) {
                _ if device_code => {
                    sign_in = Some(sign_in_timeout_secs.map_or(SIGN_IN_TIMEOUT, Duration::from_secs));
                    Credential::DeviceCode { refresh_token: contactbridge_graph::Secret::default() }
                }
                _ if refresh_token.is_some() => Credential::DeviceCode {
                    refresh_token: contactbridge_graph::Secret::new(refresh_token.unwrap_or_default()),
                },
                (Some(key), Some(thumbprint)) => {
                    let pem = read_secret(Some(key), None, None)?.context("the certificate key file is empty")?;
                    Credential::Certificate { private_key_pem: contactbridge_graph::Secret::new(pem), thumbprint }
                }
                _ => {
                    let secret = read_secret(client_secret_file.as_ref(), client_secret_env.as_ref(), None)?
                        .context("give --client-secret-file, --client-secret-env or --certificate-key-file")?;
                    Credential::ClientSecret { secret: contactbridge_graph::Secret::new(secret) }
                }
            };
            let mut g = GraphAccount::new(&tenant, &client_id, credential, mailboxes);
            if let Some(a) = authority {
                g.authority = a;
            }
            if let Some(b) = graph_base {
                g.graph_base = b;
            }
            g.token_url = token_url;
            g.device_code_url = device_code_url;
            g.scopes = scopes;
            g.https_only = !allow_plain_http;
            if let Some(d) = window.window_back_days {
                g.window.back_days = d;
            }
            if let Some(d) = window.window_ahead_days {
                g.window.ahead_days = d;
            }
            g.mail_lookback_days = mail_lookback_days.unwrap_or(g.mail_lookback_days);
            g.page_size = page_size.unwrap_or(g.page_size);
            g.max_concurrent_per_mailbox = max_concurrent_per_mailbox.unwrap_or(g.max_concurrent_per_mailbox);
            g.retry.max_attempts = retry_max_attempts.unwrap_or(g.retry.max_attempts);
            g.retry.max_wait_secs = retry_max_wait_secs.unwrap_or(g.retry.max_wait_secs);
            g.retry.base_backoff_ms = retry_base_backoff_ms.unwrap_or(g.retry.base_backoff_ms);
            let mut s = spec(&common, SourceKind::Graph(g))?;
            for (mailbox, user) in pairs(&maps, "--map")? {
                s.mailbox_users.insert(mailbox, UserId::parse(&user).map_err(anyhow::Error::msg)?);
            }
            with_settings(s, common.settings.as_deref())?
        }
        Add::Carddav(d) => dav(d, true)?,
        Add::Caldav(d) => dav(d, false)?,
        Add::Files { common, path } => {
            let path = std::fs::canonicalize(&path).with_context(|| format!("{} cannot be read", path.display()))?;
            with_settings(spec(&common, SourceKind::Files { path })?, common.settings.as_deref())?
        }
    };
    Ok(Built { spec, sign_in })
}

/// The device-code sign-in of a delegated Graph account: shows the page and the code on
/// the terminal (not in the logs), waits for the user, and puts the refresh token into
/// the account.
async fn sign_in(spec: &mut AccountSpec, timeout: Duration) -> anyhow::Result<()> {
    let SourceKind::Graph(g) = &mut spec.source else { return Ok(()) };
    let login = contactbridge_graph::DeviceLogin::start(g).await.context("starting the device-code sign-in")?;
    outln!("To sign in, open {} and enter the code {}", login.verification_uri(), login.user_code());
    outln!("waiting for the sign-in (at most {} s)...", timeout.as_secs());
    let tokens = login.finish(timeout).await.context("the device-code sign-in did not finish")?;
    let Some(refresh_token) = tokens.refresh_token else {
        bail!(
            "the identity provider signed the user in but gave no refresh token: the scopes must include \
             offline_access (given: {})",
            g.effective_scopes().join(" ")
        );
    };
    g.credential = Credential::DeviceCode { refresh_token };
    Ok(())
}

/// Applies `--settings` (the admin API's settings JSON) over an account built from options:
/// the connector's keys over its settings, and the bridge's keys.
fn with_settings(mut spec: AccountSpec, settings: Option<&str>) -> anyhow::Result<AccountSpec> {
    use contactbridge::accounts::{settings_json, spec_from_registration, Registration};
    let Some(text) = settings else { return Ok(spec) };
    let text = match text.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading the settings from {file}"))?,
        None => text.to_string(),
    };
    let given: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).context("--settings must be a JSON object")?;
    // The secret stays out of the JSON: it is put back after.
    let secret = spec.source.take_secret().unwrap_or_default();
    let mut merged: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&settings_json(&spec))?;
    merged.extend(given);
    let (location, user, id) = (spec.source.location(), spec.user.to_string(), spec.id.clone());
    let json = serde_json::Value::Object(merged).to_string();
    let mut rebuilt = spec_from_registration(&Registration {
        id: &id,
        user: &user,
        kind: spec.source.name(),
        location: &location,
        settings_json: &json,
        schedule: "",
        time_zone: "",
        secret: &secret,
    })?;
    rebuilt.schedule = spec.schedule.take();
    for (category, code) in std::mem::take(&mut spec.category_codes) {
        rebuilt.category_codes.entry(category).or_insert(code);
    }
    for (mailbox, user) in std::mem::take(&mut spec.mailbox_users) {
        rebuilt.mailbox_users.entry(mailbox).or_insert(user);
    }
    if rebuilt.region.is_none() {
        rebuilt.region = spec.region.take();
    }
    Ok(rebuilt)
}

fn dav(d: DavArgs, carddav: bool) -> anyhow::Result<AccountSpec> {
    let server = match (&d.url, &d.email) {
        (Some(u), _) => Server::Url(u.clone()),
        (None, Some(e)) => Server::Domain(e.clone()),
        (None, None) => bail!("give --url or --email"),
    };
    let credentials = if let Some(username) = &d.username {
        let prompt = format!("password for {username}: ");
        let password = read_secret(d.password_file.as_ref(), d.password_env.as_ref(), Some(&prompt))?
            .context("a password is needed")?;
        Credentials::Basic { username: username.clone(), password: contactbridge_dav::Secret::new(password) }
    } else if let Some(token) = read_secret(d.bearer_file.as_ref(), d.bearer_env.as_ref(), None)? {
        Credentials::Bearer { token: contactbridge_dav::Secret::new(token) }
    } else {
        Credentials::None
    };
    let mut account = DavAccount::new(server, credentials);
    account.ca_file = d.ca_file.clone();
    account.include = d.include.clone();
    account.exclude = d.exclude.clone();
    account.allow_plain_http = d.allow_plain_http;
    if let Some(days) = d.window.window_back_days {
        account.window.back_days = i64::from(days);
    }
    if let Some(days) = d.window.window_ahead_days {
        account.window.ahead_days = i64::from(days);
    }
    account.batch_size = d.batch_size.unwrap_or(account.batch_size);
    account.sync_collection = !d.no_sync_collection;
    account.timeout_secs = d.timeout_secs.unwrap_or(account.timeout_secs);
    let source = if carddav { SourceKind::CardDav(account) } else { SourceKind::CalDav(account) };
    with_settings(spec(&d.common, source)?, d.common.settings.as_deref())
}

/// Opens the store and the registry for a data directory.
pub(crate) fn registry(config: &Config) -> anyhow::Result<Arc<Registry>> {
    if let Some(served) = super::session::served_registry() {
        return Ok(served);
    }
    let store = super::open(config)?;
    Ok(Arc::new(Registry::open(store, config)?))
}

pub async fn run(config: Config, command: Command) -> anyhow::Result<()> {
    let registry = registry(&config)?;
    match command {
        Command::Add(add) => {
            let Built { mut spec, sign_in: wait } = build(*add)?;
            if let Some(timeout) = wait {
                sign_in(&mut spec, timeout).await?;
            }
            let spec = registry.add(spec)?;
            outln!(
                "account {} ({}) added for {}; schedule {}",
                spec.id,
                spec.source.name(),
                spec.user,
                registry.schedule_of(&spec).cron
            );
            outln!("check it with `contactbridge account test {}`", spec.id);
        }
        Command::List => {
            for a in registry.list()? {
                let last = registry.store().run_record(&a.id)?;
                let outcome = match last {
                    None => "never synced".to_string(),
                    Some(r) => match (&r.error, r.finished) {
                        (Some(_), _) if r.outcome == Some(SyncOutcome::Partial) => {
                            format!("partial ({} collection(s) failing)", r.failed_collections)
                        }
                        (Some(_), _) => format!("failing ({} in a row)", r.consecutive_failures),
                        (None, Some(f)) => format!("synced {}", f.format("%Y-%m-%d %H:%M UTC")),
                        (None, None) => "never synced".into(),
                    },
                };
                outln!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    a.id,
                    a.source.name(),
                    a.user,
                    if a.enabled { "enabled" } else { "disabled" },
                    registry.schedule_of(&a).cron,
                    outcome
                );
            }
        }
        Command::Show { id } => out!("{}", show(&registry.status(&id)?)),
        Command::Test { id } => {
            let parts = registry.test_parts(&id).await?;
            let failed = parts.iter().filter(|p| p.error.is_some()).count();
            if let [only] = parts.as_slice() {
                if only.part.is_empty() {
                    if let Some((_, message)) = &only.error {
                        return Err(super::Exit::new(super::EXIT_FAILED, message.clone()).into());
                    }
                    outln!("account {id}: credentials accepted, server reachable");
                    return Ok(());
                }
            }
            for p in &parts {
                match &p.error {
                    None => outln!("{}: ok", p.part),
                    Some((_, message)) => outln!("{}: FAILED: {message}", p.part),
                }
            }
            if failed == 0 {
                outln!("account {id}: credentials accepted, all {} mailboxes reachable", parts.len());
            } else if failed == parts.len() {
                return Err(super::Exit::new(
                    super::EXIT_FAILED,
                    format!("account {id}: every mailbox failed ({failed} of {})", parts.len()),
                )
                .into());
            } else {
                return Err(super::Exit::new(
                    super::EXIT_PARTIAL,
                    format!("account {id}: {failed} of {} mailboxes failed; the others answered", parts.len()),
                )
                .into());
            }
        }
        Command::Remove { id } => {
            let n = registry.remove(&id)?;
            outln!("account {id} removed with {n} records");
        }
        Command::Enable { id } => {
            registry.set_enabled(&id, true)?;
            outln!("account {id} enabled");
        }
        Command::Disable { id } => {
            registry.set_enabled(&id, false)?;
            outln!("account {id} disabled");
        }
        Command::Adopt { id } => {
            registry.adopt(&id)?;
            outln!("account {id} is the operator's: [accounts] limits no longer apply");
        }
        Command::SetSecret { id, secret } => {
            let spec = registry.get(&id)?;
            let name = spec.source.secret_name().unwrap_or("secret");
            let value =
                read_secret(secret.secret_file.as_ref(), secret.secret_env.as_ref(), Some(&format!("{name}: ")))?
                    .context("no secret given")?;
            registry.set_secret(&id, &value)?;
            outln!("account {id}: {name} replaced");
        }
        Command::SetSchedule { id, cron, time_zone } => {
            let schedule = if cron == "default" { None } else { Some(Schedule::new(&cron, &time_zone)?) };
            let spec = registry.set_schedule(&id, schedule)?;
            outln!("account {id} syncs on {}", registry.schedule_of(&spec).cron);
        }
    }
    Ok(())
}

fn show(s: &AccountStatus) -> String {
    use std::fmt::Write as _;
    let a = &s.spec;
    let mut out = String::new();
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_else(|| "-".into())
    };
    let _ = writeln!(out, "account   {} ({})", a.id, a.source.name());
    let _ = writeln!(out, "user      {}", a.user);
    for (m, u) in &a.mailbox_users {
        let _ = writeln!(out, "mailbox   {m} → {u}");
    }
    let _ = writeln!(out, "source    {}", a.source.location());
    if let SourceKind::CardDav(d) | SourceKind::CalDav(d) = &a.source {
        if d.allow_plain_http {
            let _ = writeln!(out, "plain http allowed: credentials travel unencrypted");
        }
    }
    let _ = writeln!(
        out,
        "by        {}",
        match (&a.tenant, a.operator) {
            (Some(t), _) => format!("an admin of tenant {t} (limited by [accounts])"),
            (None, true) => "the operator".into(),
            (None, false) => "unknown (stored before this was recorded; limited by [accounts])".into(),
        }
    );
    if let Some(name) = a.source.secret_name() {
        let _ = writeln!(out, "secret    {name} (stored encrypted)");
    }
    let _ = writeln!(out, "enabled   {}", a.enabled);
    let _ = writeln!(out, "schedule  {} ({})", s.schedule.cron, s.schedule.time_zone);
    let _ = writeln!(out, "next run  {}", time(s.next_run));
    for (cat, code) in &a.category_codes {
        let _ = writeln!(out, "category  {cat} → {code}");
    }
    let _ = writeln!(
        out,
        "codes     {}",
        if a.write_back_codes {
            "written back to the source as categories"
        } else {
            "kept in the bridge (write_back_codes off)"
        }
    );
    for w in a.code_write_backs.values() {
        let code = w.code.as_ref().map_or("(removed)", |c| c.as_str());
        let detail = match &w.state {
            contactbridge::model::WriteBackState::Failed { error, attempts, .. } => {
                format!(": {attempts} attempt(s), {error}")
            }
            contactbridge::model::WriteBackState::LocalOnly { reason } => format!(": {reason}"),
            _ => String::new(),
        };
        let _ = writeln!(out, "code      {code} for {} of {}: {}{detail}", w.contact.id, w.user, w.state.name());
    }
    match &s.last_run {
        None => {
            let _ = writeln!(out, "last sync never");
        }
        Some(r) => {
            let _ = writeln!(
                out,
                "last sync {} – {}: {} written, {} removed{}",
                time(r.started),
                time(r.finished),
                r.upserted,
                r.deleted,
                match (&r.error, r.outcome) {
                    (Some(e), Some(SyncOutcome::Partial)) => {
                        format!("; PARTIAL ({} collection(s) failed, the others synced): {e}", r.failed_collections)
                    }
                    (Some(e), _) => format!("; FAILED ({} in a row): {e}", r.consecutive_failures),
                    (None, _) => String::new(),
                }
            );
            let _ = writeln!(out, "last ok   {}", time(r.last_success));
        }
    }
    if let Some(p) = &s.progress {
        let _ = writeln!(
            out,
            "syncing   {}/{} collections, {} records so far",
            p.collections_done,
            p.collections_total.map(|t| t.to_string()).unwrap_or_else(|| "?".into()),
            p.records
        );
    }
    let records: Vec<String> = s.records.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let _ = writeln!(out, "records   {}", if records.is_empty() { "none".into() } else { records.join(", ") });
    let backoff = s.last_run.as_ref().map(|r| r.backoff.clone()).unwrap_or_default();
    for c in &s.collections {
        let status = match &c.state.last_error {
            Some(e) if backoff.contains_key(&c.collection) => {
                let b = &backoff[&c.collection];
                format!(
                    "error at {}: {e}; backing off ({} failures in a row) until {}",
                    time(c.state.last_error_at),
                    b.failures,
                    time(Some(b.until))
                )
            }
            Some(e) => format!("error at {}: {e}", time(c.state.last_error_at)),
            None => format!("ok, last change {}", time(c.state.last_change)),
        };
        let _ = writeln!(out, "  {} [{}]  {status}", c.collection, c.user);
        // The pseudonym the sync metrics label this collection with.
        let _ = writeln!(
            out,
            "    metrics collection=\"{}\"",
            contactbridge::accounts::metrics::collection_label(&s.spec.id, &c.collection)
        );
        if let (SourceKind::CardDav(_) | SourceKind::CalDav(_), Some(cp)) = (&a.source, &c.state.checkpoint) {
            if let Some(probe) = contactbridge_dav::probe::describe(cp) {
                let _ = writeln!(out, "    no-change check: {probe}");
            }
        }
        if !c.state.rejected.is_empty() {
            let _ = writeln!(
                out,
                "    {} items skipped as malformed (latest: {})",
                c.state.rejected.len(),
                c.state.rejected.last().map(|r| r.reason.as_str()).unwrap_or("")
            );
        }
    }
    out
}
