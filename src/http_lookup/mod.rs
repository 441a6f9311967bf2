//! The HTTP lookup: caller names and decisions for phone systems that cannot
//! speak gRPC (FreeSWITCH `mod_cidlookup`, FreePBX CID Superfecta, Asterisk
//! `CURL()`), on its own listener (`[lookup] listen`, off by default).
//!
//! | route                                         | answer                                        |
//! |-----------------------------------------------|-----------------------------------------------|
//! | `GET /lookup/v1/name?called=…&cli=…`          | the caller's name as `text/plain` (empty: none) |
//! | `GET /lookup/v1/decision?called=…&cli=…`      | the whole decision as JSON                    |
//!
//! The same API keys (scope `tsps`), tenant rules and matching as
//! `ResolveCall`: the key comes as `Authorization: Bearer <key>` or, for
//! phone systems that cannot set headers, as `key=<key>` in the query. A
//! called number of another tenant answers exactly as an unknown one (404).
//!
//! `/name` answers every refusal with its status, an empty body and the reason in
//! the `X-Contactbridge-Error` header: those phone systems take any body as the
//! name, whatever the status. `/decision` answers `{"error": "…"}`.
//!
//! A lookup is not a call decision: it writes no call record and pops no
//! window, unless `record=true` is given on `/decision` (then it is one, as
//! `ResolveCall` makes it, with a `call_id` the phone system can report on).

use crate::api::auth::{self, ApiKeyStore, AuthError, Principal, Scope};
use crate::calls::MAX_NUMBER_CHARS;
use crate::connector::echo;
use crate::live::CallHub;
use crate::resolve::{CallQuery, Decision, ResolveError, Resolver};
use crate::store::{offload, Store};
use crate::user::UserProfile;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Why a name lookup was refused (its body stays empty).
pub const ERROR_HEADER: &str = "x-contactbridge-error";

/// At most this many candidates are listed in a decision.
pub const MAX_CANDIDATES: usize = 10;

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct LookupState {
    resolver: Resolver,
    keys: Arc<dyn ApiKeyStore>,
    hub: Arc<CallHub>,
}

impl LookupState {
    pub fn new(store: Arc<dyn Store>, keys: Arc<dyn ApiKeyStore>, hub: Arc<CallHub>) -> Self {
        Self { resolver: Resolver::new(store), keys, hub }
    }
}

/// The routes, for [`serve`] and for tests.
pub fn router(state: LookupState) -> Router {
    Router::new().route("/lookup/v1/name", get(name)).route("/lookup/v1/decision", get(decision)).with_state(state)
}

/// Serves the lookup on `listener` until `shutdown` resolves.
pub async fn serve(
    state: LookupState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let result = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await;
    tracing::info!("HTTP lookup stopped");
    result
}

/// The query both routes take. Unknown parameters are ignored (phone systems add their own).
#[derive(Debug, Default, Deserialize)]
pub struct LookupParams {
    called: Option<String>,
    cli: Option<String>,
    key: Option<String>,
    record: Option<String>,
}

/// A refusal: status and a one-line reason.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    reason: String,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self { status, reason: reason.into() }
    }

    fn bad(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    /// As plain text (the name route) or JSON (the decision route).
    fn into_response(self, json: bool) -> Response {
        let mut r = if json {
            (self.status, Json(serde_json::json!({ "error": self.reason }))).into_response()
        } else {
            // mod_cidlookup and Asterisk CURL() show any body as the caller's name, whatever
            // the status: the reason goes in a header, the body stays empty.
            let reason = header::HeaderValue::from_bytes(self.reason.as_bytes())
                .unwrap_or(header::HeaderValue::from_static("refused"));
            let mut r = (self.status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "").into_response();
            r.headers_mut().insert(ERROR_HEADER, reason);
            r
        };
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        r
    }
}

fn from_auth(e: AuthError) -> Refusal {
    match e {
        AuthError::Store(e) => from_store(e),
        AuthError::Missing => {
            Refusal::new(StatusCode::UNAUTHORIZED, "missing API key: send `Authorization: Bearer <key>` or `key=<key>`")
        }
        other => Refusal::new(StatusCode::UNAUTHORIZED, other.to_string()),
    }
}

fn from_store(e: crate::store::StoreError) -> Refusal {
    tracing::error!(error = %e, "storage failure while serving an HTTP lookup");
    Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "the bridge could not read its store; see the server log")
}

fn from_resolve(e: ResolveError) -> Refusal {
    match e {
        e @ (ResolveError::InvalidCalledNumber { .. } | ResolveError::InvalidCli { .. }) => Refusal::bad(e.to_string()),
        e @ ResolveError::UnknownCalledNumber(_) => Refusal::new(StatusCode::NOT_FOUND, e.to_string()),
        ResolveError::Store(e) => from_store(e),
    }
}

/// The key from the `Authorization` header, else from `key=`; checked, of scope tsps.
fn authenticate(state: &LookupState, headers: &HeaderMap, params: &LookupParams) -> Result<Principal, Refusal> {
    let header = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or_default());
    let text = match (header, params.key.as_deref()) {
        (Some(h), _) => auth::bearer(Some(h)).map_err(from_auth)?,
        (None, Some(k)) => k,
        (None, None) => return Err(from_auth(AuthError::Missing)),
    };
    let who = auth::verify(state.keys.as_ref(), text).map_err(|e| {
        tracing::info!(reason = %e, "HTTP lookup refused");
        from_auth(e)
    })?;
    if who.scope != Scope::Tsps {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!("the HTTP lookup needs a key of scope tsps; this key has scope {}", who.scope),
        ));
    }
    Ok(who)
}

