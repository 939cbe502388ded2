//! The storage seams: every backend the actors use sits behind one of these traits, so the
//! actors never know which profile they run in.
//!
//! - [`users`]: [`UserStore`], accounts and their password hashes.
//! - [`blobs`]: [`BlobStore`], videos and MP3s, always streamed, never held whole in memory.
//! - [`jobs`]: [`JobStore`], the record of each conversion job and its compare-and-set
//!   transitions.
//! - [`mailbox`]: [`Mailbox`], the persistent queues that carry work between actors, with
//!   at-least-once delivery.
//! - [`intake`]: [`Intake`], a job's record and its first message, together or not at all.
//!
//! The embedded profile implements them with SQLite ([`sqlite`]) and files ([`files`]), put
//! together in [`embedded`]; the cluster profile with MySQL ([`mysql`]), MongoDB GridFS
//! ([`gridfs`]), MongoDB ([`mongo_jobs`]) and RabbitMQ ([`rabbitmq`]), put together in
//! [`cluster`]. [`instrumented`] counts what passes through either mailbox.

pub mod blobs;
pub mod cluster;
pub mod embedded;
pub mod files;
pub mod gridfs;
pub mod instrumented;
pub mod intake;
pub mod jobs;
pub mod mailbox;
pub mod mongo_jobs;
pub mod mysql;
pub mod rabbitmq;
mod sql_users;
pub mod sqlite;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

pub use blobs::{
    BlobInfo, BlobMeta, BlobReader, BlobStore, Bucket, ByteRange, Media, MediaSource, SeekableRead, StoreFailure,
};
pub use intake::Intake;
pub use jobs::{
    Attempt, Deletion, Job, JobState, JobStore, NextAttempt, Notification, Overdue, OverdueQuery, Retrying, may_read,
};
pub use mailbox::{DELIVERY_LIMIT, Delivery, Mailbox, Queue};
pub use users::{SessionState, User, UserStore};

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

/// Every store a node uses (the backends behind the storage traits), chosen by the profile.
#[derive(Clone)]
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub jobs: Arc<dyn JobStore>,
    pub mailbox: Arc<dyn Mailbox>,
    pub intake: Arc<dyn Intake>,
}

/// Longest a health check waits for one backend.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

impl Stores {
    /// Whether each backend answers, by the name `/readyz` and `mp3c_backend_up` give it.
    pub async fn health(&self) -> [(&'static str, bool); 4] {
        let (users, blobs, jobs, mailbox) = tokio::join!(
            answers("users", self.users.ping()),
            answers("blobs", self.blobs.ping()),
            answers("jobs", self.jobs.ping()),
            answers("mailbox", self.mailbox.ping())
        );
        [("users", users), ("blobs", blobs), ("jobs", jobs), ("mailbox", mailbox)]
    }

    /// Whether every backend answers (what `/readyz` says).
    pub async fn all_answer(&self) -> bool {
        self.health().await.iter().all(|(_, up)| *up)
    }
}

async fn answers(backend: &str, ping: impl Future<Output = StorageResult<()>>) -> bool {
    match tokio::time::timeout(PING_TIMEOUT, ping).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::debug!(backend, %error, "backend does not answer");
            false
        }
        Err(_) => false,
    }
}

/// Milliseconds since the Unix epoch, the time unit of every stored timestamp.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// Longest wait for one backend call: a stalled server gives errors (503s), never hung requests.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs one backend call under [`CALL_TIMEOUT`]; `what` names it in the error.
pub async fn timed<T>(what: &str, call: impl Future<Output = StorageResult<T>>) -> StorageResult<T> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(StorageError::unavailable(anyhow::anyhow!("{what} did not answer within {CALL_TIMEOUT:?}"))),
    }
}
