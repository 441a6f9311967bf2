//! Progress of a running sync: a connector wrapper that counts collections and
//! records as they are committed, readable from another task (CLI bar, admin API).

use async_trait::async_trait;
use contactbridge_connector::{ChangeSet, ChangeSink, Collection, Connector, Contact, Error, SyncRequest};
use std::sync::{Arc, Mutex};

/// How far a sync has come.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub started: Option<chrono::DateTime<chrono::Utc>>,
    /// Collections the account has (known once they are listed).
    pub collections_total: Option<usize>,
    pub collections_done: usize,
    /// The collection being synced.
    pub current: Option<String>,
    /// Change sets committed so far.
    pub batches: usize,
    /// Records written or deleted so far.
    pub records: usize,
}

/// Shared, live progress of one sync.
#[derive(Debug, Clone, Default)]
pub struct ProgressHandle(Arc<Mutex<Progress>>);

impl ProgressHandle {
    pub fn get(&self) -> Progress {
        self.0.lock().expect("progress lock").clone()
    }

    pub(crate) fn mark_started(&self, at: chrono::DateTime<chrono::Utc>) {
        self.update(|p| {
            p.started.get_or_insert(at);
        });
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Progress)) {
        f(&mut self.0.lock().expect("progress lock"));
    }
}

/// A connector that reports progress into a [`ProgressHandle`] and otherwise
/// passes everything through.
pub(crate) struct Tracked<'a> {
    pub inner: &'a dyn Connector,
    pub progress: ProgressHandle,
}

struct CountingSink<'s> {
    inner: &'s mut dyn ChangeSink,
    progress: ProgressHandle,
}

#[async_trait]
impl ChangeSink for CountingSink<'_> {
    async fn apply(&mut self, changes: ChangeSet) -> Result<(), Error> {
        let n = changes.upserts.len() + changes.deletions.len();
        self.inner.apply(changes).await?;
        self.progress.update(|p| {
            p.batches += 1;
            p.records += n;
        });
        Ok(())
    }

    fn throttled(&mut self, waits: contactbridge_connector::Throttling) {
        self.inner.throttled(waits);
    }
}

#[async_trait]
impl Connector for Tracked<'_> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn check(&self) -> Result<(), Error> {
        self.inner.check().await
    }

    async fn collections(&self) -> Result<Vec<Collection>, Error> {
        let all = self.inner.collections().await?;
        self.progress.update(|p| p.collections_total = Some(all.len()));
        Ok(all)
    }

    async fn sync(&self, request: SyncRequest<'_>, sink: &mut dyn ChangeSink) -> Result<(), Error> {
        self.progress.update(|p| p.current = Some(request.collection.name.clone()));
        let mut counting = CountingSink { inner: sink, progress: self.progress.clone() };
        let result = self.inner.sync(request, &mut counting).await;
        self.progress.update(|p| {
            p.collections_done += 1;
            p.current = None;
        });
        result
    }

    async fn write_handling_code(
        &self,
        collection: &Collection,
        contact: &Contact,
        category: &str,
    ) -> Result<Contact, Error> {
        self.inner.write_handling_code(collection, contact, category).await
    }

    async fn remove_handling_code(
        &self,
        collection: &Collection,
        contact: &Contact,
        category: &str,
    ) -> Result<Contact, Error> {
        self.inner.remove_handling_code(collection, contact, category).await
    }
}
