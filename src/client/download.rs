//! `GET /download?fid=`: an MP3 streamed into a temporary file beside its destination, renamed
//! to it only when whole, so that no half-written MP3 ever has the final name (an interrupted
//! download's temporary file is removed when it is dropped). An existing file is kept unless
//! forced.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use futures_util::StreamExt;
use reqwest::header::CONTENT_DISPOSITION;
use tokio::io::AsyncWriteExt;

use super::progress::{Board, FileProgress};
use super::{ApiClient, success};

/// `download FID`: the MP3 to `output`, else to the server's name for it in this folder.
pub async fn one(client: &ApiClient, fid: &str, output: Option<PathBuf>, force: bool) -> anyhow::Result<PathBuf> {
    let response = client.download_response(fid).await?;
    let target = output.unwrap_or_else(|| PathBuf::from(server_file_name(&response).unwrap_or(format!("{fid}.mp3"))));
    refuse_existing(&target, force)?;
    let board = Board::new();
    let progress = Arc::new(board.file(&target.to_string_lossy()));
    let written = save(response, &target, force, &progress).await;
    progress.finish();
    written.map(|()| target)
}

impl ApiClient {
    /// Downloads the MP3 `fid` to `target`.
    pub(super) async fn download(
        &self,
        fid: &str,
        target: &Path,
        force: bool,
        progress: &FileProgress,
    ) -> anyhow::Result<()> {
        save(self.download_response(fid).await?, target, force, progress).await
    }

    async fn download_response(&self, fid: &str) -> anyhow::Result<reqwest::Response> {
        let mut url = self.url("/download")?;
        url.query_pairs_mut().append_pair("fid", fid);
        let response = self.http.get(url).bearer_auth(&self.token).send().await.context("downloading")?;
        success(response).await.map_err(|error| match error.status {
            reqwest::StatusCode::NOT_FOUND => anyhow::anyhow!(
                "you have no MP3 {fid}: `mp3converter jobs` lists your jobs with the MP3_FID of each done one"
            ),
            _ => error.into(),
        })
    }
}

/// An error if `target` exists and may not be overwritten.
pub fn refuse_existing(target: &Path, force: bool) -> anyhow::Result<()> {
    anyhow::ensure!(force || !target.exists(), "{} exists (--force overwrites it)", target.display());
    Ok(())
}

/// Writes the response's body to `target` through a temporary file in the same folder.
async fn save(response: reqwest::Response, target: &Path, force: bool, progress: &FileProgress) -> anyhow::Result<()> {
    let folder = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = target.file_name().context("the destination has no file name")?.to_string_lossy();
    let temporary = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".part")
        // As any new file (the umask applies), not owner-only as temporary files are.
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(folder)
        .with_context(|| format!("creating a file in {}", folder.display()))?;
    let mut file = tokio::fs::File::from_std(temporary.as_file().try_clone()?);
    progress.transfer("downloading", response.content_length());
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("downloading")?;
        file.write_all(&chunk).await.with_context(|| format!("writing {}", temporary.path().display()))?;
        progress.advance(chunk.len() as u64);
    }
    file.sync_all().await?;
    let kept = if force { temporary.persist(target) } else { temporary.persist_noclobber(target) };
    kept.map_err(|error| error.error).with_context(|| format!("saving {}", target.display()))?;
    Ok(())
}

/// The plain file name in the response's `Content-Disposition`, if any (never a path).
fn server_file_name(response: &reqwest::Response) -> Option<String> {
    let header = response.headers().get(CONTENT_DISPOSITION)?.to_str().ok()?;
    let quoted = header.split("filename=\"").nth(1)?.split('"').next()?;
    let name = Path::new(quoted).file_name()?.to_string_lossy().into_owned();
    (!name.starts_with('.')).then_some(name)
}
