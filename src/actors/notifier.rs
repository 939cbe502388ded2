//! The notifier: takes finished jobs from the `mp3` and `failures` queues and emails their
//! owner, once.
//!
//! The email is composed from the job record, never from the message. Its right to be sent is
//! claimed in the record first (`sending`, with the time), and the record says `sent` once the
//! mail server accepted it. A claim older than its timeout is taken over: a notifier that
//! crashed between the mail server's answer and the `sent` write sends the email again, which
//! beats never; the copy carries the same `Message-ID` (and replaces the first in the outbox).
//! So an email claimed by a node that died goes out once the claim expires: the node's lease
//! plus the mailer's time limit (30 s for SMTP, 5 s for the outbox) after the claim. While the mail server is down, a notice is retried with backoff
//! for as long as it takes.
//!
//! A result from the legacy design's own converter running beside ours (no `job_id`) is taken into the
//! job whose video it converted, but only for a job that is not finished, whose owner the
//! message names, and whose MP3 belongs to no other job. A result for a video that is not one
//! of our jobs is mailed as the legacy design's notifier would, once per delivery.

use std::time::Duration;

use tracing::Instrument;

use super::record::{Outcome, Written, write_once, write_patiently};
use super::worker::{Answer, Worker, decode};
use crate::config::{Config, NotifyCrash};
use crate::emails;
use crate::ids::Id;
use crate::job_events::{self, JobEvent};
use crate::mailer::{Email, MailError, Mailer};
use crate::messages::{LegacyResult, Mp3Notice};
use crate::node::Node;
use crate::storage::{
    BlobStore, Bucket, Delivery, Job, JobState, Notification, StorageError, StorageResult, now_millis,
};
use url::Url;

pub struct Notifier;

impl Worker for Notifier {
    async fn handle(node: &Node, delivery: &dyn Delivery) -> StorageResult<Answer> {
        let Some(notice) = decode::<Mp3Notice>(delivery) else {
            return Ok(Answer::Park);
        };
        match notice {
            Mp3Notice::Ours(message) => {
                let span = tracing::info_span!("notify", job_id = %message.job_id);
                notify(node, message.job_id, delivery.attempt()).instrument(span).await
            }
            Mp3Notice::Legacy(result) => {
                let span = tracing::info_span!("notify_legacy_result", video_fid = %result.video_fid);
                adopt_legacy_result(node, result, delivery.attempt()).instrument(span).await
            }
        }
    }
}

/// How long a claim to send protects a sender: the node's lease plus the mail server's time
/// limit, so that only a sender that died loses it.
pub fn claim_timeout(lease: Duration, mailer: &dyn Mailer) -> Duration {
    lease + mailer.timeout()
}

async fn notify(node: &Node, job_id: Id, attempt: u32) -> StorageResult<Answer> {
    let jobs = &node.stores.jobs;
    let Some(job) = jobs.get(job_id).await? else {
        tracing::info!("the job is gone; dropping its notice");
        return Ok(Answer::Ack);
    };
    if !job.needs_notification() {
        tracing::info!(state = job.state.as_str(), notification = job.notification.as_str(), "nothing to send");
        return Ok(Answer::Ack);
    }
    let Some(claim) = job
        .claim_notification(now_millis(), claim_timeout(node.config.conversion.lease(), node.services.mailer.as_ref()))
    else {
        let since = job.notification.since().unwrap_or_default();
        let left = (since
            + claim_timeout(node.config.conversion.lease(), node.services.mailer.as_ref()).as_millis() as i64
            - now_millis())
        .max(0) as u64;
        tracing::info!("another notifier is sending it; looking again later");
        return Ok(Answer::Retry(Duration::from_millis(left) + Duration::from_secs(1)));
    };
    let claimed = match write_once(jobs.as_ref(), &claim).await? {
        Outcome::Stored(claimed) => claimed,
        Outcome::Changed(_) => return Ok(Answer::Retry(Duration::from_millis(200))),
    };
    let our_claim = claimed.notification;
    crash_if_asked(&node.config, NotifyCrash::Claimed);
    let outcome = node.services.mailer.send(&compose(node.config.mail.public_url.as_ref(), &claimed)).await;
    if outcome.is_ok() {
        crash_if_asked(&node.config, NotifyCrash::Mailed);
    }
    let now = now_millis();
    let (outcome, next_message_at, answer) = match outcome {
        Ok(()) => {
            node.services.metrics.jobs.notification("sent");
            tracing::info!("notification sent");
            (Notification::Sent, now, Answer::Ack)
        }
        Err(MailError::BadAddress(address)) => {
            node.services.metrics.jobs.notification("undeliverable");
            tracing::warn!(%address, "the owner cannot be mailed; giving up on this notification");
            (Notification::Undeliverable, now, Answer::Ack)
        }
        Err(MailError::Transient(error)) => {
            node.services.metrics.jobs.notification("failed");
            let backoff = super::MAIL_BACKOFF.wait(attempt);
            tracing::warn!(%error, ?backoff, "sending failed; will retry");
            // Its next message is this delivery, back after the backoff: not overdue before.
            (Notification::Pending, now + backoff.as_millis() as i64, Answer::Retry(backoff))
        }
    };
    // Once mailed, the record must say so (or the claim would expire and the email go again),
    // whatever else changed in it meanwhile, as long as the claim is still ours.
    let record =
        |job: &Job| (job.notification == our_claim).then(|| job.notified(outcome, now).republished(next_message_at));
    match write_patiently(node, &claimed, record).await {
        Ok(Written::Stored(mailed)) => {
            if outcome == Notification::Sent {
                node.services.metrics.jobs.job_mailed(mailed.state.as_str(), mailed.created_at, now);
            }
            Ok(answer)
        }
        Ok(Written::Lost) => {
            tracing::warn!("another notifier took over the claim while the email was sent");
            Ok(Answer::Ack)
        }
        // Stopping: the claim expires and another notifier sends the email again.
        Err(_) => Ok(Answer::Release),
    }
}

