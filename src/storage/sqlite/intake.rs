//! The embedded intake: a job's row and its `video` message in one SQLite transaction.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::SqlitePool;

use super::{SqliteMailbox, db_error, jobs, mailbox};
use crate::storage::{Intake, Job, Queue, StorageResult};

pub struct SqliteIntake {
    pool: SqlitePool,
    /// Told after the commit, so that waiting converters wake at once.
    mailbox: Arc<SqliteMailbox>,
}

impl SqliteIntake {
    pub fn new(pool: SqlitePool, mailbox: Arc<SqliteMailbox>) -> Self {
        SqliteIntake { pool, mailbox }
    }
}

#[async_trait]
impl Intake for SqliteIntake {
    async fn submit(&self, job: &Job, message: &[u8]) -> StorageResult<()> {
        let mut transaction = self.pool.begin().await.map_err(db_error)?;
        jobs::insert(&mut *transaction, job).await?;
        mailbox::insert(&mut *transaction, Queue::Video, message).await?;
        transaction.commit().await.map_err(db_error)?;
        self.mailbox.wake(Queue::Video);
        Ok(())
    }
}
