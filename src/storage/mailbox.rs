//! The persistent mailbox: durable queues that carry work between actors (and processes), with
//! at-least-once delivery: a claimed message is redelivered unless answered.
//!
//! Three work queues, each with a dead-letter queue and a parking queue:
//! - `video` (the legacy design's name): uploaded videos waiting for a converter;
//! - `mp3` (the legacy design's name): finished MP3s waiting for the notifier, in the legacy design's message
//!   shape, so that the legacy design's own notifier can read them;
//! - `failures`: failed conversions waiting for the notifier (kept off `mp3`, where the legacy design's
//!   notifier would mail "None is ready").
//!
//! `<queue>.dlq` takes a message that was delivered [`DELIVERY_LIMIT`] times without an answer:
//! a backstop only, since job records count attempts (a redelivery caused by a lost connection
//! is not an attempt). `<queue>.parked` keeps messages that cannot be read, for inspection;
//! nothing consumes it.

use std::time::Duration;

use async_trait::async_trait;

use super::StorageResult;

/// Deliveries without an answer (ack, retry, forward or release) after which a message is
/// dead-lettered. Far above any job's attempts, since the broker also counts redeliveries
/// that a lost connection caused; the same on every node, as queue arguments must be.
pub const DELIVERY_LIMIT: u32 = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Queue {
    Video,
    Mp3,
    Failures,
    VideoDead,
    Mp3Dead,
    FailuresDead,
    VideoParked,
    Mp3Parked,
    FailuresParked,
}

impl Queue {
    /// The queues that carry work, each with a dead-letter and a parking queue.
    pub const WORK: [Queue; 3] = [Queue::Video, Queue::Mp3, Queue::Failures];

    pub const ALL: [Queue; 9] = [
        Queue::Video,
        Queue::Mp3,
        Queue::Failures,
        Queue::VideoDead,
        Queue::Mp3Dead,
        Queue::FailuresDead,
        Queue::VideoParked,
        Queue::Mp3Parked,
        Queue::FailuresParked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Queue::Video => "video",
            Queue::Mp3 => "mp3",
            Queue::Failures => "failures",
            Queue::VideoDead => "video.dlq",
            Queue::Mp3Dead => "mp3.dlq",
            Queue::FailuresDead => "failures.dlq",
            Queue::VideoParked => "video.parked",
            Queue::Mp3Parked => "mp3.parked",
            Queue::FailuresParked => "failures.parked",
        }
    }

    /// The work queue this one belongs to.
    pub fn work(self) -> Queue {
        match self {
            Queue::Video | Queue::VideoDead | Queue::VideoParked => Queue::Video,
            Queue::Mp3 | Queue::Mp3Dead | Queue::Mp3Parked => Queue::Mp3,
            Queue::Failures | Queue::FailuresDead | Queue::FailuresParked => Queue::Failures,
        }
    }

    /// Where a work queue's messages go after [`DELIVERY_LIMIT`] unanswered deliveries.
    pub fn dead_letters(self) -> Queue {
        match self.work() {
            Queue::Video => Queue::VideoDead,
            Queue::Mp3 => Queue::Mp3Dead,
            _ => Queue::FailuresDead,
        }
    }

    /// Where unreadable messages of this queue are kept.
    pub fn parking(self) -> Queue {
        match self.work() {
            Queue::Video => Queue::VideoParked,
            Queue::Mp3 => Queue::Mp3Parked,
            _ => Queue::FailuresParked,
        }
    }

    /// True for the work queues (the ones with a dead-letter limit).
    pub fn is_work(self) -> bool {
        self.work() == self
    }
}

/// One delivered message. Exactly one answer should be given; a delivery dropped without one
/// (its handler panicked, or its process died) is delivered again after a lease, and counts as
/// unanswered toward [`DELIVERY_LIMIT`].
#[async_trait]
pub trait Delivery: Send + Sync {
    fn body(&self) -> &[u8];
    /// The queue it came from.
    fn queue(&self) -> Queue;
    /// 1 for the first delivery, counting redeliveries (for metrics; job records count attempts).
    fn attempt(&self) -> u32;
    /// Done with it: remove it from the queue.
    async fn ack(self: Box<Self>) -> StorageResult<()>;
    /// Moves it to `queue`, visible there after `delay`; not an unanswered delivery.
    async fn forward(self: Box<Self>, queue: Queue, delay: Duration) -> StorageResult<()>;
    /// Put it back at once without counting this delivery (this process is shutting down).
    async fn release(self: Box<Self>) -> StorageResult<()>;

    /// Put it back, to be delivered again after `delay`.
    async fn retry(self: Box<Self>, delay: Duration) -> StorageResult<()> {
        let queue = self.queue();
        self.forward(queue, delay).await
    }

    /// Keeps an unreadable message for inspection in its queue's parking queue.
    async fn park(self: Box<Self>) -> StorageResult<()> {
        let parking = self.queue().parking();
        self.forward(parking, Duration::ZERO).await
    }
}

#[async_trait]
pub trait Mailbox: Send + Sync {
    /// Durably enqueues a message: when this returns Ok, the message survives a crash.
    async fn publish(&self, queue: Queue, body: &[u8]) -> StorageResult<()>;
    /// The next message of `queue`, waiting for at most `wait`; `None` if none came.
    async fn receive(&self, queue: Queue, consumer: &str, wait: Duration) -> StorageResult<Option<Box<dyn Delivery>>>;
    /// Messages waiting (not yet claimed) in `queue`.
    async fn depth(&self, queue: Queue) -> StorageResult<u64>;
    async fn ping(&self) -> StorageResult<()>;
}
