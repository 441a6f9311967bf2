//! A call's routes: the record, directives (incl. "always block"), the caller's
//! context, chat; and the call history and the user's context criteria.

use super::error::WebError;
use super::events::{CallView, WebEvent};
use super::session::Session;
use super::WebState;
use crate::calls::{CallEventKind, CallId, CallRecord};
use crate::live::DirectiveAction;
use crate::phone::history_key_if_number;
use crate::resolve::{CallerContext, ContextQuery, ContextSubject};
use crate::store::{AssignTarget, StoredContact, TimeWindow};
use crate::user::{self, ContextCriteria, HandlingCode, UserId, UserProfile};
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};

/// The call and its user's profile, if the viewer may see it; else 404.
fn visible_call(state: &WebState, session: &Session, id: &str) -> Result<(CallRecord, UserProfile), WebError> {
    let record = state.store.call(&CallId(id.to_string()))?.ok_or(WebError::NotFound)?;
    let owner = session.viewer.may_see(&record.user).ok_or(WebError::NotFound)?.clone();
    Ok((record, owner))
}

fn contact_of(state: &WebState, record: &CallRecord) -> Result<Option<StoredContact>, WebError> {
    Ok(match &record.contact {
        Some(r) => state.store.contact(&record.user, r)?,
        None => None,
    })
}

