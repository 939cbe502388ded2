//! The storage seams: every backend the actors use sits behind one of these traits, so the
//! actors never know which profile they run in.
//!
//! - [`UserStore`]: accounts and their password hashes.
//! - [`BlobStore`]: videos and MP3s, always streamed, never held whole in memory.
//! - [`JobStore`]: the record of each conversion job, which clients poll.
//! - [`Mailbox`]: the persistent queues `video` and `mp3` that carry work between actors, with
//!   at-least-once delivery: a claimed message is redelivered unless acknowledged.
//!
//! The embedded profile implements them with SQLite ([`sqlite`]) and files ([`files`]), put
//! together in [`embedded`]; the cluster profile with MySQL ([`mysql`]), MongoDB GridFS
//! ([`gridfs`]), MongoDB ([`mongo_jobs`]) and RabbitMQ ([`rabbitmq`]), put together in
//! [`cluster`]. [`instrumented`] counts what passes through either mailbox.

pub mod cluster;
pub mod embedded;
pub mod files;
pub mod gridfs;
pub mod instrumented;
pub mod mongo_jobs;
pub mod mysql;
pub mod rabbitmq;
mod sql_users;
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use crate::ids::Id;

/// What a storage operation can fail with, as the callers must tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Conflict,
    /// The backend cannot be reached or failed transiently: retry later (HTTP 503).
    #[error("storage unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The caller's data stream failed (a client that went away mid-upload, a body too large).
    #[error("input stream failed: {0}")]
    Input(std::io::Error),
}

pub type StorageResult<T> = Result<T, StorageError>;

impl StorageError {
    pub fn unavailable(error: impl Into<anyhow::Error>) -> Self {
        StorageError::Unavailable(error.into())
    }
}

// ---------------------------------------------------------------------------------------------
// Users

#[derive(Clone, Debug)]
pub struct User {
    /// The login name; the seed calls it `email` and mails notifications to it.
    pub email: String,
    /// A PHC-format argon2id hash; never the password.
    pub password_hash: String,
    pub admin: bool,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Adds a user; `Conflict` if the email is taken.
    async fn add(&self, user: &User) -> StorageResult<()>;
    async fn find(&self, email: &str) -> StorageResult<Option<User>>;
    async fn ping(&self) -> StorageResult<()>;
}

// ---------------------------------------------------------------------------------------------
// Blobs

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

    /// Stores a local file as a blob, replacing any blob of that id (so a retried job writes
    /// its one MP3 again rather than a second one).
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

    /// Removes the blob; removing one that is not there is not an error.
    async fn delete(&self, bucket: Bucket, fid: Id) -> StorageResult<()>;

    async fn ping(&self) -> StorageResult<()>;
}

// ---------------------------------------------------------------------------------------------
// Jobs

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Converting,
    Done,
    Failed,
}

