//! `lookup`: resolve a call as the phone system would.

use super::output;
use anyhow::Context as _;
use contactbridge::config::Config;
use contactbridge::resolve::{CallQuery, ContextQuery, ContextSubject, Resolver};
use contactbridge::store::{Store, StoreError};
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
    /// When a running server holds the store, ask it over gRPC with this key (scope tsps).
    #[arg(long, env = "CONTACTBRIDGE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

pub async fn run(config: Config, args: Args) -> anyhow::Result<()> {
    let at = match &args.at {
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .with_context(|| format!("--at {s:?} is not an RFC 3339 time such as 2026-11-26T10:15:00+01:00"))?
            .to_utc(),
        None => chrono::Utc::now(),
    };
    let store: Arc<dyn Store> = match super::open(&config) {
        Ok(s) => s,
        Err(e) if matches!(e.downcast_ref::<StoreError>(), Some(StoreError::Locked { .. })) => {
            return remote::lookup(&config, &args, at).await;
        }
        Err(e) => return Err(e),
    };
    let resolver = Resolver::new(store);
    let query = CallQuery { called: args.called.clone(), cli: args.cli.clone(), tsps_call_id: None, at };
    let profile = resolver.user_for_called(&args.called)?;
    let decision = resolver.resolve_for(&profile, &query)?;
    let subject = ContextSubject {
        contact: decision.candidates.first().map(|c| c.stored.clone()),
        caller_key: decision.caller.key.clone(),
    };
    let context =
        resolver.context(&profile.id, &subject, &ContextQuery { now: at, criteria: profile.context.clone() })?;
    if args.json {
        let mut decision_json = serde_json::to_value(&decision)?;
        // As the text output: each candidate's name and company, and which record it is.
        if let Some(candidates) = decision_json.get_mut("candidates").and_then(serde_json::Value::as_array_mut) {
            for (json, c) in candidates.iter_mut().zip(&decision.candidates) {
                if let Some(fields) = json.as_object_mut() {
                    let at = &c.stored.at;
                    fields.insert("name".into(), c.stored.contact.best_name().into());
                    fields.insert("company".into(), serde_json::json!(c.stored.contact.company));
                    fields.insert(
                        "reference".into(),
                        serde_json::json!({ "account": at.account, "collection": at.collection, "id": at.id.as_str() }),
                    );
                }
            }
        }
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "decision": decision_json, "context": context }))?
        );
    } else {
        out!("{}", output::decision(&decision, &profile));
        out!("{}", output::context(&context, &profile, at));
    }
    Ok(())
}

/// `lookup` against the running server, when it holds the store.
mod remote {
    use super::Args;
    use anyhow::Context as _;
    use chrono::{DateTime, Utc};
    use contactbridge::api::client::BridgeClient;
    use contactbridge::api::pb;
    use contactbridge::config::Config;

    pub async fn lookup(config: &Config, args: &Args, at: DateTime<Utc>) -> anyhow::Result<()> {
        let key = args.api_key.as_deref().context(
            "the store is in use by a running contactbridge server; to ask it over gRPC, \
             pass --api-key (or set CONTACTBRIDGE_API_KEY) with a key of scope tsps",
        )?;
        let mut addr = config.grpc.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        errln!("(the store is in use by the server; asking it at {addr})");
        let mut client = BridgeClient::connect(&format!("http://{addr}"), key).await?;
        let ts = prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 };
        let d = client
            .calls
            .resolve_call(pb::ResolveCallRequest {
                called_number: args.called.clone(),
                cli: args.cli.clone(),
                tsps_call_id: String::new(),
                at: Some(ts),
            })
            .await
            .map_err(|s| anyhow::anyhow!("{}: {}", s.code(), s.message()))?
            .into_inner();
        let ctx = client
            .calls
            .get_caller_context(pb::GetCallerContextRequest {
                user_id: d.user_id.clone(),
                cli: args.cli.clone(),
                now: Some(ts),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
            .unwrap_or_default();
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&json(&d, &ctx))?);
        } else {
            out!("{}", text(&d, &ctx));
        }
        Ok(())
    }

    fn method(m: Option<&pb::HandlingMethod>) -> String {
        let Some(m) = m else { return String::new() };
        let name = pb::HandlingMethodKind::try_from(m.kind)
            .map(|k| k.as_str_name().trim_start_matches("HANDLING_METHOD_KIND_").to_lowercase())
            .unwrap_or_default();
        if m.target.is_empty() {
            name
        } else {
            format!("{name} {}", m.target)
        }
    }

    fn status(s: i32) -> String {
        pb::Status::try_from(s)
            .map(|s| s.as_str_name().trim_start_matches("STATUS_").to_lowercase())
            .unwrap_or_default()
    }

    fn text(d: &pb::ResolveCallResponse, ctx: &pb::GetCallerContextResponse) -> String {
        let mut out = format!("call {} for {} ({})\n", d.call_id, d.user_display_name, d.user_id);
        match d.candidates.first() {
            Some(c) => out += &format!("caller: {} {}\n", c.display_name, c.company),
            None => out += &format!("caller: {} (no contact)\n", d.caller.as_ref().map_or("", |c| c.cli.as_str())),
        }
        out += &format!("handling code: {}\nstatus: {}\n", d.handling_code, status(d.status));
        out += &format!("method: {}\n", method(d.method.as_ref()));
        if !d.target.is_empty() {
            out += &format!("target: {}\n", d.target);
        }
        if !d.note.is_empty() {
            out += &format!("note: {}\n", d.note);
        }
        if d.index_rebuilding {
            out += "index: being rebuilt after damage (contacts may be missing until every account synced)\n";
        }
        for m in ctx.mail_received.iter().chain(&ctx.mail_sent) {
            out += &format!("mail: {}\n", m.subject);
        }
        for e in &ctx.events {
            out += &format!("meeting: {}\n", e.subject);
        }
        for doc in &ctx.documents {
            out += &format!("document: {}\n", doc.name);
        }
        out += &format!("previous calls: {}\n", ctx.calls.len());
        out
    }

    fn json(d: &pb::ResolveCallResponse, ctx: &pb::GetCallerContextResponse) -> serde_json::Value {
        serde_json::json!({
            "decision": {
                "call_id": d.call_id,
                "user": d.user_id,
                "candidates": d.candidates.iter().map(|c| &c.display_name).collect::<Vec<_>>(),
                "handling_code": d.handling_code,
                "status": status(d.status),
                "method": method(d.method.as_ref()),
                "target": d.target,
                "note": d.note,
                "index_rebuilding": d.index_rebuilding,
            },
            "context": {
                "mail": ctx.mail_received.iter().chain(&ctx.mail_sent).map(|m| &m.subject).collect::<Vec<_>>(),
                "events": ctx.events.iter().map(|e| &e.subject).collect::<Vec<_>>(),
                "documents": ctx.documents.iter().map(|d| &d.name).collect::<Vec<_>>(),
                "calls": ctx.calls.len(),
            }
        })
    }
}
