//! A local fake of Microsoft Graph (and of the Microsoft identity platform's token and
//! device-code endpoints), speaking Graph's documented wire format: `@odata.nextLink`
//! paging honouring `Prefer: odata.maxpagesize` / `$top` and `$select`, `@odata.deltaLink`,
//! `@removed` entries, 429 with Retry-After (seconds or HTTP-date), 410 `syncStateNotFound`
//! for expired delta tokens and 403 for a fenced mailbox. It counts what it serves.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How a throttled response states its Retry-After.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RetryForm {
    Seconds(u64),
    /// An HTTP-date this many whole seconds after the next full second.
    HttpDate(u64),
}

/// Which data requests get a 429.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThrottleMode {
    Off,
    /// The next `n` data requests.
    Next(u32),
    /// Every data request until turned off.
    Always,
    /// Each data request with this probability (seeded, reproducible).
    Random(f64),
}

#[derive(Default)]
struct Store {
    epoch: u64,
    items: BTreeMap<String, (u64, Value)>,
    removed: Vec<(u64, String)>,
}

struct Cursor {
    store: String,
    epoch: u64,
    /// (id, removed) in listing order, fixed when the round started; shared by its pages.
    ids: Arc<Vec<(String, bool)>>,
    offset: usize,
    upto: u64,
    query: Query,
}

#[derive(Clone, Default)]
struct Query {
    select: Option<Vec<String>>,
    received_ge: Option<DateTime<Utc>>,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    top: Option<usize>,
    drive: bool,
}

struct DeltaToken {
    store: String,
    epoch: u64,
    seq: u64,
    query: Query,
}

#[derive(Default)]
struct Inner {
    seq: u64,
    stores: HashMap<String, Store>,
    folders: HashMap<String, Vec<Value>>,
    oof: HashMap<String, Value>,
    fenced: HashSet<String>,
    cursors: HashMap<String, Cursor>,
    deltas: HashMap<String, DeltaToken>,
    next_token: u64,
    throttle: Option<(ThrottleMode, RetryForm)>,
    rng: u64,
    /// Path+query of a throttled request → the earliest time a retry is allowed.
    retry_not_before: HashMap<String, SystemTime>,
    pub stats: Stats,
    in_flight: HashMap<String, usize>,
    latency: Duration,
    // identity
    client_secret: String,
    token_lifetime: u64,
    refresh_tokens: HashSet<String>,
    device_pending: u32,
    host: String,
    issued: Vec<String>,
    revoked: HashSet<String>,
    /// For certificate credentials: the public key (PEM) and the expected `x5t` header.
    certificate: Option<(Vec<u8>, String)>,
    /// Change-notification subscriptions, by id.
    subscriptions: BTreeMap<String, FakeSubscription>,
}

/// A subscription as the fake holds it.
#[derive(Debug, Clone)]
pub struct FakeSubscription {
    pub id: String,
    pub resource: String,
    pub notification_url: String,
    pub lifecycle_url: Option<String>,
    pub client_state: Option<String>,
    pub expires: DateTime<Utc>,
}

/// How [`FakeGraph::notify`] sends a change notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Once, as Graph does on a good day.
    Once,
    /// The same notification twice (Graph delivers at least once).
    Duplicate,
    /// With a `clientState` that is not the subscription's (a forger's).
    WrongClientState,
}

/// What the fake saw.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Graph requests (identity requests not included).
    pub requests: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub throttled: u64,
    /// Retries that came before the Retry-After allowed.
    pub early_retries: u64,
    /// Retries that came at or after it.
    pub honoured_retries: u64,
    pub max_in_flight: HashMap<String, usize>,
    pub token_requests: u64,
    pub device_polls: u64,
    pub unauthorized: u64,
    /// Client assertions that verified (signature, audience, issuer, subject, x5t).
    pub assertions_verified: u64,
    /// (path, body) of every PATCH.
    pub patches: Vec<(String, Value)>,
    /// Requests to the default folder through the documented `contactFolders/{id}/contacts/delta`.
    pub root_folder_deltas: u64,
    /// Store → the `$select` of the last initial delta request.
    pub selects: BTreeMap<String, String>,
    /// Mailbox (lower case) → Graph requests for it, fenced ones included.
    pub by_mailbox: BTreeMap<String, u64>,
    /// (mailbox, term) of every drive search, the term as Graph read it.
    pub searches: Vec<(String, String)>,
}