async fn adopt_legacy_result(node: &Node, result: LegacyResult, attempt: u32) -> StorageResult<Answer> {
    let Some(job) = node.stores.jobs.find_by_video(result.video_fid).await? else {
        tracing::info!("a legacy converter's result for a video that is not one of our jobs");
        let email = emails::ready_untracked(&result.username, result.mp3_fid, node.config.mail.public_url.as_ref());
        return send_unrecorded(node, &email, attempt).await;
    };
    let adopted = job.state == JobState::Done && job.mp3_fid == Some(result.mp3_fid);
    if !adopted {
        if let Some(refusal) = refuse_legacy_result(node.stores.blobs.as_ref(), &job, &result).await? {
            tracing::warn!(job_id = %job.id, mp3_fid = %result.mp3_fid, refusal, "refusing a legacy converter's result");
            return Ok(Answer::Park);
        }
        let Some(adoption) = job.adopt_result(result.mp3_fid, now_millis()) else { return Ok(Answer::Ack) };
        match write_once(node.stores.jobs.as_ref(), &adoption).await? {
            Outcome::Stored(done) => job_events::publish(&JobEvent::of(&done)),
            Outcome::Changed(_) => return Ok(Answer::Retry(Duration::from_millis(200))),
        }
        tracing::info!(job_id = %job.id, mp3_fid = %result.mp3_fid, "took in a legacy converter's MP3");
    }
    // Labelled after the job took it (and again on a redelivery, in case that failed), so that
    // an MP3 no job took is never labelled for its owner.
    let meta = job.mp3_meta();
    node.stores.blobs.set_meta(Bucket::Mp3s, result.mp3_fid, &meta).await?;
    notify(node, job.id, attempt).await
}

/// Why a legacy converter's result may not become this job's MP3, if it may not: the job is
/// finished, the message names another owner, or the MP3 is missing or belongs to another.
async fn refuse_legacy_result(
    blobs: &dyn BlobStore,
    job: &Job,
    result: &LegacyResult,
) -> StorageResult<Option<&'static str>> {
    if job.state.is_finished() {
        return Ok(Some("the job is already finished"));
    }
    if result.username != job.owner {
        return Ok(Some("the message names another owner"));
    }
    let mp3 = match blobs.stat(Bucket::Mp3s, result.mp3_fid).await {
        Ok(mp3) => mp3,
        Err(StorageError::NotFound) => return Ok(Some("the MP3 does not exist")),
        Err(other) => return Err(other),
    };
    Ok((!job.may_adopt(&mp3.meta)).then_some("the MP3 belongs to another job"))
}

/// Sends an email that no job record tracks (a legacy-only result), retrying while the mail
/// server is down.
async fn send_unrecorded(node: &Node, email: &Email, attempt: u32) -> StorageResult<Answer> {
    match node.services.mailer.send(email).await {
        Ok(()) => {
            node.services.metrics.jobs.notification("sent");
            Ok(Answer::Ack)
        }
        Err(MailError::BadAddress(address)) => {
            node.services.metrics.jobs.notification("undeliverable");
            tracing::warn!(%address, "the recipient cannot be mailed; dropping the notification");
            Ok(Answer::Ack)
        }
        Err(MailError::Transient(error)) => {
            node.services.metrics.jobs.notification("failed");
            let backoff = super::MAIL_BACKOFF.wait(attempt);
            tracing::warn!(%error, ?backoff, "sending failed; will retry");
            Ok(Answer::Retry(backoff))
        }
    }
}

/// Test-only: dies at `point` as a node killed there would (fault hooks).
fn crash_if_asked(config: &Config, point: NotifyCrash) {
    if config.faults.crashes_notifying(point) {
        tracing::error!(?point, "fault injection: aborting the process while mailing");
        std::process::abort();
    }
}

/// The email for a finished job: its MP3 is ready, or why it failed.
fn compose(public_url: Option<&Url>, job: &Job) -> Email {
    match (job.state, job.mp3_fid) {
        (JobState::Done, Some(mp3_fid)) => emails::ready(job, mp3_fid, public_url),
        _ => emails::failed(job),
    }
}
