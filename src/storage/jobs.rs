//! Job records and the only ways they may change.
//!
//! A job record is what clients poll and what every actor decides from, so it is the authority
//! on a job's progress: how many conversion attempts it used, which attempt holds it, whether
//! its owner was mailed. Every change is a compare-and-set: an actor reads the record, computes
//! the next record with one of the transitions below (pure functions, so every rule is tested
//! without a database), and [`JobStore::update`] writes it only if nobody changed the record in
//! between (its `version` is unchanged). Whoever loses the race reads again and decides anew.
//!
//! The rules the transitions keep:
//! - A conversion attempt holds the job with a lease that its converter renews; a redelivery that
//!   finds a live lease waits, one that finds an expired lease knows the attempt died (its
//!   process crashed or was killed) and counts it. An attempt that runs out of time, whose
//!   FFmpeg worker crashes or whose MP3 cannot be written gives the job back counted, and the
//!   job fails when the same failure comes twice in a row or the attempts are used up
//!   (`attempt_failed`). Failures of storage or the broker give the attempt back uncounted
//!   (`retry_uncounted`), and so does a release at shutdown; but uncounted retries are bounded
//!   too: a job that has been retried so for longer than its limit while every backend answers
//!   fails with the last reason, and while it waits its record says why (`retrying`).
//! - Each attempt writes its MP3 under its own id, and only the attempt that still holds the
//!   job may publish it (`finish`); a late or duplicate attempt's output is deleted.
//! - `done` and `failed` are final: nothing moves a job out of them (only `DELETE` removes it).
//! - The owner's email is claimed (`sending`, with a time) before it is sent and marked `sent`
//!   after the mail server took it; a claim older than its timeout is taken over, so a crash
//!   between the two repeats the email rather than losing it.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StorageResult;
use crate::ids::Id;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Converting,
    Done,
    Failed,
}

impl JobState {
    pub const ALL: [JobState; 4] = [JobState::Queued, JobState::Converting, JobState::Done, JobState::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Converting => "converting",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// `done` or `failed`: final.
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed)
    }
}

/// The conversion attempt that holds a converting job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Where this attempt stores its MP3: its own blob, so no two attempts ever write one.
    pub output_fid: Id,
    /// Unix milliseconds after which the attempt counts as dead unless renewed.
    pub lease_until: i64,
}

/// Where the owner's email stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notification {
    /// Not sent yet (and not due before the job is finished).
    Pending,
    /// A notifier claimed it at `since` (Unix milliseconds) and may be sending it right now.
    Sending { since: i64 },
    /// The mail server accepted it.
    Sent,
    /// The owner's address can never be mailed.
    Undeliverable,
}

impl Notification {
    pub fn as_str(self) -> &'static str {
        match self {
            Notification::Pending => "pending",
            Notification::Sending { .. } => "sending",
            Notification::Sent => "sent",
            Notification::Undeliverable => "undeliverable",
        }
    }

    /// From its stored name and claim time; `None` for an unknown name.
    pub fn parse(text: &str, since: Option<i64>) -> Option<Notification> {
        Some(match text {
            "pending" => Notification::Pending,
            "sending" => Notification::Sending { since: since.unwrap_or_default() },
            "sent" => Notification::Sent,
            "undeliverable" => Notification::Undeliverable,
            _ => return None,
        })
    }

    /// The claim time of a `sending` notification.
    pub fn since(self) -> Option<i64> {
        match self {
            Notification::Sending { since } => Some(since),
            _ => None,
        }
    }

    fn is_settled(self) -> bool {
        matches!(self, Notification::Sent | Notification::Undeliverable)
    }
}

/// Why a job waits to be converted again without its attempts counting (a store or the broker
/// failed under its last attempt), since when, and when it is tried next.
#[derive(Clone, Debug, PartialEq)]
pub struct Retrying {
    pub reason: String,
    /// Unix milliseconds of the first uncounted failure in a row.
    pub since: i64,
    /// Unix milliseconds of the next try (about: the message's redelivery time).
    pub next_at: i64,
}