/// A running fake Graph on 127.0.0.1; stops when dropped.
pub struct FakeGraph {
    pub base: String,
    pub addr: std::net::SocketAddr,
    inner: Arc<Mutex<Inner>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub const TENANT: &str = "contoso";
/// The id of every mailbox's default contacts folder (the `parentFolderId` of its contacts).
pub const ROOT_FOLDER: &str = "AAMkContactsRoot";
pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_SECRET: &str = "s3cr3t-client-value";

impl FakeGraph {
    pub async fn start() -> FakeGraph {
        let inner = Arc::new(Mutex::new(Inner {
            client_secret: CLIENT_SECRET.into(),
            token_lifetime: 3600,
            rng: 0x2545_F491_4F6C_DD1D,
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(handle).with_state(inner.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        inner.lock().unwrap().host = addr.to_string();
        FakeGraph { base: format!("http://{addr}/v1.0"), addr, inner, shutdown: Some(tx) }
    }

    /// The identity platform authority of this fake (`{authority}/{tenant}/oauth2/v2.0/...`).
    pub fn authority(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap())
    }

    pub fn stats(&self) -> Stats {
        self.with(|i| i.stats.clone())
    }

    pub fn reset_stats(&self) {
        self.with(|i| i.stats = Stats::default());
    }

    pub fn set_latency(&self, latency: Duration) {
        self.with(|i| i.latency = latency);
    }

    pub fn set_token_lifetime(&self, secs: u64) {
        self.with(|i| i.token_lifetime = secs);
    }

    /// Device-code polls that answer `authorization_pending` before the sign-in completes.
    pub fn set_device_pending(&self, polls: u32) {
        self.with(|i| i.device_pending = polls);
    }

    pub fn throttle(&self, mode: ThrottleMode, form: RetryForm) {
        self.with(|i| i.throttle = Some((mode, form)));
    }

    pub fn fence(&self, mailbox: &str) {
        self.with(|i| i.fenced.insert(mailbox.to_lowercase()));
    }

    /// Invalidates every delta and skip token issued for a store: they now get 410.
    pub fn expire_tokens(&self, store: &str) {
        self.with(|i| i.stores.entry(store.to_string()).or_default().epoch += 1);
    }

    pub fn add_folder(&self, mailbox: &str, id: &str, name: &str) {
        self.add_child_folder(mailbox, ROOT_FOLDER, id, name);
    }

    pub fn add_child_folder(&self, mailbox: &str, parent: &str, id: &str, name: &str) {
        self.with(|i| {
            i.folders.entry(mailbox.to_lowercase()).or_default().push(json!({
                "id": id, "displayName": name, "parentFolderId": parent
            }))
        });
    }

    /// Adds or replaces an item in a store (`{mailbox}/contacts`, `{mailbox}/folder/{id}`,
    /// `{mailbox}/events`, `{mailbox}/inbox`, `{mailbox}/sentitems`, `{mailbox}/drive`).
    pub fn put(&self, store: &str, item: Value) {
        self.with(|i| {
            i.seq += 1;
            let seq = i.seq;
            let id = item["id"].as_str().expect("item id").to_string();
            let s = i.stores.entry(store.to_string()).or_default();
            s.removed.retain(|(_, r)| *r != id);
            s.items.insert(id, (seq, item));
        })
    }

    pub fn put_many(&self, store: &str, items: impl IntoIterator<Item = Value>) {
        self.with(|i| {
            for item in items {
                i.seq += 1;
                let seq = i.seq;
                let id = item["id"].as_str().expect("item id").to_string();
                i.stores.entry(store.to_string()).or_default().items.insert(id, (seq, item));
            }
        })
    }

    pub fn remove(&self, store: &str, id: &str) {
        self.with(|i| {
            i.seq += 1;
            let seq = i.seq;
            let s = i.stores.entry(store.to_string()).or_default();
            if s.items.remove(id).is_some() {
                s.removed.push((seq, id.to_string()));
            }
        })
    }

    pub fn item(&self, store: &str, id: &str) -> Option<Value> {
        self.with(|i| i.stores.get(store).and_then(|s| s.items.get(id)).map(|(_, v)| v.clone()))
    }

    pub fn set_oof(&self, mailbox: &str, setting: Value) {
        self.with(|i| i.oof.insert(mailbox.to_lowercase(), setting));
    }
}

// ---- documented example shapes -------------------------------------------------------------

/// A contact shaped like the example of "Get contact" in the Graph docs.
pub fn contact(id: &str, name: &str, phone: &str, email: &str, categories: &[&str]) -> Value {
    let (given, sur) = name.split_once(' ').unwrap_or((name, ""));
    json!({
        "@odata.etag": format!("W/\"EQAAABYAAAAK{id}\""),
        "id": id,
        "createdDateTime": "2024-01-10T09:00:00Z",
        "lastModifiedDateTime": "2024-01-10T09:00:00Z",
        "changeKey": format!("EQAAABYAAAAK{id}"),
        "categories": categories,
        "parentFolderId": "AAMkContactsRoot",
        "birthday": null,
        "fileAs": "",
        "displayName": name,
        "givenName": given,
        "initials": null,
        "middleName": null,
        "nickName": null,
        "surname": sur,
        "title": null,
        "jobTitle": "Sales Manager",
        "companyName": "Contoso",
        "department": null,
        "officeLocation": null,
        "profession": null,
        "businessHomePage": null,
        "assistantName": null,
        "manager": null,
        "homePhones": [],
        "mobilePhone": null,
        "businessPhones": [phone],
        "spouseName": null,
        "personalNotes": "",
        "children": [],
        "emailAddresses": [{ "name": name, "address": email }],
        "homeAddress": {},
        "businessAddress": {},
        "otherAddress": {}
    })
}

fn graph_time(t: DateTime<Utc>) -> String {
    format!("{}.0000000", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// An event shaped like the calendarView delta example.
pub fn event(id: &str, subject: &str, start: DateTime<Utc>, minutes: i64, attendees: &[&str]) -> Value {
    let end = start + chrono::Duration::minutes(minutes);
    json!({
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": format!("W/\"{id}\""),
        "id": id,
        "iCalUId": format!("040000008200E00074C5B7101A82E008{id}"),
        "changeKey": format!("ck-{id}"),
        "subject": subject,
        "bodyPreview": "",
        "isAllDay": false,
        "showAs": "busy",
        "type": "singleInstance",
        "webLink": format!("https://outlook.office365.com/owa/?itemid={id}&exvsurl=1&path=/calendar/item"),
        "start": { "dateTime": graph_time(start), "timeZone": "UTC" },
        "end": { "dateTime": graph_time(end), "timeZone": "UTC" },
        "location": { "displayName": "Conf Room 1", "locationType": "default" },
        "attendees": attendees.iter().map(|a| json!({
            "type": "required",
            "status": { "response": "none", "time": "0001-01-01T00:00:00Z" },
            "emailAddress": { "name": a, "address": a }
        })).collect::<Vec<_>>(),
        "organizer": { "emailAddress": { "name": "Megan Bowen", "address": "meganb@contoso.com" } }
    })
}

/// A message shaped like the message delta example (metadata only).
pub fn message(id: &str, subject: &str, received: DateTime<Utc>, from: &str, to: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.message",
        "@odata.etag": format!("W/\"{id}\""),
        "id": id,
        "createdDateTime": received.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "lastModifiedDateTime": received.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "changeKey": format!("ck-{id}"),
        "receivedDateTime": received.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "sentDateTime": received.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "hasAttachments": false,
        "subject": subject,
        "bodyPreview": format!("Hi, about {subject}: see the attached plan."),
        "importance": "normal",
        "isRead": false,
        "webLink": format!("https://outlook.office365.com/owa/?ItemID={id}&exvsurl=1&viewmodel=ReadMessageItem"),
        "body": { "contentType": "html", "content": "<html><body>not to be synced</body></html>" },
        "sender": { "emailAddress": { "name": from, "address": from } },
        "from": { "emailAddress": { "name": from, "address": from } },
        "toRecipients": [{ "emailAddress": { "name": to, "address": to } }],
        "ccRecipients": [],
        "bccRecipients": []
    })
}

/// A OneDrive file shaped like the driveItem delta example.
pub fn drive_file(id: &str, name: &str, modified_by: &str, shared_by: Option<&str>) -> Value {
    let mut v = json!({
        "id": id,
        "name": name,
        "webUrl": format!("https://contoso-my.sharepoint.com/personal/me/Documents/{name}"),
        "lastModifiedDateTime": "2026-11-20T10:00:00Z",
        "file": { "mimeType": "application/vnd.openxmlformats-officedocument.wordprocessingml.document" },
        "parentReference": { "driveId": "b!drive", "id": "root" },
        "createdBy": { "user": { "email": "meganb@contoso.com", "displayName": "Megan Bowen" } },
        "lastModifiedBy": { "user": { "email": modified_by, "displayName": modified_by } }
    });
    if let Some(s) = shared_by {
        v["shared"] = json!({ "scope": "users", "sharedBy": { "user": { "email": s, "displayName": s } } });
    }
    v
}

// ---- the server --------------------------------------------------------------------------

type Shared = Arc<Mutex<Inner>>;

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": code, "message": message, "innerError": {
        "date": Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
        "request-id": "b52d3f6f-4a5c-4c84-9f37-000000000000",
        "client-request-id": "b52d3f6f-4a5c-4c84-9f37-000000000000" } } });
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

