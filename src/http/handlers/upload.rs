//! `POST /upload`: one video, streamed from the multipart body into the blob store (as it is,
//! or as its audio-only copy: [`crate::job_input`]), then a job record and a
//! persistent `video` message, together ([`crate::storage::Intake`]). Answers 202 once both are
//! durable.
//!
//! Memory does not grow with the file: the body goes through in chunks. Whatever fails, no
//! half-stored video is left behind. Uploads in progress are capped per user and overall
//! ([`crate::http::limits::UploadSlots`]), one that stalls is cut off ([`StallGuard`]), and a
//! user with too many unfinished jobs is refused, all before the body is read. A file whose
//! first bytes are a playlist or script ([`crate::media_formats::playlist_kind`]) is refused
//! with 415 `unsupported_media` as they arrive.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::{HeaderMap, Request, StatusCode};
use multer::{Constraints, Multipart, SizeLimit};
use tokio_util::io::StreamReader;

use crate::config::Config;
use crate::http::Gateway;
use crate::http::body::SharedBody;
use crate::http::error::ApiError;
use crate::http::preamble::{Counted, PREAMBLE_LIMIT, Preamble, PreambleTooLarge};
use crate::http::response::{Response, json};
use crate::http::stall::{Pace, StallGuard, Stalled, TooSlow};
use crate::ids::Id;
use crate::job_input::{Keep, store_upload};
use crate::media_formats;
use crate::messages::JobMessage;
use crate::node::Node;
use crate::security::token::Claims;
use crate::storage::{BlobMeta, Bucket, Job, JobStore, StorageError, now_millis};

/// The longest file name kept from a client.
const MAX_FILENAME_CHARS: usize = 200;
/// How long a user over the job cap is asked to wait: about one conversion.
const RETRY_AFTER_JOB_CAP: std::time::Duration = std::time::Duration::from_secs(30);

struct StoredVideo {
    filename: String,
    length: u64,
}

pub async fn upload(node: &Node, gateway: &Gateway, request: Request<Incoming>) -> Result<Response, ApiError> {
    let identified = gateway.identity.bearer(request.headers()).await;
    let limit = node.config.limits.max_upload_bytes;
    let declared_too_large = declared_length(request.headers()).is_some_and(|length| length > limit);
    let boundary = boundary(request.headers());
    let body = SharedBody::new(request.into_body());
    let claims = match identified {
        Ok(claims) => claims,
        Err(refused) => {
            body.drain().await;
            return Err(refused);
        }
    };
    // Refused before a byte of the body is read; read and dropped then, so the client sees why.
    // The cheap checks first: the job count asks the database.
    let admitted = if declared_too_large {
        Err(ApiError::too_large(limit))
    } else {
        match gateway.limits.uploads.take(&claims.username) {
            Ok(slot) => check_job_cap(node.stores.jobs.as_ref(), node.config.limits.max_jobs_per_user, &claims)
                .await
                .map(|()| slot),
            Err(refused) => Err(refused),
        }
    };
    let (_slot, boundary) = match admitted.and_then(|slot| Ok((slot, boundary?))) {
        Ok(admitted) => admitted,
        Err(refused) => {
            body.drain().await;
            return Err(refused);
        }
    };
    let constraints = Constraints::new().size_limit(SizeLimit::new().whole_stream(limit));
    let guarded = StallGuard::new(body.clone(), Pace::of(&node.config.limits));
    let preamble = Arc::new(Preamble::default());
    let counted = Counted::new(guarded, preamble.clone());
    let mut multipart = Multipart::with_constraints(counted, boundary, constraints);

    let job_id = Id::generate();
    let video_fid = Id::generate();
    let video = match receive_one_file(node, &mut multipart, &preamble, &claims, job_id, video_fid).await {
        Ok(video) => video,
        Err(refused) => {
            // The rest of the body is read (within bounds), so that the client, still sending,
            // reads the answer instead of a broken pipe; but not a client too slow to wait for.
            if refused.status != StatusCode::REQUEST_TIMEOUT {
                drop(multipart);
                body.drain().await;
            }
            return Err(refused);
        }
    };
    // What follows the last part (its closing line) is read too: a connection with unread
    // request bytes cannot be kept alive, and a client may already be reusing it.
    drop(multipart);
    body.clone().drain().await;
    let job = Job::queued(job_id, &claims.username, video_fid, &video.filename, now_millis());
    if let Err(error) = node.stores.intake.submit(&job, &JobMessage::video(&job).to_json()).await {
        match node.stores.jobs.get(job_id).await {
            // The record stayed behind without its message: the job still runs (the sweeper
            // publishes its message), so it is accepted.
            Ok(Some(_)) => tracing::warn!(%job_id, %error, "the job's message waits for the sweeper"),
            Ok(None) => {
                let _ = node.stores.blobs.delete(Bucket::Videos, video_fid).await;
                return Err(error.into());
            }
            Err(_) => return Err(error.into()),
        }
    }
    node.services.metrics.http.uploads.inc();
    node.services.metrics.http.upload_bytes.inc_by(video.length);
    tracing::info!(%job_id, %video_fid, bytes = video.length, "upload accepted");

    let status_url = format!("/jobs/{job_id}");
    let mut response = json(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "job_id": job_id, "video_fid": video_fid, "status_url": status_url }),
    );
    response.headers_mut().insert(LOCATION, HeaderValue::from_str(&status_url).expect("ASCII"));
    Ok(response)
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn boundary(headers: &HeaderMap) -> Result<String, ApiError> {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_multipart",
            "the body must be multipart/form-data with exactly 1 file",
        ));
    }
    multer::parse_boundary(content_type)
        .map_err(|_| ApiError::bad_request("malformed_multipart", "the multipart content type has no boundary"))
}

