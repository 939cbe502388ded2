//! The embedded profile's backends: SQLite for users, jobs and the mailbox, files for blobs,
//! all under the data folder.

use std::sync::Arc;

use super::files::FileBlobStore;
use super::sqlite::{self, SqliteIntake, SqliteJobs, SqliteMailbox, SqliteUsers};
use super::{DELIVERY_LIMIT, Stores, UserStore};
use crate::config::Config;

pub async fn stores(config: &Config) -> anyhow::Result<Stores> {
    let pool = sqlite::open(&config.storage.database_path()).await?;
    let blobs = FileBlobStore::open(config.storage.data_dir.join("blobs")).await?;
    let mailbox = Arc::new(SqliteMailbox::new(pool.clone(), config.conversion.lease(), DELIVERY_LIMIT));
    Ok(Stores {
        users: Arc::new(SqliteUsers::new(pool.clone())),
        blobs: Arc::new(blobs),
        jobs: Arc::new(SqliteJobs::new(pool.clone())),
        intake: Arc::new(SqliteIntake::new(pool, mailbox.clone())),
        mailbox,
    })
}

/// Only the user store, for `user add` (which may run beside a running `up`).
pub async fn users(config: &Config) -> anyhow::Result<Arc<dyn UserStore>> {
    std::fs::create_dir_all(&config.storage.data_dir)?;
    let pool = sqlite::open(&config.storage.database_path()).await?;
    Ok(Arc::new(SqliteUsers::new(pool)))
}