fn required<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str, Refusal> {
    let value = value.ok_or_else(|| Refusal::bad(format!("missing query parameter {name}")))?;
    let chars = value.chars().count();
    if chars > MAX_NUMBER_CHARS {
        return Err(Refusal::bad(format!("{name} {} is {chars} characters; at most {MAX_NUMBER_CHARS}", echo(value))));
    }
    Ok(value)
}

/// Checks key, input and tenant; the called user's profile and the query.
fn prepare(
    state: &LookupState,
    headers: &HeaderMap,
    params: Result<Query<LookupParams>, QueryRejection>,
) -> Result<(UserProfile, CallQuery, bool), Refusal> {
    let Query(params) = params.map_err(|e| Refusal::bad(format!("the query is not valid: {}", e.body_text())))?;
    let who = authenticate(state, headers, &params)?;
    let called = required("called", params.called.as_deref())?;
    let cli = required("cli", params.cli.as_deref())?;
    let record = match params.record.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => return Err(Refusal::bad(format!("record {} must be true or false", echo(other)))),
    };
    let profile = state.resolver.user_for_called(called).map_err(from_resolve)?;
    if profile.tenant != who.tenant {
        // Exactly what a number that belongs to nobody answers.
        return Err(from_resolve(ResolveError::UnknownCalledNumber(called.to_string())));
    }
    let query =
        CallQuery { called: called.to_string(), cli: cli.to_string(), tsps_call_id: None, at: chrono::Utc::now() };
    Ok((profile, query, record))
}

/// Checks the request and runs `answer` on the called user's profile and the
/// query (with the `record` flag), off the runtime's workers if the backend may
/// block: the one place both routes do their key check, store and resolver work.
async fn lookup<T: Send + 'static>(
    state: LookupState,
    headers: HeaderMap,
    params: Result<Query<LookupParams>, QueryRejection>,
    answer: impl FnOnce(&LookupState, UserProfile, CallQuery, bool) -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    let store = state.resolver.store().clone();
    offload(store.as_ref(), move || {
        let (profile, query, record) = prepare(&state, &headers, params)?;
        answer(&state, profile, query, record)
    })
    .await
}

/// `GET /lookup/v1/name`: the best candidate's name, or an empty body.
async fn name(
    State(state): State<LookupState>,
    headers: HeaderMap,
    params: Result<Query<LookupParams>, QueryRejection>,
) -> Response {
    let answer = lookup(state, headers, params, |state, profile, query, _| {
        state.resolver.decide_for(&profile, &query).map_err(from_resolve)
    })
    .await;
    match answer {
        Ok(d) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
            d.caller_name().unwrap_or_default(),
        )
            .into_response(),
        Err(r) => r.into_response(false),
    }
}

/// `GET /lookup/v1/decision`: the decision as JSON; with `record=true`, also a call.
async fn decision(
    State(state): State<LookupState>,
    headers: HeaderMap,
    params: Result<Query<LookupParams>, QueryRejection>,
) -> Response {
    let answer = lookup(state, headers, params, |state, profile, query, record| {
        let d = if record {
            let d = state.resolver.resolve_for(&profile, &query).map_err(from_resolve)?;
            state.hub.announce(&d);
            d
        } else {
            state.resolver.decide_for(&profile, &query).map_err(from_resolve)?
        };
        Ok((d, profile))
    })
    .await;
    match answer {
        Ok((d, profile)) => {
            (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Json(DecisionJson::new(&d, &profile)))
                .into_response()
        }
        Err(r) => r.into_response(true),
    }
}

/// The decision as the lookup shows it.
#[derive(Debug, Serialize)]
struct DecisionJson<'a> {
    /// Whether a call record was written (`record=true`, and the write did not fail); then `call_id` names it.
    recorded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_id: Option<&'a str>,
    user: &'a str,
    user_display_name: &'a str,
    caller: &'a crate::resolve::Caller,
    /// The best candidate's name.
    name: Option<String>,
    candidates: Vec<CandidateJson>,
    handling_code: &'a str,
    code_source: &'a crate::resolve::CodeSource,
    status: crate::resolve::Status,
    status_reason: &'a crate::resolve::StatusReason,
    method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ivr_id: Option<&'a str>,
    target: Option<&'a str>,
    /// The target as a phone system dials it: only `+` and digits (`+49 30 901829` → `+4930901829`).
    target_dial: Option<String>,
    /// The handling-table row that decided (`null`: the fallback).
    rule: Option<usize>,
    note: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct CandidateJson {
    name: String,
    company: Option<String>,
    quality: crate::resolve::MatchQuality,
    preferred: bool,
}

impl<'a> DecisionJson<'a> {
    fn new(d: &'a Decision, profile: &'a UserProfile) -> Self {
        Self {
            recorded: d.recorded,
            call_id: d.recorded.then_some(d.call_id.0.as_str()),
            user: d.user.as_str(),
            user_display_name: &profile.display_name,
            caller: &d.caller,
            name: d.caller_name(),
            candidates: d
                .candidates
                .iter()
                .take(MAX_CANDIDATES)
                .map(|c| CandidateJson {
                    name: c.stored.contact.best_name(),
                    company: c.stored.contact.company.clone(),
                    quality: c.quality,
                    preferred: c.preferred,
                })
                .collect(),
            handling_code: d.handling_code.as_str(),
            code_source: &d.code_source,
            status: d.status,
            status_reason: &d.status_reason,
            method: d.method.name(),
            ivr_id: match &d.method {
                crate::user::HandlingMethod::Ivr { ivr_id } => Some(ivr_id.as_str()),
                _ => None,
            },
            target: d.target.as_deref(),
            target_dial: d
                .target
                .as_deref()
                .map(|t| t.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect::<String>())
                .filter(|t| !t.is_empty()),
            rule: d.rule,
            note: d.note.as_deref(),
        }
    }
}
