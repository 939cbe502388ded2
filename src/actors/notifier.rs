//! The notifier: takes finished (or failed) jobs from the `mp3` queue and emails their owner.
//!
//! At most one email per job: the right to send is claimed in the job record first, and given
//! back only when sending failed, so a redelivered message never mails twice. While the mail
//! server is down, messages are retried with backoff.
//!
//! A result from the seed's own converter running beside ours (no `job_id`) is taken into the
//! job whose video it converted: the MP3 gets the owner's metadata, so the owner can download
//! it, the job is marked done, and the owner is mailed as for our own results. A result for a
//! video that is not one of our jobs is mailed as the seed's notifier would, once per delivery.

use tracing::Instrument;

use super::NodeContext;
use super::converter::mp3_filename;
use super::retry_backoff;
use super::worker::{Worker, decode};
use crate::ids::Id;
use crate::mailer::{Email, MailError};
use crate::messages::{JobMessage, Mp3Notice, SeedResult};
use crate::storage::{BlobMeta, Bucket, Delivery, JobState, Queue};

/// Sending attempts before a notification is given up (about two hours of backoff).
const MAX_SEND_ATTEMPTS: u32 = 30;

pub struct Notifier;

impl Worker for Notifier {
    const QUEUE: Queue = Queue::Mp3;

    async fn process(ctx: &NodeContext, delivery: Box<dyn Delivery>) -> anyhow::Result<()> {
        let Some((notice, delivery)) = decode::<Mp3Notice>(Self::QUEUE, delivery).await? else {
            return Ok(());
        };
        match notice {
            Mp3Notice::Ours(message) => {
                let span = tracing::info_span!("notify", job_id = %message.job_id, attempt = delivery.attempt());
                notify(ctx, message, delivery).instrument(span).await
            }
            Mp3Notice::Seed(result) => {
                let span = tracing::info_span!("notify_seed_result", video_fid = %result.video_fid);
                adopt_seed_result(ctx, result, delivery).instrument(span).await
            }
        }
    }
}

async fn notify(ctx: &NodeContext, message: JobMessage, delivery: Box<dyn Delivery>) -> anyhow::Result<()> {
    if !ctx.backends.jobs.claim_notification(message.job_id).await? {
        tracing::info!("already notified (or the job is gone); acknowledging");
        return Ok(delivery.ack().await?);
    }
    send(ctx, &compose(ctx, &message), delivery, Some(message.job_id)).await
}

async fn adopt_seed_result(ctx: &NodeContext, result: SeedResult, delivery: Box<dyn Delivery>) -> anyhow::Result<()> {
    let Some(job) = ctx.backends.jobs.find_by_video(result.video_fid).await? else {
        tracing::info!("a seed converter's result for a video that is not one of our jobs");
        let email = ready_email(ctx, &result.username, result.mp3_fid);
        return send(ctx, &email, delivery, None).await;
    };
    if job.state != JobState::Done {
        let meta = BlobMeta {
            owner: job.owner.clone(),
            filename: mp3_filename(&job.filename),
            content_type: "audio/mpeg".into(),
            job_id: Some(job.id),
        };
        ctx.backends.blobs.set_meta(Bucket::Mp3s, result.mp3_fid, &meta).await?;
        ctx.backends.jobs.record_result(job.id, result.mp3_fid).await?;
        tracing::info!(job_id = %job.id, mp3_fid = %result.mp3_fid, "took in a seed converter's MP3");
    }
    let message = JobMessage {
        video_fid: job.video_fid,
        mp3_fid: Some(result.mp3_fid),
        username: job.owner,
        job_id: job.id,
        error: None,
    };
    notify(ctx, message, delivery).await
}

/// Sends `email` and answers the delivery; `claimed` is the job whose right to mail is given
/// back if sending failed for now.
async fn send(
    ctx: &NodeContext,
    email: &Email,
    delivery: Box<dyn Delivery>,
    claimed: Option<Id>,
) -> anyhow::Result<()> {
    match ctx.mailer.send(email).await {
        Ok(()) => {
            ctx.metrics.notification("sent");
            tracing::info!("notification sent");
            Ok(delivery.ack().await?)
        }
        Err(MailError::BadAddress(address)) => {
            ctx.metrics.notification("failed");
            tracing::warn!(%address, "the owner cannot be mailed; dropping the notification");
            Ok(delivery.ack().await?)
        }
        Err(MailError::Transient(error)) => {
            ctx.metrics.notification("failed");
            if let Some(job_id) = claimed {
                ctx.backends.jobs.release_notification(job_id).await?;
            }
            let attempt = delivery.attempt();
            if attempt >= MAX_SEND_ATTEMPTS {
                tracing::error!(%error, attempt, "giving up on this notification");
                return Ok(delivery.ack().await?);
            }
            let backoff = retry_backoff(attempt).min(std::time::Duration::from_secs(300));
            tracing::warn!(%error, ?backoff, "sending failed; will retry");
            Ok(delivery.retry(backoff).await?)
        }
    }
}

/// The email for a job: the seed's text for a finished MP3, the reason for a failure.
fn compose(ctx: &NodeContext, message: &JobMessage) -> Email {
    match (&message.error, message.mp3_fid) {
        (None, Some(mp3_fid)) => ready_email(ctx, &message.username, mp3_fid),
        (error, _) => Email {
            to: message.username.clone(),
            subject: "MP3 conversion failed".to_owned(),
            body: format!(
                "Your video (job {}) could not be converted to MP3.\nReason: {}\n",
                message.job_id,
                error.as_deref().unwrap_or("unknown")
            ),
        },
    }
}

/// The seed's text, with a download link when the public URL is known.
fn ready_email(ctx: &NodeContext, to: &str, mp3_fid: Id) -> Email {
    let link = ctx
        .config
        .public_url
        .as_ref()
        .map(|base| format!("\nDownload it at {}download?fid={mp3_fid}\n", with_trailing_slash(base.as_str())))
        .unwrap_or_default();
    Email {
        to: to.to_owned(),
        subject: "MP3 Download".to_owned(),
        body: format!("mp3 file_id: {mp3_fid} is now ready!\n{link}"),
    }
}

fn with_trailing_slash(url: &str) -> String {
    if url.ends_with('/') { url.to_owned() } else { format!("{url}/") }
}