fn json_response(v: Value) -> Response {
    (StatusCode::OK, [("content-type", "application/json; odata.metadata=minimal")], v.to_string()).into_response()
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect()
}

fn decode_segment(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

async fn handle(State(shared): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    if path == "/_stats" {
        // For benchmarks running the fake in another process; `?reset` clears the counters.
        let mut i = shared.lock().unwrap();
        let s = &i.stats;
        let body = json!({ "requests": s.requests, "throttled": s.throttled, "token_requests": s.token_requests,
            "early_retries": s.early_retries, "max_in_flight": s.max_in_flight });
        if uri.query() == Some("reset") {
            i.stats = Stats::default();
        }
        return json_response(body);
    }
    if path.contains("/oauth2/v2.0/") {
        return identity(&shared, &path, &body);
    }
    if path == "/v1.0/subscriptions" || path.starts_with("/v1.0/subscriptions/") {
        return subscriptions(&shared, &method, &path, &headers, &body).await;
    }
    let Some(rest) = path.strip_prefix("/v1.0/") else {
        return error(StatusCode::NOT_FOUND, "NotFound", "no such API");
    };
    let segs: Vec<String> = rest.split('/').map(decode_segment).collect();
    let mailbox = match segs.as_slice() {
        [users, m, ..] if users == "users" => m.to_lowercase(),
        _ => return error(StatusCode::BAD_REQUEST, "BadRequest", "only /users/{id}/... is served"),
    };
    // Bearer token: present and JWT-shaped.
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let jwt_shaped = auth
        .strip_prefix("Bearer ")
        .is_some_and(|t| t.split('.').count() == 3 && t.split('.').take(2).all(|p| !p.is_empty()));
    let latency = {
        let mut i = shared.lock().unwrap();
        let revoked = auth.strip_prefix("Bearer ").is_some_and(|t| i.revoked.contains(t));
        if !jwt_shaped || revoked {
            i.stats.unauthorized += 1;
            drop(i);
            return error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "Access token is empty.");
        }
        i.stats.requests += 1;
        let kind = segs
            .get(2..)
            .map(|s| s.iter().filter(|x| !x.starts_with("AAMk")).cloned().collect::<Vec<_>>().join("/"))
            .unwrap_or_default();
        *i.stats.by_kind.entry(kind).or_default() += 1;
        *i.stats.by_mailbox.entry(mailbox.clone()).or_default() += 1;
        // Retry bookkeeping: is this a retry of a throttled request, and was it early?
        let key = format!("{} {}", method, uri);
        if let Some(not_before) = i.retry_not_before.remove(&key) {
            if SystemTime::now() + Duration::from_millis(5) < not_before {
                i.stats.early_retries += 1;
            } else {
                i.stats.honoured_retries += 1;
            }
        }
        if i.fenced.contains(&mailbox) {
            drop(i);
            return error(
                StatusCode::FORBIDDEN,
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            );
        }
        if let Some(resp) = maybe_throttle(&mut i, &key) {
            return resp;
        }
        let n = i.in_flight.entry(mailbox.clone()).or_default();
        *n += 1;
        let now_in = *n;
        let max = i.stats.max_in_flight.entry(mailbox.clone()).or_default();
        *max = (*max).max(now_in);
        i.latency
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let resp = {
        let mut i = shared.lock().unwrap();
        let resp = route(&mut i, &method, &uri, &headers, &segs, &mailbox, &body);
        if let Some(n) = i.in_flight.get_mut(&mailbox) {
            *n -= 1;
        }
        resp
    };
    resp
}

fn maybe_throttle(i: &mut Inner, key: &str) -> Option<Response> {
    let (mode, form) = i.throttle?;
    let hit = match mode {
        ThrottleMode::Off => false,
        ThrottleMode::Always => true,
        ThrottleMode::Next(n) => {
            if n > 0 {
                i.throttle = Some((ThrottleMode::Next(n - 1), form));
            }
            n > 0
        }
        ThrottleMode::Random(p) => {
            // xorshift64*
            i.rng ^= i.rng >> 12;
            i.rng ^= i.rng << 25;
            i.rng ^= i.rng >> 27;
            let x = i.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
            (x >> 11) as f64 / (1u64 << 53) as f64 <= p
        }
    };
    if !hit {
        return None;
    }
    i.stats.throttled += 1;
    let now = SystemTime::now();
    let (header, not_before) = match form {
        RetryForm::Seconds(s) => (s.to_string(), now + Duration::from_secs(s)),
        RetryForm::HttpDate(s) => {
            let whole = now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + 1 + s;
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(whole);
            (httpdate::fmt_http_date(at), at)
        }
    };
    i.retry_not_before.insert(key.to_string(), not_before);
    let mut resp = error(
        StatusCode::TOO_MANY_REQUESTS,
        "ApplicationThrottled",
        "Application is over its MailboxConcurrency limit.",
    );
    resp.headers_mut().insert("retry-after", header.parse().unwrap());
    Some(resp)
}

fn is_delta(seg: &str) -> bool {
    seg == "delta" || seg == "delta()"
}

fn route(
    i: &mut Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    segs: &[String],
    mailbox: &str,
    body: &[u8],
) -> Response {
    let parts: Vec<&str> = segs[2..].iter().map(String::as_str).collect();
    let m = mailbox;
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["contactFolders"]) => {
            let folders: Vec<Value> = i
                .folders
                .get(m)
                .into_iter()
                .flatten()
                .filter(|f| f["parentFolderId"] == ROOT_FOLDER)
                .cloned()
                .collect();
            json_response(
                json!({ "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#users('{m}')/contactFolders"), "value": folders }),
            )
        }
        ("GET", ["contactFolders", parent, "childFolders"]) => {
            let folders: Vec<Value> =
                i.folders.get(m).into_iter().flatten().filter(|f| f["parentFolderId"] == *parent).cloned().collect();
            json_response(json!({ "value": folders }))
        }
        ("GET", ["contacts", d]) if is_delta(d) => delta(i, uri, headers, &format!("{m}/contacts"), false),
        ("GET", ["contactFolders", ROOT_FOLDER, "contacts", d]) if is_delta(d) => {
            i.stats.root_folder_deltas += 1;
            delta(i, uri, headers, &format!("{m}/contacts"), false)
        }
        ("GET", ["contacts"]) => {
            // List contacts of the default folder: `$top` and `$select` honoured, no paging needed here.
            let top =
                query_pairs(uri).into_iter().find(|(k, _)| k == "$top").and_then(|(_, v)| v.parse().ok()).unwrap_or(10);
            let q = Query { select: select_of(uri), ..Default::default() };
            let value: Vec<Value> = i
                .stores
                .get(&format!("{m}/contacts"))
                .map(|s| s.items.values().take(top).map(|(_, v)| select(v, &q)).collect())
                .unwrap_or_default();
            json_response(json!({ "value": value }))
        }
        ("GET", ["contactFolders", f, "contacts", d]) if is_delta(d) => {
            if !i.folders.get(m).is_some_and(|fs| fs.iter().any(|x| x["id"] == *f)) {
                return error(
                    StatusCode::NOT_FOUND,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                );
            }
            delta(i, uri, headers, &format!("{m}/folder/{f}"), false)
        }
        ("GET", ["calendarView", d]) if is_delta(d) => delta(i, uri, headers, &format!("{m}/events"), false),
        ("GET", ["mailFolders", folder, "messages", d]) if is_delta(d) => {
            let folder = folder.to_lowercase();
            if folder != "inbox" && folder != "sentitems" {
                return error(StatusCode::NOT_FOUND, "ErrorItemNotFound", "The specified folder was not found.");
            }
            delta(i, uri, headers, &format!("{m}/{folder}"), false)
        }
        ("GET", ["drive", "root", d]) if is_delta(d) => delta(i, uri, headers, &format!("{m}/drive"), true),
        ("GET", ["drive", "root", q]) if q.starts_with("search(") => drive_search(i, uri, m, q),
        ("GET", ["mailboxSettings", "automaticRepliesSetting"]) => {
            let mut v = i.oof.get(m).cloned().unwrap_or_else(|| {
                json!({
                "status": "disabled", "externalAudience": "all",
                "scheduledStartDateTime": { "dateTime": "2026-01-01T00:00:00.0000000", "timeZone": "UTC" },
                "scheduledEndDateTime": { "dateTime": "2026-01-02T00:00:00.0000000", "timeZone": "UTC" },
                "internalReplyMessage": "", "externalReplyMessage": "" })
            });
            v["@odata.context"] = json!(format!(
                "https://graph.microsoft.com/v1.0/$metadata#users('{m}')/mailboxSettings/automaticRepliesSetting"
            ));
            json_response(v)
        }
        ("GET", ["contacts", id]) | ("GET", ["contactFolders", _, "contacts", id]) => match find_contact(i, m, id) {
            Some((_, v)) => json_response(select(&v, &Query { select: select_of(uri), ..Default::default() })),
            None => {
                error(StatusCode::NOT_FOUND, "ErrorItemNotFound", "The specified object was not found in the store.")
            }
        },
        ("PATCH", ["contacts", id]) | ("PATCH", ["contactFolders", _, "contacts", id]) => {
            let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(body) else {
                return error(StatusCode::BAD_REQUEST, "RequestBodyRead", "Invalid JSON body.");
            };
            let Some((store, mut v)) = find_contact(i, m, id) else {
                return error(
                    StatusCode::NOT_FOUND,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                );
            };
            for (k, val) in patch.iter() {
                v[k] = val.clone();
            }
            i.seq += 1;
            let seq = i.seq;
            v["changeKey"] = json!(format!("ck-{seq}"));
            i.stats.patches.push((uri.path().to_string(), Value::Object(patch)));
            i.stores.get_mut(&store).unwrap().items.insert(id.to_string(), (seq, v.clone()));
            json_response(v)
        }
        _ => error(StatusCode::BAD_REQUEST, "BadRequest", &format!("unsupported: {method} {}", uri.path())),
    }
}

