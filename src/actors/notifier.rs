//! The notifier: takes finished (or failed) jobs from the `mp3` queue and emails their owner.
//!
//! At most one email per job: the right to send is claimed in the job record first, and given
//! back only when sending failed, so a redelivered message never mails twice. While the mail
//! server is down, messages are retried with backoff.

use tracing::Instrument;

use super::NodeContext;
use super::retry_backoff;
use super::worker::{Worker, decode};
use crate::mailer::{Email, MailError};
use crate::messages::JobMessage;
use crate::storage::{Delivery, Queue};

/// Sending attempts before a notification is given up (about two hours of backoff).
const MAX_SEND_ATTEMPTS: u32 = 30;

pub struct Notifier;

impl Worker for Notifier {
    const QUEUE: Queue = Queue::Mp3;

    async fn process(ctx: &NodeContext, delivery: Box<dyn Delivery>) -> anyhow::Result<()> {
        let Some((message, delivery)) = decode(Self::QUEUE, delivery).await? else {
            return Ok(());
        };
        let span = tracing::info_span!("notify", job_id = %message.job_id, attempt = delivery.attempt());
        notify(ctx, message, delivery).instrument(span).await
    }
}

async fn notify(ctx: &NodeContext, message: JobMessage, delivery: Box<dyn Delivery>) -> anyhow::Result<()> {
    let jobs = &ctx.backends.jobs;
    if !jobs.claim_notification(message.job_id).await? {
        tracing::info!("already notified (or the job is gone); acknowledging");
        return Ok(delivery.ack().await?);
    }
    let email = compose(ctx, &message);
    match ctx.mailer.send(&email).await {
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
            jobs.release_notification(message.job_id).await?;
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
    let download_link = |fid: String| {
        ctx.config
            .public_url
            .as_ref()
            .map(|base| format!("\nDownload it at {}download?fid={fid}\n", with_trailing_slash(base.as_str())))
            .unwrap_or_default()
    };
    let (subject, body) = match (&message.error, message.mp3_fid) {
        (None, Some(mp3_fid)) => (
            "MP3 Download".to_owned(),
            format!("mp3 file_id: {mp3_fid} is now ready!\n{}", download_link(mp3_fid.to_string())),
        ),
        (error, _) => (
            "MP3 conversion failed".to_owned(),
            format!(
                "Your video (job {}) could not be converted to MP3.\nReason: {}\n",
                message.job_id,
                error.as_deref().unwrap_or("unknown")
            ),
        ),
    };
    Email { to: message.username.clone(), subject, body }
}

fn with_trailing_slash(url: &str) -> String {
    if url.ends_with('/') { url.to_owned() } else { format!("{url}/") }
}
