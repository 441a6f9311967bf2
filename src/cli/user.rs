//! `user …`: profiles, handling methods, manual status, handling-code assignments.

use anyhow::{bail, Context as _};
use contactbridge::config::Config;
use contactbridge::connector::echo;
use contactbridge::phone;
use contactbridge::resolve::Status;
use contactbridge::store::{AssignTarget, RecordRef, UserStore};
use contactbridge::user::{
    self, Attendant, ForwardTarget, HandlingCode, HandlingMethod, ManualStatus, Match, UserId, UserProfile,
};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a user, or load one from a TOML file (see examples/demo/user.toml).
    Add {
        /// The user id, unique across tenants, e.g. acme.alice.
        id: Option<String>,
        /// Read the whole profile from this TOML file instead.
        #[arg(long, conflicts_with = "id")]
        #[arg(value_parser = super::session::path_arg)]
        file: Option<PathBuf>,
        #[arg(long, required_unless_present = "file")]
        tenant: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// A called number (DID) of the user; repeat for several.
        #[arg(long = "number")]
        numbers: Vec<String>,
        /// Default region for numbers without a country code, e.g. DE.
        #[arg(long)]
        region: Option<String>,
        /// IANA time zone, e.g. Europe/Berlin.
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// The attendant's phone number.
        #[arg(long)]
        attendant: Option<String>,
        /// A forward button, LABEL=NUMBER; repeat for several.
        #[arg(long = "forward")]
        forwards: Vec<String>,
    },
    /// Print a user's profile as TOML.
    Show { id: String },
    /// List users.
    List,
    /// Delete a user with their assignments and call history (their index data stays until its accounts are removed).
    Remove { id: String },
    /// Set the handling method for a handling code and status ("*" for any).
    SetMethod {
        id: String,
        /// Handling code (vip, blocked, default, unknown, withheld, or your own) or "*".
        #[arg(long)]
        code: String,
        /// Status (available, tentative, busy, out_of_office, do_not_disturb, working_elsewhere) or "*".
        #[arg(long)]
        status: String,
        /// forward, ivr, notify, voicemail, attendant or reject.
        #[arg(long)]
        method: String,
        /// The number for forward, the IVR id for ivr.
        #[arg(long)]
        target: Option<String>,
    },
    /// Set the manual status (e.g. dnd), optionally for a while; "clear" removes it.
    Status {
        id: String,
        status: String,
        /// How long, e.g. 30m, 2h, 1d.
        #[arg(long = "for")]
        duration: Option<String>,
    },
    /// Assign a handling code to a number or a contact (overrides the contact system).
    Assign {
        id: String,
        /// A phone number as the caller shows it.
        #[arg(long, conflicts_with = "contact")]
        number: Option<String>,
        /// A contact reference as `lookup --json` prints it.
        #[arg(long)]
        contact: Option<String>,
        /// The code; omit with --clear to remove the assignment.
        #[arg(long, required_unless_present = "clear")]
        code: Option<String>,
        #[arg(long)]
        clear: bool,
    },
    /// Print a single-use login link to the user's notification window (the web page of `serve`).
    ///
    /// While `serve` runs it holds the store: issue links with the Admin RPC IssueWebLogin then.
    LoginLink {
        id: String,
        /// How long the link stays valid, e.g. 30m, 2h, 1d.
        #[arg(long = "valid", default_value = "1d")]
        valid: String,
        /// The window's address as the user's browser reaches it (default: http://<web.listen>, https with `[web] tls_cert`).
        #[arg(long)]
        base_url: Option<String>,
    },
}

fn parse_user(id: &str) -> anyhow::Result<UserId> {
    UserId::parse(id).map_err(anyhow::Error::msg)
}

fn load(store: &dyn UserStore, id: &str) -> anyhow::Result<UserProfile> {
    let user = parse_user(id)?;
    store.profile(&user)?.with_context(|| format!("user {user} does not exist (see `contactbridge user list`)"))
}