fn find_contact(i: &Inner, m: &str, id: &str) -> Option<(String, Value)> {
    i.stores
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{m}/contacts")) || k.starts_with(&format!("{m}/folder/")))
        .find_map(|(k, s)| s.items.get(id).map(|(_, v)| (k.clone(), v.clone())))
}

fn select_of(uri: &Uri) -> Option<Vec<String>> {
    query_pairs(uri)
        .into_iter()
        .find(|(k, _)| k == "$select")
        .map(|(_, v)| v.split(',').map(|s| s.trim().to_string()).collect())
}

fn select(v: &Value, q: &Query) -> Value {
    let Some(fields) = &q.select else { return v.clone() };
    let mut out = Map::new();
    for (k, val) in v.as_object().into_iter().flatten() {
        if k == "id" || k.starts_with("@odata") || fields.iter().any(|f| f == k) {
            out.insert(k.clone(), val.clone());
        }
    }
    Value::Object(out)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc()))
}

fn matches(v: &Value, q: &Query) -> bool {
    if let Some(ge) = q.received_ge {
        if v["receivedDateTime"].as_str().and_then(parse_time).is_none_or(|t| t < ge) {
            return false;
        }
    }
    if let Some((start, end)) = q.window {
        let s = v["start"]["dateTime"].as_str().and_then(parse_time);
        let e = v["end"]["dateTime"].as_str().and_then(parse_time);
        match (s, e) {
            (Some(s), Some(e)) if s < end && e > start => {}
            _ => return false,
        }
    }
    true
}

