//! Job records in MongoDB: one document per job in `mp3converter.jobs`, keyed by the job's
//! ObjectId. Every update replaces the document only if its `version` is the one read (a
//! compare-and-set); the indexes the queries need are created at start.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use mongodb::{Client, Collection, IndexModel};

use super::gridfs::object_id;
use super::{
    Attempt, Job, JobState, JobStore, Notification, Overdue, OverdueQuery, Retrying, StorageError, StorageResult, timed,
};
use crate::ids::Id;

pub struct MongoJobs {
    jobs: Collection<Document>,
}

fn mongo_error(error: mongodb::error::Error) -> StorageError {
    StorageError::unavailable(error)
}

fn id_of(oid: ObjectId) -> Id {
    Id::from_bytes(oid.bytes())
}

const UNFINISHED: [&str; 2] = ["queued", "converting"];

impl MongoJobs {
    pub fn new(client: &Client) -> Self {
        MongoJobs { jobs: client.database("mp3converter").collection("jobs") }
    }

    /// Creates the indexes behind `list_by_owner`, `count_unfinished`, `find_by_video`,
    /// `overdue`, `oldest_waiting`, `oldest_retrying` and the state counts (idempotent).
    pub async fn create_indexes(&self) -> StorageResult<()> {
        let keys = [
            doc! { "owner": 1, "_id": -1 },
            doc! { "owner": 1, "state": 1 },
            doc! { "video_fid": 1 },
            doc! { "state": 1, "published_at": 1 },
            doc! { "notification": 1, "state": 1, "published_at": 1 },
            doc! { "state": 1, "retry_since": 1 },
        ];
        let indexes = keys.into_iter().map(|keys| IndexModel::builder().keys(keys).build());
        timed("creating the job indexes", async { self.jobs.create_indexes(indexes).await.map_err(mongo_error) })
            .await?;
        Ok(())
    }

    async fn find_one(&self, filter: Document) -> StorageResult<Option<Job>> {
        let document = timed("reading a job", async { self.jobs.find_one(filter).await.map_err(mongo_error) }).await?;
        document.as_ref().map(from_document).transpose()
    }

    async fn find_many(&self, filter: Document, sort: Document, limit: u32) -> StorageResult<Vec<Job>> {
        let documents: Vec<Document> = timed("listing jobs", async {
            let cursor = self.jobs.find(filter).sort(sort).limit(limit as i64).await.map_err(mongo_error)?;
            cursor.try_collect().await.map_err(mongo_error)
        })
        .await?;
        documents.iter().map(from_document).collect()
    }

    async fn count(&self, filter: Document) -> StorageResult<u64> {
        timed("counting jobs", async { self.jobs.count_documents(filter).await.map_err(mongo_error) }).await
    }
}

/// The filter of a compare-and-set on `version` (a document from before versions had none).
fn at_version(job: &Job) -> Document {
    let version = match job.version {
        0 => Bson::Document(doc! { "$in": [0_i64, Bson::Null] }),
        n => Bson::Int64(n as i64),
    };
    doc! { "_id": object_id(job.id), "version": version }
}

fn to_document(job: &Job) -> Document {
    doc! {
        "_id": object_id(job.id),
        "owner": &job.owner,
        "state": job.state.as_str(),
        "video_fid": object_id(job.video_fid),
        "mp3_fid": job.mp3_fid.map(object_id),
        "filename": &job.filename,
        "error": job.error.clone(),
        "attempts": job.attempts as i64,
        "media_seconds": job.media_seconds,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "output_fid": job.attempt.map(|a| object_id(a.output_fid)),
        "lease_until": job.attempt.map(|a| a.lease_until),
        "notification": job.notification.as_str(),
        "notification_since": job.notification.since(),
        "published_at": job.published_at,
        "retry_reason": job.retrying.as_ref().map(|r| r.reason.clone()),
        "retry_since": job.retrying.as_ref().map(|r| r.since),
        "retry_next_at": job.retrying.as_ref().map(|r| r.next_at),
        "version": job.version as i64,
    }
}

fn from_document(document: &Document) -> StorageResult<Job> {
    let corrupt = |what: &str| StorageError::unavailable(anyhow::anyhow!("corrupt job document: {what}"));
    let oid = |key: &str| document.get_object_id(key).map(id_of).map_err(|_| corrupt(key));
    let int = |key: &str| match document.get(key) {
        Some(Bson::Int64(n)) => Some(*n),
        Some(Bson::Int32(n)) => Some(*n as i64),
        _ => None,
    };
    let attempt = match (document.get_object_id("output_fid").ok().map(id_of), int("lease_until")) {
        (Some(output_fid), Some(lease_until)) => Some(Attempt { output_fid, lease_until }),
        _ => None,
    };
    let state = document.get_str("state").ok().and_then(JobState::parse).ok_or_else(|| corrupt("state"))?;
    // Documents written before notifications had states: a finished job was mailed by the old
    // rules (or given up on long ago), and is not mailed again.
    let notification = match document.get_str("notification") {
        Ok(name) => Notification::parse(name, int("notification_since")).ok_or_else(|| corrupt("notification"))?,
        Err(_) if state.is_finished() => Notification::Sent,
        Err(_) => Notification::Pending,
    };
    Ok(Job {
        id: oid("_id")?,
        owner: document.get_str("owner").map_err(|_| corrupt("owner"))?.to_owned(),
        state,
        video_fid: oid("video_fid")?,
        mp3_fid: document.get_object_id("mp3_fid").ok().map(id_of),
        filename: document.get_str("filename").unwrap_or_default().to_owned(),
        error: document.get_str("error").ok().map(str::to_owned),
        attempts: int("attempts").unwrap_or_default() as u32,
        media_seconds: document.get_f64("media_seconds").ok(),
        created_at: int("created_at").unwrap_or_default(),
        updated_at: int("updated_at").unwrap_or_default(),
        attempt,
        notification,
        published_at: int("published_at").or_else(|| int("updated_at")).unwrap_or_default(),
        retrying: match (document.get_str("retry_reason"), int("retry_since"), int("retry_next_at")) {
            (Ok(reason), Some(since), Some(next_at)) => Some(Retrying { reason: reason.to_owned(), since, next_at }),
            _ => None,
        },
        version: int("version").unwrap_or_default() as u64,
    })
}

