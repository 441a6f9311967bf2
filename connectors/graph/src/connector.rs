//! The Graph [`Connector`]: the collections of each mailbox, their sync, and the category write-back.

use crate::auth::{TokenCache, TokenSource};
use crate::client::{prefer_utc, GraphHttp, Page};
use crate::config::GraphAccount;
use crate::delta::{self, DeltaJob, DeltaState};
use crate::map::{self, Item, CONTACT_SELECT, DRIVE_SELECT, MESSAGE_SELECT};
use async_trait::async_trait;
use chrono::{Duration as Days, DurationRound, Utc};
use contactbridge_connector::{
    ChangeSet, ChangeSink, Checkpoint, Collection, CollectionKind, Connector, Contact, Error, ErrorKind, MailDirection,
    Rejected, Snapshot, SyncRequest, ThrottleTally,
};
use graph_rs_sdk::http::{Method, Url};
use graph_rs_sdk::{GraphClient, ODataQuery};
use reqwest::header::HeaderName;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// What a collection id (`{mailbox}/{part}`) names inside a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    DefaultContacts,
    ContactFolder(String),
    Calendar,
    Mail(MailDirection),
    Drive,
    Settings,
}

impl Part {
    fn parse(rest: &str) -> Option<Part> {
        Some(match rest {
            "contacts" => Part::DefaultContacts,
            "calendarView" => Part::Calendar,
            "inbox" => Part::Mail(MailDirection::Received),
            "sentitems" => Part::Mail(MailDirection::Sent),
            "drive" => Part::Drive,
            "automaticRepliesSetting" => Part::Settings,
            other => Part::ContactFolder(other.strip_prefix("contactFolders/")?.to_string()),
        })
    }
}

/// The Microsoft Graph connector for one account (app-only for many mailboxes, or delegated).
pub struct GraphConnector {
    account: GraphAccount,
    tokens: Arc<TokenCache>,
    http: GraphHttp,
    /// Mailbox → id of its default contacts folder, once known.
    default_folders: tokio::sync::Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for GraphConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphConnector").field("account", &self.account).finish_non_exhaustive()
    }
}

impl GraphConnector {
    pub fn new(account: GraphAccount) -> Result<Self, Error> {
        let tokens = Arc::new(TokenCache::new(&account)?);
        Self::with_tokens(account, tokens)
    }

    /// A connector sharing an existing token cache (e.g. with a DAV connector of the same account).
    pub fn with_tokens(account: GraphAccount, tokens: Arc<TokenCache>) -> Result<Self, Error> {
        let http = GraphHttp::new(&account, tokens.clone())?;
        Ok(Self { account, tokens, http, default_folders: Default::default() })
    }

    /// The account this connector serves.
    pub fn account(&self) -> &GraphAccount {
        &self.account
    }

    pub(crate) fn http(&self) -> &GraphHttp {
        &self.http
    }

    pub fn tokens(&self) -> &Arc<TokenCache> {
        &self.tokens
    }

    /// HTTP requests sent to Graph so far, retries included.
    pub fn requests(&self) -> u64 {
        self.http.requests()
    }

