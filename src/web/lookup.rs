//! Looking anyone up from the window: search the contacts of the users the
//! viewer may see (name, company, number, email), open a contact's context
//! (also a bare number that never called), and "call": a dial directive to
//! the phone system.

use super::calls::{ContactView, ContextResponse};
use super::error::WebError;
use super::session::Session;
use super::WebState;
use crate::phone::history_key_if_number;
use crate::resolve::{ContextQuery, ContextSubject};
use crate::store::{RecordRef, StoredContact, TimeWindow};
use crate::user::{UserId, UserProfile};
use axum::extract::{Query, State};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use serde::{Deserialize, Serialize};

/// A search text has at most this many characters.
pub const MAX_QUERY_CHARS: usize = 100;
/// At most this many hits per search.
pub const MAX_HITS: usize = 20;

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    pub q: String,
    /// Only this user's contacts (default: every user the viewer may see).
    pub user: Option<String>,
}

/// One contact found.
#[derive(Debug, Serialize)]
pub struct Hit {
    /// Whose contact it is.
    pub user: UserId,
    pub user_name: String,
    /// Opaque: pass to `/api/contact?contact=`.
    pub contact: String,
    #[serde(flatten)]
    pub view: ContactView,
}

/// The users a request covers: the one named (if the viewer may see them), else all the viewer may see.
fn users<'a>(session: &'a Session, user: Option<&str>) -> Result<Vec<&'a UserProfile>, WebError> {
    match user.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => {
            let id = UserId::parse(u).map_err(WebError::BadRequest)?;
            Ok(vec![session.viewer.may_see(&id).ok_or(WebError::NotFound)?])
        }
        None => Ok(session.viewer.users().collect()),
    }
}

fn view(c: &StoredContact) -> ContactView {
    ContactView {
        name: c.contact.best_name(),
        company: c.contact.company.clone(),
        job_title: c.contact.job_title.clone(),
        emails: c.contact.emails.clone(),
        phones: c.contact.phones.iter().map(|p| p.raw.clone()).collect(),
        code_write_back: None,
    }
}

/// What a search text matches: words against name, company and emails (every word somewhere,
/// case-insensitive), and its digits (at least three) within a phone number's digits.
struct Matcher {
    words: Vec<String>,
    digits: Option<String>,
    /// The text as typed, for number keys in each user's region.
    text: String,
}

impl Matcher {
    fn new(q: &str) -> Result<Self, WebError> {
        let q = q.trim();
        let chars = q.chars().count();
        if chars == 0 || chars > MAX_QUERY_CHARS {
            return Err(WebError::BadRequest(format!(
                "a search has 1 to {MAX_QUERY_CHARS} characters (this one has {chars})"
            )));
        }
        if q.chars().any(char::is_control) {
            return Err(WebError::BadRequest("a search may not contain control characters".into()));
        }
        // Leading zeros (trunk or international prefix) are dropped: "030 1234567" finds "+49 30 1234567".
        let digits: String = q.chars().filter(char::is_ascii_digit).skip_while(|c| *c == '0').collect();
        let numberish = q.chars().all(|c| c.is_ascii_digit() || " +-/().".contains(c));
        Ok(Self {
            words: q.to_lowercase().split_whitespace().map(str::to_string).collect(),
            digits: (numberish && digits.len() >= 3).then_some(digits),
            text: q.to_string(),
        })
    }

    /// The number's key in `region` (a whole number as typed: `+49 30 …`, `030 …`), if it is one.
    fn key(&self, region: Option<&crate::phone::Region>) -> Option<String> {
        self.digits.as_ref()?;
        history_key_if_number(&self.text, region).ok().flatten()
    }

