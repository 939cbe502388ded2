//! The job store's contract: every change a compare-and-set, lists and counts by owner, and the
//! queries the sweeper and the gauges ask, each answering as the job rules say
//! ([`mp3converter::storage::jobs`]).

use std::time::Duration;

use mp3converter::ids::Id;
use mp3converter::storage::mongo_jobs::MongoJobs;
use mp3converter::storage::sqlite::SqliteJobs;
use mp3converter::storage::{Job, JobState, JobStore, NextAttempt, Notification, Overdue, StorageError, now_millis};

use super::{Keep, contract};
use crate::servers::{mongo_client, unique};

fn job(owner: &str) -> Job {
    Job::queued(Id::generate(), owner, Id::generate(), "clip.mp4", now_millis())
}

fn begun(job: &Job, now: i64, lease: Duration) -> Job {
    match job.next_attempt(now, Id::generate(), lease, 3) {
        NextAttempt::Begin { job, .. } => job,
        other => panic!("a queued job begins, not {other:?}"),
    }
}

async fn sqlite() -> (Box<dyn JobStore>, Keep) {
    let (pool, dir) = super::sqlite().await;
    (Box::new(SqliteJobs::new(pool)), Some(dir))
}

/// The MongoDB collection is shared by every test of the run: each test's jobs have owners of
/// their own.
async fn mongo() -> (Box<dyn JobStore>, Keep) {
    let jobs = MongoJobs::new(&mongo_client().await);
    jobs.create_indexes().await.unwrap();
    (Box::new(jobs), None)
}

contract! {
    checks: [
        every_change_is_a_compare_and_set,
        an_owner_lists_their_jobs_newest_first_and_counts_the_unfinished,
        a_job_is_found_by_its_video,
        the_overdue_jobs_are_the_ones_the_rule_names,
        the_oldest_waiting_job_is_found_per_state,
        the_longest_retrying_job_is_found,
    ],
    backends: { sqlite => sqlite(), mongo => mongo() }
}

async fn every_change_is_a_compare_and_set(jobs: &dyn JobStore) {
    let created = job(&unique("owner"));
    jobs.create(&created).await.unwrap();
    assert!(matches!(jobs.create(&created).await, Err(StorageError::Conflict)));
    assert_eq!(jobs.get(created.id).await.unwrap().unwrap(), created);

    let begun = begun(&created, now_millis(), Duration::from_secs(60));
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
    jobs.ping().await.unwrap();
}

async fn an_owner_lists_their_jobs_newest_first_and_counts_the_unfinished(jobs: &dyn JobStore) {
    let owner = unique("owner");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let job = job(&owner);
        jobs.create(&job).await.unwrap();
        ids.push(job.id);
    }
    jobs.create(&job(&unique("someone-else"))).await.unwrap();
    let first: Vec<Id> = jobs.list_by_owner(&owner, 2, None).await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(first, [ids[2], ids[1]]);
    let second: Vec<Id> = jobs.list_by_owner(&owner, 2, Some(ids[1])).await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(second, [ids[0]]);
    assert_eq!(jobs.count_unfinished(&owner).await.unwrap(), 3);
    let oldest = jobs.get(ids[0]).await.unwrap().unwrap();
    jobs.update(&oldest.fail("bad input", now_millis())).await.unwrap().unwrap();
    assert_eq!(jobs.count_unfinished(&owner).await.unwrap(), 2);
    let counts = jobs.count_by_state().await.unwrap();
    let count = |wanted| counts.iter().find(|(state, _)| *state == wanted).map_or(0, |(_, n)| *n);
    assert!(count(JobState::Queued) >= 3 && count(JobState::Failed) >= 1, "{counts:?}");
}

async fn a_job_is_found_by_its_video(jobs: &dyn JobStore) {
    let created = job(&unique("owner"));
    jobs.create(&created).await.unwrap();
    assert_eq!(jobs.find_by_video(created.video_fid).await.unwrap().map(|job| job.id), Some(created.id));
    assert!(jobs.find_by_video(Id::generate()).await.unwrap().is_none());
}

/// One job of every kind the rule tells apart, and the store must return exactly those the
/// rule ([`Job::is_overdue`]) calls overdue, oldest first.
async fn the_overdue_jobs_are_the_ones_the_rule_names(jobs: &dyn JobStore) {
    let owner = unique("owner");
    let now = now_millis();
    let (long_ago, cutoff) = (now - 3_600_000, now - 60_000);
    let old = |job: Job, minutes: i64| Job { published_at: long_ago + minutes * 60_000, created_at: long_ago, ..job };
    let lease = Duration::from_secs(60);
    let dead = old(begun(&job(&owner), long_ago, lease), 1);
    let alive = old(begun(&job(&owner), long_ago, lease).renew(now, lease).unwrap(), 2);
    let failed = old(job(&owner).fail("bad input", long_ago), 3);
    let done = old(begun(&job(&owner), long_ago, lease).finish(1.0, long_ago).unwrap(), 4);
    let claimed = old(done.claim_notification(long_ago, lease).unwrap(), 5);
    let mailed = old(failed.notified(Notification::Sent, long_ago), 6);
    let undeliverable = old(done.notified(Notification::Undeliverable, long_ago), 7);
    let queued = old(job(&owner), 8);
    let fresh = job(&owner);
    let all = [dead, alive, failed, done, claimed, mailed, undeliverable, queued, fresh];
    for job in &all {
        let job = Job { id: Id::generate(), video_fid: Id::generate(), ..job.clone() };
        jobs.create(&job).await.unwrap();
    }
    for kind in [Overdue::Work, Overdue::Notice] {
        let found = jobs.overdue(kind, cutoff, 1000).await.unwrap();
        let found: Vec<i64> = found.iter().filter(|job| job.owner == owner).map(|job| job.published_at).collect();
        let expected: Vec<i64> =
            all.iter().filter(|job| job.is_overdue(kind, cutoff)).map(|job| job.published_at).collect();
        assert_eq!(found, expected, "{kind:?}: the store and the rule disagree");
        assert!(!expected.is_empty(), "{kind:?}: the rule names none of these, so nothing is checked");
    }
}

/// The age of the oldest waiting message comes from here: a queued job waits in `video`, a
/// finished one in `mp3` or `failures` until a notifier claims its email. `published_at` is
/// set far in the past, before any other test's jobs, since a store may be shared.
async fn the_oldest_waiting_job_is_found_per_state(jobs: &dyn JobStore) {
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

async fn the_longest_retrying_job_is_found(jobs: &dyn JobStore) {
    let ancient = 11;
    let held = begun(&job(&unique("owner")), now_millis(), Duration::from_secs(60));
    let retrying = held.retry_uncounted("the store is away", ancient, now_millis(), Duration::from_secs(1800), false);
    let retrying = retrying.unwrap();
    jobs.create(&retrying).await.unwrap();
    assert_eq!(jobs.oldest_retrying().await.unwrap(), Some(ancient));
    jobs.update(&retrying.fail("given up", now_millis())).await.unwrap().unwrap();
    assert_ne!(jobs.oldest_retrying().await.unwrap(), Some(ancient), "a finished job is not retrying");
}
