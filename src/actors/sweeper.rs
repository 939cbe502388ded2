//! The sweeper: publishes again the message of a job whose message may have been lost, so that
//! no job waits forever.
//!
//! Two kinds of job are looked for ([`Overdue`]): work whose `video` message is overdue (a
//! queued job whose record could be written but not its message, nor removed; a job held by an
//! attempt whose lease ran out long ago with no message left to find it), and finished jobs
//! whose owner was not mailed and whose notice is overdue (a crash between the record and the
//! publish, a notice lost to a dead-letter queue). A job's messages are idempotent (consumers
//! decide from the record), so a second copy is harmless; to keep copies rare, each kind is
//! swept only while its queues have no backlog (a job behind a backlog is waiting, not lost),
//! and each re-publish is claimed with a compare-and-set, so that sweepers on several nodes do
//! not all repeat it and the next one waits its turn again.

use std::time::Duration;

use super::periodic::Periodic;
use super::record::{Outcome, write_once};
use crate::messages::JobMessage;
use crate::node::Node;
use crate::storage::{Job, Overdue, Queue, StorageResult, now_millis};

/// Jobs looked at in one sweep.
const BATCH: u32 = 100;

pub struct Sweeper;

/// How old a job's last message must be before it counts as lost: twice the `lease` (a live
/// attempt renews its lease; a waiting delivery comes back within one), and at least 30 s.
pub fn republish_after(lease: Duration) -> Duration {
    (lease * 2).max(Duration::from_secs(30))
}

impl Periodic for Sweeper {
    fn period(node: &Node) -> Duration {
        (republish_after(node.config.conversion.lease()) / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    async fn tick(node: &Node) {
        if let Err(error) = sweep(node, now_millis()).await {
            tracing::warn!(%error, "sweep failed; trying again at the next one");
        }
    }
}

/// One sweep at time `now`; returns how many messages it published again.
pub async fn sweep(node: &Node, now: i64) -> StorageResult<u32> {
    let (jobs, mailbox) = (&node.stores.jobs, &node.stores.mailbox);
    let cutoff = now - republish_after(node.config.conversion.lease()).as_millis() as i64;
    let notices = jobs.overdue(Overdue::Notice, cutoff, BATCH).await?;
    node.services.metrics.jobs.set_notifications_overdue(notices.len() as u64);
    let mut republished = 0;
    if mailbox.depth(Queue::Mp3).await? == 0 && mailbox.depth(Queue::Failures).await? == 0 {
        for job in notices {
            republished += republish(node, job, now, JobMessage::notice).await? as u32;
        }
    }
    if mailbox.depth(Queue::Video).await? == 0 {
        for job in jobs.overdue(Overdue::Work, cutoff, BATCH).await? {
            let video = |job: &Job| Some((Queue::Video, JobMessage::video(job)));
            republished += republish(node, job, now, video).await? as u32;
        }
    }
    Ok(republished)
}

/// Claims the re-publish of `job`'s message (compare-and-set on its record), then publishes it.
async fn republish(
    node: &Node,
    job: Job,
    now: i64,
    message: impl Fn(&Job) -> Option<(Queue, JobMessage)>,
) -> StorageResult<bool> {
    let Some((queue, message)) = message(&job) else { return Ok(false) };
    if let Outcome::Changed(_) = write_once(node.stores.jobs.as_ref(), &job.republished(now)).await? {
        return Ok(false);
    }
    node.stores.mailbox.publish(queue, &message.to_json()).await?;
    node.services.metrics.queues.republished(queue.name());
    tracing::info!(job_id = %job.id, queue = queue.name(), "published a lost message again");
    Ok(true)
}
