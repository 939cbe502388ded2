//! The intake's contract: a job's record and its `video` message arrive together, and a job
//! that exists already is refused with nothing published.

use std::sync::Arc;
use std::time::Duration;

use mp3converter::ids::Id;
use mp3converter::storage::intake::RecordThenPublish;
use mp3converter::storage::mongo_jobs::MongoJobs;
use mp3converter::storage::rabbitmq::RabbitMailbox;
use mp3converter::storage::sqlite::{SqliteIntake, SqliteMailbox};
use mp3converter::storage::{DELIVERY_LIMIT, Intake, Job, JobStore, Mailbox, Queue, StorageError, now_millis};

use super::{Keep, contract};
use crate::servers::{amqp_url, mongo_client, unique};

/// An intake, and the stores it writes to.
struct Parts {
    intake: Box<dyn Intake>,
    jobs: Arc<dyn JobStore>,
    mailbox: Arc<dyn Mailbox>,
}

async fn sqlite() -> (Box<Parts>, Keep) {
    let (pool, dir) = super::sqlite().await;
    let mailbox = Arc::new(SqliteMailbox::new(pool.clone(), Duration::from_secs(30), DELIVERY_LIMIT));
    let jobs = Arc::new(mp3converter::storage::sqlite::SqliteJobs::new(pool.clone()));
    (Box::new(Parts { intake: Box::new(SqliteIntake::new(pool, mailbox.clone())), jobs, mailbox }), Some(dir))
}

/// MongoDB's records and RabbitMQ (a virtual host of its own) without a shared transaction.
async fn cluster() -> (Box<Parts>, Keep) {
    let jobs = Arc::new(MongoJobs::new(&mongo_client().await));
    jobs.create_indexes().await.unwrap();
    let mailbox: Arc<dyn Mailbox> = Arc::new(RabbitMailbox::new(amqp_url().await, 1, Duration::from_millis(500)));
    let intake = RecordThenPublish { jobs: jobs.clone(), mailbox: mailbox.clone() };
    (Box::new(Parts { intake: Box::new(intake), jobs, mailbox }), None)
}

contract! {
    checks: [a_job_and_its_message_arrive_together, a_job_taken_in_twice_is_refused_with_nothing_published],
    backends: { sqlite => sqlite(), cluster => cluster() }
}

fn job() -> Job {
    Job::queued(Id::generate(), &unique("owner"), Id::generate(), "clip.mp4", now_millis())
}

async fn a_job_and_its_message_arrive_together(parts: &Parts) {
    let job = job();
    parts.intake.submit(&job, job.id.to_string().as_bytes()).await.unwrap();
    assert_eq!(parts.jobs.get(job.id).await.unwrap(), Some(job.clone()));
    let delivery = parts.mailbox.receive(Queue::Video, "converter", Duration::from_secs(10)).await.unwrap();
    let delivery = delivery.expect("its message is published");
    assert_eq!(delivery.body(), job.id.to_string().as_bytes());
    delivery.ack().await.unwrap();
}

async fn a_job_taken_in_twice_is_refused_with_nothing_published(parts: &Parts) {
    let job = job();
    parts.intake.submit(&job, b"first").await.unwrap();
    let again = parts.intake.submit(&job, b"second").await;
    assert!(matches!(again, Err(StorageError::Conflict)), "{again:?}");
    let first = parts.mailbox.receive(Queue::Video, "converter", Duration::from_secs(10)).await.unwrap().unwrap();
    assert_eq!(first.body(), b"first");
    first.ack().await.unwrap();
    let second = parts.mailbox.receive(Queue::Video, "converter", Duration::from_millis(500)).await.unwrap();
    assert!(second.is_none(), "the refused one published nothing");
    assert_eq!(parts.jobs.get(job.id).await.unwrap(), Some(job), "the first record stands");
}
