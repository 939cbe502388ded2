//! Files and folders readable by this user only: the database (users' password hashes, job
//! records) and the outbox (emails with download links).
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
}