    fn split<'c>(&self, collection: &'c Collection) -> Result<(&'c str, Part), Error> {
        let (mailbox, rest) = collection.id.split_once('/').ok_or_else(|| bad_collection(collection))?;
        let part = Part::parse(rest).ok_or_else(|| bad_collection(collection))?;
        Ok((mailbox, part))
    }

    fn collection(mailbox: &str, part: &str, name: String, kind: CollectionKind) -> Collection {
        Collection { id: format!("{mailbox}/{part}"), name, kind, owner: Some(mailbox.to_string()) }
    }

    /// The id of the mailbox's default contacts folder (the `parentFolderId` of one of its
    /// contacts), so that its delta uses the documented `contactFolders/{id}/contacts/delta`.
    /// `None` while the folder is empty. Asked once per mailbox and process.
    async fn default_contacts_folder(&self, mailbox: &str, throttle: &ThrottleTally) -> Result<Option<String>, Error> {
        let key = mailbox.to_ascii_lowercase();
        if let Some(id) = self.default_folders.lock().await.get(&key) {
            return Ok(Some(id.clone()));
        }
        let what = format!("default contacts folder of {mailbox}");
        let make = |g: &GraphClient| g.user(mailbox).contacts().list_contacts().top("1").select(&["id,parentFolderId"]);
        let body = self.http.send_counting(mailbox, &what, &make, Some(throttle)).await?;
        let id = body.pointer("/value/0/parentFolderId").and_then(Value::as_str).map(str::to_string);
        if let Some(id) = &id {
            self.default_folders.lock().await.insert(key, id.clone());
        }
        Ok(id)
    }

    /// Every contact folder of a mailbox below the default one, depth first.
    async fn contact_folders(&self, mailbox: &str) -> Result<Vec<(String, String)>, Error> {
        let mut found = Vec::new();
        let mut queue: Vec<(Option<String>, String)> = vec![(None, String::new())];
        while let Some((parent, prefix)) = queue.pop() {
            let what = format!("contact folders of {mailbox}");
            let mut link: Option<Url> = None;
            loop {
                let page: Page = match &link {
                    None => {
                        let parent = parent.clone();
                        let make = move |g: &GraphClient| match &parent {
                            None => g.user(mailbox).contact_folders().list_contact_folders(),
                            Some(p) => g.user(mailbox).contact_folder(p).child_folders().list_child_folders(),
                        };
                        self.http.page(mailbox, &what, &make).await?
                    }
                    Some(url) => {
                        let make = |g: &GraphClient| GraphHttp::custom(g, Method::GET, url, None);
                        self.http.page(mailbox, &what, &make).await?
                    }
                };
                for f in &page.items {
                    if let Some(id) = f.get("id").and_then(Value::as_str) {
                        let name = f.get("displayName").and_then(Value::as_str).unwrap_or(id);
                        let full = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
                        found.push((id.to_string(), full.clone()));
                        queue.push((Some(id.to_string()), full));
                    }
                }
                match page.next_link {
                    Some(next) => link = Some(self.http.follow(&next)?),
                    None => break,
                }
            }
        }
        Ok(found)
    }

    async fn sync_delta(
        &self,
        mailbox: &str,
        part: &Part,
        since: Option<Checkpoint>,
        sink: &mut dyn ChangeSink,
        throttle: &ThrottleTally,
    ) -> Result<(), Error> {
        let page_size = self.account.page_size;
        let now = Utc::now();
        let day = |d: u32| Days::days(i64::from(d));
        let no_roll = |_: &DeltaState| false;
        match part {
            Part::DefaultContacts | Part::ContactFolder(_) => {
                let folder = match part {
                    Part::ContactFolder(f) => Some(f.clone()),
                    // Documented delta is per folder; `/contacts/delta` (undocumented, but
                    // served) only while the default folder's id is unknown (it is empty).
                    _ => self.default_contacts_folder(mailbox, throttle).await?,
                };
                let what = format!("contacts of {mailbox}");
                let initial = move |g: &GraphClient| {
                    match &folder {
                        None => g.user(mailbox).contacts().delta(),
                        Some(f) => g.user(mailbox).contact_folder(f).contacts().delta(),
                    }
                    .select(&[CONTACT_SELECT])
                };
                let job = DeltaJob {
                    mailbox,
                    what: &what,
                    page_size,
                    initial: &initial,
                    window_start: None,
                    stale: &no_roll,
                    map: &map::contact,
                    throttle,
                };
                delta::run(&self.http, job, since, sink).await
            }
            Part::Calendar => {
                // Whole days, so that restarts on the same day ask for the same window.
                let today = now.duration_trunc(Days::days(1)).unwrap_or(now);
                let start = today - day(self.account.window.back_days);
                let end = today + day(self.account.window.ahead_days + 1);
                let what = format!("calendar of {mailbox}");
                let (s, e) =
                    (start.format("%Y-%m-%dT%H:%M:%SZ").to_string(), end.format("%Y-%m-%dT%H:%M:%SZ").to_string());
                let initial = move |g: &GraphClient| {
                    g.user(mailbox)
                        .calendar_views()
                        .delta()
                        .append_query_pair("startDateTime", s.as_str())
                        .append_query_pair("endDateTime", e.as_str())
                };
                // The window is fixed inside a delta token: roll it once it lags more than a day.
                let stale = move |st: &DeltaState| st.window_start.is_none_or(|w| w < start - Days::days(1));
                let job = DeltaJob {
                    mailbox,
                    what: &what,
                    page_size,
                    initial: &initial,
                    window_start: Some(start),
                    stale: &stale,
                    map: &map::event,
                    throttle,
                };
                delta::run(&self.http, job, since, sink).await
            }
            Part::Mail(direction) => {
                let direction = *direction;
                let folder = match direction {
                    MailDirection::Received => "inbox",
                    MailDirection::Sent => "sentitems",
                };
                let today = now.duration_trunc(Days::days(1)).unwrap_or(now);
                let since_date = today - day(self.account.mail_lookback_days);
                let filter = format!("receivedDateTime ge {}", since_date.format("%Y-%m-%dT%H:%M:%SZ"));
                let what = format!("{folder} of {mailbox}");
                let initial = move |g: &GraphClient| {
                    g.user(mailbox)
                        .mail_folder(folder)
                        .messages()
                        .delta()
                        .select(&[MESSAGE_SELECT])
                        .filter(&[filter.as_str()])
                };
                // Messages age out of the lookback: a fresh snapshot weekly sweeps them.
                let stale = move |st: &DeltaState| st.window_start.is_none_or(|w| w < since_date - Days::days(7));
                let map = move |v: &Value| map::message(v, direction);
                let job = DeltaJob {
                    mailbox,
                    what: &what,
                    page_size,
                    initial: &initial,
                    window_start: Some(since_date),
                    stale: &stale,
                    map: &map,
                    throttle,
                };
                delta::run(&self.http, job, since, sink).await
            }
            Part::Drive => {
                let what = format!("OneDrive of {mailbox}");
                let url = self.drive_delta_url(mailbox)?;
                let initial = move |g: &GraphClient| GraphHttp::custom(g, Method::GET, &url, None);
                let job = DeltaJob {
                    mailbox,
                    what: &what,
                    page_size,
                    initial: &initial,
                    window_start: None,
                    stale: &no_roll,
                    map: &map::drive_item,
                    throttle,
                };
                delta::run(&self.http, job, since, sink).await
            }
            Part::Settings => self.sync_settings(mailbox, sink, throttle).await,
        }
    }

    fn drive_delta_url(&self, mailbox: &str) -> Result<Url, Error> {
        let mut url = Url::parse(self.account.graph_base.trim_end_matches('/'))
            .map_err(|e| Error::local(format!("invalid Graph base URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| Error::local("the Graph base URL cannot have a path"))?
            .extend(["users", mailbox, "drive", "root", "delta"]);
        url.query_pairs_mut().append_pair("$select", DRIVE_SELECT);
        Ok(url)
    }

    /// Out-of-office: one small document, listed whole every sync.
    async fn sync_settings(
        &self,
        mailbox: &str,
        sink: &mut dyn ChangeSink,
        throttle: &ThrottleTally,
    ) -> Result<(), Error> {
        let what = format!("automatic replies of {mailbox}");
        let make = |g: &GraphClient| {
            g.user(mailbox)
                .mailbox_settings()
                .get_automatic_replies_setting()
                .header(HeaderName::from_static("prefer"), prefer_utc())
        };
        let body = self.http.send_counting(mailbox, &what, &make, Some(throttle)).await?;
        let mut changes = ChangeSet {
            snapshot: Some(Snapshot::WHOLE),
            checkpoint: Some(Checkpoint::new(json!({"listed_at": Utc::now()}).to_string())),
            ..Default::default()
        };
        match map::out_of_office(&body) {
            Item::Upsert(r) => changes.upserts.push(r),
            Item::Reject { id, reason } => changes.rejected.push(Rejected { id, reason }),
            Item::Delete(_) | Item::Skip => {}
        }
        sink.apply(changes).await
    }
}

fn bad_collection(collection: &Collection) -> Error {
    Error::new(ErrorKind::NotFound, format!("{} is not a Graph collection id", collection.id))
}

#[async_trait]
impl Connector for GraphConnector {
    fn name(&self) -> &'static str {
        "graph"
    }

    /// Every mailbox must answer; the first failure is returned ([`Connector::check_parts`] has each).
    async fn check(&self) -> Result<(), Error> {
        self.check_parts().await.into_iter().find_map(|(_, r)| r.err()).map_or(Ok(()), Err)
    }

    /// The credentials first (a refused token fails every mailbox alike: one part ""), then
    /// each mailbox on its own: a mailbox fenced off by policy does not hide the others.
    async fn check_parts(&self) -> Vec<(String, Result<(), Error>)> {
        if let Err(e) = self.tokens.token().await {
            return vec![(String::new(), Err(e))];
        }
        let mut parts = Vec::with_capacity(self.account.mailboxes.len());
        for mailbox in &self.account.mailboxes {
            let what = format!("automatic replies of {mailbox}");
            let make = |g: &GraphClient| g.user(mailbox).mailbox_settings().get_automatic_replies_setting();
            let result = self.http.send(mailbox, &what, &make).await.map(|_| ());
            parts.push((mailbox.clone(), result));
        }
        parts
    }

    async fn collections(&self) -> Result<Vec<Collection>, Error> {
        let mut out = Vec::new();
        for m in &self.account.mailboxes {
            out.push(Self::collection(m, "contacts", "Contacts".into(), CollectionKind::AddressBook));
            match self.contact_folders(m).await {
                Ok(folders) => {
                    for (id, name) in folders {
                        out.push(Self::collection(
                            m,
                            &format!("contactFolders/{id}"),
                            name,
                            CollectionKind::AddressBook,
                        ));
                    }
                }
                // A fenced mailbox must not hide the others: its syncs will report the 403.
                Err(e) if matches!(e.kind, ErrorKind::Forbidden | ErrorKind::NotFound) => {
                    tracing::warn!(mailbox = %m, error = %e, "cannot list contact folders");
                }
                Err(e) => return Err(e),
            }
            out.push(Self::collection(m, "calendarView", "Calendar".into(), CollectionKind::Calendar));
            out.push(Self::collection(m, "inbox", "Inbox".into(), CollectionKind::MailFolder));
            out.push(Self::collection(m, "sentitems", "Sent Items".into(), CollectionKind::MailFolder));
            out.push(Self::collection(m, "drive", "OneDrive".into(), CollectionKind::Drive));
            out.push(Self::collection(
                m,
                "automaticRepliesSetting",
                "Automatic replies".into(),
                CollectionKind::Settings,
            ));
        }
        Ok(out)
    }

    async fn sync(&self, request: SyncRequest<'_>, sink: &mut dyn ChangeSink) -> Result<(), Error> {
        let (mailbox, part) = self.split(request.collection)?;
        let throttle = ThrottleTally::default();
        let result = self.sync_delta(mailbox, &part, request.since, sink, &throttle).await;
        sink.throttled(throttle.get());
        result
    }

    async fn write_handling_code(
        &self,
        collection: &Collection,
        contact: &Contact,
        category: &str,
    ) -> Result<Contact, Error> {
        self.change_category(collection, contact, category, true).await
    }

    async fn remove_handling_code(
        &self,
        collection: &Collection,
        contact: &Contact,
        category: &str,
    ) -> Result<Contact, Error> {
        self.change_category(collection, contact, category, false).await
    }
}

impl GraphConnector {
    /// Adds (`add`) or removes `category` on the contact: reads its categories, PATCHes the list if
    /// it changes, returns the contact as Graph then has it.
    async fn change_category(
        &self,
        collection: &Collection,
        contact: &Contact,
        category: &str,
        add: bool,
    ) -> Result<Contact, Error> {
        let (mailbox, part) = self.split(collection)?;
        if !matches!(part, Part::DefaultContacts | Part::ContactFolder(_)) {
            return Err(Error::new(ErrorKind::Unsupported, format!("{} holds no contacts", collection.id)));
        }
        let id = contact.id.as_str();
        let what = format!("contact {id} of {mailbox}");
        // Read the current categories first: PATCH replaces the list, and Outlook may have changed it.
        let folder = match &part {
            Part::ContactFolder(f) => Some(f.as_str()),
            _ => None,
        };
        let get = |g: &GraphClient| {
            match folder {
                Some(f) => g.user(mailbox).contact_folder(f).contact(id).get_contacts(),
                None => g.user(mailbox).contact(id).get_contacts(),
            }
            .select(&["id,categories"])
        };
        let current = self.http.send(mailbox, &what, &get).await?;
        let mut categories: Vec<String> = current
            .get("categories")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        if categories.iter().any(|c| c.eq_ignore_ascii_case(category)) == add {
            // Already as wanted: nothing to write; return the contact as Graph has it.
            let full = |g: &GraphClient| match folder {
                Some(f) => g.user(mailbox).contact_folder(f).contact(id).get_contacts().select(&[CONTACT_SELECT]),
                None => g.user(mailbox).contact(id).get_contacts().select(&[CONTACT_SELECT]),
            };
            let current = self.http.send(mailbox, &what, &full).await?;
            return Ok(map::contact_record(contact.id.clone(), &current));
        }
        if add {
            categories.push(category.to_string());
        } else {
            categories.retain(|c| !c.eq_ignore_ascii_case(category));
        }
        let body = json!({ "categories": categories });
        let patch = |g: &GraphClient| match folder {
            Some(f) => g.user(mailbox).contact_folder(f).contact(id).update_contacts(&body),
            None => g.user(mailbox).contact(id).update_contacts(&body),
        };
        let updated = self.http.send(mailbox, &what, &patch).await?;
        if updated.get("id").is_none() {
            return Err(Error::invalid_data(format!("{what}: PATCH returned no contact")));
        }
        Ok(map::contact_record(contact.id.clone(), &updated))
    }
}