/// One conversion job, from upload to MP3 (or to its failure).
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: Id,
    pub owner: String,
    pub state: JobState,
    pub video_fid: Id,
    /// The MP3, set when the job is done.
    pub mp3_fid: Option<Id>,
    pub filename: String,
    pub error: Option<String>,
    /// Conversion attempts that counted: the running one, and earlier ones that died or timed out.
    pub attempts: u32,
    pub media_seconds: Option<f64>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// The attempt holding the job while it is converting.
    pub attempt: Option<Attempt>,
    pub notification: Notification,
    /// When the job's next message (its video while queued, its notice once finished) was last
    /// published, so that a lost one can be published again.
    pub published_at: i64,
    /// Set while the job is retried without counting; every other outcome clears it, and a
    /// finished job never has it.
    pub retrying: Option<Retrying>,
    /// Bumped by every write; a write succeeds only against the version it read.
    pub version: u64,
}

/// What a converter should do with a delivery of this job.
#[derive(Clone, Debug, PartialEq)]
pub enum NextAttempt {
    /// Finished already (a duplicate delivery): nothing to convert.
    Finished,
    /// Another attempt holds a live lease: look again after this long.
    Wait(Duration),
    /// Convert: write this record first. `stale_output` is the output of a dead attempt, to
    /// delete once the record is written.
    Begin { job: Job, stale_output: Option<Id> },
    /// Every attempt was used up: write this failed record.
    GiveUp { job: Job, stale_output: Option<Id> },
}

impl Job {
    /// The MP3 to show for the job: only once it is done (a record from before every attempt
    /// had its own output may hold an id reserved early).
    pub fn mp3_if_done(&self) -> Option<Id> {
        self.mp3_fid.filter(|_| self.state == JobState::Done)
    }

    /// A new job waiting for its first attempt.
    pub fn queued(id: Id, owner: &str, video_fid: Id, filename: &str, now: i64) -> Job {
        Job {
            id,
            owner: owner.to_owned(),
            state: JobState::Queued,
            video_fid,
            mp3_fid: None,
            filename: filename.to_owned(),
            error: None,
            attempts: 0,
            media_seconds: None,
            created_at: now,
            updated_at: now,
            attempt: None,
            notification: Notification::Pending,
            published_at: now,
            retrying: None,
            version: 0,
        }
    }

    fn changed(&self, now: i64) -> Job {
        Job { updated_at: now, ..self.clone() }
    }

    /// Decides a converter's next step on a delivery of this job, `output_fid` being where a
    /// new attempt would write.
    pub fn next_attempt(&self, now: i64, output_fid: Id, lease: Duration, max_attempts: u32) -> NextAttempt {
        let stale_output = match (self.state, self.attempt) {
            (JobState::Done | JobState::Failed, _) => return NextAttempt::Finished,
            (JobState::Converting, Some(attempt)) if attempt.lease_until > now => {
                return NextAttempt::Wait(Duration::from_millis((attempt.lease_until - now) as u64));
            }
            (_, attempt) => attempt.map(|a| a.output_fid),
        };
        if self.attempts >= max_attempts {
            let reason = match &self.error {
                Some(last) => format!("gave up after {} attempts; the last one: {last}", self.attempts),
                None => format!("the conversion stopped without finishing on each of its {} attempts", self.attempts),
            };
            return NextAttempt::GiveUp { job: self.fail(&reason, now), stale_output };
        }
        let job = Job {
            state: JobState::Converting,
            attempts: self.attempts + 1,
            attempt: Some(Attempt { output_fid, lease_until: now + lease.as_millis() as i64 }),
            ..self.changed(now)
        };
        NextAttempt::Begin { job, stale_output }
    }

    /// The running attempt's lease, extended.
    pub fn renew(&self, now: i64, lease: Duration) -> Option<Job> {
        let attempt = self.attempt.filter(|_| self.state == JobState::Converting)?;
        let lease_until = now + lease.as_millis() as i64;
        Some(Job { attempt: Some(Attempt { lease_until, ..attempt }), ..self.changed(now) })
    }