pub fn run(config: Config, cmd: Command) -> anyhow::Result<()> {
    let opened = super::open(&config)?;
    let store = opened.as_ref();
    match cmd {
        Command::Add { id, file, tenant, name, numbers, region, time_zone, attendant, forwards } => {
            let profile = match (file, id) {
                (Some(f), _) => user::load_profile_file(&f)?,
                (None, Some(id)) => {
                    let mut p = UserProfile::new(parse_user(&id)?, tenant.unwrap_or_default());
                    p.display_name = name.unwrap_or_default();
                    p.called_numbers = numbers;
                    p.region = region.map(|r| r.to_ascii_uppercase());
                    p.time_zone = time_zone;
                    p.attendant = attendant.map(|number| Attendant { number, user: None });
                    for f in forwards {
                        let (label, number) = f
                            .split_once('=')
                            .with_context(|| format!("--forward {} must be LABEL=NUMBER", echo(&f)))?;
                        p.forward_targets.push(ForwardTarget { label: label.into(), number: number.into() });
                    }
                    p
                }
                (None, None) => bail!("give a user id or --file"),
            };
            if store.profile(&profile.id)?.is_some() {
                bail!("user {} exists already; change it with the other `user` subcommands", profile.id);
            }
            user::put_profile(store, &profile)?;
            outln!("added user {} (tenant {})", profile.id, profile.tenant);
        }
        Command::Show { id } => out!("{}", toml::to_string_pretty(&load(store, &id)?)?),
        Command::List => {
            for p in store.profiles()? {
                outln!("{}\t{}\t{}\t{}", p.id, p.tenant, p.display_name, p.called_numbers.join(", "));
            }
        }
        Command::Remove { id } => {
            let user = parse_user(&id)?;
            if !store.delete_user(&user)? {
                bail!("user {user} does not exist");
            }
            outln!("removed user {user}");
        }
        Command::SetMethod { id, code, status, method, target } => {
            let mut p = load(store, &id)?;
            let code = if code == "*" {
                Match::ANY
            } else {
                Match::Is(HandlingCode::parse(&code).map_err(anyhow::Error::msg)?)
            };
            let status =
                if status == "*" { Match::ANY } else { Match::Is(Status::parse(&status).map_err(anyhow::Error::msg)?) };
            let need = |what: &str| target.clone().with_context(|| format!("--method {what} needs --target"));
            let method = match method.as_str() {
                "forward" => HandlingMethod::Forward { number: need("forward")? },
                "ivr" => HandlingMethod::Ivr { ivr_id: need("ivr")? },
                "notify" => HandlingMethod::Notify,
                "voicemail" => HandlingMethod::Voicemail,
                "attendant" => HandlingMethod::Attendant,
                "reject" => HandlingMethod::Reject,
                other => bail!("unknown method {other:?}; use forward, ivr, notify, voicemail, attendant or reject"),
            };
            p.handling.set(code, status, method);
            user::put_profile(store, &p)?;
            outln!("updated the handling table of {}", p.id);
        }
        Command::Status { id, status, duration } => {
            let mut p = load(store, &id)?;
            if status == "clear" {
                p.manual_status = None;
            } else {
                let status = Status::parse(&status).map_err(anyhow::Error::msg)?;
                let until = duration.map(|d| parse_duration(&d)).transpose()?.map(|d| chrono::Utc::now() + d);
                p.manual_status = Some(ManualStatus { status, until });
            }
            user::put_profile(store, &p)?;
            outln!("status of {} is now {:?}", p.id, p.manual_status.map(|m| m.status.as_str()).unwrap_or("derived"));
        }
        Command::Assign { id, number, contact, code, clear } => {
            let p = load(store, &id)?;
            let region = p.region.as_deref().and_then(|r| phone::Region::parse(r).ok());
            let target = match (number, contact) {
                (Some(n), _) => AssignTarget::Number(
                    phone::history_key(&n, region.as_ref())
                        .map_err(|e| anyhow::anyhow!("--number {}: {e}", echo(&n)))?,
                ),
                (None, Some(c)) => AssignTarget::Contact(
                    RecordRef::parse(&c).with_context(|| format!("{} is not a contact reference", echo(&c)))?,
                ),
                (None, None) => bail!("give --number or --contact"),
            };
            let code = if clear {
                None
            } else {
                code.map(|c| HandlingCode::parse(&c)).transpose().map_err(anyhow::Error::msg)?
            };
            let outcome =
                contactbridge::accounts::assign_code(store, &p.id, &target, code.as_ref(), chrono::Utc::now())?;
            outln!("{}; {outcome}", if clear { "assignment removed" } else { "assigned" });
        }
        Command::LoginLink { id, valid, base_url } => {
            let user = parse_user(&id)?;
            let token = contactbridge::web::auth::issue_login(
                store,
                store,
                &user,
                parse_duration(&valid)?,
                chrono::Utc::now(),
            )?;
            let scheme = if config.web.tls_cert.is_some() { "https" } else { "http" };
            let base = base_url.unwrap_or_else(|| format!("{scheme}://{}", config.web.listen));
            outln!("{}{}", base.trim_end_matches('/'), contactbridge::web::auth::login_path(&token));
            errln!("valid once, until {}", token.expires.to_rfc3339());
        }
    }
    Ok(())
}

/// The longest `--for` / `--valid` the CLI takes.
const MAX_DURATION_DAYS: i64 = 366;

/// `30m`, `2h` or `1d`, at most [`MAX_DURATION_DAYS`] days.
fn parse_duration(s: &str) -> anyhow::Result<chrono::Duration> {
    let shape = || format!("duration {} must look like 30m, 2h or 1d", echo(s));
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let minutes_per = match unit {
        "m" => 1,
        "h" => 60,
        "d" => 24 * 60,
        _ => bail!(shape()),
    };
    let max = MAX_DURATION_DAYS * 24 * 60;
    match n.parse::<i64>() {
        Ok(n) if n.checked_mul(minutes_per).is_some_and(|m| m <= max) => Ok(chrono::Duration::minutes(n * minutes_per)),
        Ok(_) => bail!("duration {} is longer than {MAX_DURATION_DAYS}d, the most it may be", echo(s)),
        Err(e) if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) => {
            bail!("duration {} is longer than {MAX_DURATION_DAYS}d, the most it may be", echo(s))
        }
        Err(_) => bail!(shape()),
    }
}
