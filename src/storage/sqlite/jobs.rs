//! Job records in SQLite.

use async_trait::async_trait;
use sqlx::SqlitePool;

use super::db_error;
use crate::ids::Id;
use crate::storage::{Job, JobState, JobStore, StorageError, StorageResult, now_millis};

pub struct SqliteJobs {
    pool: SqlitePool,
}

impl SqliteJobs {
    pub fn new(pool: SqlitePool) -> Self {
        SqliteJobs { pool }
    }

    /// The job whose id column `column` (a constant, never input) holds `id`.
    async fn find_one(&self, column: &'static str, id: Id) -> StorageResult<Option<Job>> {
        let row: Option<JobRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM job WHERE {column} = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.map(Job::try_from).transpose()
    }

    /// Runs an UPDATE of one job; `NotFound` if no row matched.
    async fn update_one<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> StorageResult<()> {
        let done = query.execute(&self.pool).await.map_err(db_error)?;
        match done.rows_affected() {
            0 => Err(StorageError::NotFound),
            _ => Ok(()),
        }
    }
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    owner: String,
    state: String,
    video_fid: String,
    mp3_fid: Option<String>,
    filename: String,
    error: Option<String>,
    attempts: i64,
    media_seconds: Option<f64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<JobRow> for Job {
    type Error = StorageError;

    fn try_from(row: JobRow) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| StorageError::unavailable(anyhow::anyhow!("corrupt job row {}: {what}", row.id));
        Ok(Job {
            id: row.id.parse().map_err(|_| corrupt("id"))?,
            owner: row.owner.clone(),
            state: JobState::parse(&row.state).ok_or_else(|| corrupt("state"))?,
            video_fid: row.video_fid.parse().map_err(|_| corrupt("video_fid"))?,
            mp3_fid: row.mp3_fid.as_deref().map(str::parse).transpose().map_err(|_| corrupt("mp3_fid"))?,
            filename: row.filename.clone(),
            error: row.error.clone(),
            attempts: row.attempts as u32,
            media_seconds: row.media_seconds,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const COLUMNS: &str =
    "id, owner, state, video_fid, mp3_fid, filename, error, attempts, media_seconds, created_at, updated_at";

#[async_trait]
impl JobStore for SqliteJobs {
    async fn create(&self, job: &Job) -> StorageResult<()> {
        sqlx::query(&format!("INSERT INTO job ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))
            .bind(job.id.to_string())
            .bind(&job.owner)
            .bind(job.state.as_str())
            .bind(job.video_fid.to_string())
            .bind(job.mp3_fid.map(|fid| fid.to_string()))
            .bind(&job.filename)
            .bind(&job.error)
            .bind(job.attempts as i64)
            .bind(job.media_seconds)
            .bind(job.created_at)
            .bind(job.updated_at)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn get(&self, id: Id) -> StorageResult<Option<Job>> {
        self.find_one("id", id).await
    }

    async fn list_by_owner(&self, owner: &str, limit: u32, before: Option<Id>) -> StorageResult<Vec<Job>> {
        // Ids are 24 lower-case hex digits that start with the creation second, so text order
        // is creation order; "g" sorts after every hex digit and so stands for "no cursor".
        let before = before.map_or_else(|| "g".to_owned(), |id| id.to_string());
        let rows: Vec<JobRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM job WHERE owner = ? AND id < ? ORDER BY id DESC LIMIT ?"))
                .bind(owner)
                .bind(before)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
        rows.into_iter().map(Job::try_from).collect()
    }

    async fn mark_converting(&self, id: Id, attempts: u32, mp3_fid: Id) -> StorageResult<()> {
        self.update_one(
            sqlx::query("UPDATE job SET state = 'converting', attempts = ?, mp3_fid = ?, updated_at = ? WHERE id = ?")
                .bind(attempts as i64)
                .bind(mp3_fid.to_string())
                .bind(now_millis())
                .bind(id.to_string()),
        )
        .await
    }

    async fn mark_done(&self, id: Id, media_seconds: f64) -> StorageResult<()> {
        self.update_one(
            sqlx::query("UPDATE job SET state = 'done', error = NULL, media_seconds = ?, updated_at = ? WHERE id = ?")
                .bind(media_seconds)
                .bind(now_millis())
                .bind(id.to_string()),
        )
        .await
    }

    async fn mark_failed(&self, id: Id, reason: &str) -> StorageResult<()> {
        self.update_one(
            sqlx::query("UPDATE job SET state = 'failed', error = ?, updated_at = ? WHERE id = ?")
                .bind(reason)
                .bind(now_millis())
                .bind(id.to_string()),
        )
        .await
    }

    async fn find_by_video(&self, video_fid: Id) -> StorageResult<Option<Job>> {
        self.find_one("video_fid", video_fid).await
    }

    async fn record_result(&self, id: Id, mp3_fid: Id) -> StorageResult<()> {
        self.update_one(
            sqlx::query("UPDATE job SET state = 'done', mp3_fid = ?, error = NULL, updated_at = ? WHERE id = ?")
                .bind(mp3_fid.to_string())
                .bind(now_millis())
                .bind(id.to_string()),
        )
        .await
    }

    async fn claim_notification(&self, id: Id) -> StorageResult<bool> {
        let done = sqlx::query("UPDATE job SET notified = 1 WHERE id = ? AND notified = 0")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_notification(&self, id: Id) -> StorageResult<()> {
        self.update_one(sqlx::query("UPDATE job SET notified = 0 WHERE id = ?").bind(id.to_string())).await
    }

    async fn count_by_state(&self) -> StorageResult<Vec<(JobState, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT state, COUNT(*) FROM job GROUP BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(JobState::ALL
            .into_iter()
            .map(|state| {
                let count = rows.iter().find(|(name, _)| name == state.as_str()).map_or(0, |(_, n)| *n);
                (state, count as u64)
            })
            .collect())
    }

    async fn delete(&self, id: Id) -> StorageResult<()> {
        sqlx::query("DELETE FROM job WHERE id = ?").bind(id.to_string()).execute(&self.pool).await.map_err(db_error)?;
        Ok(())
    }
}
