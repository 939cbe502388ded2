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
//! - A job, its video and its MP3 belong to its owner alone (admins read everything):
//!   [`may_read`], and the MP3 is labelled so ([`Job::mp3_meta`]).
//! - A job may be deleted unless an attempt is converting it ([`delete`]).
//! - A job's message may have been lost when it is [`Overdue`]: the sweeper's rule, which the
//!   stores' queries implement from one description ([`OverdueQuery`]).
//!
//! This file is longer than most (its tests included) because it is the one home of these
//! rules: every store and every actor asks them here.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{BlobMeta, StorageResult};
use crate::ids::Id;

/// Tries of one compare-and-set against a record that keeps changing under it: a writer that
/// loses this many races in a row gives up for now (its caller tries again later).
pub const RACES: usize = 5;

/// Whether `user` may read what `owner` owns (a job, its video, its MP3): its owner, or an
/// admin. Anyone else is answered as if it did not exist.
pub fn may_read(owner: &str, user: &str, admin: bool) -> bool {
    admin || owner == user
}

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

impl Attempt {
    /// Whether the attempt's lease still runs at `now`: its converter is alive.
    pub fn is_live(&self, now: i64) -> bool {
        self.lease_until > now
    }
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

    /// The attempt converting the job right now, if its lease still runs at `now`.
    pub fn live_attempt(&self, now: i64) -> Option<Attempt> {
        self.attempt.filter(|attempt| self.state == JobState::Converting && attempt.is_live(now))
    }

    /// How long until the live attempt's lease runs out (zero when none holds the job).
    pub fn lease_left(&self, now: i64) -> Duration {
        self.live_attempt(now)
            .map_or(Duration::ZERO, |attempt| Duration::from_millis((attempt.lease_until - now) as u64))
    }

    /// Whether `user` may see the job (its owner, or an admin): [`may_read`].
    pub fn readable_by(&self, user: &str, admin: bool) -> bool {
        may_read(&self.owner, user, admin)
    }

    /// What the job's MP3 is labelled with: its owner (who alone may download it), its name
    /// (`holiday video.mp4` becomes `holiday video.mp3`) and its job.
    pub fn mp3_meta(&self) -> BlobMeta {
        let stem = std::path::Path::new(&self.filename).file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let stem = if stem.is_empty() { "audio" } else { stem };
        BlobMeta {
            owner: self.owner.clone(),
            filename: format!("{stem}.mp3"),
            content_type: "audio/mpeg".into(),
            job_id: Some(self.id),
        }
    }

    /// Whether an MP3 labelled `mp3` may become this job's: it is labelled for no other job,
    /// and for no other owner (a legacy converter labels its MP3s with neither).
    pub fn may_adopt(&self, mp3: &BlobMeta) -> bool {
        mp3.job_id.is_none_or(|id| id == self.id) && (mp3.owner.is_empty() || mp3.owner == self.owner)
    }

    /// Whether the job may be deleted: any job but one an attempt is converting (a queued one
    /// is cancelled by it).
    pub fn deletable(&self) -> bool {
        self.state != JobState::Converting
    }

    /// Whether the job is [`Overdue`] of `kind` at cutoff `before`.
    pub fn is_overdue(&self, kind: Overdue, before: i64) -> bool {
        kind.query().matches(self, before)
    }

    /// Decides a converter's next step on a delivery of this job, `output_fid` being where a
    /// new attempt would write.
    pub fn next_attempt(&self, now: i64, output_fid: Id, lease: Duration, max_attempts: u32) -> NextAttempt {
        if self.state.is_finished() {
            return NextAttempt::Finished;
        }
        if self.live_attempt(now).is_some() {
            return NextAttempt::Wait(self.lease_left(now));
        }
        let stale_output = self.attempt.map(|attempt| attempt.output_fid);
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

    /// Done with an MP3 that another converter (the legacy design's) produced; only while unfinished.
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

/// The two kinds of job whose message the sweeper may publish again: a job is overdue of a
/// kind when its message was last published before the cutoff and it is one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overdue {
    /// Waiting for a converter: queued, or held by an attempt whose lease ran out before the
    /// cutoff.
    Work,
    /// Finished, and the owner still not mailed (the email pending, or claimed by a sender).
    Notice,
}

/// The rule of an [`Overdue`] kind, as data: what [`Job::is_overdue`] checks and what each
/// job store's `overdue` query selects (their contract tests hold them to the same answers).
/// A job matches when it was last published before the cutoff, is in one of `states` or is
/// in `expired_in` with an attempt whose lease ran out before the cutoff, and (when
/// `notifications` says) its email is in one of those.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverdueQuery {
    pub states: &'static [JobState],
    pub expired_in: Option<JobState>,
    pub notifications: Option<&'static [&'static str]>,
}

