//! The converter: takes a job from the `video` queue, transcodes its video to an MP3, stores
//! the MP3 and hands the result to the notifier (`mp3`, or `failures` when it failed).
//!
//! Every step is decided from the job record and written as a compare-and-set
//! ([`crate::storage::jobs`]), so a duplicate delivery, a crash between any two steps or two
//! attempts at once still give one MP3, one `done` and one notice:
//! 1. read the job; a finished one only gets its notice published again (a duplicate);
//! 2. take it: `queued` (or `converting` under a dead attempt's expired lease) to `converting`,
//!    counting the attempt, with this attempt's own output id and a lease that a keep-alive
//!    renews while the conversion runs; a live lease of another attempt makes this delivery
//!    wait and look again;
//! 3. convert, store the MP3 under the attempt's output id;
//! 4. `converting` (still this attempt's) to `done` with that MP3, then publish the notice. An
//!    attempt that lost the job meanwhile deletes its output instead.
//!
//! A fault of the input fails the job at once. A conversion that runs out of time, or whose
//! FFmpeg worker crashes, counts as an attempt and is tried again until the same failure comes
//! twice or the attempts are used up. A failure of storage gives the attempt back uncounted and
//! retries the delivery after a backoff, for at most `--uncounted-retry-limit-seconds` while
//! the backends answer; shutdown gives it back too.
//! Storing the finished MP3 and the final write wait out an outage (until the node stops)
//! rather than throw the conversion away; every write is checked against its lost answers
//! ([`super::record`]).
//!
//! Every change it writes (taken, given back, done, failed), and the progress of the
//! conversion once a second, goes out as a live job event to the gateways ([`crate::job_events`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use super::jobs::{delete_output, job_of, publish_notice};
use super::record::{Outcome, Patience, Written, patiently, write, write_once, write_patiently};
use super::worker::{Answer, OUTAGE_BACKOFF, Worker, decode};
use crate::config::Conversion;
use crate::ids::Id;
use crate::job_events::{self, JobEvent};
use crate::messages::VideoNotice;
use crate::node::Node;
use crate::scratch::ScratchFile;
use crate::storage::jobs::RACES;
use crate::storage::{
    Bucket, Delivery, Job, JobState, JobStore, MediaSource, NextAttempt, StorageError, StorageResult, now_millis,
};
use crate::transcode::{StopSignal, TranscodeError, TranscodeOptions, Transcoded};

pub struct Converter;

impl Worker for Converter {
    async fn handle(node: &Node, delivery: &dyn Delivery) -> StorageResult<Answer> {
        let Some(notice) = decode::<VideoNotice>(delivery) else {
            return Ok(Answer::Park);
        };
        let Some(job) = job_of(&node.stores, notice).await? else {
            tracing::info!("no job for this message (deleted, or its video is gone); acknowledging it");
            return Ok(Answer::Ack);
        };
        let span = tracing::info_span!("convert", job_id = %job.id, delivery = delivery.attempt());
        take_and_convert(node, job, delivery.attempt()).instrument(span).await
    }
}

/// Steps 1 and 2, then the conversion; a lost race reads the record again (a few times).
async fn take_and_convert(node: &Node, mut job: Job, delivery: u32) -> StorageResult<Answer> {
    for _ in 0..RACES {
        let next = job.next_attempt(
            now_millis(),
            Id::generate(),
            node.config.conversion.lease(),
            node.config.conversion.max_attempts,
        );
        let (written, stale_output) = match &next {
            NextAttempt::Finished => {
                publish_notice(node.stores.mailbox.as_ref(), &job).await?;
                return Ok(Answer::Ack);
            }
            NextAttempt::Wait(remaining) => {
                tracing::info!(?remaining, "another attempt holds the job; looking again later");
                return Ok(Answer::Retry(*remaining + Duration::from_millis(500)));
            }
            NextAttempt::Begin { job: next, stale_output } | NextAttempt::GiveUp { job: next, stale_output } => {
                (write_once(node.stores.jobs.as_ref(), next).await?, *stale_output)
            }
        };
        let held = match written {
            Outcome::Stored(held) => {
                job_events::publish(&JobEvent::of(&held));
                held
            }
            Outcome::Changed(Some(changed)) => {
                job = changed;
                continue;
            }
            Outcome::Changed(None) => return Ok(Answer::Ack),
        };
        if let Some(stale) = stale_output {
            delete_output(node.stores.blobs.as_ref(), stale).await;
        }
        if held.state.is_finished() {
            return conclude(node, held).await;
        }
        return Ok(convert(node, held, delivery).await);
    }
    Ok(Answer::Retry(Duration::from_secs(1)))
}