fn page_size(headers: &HeaderMap, q: &Query) -> usize {
    let prefer = headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    let asked = prefer
        .split(',')
        .filter_map(|p| p.trim().strip_prefix("odata.maxpagesize="))
        .find_map(|n| n.trim().parse::<usize>().ok())
        .or(q.top);
    asked.unwrap_or(10).clamp(1, 1000)
}

fn new_token(i: &mut Inner) -> String {
    i.next_token += 1;
    format!("R0usmcCM996atia_s{:08}", i.next_token)
}

fn gone() -> Response {
    error(StatusCode::GONE, "syncStateNotFound", "The sync state generation is not found. Please resynchronize.")
}

fn delta(i: &mut Inner, uri: &Uri, headers: &HeaderMap, store: &str, drive: bool) -> Response {
    let pairs = query_pairs(uri);
    let get = |k: &str| pairs.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    let path = format!("https://{}", uri.path()); // placeholder, replaced below
    let _ = path;
    let epoch = i.stores.entry(store.to_string()).or_default().epoch;
    let cursor_token = if let Some(skip) = get("$skiptoken") {
        match i.cursors.get(&skip) {
            Some(c) if c.epoch == epoch => skip,
            _ => return gone(),
        }
    } else {
        // A new round: initial (snapshot) or from a delta token.
        let (since, query) = match get("$deltatoken").or_else(|| get("token")) {
            Some(dt) => match i.deltas.get(&dt) {
                Some(d) if d.epoch == epoch && d.store == store => (Some(d.seq), d.query.clone()),
                _ => return gone(),
            },
            None => {
                let mut q = Query { select: select_of(uri), drive, ..Default::default() };
                i.stats.selects.insert(store.to_string(), get("$select").unwrap_or_default());
                q.top = get("$top").and_then(|t| t.parse().ok());
                if let Some(f) = get("$filter") {
                    let parts: Vec<&str> = f.split_whitespace().collect();
                    match parts.as_slice() {
                        ["receivedDateTime", "ge" | "gt", t] => q.received_ge = parse_time(t),
                        _ => {
                            return error(
                                StatusCode::BAD_REQUEST,
                                "ErrorInvalidUrlQueryFilter",
                                "The only supported filter is receivedDateTime ge/gt.",
                            )
                        }
                    }
                }
                if store.ends_with("/events") {
                    match (get("startDateTime").and_then(|t| parse_time(&t)), get("endDateTime").and_then(|t| parse_time(&t))) {
                        (Some(s), Some(e)) => q.window = Some((s, e)),
                        _ => return error(StatusCode::BAD_REQUEST, "ErrorInvalidParameter", "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime."),
                    }
                }
                (None, q)
            }
        };
        let upto = i.seq;
        let s = &i.stores[store];
        let ids: Vec<(String, bool)> = match since {
            None => s.items.iter().filter(|(_, (_, v))| matches(v, &query)).map(|(k, _)| (k.clone(), false)).collect(),
            Some(since) => {
                let mut changed: Vec<(u64, String, bool)> = s
                    .items
                    .iter()
                    .filter(|(_, (seq, v))| *seq > since && matches(v, &query))
                    .map(|(k, (seq, _))| (*seq, k.clone(), false))
                    .collect();
                changed
                    .extend(s.removed.iter().filter(|(seq, _)| *seq > since).map(|(seq, id)| (*seq, id.clone(), true)));
                changed.sort();
                changed.into_iter().map(|(_, id, r)| (id, r)).collect()
            }
        };
        let token = new_token(i);
        i.cursors.insert(
            token.clone(),
            Cursor { store: store.to_string(), epoch, ids: Arc::new(ids), offset: 0, upto, query },
        );
        token
    };
    let size = {
        let c = &i.cursors[&cursor_token];
        page_size(headers, &c.query)
    };
    // A skip token names one position: asking for it again serves the same page (like Graph).
    let c = &i.cursors[&cursor_token];
    let end = (c.offset + size).min(c.ids.len());
    let slice: Vec<(String, bool)> = c.ids[c.offset..end].to_vec();
    let finished = end >= c.ids.len();
    let (upto, query, ids) = (c.upto, c.query.clone(), c.ids.clone());
    let s = &i.stores[store];
    let mut value = Vec::with_capacity(slice.len());
    for (id, removed) in slice {
        if removed {
            if query.drive {
                value.push(json!({ "id": id, "deleted": { "state": "deleted" } }));
            } else {
                let kind = match store.rsplit('/').next() {
                    Some("events") => "event",
                    Some("inbox") | Some("sentitems") => "message",
                    _ => "contact",
                };
                let odata_type = format!("#microsoft.graph.{kind}");
                value.push(json!({ "@odata.type": odata_type, "id": id, "@removed": { "reason": "deleted" } }));
            }
        } else if let Some((_, v)) = s.items.get(&id) {
            value.push(select(v, &query));
        }
    }
    let base =
        format!("http://{}{}", headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost"), uri.path());
    let mut body = json!({ "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#Collection({store})"), "value": value });
    if finished {
        let dt = new_token(i);
        i.deltas.insert(dt.clone(), DeltaToken { store: store.to_string(), epoch, seq: upto, query });
        let key = if drive { "token" } else { "$deltatoken" };
        body["@odata.deltaLink"] = json!(format!("{base}?{key}={dt}"));
    } else {
        let next = new_token(i);
        i.cursors.insert(next.clone(), Cursor { store: store.to_string(), epoch, ids, offset: end, upto, query });
        body["@odata.nextLink"] = json!(format!("{base}?$skiptoken={next}"));
    }
    json_response(body)
}

