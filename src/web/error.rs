//! Errors of the web routes, as HTTP statuses with a short JSON body.

use super::auth::WebAuthError;
use crate::live::LiveError;
use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("sign in with your login link")]
    Unauthorized,
    /// Also what another user's call or contact looks like: it is not there for this viewer.
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => Self::BadRequest(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<WebAuthError> for WebError {
    fn from(e: WebAuthError) -> Self {
        match e {
            WebAuthError::Invalid | WebAuthError::NoSuchUser(_) => Self::Unauthorized,
            WebAuthError::Store(s) => s.into(),
        }
    }
}

impl From<LiveError> for WebError {
    fn from(e: LiveError) -> Self {
        match e {
            LiveError::UnknownCall(_) | LiveError::OtherTenant => Self::NotFound,
            LiveError::Invalid(m) => Self::BadRequest(m),
            e @ LiveError::JournalFull(_) => Self::BadRequest(e.to_string()),
            LiveError::Store(s) => s.into(),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "web request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, axum::Json(serde_json::json!({ "error": self.to_string() }))).into_response()
    }
}