/// A change to the job record, decided once the attempt ended.
type Transition = Box<dyn Fn(&Job) -> Option<Job> + Send + Sync>;

/// Why an attempt did not produce an MP3.
enum Failure {
    /// The input is at fault; retrying cannot help.
    Permanent(String),
    /// Storage or the disk failed; the attempt does not count.
    Transient(anyhow::Error),
    /// It ran out of time, or the FFmpeg worker crashed or failed writing: the attempt counts
    /// ([`Job::attempt_failed`] decides whether another follows).
    Counted(String),
    /// The node is shutting down, or the attempt lost the job.
    Stopped,
}

/// Step 3 and 4 for a job this attempt holds (`delivery`: the delivery's number, for backoff).
async fn convert(node: &Node, held: Job, delivery: u32) -> Answer {
    let output_fid = held.attempt.expect("a held job has an attempt").output_fid;
    tracing::info!(video_fid = %held.video_fid, %output_fid, attempt = held.attempts, "converting");
    let _held = node.activity.hold(held.id);
    let stop = StopSignal::new(Instant::now() + node.config.conversion.timeout());
    let lease =
        LeaseKeeper::start(node.stores.jobs.clone(), node.config.conversion.lease(), held.clone(), stop.clone());
    let progress = report_progress(lease.current.clone(), stop.clone());
    let outcome = convert_and_store(node, &held, output_fid, &stop).await;
    drop(progress);
    let Some(current) = lease.stop().await else {
        tracing::warn!("the attempt lost the job to another; discarding its output");
        delete_output(node.stores.blobs.as_ref(), output_fid).await;
        return Answer::Ack;
    };
    let now = now_millis();
    let max_attempts = node.config.conversion.max_attempts;
    let (change, answer): (Transition, Answer) = match outcome {
        Ok(done) => {
            node.services.metrics.jobs.media_seconds.inc_by(done.media_seconds);
            node.services.metrics.jobs.conversion("done");
            tracing::info!(media_seconds = done.media_seconds, "converted");
            (Box::new(move |job: &Job| job.finish(done.media_seconds, now)), Answer::Ack)
        }
        Err(Failure::Permanent(reason)) => (Box::new(move |job: &Job| Some(job.fail(&reason, now))), Answer::Ack),
        Err(Failure::Counted(reason)) => {
            tracing::warn!(reason, "the attempt failed; it counts");
            let change = move |job: &Job| job.attempt_failed(&reason, now, max_attempts);
            (Box::new(change), Answer::Retry(Duration::from_secs(1)))
        }
        Err(Failure::Stopped) => {
            tracing::info!("shutting down: the job goes back to the queue");
            (Box::new(move |job: &Job| job.give_back(false, None, now)), Answer::Release)
        }
        Err(Failure::Transient(error)) => {
            node.services.metrics.jobs.conversion("retried");
            let (backoff, reason, limit) =
                (OUTAGE_BACKOFF.wait(delivery), format!("{error:#}"), node.config.conversion.uncounted_retry_limit());
            tracing::warn!(reason, ?backoff, "the attempt failed on storage; it does not count");
            // Asked only of a job that has retried for its whole limit: then an outage is waited
            // out, and anything else ends the job.
            let backends_answer = current.retrying_longer_than(limit, now) && node.stores.all_answer().await;
            let next_at = now + backoff.as_millis() as i64;
            let change = move |job: &Job| job.retry_uncounted(&reason, now, next_at, limit, backends_answer);
            (Box::new(change), Answer::Retry(backoff))
        }
    };
    let ours = |job: &Job| change(job).filter(|_| job.held_by(output_fid));
    match write_patiently(node, &current, ours).await {
        Ok(Written::Stored(stored)) => {
            job_events::publish(&JobEvent::of(&stored));
            if stored.mp3_fid != Some(output_fid) {
                delete_output(node.stores.blobs.as_ref(), output_fid).await;
            }
            if stored.state.is_finished() {
                return conclude(node, stored).await.unwrap_or(Answer::Retry(Duration::from_secs(1)));
            }
            answer
        }
        Ok(Written::Lost) => {
            tracing::warn!("the job changed under the attempt; discarding its output");
            delete_output(node.stores.blobs.as_ref(), output_fid).await;
            Answer::Ack
        }
        // Stopping before the outcome could be recorded: the job stays with this attempt until
        // its lease runs out, and the output stays too (a taker-over deletes it).
        Err(_) => Answer::Release,
    }
}

