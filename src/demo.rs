//! The demo account shipped in `examples/demo/`: a user profile, contacts and
//! a calendar (read by the files connector), and mail and documents
//! (`context.json`, with dates relative to the moment of loading).

use crate::store::{CollectionScope, IndexStore, Store};
use crate::sync::{self, IndexSink, Indexer};
use crate::user::UserProfile;
use chrono::{DateTime, Duration, Utc};
use contactbridge_connector::{
    ChangeSet, ChangeSink, Document, MailDirection, MailMessage, Person, Record, RecordId, Snapshot,
};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where an installed package puts the demo (relative to the binary's `bin/`).
const INSTALLED: &str = "share/contactbridge/demo";

/// The demo folder `serve --demo` reads: beside an installed binary
/// (`<prefix>/bin/contactbridge` reads `<prefix>/share/contactbridge/demo`), else
/// `examples/demo` of the source tree it was built from.
pub fn default_dir() -> PathBuf {
    let installed = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|prefix| prefix.join(INSTALLED)))
        .filter(|dir| dir.join("user.toml").is_file());
    installed.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo"))
}

/// What loading the demo did.
#[derive(Debug)]
pub struct DemoSummary {
    pub profile: UserProfile,
    pub records: usize,
    pub rejected: usize,
}

#[derive(Deserialize)]
struct ContextFile {
    mail: Vec<DemoMail>,
    documents: Vec<DemoDocument>,
}

#[derive(Deserialize)]
struct DemoMail {
    id: String,
    direction: MailDirection,
    from: String,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    subject: String,
    days_ago: i64,
    #[serde(default)]
    preview: String,
    /// Where the message lives (Graph's `webLink`).
    #[serde(default)]
    web_link: Option<String>,
}

#[derive(Deserialize)]
struct DemoDocument {
    id: String,
    name: String,
    days_ago: i64,
    people: Vec<Person>,
    /// Where the document lives (the drive item's URL).
    #[serde(default)]
    web_link: Option<String>,
}

/// Loads (or reloads) the demo user and data. Idempotent: the demo's
/// collections are full snapshots, so a second load replaces the first.
pub async fn load(store: &dyn Store, dir: &Path, now: DateTime<Utc>) -> anyhow::Result<DemoSummary> {
    use anyhow::Context as _;
    let profile: UserProfile = crate::user::load_profile_file(&dir.join("user.toml"))?;
    crate::user::put_profile(store, &profile)?;

    let indexer = Indexer::for_profile(&profile, &HashMap::new());
    let connector = contactbridge_files::FilesConnector::new(dir);
    let owners = HashMap::new();
    let target = sync::SyncTarget { account: "demo-files", user: &profile.id, owners: &owners, indexer: &indexer };
    let report = sync::sync_account(store, &connector, &target).await;
    if let Some(e) = report.error.as_ref().or_else(|| report.collections.iter().find_map(|c| c.error.as_ref())) {
        anyhow::bail!("loading the demo files from {}: {e}", dir.display());
    }
    let mut records = report.totals().upserted;
    let rejected = report.collections.iter().map(|c| c.rejected).sum();

    let path = dir.join("context.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let ctx: ContextFile = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let person = |e: &String| Person { email: e.to_lowercase(), name: None };
    let mut upserts: Vec<Record> = ctx
        .mail
        .iter()
        .map(|m| {
            Record::Mail(MailMessage {
                id: RecordId::new(&m.id),
                direction: m.direction,
                from: person(&m.from),
                to: m.to.iter().map(person).collect(),
                cc: m.cc.iter().map(person).collect(),
                subject: m.subject.clone(),
                date: now - Duration::days(m.days_ago),
                preview: m.preview.clone(),
                web_link: m.web_link.clone(),
            })
        })
        .collect();
    upserts.extend(ctx.documents.iter().map(|d| {
        Record::Document(Document {
            id: RecordId::new(&d.id),
            name: d.name.clone(),
            web_link: d.web_link.clone(),
            modified: now - Duration::days(d.days_ago),
            people: d.people.clone(),
        })
    }));
    records += upserts.len();
    let scope =
        CollectionScope { user: profile.id.clone(), account: "demo-context".into(), collection: "context.json".into() };
    let index: &dyn IndexStore = store;
    let mut sink = IndexSink::new(index, scope, &indexer);
    sink.apply(ChangeSet { upserts, snapshot: Some(Snapshot::WHOLE), ..Default::default() })
        .await
        .context("storing the demo mail and documents")?;
    Ok(DemoSummary { profile, records, rejected })
}
