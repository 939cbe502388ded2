//! Videos and MP3s: always streamed, never held whole in memory.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use super::{StorageError, StorageResult};
use crate::ids::Id;

/// The two kinds of blob; the legacy design keeps them in the GridFS databases `videos` and `mp3s`.
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

/// What FFmpeg's custom I/O needs of a stream: blocking reads and seeks (an MP4's index may
/// sit at its end, and through a stream that cannot seek, FFmpeg retries forever).
pub trait SeekableRead: Read + Seek + Send {}

impl<T: Read + Seek + Send> SeekableRead for T {}

/// A blob as the converter reads it, on a blocking thread.
pub enum Media {
    /// The blob's own local file, read in place.
    File(PathBuf),
    /// A reader that fetches the blob from its store as it is read.
    Stream(Box<dyn SeekableRead>),
}

/// Whether the store failed under a [`Media::Stream`] while it was read. FFmpeg only reports
/// "I/O error", and the converter must tell a store outage (retried, no attempt used up) from
/// a broken file (failed), so the stream records the cause here for the converter to ask.
#[derive(Clone, Debug, Default)]
pub struct StoreFailure(Arc<OnceLock<String>>);

impl StoreFailure {
    /// Records the first failure; later ones add nothing.
    pub fn record(&self, cause: impl std::fmt::Display) {
        let _ = self.0.set(cause.to_string());
    }

    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// What [`BlobStore::media`] gives: the media and where its store's failures are recorded.
pub struct MediaSource {
    pub media: Media,
    pub failure: StoreFailure,
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

    /// The blob as FFmpeg reads it: seekable, fetched only as far as it is read (a file store
    /// gives its own file).
    async fn media(&self, bucket: Bucket, fid: Id) -> StorageResult<MediaSource>;

    /// Removes the blob, whole or as far as it was written; removing one that is not there is
    /// not an error.
    async fn delete(&self, bucket: Bucket, fid: Id) -> StorageResult<()>;

    async fn ping(&self) -> StorageResult<()>;
}
