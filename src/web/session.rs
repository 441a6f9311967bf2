//! Sessions: the login link exchange, the session extractor every route uses, `/api/me`.

use super::auth::{self, Viewer};
use super::error::WebError;
use super::WebState;
use crate::user::UserId;
use crate::user::{ContextCriteria, ForwardTarget, UserProfile};
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A signed-in request: who is looking.
pub struct Session {
    pub viewer: Viewer,
    pub(super) token: String,
    /// When the session ends.
    pub(super) expires: DateTime<Utc>,
}

/// The session cookie's value in a request, if any.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie_value(headers, auth::COOKIE)
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(COOKIE).iter().filter_map(|h| h.to_str().ok()).find_map(|h| auth::cookie(h, name))
}

impl FromRequestParts<WebState> for Session {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, WebError> {
        let token = session_cookie(&parts.headers).ok_or(WebError::Unauthorized)?.to_string();
        let stored = auth::session(state.tokens.as_ref(), &token, Utc::now())?;
        let viewer = Viewer::load(state.store.as_ref(), &stored.user)?;
        Ok(Self { viewer, token, expires: stored.expires })
    }
}

impl Session {
    /// Whether the session is still valid and its viewer still as loaded
    /// (the user exists, the users they attend still name them).
    pub fn still_valid(&self, state: &WebState) -> bool {
        let valid = auth::session(state.tokens.as_ref(), &self.token, Utc::now())
            .map_err(WebError::from)
            .and_then(|s| Ok(s.user == *self.viewer.id() && self.viewer.still_current(state.store.as_ref())?));
        match valid {
            Ok(v) => v,
            Err(WebError::Unauthorized) => false,
            Err(e) => {
                // A store that fails ends the stream too: the page reconnects and is checked afresh.
                tracing::warn!(error = %e, "could not re-check a web session");
                false
            }
        }
    }
}

/// A browser-side hint that someone is signed in here: SameSite=Lax, so it also
/// arrives with a login link opened from a mail (the session cookie, Strict,
/// does not). Holds the user id (base64url); it opens nothing.
const SIGNED_IN: &str = "cb_signed_in";

fn cookies(state: &WebState, session: &str, user: &UserId) -> [String; 2] {
    let secure = if state.is_tls() { "; Secure" } else { "" };
    let age = state.sessions.valid.num_seconds();
    [
        format!("{}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{secure}", auth::COOKIE),
        format!(
            "{SIGNED_IN}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={age}{secure}",
            URL_SAFE_NO_PAD.encode(user.as_str())
        ),
    ]
}

