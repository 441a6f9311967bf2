//! The local-file connector: `.vcf` address books and `.ics` calendars.
//!
//! An account is a path: one `.vcf` or `.ics` file, or a directory searched
//! recursively. Each file is one [`Collection`] (id = its path relative to the
//! account root, name = its stem). A sync reads the whole file and delivers it as
//! one snapshot; its checkpoint is a hash of the content, so an unchanged file
//! costs one read and delivers nothing. Used by `contactbridge import` and the
//! demo account.

mod checkpoint;
mod listing;

use async_trait::async_trait;
use chrono::Utc;
use contactbridge_connector::{
    ChangeSet, ChangeSink, Collection, CollectionKind, Connector, Error, ErrorKind, Record, RecordId, Rejected,
    Snapshot, SyncRequest,
};
use contactbridge_formats::{parse_vcard_file, read_ics_file, Window};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// Reads contacts and events from local files.
#[derive(Debug, Clone)]
pub struct FilesConnector {
    root: PathBuf,
    window: Option<Window>,
    confined: bool,
}

impl FilesConnector {
    /// An account for `path`: a `.vcf` file, an `.ics` file or a directory.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { root: path.into(), window: None, confined: false }
    }

    /// Reads nothing outside the account's folder: a file whose real path (links
    /// resolved) is not inside the root is not read; its collection fails with the
    /// reason and the files around it are read. For accounts registered by tenant
    /// admins, whose folder the operator allowed but whose links nobody checked.
    /// Without it (the operator's own accounts) links are followed wherever they lead.
    pub fn confined(mut self) -> Self {
        self.confined = true;
        self
    }

    /// Expands recurring events inside `window` instead of the default
    /// ([`Window::default_at`] the time of each sync).
    pub fn with_window(mut self, window: Window) -> Self {
        self.window = Some(window);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file behind a collection id, refusing ids that leave the root.
    fn file_of(&self, collection: &Collection) -> Result<PathBuf, Error> {
        if self.root.is_file() {
            return Ok(self.root.clone());
        }
        let relative = Path::new(&collection.id);
        if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("collection {:?} is not a file under the account", collection.id),
            ));
        }
        Ok(self.root.join(relative))
    }
}

/// Whether `file`, links resolved, is `root` itself or inside it (also false when it
/// does not exist, so a dangling link and a link to something out of reach answer alike).
fn inside(root: &Path, file: &Path) -> bool {
    match (root.canonicalize(), file.canonicalize()) {
        (Ok(root), Ok(file)) => file.starts_with(&root),
        _ => false,
    }
}

fn read_error(path: &Path, e: std::io::Error) -> Error {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorKind::Forbidden,
        _ => ErrorKind::Local,
    };
    Error::new(kind, format!("cannot read {}: {e}", path.display())).with_source(e)
}

#[async_trait]
impl Connector for FilesConnector {
    fn name(&self) -> &'static str {
        "files"
    }

    async fn check(&self) -> Result<(), Error> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || listing::check(&root))
            .await
            .map_err(|e| Error::local(format!("checking {} failed: {e}", self.root.display())))?
    }

    async fn collections(&self) -> Result<Vec<Collection>, Error> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || listing::collections(&root))
            .await
            .map_err(|e| Error::local(format!("listing {} failed: {e}", self.root.display())))?
    }

    async fn sync(&self, request: SyncRequest<'_>, sink: &mut dyn ChangeSink) -> Result<(), Error> {
        let collection = request.collection;
        let path = self.file_of(collection)?;
        if self.confined {
            let (root, file) = (self.root.clone(), path.clone());
            let inside = tokio::task::spawn_blocking(move || inside(&root, &file)).await.unwrap_or(false);
            if !inside {
                return Err(Error::local(format!(
                    "{} is a link that leads out of the account's folder: not read",
                    contactbridge_connector::echo(&collection.id)
                )));
            }
        }
        let bytes = tokio::fs::read(&path).await.map_err(|e| read_error(&path, e))?;
        let window = self.window.unwrap_or_else(|| Window::default_at(Utc::now()));
        let checkpoint = match collection.kind {
            CollectionKind::Calendar => checkpoint::of(&bytes, Some(window)),
            _ => checkpoint::of(&bytes, None),
        };
        if request.since.as_ref() == Some(&checkpoint) {
            tracing::debug!(file = %path.display(), "unchanged since the last sync");
            return Ok(());
        }
        let (id, kind) = (collection.id.clone(), collection.kind);
        if !matches!(kind, CollectionKind::AddressBook | CollectionKind::Calendar) {
            return Err(Error::new(ErrorKind::Unsupported, format!("the files connector has no {kind:?} collections")));
        }
        // Parsing a large file is CPU work: off the async runtime, so the
        // servers on it (gRPC, status queries) keep answering meanwhile.
        let mut changes = tokio::task::spawn_blocking(move || match kind {
            CollectionKind::Calendar => events(&id, &bytes, window),
            _ => contacts(&id, &bytes),
        })
        .await
        .map_err(|e| Error::local(format!("parsing {}: {e}", path.display())))?;
        tracing::info!(
            file = %path.display(),
            records = changes.upserts.len(),
            rejected = changes.rejected.len(),
            "read file"
        );
        changes.checkpoint = Some(checkpoint);
        changes.snapshot = Some(Snapshot::WHOLE);
        sink.apply(changes).await
    }
}

fn rejected(file: &str, n: usize, reason: impl Into<String>) -> Rejected {
    Rejected { id: RecordId::new(format!("{file}#{n}")), reason: reason.into() }
}

/// The cards of a .vcf file: the last card of a UID wins, earlier ones are rejected.
fn contacts(file: &str, bytes: &[u8]) -> ChangeSet {
    let mut changes = ChangeSet::default();
    let mut latest: HashMap<RecordId, (usize, usize)> = HashMap::new(); // id → (card number, upsert index)
    for (i, result) in parse_vcard_file(bytes).into_iter().enumerate() {
        let n = i + 1;
        match result {
            Ok(contact) => {
                if let Some((earlier, index)) = latest.get(&contact.id).copied() {
                    changes.rejected.push(rejected(file, earlier, "duplicate UID"));
                    changes.upserts[index] = Record::Contact(contact);
                    latest.insert(changes.upserts[index].id().clone(), (n, index));
                } else {
                    latest.insert(contact.id.clone(), (n, changes.upserts.len()));
                    changes.upserts.push(Record::Contact(contact));
                }
            }
            Err(e) => changes.rejected.push(rejected(file, n, e.reason)),
        }
    }
    changes
}

/// The events of an .ics file, one per UID. An event whose occurrences were
/// cut is kept and reported.
fn events(file: &str, bytes: &[u8], window: Window) -> ChangeSet {
    let mut changes = ChangeSet::default();
    for (i, result) in read_ics_file(bytes, window).into_iter().enumerate() {
        match result {
            Ok(read) => {
                if let Some(note) = read.note {
                    changes.rejected.push(rejected(file, i + 1, format!("event {}: {note}", read.event.id)));
                }
                changes.upserts.push(Record::Event(read.event));
            }
            Err(e) => changes.rejected.push(rejected(file, i + 1, e.reason)),
        }
    }
    changes
}
