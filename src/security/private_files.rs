//! Files and folders readable by this user only: the database (users' password hashes, job
//! records), the outbox (emails with download links) and the blob folders (every user's videos
//! and MP3s).
//!
//! The mode is set explicitly after creation, so it is 0600 / 0700 whatever the umask, and an
//! existing file or folder from an older version is tightened too.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

const OWNER_ONLY_FILE: u32 = 0o600;
const OWNER_ONLY_DIR: u32 = 0o700;

/// Creates `path` if it is missing (empty) and makes it owner-only.
pub fn owner_only_file(path: &Path) -> anyhow::Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(OWNER_ONLY_FILE)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    restrict(path, OWNER_ONLY_FILE)
}

/// Creates the folder `path` (and its parents) if missing and makes it owner-only.
pub fn owner_only_dir(path: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(OWNER_ONLY_DIR)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))?;
    restrict(path, OWNER_ONLY_DIR)
}

/// Makes the SQLite database at `path` owner-only, creating it if missing, with the write-ahead
/// log and shared-memory files an earlier run left. SQLite creates those two with the mode of
/// the database file, so new ones come out owner-only as well.
pub fn owner_only_database(path: &Path) -> anyhow::Result<()> {
    owner_only_file(path)?;
    for sibling in ["-wal", "-shm"].map(|suffix| with_suffix(path, suffix)) {
        if sibling.exists() {
            restrict(&sibling, OWNER_ONLY_FILE)?;
        }
    }
    Ok(())
}

/// Makes the folder `path` owner-only, creating it if missing; if it was not owner-only before
/// (a data folder of an older version), every file and folder under it is tightened too, and
/// the number tightened is returned.
pub fn owner_only_tree(path: &Path) -> anyhow::Result<usize> {
    let was_open = std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o077 != 0);
    owner_only_dir(path)?;
    if !was_open {
        return Ok(0);
    }
    let mut tightened = 1;
    for entry in std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))? {
        let entry = entry?;
        let (child, kind) = (entry.path(), entry.file_type()?);
        if kind.is_dir() {
            tightened += owner_only_tree(&child)?;
        } else if kind.is_file() && entry.metadata()?.permissions().mode() & 0o077 != 0 {
            restrict(&child, OWNER_ONLY_FILE)?;
            tightened += 1;
        }
    }
    Ok(tightened)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::set_permissions(path, Permissions::from_mode(mode))
        .with_context(|| format!("making {} readable by its owner only", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_or_tightens_to_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("db");
        let wal = dir.path().join("db-wal");
        std::fs::write(&wal, b"left by an older version").unwrap();
        std::fs::set_permissions(&wal, Permissions::from_mode(0o644)).unwrap();
        owner_only_database(&database).unwrap();
        assert_eq!((mode(&database), mode(&wal)), (0o600, 0o600));
        assert!(!dir.path().join("db-shm").exists());

        let outbox = dir.path().join("a/outbox");
        owner_only_dir(&outbox).unwrap();
        assert_eq!(mode(&outbox), 0o700);
    }

    #[test]
    fn an_open_tree_is_tightened_whole_and_an_owner_only_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        std::fs::create_dir_all(blobs.join("videos")).unwrap();
        std::fs::write(blobs.join("videos/1"), b"a video").unwrap();
        for (path, open) in [(blobs.clone(), 0o755), (blobs.join("videos"), 0o755), (blobs.join("videos/1"), 0o644)] {
            std::fs::set_permissions(&path, Permissions::from_mode(open)).unwrap();
        }
        assert_eq!(owner_only_tree(&blobs).unwrap(), 3);
        assert_eq!((mode(&blobs), mode(&blobs.join("videos")), mode(&blobs.join("videos/1"))), (0o700, 0o700, 0o600));
        assert_eq!(owner_only_tree(&blobs).unwrap(), 0);
        let fresh = dir.path().join("fresh");
        assert_eq!(owner_only_tree(&fresh).unwrap(), 0);
        assert_eq!(mode(&fresh), 0o700);
    }
}