// ---- identity platform endpoints ---------------------------------------------------------

fn identity(shared: &Shared, path: &str, body: &[u8]) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let mut i = shared.lock().unwrap();
    let oauth_error = |code: &str, desc: &str| {
        (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            json!({ "error": code, "error_description": desc }).to_string(),
        )
            .into_response()
    };
    if path.ends_with("/devicecode") {
        return json_response(json!({
            "device_code": "GMMhmHCXhWEzkobqIHGG_EnNYYsAkukHspeYUk9E8",
            "user_code": "FJKLSLDJX",
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": 900,
            "interval": 1,
            "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code FJKLSLDJX to authenticate."
        }));
    }
    if !path.ends_with("/token") {
        return oauth_error("invalid_request", "unknown endpoint");
    }
    i.stats.token_requests += 1;
    // As Entra answers for a tenant it does not know (tenants named `unknown…` here); a
    // tenant named `missing…` gets a 404 page that is no OAuth answer at all.
    let tenant = path.trim_start_matches('/').split('/').next().unwrap_or_default();
    if tenant.starts_with("unknown") {
        return oauth_error(
            "invalid_request",
            &format!(
                "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are \
                 signing into the correct cloud.\r\nTrace ID: 0e2c\r\nCorrelation ID: 5d1f\r\nTimestamp: 2026-11-30 10:00:00Z"
            ),
        );
    }
    if tenant.starts_with("missing") {
        return (StatusCode::NOT_FOUND, [("content-type", "text/html")], "<html><body>Not Found</body></html>")
            .into_response();
    }
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return oauth_error("unauthorized_client", "AADSTS700016: Application not found in the directory.");
    }
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    let refresh = match grant.as_str() {
        "client_credentials" if form.contains_key("client_assertion") => {
            let Some((public_pem, x5t)) = i.certificate.clone() else {
                return oauth_error("invalid_client", "AADSTS700027: no certificate registered for the application.");
            };
            if form.get("client_assertion_type").map(String::as_str)
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            {
                return oauth_error("invalid_request", "AADSTS50027: unsupported client_assertion_type.");
            }
            let assertion = &form["client_assertion"];
            let header = jsonwebtoken::decode_header(assertion);
            let key = jsonwebtoken::DecodingKey::from_rsa_pem(&public_pem).expect("test public key");
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.set_audience(&[format!("http://{}{}", i.host, path)]);
            validation.set_issuer(&[CLIENT_ID]);
            let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation);
            match (header, claims) {
                (Ok(h), Ok(c)) if h.x5t.as_deref() == Some(x5t.as_str()) && c.claims["sub"] == CLIENT_ID => {
                    i.stats.assertions_verified += 1;
                }
                _ => {
                    return oauth_error("invalid_client", "AADSTS700027: Client assertion failed signature validation.")
                }
            }
            None
        }
        "client_credentials" => {
            if form.get("client_secret") != Some(&i.client_secret) {
                return oauth_error("invalid_client", "AADSTS7000215: Invalid client secret provided.");
            }
            None
        }
        "refresh_token" => {
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            if !i.refresh_tokens.remove(&rt) {
                return oauth_error("invalid_grant", "AADSTS70000: The refresh token has expired or is invalid.");
            }
            Some(())
        }
        "urn:ietf:params:oauth:grant-type:device_code" => {
            i.stats.device_polls += 1;
            if i.device_pending > 0 {
                i.device_pending -= 1;
                return oauth_error(
                    "authorization_pending",
                    "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending.",
                );
            }
            Some(())
        }
        _ => return oauth_error("unsupported_grant_type", "unsupported grant"),
    };
    i.next_token += 1;
    let n = i.next_token;
    let mut resp = json!({
        "token_type": "Bearer",
        "scope": form.get("scope").cloned().unwrap_or_default(),
        "expires_in": i.token_lifetime,
        "ext_expires_in": i.token_lifetime,
        "access_token": format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJuIjoi{n}In0.c2ln")
    });
    i.issued.push(resp["access_token"].as_str().unwrap_or_default().to_string());
    if refresh.is_some() {
        let rt = format!("0.AR8A-refresh-{n}");
        i.refresh_tokens.insert(rt.clone());
        resp["refresh_token"] = json!(rt);
    }
    json_response(resp)
}

