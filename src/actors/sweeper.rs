//! The sweeper: publishes again the message of a job whose message may have been lost, so that
//! no job waits forever.
//!
//! A queued job whose `video` message is overdue (its record could be written but its message
//! not, and the record could not be removed either), and a finished job whose owner was not
//! mailed and whose notice is overdue (a crash between the record and the publish), get their
//! message again. A job's messages are idempotent (consumers decide from the record), so a
//! second copy is harmless; to keep copies rare, queued jobs are swept only while the `video`
//! queue has no backlog (a job behind a backlog is waiting, not lost), and each re-publish is
//! claimed with a compare-and-set so that sweepers on several nodes do not all repeat it.

use std::time::Duration;

use super::NodeContext;
use super::periodic::Periodic;
use crate::messages::JobMessage;
use crate::storage::{JobState, Queue, StorageResult, now_millis};

/// Jobs looked at in one sweep.
const BATCH: u32 = 100;

pub struct Sweeper;

/// How old a job's last message must be before it counts as lost: twice the lease (a live
/// attempt renews its lease; a waiting delivery comes back within one), and at least 30 s.
pub fn republish_after(ctx: &NodeContext) -> Duration {
    (ctx.config.lease() * 2).max(Duration::from_secs(30))
}

impl Periodic for Sweeper {
    fn period(ctx: &NodeContext) -> Duration {
        (republish_after(ctx) / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    async fn tick(ctx: &NodeContext) {
        if let Err(error) = sweep(ctx, now_millis()).await {
            tracing::warn!(%error, "sweep failed; trying again at the next one");
        }
    }
}

/// One sweep at time `now`; returns how many messages it published again.
pub async fn sweep(ctx: &NodeContext, now: i64) -> StorageResult<u32> {
    let (jobs, mailbox) = (&ctx.backends.jobs, &ctx.backends.mailbox);
    let cutoff = now - republish_after(ctx).as_millis() as i64;
    let overdue = jobs.overdue(cutoff, BATCH).await?;
    let video_backlog = mailbox.depth(Queue::Video).await? > 0;
    ctx.metrics.set_notifications_overdue(overdue.iter().filter(|job| job.state.is_finished()).count() as u64);
    let mut republished = 0;
    for job in overdue {
        let (queue, message) = match job.state {
            JobState::Queued if video_backlog => continue,
            JobState::Queued => (Queue::Video, JobMessage::video(&job)),
            _ => match JobMessage::notice(&job) {
                Some(notice) => notice,
                None => continue,
            },
        };
        if jobs.update(&job.republished(now)).await?.is_none() {
            continue;
        }
        mailbox.publish(queue, &message.to_json()).await?;
        ctx.metrics.republished(queue);
        tracing::info!(job_id = %job.id, queue = queue.name(), "published a lost message again");
        republished += 1;
    }
    Ok(republished)
}
