//! Exactly-once outcomes of the converter and the notifier under every interleaving this file
//! can provoke: a crash between each pair of steps, a duplicate delivery injected at each step,
//! and two attempts at once. The stores are the embedded profile's real ones (SQLite, files)
//! wrapped in a fault injector; the mailer and the transcoder are stand-ins.
//!
//! A "step" is every write to a store, every publish, every answer to a delivery and every
//! email: the first run counts them, then one run per step crashes the "process" there (that
//! write and every later one fail, and the node shuts down; a fresh node then carries on over
//! the same stores), one run per step publishes a duplicate of the job's messages there, and
//! one run per step lets the write land but loses its answer (the caller sees an error, as
//! after a time-out).
//! Every run must end with the job `done` (or `failed` for a bad file), one MP3 blob, one email
//! and empty queues. The one exception is the crash after the mail server accepted an email
//! and before the record says so: the owner gets that email twice, by design.
//!
//! Why one file of nearly 600 lines: the fault injector, the stand-ins and the runs that use
//! them are one test of one promise, and read top to bottom as one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::AsyncRead;
use tokio_util::sync::CancellationToken;

use super::converter::Converter;
use super::dead_letters::{DeadNotices, DeadVideos};
use super::notifier::Notifier;
use super::sweeper;
use super::worker::{Worker, process};
use crate::config::{Config, Conversion, Server, Storage};
use crate::ids::Id;
use crate::mailer::{Email, MailError, Mailer};
use crate::messages::JobMessage;
use crate::metrics::Metrics;
use crate::node::{Lifecycle, Node, Services};
use crate::sandbox::MediaWorker;
use crate::sandbox::wire::WorkerFault;
use crate::storage::files::FileBlobStore;
use crate::storage::sqlite::{self, SqliteIntake, SqliteJobs, SqliteMailbox, SqliteUsers};
use crate::storage::{
    BlobInfo, BlobMeta, BlobReader, BlobStore, Bucket, ByteRange, DELIVERY_LIMIT, Delivery, Job, JobState, JobStore,
    Mailbox, Media, MediaSource, Overdue, Queue, StorageError, StorageResult, Stores, now_millis,
};
use crate::transcode::{StopSignal, TranscodeError, TranscodeOptions, Transcoded};

const OWNER: &str = "owner@example.com";
const GOOD: &[u8] = b"a video with sound";
const BAD: &[u8] = b"bad";
/// A good video whose conversion takes a while.
const SLOW: &[u8] = b"a slow video with sound";

// ---------------------------------------------------------------------------------------------
// Fault injection

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    Clean,
    CrashAt(u32),
    DuplicateAt(u32),
    AnswerLostAt(u32),
}

/// What a step does with its write.
enum Step {
    Perform,
    /// Perform it, then report an error.
    PerformThenFail,
}

/// Counts steps and carries out the plan; one per simulated process.
struct Faults {
    plan: Plan,
    steps: AtomicU32,
    crashed: AtomicBool,
    /// What each step was, for failure messages and for telling the mail steps apart.
    log: Mutex<Vec<&'static str>>,
    /// The process's shutdown signal, cancelled by its crash so that nothing of it goes on.
    shutdown: CancellationToken,
    /// Where a duplicate is published, and what.
    duplicate: Mutex<Option<(Arc<dyn Mailbox>, Job)>>,
}

impl Faults {
    fn new(plan: Plan) -> Arc<Faults> {
        Arc::new(Faults {
            plan,
            steps: AtomicU32::new(0),
            crashed: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
            shutdown: CancellationToken::new(),
            duplicate: Mutex::new(None),
        })
    }

    /// One step: fails if the process crashed here or earlier.
    async fn step(&self, what: &'static str) -> StorageResult<Step> {
        if self.crashed.load(Ordering::SeqCst) {
            return Err(crashed());
        }
        let n = self.steps.fetch_add(1, Ordering::SeqCst) + 1;
        self.log.lock().unwrap().push(what);
        match self.plan {
            Plan::CrashAt(at) if at == n => {
                self.crashed.store(true, Ordering::SeqCst);
                self.shutdown.cancel();
                Err(crashed())
            }
            Plan::DuplicateAt(at) if at == n => {
                self.publish_duplicates().await;
                Ok(Step::Perform)
            }
            Plan::AnswerLostAt(at) if at == n => Ok(Step::PerformThenFail),
            _ => Ok(Step::Perform),
        }
    }

