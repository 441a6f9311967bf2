//! A connector limited to collections listed beforehand, so that one listing
//! can be synced in parts (an organisation-wide account, one user at a time).

use async_trait::async_trait;
use contactbridge_connector::{ChangeSink, Collection, Connector, Contact, Error, SyncRequest};

pub(crate) struct Subset<'a> {
    pub inner: &'a dyn Connector,
    pub collections: Vec<Collection>,
}

#[async_trait]
impl Connector for Subset<'_> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn check(&self) -> Result<(), Error> {
        self.inner.check().await
    }

    async fn collections(&self) -> Result<Vec<Collection>, Error> {
        Ok(self.collections.clone())
    }

    async fn sync(&self, request: SyncRequest<'_>, sink: &mut dyn ChangeSink) -> Result<(), Error> {
        self.inner.sync(request, sink).await
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
