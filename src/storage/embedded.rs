//! The embedded profile's backends: SQLite for users, jobs and the mailbox, files for blobs,
//! all under the data folder.

use std::sync::Arc;

use super::files::FileBlobStore;
use super::sqlite::{self, SqliteJobs, SqliteMailbox, SqliteUsers};
use super::{Backends, UserStore};
use crate::config::Config;

pub async fn backends(config: &Config) -> anyhow::Result<Backends> {
    let pool = sqlite::open(&config.database_path()).await?;
    let blobs = FileBlobStore::open(config.data_dir.join("blobs")).await?;
    Ok(Backends {
        users: Arc::new(SqliteUsers::new(pool.clone())),
        blobs: Arc::new(blobs),
        jobs: Arc::new(SqliteJobs::new(pool.clone())),
        mailbox: Arc::new(SqliteMailbox::new(pool, config.lease(), config.max_attempts)),
    })
}

/// Only the user store, for `user add` (which may run beside a running `up`).
pub async fn users(config: &Config) -> anyhow::Result<Arc<dyn UserStore>> {
    std::fs::create_dir_all(&config.data_dir)?;
    let pool = sqlite::open(&config.database_path()).await?;
    Ok(Arc::new(SqliteUsers::new(pool)))
}