    /// Runs `write` as step `what`.
    async fn around<T>(&self, what: &'static str, write: impl Future<Output = StorageResult<T>>) -> StorageResult<T> {
        match self.step(what).await? {
            Step::Perform => write.await,
            Step::PerformThenFail => {
                let _ = write.await;
                Err(StorageError::unavailable(anyhow::anyhow!("the answer was lost (injected)")))
            }
        }
    }

    async fn publish_duplicates(&self) {
        let target = self.duplicate.lock().unwrap().clone();
        let Some((mailbox, job)) = target else { return };
        mailbox.publish(Queue::Video, &JobMessage::video(&job).to_json()).await.unwrap();
        // A notice is only a pointer to the job: the notifier decides from the record.
        mailbox.publish(Queue::Mp3, &JobMessage::video(&job).to_json()).await.unwrap();
    }

    fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }
}

fn crashed() -> StorageError {
    StorageError::unavailable(anyhow::anyhow!("the process crashed (injected)"))
}

struct FaultyJobs(Arc<dyn JobStore>, Arc<Faults>);

#[async_trait]
impl JobStore for FaultyJobs {
    async fn create(&self, job: &Job) -> StorageResult<()> {
        self.1.around("job create", self.0.create(job)).await
    }
    async fn get(&self, id: Id) -> StorageResult<Option<Job>> {
        self.0.get(id).await
    }
    async fn find_by_video(&self, video_fid: Id) -> StorageResult<Option<Job>> {
        self.0.find_by_video(video_fid).await
    }
    async fn list_by_owner(&self, owner: &str, limit: u32, before: Option<Id>) -> StorageResult<Vec<Job>> {
        self.0.list_by_owner(owner, limit, before).await
    }
    async fn update(&self, next: &Job) -> StorageResult<Option<Job>> {
        self.1.around("job update", self.0.update(next)).await
    }
    async fn delete(&self, job: &Job) -> StorageResult<bool> {
        self.1.around("job delete", self.0.delete(job)).await
    }
    async fn count_by_state(&self) -> StorageResult<Vec<(JobState, u64)>> {
        self.0.count_by_state().await
    }
    async fn count_unfinished(&self, owner: &str) -> StorageResult<u64> {
        self.0.count_unfinished(owner).await
    }
    async fn overdue(&self, kind: Overdue, before: i64, limit: u32) -> StorageResult<Vec<Job>> {
        self.0.overdue(kind, before, limit).await
    }
    async fn oldest_waiting(&self, state: JobState) -> StorageResult<Option<i64>> {
        self.0.oldest_waiting(state).await
    }
    async fn oldest_retrying(&self) -> StorageResult<Option<i64>> {
        self.0.oldest_retrying().await
    }
    async fn ping(&self) -> StorageResult<()> {
        self.0.ping().await
    }
}

struct FaultyBlobs(Arc<dyn BlobStore>, Arc<Faults>);