impl FakeGraph {
    /// Registers the application's certificate: its public key (PEM) and `x5t` header.
    pub fn register_certificate(&self, public_pem: &[u8], x5t: &str) {
        self.with(|i| i.certificate = Some((public_pem.to_vec(), x5t.to_string())));
    }

    /// Revokes every access token issued so far: Graph answers 401 to them.
    pub fn revoke_tokens(&self) {
        self.with(|i| {
            let issued = std::mem::take(&mut i.issued);
            i.revoked.extend(issued);
        });
    }

    /// Registers a refresh token the fake identity endpoint accepts (once: it rotates).
    pub fn issue_refresh_token(&self, token: &str) {
        self.with(|i| i.refresh_tokens.insert(token.to_string()));
    }
}

/// Outlook resources (contacts, events, messages): at most 10,080 minutes.
const MAX_SUBSCRIPTION_MINUTES: i64 = 10_080;

/// A root certificate (PEM) the fake also trusts when it calls the bridge back (the validation
/// handshake, notifications): for a bridge serving HTTPS with a test certificate.
static TRUSTED_ROOT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Trusts `pem` for the calls back to the bridge, from now on, in this process (the first one given).
pub fn trust_root(pem: &[u8]) {
    let _ = TRUSTED_ROOT.set(pem.to_vec());
}

fn http_client() -> reqwest::Client {
    let mut client = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if let Some(pem) = TRUSTED_ROOT.get() {
        client = client.add_root_certificate(reqwest::Certificate::from_pem(pem).expect("a PEM certificate"));
    }
    client.build().unwrap()
}

/// `POST/PATCH/DELETE /subscriptions[/{id}]` as Graph documents them: creation
/// validates the notification URL first (POST `?validationToken=`, wants the token
/// back as `text/plain` with 200 within 10 s), expiration at most 10,080 minutes away,
/// `clientState` at most 128 characters; unknown ids get 404.
async fn subscriptions(shared: &Shared, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !auth.starts_with("Bearer ") || auth.split('.').count() != 3 {
        return error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "Access token is empty.");
    }
    shared.lock().unwrap().stats.requests += 1;
    let id = path.strip_prefix("/v1.0/subscriptions/").map(decode_segment);
    let parse_expiry = |v: &Value| {
        v.get("expirationDateTime")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let too_far = |t: DateTime<Utc>| t > Utc::now() + chrono::Duration::minutes(MAX_SUBSCRIPTION_MINUTES);
    let view = |s: &FakeSubscription| {
        json!({ "id": s.id, "resource": s.resource, "changeType": "created,updated,deleted",
            "notificationUrl": s.notification_url, "lifecycleNotificationUrl": s.lifecycle_url,
            "expirationDateTime": s.expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "clientState": s.client_state })
    };
    match (method.as_str(), id) {
        ("POST", None) => {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return error(StatusCode::BAD_REQUEST, "BadRequest", "Invalid JSON body.");
            };
            let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            let (Some(resource), Some(url), Some(_), Some(expires)) =
                (s("resource"), s("notificationUrl"), s("changeType"), parse_expiry(&v))
            else {
                return error(StatusCode::BAD_REQUEST, "InvalidRequest", "A required property is missing.");
            };
            if too_far(expires) || expires < Utc::now() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    "Subscription expiration can only be 10080 minutes in the future.",
                );
            }
            if s("clientState").is_some_and(|c| c.len() > 128) {
                return error(StatusCode::BAD_REQUEST, "InvalidRequest", "clientState is too long.");
            }
            // Graph wants HTTPS; the fake also takes http:// to a loopback address (tests without TLS).
            let Ok(target) = url::Url::parse(&url) else {
                return error(StatusCode::BAD_REQUEST, "InvalidRequest", "Invalid notification url.");
            };
            let loopback = matches!(target.host_str(), Some("127.0.0.1") | Some("localhost") | Some("[::1]"));
            if target.scheme() != "https" && !(target.scheme() == "http" && loopback) {
                return error(StatusCode::BAD_REQUEST, "InvalidRequest", "NotificationUrl must be https.");
            }
            let parts: Vec<&str> = resource.split('/').collect();
            if !matches!(parts.as_slice(), ["users", _, "contacts" | "events" | "messages"]) {
                return error(StatusCode::BAD_REQUEST, "InvalidRequest", "Resource not supported.");
            }
            let token = format!(
                "Validation: Testing client application reachability for subscription Request-Id: {}",
                uuid_like(shared)
            );
            let mut validation = target.clone();
            validation.query_pairs_mut().append_pair("validationToken", &token);
            let answer = http_client().post(validation).header("content-type", "text/plain").send().await;
            let valid = match answer {
                Ok(r) => {
                    let text_plain = r
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|c| c.starts_with("text/plain"));
                    r.status() == StatusCode::OK && text_plain && r.text().await.ok().as_deref() == Some(&*token)
                }
                Err(_) => false,
            };
            if !valid {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
                );
            }
            let sub = FakeSubscription {
                id: uuid_like(shared),
                resource,
                notification_url: url,
                lifecycle_url: s("lifecycleNotificationUrl"),
                client_state: s("clientState"),
                expires,
            };
            let out = view(&sub);
            shared.lock().unwrap().subscriptions.insert(sub.id.clone(), sub);
            (StatusCode::CREATED, axum::Json(out)).into_response()
        }
        ("PATCH", Some(id)) => {
            let Some(expires) = serde_json::from_slice::<Value>(body).ok().as_ref().and_then(parse_expiry) else {
                return error(StatusCode::BAD_REQUEST, "InvalidRequest", "expirationDateTime is required.");
            };
            if too_far(expires) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    "Subscription expiration can only be 10080 minutes in the future.",
                );
            }
            let mut i = shared.lock().unwrap();
            match i.subscriptions.get_mut(&id) {
                Some(sub) => {
                    sub.expires = expires;
                    let out = view(sub);
                    json_response(out)
                }
                None => error(StatusCode::NOT_FOUND, "ResourceNotFound", "The object was not found."),
            }
        }
        ("DELETE", Some(id)) => match shared.lock().unwrap().subscriptions.remove(&id) {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => error(StatusCode::NOT_FOUND, "ResourceNotFound", "The object was not found."),
        },
        _ => error(StatusCode::BAD_REQUEST, "BadRequest", "unsupported subscription request"),
    }
}