    /// Converting to done, with the running attempt's output as the MP3.
    pub fn finish(&self, media_seconds: f64, now: i64) -> Option<Job> {
        let attempt = self.attempt.filter(|_| self.state == JobState::Converting)?;
        Some(Job {
            state: JobState::Done,
            mp3_fid: Some(attempt.output_fid),
            error: None,
            media_seconds: Some(media_seconds),
            attempt: None,
            published_at: now,
            retrying: None,
            ..self.changed(now)
        })
    }

    /// Failed for good with `reason` (from any state but a final one, which never changes).
    pub fn fail(&self, reason: &str, now: i64) -> Job {
        if self.state.is_finished() {
            return self.clone();
        }
        Job {
            state: JobState::Failed,
            error: Some(reason.to_owned()),
            attempt: None,
            published_at: now,
            retrying: None,
            ..self.changed(now)
        }
    }

    /// The running attempt gives the job back to the queue. `counted` keeps the attempt in the
    /// count (it timed out); otherwise it never happened (storage or the broker failed, or the
    /// node is shutting down). `error` is kept as the last attempt's error.
    pub fn give_back(&self, counted: bool, error: Option<&str>, now: i64) -> Option<Job> {
        self.attempt.filter(|_| self.state == JobState::Converting)?;
        Some(Job {
            state: JobState::Queued,
            attempts: if counted { self.attempts } else { self.attempts.saturating_sub(1) },
            error: error.map(str::to_owned).or_else(|| self.error.clone()),
            attempt: None,
            published_at: now,
            ..self.changed(now)
        })
    }

    /// The running attempt failed in a way that counts (the time limit, a crash of the FFmpeg
    /// worker, a failure writing the MP3): the job fails now, with `reason`, when its attempts
    /// are used up or when the attempt before failed the very same way (a file that crashed
    /// the converter twice will again: one retry, then the reason); otherwise it goes back to
    /// the queue with `reason` as its last error.
    pub fn attempt_failed(&self, reason: &str, now: i64, max_attempts: u32) -> Option<Job> {
        self.attempt.filter(|_| self.state == JobState::Converting)?;
        if self.attempts >= max_attempts {
            return Some(self.fail(&format!("{reason} (attempt {} of {max_attempts})", self.attempts), now));
        }
        if self.error.as_deref() == Some(reason) {
            return Some(self.fail(reason, now));
        }
        let requeued = self.give_back(true, Some(reason), now)?;
        Some(Job { retrying: None, ..requeued })
    }

    /// The running attempt failed on a store or the broker (not the file's fault): the job
    /// goes back to the queue uncounted, to be tried again at `next_at`, and says why. Once it
    /// has been retried so for `limit` (since the first such failure in a row) and
    /// `backends_answer` (an outage is waited out, however long), it fails with `reason`.
    pub fn retry_uncounted(
        &self,
        reason: &str,
        now: i64,
        next_at: i64,
        limit: Duration,
        backends_answer: bool,
    ) -> Option<Job> {
        let since = self.retrying.as_ref().map_or(now, |retrying| retrying.since);
        if self.retrying_longer_than(limit, now) && backends_answer {
            self.attempt.filter(|_| self.state == JobState::Converting)?;
            let minutes = (now - since) / 60_000;
            return Some(self.fail(&format!("{reason} (retried for {minutes} min while the backends answered)"), now));
        }
        let requeued = self.give_back(false, None, now)?;
        Some(Job { retrying: Some(Retrying { reason: reason.to_owned(), since, next_at }), ..requeued })
    }

    /// Whether the job has been retried without counting for `limit` or longer.
    pub fn retrying_longer_than(&self, limit: Duration, now: i64) -> bool {
        self.retrying.as_ref().is_some_and(|retrying| now - retrying.since >= limit.as_millis() as i64)
    }

    /// Done with an MP3 that another converter (the seed's) produced; only while unfinished.
    pub fn adopt_result(&self, mp3_fid: Id, now: i64) -> Option<Job> {
        if self.state.is_finished() {
            return None;
        }
        Some(Job {
            state: JobState::Done,
            mp3_fid: Some(mp3_fid),
            error: None,
            attempt: None,
            published_at: now,
            retrying: None,
            ..self.changed(now)
        })
    }

