//! Job records in SQLite, one row per job; every update is a compare-and-set on `version`.

use async_trait::async_trait;
use sqlx::{SqliteExecutor, SqlitePool};

use super::{db_error, ping};
use crate::ids::Id;
use crate::storage::{
    Attempt, Job, JobState, JobStore, Notification, Overdue, OverdueQuery, Retrying, StorageError, StorageResult,
};

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
    output_fid: Option<String>,
    lease_until: Option<i64>,
    notification: String,
    notification_since: Option<i64>,
    published_at: i64,
    retry_reason: Option<String>,
    retry_since: Option<i64>,
    retry_next_at: Option<i64>,
    version: i64,
}

impl TryFrom<JobRow> for Job {
    type Error = StorageError;

    fn try_from(row: JobRow) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| StorageError::unavailable(anyhow::anyhow!("corrupt job row {}: {what}", row.id));
        let fid =
            |text: &Option<String>, what: &str| text.as_deref().map(str::parse).transpose().map_err(|_| corrupt(what));
        let attempt = match (fid(&row.output_fid, "output_fid")?, row.lease_until) {
            (Some(output_fid), Some(lease_until)) => Some(Attempt { output_fid, lease_until }),
            _ => None,
        };
        Ok(Job {
            id: row.id.parse().map_err(|_| corrupt("id"))?,
            owner: row.owner.clone(),
            state: JobState::parse(&row.state).ok_or_else(|| corrupt("state"))?,
            video_fid: row.video_fid.parse().map_err(|_| corrupt("video_fid"))?,
            mp3_fid: fid(&row.mp3_fid, "mp3_fid")?,
            filename: row.filename.clone(),
            error: row.error.clone(),
            attempts: row.attempts as u32,
            media_seconds: row.media_seconds,
            created_at: row.created_at,
            updated_at: row.updated_at,
            attempt,
            notification: Notification::parse(&row.notification, row.notification_since)
                .ok_or_else(|| corrupt("notification"))?,
            published_at: row.published_at,
            retrying: match (&row.retry_reason, row.retry_since, row.retry_next_at) {
                (Some(reason), Some(since), Some(next_at)) => Some(Retrying { reason: reason.clone(), since, next_at }),
                _ => None,
            },
            version: row.version as u64,
        })
    }
}

/// The SQL condition of an overdue rule (the cutoff is parameter `?1`); built from constants
/// only, never from input.
fn overdue_condition(query: &OverdueQuery) -> String {
    let quoted =
        |names: &mut dyn Iterator<Item = &str>| names.map(|name| format!("'{name}'")).collect::<Vec<_>>().join(", ");
    let mut state = format!("state IN ({})", quoted(&mut query.states.iter().map(|state| state.as_str())));
    if let Some(expired) = query.expired_in {
        state = format!("({state} OR (state = '{}' AND lease_until < ?1))", expired.as_str());
    }
    match query.notifications {
        Some(names) => format!("{state} AND notification IN ({})", quoted(&mut names.iter().copied())),
        None => state,
    }
}

const COLUMNS: &str = "id, owner, state, video_fid, mp3_fid, filename, error, attempts, media_seconds, created_at, \
                       updated_at, output_fid, lease_until, notification, notification_since, published_at, \
                       retry_reason, retry_since, retry_next_at, version";

/// The columns a compare-and-set writes (every one but the key and the creation time).
const MUTABLE: &str = "owner = ?, state = ?, video_fid = ?, mp3_fid = ?, filename = ?, error = ?, attempts = ?, \
                       media_seconds = ?, updated_at = ?, output_fid = ?, lease_until = ?, notification = ?, \
                       notification_since = ?, published_at = ?, retry_reason = ?, retry_since = ?, \
                       retry_next_at = ?";

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Binds the values of [`MUTABLE`], in its order.
fn bind_mutable<'q>(query: Query<'q>, job: &'q Job) -> Query<'q> {
    query
        .bind(&job.owner)
        .bind(job.state.as_str())
        .bind(job.video_fid.to_string())
        .bind(job.mp3_fid.map(|fid| fid.to_string()))
        .bind(&job.filename)
        .bind(&job.error)
        .bind(job.attempts as i64)
        .bind(job.media_seconds)
        .bind(job.updated_at)
        .bind(job.attempt.map(|a| a.output_fid.to_string()))
        .bind(job.attempt.map(|a| a.lease_until))
        .bind(job.notification.as_str())
        .bind(job.notification.since())
        .bind(job.published_at)
        .bind(job.retrying.as_ref().map(|r| r.reason.clone()))
        .bind(job.retrying.as_ref().map(|r| r.since))
        .bind(job.retrying.as_ref().map(|r| r.next_at))
}

/// Inserts a new job row (also used inside the intake's transaction).
pub(super) async fn insert(executor: impl SqliteExecutor<'_>, job: &Job) -> StorageResult<()> {
    let inserted = sqlx::query(
        "INSERT INTO job (id, created_at, version, owner, state, video_fid, mp3_fid, filename, error, attempts, \
         media_seconds, updated_at, output_fid, lease_until, notification, notification_since, published_at, \
         retry_reason, retry_since, retry_next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    let inserted = bind_mutable(inserted.bind(job.id.to_string()).bind(job.created_at).bind(job.version as i64), job)
        .execute(executor)
        .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StorageError::Conflict),
        Err(e) => Err(db_error(e)),
    }
}

#[async_trait]
impl JobStore for SqliteJobs {
    async fn create(&self, job: &Job) -> StorageResult<()> {
        insert(&self.pool, job).await
    }

    async fn get(&self, id: Id) -> StorageResult<Option<Job>> {
        self.find_one("id", id).await
    }

    async fn find_by_video(&self, video_fid: Id) -> StorageResult<Option<Job>> {
        self.find_one("video_fid", video_fid).await
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

    async fn update(&self, next: &Job) -> StorageResult<Option<Job>> {
        let sql = format!("UPDATE job SET {MUTABLE}, version = version + 1 WHERE id = ? AND version = ?");
        let done = bind_mutable(sqlx::query(&sql), next)
            .bind(next.id.to_string())
            .bind(next.version as i64)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok((done.rows_affected() == 1).then(|| Job { version: next.version + 1, ..next.clone() }))
    }

    async fn delete(&self, job: &Job) -> StorageResult<bool> {
        let done = sqlx::query("DELETE FROM job WHERE id = ? AND version = ?")
            .bind(job.id.to_string())
            .bind(job.version as i64)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
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

    async fn count_unfinished(&self, owner: &str) -> StorageResult<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM job WHERE owner = ? AND state IN ('queued', 'converting')")
                .bind(owner)
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(count as u64)
    }

    async fn overdue(&self, kind: Overdue, before: i64, limit: u32) -> StorageResult<Vec<Job>> {
        let which = overdue_condition(&kind.query());
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM job WHERE published_at < ?1 AND {which} ORDER BY published_at LIMIT ?2"
        ))
        .bind(before)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter().map(Job::try_from).collect()
    }

    async fn oldest_retrying(&self) -> StorageResult<Option<i64>> {
        sqlx::query_scalar("SELECT MIN(retry_since) FROM job WHERE state IN ('queued', 'converting')")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn oldest_waiting(&self, state: JobState) -> StorageResult<Option<i64>> {
        sqlx::query_scalar("SELECT MIN(published_at) FROM job WHERE state = ? AND notification = 'pending'")
            .bind(state.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn ping(&self) -> StorageResult<()> {
        ping(&self.pool).await
    }
}