fn uuid_like(shared: &Shared) -> String {
    let mut i = shared.lock().unwrap();
    i.rng ^= i.rng >> 12;
    i.rng ^= i.rng << 25;
    i.rng ^= i.rng >> 27;
    let x = i.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        x >> 32,
        x & 0xffff,
        (x >> 16) & 0xfff,
        (x >> 4) & 0xfff,
        x & 0xffff_ffff_ffff
    )
}

impl FakeGraph {
    /// The subscriptions the fake holds.
    pub fn subscriptions(&self) -> Vec<FakeSubscription> {
        self.with(|i| i.subscriptions.values().cloned().collect())
    }

    /// Drops a subscription without telling anyone (as Graph may), for lifecycle tests.
    pub fn forget_subscription(&self, id: &str) {
        self.with(|i| i.subscriptions.remove(id));
    }

    /// Sends a change notification for every subscription on `resource`
    /// (`users/{mailbox}/contacts`, …) about item `item`; returns the HTTP
    /// statuses the receiver answered.
    pub async fn notify(&self, resource: &str, item: &str, delivery: Delivery) -> Vec<u16> {
        let subs: Vec<FakeSubscription> = self.with(|i| {
            i.subscriptions.values().filter(|s| s.resource.eq_ignore_ascii_case(resource)).cloned().collect()
        });
        let mut statuses = Vec::new();
        for s in subs {
            let client_state = match delivery {
                Delivery::WrongClientState => Some("forged-client-state".to_string()),
                _ => s.client_state.clone(),
            };
            let body = json!({ "value": [{
                "subscriptionId": s.id,
                "subscriptionExpirationDateTime": s.expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "changeType": "updated",
                "resource": format!("{}/{item}", s.resource),
                "resourceData": { "@odata.type": "#Microsoft.Graph.Contact", "@odata.id": format!("{}/{item}", s.resource), "id": item },
                "clientState": client_state,
                "tenantId": "00000000-0000-0000-0000-0000000c0450",
            }]});
            let times = if delivery == Delivery::Duplicate { 2 } else { 1 };
            for _ in 0..times {
                let status = match http_client().post(&s.notification_url).json(&body).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                statuses.push(status);
            }
        }
        statuses
    }

    /// Sends a lifecycle notification (`reauthorizationRequired`, `subscriptionRemoved`,
    /// `missed`) for subscription `id` to its lifecycle URL; returns the status.
    pub async fn lifecycle(&self, id: &str, event: &str) -> u16 {
        // Graph has removed the subscription when it says so.
        let removed = event == "subscriptionRemoved";
        let Some(s) =
            self.with(|i| if removed { i.subscriptions.remove(id) } else { i.subscriptions.get(id).cloned() })
        else {
            return 0;
        };
        let Some(url) = s.lifecycle_url.clone() else { return 0 };
        let body = json!({ "value": [{
            "subscriptionId": s.id,
            "subscriptionExpirationDateTime": s.expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "lifecycleEvent": event,
            "clientState": s.client_state,
            "tenantId": "00000000-0000-0000-0000-0000000c0450",
        }]});
        match http_client().post(&url).json(&body).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }
}

/// `drive/root/search(q='…')`: the OData string literal parsed as Graph does (a lone
/// quote ends it: anything after is a syntax error); a file matches when its name (or
/// its fake `content`) contains the term, case-insensitively. Records the terms searched.
fn drive_search(i: &mut Inner, uri: &Uri, m: &str, _seg: &str) -> Response {
    // The segment as sent, percent-decoded as a path segment (`&` and `+` are literal there).
    let raw = uri.path().rsplit('/').next().unwrap_or_default();
    let bytes = raw.as_bytes();
    let mut decoded = Vec::new();
    let mut k = 0;
    while k < bytes.len() {
        match (bytes[k], bytes.get(k + 1..k + 3)) {
            (b'%', Some(h)) if std::str::from_utf8(h).ok().and_then(|h| u8::from_str_radix(h, 16).ok()).is_some() => {
                decoded.push(u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap());
                k += 3;
            }
            (b, _) => {
                decoded.push(b);
                k += 1;
            }
        }
    }
    let seg = String::from_utf8_lossy(&decoded).into_owned();
    let seg = seg.as_str();
    let Some(inner) = seg.strip_prefix("search(q='").and_then(|r| r.strip_suffix("')")) else {
        return error(StatusCode::BAD_REQUEST, "BadRequest", &format!("Syntax error in {seg}."));
    };
    // Inside the literal every quote must be doubled.
    let mut term = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return error(StatusCode::BAD_REQUEST, "BadRequest", "Syntax error: unterminated string literal.");
        }
        term.push(c);
    }
    i.stats.searches.push((m.to_string(), term.clone()));
    let needle = term.to_lowercase();
    let q = Query { select: select_of(uri), ..Default::default() };
    let top = query_pairs(uri).into_iter().find(|(k, _)| k == "$top").and_then(|(_, v)| v.parse().ok()).unwrap_or(200);
    let value: Vec<Value> = i
        .stores
        .get(&format!("{m}/drive"))
        .map(|s| {
            s.items
                .values()
                .map(|(_, v)| v)
                .filter(|v| {
                    let has =
                        |k: &str| v.get(k).and_then(Value::as_str).is_some_and(|t| t.to_lowercase().contains(&needle));
                    has("name") || has("content")
                })
                .take(top)
                .map(|v| select(v, &q))
                .collect()
        })
        .unwrap_or_default();
    json_response(json!({
        "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#Collection(driveItem)"),
        "value": value
    }))
}