fn clear_cookies(state: &WebState) -> [String; 2] {
    let secure = if state.is_tls() { "; Secure" } else { "" };
    [
        format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}", auth::COOKIE),
        format!("{SIGNED_IN}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    ]
}

/// Who this browser is signed in as: the session's user (true: known from a
/// valid session), else the hint's (false: only what the browser claims).
fn signed_in_here(state: &WebState, headers: &HeaderMap) -> Option<(UserId, bool)> {
    if let Some(token) = session_cookie(headers) {
        if let Ok(user) = auth::session_user(state.tokens.as_ref(), token, Utc::now()) {
            return Some((user, true));
        }
    }
    let hint = URL_SAFE_NO_PAD.decode(cookie_value(headers, SIGNED_IN)?).ok()?;
    Some((UserId::parse(std::str::from_utf8(&hint).ok()?).ok()?, false))
}

#[derive(Deserialize)]
pub struct LoginQuery {
    token: String,
}

/// `GET /login?token=…`: sets the session cookie, then moves on to the page
/// with a same-site navigation (a SameSite=Strict cookie set while arriving
/// from a mail client would not be sent on a redirect).
///
/// If this browser is signed in as someone else, the link is not used: a page
/// says who is signed in and offers to switch (`POST /login`), so a link sent
/// by a stranger cannot silently swap the session.
pub async fn login(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, WebError> {
    let now = Utc::now();
    let user = auth::login_user(state.tokens.as_ref(), &q.token, now).map_err(|e| {
        tracing::info!(reason = %e, "login link refused");
        WebError::from(e)
    })?;
    if let Some((current, verified)) = signed_in_here(&state, &headers).filter(|(c, _)| *c != user) {
        tracing::info!(user = %user, signed_in = %current, "login link for another user: asking before switching");
        let html = switch_page(&state, (&current, verified), &user, &q.token);
        return Ok(page(StatusCode::OK, &html, Vec::new()));
    }
    sign_in(&state, &headers, &q.token, now)
}

#[derive(Deserialize)]
pub struct SwitchForm {
    token: String,
}

/// `POST /login` (the switch page's button; same-origin only, as every POST):
/// ends this browser's session and signs in with the link.
pub async fn switch(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(f): Form<SwitchForm>,
) -> Result<Response, WebError> {
    sign_in(&state, &headers, &f.token, Utc::now())
}

fn sign_in(state: &WebState, headers: &HeaderMap, token: &str, now: DateTime<Utc>) -> Result<Response, WebError> {
    let (user, session) =
        auth::exchange_login_for(state.tokens.as_ref(), token, state.sessions.valid, now).map_err(|e| {
            tracing::info!(reason = %e, "login link refused");
            WebError::from(e)
        })?;
    if let Some(old) = session_cookie(headers) {
        auth::end_session(state.tokens.as_ref(), old)?;
        state.recheck_sessions();
    }
    tracing::info!(user = %user, "signed in to the notification window");
    let page_html = "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=\"0;url=/\">\
                <title>contactbridge</title><a href=\"/\">Continue to the notification window</a>";
    Ok(page(StatusCode::OK, page_html, cookies(state, &session.text, &user).into()))
}

fn page(status: StatusCode, html: &str, set_cookies: Vec<String>) -> Response {
    let mut res = (
        status,
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html.to_string(),
    )
        .into_response();
    for c in set_cookies {
        match HeaderValue::from_str(&c) {
            Ok(v) => {
                res.headers_mut().append(SET_COOKIE, v);
            }
            Err(e) => return WebError::Internal(e.to_string()).into_response(),
        }
    }
    res
}

/// The switch question. `current` names its user by display name only when a
/// valid session vouches for it: a hint cookie is the browser's word, and must
/// not tell a link holder the names behind arbitrary user ids.
fn switch_page(state: &WebState, current: (&UserId, bool), next: &UserId, token: &str) -> String {
    let name = |id: &UserId, look_up: bool| {
        let display = match look_up {
            true => state.store.profile(id).ok().flatten().map(|p| p.display_name).unwrap_or_default(),
            false => String::new(),
        };
        if display.is_empty() || display == id.as_str() {
            escape(id.as_str())
        } else {
            format!("{} ({})", escape(&display), escape(id.as_str()))
        }
    };
    format!(
        "<!doctype html><meta charset=utf-8><title>contactbridge: switch user?</title>\
         <p>This browser is signed in to the notification window as <strong>{}</strong>.\
         <p>The login link you opened signs in <strong>{}</strong>.\
         <form method=post action=\"/login\"><input type=hidden name=token value=\"{}\">\
         <button type=submit>Sign out and sign in as {}</button></form>\
         <p><a href=\"/\">Stay signed in as {}</a>",
        name(current.0, current.1),
        name(next, true),
        escape(token),
        name(next, true),
        name(current.0, current.1)
    )
}

/// Text for HTML (element content and quoted attribute values).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `POST /logout`: ends the session and clears the cookie; open event streams of the session end.
pub async fn logout(State(state): State<WebState>, session: Session) -> Result<Response, WebError> {
    auth::end_session(state.tokens.as_ref(), &session.token)?;
    state.recheck_sessions();
    let mut res = StatusCode::NO_CONTENT.into_response();
    for c in clear_cookies(&state) {
        res.headers_mut().append(SET_COOKIE, HeaderValue::from_str(&c).map_err(|e| WebError::Internal(e.to_string()))?);
    }
    Ok(res)
}

/// A user as the page shows them.
#[derive(Serialize)]
pub struct UserView {
    pub id: String,
    pub display_name: String,
    /// The forward buttons: the user's targets, then the attendant's number.
    pub forward: Vec<ForwardTarget>,
    /// The user's status now (available, busy, out of office, …), as a call now would see it.
    pub status: Option<String>,
    /// Why: a meeting's subject, "out-of-office replies are on", "set by hand".
    pub status_reason: Option<String>,
    /// Until when, if known (the meeting's end, the manual status's expiry).
    pub status_until: Option<DateTime<Utc>>,
}

impl UserView {
    pub fn of(p: &UserProfile) -> Self {
        Self {
            id: p.id.to_string(),
            display_name: p.display_name.clone(),
            forward: forward_buttons(p),
            status: None,
            status_reason: None,
            status_until: None,
        }
    }

    /// With the user's status now (manual, out-of-office, calendar; as the resolver derives it).
    fn with_status(p: &UserProfile, store: &dyn crate::store::Store) -> Result<Self, WebError> {
        use crate::resolve::status::{derive, StatusReason};
        let now = Utc::now();
        let (status, reason) =
            derive(now, p.manual_status.as_ref(), &store.out_of_office(&p.id)?, &store.busy_spans(&p.id, now)?);
        let (reason, until) = match reason {
            StatusReason::Default => (None, None),
            StatusReason::Manual { until } => (Some("set by hand".to_string()), until),
            StatusReason::OutOfOfficeReplies => (Some("out-of-office replies are on".to_string()), None),
            StatusReason::Calendar { subject, end, .. } => (Some(subject), Some(end)),
        };
        Ok(Self {
            status: Some(status.as_str().to_string()),
            status_reason: reason,
            status_until: until,
            ..Self::of(p)
        })
    }
}

/// The user's forward targets, then the attendant's number (if not among them).
pub fn forward_buttons(p: &UserProfile) -> Vec<ForwardTarget> {
    let mut out = p.forward_targets.clone();
    if let Some(a) = &p.attendant {
        if !out.iter().any(|t| t.number == a.number) {
            out.push(ForwardTarget { label: "Attendant".into(), number: a.number.clone() });
        }
    }
    out
}

#[derive(Serialize)]
pub struct Me {
    pub user: UserView,
    /// Users who designated this user as their attendant.
    pub attends: Vec<UserView>,
    /// The viewer's own attendant, if they have a user id (for names in chat and journals).
    pub attendant: Option<Named>,
    pub criteria: ContextCriteria,
}

#[derive(Serialize)]
pub struct Named {
    pub id: String,
    pub display_name: String,
}

/// `GET /api/me`.
pub async fn me(State(state): State<WebState>, session: Session) -> Result<Json<Me>, WebError> {
    let v = &session.viewer;
    let attendant = match v.profile.attendant.as_ref().and_then(|a| a.user.as_ref()) {
        Some(id) => Some(Named {
            id: id.to_string(),
            // Another tenant's user (named before PutUser checked it) shows no name.
            display_name: state
                .store
                .profile(id)?
                .filter(|p| p.tenant == v.profile.tenant)
                .map(|p| p.display_name)
                .unwrap_or_default(),
        }),
        None => None,
    };
    let store = state.store.as_ref();
    Ok(Json(Me {
        user: UserView::with_status(&v.profile, store)?,
        attends: v.attends.iter().map(|p| UserView::with_status(p, store)).collect::<Result<_, _>>()?,
        attendant,
        criteria: v.profile.context.clone(),
    }))
}
