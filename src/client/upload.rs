//! `POST /upload` of one video, streamed from its file (never whole in memory) with progress.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use futures_util::TryStreamExt;
use tokio_util::io::ReaderStream;

use super::progress::FileProgress;
use super::{ApiClient, success};

/// Bytes read from the file at a time.
const CHUNK_BYTES: usize = 64 * 1024;

impl ApiClient {
    /// Uploads the video at `path` and returns its job's id.
    pub(super) async fn upload(&self, path: &Path, progress: Arc<FileProgress>) -> anyhow::Result<String> {
        let file = tokio::fs::File::open(path).await.with_context(|| format!("opening {}", path.display()))?;
        let length = file.metadata().await?.len();
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        progress.transfer("uploading", Some(length));
        let chunks = ReaderStream::with_capacity(file, CHUNK_BYTES)
            .inspect_ok(move |chunk| progress.advance(chunk.len() as u64));
        let part = reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(chunks), length)
            .file_name(name)
            .mime_str("application/octet-stream")?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let request = self.http.post(self.url("/upload")?).bearer_auth(&self.token).multipart(form);
        let response = request.send().await.context("uploading")?;
        let accepted: serde_json::Value = success(response).await?.json().await.context("upload: not JSON")?;
        Ok(accepted["job_id"].as_str().context("upload: no job id in the answer")?.to_owned())
    }
}