    /// `key`: [`Matcher::key`] in the contact's user's region.
    fn matches(&self, c: &StoredContact, key: Option<&str>, region: Option<&crate::phone::Region>) -> bool {
        let c = &c.contact;
        if let Some(d) = &self.digits {
            let hit = c.phones.iter().any(|p| {
                let pd: String = p.raw.chars().filter(char::is_ascii_digit).collect();
                pd.contains(d.as_str())
                    || key
                        .is_some_and(|k| history_key_if_number(&p.raw, region).ok().flatten().is_some_and(|pk| pk == k))
            });
            if hit {
                return true;
            }
        }
        let hay = [Some(c.best_name()), c.company.clone(), Some(c.emails.join(" "))]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        !self.words.is_empty() && self.words.iter().all(|w| hay.contains(w.as_str()))
    }
}

/// `GET /api/search?q=…[&user=…]`: contacts of the users the viewer may see
/// whose name, company, email or number matches; at most [`MAX_HITS`].
pub async fn search(
    State(state): State<WebState>,
    session: Session,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Vec<Hit>>, WebError> {
    let matcher = Matcher::new(&q.q)?;
    let work = state.clone();
    let hits = crate::store::offload(state.store.as_ref(), move || {
        let mut hits = Vec::new();
        for owner in users(&session, q.user.as_deref())? {
            let region = owner.region.as_deref().and_then(|r| crate::phone::Region::parse(r).ok());
            let key = matcher.key(region.as_ref());
            let mut found = Vec::new();
            work.store.scan_contacts(&owner.id, &mut |c| {
                if matcher.matches(&c, key.as_deref(), region.as_ref()) {
                    found.push(c);
                }
                found.len() + hits.len() < MAX_HITS
            })?;
            hits.extend(found.iter().map(|c| Hit {
                user: owner.id.clone(),
                user_name: owner.display_name.clone(),
                contact: URL_SAFE_NO_PAD.encode(c.at.to_token()),
                view: view(c),
            }));
            if hits.len() >= MAX_HITS {
                break;
            }
        }
        Ok::<_, WebError>(hits)
    })
    .await?;
    Ok(Json(hits))
}

#[derive(Debug, Deserialize)]
pub struct ContactQuery {
    /// Whose contact or context (default: the viewer).
    pub user: Option<String>,
    /// A contact from a search hit.
    pub contact: Option<String>,
    /// Or a bare number (someone who may never have called).
    pub number: Option<String>,
}

/// `GET /api/contact?contact=…|number=…[&user=…]`: a contact's context (mail,
/// meetings, documents, calls) within the user's criteria, as for a call.
pub async fn contact(
    State(state): State<WebState>,
    session: Session,
    Query(q): Query<ContactQuery>,
) -> Result<Json<ContextResponse>, WebError> {
    let work = state.clone();
    let (contact, query, context, code) = crate::store::offload(state.store.as_ref(), move || {
        let owner = users(&session, q.user.as_deref())?[0].clone();
        let region = owner.region.as_deref().and_then(|r| crate::phone::Region::parse(r).ok());
        let store = work.store.as_ref();
        let (contact, caller_key) = match (q.contact.as_deref(), q.number.as_deref().map(str::trim)) {
            (Some(token), _) => {
                let at = URL_SAFE_NO_PAD
                    .decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|t| RecordRef::parse(&t))
                    .ok_or(WebError::NotFound)?;
                let c = store.contact(&owner.id, &at)?.ok_or(WebError::NotFound)?;
                let key =
                    c.contact.phones.iter().find_map(|p| history_key_if_number(&p.raw, region.as_ref()).ok().flatten());
                (Some(c), key)
            }
            (None, Some(number)) if !number.is_empty() => {
                let key = crate::live::dialable(number)
                    .ok()
                    .and_then(|n| history_key_if_number(&n, region.as_ref()).ok().flatten())
                    .ok_or_else(|| {
                        WebError::BadRequest(format!("{} is not a phone number", crate::connector::echo(number)))
                    })?;
                let mut c = store.contacts_by_phone(&owner.id, &key)?.into_iter().next();
                if c.is_none() {
                    let last = store.calls_from(&owner.id, &key, TimeWindow::all(), 1)?;
                    if let Some(at) = last.first().and_then(|c| c.contact.clone()) {
                        c = store.contact(&owner.id, &at)?;
                    }
                }
                (c, Some(key))
            }
            _ => return Err(WebError::BadRequest("give a contact (from a search) or a number".into())),
        };
        let subject = ContextSubject { contact: contact.clone(), caller_key };
        let query = ContextQuery { now: Utc::now(), criteria: owner.context.clone() };
        let context = crate::resolve::context::fetch(store, &owner.id, &subject, &query)?;
        let code = contact.as_ref().and_then(|c| super::calls::code_write_back(&work, &owner.id, &c.at));
        Ok::<_, WebError>((contact, query, context, code))
    })
    .await?;
    let contact = contact.as_ref().map(|c| ContactView { code_write_back: code, ..view(c) });
    Ok(Json(ContextResponse { contact, criteria: query.criteria, context }))
}

