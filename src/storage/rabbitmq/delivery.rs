//! One delivery from RabbitMQ and its answers. Every answer but an ack re-publishes the message
//! (to a queue now, or after a delay through one of that queue's retry queues) and then
//! acknowledges the original, so that the broker's delivery count grows only when a consumer
//! dies; if the re-publish fails, the original is returned to its queue instead, so that its
//! consumer is never left holding it.
//!
//! Two headers travel with a re-published message: the deliveries it had before (for metrics),
//! and the deliveries that were dropped without an answer (a handler that panicked), which
//! dead-letter the message at [`DELIVERY_LIMIT`] as the broker's own count would.

use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Acker, Channel};

use super::session::{broker_error, header_number, persistent_json, publish_confirmed};
use crate::storage::{DELIVERY_LIMIT, Delivery, Queue, StorageResult, timed};

/// Header: the deliveries a message had before it was re-published into the same queue.
const EARLIER_DELIVERIES: &str = "x-mp3c-attempts";
/// Header: deliveries of it that were dropped without an answer.
const UNANSWERED: &str = "x-mp3c-unanswered";

/// The delays of the retry queues; a retry waits for the shortest one at least as long as asked
/// (the longest, for anything longer).
pub const RETRY_DELAYS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(300),
];

pub struct RabbitDelivery {
    delivery: lapin::message::Delivery,
    queue: Queue,
    /// Deliveries before this one, and unanswered ones among them (from the headers).
    earlier: u32,
    unanswered: u32,
    /// The session's confirm-mode channel, for re-publishing.
    publisher: Channel,
    /// How long a delivery dropped unanswered waits before it is delivered again.
    unanswered_delay: Duration,
    /// Set once an answer ran, whatever its outcome.
    answered: bool,
}

impl RabbitDelivery {
    pub fn new(
        delivery: lapin::message::Delivery,
        queue: Queue,
        publisher: Channel,
        unanswered_delay: Duration,
    ) -> Self {
        let headers = delivery.properties.headers().as_ref();
        let earlier = header_number(headers, EARLIER_DELIVERIES) + header_number(headers, "x-delivery-count");
        let unanswered = header_number(headers, UNANSWERED);
        RabbitDelivery { delivery, queue, earlier, unanswered, publisher, unanswered_delay, answered: false }
    }

    /// Re-publishes the message into `queue` after `delay` with the given counts, then acks the
    /// original; if the re-publish fails, returns the original to its queue.
    async fn move_to(&mut self, queue: Queue, delay: Duration, earlier: u32, unanswered: u32) -> StorageResult<()> {
        self.answered = true;
        let properties = properties(earlier, unanswered);
        let moved = publish_confirmed(&self.publisher, &route(queue, delay), &self.delivery.data, properties).await;
        finish(&self.delivery.acker, moved).await
    }
}

/// Acks the original of a message that was re-published, or returns it to its queue if the
/// re-publish failed.
async fn finish(acker: &Acker, moved: StorageResult<()>) -> StorageResult<()> {
    match moved {
        Ok(()) => {
            let ack = acker.ack(BasicAckOptions::default());
            timed("acknowledging a message", async { ack.await.map(drop).map_err(broker_error) }).await
        }
        Err(error) => {
            let requeue = acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() });
            if let Err(nack) = timed("returning a message", async { requeue.await.map_err(broker_error) }).await {
                tracing::warn!(%nack, "could not return a message either; its connection will");
            }
            Err(error)
        }
    }
}

/// The queue a message must be published to so that it lands in `queue` after `delay`.
fn route(queue: Queue, delay: Duration) -> String {
    match delay.is_zero() {
        true => queue.name().to_owned(),
        false => retry_queue(queue, retry_delay(delay)),
    }
}

/// The retry queue's delay for a wanted `delay`.
fn retry_delay(delay: Duration) -> Duration {
    RETRY_DELAYS.into_iter().find(|bucket| *bucket >= delay).unwrap_or(RETRY_DELAYS[RETRY_DELAYS.len() - 1])
}