/// A finished job: count a failure and publish its notice.
async fn conclude(node: &Node, job: Job) -> StorageResult<Answer> {
    if let (JobState::Failed, Some(reason)) = (job.state, &job.error) {
        node.services.metrics.jobs.conversion("failed");
        tracing::warn!(reason, "conversion failed");
    }
    publish_notice(node.stores.mailbox.as_ref(), &job).await?;
    Ok(Answer::Ack)
}

/// How often a running conversion's progress goes out.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Publishes the progress `stop` carries every [`PROGRESS_EVERY`], as the record the attempt
/// holds (`current`, kept by its [`LeaseKeeper`], whose version orders the events), until
/// dropped or the attempt loses the job.
fn report_progress(current: Arc<tokio::sync::Mutex<Option<Job>>>, stop: StopSignal) -> AbortOnDropHandle<()> {
    AbortOnDropHandle::new(tokio::spawn(async move {
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(job) = current.lock().await.clone() else { return };
            job_events::publish(&JobEvent::progress(&job, stop.fraction_done()));
        }
    }))
}

/// Renews the running attempt's lease every third of it; if another attempt took the job (or
/// it was deleted), stops the conversion. Holds the record as last written. Dropped, it stops.
struct LeaseKeeper {
    /// The record as last written (None once the attempt lost the job).
    current: Arc<tokio::sync::Mutex<Option<Job>>>,
    /// Cancelled when the keeper is stopped or dropped.
    stop: DropGuard,
    task: AbortOnDropHandle<()>,
}

impl LeaseKeeper {
    fn start(jobs: Arc<dyn JobStore>, lease: Duration, held: Job, conversion: StopSignal) -> LeaseKeeper {
        let output_fid = held.attempt.expect("a held job has an attempt").output_fid;
        let current = Arc::new(tokio::sync::Mutex::new(Some(held)));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (current, stop) = (current.clone(), stop.clone());
            async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(lease / 3) => {}
                    }
                    let mut held = current.lock().await;
                    let Some(job) = held.clone() else { return };
                    let renew = |job: &Job| job.renew(now_millis(), lease).filter(|_| job.held_by(output_fid));
                    match write(jobs.as_ref(), &job, renew).await {
                        Ok(Written::Stored(stored)) => *held = Some(stored),
                        Ok(Written::Lost) => {
                            *held = None;
                            conversion.cancel();
                            return;
                        }
                        Err(error) => tracing::warn!(%error, "could not renew the attempt's lease"),
                    }
                }
            }
        });
        LeaseKeeper { current, stop: stop.drop_guard(), task: AbortOnDropHandle::new(task) }
    }

    /// Stops renewing (after a renewal in flight finished) and returns the record as last
    /// written, or None if the attempt lost the job.
    async fn stop(self) -> Option<Job> {
        let LeaseKeeper { current, stop, task } = self;
        drop(stop);
        let _ = task.await;
        current.lock().await.take()
    }
}