impl Overdue {
    pub const fn query(self) -> OverdueQuery {
        match self {
            Overdue::Work => OverdueQuery {
                states: &[JobState::Queued],
                expired_in: Some(JobState::Converting),
                notifications: None,
            },
            Overdue::Notice => OverdueQuery {
                states: &[JobState::Done, JobState::Failed],
                expired_in: None,
                notifications: Some(&["pending", "sending"]),
            },
        }
    }
}

impl OverdueQuery {
    /// Whether `job` is overdue by this rule at cutoff `before`.
    pub fn matches(&self, job: &Job, before: i64) -> bool {
        let expired = self.expired_in == Some(job.state) && job.attempt.is_some_and(|a| a.lease_until < before);
        let state = self.states.contains(&job.state) || expired;
        let notification = self.notifications.is_none_or(|names| names.contains(&job.notification.as_str()));
        job.published_at < before && state && notification
    }
}

/// What became of a request to delete a job. (Short-lived: boxing the record would only add
/// noise.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Deletion {
    /// The record is gone; here it is as it was (its video and MP3 are the caller's to delete).
    Deleted(Job),
    /// An attempt is converting the job: it cannot be deleted now.
    InProgress,
    /// There was no such job (or it went meanwhile).
    Gone,
}

/// Deletes `job`'s record, as a compare-and-set: a record that changed meanwhile (a sweeper
/// stamped it, say) is read again, [`RACES`] times at most, and one that an attempt took
/// meanwhile is left alone (the attempt's final write then finds no job, and it deletes its
/// own output).
pub async fn delete(jobs: &dyn JobStore, mut job: Job) -> StorageResult<Deletion> {
    for _ in 0..RACES {
        if !job.deletable() {
            return Ok(Deletion::InProgress);
        }
        if jobs.delete(&job).await? {
            return Ok(Deletion::Deleted(job));
        }
        match jobs.get(job.id).await? {
            Some(now) => job = now,
            None => return Ok(Deletion::Gone),
        }
    }
    Ok(Deletion::InProgress)
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
    fn an_mp3_is_labelled_for_its_owner_with_the_original_stem() {
        let named = |filename: &str| Job { filename: filename.into(), ..queued() }.mp3_meta();
        let meta = named("holiday video.mp4");
        assert_eq!(
            (meta.filename.as_str(), meta.owner.as_str(), meta.content_type.as_str()),
            ("holiday video.mp3", "a@b.c", "audio/mpeg")
        );
        assert_eq!(named("clip").filename, "clip.mp3");
        assert_eq!(named("").filename, "audio.mp3");
        assert_eq!(named("été.mov").filename, "été.mp3");
        assert!(may_read("a@b.c", "a@b.c", false) && may_read("a@b.c", "root@b.c", true));
        assert!(!may_read("a@b.c", "eve@b.c", false), "another user is answered as if it did not exist");
    }

    #[test]
    fn a_job_is_overdue_when_its_message_is_old_and_nobody_will_act_on_it() {
        let old = |job: Job| Job { published_at: 1_000, ..job };
        let cutoff = 50_000;
        assert!(old(queued()).is_overdue(Overdue::Work, cutoff));
        assert!(!Job { published_at: 60_000, ..queued() }.is_overdue(Overdue::Work, cutoff), "published lately");
        let converting = begun(&queued(), 2_000); // lease until 12 000
        assert!(old(converting.clone()).is_overdue(Overdue::Work, cutoff), "its lease ran out long ago");
        assert!(!old(converting.renew(45_000, LEASE).unwrap()).is_overdue(Overdue::Work, cutoff), "a live lease");
        let done = old(converting.finish(1.0, 3_000).unwrap());
        assert!(!done.is_overdue(Overdue::Work, cutoff) && done.is_overdue(Overdue::Notice, cutoff));
        let mailed = done.notified(Notification::Sent, 4_000);
        assert!(!mailed.is_overdue(Overdue::Notice, cutoff), "its owner was mailed");
        let claimed = old(done.claim_notification(4_000, LEASE).unwrap());
        assert!(claimed.is_overdue(Overdue::Notice, cutoff), "a claim whose sender may have died");
        assert!(!queued().is_overdue(Overdue::Notice, cutoff));
    }

    #[test]
    fn only_a_job_no_attempt_holds_may_be_deleted_and_a_live_lease_says_how_long_it_holds() {
        let converting = begun(&queued(), 2_000);
        assert!(queued().deletable() && !converting.deletable());
        assert!(converting.finish(1.0, 3_000).unwrap().deletable());
        assert_eq!(converting.live_attempt(5_000), converting.attempt);
        assert_eq!(converting.lease_left(5_000), Duration::from_secs(7));
        assert_eq!((converting.live_attempt(12_000), converting.lease_left(12_000)), (None, Duration::ZERO));
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
