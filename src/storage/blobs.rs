//! Videos and MP3s: always streamed, never held whole in memory.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use super::{StorageError, StorageResult};
use crate::ids::Id;

/// The two kinds of blob; the seed keeps them in the GridFS databases `videos` and `mp3s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bucket {
    Videos,
    Mp3s,
}

impl Bucket {
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Videos => "videos",
            Bucket::Mp3s => "mp3s",
        }
    }
}

/// What is stored beside a blob's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    /// The user who may read it (admins may read every blob).
    pub owner: String,
    /// The client's file name, already sanitised.
    pub filename: String,
    pub content_type: String,
    pub job_id: Option<Id>,
}

#[derive(Clone, Debug)]
pub struct BlobInfo {
    pub length: u64,
    pub meta: BlobMeta,
}

/// A byte range of a blob, both ends inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    /// Bytes in the range (never zero: both ends are inclusive).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }
}

pub type BlobReader = Box<dyn AsyncRead + Send + Unpin>;

/// A blob as a seekable local file, which FFmpeg needs: either the blob's own file or a
/// temporary copy that is removed when this is dropped.
pub enum LocalMedia {
    InPlace(PathBuf),
    Copy(tempfile::TempPath),
}

impl LocalMedia {
    pub fn path(&self) -> &Path {
        match self {
            LocalMedia::InPlace(path) => path,
            LocalMedia::Copy(temp) => temp,
        }
    }
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Streams `body` into a new blob. Nothing is visible under `fid` unless the whole body
    /// arrived; on any error nothing is left behind. Returns the length.
    async fn put(
        &self,
        bucket: Bucket,
        fid: Id,
        meta: &BlobMeta,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> StorageResult<u64>;

    /// Stores a local file as a new blob (each conversion attempt writes its own, so attempts
    /// never overwrite each other's output).
    async fn put_file(&self, bucket: Bucket, fid: Id, meta: &BlobMeta, path: &Path) -> StorageResult<u64> {
        let mut file = tokio::fs::File::open(path).await.map_err(StorageError::unavailable)?;
        self.put(bucket, fid, meta, &mut file).await
    }

    async fn stat(&self, bucket: Bucket, fid: Id) -> StorageResult<BlobInfo>;

    /// Reads the blob, or the given range of it.
    async fn open(&self, bucket: Bucket, fid: Id, range: Option<ByteRange>) -> StorageResult<BlobReader>;

    /// Replaces the blob's metadata (to take in a blob that another program stored).
    async fn set_meta(&self, bucket: Bucket, fid: Id, meta: &BlobMeta) -> StorageResult<()>;

    /// The blob as a seekable local file.
    async fn local_media(&self, bucket: Bucket, fid: Id) -> StorageResult<LocalMedia>;

    /// Removes the blob, whole or as far as it was written; removing one that is not there is
    /// not an error.
    async fn delete(&self, bucket: Bucket, fid: Id) -> StorageResult<()>;

    async fn ping(&self) -> StorageResult<()>;
}