#[async_trait]
impl BlobStore for FaultyBlobs {
    async fn put(
        &self,
        bucket: Bucket,
        fid: Id,
        meta: &BlobMeta,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> StorageResult<u64> {
        self.1.around("blob put", self.0.put(bucket, fid, meta, body)).await
    }
    async fn stat(&self, bucket: Bucket, fid: Id) -> StorageResult<BlobInfo> {
        self.0.stat(bucket, fid).await
    }
    async fn open(&self, bucket: Bucket, fid: Id, range: Option<ByteRange>) -> StorageResult<BlobReader> {
        self.0.open(bucket, fid, range).await
    }
    async fn set_meta(&self, bucket: Bucket, fid: Id, meta: &BlobMeta) -> StorageResult<()> {
        self.1.around("blob meta", self.0.set_meta(bucket, fid, meta)).await
    }
    async fn media(&self, bucket: Bucket, fid: Id) -> StorageResult<MediaSource> {
        self.0.media(bucket, fid).await
    }
    async fn delete(&self, bucket: Bucket, fid: Id) -> StorageResult<()> {
        self.1.around("blob delete", self.0.delete(bucket, fid)).await
    }
    async fn ping(&self) -> StorageResult<()> {
        self.0.ping().await
    }
}

struct FaultyMailbox(Arc<dyn Mailbox>, Arc<Faults>);

#[async_trait]
impl Mailbox for FaultyMailbox {
    async fn publish(&self, queue: Queue, body: &[u8]) -> StorageResult<()> {
        self.1.around("publish", self.0.publish(queue, body)).await
    }
    async fn receive(&self, queue: Queue, consumer: &str, wait: Duration) -> StorageResult<Option<Box<dyn Delivery>>> {
        let delivery = self.0.receive(queue, consumer, wait).await?;
        Ok(delivery.map(|inner| Box::new(FaultyDelivery(inner, self.1.clone())) as Box<dyn Delivery>))
    }
    async fn depth(&self, queue: Queue) -> StorageResult<u64> {
        self.0.depth(queue).await
    }
    async fn ping(&self) -> StorageResult<()> {
        self.0.ping().await
    }
}

struct FaultyDelivery(Box<dyn Delivery>, Arc<Faults>);

#[async_trait]
impl Delivery for FaultyDelivery {
    fn body(&self) -> &[u8] {
        self.0.body()
    }
    fn queue(&self) -> Queue {
        self.0.queue()
    }
    fn attempt(&self) -> u32 {
        self.0.attempt()
    }
    async fn ack(self: Box<Self>) -> StorageResult<()> {
        self.1.around("ack", self.0.ack()).await
    }
    async fn forward(self: Box<Self>, queue: Queue, delay: Duration) -> StorageResult<()> {
        self.1.around("forward", self.0.forward(queue, delay)).await
    }
    async fn release(self: Box<Self>) -> StorageResult<()> {
        self.1.around("release", self.0.release()).await
    }
}

/// Records every email the "mail server" accepted.
struct FakeMailer {
    sent: Arc<Mutex<Vec<Email>>>,
    faults: Arc<Faults>,
}

#[async_trait]
impl Mailer for FakeMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let fail = |_| MailError::Transient("the process crashed (injected)".into());
        // An SMTP server that took an email whose answer was lost gets it again: the one
        // duplicate the design accepts, so the mail steps only ever crash.
        self.faults.step("mail send").await.map_err(fail)?;
        self.sent.lock().unwrap().push(email.clone());
        self.faults.step("mail accepted").await.map_err(fail).map(drop)
    }

    fn timeout(&self) -> Duration {
        Duration::ZERO
    }
}

/// The FFmpeg worker's stand-in: copies the video, refuses [`BAD`], takes its time over
/// [`SLOW`].
struct FakeMedia;

impl MediaWorker for FakeMedia {
    fn transcode(
        &self,
        input: Media,
        output: &Path,
        _: TranscodeOptions,
        _: Option<WorkerFault>,
        stop: &StopSignal,
    ) -> Result<Transcoded, TranscodeError> {
        fake_transcode(input, output, stop)
    }

    fn copy_audio(&self, _: &Path, _: &Path, _: &StopSignal) -> Result<(), TranscodeError> {
        Err(TranscodeError::NoAudio)
    }
}

