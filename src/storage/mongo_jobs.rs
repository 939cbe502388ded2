//! Job records in MongoDB: one document per job in `mp3converter.jobs`, keyed by the job's
//! ObjectId.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use mongodb::{Client, Collection};

use super::gridfs::object_id;
use super::{Job, JobState, JobStore, StorageError, StorageResult, now_millis};
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

impl MongoJobs {
    pub fn new(client: &Client) -> Self {
        MongoJobs { jobs: client.database("mp3converter").collection("jobs") }
    }

    /// Updates one job; `NotFound` if there is none with that id.
    async fn update_one(&self, id: Id, set: Document) -> StorageResult<()> {
        let mut set = set;
        set.insert("updated_at", now_millis());
        let result =
            self.jobs.update_one(doc! { "_id": object_id(id) }, doc! { "$set": set }).await.map_err(mongo_error)?;
        match result.matched_count {
            0 => Err(StorageError::NotFound),
            _ => Ok(()),
        }
    }
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
        "notified": false,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
    }
}

fn from_document(document: &Document) -> StorageResult<Job> {
    let corrupt = |what: &str| StorageError::unavailable(anyhow::anyhow!("corrupt job document: {what}"));
    let oid = |key: &str| document.get_object_id(key).map(id_of).map_err(|_| corrupt(key));
    let int = |key: &str| match document.get(key) {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => *n as i64,
        _ => 0,
    };
    Ok(Job {
        id: oid("_id")?,
        owner: document.get_str("owner").map_err(|_| corrupt("owner"))?.to_owned(),
        state: document.get_str("state").ok().and_then(JobState::parse).ok_or_else(|| corrupt("state"))?,
        video_fid: oid("video_fid")?,
        mp3_fid: document.get_object_id("mp3_fid").ok().map(id_of),
        filename: document.get_str("filename").unwrap_or_default().to_owned(),
        error: document.get_str("error").ok().map(str::to_owned),
        attempts: int("attempts") as u32,
        media_seconds: document.get_f64("media_seconds").ok(),
        created_at: int("created_at"),
        updated_at: int("updated_at"),
    })
}

#[async_trait]
impl JobStore for MongoJobs {
    async fn create(&self, job: &Job) -> StorageResult<()> {
        self.jobs.insert_one(to_document(job)).await.map_err(mongo_error)?;
        Ok(())
    }

    async fn get(&self, id: Id) -> StorageResult<Option<Job>> {
        let document = self.jobs.find_one(doc! { "_id": object_id(id) }).await.map_err(mongo_error)?;
        document.as_ref().map(from_document).transpose()
    }

    async fn list_by_owner(&self, owner: &str, limit: u32, before: Option<Id>) -> StorageResult<Vec<Job>> {
        let mut filter = doc! { "owner": owner };
        if let Some(before) = before {
            filter.insert("_id", doc! { "$lt": object_id(before) });
        }
        let documents: Vec<Document> = self
            .jobs
            .find(filter)
            .sort(doc! { "_id": -1 })
            .limit(limit as i64)
            .await
            .map_err(mongo_error)?
            .try_collect()
            .await
            .map_err(mongo_error)?;
        documents.iter().map(from_document).collect()
    }

    async fn mark_converting(&self, id: Id, attempts: u32, mp3_fid: Id) -> StorageResult<()> {
        self.update_one(id, doc! { "state": "converting", "attempts": attempts as i64, "mp3_fid": object_id(mp3_fid) })
            .await
    }

    async fn mark_done(&self, id: Id, media_seconds: f64) -> StorageResult<()> {
        self.update_one(id, doc! { "state": "done", "error": Bson::Null, "media_seconds": media_seconds }).await
    }

    async fn mark_failed(&self, id: Id, reason: &str) -> StorageResult<()> {
        self.update_one(id, doc! { "state": "failed", "error": reason }).await
    }

    async fn find_by_video(&self, video_fid: Id) -> StorageResult<Option<Job>> {
        let document = self.jobs.find_one(doc! { "video_fid": object_id(video_fid) }).await.map_err(mongo_error)?;
        document.as_ref().map(from_document).transpose()
    }

    async fn record_result(&self, id: Id, mp3_fid: Id) -> StorageResult<()> {
        self.update_one(id, doc! { "state": "done", "mp3_fid": object_id(mp3_fid), "error": Bson::Null }).await
    }

    async fn claim_notification(&self, id: Id) -> StorageResult<bool> {
        let result = self
            .jobs
            .update_one(doc! { "_id": object_id(id), "notified": false }, doc! { "$set": { "notified": true } })
            .await
            .map_err(mongo_error)?;
        Ok(result.modified_count == 1)
    }

    async fn release_notification(&self, id: Id) -> StorageResult<()> {
        self.jobs
            .update_one(doc! { "_id": object_id(id) }, doc! { "$set": { "notified": false } })
            .await
            .map_err(mongo_error)?;
        Ok(())
    }

    async fn count_by_state(&self) -> StorageResult<Vec<(JobState, u64)>> {
        let mut counts = Vec::new();
        for state in JobState::ALL {
            let count = self.jobs.count_documents(doc! { "state": state.as_str() }).await.map_err(mongo_error)?;
            counts.push((state, count));
        }
        Ok(counts)
    }

    async fn delete(&self, id: Id) -> StorageResult<()> {
        self.jobs.delete_one(doc! { "_id": object_id(id) }).await.map_err(mongo_error)?;
        Ok(())
    }
}