#[async_trait]
impl JobStore for MongoJobs {
    async fn create(&self, job: &Job) -> StorageResult<()> {
        let inserted = timed("creating a job", async { Ok(self.jobs.insert_one(to_document(job)).await) }).await?;
        match inserted {
            Ok(_) => Ok(()),
            Err(error) if is_duplicate_key(&error) => Err(StorageError::Conflict),
            Err(error) => Err(mongo_error(error)),
        }
    }

    async fn get(&self, id: Id) -> StorageResult<Option<Job>> {
        self.find_one(doc! { "_id": object_id(id) }).await
    }

    async fn find_by_video(&self, video_fid: Id) -> StorageResult<Option<Job>> {
        self.find_one(doc! { "video_fid": object_id(video_fid) }).await
    }

    async fn list_by_owner(&self, owner: &str, limit: u32, before: Option<Id>) -> StorageResult<Vec<Job>> {
        let mut filter = doc! { "owner": owner };
        if let Some(before) = before {
            filter.insert("_id", doc! { "$lt": object_id(before) });
        }
        self.find_many(filter, doc! { "_id": -1 }, limit).await
    }

    async fn update(&self, next: &Job) -> StorageResult<Option<Job>> {
        let stored = Job { version: next.version + 1, ..next.clone() };
        let replaced = timed("updating a job", async {
            self.jobs.replace_one(at_version(next), to_document(&stored)).await.map_err(mongo_error)
        })
        .await?;
        Ok((replaced.matched_count == 1).then_some(stored))
    }

    async fn delete(&self, job: &Job) -> StorageResult<bool> {
        let deleted =
            timed("deleting a job", async { self.jobs.delete_one(at_version(job)).await.map_err(mongo_error) }).await?;
        Ok(deleted.deleted_count == 1)
    }

    async fn count_by_state(&self) -> StorageResult<Vec<(JobState, u64)>> {
        let mut counts = Vec::new();
        for state in JobState::ALL {
            counts.push((state, self.count(doc! { "state": state.as_str() }).await?));
        }
        Ok(counts)
    }

    async fn count_unfinished(&self, owner: &str) -> StorageResult<u64> {
        self.count(doc! { "owner": owner, "state": { "$in": UNFINISHED.to_vec() } }).await
    }

    async fn overdue(&self, kind: Overdue, before: i64, limit: u32) -> StorageResult<Vec<Job>> {
        self.find_many(overdue_filter(&kind.query(), before), doc! { "published_at": 1 }, limit).await
    }

    async fn oldest_retrying(&self) -> StorageResult<Option<i64>> {
        let filter = doc! { "state": { "$in": UNFINISHED.to_vec() }, "retry_since": { "$type": "long" } };
        let oldest = self.find_many(filter, doc! { "retry_since": 1 }, 1).await?;
        Ok(oldest.first().and_then(|job| job.retrying.as_ref()).map(|retrying| retrying.since))
    }

    async fn oldest_waiting(&self, state: JobState) -> StorageResult<Option<i64>> {
        let filter = doc! { "notification": "pending", "state": state.as_str() };
        let oldest = self.find_many(filter, doc! { "published_at": 1 }, 1).await?;
        Ok(oldest.first().map(|job| job.published_at))
    }

    async fn ping(&self) -> StorageResult<()> {
        let database = self.jobs.client().database("admin");
        timed("pinging MongoDB", async { database.run_command(doc! { "ping": 1 }).await.map_err(mongo_error) }).await?;
        Ok(())
    }
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    matches!(
        &*error.kind,
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(e)) if e.code == 11000
    )
}

/// The filter of an overdue rule at cutoff `before`.
fn overdue_filter(query: &OverdueQuery, before: i64) -> Document {
    let states: Vec<&str> = query.states.iter().map(|state| state.as_str()).collect();
    let mut which = vec![doc! { "state": { "$in": states } }];
    if let Some(expired) = query.expired_in {
        which.push(doc! { "state": expired.as_str(), "lease_until": { "$lt": before } });
    }
    let mut filter = doc! { "published_at": { "$lt": before }, "$or": which };
    if let Some(names) = query.notifications {
        filter.insert("notification", doc! { "$in": names.to_vec() });
    }
    filter
}
