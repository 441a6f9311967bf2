//! Hostile admin input (issue 10 follow-ups): what an admin sends over gRPC or
//! types into the CLI is bounded and quoted back short. A real server on
//! 127.0.0.1 with the demo user (tenant `demo`) and an account registry, driven
//! by the tonic client; the `contactbridge` binary for the CLI.

use chrono::Utc;
use contactbridge::api::auth::{self, Scope};
use contactbridge::api::client::BridgeClient;
use contactbridge::api::pb;
use contactbridge::api::{RunningServer, ServerOptions};
use contactbridge::config::Config;
use contactbridge::live::CallHub;
use contactbridge::store::SledStore;
use contactbridge::user::limits;
use serde_json::json;
use std::sync::Arc;
use support::binary::cb;
use tonic::Code;

mod support;

struct Bridge {
    server: RunningServer,
    admin: String,
    _data: tempfile::TempDir,
}

impl Bridge {
    async fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::temporary().unwrap());
        contactbridge::demo::load(store.as_ref(), &contactbridge::demo::default_dir(), Utc::now()).await.unwrap();
        let admin = auth::create_key(store.as_ref(), "demo", Scope::Admin, "test").unwrap().text;
        let config = Config { data_dir: data.path().to_path_buf(), ..Default::default() };
        let registry = Arc::new(contactbridge::accounts::Registry::open(store.clone(), &config).unwrap());
        let server = RunningServer::start(
            store.clone(),
            store.clone(),
            CallHub::new(store.clone()),
            "127.0.0.1:0".parse().unwrap(),
            None,
            ServerOptions { accounts: Some(registry), ..ServerOptions::default() },
        )
        .await
        .unwrap();
        Self { server, admin, _data: data }
    }

    async fn client(&self) -> BridgeClient {
        BridgeClient::connect(&format!("http://{}", self.server.addr), &self.admin).await.unwrap()
    }
}

/// The longest run of one character in `text`.
fn longest_run(text: &str) -> usize {
    let mut best = 0;
    let mut run = 0;
    let mut last = None;
    for c in text.chars() {
        run = if Some(c) == last { run + 1 } else { 1 };
        last = Some(c);
        best = best.max(run);
    }
    best
}

/// Refused as INVALID_ARGUMENT with a message that repeats at most 64 characters of the
/// input (each hostile input is one character repeated) and names `words`.
#[track_caller]
fn short_refusal(r: Result<impl std::fmt::Debug, tonic::Status>, words: &[&str]) -> String {
    let e = r.unwrap_err();
    let m = e.message().to_string();
    assert_eq!(e.code(), Code::InvalidArgument, "{m}");
    assert!(longest_run(&m) <= 64 && m.len() < 1000, "{} bytes: {}", m.len(), &m[..m.len().min(300)]);
    for w in words {
        assert!(m.contains(w), "{w:?} not in {m}");
    }
    m
}

fn registration(account: pb::Account) -> pb::RegisterAccountRequest {
    pb::RegisterAccountRequest { account: Some(account), secret: "pw".into() }
}

fn carddav(settings: serde_json::Value) -> pb::Account {
    pb::Account {
        id: "dav".into(),
        user_id: "demo".into(),
        kind: pb::AccountKind::Carddav as i32,
        location: "https://dav.example.org/".into(),
        settings_json: settings.to_string(),
        ..Default::default()
    }
}

#[tokio::test]
async fn register_account_quotes_at_most_64_characters_of_any_field() {
    let b = Bridge::start().await;
    let mut c = b.client().await;
    let long = "x".repeat(60_000);
    let mut measured = Vec::new();
    let cases: Vec<(&str, pb::Account, &[&str])> = vec![
        ("schedule", pb::Account { schedule: long.clone(), ..carddav(json!({"username": "ann"})) }, &["cron"]),
        (
            "schedule_time_zone",
            pb::Account {
                schedule: "0 */15 * * * *".into(),
                schedule_time_zone: long.clone(),
                ..carddav(json!({"username": "ann"}))
            },
            &["time zone", "more characters"],
        ),
        ("mistyped setting", carddav(json!({"username": "ann", "timeout_secs": long.clone()})), &["expected u64"]),
        ("region", carddav(json!({"username": "ann", "region": long.clone()})), &["region"]),
        (
            "category_codes",
            carddav(json!({"username": "ann", "category_codes": {"a": long.clone()}})),
            &["handling code"],
        ),
        ("id", pb::Account { id: long.clone(), ..carddav(json!({"username": "ann"})) }, &["account id"]),
        (
            "files location",
            pb::Account { kind: pb::AccountKind::Files as i32, location: format!("/{long}"), ..carddav(json!({})) },
            &["files_roots"],
        ),
    ];
    for (what, account, words) in cases {
        let m = short_refusal(c.admin.register_account(registration(account)).await, words);
        measured.push(format!("{what}: {} bytes", m.len()));
    }
    println!("60,000-character inputs -> messages of {}", measured.join(", "));
    b.server.stop().await.unwrap();
}

