//! Job records in MongoDB: compare-and-set updates, lists, counts, the sweeper's query and the
//! oldest waiting job (that one also in SQLite, the same assertions).

use std::time::Duration;

use mp3converter::ids::Id;
use mp3converter::storage::mongo_jobs::MongoJobs;
use mp3converter::storage::{Job, JobState, JobStore, NextAttempt, Notification, Overdue, StorageError, now_millis};

use crate::servers::{mongo_client, unique};

fn job(owner: &str) -> Job {
    Job::queued(Id::generate(), owner, Id::generate(), "clip.mp4", now_millis())
}

async fn jobs() -> MongoJobs {
    let jobs = MongoJobs::new(&mongo_client().await);
    jobs.create_indexes().await.unwrap();
    jobs
}

#[tokio::test]
async fn every_change_is_a_compare_and_set() {
    let jobs = jobs().await;
    let created = job(&unique("owner"));
    jobs.create(&created).await.unwrap();
    assert!(matches!(jobs.create(&created).await, Err(StorageError::Conflict)));
    assert_eq!(jobs.get(created.id).await.unwrap().unwrap(), created);

    let NextAttempt::Begin { job: begun, .. } =
        created.next_attempt(now_millis(), Id::generate(), Duration::from_secs(60), 3)
    else {
        panic!("a queued job begins")
    };
    let held = jobs.update(&begun).await.unwrap().expect("the first write wins");
    assert_eq!(held.version, created.version + 1);
    assert!(jobs.update(&begun).await.unwrap().is_none(), "a second write from the same version loses");

    let done = jobs.update(&held.finish(12.5, now_millis()).unwrap()).await.unwrap().unwrap();
    let stored = jobs.get(created.id).await.unwrap().unwrap();
    assert_eq!(stored, done);
    assert_eq!(
        (stored.state, stored.mp3_fid, stored.attempts),
        (JobState::Done, Some(begun.attempt.unwrap().output_fid), 1)
    );

    let claim = done.claim_notification(now_millis(), Duration::from_secs(60)).unwrap();
    let sending = jobs.update(&claim).await.unwrap().unwrap();
    assert!(matches!(jobs.get(created.id).await.unwrap().unwrap().notification, Notification::Sending { .. }));
    assert!(jobs.update(&claim).await.unwrap().is_none(), "one claim per version");

    assert!(!jobs.delete(&done).await.unwrap(), "a delete from an old version loses");
    assert!(jobs.delete(&sending).await.unwrap());
    assert!(jobs.get(created.id).await.unwrap().is_none());
    assert!(jobs.update(&sending).await.unwrap().is_none(), "a deleted job takes no writes");
}

#[tokio::test]
async fn an_owner_lists_their_jobs_and_counts_the_unfinished() {
    let jobs = jobs().await;
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
    assert_eq!(jobs.count_unfinished(&owner).await.unwrap(), 3);
    let oldest = jobs.get(ids[0]).await.unwrap().unwrap();
    jobs.update(&oldest.fail("bad input", now_millis())).await.unwrap().unwrap();
    assert_eq!(jobs.count_unfinished(&owner).await.unwrap(), 2);
    let counts = jobs.count_by_state().await.unwrap();
    assert!(counts.iter().any(|(state, n)| *state == JobState::Queued && *n >= 2));
}

#[tokio::test]
async fn overdue_jobs_are_queued_ones_and_finished_ones_not_yet_mailed() {
    let jobs = jobs().await;
    let owner = unique("owner");
    let long_ago = now_millis() - 3_600_000;
    let old = |job: Job| Job { published_at: long_ago, created_at: long_ago, ..job };
    let queued = old(job(&owner));
    let failed = old(job(&owner)).fail("bad input", long_ago);
    let mailed = old(job(&owner)).fail("bad input", long_ago).notified(Notification::Sent, long_ago);
    let fresh = job(&owner);
    for job in [&queued, &failed, &mailed, &fresh] {
        jobs.create(job).await.unwrap();
    }
    let (jobs, owner) = (&jobs, &owner);
    let overdue = |kind| async move {
        let found = jobs.overdue(kind, now_millis() - 60_000, 1000).await.unwrap();
        found.into_iter().filter(|job| &job.owner == owner).map(|job| job.id).collect::<Vec<Id>>()
    };
    assert_eq!(overdue(Overdue::Work).await, [queued.id]);
    assert_eq!(overdue(Overdue::Notice).await, [failed.id]);
}

/// The age of the oldest waiting message comes from here: a queued job waits in `video`, a
/// finished one in `mp3` or `failures` until a notifier claims its email. `published_at` is
/// set far in the past, before any other test's jobs, since the collection is shared.
async fn assert_the_oldest_waiting_job_is_found_per_state(jobs: &dyn JobStore) {
    let ancient = 7;
    let queued = Job { published_at: ancient, ..job(&unique("owner")) };
    jobs.create(&queued).await.unwrap();
    assert_eq!(jobs.oldest_waiting(JobState::Queued).await.unwrap(), Some(ancient));
    let failed = jobs.update(&queued.fail("not media", now_millis()).republished(ancient)).await.unwrap().unwrap();
    assert_ne!(jobs.oldest_waiting(JobState::Queued).await.unwrap(), Some(ancient));
    assert_eq!(jobs.oldest_waiting(JobState::Failed).await.unwrap(), Some(ancient));
    assert_ne!(jobs.oldest_waiting(JobState::Done).await.unwrap(), Some(ancient));
    let claimed = failed.claim_notification(now_millis(), Duration::from_secs(60)).unwrap();
    jobs.update(&claimed.republished(ancient)).await.unwrap().unwrap();
    assert_ne!(jobs.oldest_waiting(JobState::Failed).await.unwrap(), Some(ancient), "a claimed email is not waiting");
}

#[tokio::test]
async fn the_oldest_waiting_job_is_found_per_state() {
    assert_the_oldest_waiting_job_is_found_per_state(&jobs().await).await;
}

#[tokio::test]
async fn the_oldest_waiting_job_is_found_per_state_in_sqlite_too() {
    let dir = tempfile::tempdir().unwrap();
    let pool = mp3converter::storage::sqlite::open(&dir.path().join("jobs.db")).await.unwrap();
    let jobs = mp3converter::storage::sqlite::SqliteJobs::new(pool);
    assert_the_oldest_waiting_job_is_found_per_state(&jobs).await;
    assert_eq!(jobs.oldest_waiting(JobState::Done).await.unwrap(), None, "no job: nothing waits");
}
