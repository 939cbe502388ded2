//! What of an upload the blob store keeps as its job's input ([`Keep`], from
//! [`crate::config::Storage::stores_audio_only`]):
//!
//! - the upload itself, streamed into the store as it arrives (the embedded profile, and the
//!   cluster profile with `--seed-compatible`, whose converter reads videos from `videos`);
//! - or an audio-only copy: the upload is spooled to the node's scratch folder as it arrives,
//!   its audio stream remuxed ([`crate::audio_copy`], nothing decoded, in a sandboxed FFmpeg
//!   worker process: [`crate::sandbox`]) and only that stored,
//!   so a 57 MB video costs the shared store about 1 MB. A file with no audio copy to make (no
//!   audio, not media) is stored as it is, and its conversion fails with the reason as before.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWriteExt};

use crate::audio_copy;
use crate::config::Config;
use crate::ids::Id;
use crate::sandbox::MediaWorker;
use crate::scratch::ScratchFile;
use crate::storage::files::copy_into;
use crate::storage::{BlobMeta, BlobStore, Bucket, StorageError, StorageResult};
use crate::transcode::StopSignal;

/// The form an upload is kept in.
pub enum Keep {
    /// As it arrives, streamed into the store.
    Whole,
    /// Its audio-only copy, made by `media` in the `scratch` folder within `timeout`.
    AudioOnly { media: Arc<dyn MediaWorker>, scratch: PathBuf, timeout: Duration },
}

impl Keep {
    /// The form the configuration asks for.
    pub fn configured(config: &Config, media: &Arc<dyn MediaWorker>) -> Keep {
        match config.storage.stores_audio_only() {
            false => Keep::Whole,
            true => Keep::AudioOnly {
                media: media.clone(),
                scratch: config.scratch_dir(),
                timeout: config.conversion.timeout(),
            },
        }
    }
}

/// Stores `body` as video `fid` in `blobs`, kept as `keep` says; returns the length of the
/// upload (what the client sent). A failure of `body` is [`StorageError::Input`].
pub async fn store_upload(
    blobs: &dyn BlobStore,
    keep: Keep,
    fid: Id,
    meta: &BlobMeta,
    body: &mut (dyn AsyncRead + Send + Unpin),
) -> StorageResult<u64> {
    let Keep::AudioOnly { media, scratch, timeout } = keep else {
        return blobs.put(Bucket::Videos, fid, meta, body).await;
    };
    let (upload, mut file) = ScratchFile::create(&scratch, "upload").await.map_err(StorageError::unavailable)?;
    let length = copy_into(body, &mut file).await?;
    file.flush().await.map_err(StorageError::unavailable)?;
    drop(file);
    let (copy, _) = ScratchFile::create(&scratch, "mka").await.map_err(StorageError::unavailable)?;
    let stop = StopSignal::new(Instant::now() + timeout);
    let _hung_up = CancelOnDrop(stop.clone());
    let (input, output) = (upload.path().to_owned(), copy.path().to_owned());
    let copied = match tokio::task::spawn_blocking(move || media.copy_audio(&input, &output, &stop)).await {
        Ok(result) => result.map_err(|error| error.to_string()),
        Err(join) => Err(join.to_string()),
    };
    match copied {
        Ok(()) => {
            let meta = BlobMeta { content_type: audio_copy::CONTENT_TYPE.into(), ..meta.clone() };
            blobs.put_file(Bucket::Videos, fid, &meta, copy.path()).await?;
        }
        Err(reason) => {
            tracing::info!(%fid, reason, "no audio-only copy of this upload; storing it as it is");
            blobs.put_file(Bucket::Videos, fid, meta, upload.path()).await?;
        }
    }
    Ok(length)
}

/// Cancels the audio copy when the upload's request goes away before it ends (the client hung
/// up): its worker process is then killed at once, instead of running on, past the upload slot
/// that bounded it, until the time limit.
struct CancelOnDrop(StopSignal);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}
