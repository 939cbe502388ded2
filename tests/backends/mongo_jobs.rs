//! Job records in MongoDB.

use mp3converter::ids::Id;
use mp3converter::storage::mongo_jobs::MongoJobs;
use mp3converter::storage::{Job, JobState, JobStore, StorageError, now_millis};

use crate::servers::{mongo_client, unique};

fn job(owner: &str) -> Job {
    let now = now_millis();
    Job {
        id: Id::generate(),
        owner: owner.to_owned(),
        state: JobState::Queued,
        video_fid: Id::generate(),
        mp3_fid: None,
        filename: "clip.mp4".into(),
        error: None,
        attempts: 0,
        media_seconds: None,
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test]
async fn a_job_moves_through_its_states() {
    let jobs = MongoJobs::new(&mongo_client().await);
    let owner = unique("owner");
    let created = job(&owner);
    jobs.create(&created).await.unwrap();
    assert_eq!(jobs.get(created.id).await.unwrap().unwrap(), created);

    let mp3 = Id::generate();
    jobs.mark_converting(created.id, 1, mp3).await.unwrap();
    jobs.mark_done(created.id, 12.5).await.unwrap();
    let done = jobs.get(created.id).await.unwrap().unwrap();
    assert_eq!(
        (done.state, done.mp3_fid, done.attempts, done.media_seconds),
        (JobState::Done, Some(mp3), 1, Some(12.5))
    );

    assert!(jobs.claim_notification(created.id).await.unwrap());
    assert!(!jobs.claim_notification(created.id).await.unwrap(), "one email per job");
    jobs.release_notification(created.id).await.unwrap();
    assert!(jobs.claim_notification(created.id).await.unwrap());

    assert!(matches!(jobs.mark_failed(Id::generate(), "x").await, Err(StorageError::NotFound)));
    jobs.delete(created.id).await.unwrap();
    assert!(jobs.get(created.id).await.unwrap().is_none());
}

#[tokio::test]
async fn an_owner_lists_their_jobs_newest_first_by_page() {
    let jobs = MongoJobs::new(&mongo_client().await);
    let owner = unique("owner");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let job = job(&owner);
        jobs.create(&job).await.unwrap();
        ids.push(job.id);
    }
    jobs.create(&job("someone-else")).await.unwrap();
    let first: Vec<Id> = jobs.list_by_owner(&owner, 2, None).await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(first, [ids[2], ids[1]]);
    let second: Vec<Id> = jobs.list_by_owner(&owner, 2, Some(ids[1])).await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(second, [ids[0]]);
    let counts = jobs.count_by_state().await.unwrap();
    assert!(counts.iter().any(|(state, n)| *state == JobState::Queued && *n >= 3));
}
