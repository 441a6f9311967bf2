//! The `Connector` trait and the collections it exposes.

use crate::{ChangeSink, Checkpoint, Contact, Error, KnownVersions, RecordKind};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What a collection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectionKind {
    AddressBook,
    Calendar,
    MailFolder,
    Drive,
    /// Mailbox settings (out-of-office).
    Settings,
}

impl CollectionKind {
    /// The record kinds a collection of this kind yields.
    pub fn record_kinds(self) -> &'static [RecordKind] {
        match self {
            Self::AddressBook => &[RecordKind::Contact],
            Self::Calendar => &[RecordKind::Event],
            Self::MailFolder => &[RecordKind::Mail],
            Self::Drive => &[RecordKind::Document],
            Self::Settings => &[RecordKind::OutOfOffice],
        }
    }
}

/// A collection of an account: an address book, a calendar, a mail folder...
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Collection {
    /// Stable id inside the account (a DAV href, `mailbox/folder` for Graph, a path).
    pub id: String,
    /// Human name (displayname).
    pub name: String,
    pub kind: CollectionKind,
    /// For organisation-wide accounts: the mailbox (UPN or id) this collection
    /// belongs to; the bridge maps it to a user. `None`: the account's own user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// What the sync engine asks of a connector for one collection.
pub struct SyncRequest<'a> {
    pub collection: &'a Collection,
    /// The last checkpoint committed for this collection; `None` on first sync.
    pub since: Option<Checkpoint>,
    /// Versions the index holds for this collection (for etag comparison).
    pub known: &'a dyn KnownVersions,
}

/// A source of records for one account.
///
/// Implementations keep no sync state of their own: everything needed to resume
/// is in the [`Checkpoint`] they emit. They are cheap to call concurrently for
/// different collections, and must stay within the source's limits when they are.
#[async_trait]
pub trait Connector: Send + Sync {
    /// A short name for logs and status: "graph", "carddav", "caldav", "files".
    fn name(&self) -> &'static str;

    /// Checks credentials and reachability without syncing anything.
    async fn check(&self) -> Result<(), Error>;

    /// Checks each part of the account that can fail on its own (each mailbox of an
    /// organisation-wide account), with the part's name: one failing part does not
    /// hide how the others answered. By default the account is one part, named "".
    async fn check_parts(&self) -> Vec<(String, Result<(), Error>)> {
        vec![(String::new(), self.check().await)]
    }

    /// Lists the account's collections.
    async fn collections(&self) -> Result<Vec<Collection>, Error>;

    /// Brings the collection up to date from `request.since`, delivering change
    /// sets to `sink` in order. If the checkpoint is no longer valid at the source
    /// (expired token, 410), the connector starts a [`crate::Snapshot`] itself.
    async fn sync(&self, request: SyncRequest<'_>, sink: &mut dyn ChangeSink) -> Result<(), Error>;

    /// Writes a handling code back to a contact at the source (adds the mapped
    /// category), so the user's other clients see it. Sources that cannot be
    /// written return [`crate::ErrorKind::Unsupported`]. Returns the updated contact.
    async fn write_handling_code(
        &self,
        collection: &Collection,
        contact: &Contact,
        category: &str,
    ) -> Result<Contact, Error> {
        let _ = (collection, contact, category);
        Err(Error::new(crate::ErrorKind::Unsupported, format!("the {} connector cannot write contacts", self.name())))
    }

    /// Removes a handling code's category from a contact at the source (the user took the code
    /// away), leaving every other category and property as it was. Returns the updated contact.
    async fn remove_handling_code(
        &self,
        collection: &Collection,
        contact: &Contact,
        category: &str,
    ) -> Result<Contact, Error> {
        let _ = (collection, contact, category);
        Err(Error::new(crate::ErrorKind::Unsupported, format!("the {} connector cannot write contacts", self.name())))
    }
}