/// `GET /api/calls/{id}`.
pub async fn get_call(
    State(state): State<WebState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Json<CallView>, WebError> {
    let (record, owner) = visible_call(&state, &session, &id)?;
    let company = contact_of(&state, &record)?.and_then(|c| c.contact.company);
    Ok(Json(CallView::from_record(&record, &owner, company)))
}

#[derive(Debug, Deserialize)]
pub struct DirectiveRequest {
    /// forward, voicemail, accept, reject, or block ("always block this caller": assign `blocked`, then reject).
    pub action: String,
    /// The number, for forward.
    #[serde(default)]
    pub to: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DirectiveResponse {
    pub action: String,
    pub target: Option<String>,
    /// How many phone-system streams (WatchDirectives) of the call's tenant
    /// received it; 0: no phone system is connected, the directive is only in
    /// the journal (the page says "not delivered").
    pub delivered: usize,
    /// Set for "block": the caller key that now carries `blocked`.
    pub blocked: Option<String>,
}

fn forward_number(to: Option<String>) -> Result<String, WebError> {
    let to = to.unwrap_or_default().trim().to_string();
    let plausible = to.chars().any(|c| c.is_ascii_digit())
        && to.chars().all(|c| c.is_ascii_digit() || " +-/().".contains(c))
        && to.len() <= 40;
    if !plausible {
        return Err(WebError::BadRequest(format!(
            "{} is not a phone number to forward to",
            crate::connector::echo(&to)
        )));
    }
    Ok(to)
}

/// `POST /api/calls/{id}/directive`: what the user or attendant decided while
/// the call rings. 409 once the phone system reported the call over.
pub async fn directive(
    State(state): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Json(req): Json<DirectiveRequest>,
) -> Result<Json<DirectiveResponse>, WebError> {
    let (record, owner) = visible_call(&state, &session, &id)?;
    // Checked again under the journal's lock by the hub; here so "block" assigns nothing either.
    if record.has_ended() {
        return Err(crate::live::LiveError::CallEnded(record.id).into());
    }
    let mut blocked = None;
    let action = match req.action.as_str() {
        "forward" => DirectiveAction::Forward { to: forward_number(req.to)? },
        "voicemail" => DirectiveAction::Voicemail,
        "accept" => DirectiveAction::Accept,
        "reject" => DirectiveAction::Reject,
        "block" => {
            let key = record
                .caller_key
                .clone()
                .ok_or_else(|| WebError::BadRequest("the caller sent no number: there is nothing to block".into()))?;
            let code = HandlingCode::well_known(HandlingCode::BLOCKED);
            state.store.assign(&owner.id, &AssignTarget::Number(key.clone()), Some(&code))?;
            blocked = Some(key);
            DirectiveAction::Reject
        }
        other => {
            return Err(WebError::BadRequest(format!(
                "unknown action {}; use forward, voicemail, accept, reject or block",
                crate::connector::echo(other)
            )))
        }
    };
    let by = session.viewer.acting_for(&owner.id);
    // The hub tells every window that may see the call (one place for every change of a call).
    let (d, delivered) = state.hub.direct(&record.id, action, Some(by), None, Utc::now())?;
    Ok(Json(DirectiveResponse {
        action: d.action.name().into(),
        target: d.action.target().map(Into::into),
        delivered,
        blocked,
    }))
}

/// The caller as the context view shows them.
#[derive(Debug, Serialize)]
pub struct ContactView {
    pub name: String,
    pub company: Option<String>,
    pub job_title: Option<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    /// The handling code the user set on this contact and how far its write-back to the source got:
    /// `vip: pending`, `vip: written`, `vip: failed (…)`, `vip: local only (…)`; `None` if none is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_write_back: Option<String>,
}

/// `code: state` of the user's write-back for the contact, if the account records one.
pub(super) fn code_write_back(
    state: &WebState,
    user: &crate::user::UserId,
    at: &crate::store::RecordRef,
) -> Option<String> {
    use crate::model::{CodeWriteBack, WriteBackState};
    let spec = state.accounts.as_ref()?.account(&at.account).ok()??;
    let w = spec.code_write_backs.get(&CodeWriteBack::key(user, at))?;
    let code = w.code.as_ref().map_or("code removed", |c| c.as_str());
    Some(match &w.state {
        WriteBackState::Failed { error, .. } => {
            format!("{code}: write-back failed, retried with the next sync ({error})")
        }
        WriteBackState::LocalOnly { reason } => format!("{code}: kept in the bridge only ({reason})"),
        WriteBackState::Pending => format!("{code}: pending, written with the next sync"),
        other => format!("{code}: {}", other.name()),
    })
}

#[derive(Debug, Serialize)]
pub struct ContextResponse {
    pub contact: Option<ContactView>,
    pub criteria: ContextCriteria,
    #[serde(flatten)]
    pub context: CallerContext,
}

/// `GET /api/calls/{id}/context`: the caller's context within the call's user's criteria.
pub async fn context(
    State(state): State<WebState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Json<ContextResponse>, WebError> {
    let work = state.clone();
    // The store work, off the runtime's workers if the backend may block.
    let (contact, query, context, code) = crate::store::offload(state.store.as_ref(), move || {
        let (record, owner) = visible_call(&work, &session, &id)?;
        let contact = contact_of(&work, &record)?;
        let subject = ContextSubject { contact: contact.clone(), caller_key: record.caller_key.clone() };
        let query = ContextQuery { now: Utc::now(), criteria: owner.context.clone() };
        let context = crate::resolve::context::fetch(work.store.as_ref(), &owner.id, &subject, &query)?;
        let code = contact.as_ref().and_then(|c| code_write_back(&work, &owner.id, &c.at));
        Ok::<_, WebError>((contact, query, context, code))
    })
    .await?;
    let contact = contact.map(|s| ContactView {
        code_write_back: code,
        name: s.contact.best_name(),
        company: s.contact.company.clone(),
        job_title: s.contact.job_title.clone(),
        emails: s.contact.emails.clone(),
        phones: s.contact.phones.iter().map(|p| p.raw.clone()).collect(),
    });
    Ok(Json(ContextResponse { contact, criteria: query.criteria, context }))
}

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub text: String,
}

/// The most a chat message may hold (the journal's limit).
const MAX_CHAT: usize = crate::calls::MAX_CHAT_CHARS;

/// `POST /api/calls/{id}/chat`: a message about the call, kept in its journal
/// and shown live to the call's user and attendant.
pub async fn chat(
    State(state): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Json(req): Json<ChatRequest>,
) -> Result<Json<WebEvent>, WebError> {
    let (record, owner) = visible_call(&state, &session, &id)?;
    let text = req.text.trim().to_string();
    if text.is_empty() || text.chars().count() > MAX_CHAT {
        return Err(WebError::BadRequest(format!("a chat message has 1 to {MAX_CHAT} characters")));
    }
    let by = session.viewer.acting_for(&owner.id);
    let at = Utc::now();
    state.hub.report(&record.id, CallEventKind::Chat { text: text.clone() }, Some(by.clone()), None, at)?;
    // The hub tells every window that may see the call.
    Ok(Json(WebEvent::Chat { call_id: record.id, user: owner.id, text, by, at }))
}

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    /// Whose calls (default: every user the viewer sees: their own and those they attend).
    pub user: Option<String>,
    /// Only calls from this caller: a number as shown, or a caller key.
    pub caller: Option<String>,
    /// How far back, in days (default 30).
    pub days: Option<u32>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<usize>,
}

/// `GET /api/history`: calls newest first, each with its journal.
pub async fn history(
    State(state): State<WebState>,
    session: Session,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Vec<CallView>>, WebError> {
    // One user (`?user=`), else every user the viewer sees (an attendant: theirs and their own), merged.
    let owners: Vec<UserProfile> = match q.user.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => {
            let id = UserId::parse(u).map_err(WebError::BadRequest)?;
            vec![session.viewer.may_see(&id).ok_or(WebError::NotFound)?.clone()]
        }
        None => session.viewer.users().cloned().collect(),
    };
    let now = Utc::now();
    let window = TimeWindow {
        from: now - Duration::days(q.days.unwrap_or(30).min(ContextCriteria::MAX_DAYS).into()),
        to: now + Duration::minutes(1),
    };
    let limit = q.limit.unwrap_or(50).min(500);
    let mut records = Vec::new();
    for owner in &owners {
        let mine = match q.caller.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            Some(caller) => {
                let region = owner.region.as_deref().and_then(|r| crate::phone::Region::parse(r).ok());
                let key =
                    history_key_if_number(caller, region.as_ref()).ok().flatten().unwrap_or_else(|| caller.to_string());
                state.store.calls_from(&owner.id, &key, window, limit)?
            }
            None => state.store.calls(&owner.id, window, limit)?,
        };
        records.extend(mine.into_iter().map(|r| (r, owner)));
    }
    records.sort_by_key(|r| std::cmp::Reverse(r.0.at));
    records.truncate(limit);
    let views = records
        .iter()
        .map(|(r, owner)| Ok(CallView::from_record(r, owner, contact_of(&state, r)?.and_then(|c| c.contact.company))))
        .collect::<Result<_, WebError>>()?;
    Ok(Json(views))
}

/// `GET /api/criteria`: the viewer's context criteria.
pub async fn criteria(session: Session) -> Json<ContextCriteria> {
    Json(session.viewer.profile.context)
}

/// `PUT /api/criteria`: changes the viewer's context criteria (kept in their profile).
pub async fn put_criteria(
    State(state): State<WebState>,
    session: Session,
    Json(c): Json<ContextCriteria>,
) -> Result<Json<ContextCriteria>, WebError> {
    c.check().map_err(|e| WebError::BadRequest(e.to_string()))?;
    let mut profile = session.viewer.profile;
    profile.context = c.clone();
    user::put_profile(state.store.as_ref(), &profile)?;
    tracing::info!(user = %profile.id, "context criteria changed");
    Ok(Json(c))
}
