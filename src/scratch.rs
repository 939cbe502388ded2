//! Scratch files: temporary files in a folder of the node's own (a profile's scratch folder,
//! emptied at start), created, renamed and removed without blocking an async thread.
//!
//! A [`ScratchFile`] is removed when dropped unless it was [persisted](ScratchFile::persist);
//! dropped on an async thread, its removal runs on the blocking pool.

use std::io;
use std::path::{Path, PathBuf};

use crate::ids::Id;

pub struct ScratchFile {
    /// None once persisted (or removed): nothing left to clean up.
    path: Option<PathBuf>,
}

impl ScratchFile {
    /// Creates a new empty file in `dir`, named uniquely with the given extension, readable by
    /// this user only (it becomes a user's video or MP3), and opens it for writing.
    pub async fn create(dir: &Path, extension: &str) -> io::Result<(ScratchFile, tokio::fs::File)> {
        let path = dir.join(format!("{}.{extension}", Id::generate()));
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).await?;
        Ok((ScratchFile { path: Some(path) }, file))
    }

    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("a scratch file has its path until it is persisted")
    }

    /// Moves the file to `target` (same file system), replacing what is there; from then on it
    /// is no longer scratch.
    pub async fn persist(mut self, target: &Path) -> io::Result<()> {
        tokio::fs::rename(self.path(), target).await?;
        self.path = None;
        Ok(())
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let Some(path) = self.path.take() else { return };
        let remove = move || match std::fs::remove_file(&path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), %error, "could not remove a scratch file");
            }
            _ => {}
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dropped_file_is_removed_and_a_persisted_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (dropped, _) = ScratchFile::create(dir.path(), "mp3").await.unwrap();
        let path = dropped.path().to_owned();
        assert!(path.exists() && path.extension().unwrap() == "mp3");
        drop(dropped);
        eventually_gone(&path).await;

        let (kept, _) = ScratchFile::create(dir.path(), "mp4").await.unwrap();
        let target = dir.path().join("kept");
        kept.persist(&target).await.unwrap();
        assert!(target.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Waits (with a deadline) for the blocking pool to remove `path`.
    async fn eventually_gone(path: &Path) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while path.exists() {
            assert!(std::time::Instant::now() < deadline, "{} was not removed", path.display());
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