#[tokio::test]
async fn put_user_bounds_each_field_and_names_it() {
    let b = Bridge::start().await;
    let mut c = b.client().await;
    let get = pb::GetUserRequest { user_id: "demo".into() };
    let profile = c.admin.get_user(get.clone()).await.unwrap().into_inner();
    let target = |label: &str, number: &str| pb::ForwardTarget { label: label.into(), number: number.into() };
    type Edit = Box<dyn Fn(&mut pb::UserProfile)>;
    let cases: Vec<(&str, usize, Edit)> = vec![
        (
            "display_name",
            limits::MAX_DISPLAY_NAME_CHARS,
            Box::new(|p| p.display_name = "ä".repeat(limits::MAX_DISPLAY_NAME_CHARS + 1)),
        ),
        (
            "forward_targets",
            limits::MAX_FORWARD_TARGETS,
            Box::new(move |p| p.forward_targets = vec![target("Desk", "+49 30 1"); limits::MAX_FORWARD_TARGETS + 1]),
        ),
        (
            "forward_targets[0].label",
            limits::MAX_LABEL_CHARS,
            Box::new(move |p| p.forward_targets = vec![target(&"L".repeat(60_000), "+49 30 1")]),
        ),
        (
            "forward_targets[0].number",
            limits::MAX_NUMBER_CHARS,
            Box::new(move |p| p.forward_targets = vec![target("Desk", &"1".repeat(65))]),
        ),
        (
            "attendant.number",
            limits::MAX_NUMBER_CHARS,
            Box::new(|p| p.attendant = Some(pb::Attendant { number: "2".repeat(60_000), user_id: String::new() })),
        ),
        ("time_zone", limits::MAX_TIME_ZONE_CHARS, Box::new(|p| p.time_zone = "Z".repeat(60_000))),
        (
            "called_numbers",
            limits::MAX_CALLED_NUMBERS,
            Box::new(|p| p.called_numbers = (0..=limits::MAX_CALLED_NUMBERS).map(|i| format!("+49 30 9{i}")).collect()),
        ),
        (
            "handling.rules",
            limits::MAX_HANDLING_RULES,
            Box::new(|p| {
                let rule = pb::HandlingRule {
                    code: "vip".into(),
                    status: 0,
                    method: Some(pb::HandlingMethod {
                        kind: pb::HandlingMethodKind::Notify as i32,
                        target: String::new(),
                    }),
                };
                p.handling.as_mut().unwrap().rules = vec![rule; limits::MAX_HANDLING_RULES + 1];
            }),
        ),
        (
            "handling.fallback.target",
            limits::MAX_NUMBER_CHARS,
            Box::new(|p| {
                p.handling.as_mut().unwrap().fallback = Some(pb::HandlingMethod {
                    kind: pb::HandlingMethodKind::Forward as i32,
                    target: "3".repeat(60_000),
                })
            }),
        ),
    ];
    for (field, max, edit) in cases {
        let mut p = profile.clone();
        edit(&mut p);
        short_refusal(
            c.admin.put_user(pb::PutUserRequest { profile: Some(p) }).await,
            &[field, &format!("at most {max}")],
        );
    }
    // Nothing was stored.
    assert_eq!(c.admin.get_user(get.clone()).await.unwrap().into_inner(), profile);
    // At the bounds: stored.
    let mut p = profile.clone();
    p.display_name = "ä".repeat(limits::MAX_DISPLAY_NAME_CHARS);
    p.forward_targets = vec![target(&"L".repeat(limits::MAX_LABEL_CHARS), "+49 30 1"); limits::MAX_FORWARD_TARGETS];
    let stored = c.admin.put_user(pb::PutUserRequest { profile: Some(p) }).await.unwrap().into_inner();
    assert_eq!(stored.forward_targets.len(), limits::MAX_FORWARD_TARGETS);
    b.server.stop().await.unwrap();
}

#[test]
fn cli_durations_past_their_bound_are_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(cb(d, &["user", "add", "acme.alice", "--tenant", "acme"]).status.success());
    let long = format!("{}d", "9".repeat(60_000));
    for duration in ["99999999999d", "9223372036854775807m", "99999999999999999999999h", "367d", long.as_str()] {
        for args in [
            vec!["user", "status", "acme.alice", "dnd", "--for", duration],
            vec!["user", "login-link", "acme.alice", "--valid", duration],
        ] {
            let out = cb(d, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(stderr.contains("longer than 366d"), "{stderr}");
            assert!(stderr.len() < 300, "{} bytes", stderr.len());
        }
    }
    assert!(cb(d, &["user", "status", "acme.alice", "dnd", "--for", "366d"]).status.success());
    let out = cb(d, &["user", "status", "acme.alice", "dnd", "--for", "soon"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("must look like 30m, 2h or 1d"));
    // A CLI-written profile keeps the same bounds as PutUser.
    let forwards: Vec<String> =
        (0..=limits::MAX_FORWARD_TARGETS).map(|i| format!("--forward=F{i}=+49301{i}")).collect();
    let mut args = vec!["user", "add", "acme.bob", "--tenant", "acme"];
    args.extend(forwards.iter().map(String::as_str));
    let out = cb(d, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("forward_targets"), "{stderr}");
}