#[derive(Debug, Deserialize)]
pub struct SetCodeRequest {
    /// A contact of the viewer's own, as a search returned it.
    pub contact: String,
    /// The handling code; `null` removes the viewer's code for the contact.
    pub code: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SetCodeResponse {
    /// What happened, in words: kept in the bridge only (and why), or pending write-back to the source.
    pub outcome: String,
    /// As shown with the contact (`vip: pending, written with the next sync`).
    pub code_write_back: Option<String>,
}

/// `PUT /api/contact/code`: the viewer sets (or removes) their handling code for one of their own
/// contacts. It applies at once; where the contact's account writes codes back, the mapped category
/// is written to the source with the next sync ([`crate::accounts::assign_code`], the same path as
/// the CLI and the admin API). Another user's contact, an attendant's included, is not found.
pub async fn set_code(
    State(state): State<WebState>,
    session: Session,
    Json(req): Json<SetCodeRequest>,
) -> Result<Json<SetCodeResponse>, WebError> {
    let code = match req.code.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => Some(crate::user::HandlingCode::parse(c).map_err(WebError::BadRequest)?),
    };
    let at = URL_SAFE_NO_PAD
        .decode(req.contact.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| RecordRef::parse(&t))
        .ok_or(WebError::NotFound)?;
    let accounts = state.accounts.clone().ok_or_else(|| WebError::Internal("no account store".into()))?;
    let work = state.clone();
    let user = session.viewer.id().clone();
    crate::store::offload(state.store.as_ref(), move || {
        // Not the viewer's contact: it does not exist for them.
        work.store.contact(&user, &at)?.ok_or(WebError::NotFound)?;
        let target = crate::store::AssignTarget::Contact(at.clone());
        let outcome = crate::accounts::assign_code(accounts.as_ref(), &user, &target, code.as_ref(), Utc::now())
            .map_err(|e| match e {
                crate::accounts::AccountError::Store(e) => WebError::from(e),
                crate::accounts::AccountError::Invalid(m) => WebError::BadRequest(m),
                other => WebError::Internal(other.to_string()),
            })?;
        let shown = super::calls::code_write_back(&work, &user, &at);
        tracing::info!(user = %user, "handling code set from the window");
        Ok(Json(SetCodeResponse { outcome: outcome.to_string(), code_write_back: shown }))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct DialRequest {
    /// Whose phone places the call (default: the viewer's; an attendant may name a user they attend).
    pub user: Option<String>,
    pub to: String,
}

#[derive(Debug, Serialize)]
pub struct DialResponse {
    pub target: String,
    /// How many phone-system streams received it (0: none connected; nothing is dialled).
    pub delivered: usize,
}

/// `POST /api/dial`: asks the phone system to call `to` from the user's phone
/// (a `dial` directive). A number that does not look like one is refused (400).
pub async fn dial(
    State(state): State<WebState>,
    session: Session,
    Json(req): Json<DialRequest>,
) -> Result<Json<DialResponse>, WebError> {
    let owner = users(&session, req.user.as_deref())?[0].clone();
    let by = session.viewer.acting_for(&owner.id);
    let (d, delivered) = state.hub.dial(&owner.id, &owner.tenant, &req.to, Some(by), Utc::now())?;
    Ok(Json(DialResponse { target: d.action.target().unwrap_or_default().to_string(), delivered }))
}