/// Stores the body's one file part (parts without a file name are ignored, as the legacy design's
/// Flask gateway did). Two files, none, or an empty one are refused, and nothing is kept.
async fn receive_one_file(
    node: &Node,
    multipart: &mut Multipart<'_>,
    preamble: &Preamble,
    claims: &Claims,
    job_id: Id,
    video_fid: Id,
) -> Result<StoredVideo, ApiError> {
    let mut stored: Option<StoredVideo> = None;
    let outcome = async {
        loop {
            preamble.looking(true);
            let next = multipart.next_field().await.map_err(|e| multipart_error(&node.config, &e))?;
            preamble.looking(false);
            let Some(field) = next else { break };
            let Some(raw_name) = field.file_name().map(str::to_owned) else {
                continue;
            };
            if stored.is_some() {
                return Err(ApiError::bad_request("exactly_one_file", "exactly 1 file required"));
            }
            let meta = BlobMeta {
                owner: claims.username.clone(),
                filename: sanitize_filename(&raw_name),
                content_type: field
                    .content_type()
                    .map_or_else(|| "application/octet-stream".to_owned(), |m| m.to_string()),
                job_id: Some(job_id),
            };
            let mut door = DoorCheck::default();
            let checked = field.map_err(io::Error::other).and_then(move |chunk| std::future::ready(door.pass(chunk)));
            let mut reader = Box::pin(StreamReader::new(checked));
            let length = store_upload(
                node.stores.blobs.as_ref(),
                Keep::configured(&node.config, &node.services.media),
                video_fid,
                &meta,
                &mut reader,
            )
            .await
            .map_err(|e| storage_error(&node.config, e))?;
            stored = Some(StoredVideo { filename: meta.filename, length });
        }
        Ok(())
    }
    .await;
    let refused = match (outcome, stored) {
        (Ok(()), Some(video)) if video.length > 0 => return Ok(video),
        (Ok(()), None) => {
            return Err(ApiError::bad_request("exactly_one_file", "exactly 1 file required"));
        }
        (Ok(()), Some(_)) => ApiError::bad_request("empty_file", "the file is empty"),
        (Err(error), _) => error,
    };
    let _ = node.stores.blobs.delete(Bucket::Videos, video_fid).await;
    Err(refused)
}

