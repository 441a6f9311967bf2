//! CardDAV and CalDAV connectors for contactbridge.
//!
//! A [`DavAccount`] names a server (a URL, or only a domain / email address for
//! RFC 6764 discovery) and how to log in. A [`DavConnector`] of kind
//! [`DavKind::CardDav`] exposes the account's address books, one of kind
//! [`DavKind::CalDav`] its calendars; both implement
//! [`contactbridge_connector::Connector`].
//!
//! - **Discovery**: the context path (`/.well-known/` or SRV/TXT), the
//!   `current-user-principal`, its home sets, and every collection in them,
//!   filtered by the account's include/exclude patterns.
//! - **Sync** of one collection: with a sync token, RFC 6578 sync-collection gives
//!   what changed and what was deleted. Otherwise (first sync, rejected token,
//!   changed ctag on servers without sync-collection) the collection is listed in
//!   full and applied as a [`contactbridge_connector::Snapshot`]: hrefs in sorted
//!   order, unchanged etags reported as retained, the rest fetched with multiget in
//!   batches, each batch one change set whose checkpoint says where to resume.
//!   The first sync of an address book fetches every card in one
//!   `addressbook-query` instead (ctag taken first), applied in the same batches.
//! - **Learning that nothing changed** ([`probe`]): with a sync token, either the
//!   sync-collection REPORT, or a depth-0 PROPFIND for the ctag first and the REPORT
//!   only if it moved, whichever the collection's measured figures (kept in its
//!   checkpoint) make cheaper; both are sent every [`probe::REPROBE_EVERY`]th sync.
//!   The checkpoint also keeps the context URL, so a sync on the account's origin
//!   does not look up `.well-known` again: a sync that finds nothing sends one request.
//! - **Write-back**: a handling code becomes a vCard category, stored with `If-Match`.
//!
//! HTTP is libdav over hyper-util and rustls (ring; the web PKI roots plus an
//! optional private CA; no way to switch certificate checks off).

mod account;
mod checkpoint;
mod discovery;
mod error;
mod guard;
mod http;
pub mod probe;
mod query;
mod sync;
mod writeback;

pub use account::{Credentials, DavAccount, EventWindow, Secret, Server};
pub use checkpoint::{DavCheckpoint, Resume};
pub use discovery::Dav;
pub use http::{DavHttp, TokenSource, TransportError};

use async_trait::async_trait;
use contactbridge_connector::{
    ChangeSink, Collection, CollectionKind, Connector, Contact, Error, NetPolicy, SyncRequest, ThrottleTally,
};
use contactbridge_formats::Window;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Which protocol a [`DavConnector`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DavKind {
    /// Address books (vCard).
    CardDav,
    /// Calendars (iCalendar events).
    CalDav,
}

/// A CardDAV or CalDAV connector for one account.
pub struct DavConnector {
    account: DavAccount,
    kind: DavKind,
    http: DavHttp,
    /// The client at the discovered context path, found on first use.
    client: OnceCell<Dav>,
}

impl std::fmt::Debug for DavConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DavConnector").field("kind", &self.kind).field("account", &self.account).finish()
    }
}

impl DavConnector {
    /// A connector using the account's own credentials.
    pub fn new(account: DavAccount, kind: DavKind) -> Result<Self, Error> {
        Self::with_policy(account, kind, NetPolicy::open())
    }

    /// A connector whose connections pass `policy` (accounts registered by tenant admins).
    pub fn with_policy(account: DavAccount, kind: DavKind, policy: NetPolicy) -> Result<Self, Error> {
        account.validate()?;
        account.check_target(&policy)?;
        let http = DavHttp::new(&account, None, policy)?;
        Ok(Self { account, kind, http, client: OnceCell::new() })
    }

    /// A connector that asks `tokens` for a bearer token on every request (OAuth).
    pub fn with_token_source(account: DavAccount, kind: DavKind, tokens: Arc<dyn TokenSource>) -> Result<Self, Error> {
        account.validate()?;
        let http = DavHttp::new(&account, Some(tokens), NetPolicy::open())?;
        Ok(Self { account, kind, http, client: OnceCell::new() })
    }

    pub fn carddav(account: DavAccount) -> Result<Self, Error> {
        Self::new(account, DavKind::CardDav)
    }

    pub fn caldav(account: DavAccount) -> Result<Self, Error> {
        Self::new(account, DavKind::CalDav)
    }

    pub fn kind(&self) -> DavKind {
        self.kind
    }

    pub fn account(&self) -> &DavAccount {
        &self.account
    }

