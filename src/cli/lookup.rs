//! `lookup`: resolve a call as the phone system would.

use super::output;
use anyhow::Context as _;
use contactbridge::config::Config;
use contactbridge::resolve::{CallQuery, ContextQuery, ContextSubject, Resolver};
use contactbridge::store::Store;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// The called number (the user's DID), e.g. +4930901820.
    #[arg(long)]
    called: String,
    /// The calling number (CLI) as the phone system received it; "anonymous" for withheld.
    #[arg(long)]
    cli: String,
    /// The moment of the call (RFC 3339, e.g. 2026-11-26T10:15:00+01:00); default now.
    #[arg(long)]
    at: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(config: Config, args: Args) -> anyhow::Result<()> {
    let at = match &args.at {
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .with_context(|| format!("--at {s:?} is not an RFC 3339 time such as 2026-11-26T10:15:00+01:00"))?
            .to_utc(),
        None => chrono::Utc::now(),
    };
    let store: Arc<dyn Store> = Arc::new(super::open(&config)?);
    let resolver = Resolver::new(store);
    let query = CallQuery { called: args.called.clone(), cli: args.cli.clone(), tsps_call_id: None, at };
    let decision = resolver.resolve(&query)?;
    let profile = resolver.user_for_called(&args.called)?;
    let subject = ContextSubject {
        contact: decision.candidates.first().map(|c| c.stored.clone()),
        caller_key: decision.caller.key.clone(),
    };
    let context =
        resolver.context(&profile.id, &subject, &ContextQuery { now: at, criteria: profile.context.clone() })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "decision": decision, "context": context }))?);
    } else {
        print!("{}", output::decision(&decision, &profile));
        print!("{}", output::context(&context, &profile, at));
    }
    Ok(())
}
