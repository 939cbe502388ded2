//! The embedded profile's database: one SQLite file in WAL mode holding users, job records and
//! the persistent mailbox. Schema changes are migrations under `migrations/sqlite/`.

mod intake;
mod jobs;
mod mailbox;
mod users;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use intake::SqliteIntake;
pub use jobs::SqliteJobs;
pub use mailbox::SqliteMailbox;
pub use users::SqliteUsers;

use super::StorageError;

/// Opens (creating if needed) the database and brings its schema up to date.
pub async fn open(path: &Path) -> anyhow::Result<SqlitePool> {
    // It holds password hashes: readable by this user only, and so are its -wal and -shm.
    crate::security::private_files::owner_only_database(path)?;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a committed publish survives power loss, not only a crash of this process.
        .synchronous(SqliteSynchronous::Full)
        // `user add` may write while `up` runs: wait for the lock rather than fail.
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .with_context(|| format!("opening database {}", path.display()))?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await.context("migrating the database")?;
    Ok(pool)
}

fn db_error(error: sqlx::Error) -> StorageError {
    StorageError::unavailable(error)
}

async fn ping(pool: &SqlitePool) -> Result<(), StorageError> {
    sqlx::query("SELECT 1").execute(pool).await.map_err(db_error)?;
    Ok(())
}