    /// The libdav client at the server's context path (discovered on first use).
    pub async fn client(&self) -> Result<&Dav, Error> {
        self.client.get_or_try_init(|| discovery::connect(&self.account, self.kind, self.http.clone())).await
    }

    /// Edits the card at `href` with `edit` (which returns `None` for "no change")
    /// and stores it with `If-Match`, re-fetching and editing once more if the card
    /// changed on the server in between. Returns the stored contact and its etag.
    pub async fn update_card(
        &self,
        collection: &Collection,
        href: &str,
        edit: &mut (dyn FnMut(&str) -> Result<Option<String>, Error> + Send),
    ) -> Result<Contact, Error> {
        if self.kind != DavKind::CardDav || collection.kind != CollectionKind::AddressBook {
            return Err(Error::new(contactbridge_connector::ErrorKind::Unsupported, "only cards can be written back"));
        }
        writeback::update_card(self.client().await?, &collection.id, href, edit).await
    }

    /// The context URL a collection's checkpoint was synced through, if it is on the
    /// origin of the account's URL (so no `.well-known` lookup is needed: a sync that
    /// finds nothing new sends the server one request).
    fn remembered_context(&self, checkpoint: &contactbridge_connector::Checkpoint) -> Option<::http::Uri> {
        let Server::Url(url) = &self.account.server else { return None };
        let account: ::http::Uri = url.parse().ok()?;
        let via: ::http::Uri = DavCheckpoint::decode(checkpoint).ok()?.via?.parse().ok()?;
        let same_origin = via.scheme() == account.scheme() && via.authority() == account.authority();
        same_origin.then_some(via)
    }

    fn window(&self) -> Window {
        Window::around(chrono::Utc::now(), self.account.window.back_days, self.account.window.ahead_days)
    }
}

#[async_trait]
impl Connector for DavConnector {
    fn name(&self) -> &'static str {
        match self.kind {
            DavKind::CardDav => "carddav",
            DavKind::CalDav => "caldav",
        }
    }

    async fn check(&self) -> Result<(), Error> {
        let dav = self.client().await?;
        discovery::principal(dav).await.map(|_| ())
    }

    async fn collections(&self) -> Result<Vec<Collection>, Error> {
        let all = discovery::collections(self.client().await?, self.kind).await?;
        Ok(all.into_iter().filter(|c| self.account.selects(&c.name, &c.id)).collect())
    }

    async fn sync(&self, request: SyncRequest<'_>, sink: &mut dyn ChangeSink) -> Result<(), Error> {
        // The context URL this collection was last synced through (no discovery for a
        // sync that finds nothing new) or the discovered one; the client counts this
        // collection's throttling waits for the sink.
        let remembered = match self.client.get() {
            Some(_) => None,
            None => request.since.as_ref().and_then(|cp| self.remembered_context(cp)),
        };
        let base_url = match remembered {
            Some(url) => url,
            None => self.client().await?.base_url.clone(),
        };
        let tally = ThrottleTally::default();
        let dav = Dav::new(base_url, self.http.counting_throttling(tally.clone()));
        let run = sync::CollectionSync {
            dav: &dav,
            kind: self.kind,
            batch_size: self.account.batch_size,
            use_sync_collection: self.account.sync_collection,
            window: self.window(),
            today: chrono::Utc::now().date_naive(),
            collection: request.collection,
        };
        let result = run.run(request, sink).await;
        sink.throttled(tally.get());
        result
    }

    async fn write_handling_code(
        &self,
        collection: &Collection,
        contact: &Contact,
        category: &str,
    ) -> Result<Contact, Error> {
        let mut edit = |text: &str| -> Result<Option<String>, Error> {
            let edited = contactbridge_formats::add_vcard_category(text, category)
                .map_err(|e| Error::invalid_data(format!("{}: cannot add the category: {}", contact.id, e.reason)))?;
            Ok((edited != text).then_some(edited))
        };
        self.update_card(collection, contact.id.as_str(), &mut edit).await
    }

    async fn remove_handling_code(
        &self,
        collection: &Collection,
        contact: &Contact,
        category: &str,
    ) -> Result<Contact, Error> {
        let mut edit = |text: &str| -> Result<Option<String>, Error> {
            let edited = contactbridge_formats::remove_vcard_category(text, category).map_err(|e| {
                Error::invalid_data(format!("{}: cannot remove the category: {}", contact.id, e.reason))
            })?;
            Ok((edited != text).then_some(edited))
        };
        self.update_card(collection, contact.id.as_str(), &mut edit).await
    }
}