fn multipart_error(config: &Config, error: &multer::Error) -> ApiError {
    match error {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            ApiError::too_large(config.limits.max_upload_bytes)
        }
        multer::Error::StreamReadFailed(cause) if cause.is::<PreambleTooLarge>() => ApiError::bad_request(
            "preamble_too_large",
            format!(
                "the multipart body may send at most {PREAMBLE_LIMIT} bytes besides its file (preamble, part headers, other parts)"
            ),
        ),
        multer::Error::StreamReadFailed(cause) if cause.is::<TooSlow>() => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "upload_too_slow",
            format!("{cause}: the upload was cut off; send it again over a faster connection"),
        ),
        multer::Error::StreamReadFailed(cause) if cause.is::<Stalled>() => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "upload_stalled",
            format!("the upload sent nothing for {} s and was cut off", config.limits.upload_stall_seconds),
        ),
        other => ApiError::bad_request("malformed_multipart", format!("the multipart body is malformed: {other}")),
    }
}

/// Looks at a file's first bytes as they stream past, and stops a playlist or script there.
#[derive(Default)]
struct DoorCheck {
    /// The file's first bytes, up to [`media_formats::DOOR_CHECK_BYTES`].
    head: Vec<u8>,
}

/// The error a [`DoorCheck`] stops a file with.
#[derive(Debug, thiserror::Error)]
#[error("the file is {0}, not media")]
struct NotMedia(&'static str);

impl DoorCheck {
    fn pass(&mut self, chunk: Bytes) -> io::Result<Bytes> {
        if self.head.len() < media_formats::DOOR_CHECK_BYTES {
            let wanted = (media_formats::DOOR_CHECK_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..wanted]);
            if let Some(kind) = media_formats::playlist_kind(&self.head) {
                return Err(io::Error::other(NotMedia(kind)));
            }
        }
        Ok(chunk)
    }
}

/// A storage error while streaming the file: the client's stream failing is the client's
/// problem (4xx), the store failing is ours (503).
fn storage_error(config: &Config, error: StorageError) -> ApiError {
    match error {
        StorageError::Input(io_error) => {
            let inner = io_error.get_ref();
            if let Some(multipart) = inner.and_then(|inner| inner.downcast_ref::<multer::Error>()) {
                return multipart_error(config, multipart);
            }
            match inner.and_then(|inner| inner.downcast_ref::<NotMedia>()) {
                Some(not_media) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media",
                    format!("{not_media}: playlists and scripts are refused; upload the video or audio file itself"),
                ),
                None => ApiError::bad_request("bad_body", format!("the upload could not be read: {io_error}")),
            }
        }
        other => other.into(),
    }
}

/// Refuses (429 `too_many_jobs`) a user whose queued and converting jobs reach the cap.
async fn check_job_cap(jobs: &dyn JobStore, cap: u64, claims: &Claims) -> Result<(), ApiError> {
    let unfinished = jobs.count_unfinished(&claims.username).await?;
    if unfinished >= cap {
        let message = format!("you have {unfinished} unfinished jobs; at most {cap} may wait at once");
        return Err(ApiError::too_many("too_many_jobs", message, RETRY_AFTER_JOB_CAP));
    }
    Ok(())
}

/// The last path component of a client's file name, without control characters, at most
/// `MAX_FILENAME_CHARS` long; `upload` when nothing usable is left.
pub fn sanitize_filename(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last.chars().filter(|c| !c.is_control()).take(MAX_FILENAME_CHARS).collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') { "upload".to_owned() } else { cleaned.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::sanitize_filename;

    #[test]
    fn keeps_only_a_safe_last_component() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("C:\\Users\\x\\clip.mp4"), "clip.mp4");
        assert_eq!(sanitize_filename("vidéo 🎬.mp4"), "vidéo 🎬.mp4");
        assert_eq!(sanitize_filename(".."), "upload");
        assert_eq!(sanitize_filename("a\u{0}b\nc.mp4"), "abc.mp4");
        assert_eq!(sanitize_filename(&"x".repeat(500)).len(), 200);
    }
}
