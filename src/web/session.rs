//! Sessions: the login link exchange, the session extractor every route uses, `/api/me`.

use super::auth::{self, Viewer};
use super::error::WebError;
use super::WebState;
use crate::user::{ContextCriteria, ForwardTarget, UserProfile};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, REFERRER_POLICY, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// A signed-in request: who is looking.
pub struct Session {
    pub viewer: Viewer,
    token: String,
}

impl FromRequestParts<WebState> for Session {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, WebError> {
        let token = parts
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .find_map(|h| auth::cookie(h, auth::COOKIE))
            .ok_or(WebError::Unauthorized)?
            .to_string();
        let user = auth::session_user(state.tokens.as_ref(), &token, chrono::Utc::now())?;
        let viewer = Viewer::load(state.store.as_ref(), &user)?;
        Ok(Self { viewer, token })
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    token: String,
}

/// `GET /login?token=…`: sets the session cookie, then moves on to the page
/// with a same-site navigation (a SameSite=Strict cookie set while arriving
/// from a mail client would not be sent on a redirect).
pub async fn login(State(state): State<WebState>, Query(q): Query<LoginQuery>) -> Result<Response, WebError> {
    let (user, session) = auth::exchange_login(state.tokens.as_ref(), &q.token, chrono::Utc::now()).map_err(|e| {
        tracing::info!(reason = %e, "login link refused");
        WebError::from(e)
    })?;
    tracing::info!(user = %user, "signed in to the notification window");
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        auth::COOKIE,
        session.text,
        auth::SESSION_VALID.num_seconds()
    );
    let page = "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=\"0;url=/\">\
                <title>contactbridge</title><a href=\"/\">Continue to the notification window</a>";
    Ok((
        StatusCode::OK,
        [
            (SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|e| WebError::Internal(e.to_string()))?),
            (CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        page,
    )
        .into_response())
}

/// `POST /logout`: ends the session and clears the cookie.
pub async fn logout(State(state): State<WebState>, session: Session) -> Result<Response, WebError> {
    auth::end_session(state.tokens.as_ref(), &session.token)?;
    let clear = format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", auth::COOKIE);
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, clear)]).into_response())
}

/// A user as the page shows them.
#[derive(Serialize)]
pub struct UserView {
    pub id: String,
    pub display_name: String,
    /// The forward buttons: the user's targets, then the attendant's number.
    pub forward: Vec<ForwardTarget>,
}

impl UserView {
    pub fn of(p: &UserProfile) -> Self {
        Self { id: p.id.to_string(), display_name: p.display_name.clone(), forward: forward_buttons(p) }
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
    Ok(Json(Me {
        user: UserView::of(&v.profile),
        attends: v.attends.iter().map(UserView::of).collect(),
        attendant,
        criteria: v.profile.context.clone(),
    }))
}
