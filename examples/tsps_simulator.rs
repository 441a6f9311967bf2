//! A phone system (TSPS) simulator: places a scripted series of calls against a
//! running bridge, prints what it would do with each, follows the directives
//! the user sends while a call rings, and reports what happened to each call.
//!
//! ```text
//! contactbridge serve --demo &
//! cargo run --example tsps_simulator -- --addr http://127.0.0.1:50051 --key demo-tsps-key
//! ```
//!
//! The user's side (the notification window deciding "forward this one to my
//! mobile") is played by the same program through `SendDirective`, so the
//! directive path is exercised end to end: SendDirective → WatchDirectives →
//! the TSPS follows it → ReportCallEvent → the call history.

use anyhow::{bail, Context as _};
use clap::Parser;
use contactbridge::api::client::BridgeClient;
use contactbridge::api::pb;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Parser)]
struct Args {
    /// The bridge's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// An API key of scope tsps.
    #[arg(long, default_value = "demo-tsps-key")]
    key: String,
    /// The called number (the demo user's DID).
    #[arg(long, default_value = "+49 30 901820")]
    called: String,
}

/// What the simulated user does while a call rings.
#[derive(Clone, Copy)]
enum UserDoes {
    Nothing,
    /// Presses the first forward button of the notification window.
    ForwardToFirstTarget,
    Reject,
}

const SCRIPT: &[(&str, &str, UserDoes)] = &[
    ("+49301234567", "Erika (VIP contact) calls", UserDoes::ForwardToFirstTarget),
    ("+49305550199", "Hans or Greta (one number, two contacts)", UserDoes::Nothing),
    ("08001234567", "a blocked telemarketer (national format)", UserDoes::Nothing),
    ("anonymous", "a withheld number", UserDoes::Nothing),
    ("+442079460000", "an unknown caller", UserDoes::Reject),
    ("+49 30 12a4567", "a malformed CLI", UserDoes::Nothing),
];

fn method_name(m: Option<&pb::HandlingMethod>) -> String {
    let kind = m.and_then(|m| pb::HandlingMethodKind::try_from(m.kind).ok()).unwrap_or_default();
    kind.as_str_name().trim_start_matches("HANDLING_METHOD_KIND_").to_lowercase()
}

fn status_name(s: i32) -> String {
    pb::Status::try_from(s).unwrap_or_default().as_str_name().trim_start_matches("STATUS_").to_lowercase()
}

