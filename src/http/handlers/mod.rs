//! Request handlers, one module per group of routes.

pub mod cluster;
pub mod download;
pub mod events;
pub mod jobs;
pub mod ops;
pub mod session;
pub mod upload;
pub mod web;

use hyper::Uri;

use super::error::ApiError;
use crate::ids::Id;

/// The first value of query parameter `name`, percent-decoded.
fn query_param(uri: &Uri, name: &str) -> Option<String> {
    let query = uri.query()?;
    url::form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

/// Parses an id from the client, answering 400 when it is malformed.
fn parse_id(text: &str, what: &str) -> Result<Id, ApiError> {
    text.parse().map_err(|_| ApiError::bad_request("malformed_id", format!("{what} must be 24 hexadecimal digits")))
}
