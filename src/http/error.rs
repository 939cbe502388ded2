//! API errors: each one a precise status and a JSON body `{"error":{"code","message"}}`.
//!
//! `code` is stable and meant for programs; `message` is for people. A 5xx is only ever our
//! own failure (or a backend's), never a client's mistake.

use hyper::StatusCode;
use hyper::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};

use super::response::{Response, json};
use crate::storage::StorageError;

/// Seconds a client is asked to wait when a backend is unavailable.
const RETRY_AFTER_UNAVAILABLE: u32 = 5;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Which authentication scheme to ask for in `WWW-Authenticate` (401 only).
    challenge: Option<&'static str>,
    /// Seconds to send in `Retry-After` (every 503 has one).
    retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let retry_after = (status == StatusCode::SERVICE_UNAVAILABLE).then_some(RETRY_AFTER_UNAVAILABLE);
        ApiError { status, code, message: message.into(), challenge: None, retry_after }
    }

    /// Asks the client to try again after `seconds` (`Retry-After`).
    pub fn retry_after(self, seconds: u32) -> Self {
        ApiError { retry_after: Some(seconds), ..self }
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
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
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
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(scheme) = self.challenge {
            let challenge = format!("{scheme} realm=\"mp3converter\"");
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_str(&challenge).expect("ASCII"));
        }
        response
    }
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
