//! What of an upload the blob store keeps as the job's input ([`crate::config::Config::stores_audio_only`]):
//!
//! - the upload itself, streamed into the store as it arrives (the embedded profile, and the
//!   cluster profile with `--seed-compatible`, whose converter reads videos from `videos`);
//! - or an audio-only copy: the upload is spooled to the node's scratch folder as it arrives,
//!   its audio stream remuxed ([`crate::audio_copy`], nothing decoded, in a sandboxed FFmpeg
//!   worker process: [`crate::sandbox`]) and only that stored,
//!   so a 57 MB video costs the shared store about 1 MB. A file with no audio copy to make (no
//!   audio, not media) is stored as it is, and its conversion fails with the reason as before.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWriteExt};

use crate::audio_copy;
use crate::ids::Id;
use crate::node::Node;
use crate::scratch::ScratchFile;
use crate::storage::files::copy_into;
use crate::storage::{BlobMeta, Bucket, StorageError, StorageResult};
use crate::transcode::StopSignal;

/// Stores `body` as video `fid` in the form the configuration asks for; returns the length of
/// the upload (what the client sent). A failure of `body` is [`StorageError::Input`].
pub async fn store_upload(
    node: &Node,
    fid: Id,
    meta: &BlobMeta,
    body: &mut (dyn AsyncRead + Send + Unpin),
) -> StorageResult<u64> {
    if !node.config.storage.stores_audio_only() {
        return node.stores.blobs.put(Bucket::Videos, fid, meta, body).await;
    }
    let scratch = node.config.scratch_dir();
    let (upload, mut file) = ScratchFile::create(&scratch, "upload").await.map_err(StorageError::unavailable)?;
    let length = copy_into(body, &mut file).await?;
    file.flush().await.map_err(StorageError::unavailable)?;
    drop(file);
    let (copy, _) = ScratchFile::create(&scratch, "mka").await.map_err(StorageError::unavailable)?;
    let stop = StopSignal::new(Instant::now() + node.config.conversion.timeout());
    let (input, output, media) = (upload.path().to_owned(), copy.path().to_owned(), node.services.media.clone());
    let copied = match tokio::task::spawn_blocking(move || media.copy_audio(&input, &output, &stop)).await {
        Ok(result) => result.map_err(|error| error.to_string()),
        Err(join) => Err(join.to_string()),
    };
    let blobs = &node.stores.blobs;
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
