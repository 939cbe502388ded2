//! API errors: each one a precise status and a JSON body `{"error":{"code","message"}}`.
//!
//! `code` is stable and meant for programs; `message` is for people. A 5xx is only ever our
//! own failure (or a backend's), never a client's mistake.

use std::time::Duration;

use hyper::StatusCode;
use hyper::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};

use super::response::{Response, json};
use crate::storage::StorageError;

/// How long a client is asked to wait after a 503 (a backend unavailable, the server busy).
const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Which authentication scheme to ask for in `WWW-Authenticate` (401 only).
    challenge: Option<&'static str>,
    /// How long the client should wait before trying again (`Retry-After`; 429 and 503).
    retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), challenge: None, retry_after: None }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(scheme: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { challenge: Some(scheme), ..ApiError::new(StatusCode::UNAUTHORIZED, code, message) }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large(limit: u64) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the upload exceeds the limit of {limit} bytes"),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::retry_after(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message, UNAVAILABLE_RETRY_AFTER)
    }

    /// 503: the server has as much of this kind of work as it takes; the client may retry soon.
    pub fn busy(message: impl Into<String>) -> Self {
        ApiError::retry_after(StatusCode::SERVICE_UNAVAILABLE, "busy", message, UNAVAILABLE_RETRY_AFTER)
    }

    /// 429: this client (or account) has done this too often; it may retry after `wait`.
    pub fn too_many(code: &'static str, message: impl Into<String>, wait: Duration) -> Self {
        ApiError::retry_after(StatusCode::TOO_MANY_REQUESTS, code, message, wait)
    }

    fn retry_after(status: StatusCode, code: &'static str, message: impl Into<String>, wait: Duration) -> Self {
        ApiError { retry_after: Some(wait), ..ApiError::new(status, code, message) }
    }

    /// The same error under a more precise code.
    pub fn with_code(self, code: &'static str) -> Self {
        ApiError { code, ..self }
    }

    /// Our own failure: logged in full here, told to the client only as a 500.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }

    pub fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = json(self.status, &body);
        let headers = response.headers_mut();
        if let Some(wait) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_seconds(wait)));
        }
        if let Some(scheme) = self.challenge {
            let challenge = format!("{scheme} realm=\"mp3converter\"");
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_str(&challenge).expect("ASCII"));
        }
        response
    }
}

/// `Retry-After` in whole seconds, rounded up so that a retry is never early, and at least 1.
fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => ApiError::not_found("not found"),
            StorageError::Conflict => ApiError::new(StatusCode::CONFLICT, "conflict", "already exists"),
            StorageError::Input(e) => {
                ApiError::bad_request("bad_body", format!("the request body could not be read: {e}"))
            }
            StorageError::Unavailable(e) => {
                tracing::warn!(error = format!("{e:#}"), "storage unavailable");
                ApiError::unavailable("storage is unavailable; try again shortly")
            }
        }
    }
}