fn fake_transcode(input: Media, output: &Path, stop: &StopSignal) -> Result<Transcoded, TranscodeError> {
    let Media::File(input) = input else { panic!("the file store gives its files in place") };
    let video = std::fs::read(input).map_err(|e| TranscodeError::Output(e.to_string()))?;
    if video == BAD {
        return Err(TranscodeError::Unreadable("not a media file".into()));
    }
    let until = Instant::now() + if video == SLOW { Duration::from_millis(300) } else { Duration::ZERO };
    while Instant::now() < until {
        stop.check()?;
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(output, video).map_err(|e| TranscodeError::Output(e.to_string()))?;
    Ok(Transcoded { media_seconds: 1.0 })
}

// ---------------------------------------------------------------------------------------------
// The world: stores that outlive the simulated processes

struct World {
    _dir: tempfile::TempDir,
    pool: sqlx::SqlitePool,
    config: Config,
    jobs: Arc<dyn JobStore>,
    blobs: Arc<dyn BlobStore>,
    mailbox: Arc<dyn Mailbox>,
    stores: Stores,
    sent: Arc<Mutex<Vec<Email>>>,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            storage: Storage { data_dir: dir.path().to_path_buf(), ..Storage::default() },
            server: Server { shutdown_grace_seconds: 0, ..Server::default() },
            conversion: Conversion { lease_seconds: 1, max_attempts: 3, ..Conversion::default() },
            ..Config::default()
        };
        std::fs::create_dir_all(config.scratch_dir()).unwrap();
        let pool = sqlite::open(&dir.path().join("db")).await.unwrap();
        let sqlite_mailbox = Arc::new(SqliteMailbox::new(pool.clone(), config.conversion.lease(), DELIVERY_LIMIT));
        let stores = Stores {
            users: Arc::new(SqliteUsers::new(pool.clone())),
            blobs: Arc::new(FileBlobStore::open(dir.path().join("blobs")).await.unwrap()),
            jobs: Arc::new(SqliteJobs::new(pool.clone())),
            intake: Arc::new(SqliteIntake::new(pool.clone(), sqlite_mailbox.clone())),
            mailbox: sqlite_mailbox,
        };
        World {
            config,
            jobs: stores.jobs.clone(),
            blobs: stores.blobs.clone(),
            mailbox: stores.mailbox.clone(),
            stores,
            sent: Arc::new(Mutex::new(Vec::new())),
            pool,
            _dir: dir,
        }
    }

    /// A simulated process over the world's stores, faulted by `faults`.
    fn node(&self, faults: &Arc<Faults>) -> Node {
        let stores = Stores {
            users: self.stores.users.clone(),
            blobs: Arc::new(FaultyBlobs(self.blobs.clone(), faults.clone())),
            jobs: Arc::new(FaultyJobs(self.jobs.clone(), faults.clone())),
            mailbox: Arc::new(FaultyMailbox(self.mailbox.clone(), faults.clone())),
            intake: self.stores.intake.clone(),
        };
        let services = Services {
            mailer: Arc::new(FakeMailer { sent: self.sent.clone(), faults: faults.clone() }),
            media: Arc::new(FakeMedia),
            metrics: Arc::new(Metrics::new("test")),
        };
        let lifecycle = Lifecycle { shutdown: faults.shutdown.clone(), ..Lifecycle::new() };
        Node { config: self.config.clone(), stores, services, lifecycle, activity: Default::default() }
    }

    /// Uploads `video` as a new job (not a step: the faults begin after the upload).
    async fn upload(&self, video: &[u8]) -> Job {
        let job = self.store_video(video).await;
        self.stores.intake.submit(&job, &JobMessage::video(&job).to_json()).await.unwrap();
        job
    }

    /// Stores `video` and returns the queued job it would be (not yet recorded).
    async fn store_video(&self, video: &[u8]) -> Job {
        let (job_id, video_fid) = (Id::generate(), Id::generate());
        let meta = BlobMeta {
            owner: OWNER.into(),
            filename: "clip.mp4".into(),
            content_type: "video/mp4".into(),
            job_id: Some(job_id),
        };
        self.blobs.put(Bucket::Videos, video_fid, &meta, &mut &video[..]).await.unwrap();
        Job::queued(job_id, OWNER, video_fid, "clip.mp4", now_millis())
    }

    fn mp3_blobs(&self) -> Vec<PathBuf> {
        let dir = self.config.storage.data_dir.join("blobs").join("mp3s");
        let entries = std::fs::read_dir(dir).unwrap().filter_map(Result::ok).map(|e| e.path());
        entries.filter(|path| path.extension().is_none()).collect()
    }

    fn emails(&self) -> Vec<Email> {
        self.sent.lock().unwrap().clone()
    }

    /// No message left in any queue, claimed or not.
    async fn queues_empty(&self) -> bool {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mailbox").fetch_one(&self.pool).await.unwrap();
        count == 0
    }
}

