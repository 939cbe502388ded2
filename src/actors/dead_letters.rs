//! The dead-letter workers: what a work queue gives up on after
//! [`DELIVERY_LIMIT`](crate::storage::DELIVERY_LIMIT) unanswered deliveries (its consumer died
//! each time before it could even count an attempt in the job record).
//!
//! - `video.dlq`: the job is failed with that reason, so its owner is told rather than left
//!   waiting, and the message never loops.
//! - `mp3.dlq` and `failures.dlq`: a notification must not be lost silently. While the owner
//!   still needs the email, the notice goes back to its queue after [`NOTICE_RETRY_DELAY`];
//!   every pass is counted (`mp3c_queue_deliveries_total` of the dead-letter queue), and the
//!   jobs still waiting for their email show in `mp3c_notifications_overdue`.

use std::time::Duration;

use tracing::Instrument;

use super::jobs::{delete_output, job_of, publish_notice};
use super::record::{Written, write};
use super::worker::{Answer, Worker, decode};
use crate::job_events::{self, JobEvent};
use crate::messages::{Mp3Notice, VideoNotice};
use crate::node::Node;
use crate::storage::{DELIVERY_LIMIT, Delivery, Job, StorageResult, now_millis};

/// How long a dead-lettered notice waits before it goes back to its queue.
pub const NOTICE_RETRY_DELAY: Duration = Duration::from_secs(60);

/// The `video.dlq` worker.
pub struct DeadVideos;

impl Worker for DeadVideos {
    async fn handle(node: &Node, delivery: &dyn Delivery) -> StorageResult<Answer> {
        let Some(notice) = decode::<VideoNotice>(delivery) else {
            return Ok(Answer::Park);
        };
        let Some(job) = job_of(&node.stores, notice).await?.filter(|job| !job.state.is_finished()) else {
            return Ok(Answer::Ack);
        };
        let span = tracing::info_span!("dead_letter", job_id = %job.id);
        fail_dead_job(node, job).instrument(span).await
    }
}

/// Fails a dead-lettered job, unless an attempt is converting it right now (a duplicate of its
/// message was dead-lettered): then looks again when that attempt's lease runs out.
async fn fail_dead_job(node: &Node, job: Job) -> StorageResult<Answer> {
    let now = now_millis();
    if job.live_attempt(now).is_some() {
        return Ok(Answer::Retry(job.lease_left(now) + Duration::from_millis(500)));
    }
    let reason = format!(
        "gave up after {} attempts: its message was delivered {DELIVERY_LIMIT} times without an answer",
        job.attempts
    );
    let fail = |job: &Job| (!job.state.is_finished()).then(|| job.fail(&reason, now));
    let failed = match write(node.stores.jobs.as_ref(), &job, fail).await? {
        Written::Stored(failed) => failed,
        Written::Lost => return Ok(Answer::Ack),
    };
    job_events::publish(&JobEvent::of(&failed));
    if let Some(attempt) = job.attempt {
        delete_output(node.stores.blobs.as_ref(), attempt.output_fid).await;
    }
    node.services.metrics.jobs.conversion("failed");
    tracing::warn!(reason, "dead-lettered job failed");
    publish_notice(node.stores.mailbox.as_ref(), &failed).await?;
    Ok(Answer::Ack)
}

/// The `mp3.dlq` and `failures.dlq` worker.
pub struct DeadNotices;

impl Worker for DeadNotices {
    async fn handle(node: &Node, delivery: &dyn Delivery) -> StorageResult<Answer> {
        let job_id = match decode::<Mp3Notice>(delivery) {
            None => return Ok(Answer::Park),
            Some(Mp3Notice::Ours(message)) => message.job_id,
            // A legacy converter's result: the notifier decides it again from scratch.
            Some(Mp3Notice::Legacy(_)) => return Ok(Answer::Forward(delivery.queue().work(), NOTICE_RETRY_DELAY)),
        };
        let waiting = node.stores.jobs.get(job_id).await?.is_some_and(|job| job.needs_notification());
        if !waiting {
            return Ok(Answer::Ack);
        }
        tracing::warn!(%job_id, queue = delivery.queue().name(), "a dead-lettered notice goes back to its queue");
        Ok(Answer::Forward(delivery.queue().work(), NOTICE_RETRY_DELAY))
    }
}
