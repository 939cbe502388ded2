//! The converter: takes a job from the `video` queue, transcodes its video to an MP3, stores
//! the MP3 and hands the result to the notifier on the `mp3` queue.
//!
//! Redelivered work is idempotent: the MP3's id is reserved in the job record at the first
//! attempt and reused, and a job already finished is only acknowledged. The result message is
//! published before the job is marked finished, so a crash in between repeats the message (the
//! notifier mails once per job) rather than losing it.

use std::time::{Duration, Instant};

use tracing::Instrument;

use super::NodeContext;
use super::retry_backoff;
use super::worker::{Worker, decode};
use crate::ids::Id;
use crate::messages::JobMessage;
use crate::storage::{BlobMeta, Bucket, Delivery, Job, JobState, Queue, StorageError};
use crate::transcode::{StopSignal, TranscodeError, TranscodeOptions, Transcoded, transcode};

pub struct Converter;

impl Worker for Converter {
    const QUEUE: Queue = Queue::Video;

    async fn process(ctx: &NodeContext, delivery: Box<dyn Delivery>) -> anyhow::Result<()> {
        let Some((message, delivery)) = decode::<JobMessage>(Self::QUEUE, delivery).await? else {
            return Ok(());
        };
        let span = tracing::info_span!("convert", job_id = %message.job_id, attempt = delivery.attempt());
        convert_job(ctx, message, delivery).instrument(span).await
    }
}

/// Why a conversion did not produce an MP3.
enum Failure {
    /// The input is at fault; retrying cannot help.
    Permanent(String),
    /// Storage or the disk failed; a retry may succeed.
    Transient(anyhow::Error),
    /// The node is shutting down: give the job back to the queue.
    Cancelled,
}

async fn convert_job(ctx: &NodeContext, message: JobMessage, delivery: Box<dyn Delivery>) -> anyhow::Result<()> {
    let Some(job) = ctx.backends.jobs.get(message.job_id).await? else {
        tracing::info!("the job no longer exists; dropping its message");
        return Ok(delivery.ack().await?);
    };
    if matches!(job.state, JobState::Done | JobState::Failed) {
        tracing::info!(state = job.state.as_str(), "the job is already finished; acknowledging a redelivery");
        return Ok(delivery.ack().await?);
    }
    let attempt = delivery.attempt();
    let max_attempts = ctx.config.max_attempts;
    if attempt > max_attempts {
        let reason = format!(
            "gave up after {max_attempts} attempts: {}",
            job.error.as_deref().unwrap_or("the converter stopped each time")
        );
        return fail_job(ctx, &job, &reason, delivery).await;
    }
    let mp3_fid = job.mp3_fid.unwrap_or_else(Id::generate);
    ctx.backends.jobs.mark_converting(job.id, attempt, mp3_fid).await?;
    tracing::info!(video_fid = %job.video_fid, %mp3_fid, "converting");

    match convert_and_store(ctx, &job, mp3_fid).await {
        Ok(done) => finish_job(ctx, &job, mp3_fid, done, delivery).await,
        Err(Failure::Permanent(reason)) => fail_job(ctx, &job, &reason, delivery).await,
        Err(Failure::Cancelled) => {
            tracing::info!("shutting down: the job goes back to the queue");
            Ok(delivery.release().await?)
        }
        Err(Failure::Transient(error)) if attempt < max_attempts => {
            let backoff = retry_backoff(attempt);
            tracing::warn!(error = format!("{error:#}"), ?backoff, "conversion failed; it will be retried");
            ctx.metrics.conversion("retried");
            Ok(delivery.retry(backoff).await?)
        }
        Err(Failure::Transient(error)) => fail_job(ctx, &job, &format!("{error:#}"), delivery).await,
    }
}

async fn convert_and_store(ctx: &NodeContext, job: &Job, mp3_fid: Id) -> Result<Transcoded, Failure> {
    if ctx.config.crash_on() == Some(job.filename.as_str()) {
        tracing::error!("fault injection: aborting the process on this file");
        std::process::abort();
    }
    let source = ctx.backends.blobs.local_media(Bucket::Videos, job.video_fid).await.map_err(|e| match e {
        StorageError::NotFound => Failure::Permanent("the uploaded video is missing".into()),
        other => Failure::Transient(other.into()),
    })?;
    let output = tempfile::Builder::new()
        .suffix(".mp3")
        .tempfile_in(ctx.config.scratch_dir())
        .map_err(|e| Failure::Transient(e.into()))?
        .into_temp_path();

    let started = Instant::now();
    let transcoded = run_transcode(ctx, source.path().to_owned(), output.to_path_buf()).await?;
    ctx.metrics.conversion_seconds.observe(started.elapsed().as_secs_f64());

    let meta = BlobMeta {
        owner: job.owner.clone(),
        filename: mp3_filename(&job.filename),
        content_type: "audio/mpeg".into(),
        job_id: Some(job.id),
    };
    ctx.backends
        .blobs
        .put_file(Bucket::Mp3s, mp3_fid, &meta, &output)
        .await
        .map_err(|e| Failure::Transient(e.into()))?;
    Ok(transcoded)
}