/// Takes at most one delivery of `queue` and handles it as worker `W` of `node` would.
async fn handle_one<W: Worker>(node: &Node, queue: Queue) -> bool {
    match node.stores.mailbox.receive(queue, "test", Duration::from_millis(20)).await {
        Ok(Some(delivery)) => {
            let _ = process::<W>(node, delivery).await;
            true
        }
        _ => false,
    }
}

/// Runs one simulated process after another (a new one after each crash) until the job is
/// finished, its owner mailed and every queue empty. Returns the first process's step log.
async fn run_until_settled(world: &World, job: &Job, plan: Plan) -> Vec<&'static str> {
    let first = Faults::new(plan);
    *first.duplicate.lock().unwrap() = Some((world.mailbox.clone(), job.clone()));
    let mut faults = first.clone();
    let mut node = world.node(&faults);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "{plan:?} did not settle; steps {:?}", first.log.lock().unwrap());
        let mut busy = handle_one::<Converter>(&node, Queue::Video).await;
        busy |= handle_one::<Notifier>(&node, Queue::Mp3).await;
        busy |= handle_one::<Notifier>(&node, Queue::Failures).await;
        busy |= handle_one::<DeadVideos>(&node, Queue::VideoDead).await;
        busy |= handle_one::<DeadNotices>(&node, Queue::Mp3Dead).await;
        if faults.crashed() {
            faults = Faults::new(Plan::Clean);
            node = world.node(&faults);
            continue;
        }
        if busy {
            continue;
        }
        let stored = world.jobs.get(job.id).await.unwrap().unwrap();
        if stored.state.is_finished() && !stored.needs_notification() && world.queues_empty().await {
            return first.log.lock().unwrap().clone();
        }
        // Whatever is lost is found by the sweeper, as it would be a while later.
        let _ = sweeper::sweep(&node, now_millis() + 3_600_000).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The one outcome every interleaving must reach for a good video.
async fn assert_done_once(world: &World, job: &Job, video: &[u8], emails: usize, context: &str) {
    let stored = world.jobs.get(job.id).await.unwrap().unwrap();
    assert_eq!(stored.state, JobState::Done, "{context}: {stored:?}");
    assert!((1..=world.config.conversion.max_attempts).contains(&stored.attempts), "{context}: {stored:?}");
    let mp3s = world.mp3_blobs();
    assert_eq!(mp3s.len(), 1, "{context}: one MP3 blob, got {mp3s:?}");
    assert_eq!(mp3s[0].file_name().unwrap().to_string_lossy(), stored.mp3_fid.unwrap().to_string(), "{context}");
    assert_eq!(std::fs::read(&mp3s[0]).unwrap(), video, "{context}: the MP3 is whole");
    let mails = world.emails();
    assert_eq!(mails.len(), emails, "{context}: {mails:?}");
    assert!(mails.iter().all(|mail| mail.to == OWNER && mail.text.contains(&stored.mp3_fid.unwrap().to_string())));
}

/// One email, or two for a crash after the mail server took the email and before the record
/// said so (the mail-accepted step and the record write after it): resent by design.
fn emails_expected(log: &[&str], crash_at: u32) -> usize {
    match log.iter().position(|step| *step == "mail send") {
        Some(sent) if (sent as u32 + 2..=sent as u32 + 3).contains(&crash_at) => 2,
        _ => 1,
    }
}

/// How many steps a clean run of `video` takes.
async fn clean_steps(video: &[u8]) -> u32 {
    let world = World::new().await;
    let job = world.upload(video).await;
    run_until_settled(&world, &job, Plan::Clean).await.len() as u32
}