    /// The right to send the owner's email: for a finished job whose email is pending, or whose
    /// last claim is older than `claim_timeout` (its sender died). While the claim lives, the
    /// job's notice counts as in flight (not overdue for the sweeper).
    pub fn claim_notification(&self, now: i64, claim_timeout: Duration) -> Option<Job> {
        if !self.state.is_finished() {
            return None;
        }
        let free = match self.notification {
            Notification::Pending => true,
            Notification::Sending { since } => since + claim_timeout.as_millis() as i64 <= now,
            Notification::Sent | Notification::Undeliverable => false,
        };
        let published_at = now + claim_timeout.as_millis() as i64;
        free.then(|| Job { notification: Notification::Sending { since: now }, published_at, ..self.changed(now) })
    }

    /// Records how the claimed email went: `Sent` or `Undeliverable`, or `Pending` to try again.
    pub fn notified(&self, outcome: Notification, now: i64) -> Job {
        Job { notification: outcome, ..self.changed(now) }
    }

    /// Whether the owner still needs to be mailed.
    pub fn needs_notification(&self) -> bool {
        self.state.is_finished() && !self.notification.is_settled()
    }

    /// Whether `self` holds the same change as `written` (every field but the version and the
    /// time of the write): how a writer recognises its own write after losing its answer.
    pub fn same_change(&self, written: &Job) -> bool {
        let comparable = |job: &Job| Job { version: 0, updated_at: 0, ..job.clone() };
        comparable(self) == comparable(written)
    }

    /// Whether a conversion attempt writing to `output_fid` holds the job.
    pub fn held_by(&self, output_fid: Id) -> bool {
        self.state == JobState::Converting && self.attempt.is_some_and(|a| a.output_fid == output_fid)
    }

    /// The record after its next message was published again.
    pub fn republished(&self, now: i64) -> Job {
        Job { published_at: now, ..self.clone() }
    }
}

/// The two kinds of job whose message the sweeper may publish again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overdue {
    /// Waiting for a converter: queued, or held by an attempt whose lease ran out long ago.
    Work,
    /// Finished, and the owner still not mailed.
    Notice,
}

