//! The dead-letter worker: takes videos from `video.dlq`, where the mailbox puts a job whose
//! every delivery ended without an answer (its converter died each time: a file that crashes
//! FFmpeg, say), and fails the job with that reason, so its owner is told rather than left
//! waiting and the poison message never loops.

use tracing::Instrument;

use super::NodeContext;
use super::converter::fail_job;
use super::worker::{Worker, decode};
use crate::messages::JobMessage;
use crate::storage::{Delivery, JobState, Queue};

pub struct DeadLetters;

impl Worker for DeadLetters {
    const QUEUE: Queue = Queue::VideoDead;

    async fn process(ctx: &NodeContext, delivery: Box<dyn Delivery>) -> anyhow::Result<()> {
        let Some((message, delivery)) = decode::<JobMessage>(Self::QUEUE, delivery).await? else {
            return Ok(());
        };
        let span = tracing::info_span!("dead_letter", job_id = %message.job_id);
        async {
            match ctx.backends.jobs.get(message.job_id).await? {
                Some(job) if !matches!(job.state, JobState::Done | JobState::Failed) => {
                    let reason = format!(
                        "the conversion stopped without finishing on each of its {} attempts",
                        ctx.config.max_attempts
                    );
                    fail_job(ctx, &job, &reason, delivery).await
                }
                _ => Ok(delivery.ack().await?),
            }
        }
        .instrument(span)
        .await
    }
}