async fn convert_and_store(node: &Node, job: &Job, output_fid: Id, stop: &StopSignal) -> Result<Transcoded, Failure> {
    if node.config.faults.crash_on() == Some(job.filename.as_str()) {
        tracing::error!("fault injection: aborting the process on this file");
        std::process::abort();
    }
    let source = node.stores.blobs.media(Bucket::Videos, job.video_fid).await.map_err(|e| match e {
        StorageError::NotFound => Failure::Permanent("the uploaded video is missing".into()),
        other => Failure::Transient(other.into()),
    })?;
    let (output, _) =
        ScratchFile::create(&node.config.scratch_dir(), "mp3").await.map_err(|e| Failure::Transient(e.into()))?;

    let started = Instant::now();
    let transcoded = run_transcode(node, job, source, output.path().to_owned(), stop.clone()).await?;
    node.services.metrics.jobs.conversion_seconds.observe(started.elapsed().as_secs_f64());

    let meta = job.mp3_meta();
    // Stored patiently: a blob store outage must not throw the conversion away. A try that
    // failed half-way may have left chunks: every try after the first starts from a clean slate.
    let (mut retry, meta, output) = (false, &meta, &output);
    let store = || {
        let clean_first = std::mem::replace(&mut retry, true);
        async move {
            if clean_first {
                node.stores.blobs.delete(Bucket::Mp3s, output_fid).await?;
            }
            node.stores.blobs.put_file(Bucket::Mp3s, output_fid, meta, output.path()).await
        }
    };
    // ... but no longer than the attempt may run: then it is given back, uncounted, and the
    // job's own limit on such retries applies.
    let stored = tokio::select! {
        stored = patiently(Patience::of(node), "store the MP3", store) => stored,
        reason = stopped(stop) => Err(StorageError::unavailable(anyhow::anyhow!(
            "storing the MP3 did not succeed before the attempt stopped ({reason})"
        ))),
    };
    stored.map_err(|e| Failure::Transient(e.into()))?;
    Ok(transcoded)
}

/// Runs the transcoder (in its sandboxed worker process) on a blocking thread under the time
/// limit; once shutdown starts, it may run for the grace period before it is stopped. A
/// conversion that failed because the store failed under its input is retried (not counted),
/// whatever FFmpeg made of it; so is one whose worker could not even start.
async fn run_transcode(
    node: &Node,
    job: &Job,
    source: MediaSource,
    output: PathBuf,
    stop: StopSignal,
) -> Result<Transcoded, Failure> {
    let MediaSource { media: input, failure: store_failure } = source;
    let options = transcode_options(&node.config.conversion);
    let fault = node.config.faults.worker_fault(&job.filename);
    let _grace_watch = AbortOnDropHandle::new(tokio::spawn({
        let stop = stop.clone();
        let shutdown = node.lifecycle.shutdown.clone();
        let grace = node.config.server.shutdown_grace();
        async move {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
            stop.cancel();
        }
    }));
    let (delay, media) = (node.config.faults.convert_delay(), node.services.media.clone());
    let result = tokio::task::spawn_blocking(move || {
        fault_delay(delay, &stop)?;
        media.transcode(input, &output, options, fault, &stop)
    })
    .await;
    match result {
        Ok(Ok(transcoded)) => Ok(transcoded),
        Ok(Err(TranscodeError::Cancelled)) => Err(Failure::Stopped),
        Ok(Err(error)) if store_failure.get().is_some() => Err(Failure::Transient(anyhow::anyhow!(
            "reading the video failed ({}): {error}",
            store_failure.get().unwrap_or_default()
        ))),
        Ok(Err(error @ TranscodeError::Unavailable(_))) => Err(Failure::Transient(error.into())),
        Ok(Err(error @ (TranscodeError::TimedOut | TranscodeError::Crashed(_) | TranscodeError::Output(_)))) => {
            Err(Failure::Counted(error.to_string()))
        }
        Ok(Err(error)) => Err(Failure::Permanent(error.to_string())),
        Err(join) => Err(Failure::Counted(format!("the converter's thread failed ({join})"))),
    }
}

/// What each conversion is asked for, as the conversion settings say.
fn transcode_options(settings: &Conversion) -> TranscodeOptions {
    TranscodeOptions {
        bit_rate: settings.bitrate_kbps as usize * 1000,
        max_media_seconds: settings.max_media_seconds as f64,
    }
}

/// Resolves once `stop` says the attempt must stop (polled: the signal is the blocking code's).
async fn stopped(stop: &StopSignal) -> TranscodeError {
    loop {
        if let Err(reason) = stop.check() {
            return reason;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
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