fn action_name(a: i32) -> String {
    pb::DirectiveAction::try_from(a)
        .unwrap_or_default()
        .as_str_name()
        .trim_start_matches("DIRECTIVE_ACTION_")
        .to_lowercase()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut bridge = BridgeClient::connect(&args.addr, &args.key).await?;
    bridge.calls.ping(pb::PingRequest {}).await.context("the bridge refused the key")?;

    // Directives arrive on their own stream while calls ring.
    let mut stream = bridge.calls.watch_directives(pb::WatchDirectivesRequest::default()).await?.into_inner();
    let (tx, mut directives) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(d)) = stream.message().await {
            if tx.send(d).is_err() {
                break;
            }
        }
    });

    let (mut placed, mut followed) = (0, 0);
    for (n, (cli, what, user)) in SCRIPT.iter().enumerate() {
        let n = n + 1;
        let req = pb::ResolveCallRequest {
            called_number: args.called.clone(),
            cli: cli.to_string(),
            tsps_call_id: format!("sim-{n}"),
            at: None,
        };
        let d = match bridge.calls.resolve_call(req).await {
            Ok(d) => d.into_inner(),
            Err(s) => {
                println!("call {n}: {what}: CLI {cli:?} refused: {:?}: {}", s.code(), s.message());
                continue;
            }
        };
        placed += 1;
        let caller = d.candidates.first().map_or("no contact".to_string(), |c| c.display_name.clone());
        let method = method_name(d.method.as_ref());
        println!(
            "call {n}: {what}: CLI {cli} -> {caller} ({} candidates), code {}, status {}, method {method}{}",
            d.candidates.len(),
            d.handling_code,
            status_name(d.status),
            if d.target.is_empty() { String::new() } else { format!(" {}", d.target) },
        );
        report(&mut bridge, &d.call_id, pb::CallEventKind::Ringing, "").await?;

        let decided = match user {
            UserDoes::Nothing => None,
            UserDoes::ForwardToFirstTarget => {
                let to =
                    d.forward_targets.first().map(|t| t.number.clone()).context("the user has no forward target")?;
                Some((pb::DirectiveAction::Forward, to))
            }
            UserDoes::Reject => Some((pb::DirectiveAction::Reject, String::new())),
        };
        if let Some((action, target)) = decided {
            bridge
                .calls
                .send_directive(pb::SendDirectiveRequest {
                    call_id: d.call_id.clone(),
                    action: action as i32,
                    target,
                    by: d.user_id.clone(),
                    ..Default::default()
                })
                .await?;
            let dir = loop {
                let got = tokio::time::timeout(Duration::from_secs(10), directives.recv())
                    .await
                    .context("no directive arrived within 10 s")?
                    .context("the directive stream ended")?;
                if got.call_id == d.call_id {
                    break got;
                }
            };
            println!(
                "call {n}: directive from {}: {}{} -> following it instead of {method}",
                dir.by,
                action_name(dir.action),
                if dir.target.is_empty() { String::new() } else { format!(" {}", dir.target) }
            );
            followed += 1;
            match pb::DirectiveAction::try_from(dir.action) {
                Ok(pb::DirectiveAction::Forward) => {
                    report(&mut bridge, &d.call_id, pb::CallEventKind::Forwarded, &dir.target).await?;
                    report(&mut bridge, &d.call_id, pb::CallEventKind::Answered, "").await?;
                }
                Ok(pb::DirectiveAction::Accept) => {
                    report(&mut bridge, &d.call_id, pb::CallEventKind::Answered, "").await?;
                }
                _ => {
                    report(&mut bridge, &d.call_id, pb::CallEventKind::Missed, "").await?;
                }
            }
        } else {
            match method.as_str() {
                "forward" | "attendant" => {
                    report(&mut bridge, &d.call_id, pb::CallEventKind::Forwarded, &d.target).await?;
                    report(&mut bridge, &d.call_id, pb::CallEventKind::Answered, "").await?;
                }
                "notify" => {
                    report(&mut bridge, &d.call_id, pb::CallEventKind::Answered, "").await?;
                }
                _ => {
                    report(&mut bridge, &d.call_id, pb::CallEventKind::Missed, "").await?;
                }
            }
        }
        let call = report(&mut bridge, &d.call_id, pb::CallEventKind::Ended, "").await?;
        println!("call {n}: journal has {} events", call.events.len());
    }

    // The caller context the notification window would show for Erika, with her call history.
    let ctx = bridge
        .calls
        .get_caller_context(pb::GetCallerContextRequest {
            user_id: "demo".into(),
            cli: SCRIPT[0].0.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    println!(
        "context for {}: {} mails received, {} sent, {} events, {} documents, {} calls",
        ctx.contact.map(|c| c.display_name).unwrap_or_default(),
        ctx.mail_received.len(),
        ctx.mail_sent.len(),
        ctx.events.len(),
        ctx.documents.len(),
        ctx.calls.len()
    );
    if followed != 2 {
        bail!("expected to follow 2 directives, followed {followed}");
    }
    println!("done: {placed} calls placed, {followed} directives followed");
    Ok(())
}

async fn report(
    bridge: &mut BridgeClient,
    call_id: &str,
    kind: pb::CallEventKind,
    target: &str,
) -> anyhow::Result<pb::CallRecord> {
    let r = bridge
        .calls
        .report_call_event(pb::ReportCallEventRequest {
            call_id: call_id.into(),
            kind: kind as i32,
            target: target.into(),
            by: "tsps".into(),
            at: None,
        })
        .await?;
    r.into_inner().call.context("the bridge returned no call record")
}