impl JobState {
    pub const ALL: [JobState; 4] = [JobState::Queued, JobState::Converting, JobState::Done, JobState::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Converting => "converting",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

/// One conversion job, from upload to MP3 (or to its failure).
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: Id,
    pub owner: String,
    pub state: JobState,
    pub video_fid: Id,
    /// Reserved at the first attempt and reused by retries, so a job has at most one MP3.
    pub mp3_fid: Option<Id>,
    pub filename: String,
    pub error: Option<String>,
    pub attempts: u32,
    pub media_seconds: Option<f64>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

#[async_trait]
pub trait JobStore: Send + Sync {
    async fn create(&self, job: &Job) -> StorageResult<()>;
    async fn get(&self, id: Id) -> StorageResult<Option<Job>>;
    /// The owner's jobs, newest first, strictly older than `before` when given.
    async fn list_by_owner(&self, owner: &str, limit: u32, before: Option<Id>) -> StorageResult<Vec<Job>>;
    async fn mark_converting(&self, id: Id, attempts: u32, mp3_fid: Id) -> StorageResult<()>;
    async fn mark_done(&self, id: Id, media_seconds: f64) -> StorageResult<()>;
    async fn mark_failed(&self, id: Id, reason: &str) -> StorageResult<()>;
    /// The job whose upload is this video, if any.
    async fn find_by_video(&self, video_fid: Id) -> StorageResult<Option<Job>>;
    /// Marks a job done with an MP3 that another converter (the seed's) produced.
    async fn record_result(&self, id: Id, mp3_fid: Id) -> StorageResult<()>;
    /// Takes the right to send this job's email: true once per job, so a redelivered
    /// notification never mails the user twice.
    async fn claim_notification(&self, id: Id) -> StorageResult<bool>;
    /// Gives the right back after a send that failed, so a retry may send.
    async fn release_notification(&self, id: Id) -> StorageResult<()>;
    async fn count_by_state(&self) -> StorageResult<Vec<(JobState, u64)>>;
    async fn delete(&self, id: Id) -> StorageResult<()>;
}

// ---------------------------------------------------------------------------------------------
// Mailbox

/// The persistent queues: the work queues named as in the seed design, and the dead-letter
/// queue of each, where a message goes once it was delivered as often as allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Uploaded videos waiting for a converter.
    Video,
    /// Finished (or failed) conversions waiting for the notifier.
    Mp3,
    /// Videos whose every delivery ended without an answer (the converter died each time).
    VideoDead,
    /// Notifications whose every delivery ended without an answer.
    Mp3Dead,
}

impl Queue {
    /// The queues that carry work, each with a dead-letter queue.
    pub const WORK: [Queue; 2] = [Queue::Video, Queue::Mp3];

    pub fn name(self) -> &'static str {
        match self {
            Queue::Video => "video",
            Queue::Mp3 => "mp3",
            Queue::VideoDead => "video.dlq",
            Queue::Mp3Dead => "mp3.dlq",
        }
    }

    /// Where this queue's messages go after too many deliveries (none for a dead-letter queue).
    pub fn dead_letters(self) -> Option<Queue> {
        match self {
            Queue::Video => Some(Queue::VideoDead),
            Queue::Mp3 => Some(Queue::Mp3Dead),
            Queue::VideoDead | Queue::Mp3Dead => None,
        }
    }
}

/// One delivered message. Exactly one of `ack`, `retry` or `release` should be called; a
/// delivery dropped without any is redelivered once its lease runs out.
#[async_trait]
pub trait Delivery: Send + Sync {
    fn body(&self) -> &[u8];
    /// 1 for the first delivery, counting every redelivery after it.
    fn attempt(&self) -> u32;
    /// Done with it: remove it from the queue.
    async fn ack(self: Box<Self>) -> StorageResult<()>;
    /// Put it back, to be delivered again after `delay`.
    async fn retry(self: Box<Self>, delay: Duration) -> StorageResult<()>;
    /// Put it back at once without counting this delivery (this process is shutting down).
    async fn release(self: Box<Self>) -> StorageResult<()>;
}

#[async_trait]
pub trait Mailbox: Send + Sync {
    /// Durably enqueues a message: when this returns Ok, the message survives a crash.
    async fn publish(&self, queue: Queue, body: &[u8]) -> StorageResult<()>;
    /// The next message of `queue`, waiting for at most `wait`; `None` if none came.
    async fn receive(&self, queue: Queue, consumer: &str, wait: Duration) -> StorageResult<Option<Box<dyn Delivery>>>;
    /// Messages waiting (not yet claimed) in `queue`.
    async fn depth(&self, queue: Queue) -> StorageResult<u64>;
    async fn ping(&self) -> StorageResult<()>;
}

/// Every backend a node uses, chosen by the profile.
#[derive(Clone)]
pub struct Backends {
    pub users: Arc<dyn UserStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub jobs: Arc<dyn JobStore>,
    pub mailbox: Arc<dyn Mailbox>,
}

/// Milliseconds since the Unix epoch, the time unit of every stored timestamp.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}
