//! A GridFS chunk as reading takes it, and the error of a failed MongoDB call: what the store,
//! its uploads ([`super::upload`]) and its in-place reads ([`super::media`]) share.

use mongodb::bson::{Binary, Document, doc};
use serde::Deserialize;

use crate::storage::StorageError;

/// A chunk as we read it: its number and its data (owned, so it becomes `Bytes` uncopied).
#[derive(Deserialize)]
pub(super) struct StoredChunk {
    pub n: i64,
    pub data: Binary,
}

/// The fields of a chunk that [`StoredChunk`] reads.
pub(super) fn chunk_fields() -> Document {
    doc! { "_id": 0, "n": 1, "data": 1 }
}

/// A MongoDB call that failed: the store is unavailable (HTTP 503, retried).
pub(super) fn mongo_error(error: mongodb::error::Error) -> StorageError {
    StorageError::unavailable(error)
}
