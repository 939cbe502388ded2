//! Response bodies and the small builders the handlers share.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::StatusCode;
use hyper::body::Frame;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use tokio_util::io::ReaderStream;

use futures_util::TryStreamExt;

use crate::storage::BlobReader;

/// Every response body: whole (JSON, text) or streamed (downloads).
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;
pub type Response = hyper::Response<Body>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// Streams a blob in chunks; memory does not grow with its size.
pub fn streamed(reader: BlobReader) -> Body {
    let frames = ReaderStream::with_capacity(reader, 64 * 1024).map_ok(Frame::data);
    StreamBody::new(frames).boxed_unsync()
}

fn with_type(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut response = hyper::Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON answer, ending with a newline (so that a shell prompt after `curl` starts its own line).
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    with_type(status, "application/json", full(format!("{value}\n")))
}

pub fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response {
    with_type(status, content_type, full(body))
}

/// 204: done, nothing to say.
pub fn no_content() -> Response {
    let mut response = hyper::Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}