#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a new job; `Conflict` if one with its id exists.
    async fn create(&self, job: &Job) -> StorageResult<()>;
    async fn get(&self, id: Id) -> StorageResult<Option<Job>>;
    /// The job whose upload is this video, if any.
    async fn find_by_video(&self, video_fid: Id) -> StorageResult<Option<Job>>;
    /// The owner's jobs, newest first, strictly older than `before` when given.
    async fn list_by_owner(&self, owner: &str, limit: u32, before: Option<Id>) -> StorageResult<Vec<Job>>;
    /// Compare-and-set: writes `next` if the stored record still has `next.version`, and
    /// returns the record as stored (its version one higher); `None` if the record changed
    /// meanwhile or is gone.
    async fn update(&self, next: &Job) -> StorageResult<Option<Job>>;
    /// Removes the job if the stored record still has `job.version`; false otherwise.
    async fn delete(&self, job: &Job) -> StorageResult<bool>;
    async fn count_by_state(&self) -> StorageResult<Vec<(JobState, u64)>>;
    /// The owner's jobs that are queued or converting.
    async fn count_unfinished(&self, owner: &str) -> StorageResult<u64>;
    /// Jobs of one kind whose next message may have been lost, last published before
    /// `before` (for dead attempts: their lease also ran out before it); oldest first, at most
    /// `limit`.
    async fn overdue(&self, kind: Overdue, before: i64, limit: u32) -> StorageResult<Vec<Job>>;
    /// When the oldest job in `state` whose email nobody has claimed had its last message
    /// published (Unix milliseconds): for `queued`, the oldest `video` message waiting for a
    /// converter; for `done` (`failed`), the oldest `mp3` (`failures`) notice waiting for the
    /// notifier. `None` when no such job exists.
    async fn oldest_waiting(&self, state: JobState) -> StorageResult<Option<i64>>;
    /// When the unfinished job retried without counting the longest began so (Unix
    /// milliseconds); `None` when no job is.
    async fn oldest_retrying(&self) -> StorageResult<Option<i64>>;
    async fn ping(&self) -> StorageResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(10);

    fn queued() -> Job {
        Job::queued(Id::generate(), "a@b.c", Id::generate(), "clip.mp4", 1_000)
    }

    fn begun(job: &Job, now: i64) -> Job {
        match job.next_attempt(now, Id::generate(), LEASE, 3) {
            NextAttempt::Begin { job, .. } => job,
            other => panic!("expected to begin, got {other:?}"),
        }
    }

    #[test]
    fn an_attempt_counts_and_holds_the_job_with_a_lease() {
        let job = begun(&queued(), 2_000);
        assert_eq!((job.state, job.attempts), (JobState::Converting, 1));
        assert_eq!(job.attempt.unwrap().lease_until, 12_000);
        assert_eq!(job.next_attempt(5_000, Id::generate(), LEASE, 3), NextAttempt::Wait(Duration::from_secs(7)));
        let renewed = job.renew(11_000, LEASE).unwrap();
        assert_eq!(renewed.attempt.unwrap().output_fid, job.attempt.unwrap().output_fid);
        assert!(matches!(renewed.next_attempt(13_000, Id::generate(), LEASE, 3), NextAttempt::Wait(_)));
    }

    #[test]
    fn an_expired_lease_is_a_dead_attempt_and_its_output_is_stale() {
        let first = begun(&queued(), 2_000);
        let dead_output = first.attempt.unwrap().output_fid;
        match first.next_attempt(20_000, Id::generate(), LEASE, 3) {
            NextAttempt::Begin { job, stale_output } => {
                assert_eq!(job.attempts, 2);
                assert_eq!(stale_output, Some(dead_output));
                assert_ne!(job.attempt.unwrap().output_fid, dead_output);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_counted_failure_is_retried_once_then_fails_when_it_recurs_or_attempts_run_out() {
        const CRASH: &str = "the converter crashed on this file (it died of SIGSEGV)";
        let first = begun(&queued(), 2_000);
        let requeued = first.attempt_failed(CRASH, 3_000, 3).unwrap();
        assert_eq!((requeued.state, requeued.attempts, requeued.error.as_deref()), (JobState::Queued, 1, Some(CRASH)));
        let second = begun(&requeued, 4_000);
        let failed = second.attempt_failed(CRASH, 5_000, 3).unwrap();
        assert_eq!((failed.state, failed.attempts, failed.error.as_deref()), (JobState::Failed, 2, Some(CRASH)));
        // Another failure than the last is retried, until the attempts are used up.
        let other = second.attempt_failed("the conversion took longer than its time limit", 5_000, 3).unwrap();
        assert_eq!(other.state, JobState::Queued);
        let last = begun(&other, 6_000).attempt_failed(CRASH, 7_000, 3).unwrap();
        assert_eq!(last.state, JobState::Failed);
        assert_eq!(last.error.as_deref(), Some(format!("{CRASH} (attempt 3 of 3)").as_str()));
        assert_eq!(queued().attempt_failed(CRASH, 1, 3), None, "only an attempt that holds the job");
    }

    #[test]
    fn uncounted_retries_say_why_and_end_after_their_limit_unless_the_backends_are_down() {
        const OUTAGE: &str = "storing the MP3 failed: storage unavailable";
        let limit = Duration::from_secs(60);
        let first = begun(&queued(), 1_000).retry_uncounted(OUTAGE, 2_000, 4_000, limit, true).unwrap();
        assert_eq!((first.state, first.attempts), (JobState::Queued, 0), "not counted");
        let expected = Retrying { reason: OUTAGE.into(), since: 2_000, next_at: 4_000 };
        assert_eq!(first.retrying, Some(expected));
        // The streak keeps its start across attempts.
        let again = begun(&first, 30_000).retry_uncounted(OUTAGE, 31_000, 33_000, limit, true).unwrap();
        assert_eq!(again.retrying.as_ref().map(|r| (r.since, r.next_at)), Some((2_000, 33_000)));
        // Past the limit: failed while the backends answer, waited out while they do not.
        let late = begun(&again, 70_000);
        assert_eq!(late.retry_uncounted(OUTAGE, 71_000, 73_000, limit, false).unwrap().state, JobState::Queued);
        let failed = late.retry_uncounted(OUTAGE, 71_000, 73_000, limit, true).unwrap();
        assert_eq!(failed.state, JobState::Failed);
        assert!(failed.error.as_deref().unwrap().starts_with(OUTAGE), "{failed:?}");
        assert_eq!(failed.retrying, None);
        // Any other outcome ends the streak.
        let done = begun(&again, 40_000).finish(1.0, 41_000).unwrap();
        assert_eq!(done.retrying, None);
        assert_eq!(again.adopt_result(Id::generate(), 41_000).unwrap().retrying, None);
    }

    #[test]
    fn after_the_last_attempt_dies_the_job_fails_with_the_same_count() {
        let mut job = queued();
        for n in 1..=3 {
            job = begun(&job, n * 100_000);
        }
        match job.next_attempt(1_000_000, Id::generate(), LEASE, 3) {
            NextAttempt::GiveUp { job, stale_output } => {
                assert_eq!((job.state, job.attempts), (JobState::Failed, 3));
                assert_eq!(
                    job.error.as_deref(),
                    Some("the conversion stopped without finishing on each of its 3 attempts")
                );
                assert!(stale_output.is_some());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn giving_back_uncounted_leaves_the_count_as_it_was() {
        let job = begun(&queued(), 2_000);
        let back = job.give_back(false, None, 3_000).unwrap();
        assert_eq!((back.state, back.attempts, back.attempt), (JobState::Queued, 0, None));
        let timed_out = begun(&back, 4_000).give_back(true, Some("timed out"), 5_000).unwrap();
        assert_eq!((timed_out.attempts, timed_out.error.as_deref()), (1, Some("timed out")));
        assert!(queued().give_back(false, None, 1).is_none(), "only a converting job is given back");
    }

    #[test]
    fn finished_jobs_never_change_state() {
        let job = begun(&queued(), 2_000);
        let done = job.finish(10.0, 3_000).unwrap();
        assert_eq!((done.state, done.mp3_fid), (JobState::Done, Some(job.attempt.unwrap().output_fid)));
        assert_eq!(done.next_attempt(4_000, Id::generate(), LEASE, 3), NextAttempt::Finished);
        assert!(done.finish(1.0, 5_000).is_none());
        assert!(done.renew(5_000, LEASE).is_none());
        assert!(done.give_back(false, None, 5_000).is_none());
        assert!(done.adopt_result(Id::generate(), 5_000).is_none());
        assert_eq!(done.fail("late", 5_000), done);
        let failed = job.fail("bad input", 3_000);
        assert_eq!(failed.fail("again", 4_000), failed);
    }

    #[test]
    fn an_email_is_claimed_once_and_a_stale_claim_is_taken_over() {
        let done = begun(&queued(), 2_000).finish(1.0, 3_000).unwrap();
        assert!(done.needs_notification());
        let claim = Duration::from_secs(60);
        assert!(begun(&queued(), 2_000).claim_notification(3_000, claim).is_none(), "not before it is finished");
        let sending = done.claim_notification(4_000, claim).unwrap();
        assert_eq!(sending.notification, Notification::Sending { since: 4_000 });
        assert!(sending.claim_notification(30_000, claim).is_none(), "a live claim is respected");
        let taken_over = sending.claim_notification(64_000, claim).unwrap();
        assert_eq!(taken_over.notification, Notification::Sending { since: 64_000 });
        let sent = taken_over.notified(Notification::Sent, 65_000);
        assert!(!sent.needs_notification());
        assert!(sent.claim_notification(1_000_000, claim).is_none());
    }
}
