//! Taking in a job: its record and its `video` message must exist together, or neither, so that
//! no upload leaves a job that never runs.
//!
//! The embedded profile writes both in one SQLite transaction. Across separate servers (MongoDB
//! and RabbitMQ) no transaction spans both: [`RecordThenPublish`] writes the record, publishes,
//! and removes the record again if the publish failed. If even that removal fails (both servers
//! in trouble at once), the queued record stays behind without a message; the sweeper publishes
//! it again once it is overdue, so the job still runs.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Job, JobStore, Mailbox, Queue, StorageResult};

#[async_trait]
pub trait Intake: Send + Sync {
    /// Records `job` (queued) and publishes `message` on the `video` queue.
    async fn submit(&self, job: &Job, message: &[u8]) -> StorageResult<()>;
}

/// Intake over a job store and a mailbox that share no transaction.
pub struct RecordThenPublish {
    pub jobs: Arc<dyn JobStore>,
    pub mailbox: Arc<dyn Mailbox>,
}

#[async_trait]
impl Intake for RecordThenPublish {
    async fn submit(&self, job: &Job, message: &[u8]) -> StorageResult<()> {
        self.jobs.create(job).await?;
        if let Err(error) = self.mailbox.publish(Queue::Video, message).await {
            if let Err(undo) = self.jobs.delete(job).await {
                tracing::warn!(job_id = %job.id, %undo, "could not remove a job whose message was not published");
            }
            return Err(error);
        }
        Ok(())
    }
}