/// Runs the transcoder on a blocking thread under the time limit; once shutdown starts, it
/// may run for the grace period before it is stopped.
async fn run_transcode(
    ctx: &NodeContext,
    input: std::path::PathBuf,
    output: std::path::PathBuf,
) -> Result<Transcoded, Failure> {
    let stop = StopSignal::new(Instant::now() + ctx.config.conversion_timeout());
    let options = TranscodeOptions { bit_rate: ctx.config.bitrate_kbps as usize * 1000 };
    let grace_watch = tokio::spawn({
        let stop = stop.clone();
        let shutdown = ctx.shutdown.clone();
        let grace = ctx.config.shutdown_grace();
        async move {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
            stop.cancel();
        }
    });
    let delay = ctx.config.convert_delay();
    let result = tokio::task::spawn_blocking(move || {
        fault_delay(delay, &stop)?;
        transcode(&input, &output, options, &stop)
    })
    .await;
    grace_watch.abort();
    match result {
        Ok(Ok(transcoded)) => Ok(transcoded),
        Ok(Err(TranscodeError::Cancelled)) => Err(Failure::Cancelled),
        Ok(Err(error)) if error.is_permanent() => Err(Failure::Permanent(error.to_string())),
        Ok(Err(error)) => Err(Failure::Transient(error.into())),
        // A panic inside FFmpeg's wrapper on this input would recur on every retry.
        Err(join) => Err(Failure::Permanent(format!("the converter crashed on this file ({join})"))),
    }
}

/// Test-only (`--fault-hooks`): holds a conversion for `delay`, as a long one would, while
/// obeying its stop signal.
fn fault_delay(delay: Duration, stop: &StopSignal) -> Result<(), TranscodeError> {
    let until = Instant::now() + delay;
    while Instant::now() < until {
        stop.check()?;
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// `holiday video.mp4` becomes `holiday video.mp3`.
pub(super) fn mp3_filename(original: &str) -> String {
    let stem = std::path::Path::new(original).file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let stem = if stem.is_empty() { "audio" } else { stem };
    format!("{stem}.mp3")
}

async fn finish_job(
    ctx: &NodeContext,
    job: &Job,
    mp3_fid: Id,
    done: Transcoded,
    delivery: Box<dyn Delivery>,
) -> anyhow::Result<()> {
    let message = JobMessage {
        video_fid: job.video_fid,
        mp3_fid: Some(mp3_fid),
        username: job.owner.clone(),
        job_id: job.id,
        error: None,
    };
    ctx.backends.mailbox.publish(Queue::Mp3, &message.to_json()).await?;
    ctx.backends.jobs.mark_done(job.id, done.media_seconds).await?;
    ctx.metrics.media_seconds.inc_by(done.media_seconds);
    ctx.metrics.conversion("done");
    tracing::info!(media_seconds = done.media_seconds, "converted");
    Ok(delivery.ack().await?)
}

pub(super) async fn fail_job(
    ctx: &NodeContext,
    job: &Job,
    reason: &str,
    delivery: Box<dyn Delivery>,
) -> anyhow::Result<()> {
    let message = JobMessage {
        video_fid: job.video_fid,
        mp3_fid: None,
        username: job.owner.clone(),
        job_id: job.id,
        error: Some(reason.to_owned()),
    };
    ctx.backends.mailbox.publish(Queue::Mp3, &message.to_json()).await?;
    ctx.backends.jobs.mark_failed(job.id, reason).await?;
    ctx.metrics.conversion("failed");
    tracing::warn!(reason, "conversion failed");
    Ok(delivery.ack().await?)
}

#[cfg(test)]
mod tests {
    use super::mp3_filename;

    #[test]
    fn the_mp3_keeps_the_original_stem() {
        assert_eq!(mp3_filename("holiday video.mp4"), "holiday video.mp3");
        assert_eq!(mp3_filename("clip"), "clip.mp3");
        assert_eq!(mp3_filename(""), "audio.mp3");
        assert_eq!(mp3_filename("été.mov"), "été.mp3");
    }
}