/// The retry queue of `queue` whose messages wait `delay`, e.g. `video.retry.30s`.
pub fn retry_queue(queue: Queue, delay: Duration) -> String {
    format!("{}.retry.{}s", queue.name(), delay.as_secs())
}

/// A retry queue's arguments: a quorum queue whose messages expire after `delay` into `queue`,
/// dead-lettered at least once (so a retry is never lost on the way back).
pub fn retry_arguments(queue: Queue, delay: Duration) -> Vec<(&'static str, AMQPValue)> {
    let text = |value: &str| AMQPValue::LongString(value.into());
    vec![
        ("x-queue-type", text("quorum")),
        ("x-message-ttl", AMQPValue::LongInt(delay.as_millis() as i32)),
        ("x-dead-letter-exchange", text("")),
        ("x-dead-letter-routing-key", text(queue.name())),
        ("x-dead-letter-strategy", text("at-least-once")),
        ("x-overflow", text("reject-publish")),
    ]
}

/// Persistent JSON carrying the delivery counts.
fn properties(earlier: u32, unanswered: u32) -> lapin::BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(EARLIER_DELIVERIES.into(), AMQPValue::LongInt(earlier as i32));
    headers.insert(UNANSWERED.into(), AMQPValue::LongInt(unanswered as i32));
    persistent_json().with_headers(headers)
}

impl Drop for RabbitDelivery {
    /// A delivery dropped without an answer (its handler panicked) comes back after a lease's
    /// wait, as in the embedded mailbox, and counts as unanswered: at [`DELIVERY_LIMIT`] of them
    /// it goes to the dead-letter queue instead. Left unacknowledged it would block its consumer
    /// until the connection closed; returned at once it would panic its handler again at once.
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let unanswered = self.unanswered + 1;
        let (target, delay) = match unanswered >= DELIVERY_LIMIT {
            true => (self.queue.dead_letters(), Duration::ZERO),
            false => (self.queue, self.unanswered_delay),
        };
        let (publisher, acker) = (self.publisher.clone(), self.delivery.acker.clone());
        let body = std::mem::take(&mut self.delivery.data);
        let properties = properties(self.earlier + 1, unanswered);
        runtime.spawn(async move {
            let moved = publish_confirmed(&publisher, &route(target, delay), &body, properties).await;
            if let Err(error) = finish(&acker, moved).await {
                tracing::warn!(%error, "could not set aside an unanswered delivery");
            }
        });
    }
}

#[async_trait]
impl Delivery for RabbitDelivery {
    fn body(&self) -> &[u8] {
        &self.delivery.data
    }

    fn queue(&self) -> Queue {
        self.queue
    }

    fn attempt(&self) -> u32 {
        self.earlier + 1
    }

    async fn ack(mut self: Box<Self>) -> StorageResult<()> {
        self.answered = true;
        let ack = self.delivery.ack(BasicAckOptions::default());
        timed("acknowledging a message", async { ack.await.map(drop).map_err(broker_error) }).await
    }

    async fn forward(mut self: Box<Self>, queue: Queue, delay: Duration) -> StorageResult<()> {
        // Deliveries are counted within one queue only.
        let (earlier, unanswered) = match queue == self.queue {
            true => (self.earlier + 1, self.unanswered),
            false => (0, 0),
        };
        self.move_to(queue, delay, earlier, unanswered).await
    }

    /// Back to its queue at once, as if this delivery had not happened (a requeue would count it).
    async fn release(mut self: Box<Self>) -> StorageResult<()> {
        let (queue, earlier, unanswered) = (self.queue, self.earlier, self.unanswered);
        self.move_to(queue, Duration::ZERO, earlier, unanswered).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delay_waits_in_the_shortest_retry_queue_that_is_long_enough() {
        assert_eq!(route(Queue::Video, Duration::ZERO), "video");
        assert_eq!(route(Queue::Video, Duration::from_millis(200)), "video.retry.1s");
        assert_eq!(route(Queue::Mp3, Duration::from_secs(5)), "mp3.retry.5s");
        assert_eq!(route(Queue::Mp3, Duration::from_secs(6)), "mp3.retry.30s");
        assert_eq!(route(Queue::VideoDead, Duration::from_secs(3600)), "video.dlq.retry.300s");
    }
}
