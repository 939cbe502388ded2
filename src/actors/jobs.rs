//! What the converter, the notifiers and the dead-letter workers do alike with a job: find
//! the job a `video` message is about (taking in an upload of the legacy design's own gateway), publish
//! a finished job's notice, and delete an attempt's output. The rules they follow are the job
//! record's ([`crate::storage::jobs`]).

use crate::ids::Id;
use crate::messages::{JobMessage, LegacyUpload, VideoNotice};
use crate::storage::{BlobStore, Bucket, Job, Mailbox, StorageError, StorageResult, Stores, now_millis};

/// The job a `video` message is about.
pub async fn job_of(stores: &Stores, notice: VideoNotice) -> StorageResult<Option<Job>> {
    match notice {
        VideoNotice::Ours(message) => stores.jobs.get(message.job_id).await,
        VideoNotice::Legacy(upload) => job_for_legacy_upload(stores, &upload).await,
    }
}

/// The job of an upload that the legacy design's own gateway published (no `job_id`): found by its
/// video, or created from the message (owner from `username`, id the video's, so that
/// duplicates of the message find the same job). None if the video is not in the store.
async fn job_for_legacy_upload(stores: &Stores, upload: &LegacyUpload) -> StorageResult<Option<Job>> {
    let jobs = &stores.jobs;
    if let Some(job) = jobs.find_by_video(upload.video_fid).await? {
        return Ok(Some(job));
    }
    let video = match stores.blobs.stat(Bucket::Videos, upload.video_fid).await {
        Ok(video) => video,
        Err(StorageError::NotFound) => return Ok(None),
        Err(other) => return Err(other),
    };
    let job = Job::queued(upload.video_fid, &upload.username, upload.video_fid, &video.meta.filename, now_millis());
    match jobs.create(&job).await {
        Ok(()) => {
            tracing::info!(job_id = %job.id, owner = %job.owner, "took in an upload from the legacy design's gateway");
            Ok(Some(job))
        }
        Err(StorageError::Conflict) => jobs.get(job.id).await,
        Err(other) => Err(other),
    }
}

/// Publishes a finished job's notice, unless its owner was mailed already.
pub async fn publish_notice(mailbox: &dyn Mailbox, job: &Job) -> StorageResult<()> {
    if !job.needs_notification() {
        return Ok(());
    }
    let Some((queue, message)) = JobMessage::notice(job) else { return Ok(()) };
    mailbox.publish(queue, &message.to_json()).await
}

/// Removes an attempt's output blob; a failure leaves an unreferenced blob, never a wrong MP3.
pub async fn delete_output(blobs: &dyn BlobStore, output_fid: Id) {
    if let Err(error) = blobs.delete(Bucket::Mp3s, output_fid).await {
        tracing::warn!(%output_fid, %error, "could not delete an attempt's output");
    }
}
