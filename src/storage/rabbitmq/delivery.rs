//! One delivery from RabbitMQ and its answers: ack, forward (to a queue now, or after a delay
//! through that queue's `.retry` queue, whose messages expire into it), release (a requeue).

use std::time::Duration;

use async_trait::async_trait;
use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};

use super::session::{broker_error, header_number, persistent_json, publish_confirmed};
use crate::storage::{Delivery, Queue, StorageResult, timed};

/// Header carrying the deliveries a message had before it was re-published for a retry.
const EARLIER_DELIVERIES: &str = "x-mp3c-attempts";
/// How long a delivery whose handler failed without answering waits before it comes back.
const UNANSWERED_DELAY: Duration = Duration::from_secs(5);

pub struct RabbitDelivery {
    delivery: lapin::message::Delivery,
    attempt: u32,
    queue: Queue,
    /// The session's confirm-mode channel, for re-publishing.
    publisher: Channel,
    /// Set once an answer ran, whatever its outcome.
    answered: bool,
}

impl RabbitDelivery {
    pub fn new(delivery: lapin::message::Delivery, queue: Queue, publisher: Channel) -> Self {
        let headers = delivery.properties.headers().as_ref();
        let attempt = header_number(headers, EARLIER_DELIVERIES) + header_number(headers, "x-delivery-count") + 1;
        RabbitDelivery { delivery, attempt, queue, publisher, answered: false }
    }
}

/// The queue a message must be published to so that it lands in `queue` after `delay`.
pub fn route(queue: Queue, delay: Duration) -> String {
    match delay.is_zero() {
        true => queue.name().to_owned(),
        false => retry_queue(queue),
    }
}

pub fn retry_queue(queue: Queue) -> String {
    format!("{}.retry", queue.name())
}

/// Persistent, expiring after `delay` (out of a `.retry` queue), counting `earlier` deliveries.
fn properties(earlier: u32, delay: Duration) -> lapin::BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(EARLIER_DELIVERIES.into(), AMQPValue::LongInt(earlier as i32));
    let properties = persistent_json().with_headers(headers);
    match delay.is_zero() {
        true => properties,
        false => properties.with_expiration(delay.as_millis().to_string().into()),
    }
}

/// Publishes `body` to arrive in `queue` after `delay`, then acknowledges the original.
async fn move_message(
    publisher: &Channel,
    acker: &lapin::Acker,
    body: &[u8],
    queue: Queue,
    delay: Duration,
    earlier: u32,
) -> StorageResult<()> {
    publish_confirmed(publisher, &route(queue, delay), body, properties(earlier, delay)).await?;
    let ack = acker.ack(BasicAckOptions::default());
    timed("acknowledging a message", async { ack.await.map(drop).map_err(broker_error) }).await
}

impl Drop for RabbitDelivery {
    /// A delivery dropped unanswered (its handler failed, say on an outage) is retried after a
    /// short delay, as the embedded mailbox's lease would return it. Left unacknowledged it
    /// would block its consumer (prefetch 1) until the connection closed.
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (publisher, acker) = (self.publisher.clone(), self.delivery.acker.clone());
        let (body, queue, attempt) = (std::mem::take(&mut self.delivery.data), self.queue, self.attempt);
        runtime.spawn(async move {
            if move_message(&publisher, &acker, &body, queue, UNANSWERED_DELAY, attempt).await.is_err() {
                let requeue = BasicNackOptions { requeue: true, ..BasicNackOptions::default() };
                if let Err(error) = acker.nack(requeue).await {
                    tracing::warn!(%error, "could not return an unanswered delivery");
                }
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
        self.attempt
    }

    async fn ack(mut self: Box<Self>) -> StorageResult<()> {
        self.answered = true;
        let ack = self.delivery.ack(BasicAckOptions::default());
        timed("acknowledging a message", async { ack.await.map(drop).map_err(broker_error) }).await
    }

    async fn forward(mut self: Box<Self>, queue: Queue, delay: Duration) -> StorageResult<()> {
        self.answered = true;
        // Deliveries are counted within one queue only.
        let earlier = if queue == self.queue { self.attempt } else { 0 };
        move_message(&self.publisher, &self.delivery.acker, &self.delivery.data, queue, delay, earlier).await
    }

    async fn release(mut self: Box<Self>) -> StorageResult<()> {
        self.answered = true;
        let requeue = BasicNackOptions { requeue: true, ..BasicNackOptions::default() };
        let nack = self.delivery.nack(requeue);
        timed("returning a message", async { nack.await.map(drop).map_err(broker_error) }).await
    }
}