// ---------------------------------------------------------------------------------------------
// The tests

/// One run of the upload under a plan.
struct Run {
    world: World,
    job: Job,
    /// The first process's steps.
    log: Vec<&'static str>,
    /// The step the plan acted at.
    at: u32,
}

/// Runs `video` once per step of its clean run, with `plan(step)`, each in a world of its own.
async fn every_step(video: &'static [u8], plan: fn(u32) -> Plan) -> Vec<Run> {
    let steps = clean_steps(video).await;
    assert!(steps >= 8, "a clean run takes its steps: {steps}");
    let runs = (1..=steps).map(|at| async move {
        let world = World::new().await;
        let job = world.upload(video).await;
        let log = run_until_settled(&world, &job, plan(at)).await;
        Run { world, job, log, at }
    });
    futures_util::future::join_all(runs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_any_two_steps_still_gives_one_mp3_one_done_one_email() {
    for Run { world, job, log, at } in every_step(GOOD, Plan::CrashAt).await {
        let context = format!("crash at step {at} of {log:?}");
        assert_done_once(&world, &job, GOOD, emails_expected(&log, at), &context).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_at_any_step_still_gives_one_mp3_one_done_one_email() {
    for Run { world, job, log, at } in every_step(GOOD, Plan::DuplicateAt).await {
        assert_done_once(&world, &job, GOOD, 1, &format!("duplicate at step {at} of {log:?}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_is_lost_at_any_step_still_gives_one_mp3_one_done_one_email() {
    for Run { world, job, log, at } in every_step(GOOD, Plan::AnswerLostAt).await {
        assert_done_once(&world, &job, GOOD, 1, &format!("answer lost at step {at} of {log:?}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_video_fails_once_whatever_crashes() {
    for Run { world, job, log, at } in every_step(BAD, Plan::CrashAt).await {
        let stored = world.jobs.get(job.id).await.unwrap().unwrap();
        assert_eq!(stored.state, JobState::Failed, "crash at {at} of {log:?}");
        assert!(world.mp3_blobs().is_empty(), "crash at {at}: no MP3");
        let mails = world.emails();
        assert_eq!(mails.len(), emails_expected(&log, at), "crash at {at} of {log:?}: {mails:?}");
        assert!(mails.iter().all(|mail| mail.subject.starts_with("MP3 conversion failed")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_attempts_at_once_give_one_mp3_one_done_one_email() {
    let world = World::new().await;
    let job = world.upload(SLOW).await;
    // A second copy of the message, taken by a second process at the same time.
    world.mailbox.publish(Queue::Video, &JobMessage::video(&job).to_json()).await.unwrap();
    let (a, b) = (Faults::new(Plan::Clean), Faults::new(Plan::Clean));
    let (node_a, node_b) = (world.node(&a), world.node(&b));
    let (took_a, took_b) =
        tokio::join!(handle_one::<Converter>(&node_a, Queue::Video), handle_one::<Converter>(&node_b, Queue::Video));
    assert!(took_a && took_b, "both processes had a delivery");
    run_until_settled(&world, &job, Plan::Clean).await;
    assert_done_once(&world, &job, SLOW, 1, "two attempts at once").await;
    let stored = world.jobs.get(job.id).await.unwrap().unwrap();
    assert_eq!(stored.attempts, 1, "the second attempt waited instead of counting: {stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_message_was_lost_is_found_by_the_sweeper() {
    let world = World::new().await;
    // The record was written, its message never was (a cluster intake whose publish and
    // rollback both failed).
    let job = world.store_video(GOOD).await;
    world.jobs.create(&job).await.unwrap();
    let faults = Faults::new(Plan::Clean);
    let node = world.node(&faults);
    assert_eq!(sweeper::sweep(&node, now_millis()).await.unwrap(), 0, "not overdue yet");
    assert_eq!(sweeper::sweep(&node, now_millis() + 3_600_000).await.unwrap(), 1);
    run_until_settled(&world, &job, Plan::Clean).await;
    assert_done_once(&world, &job, GOOD, 1, "lost message").await;
}
