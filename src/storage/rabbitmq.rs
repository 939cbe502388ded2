//! The cluster profile's persistent mailbox on RabbitMQ: the seed's queues `video` and `mp3`,
//! durable quorum queues with a dead-letter queue each and a delivery limit, so a message that
//! keeps killing its consumer ends in `<queue>.dlq` instead of looping forever.
//!
//! - Publishing waits for the broker's confirm: an upload is accepted only once its message is
//!   safe. Messages are persistent JSON.
//! - Each consumer (one per actor) has its own channel with prefetch 1: fair dispatch among
//!   competing converters. A delivery is acknowledged only when its work is done.
//! - A retry with backoff re-publishes the message to `<queue>.retry`, whose messages expire
//!   back into the queue after their delay, then acknowledges the original.
//! - A lost connection is reconnected on the next use; meanwhile every call fails fast as
//!   `Unavailable` (uploads get 503, `/readyz` fails) and unacknowledged deliveries return to
//!   their queue on the broker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use super::{Delivery, Mailbox, Queue, StorageError, StorageResult};

/// Header carrying the deliveries a message had before it was re-published for a retry.
const EARLIER_ATTEMPTS: &str = "x-mp3c-attempts";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RabbitMailbox {
    url: String,
    /// Deliveries of one message at most (a job's `max_attempts`); one that was delivered this
    /// often without an answer (its consumer died each time) goes to the dead-letter queue.
    delivery_limit: u32,
    /// Messages a consumer may hold unacknowledged (1: fair dispatch among converters).
    prefetch: u16,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    reconnect: Mutex<Backoff>,
    /// One consumer per (queue, consumer tag), each behind its own lock.
    consumers: Mutex<HashMap<(Queue, String), SharedSubscription>>,
}

/// One connection with its publishing channel (in confirm mode).
struct Session {
    connection: Connection,
    publisher: Channel,
}

/// A consumer, locked while one receive waits on it.
type SharedSubscription = Arc<tokio::sync::Mutex<Subscription>>;

struct Subscription {
    /// The session it belongs to; a subscription of a dead session is replaced.
    session: Arc<Session>,
    consumer: lapin::Consumer,
}

fn broker_error(error: lapin::Error) -> StorageError {
    StorageError::unavailable(error)
}

fn queue_arguments(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in pairs {
        table.insert((*key).into(), value.clone());
    }
    table
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

impl RabbitMailbox {
    pub fn new(url: String, delivery_limit: u32, prefetch: u16) -> Self {
        RabbitMailbox {
            url,
            delivery_limit,
            prefetch,
            reconnect: Mutex::new(Backoff::default()),
            session: tokio::sync::Mutex::new(None),
            consumers: Mutex::new(HashMap::new()),
        }
    }

    /// The live session, connecting (and declaring the queues) if there is none.
    /// While reconnecting is backing off, callers fail fast without touching the network.
    async fn session(&self) -> StorageResult<Arc<Session>> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref().filter(|s| s.connection.status().connected()) {
            return Ok(session.clone());
        }
        *current = None;
        let mut backoff = self.reconnect.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(wait) = backoff.remaining() {
            return Err(StorageError::unavailable(anyhow::anyhow!("RabbitMQ is unreachable; next try in {wait:?}")));
        }
        match self.connect().await {
            Ok(session) => {
                backoff.succeeded();
                *self.reconnect.lock().unwrap_or_else(|e| e.into_inner()) = backoff;
                tracing::info!("connected to RabbitMQ");
                *current = Some(session.clone());
                Ok(session)
            }
            Err(error) => {
                backoff.failed();
                *self.reconnect.lock().unwrap_or_else(|e| e.into_inner()) = backoff;
                tracing::warn!(%error, "cannot reach RabbitMQ");
                Err(error)
            }
        }
    }

    async fn connect(&self) -> StorageResult<Arc<Session>> {
        let connect = Connection::connect(&self.url, ConnectionProperties::default());
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| StorageError::unavailable(anyhow::anyhow!("connecting to RabbitMQ timed out")))?
            .map_err(broker_error)?;
        let publisher = connection.create_channel().await.map_err(broker_error)?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await.map_err(broker_error)?;
        self.declare(&publisher).await?;
        Ok(Arc::new(Session { connection, publisher }))
    }

    /// Declares each queue with its dead-letter and retry queues (idempotent).
    async fn declare(&self, channel: &Channel) -> StorageResult<()> {
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        for queue in Queue::WORK {
            let name = queue.name();
            let dead = queue.dead_letters().expect("work queues have dead-letter queues").name();
            let quorum = ("x-queue-type", text("quorum"));
            channel
                .queue_declare(dead.into(), durable, queue_arguments(std::slice::from_ref(&quorum)))
                .await
                .map_err(broker_error)?;
            let retry =
                queue_arguments(&[("x-dead-letter-exchange", text("")), ("x-dead-letter-routing-key", text(name))]);
            channel.queue_declare(retry_queue(queue).as_str().into(), durable, retry).await.map_err(broker_error)?;
            let main = queue_arguments(&[
                quorum,
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(dead)),
                // RabbitMQ counts redeliveries: a limit of N allows N + 1 deliveries.
                ("x-delivery-limit", AMQPValue::LongInt(self.delivery_limit.saturating_sub(1) as i32)),
            ]);
            channel.queue_declare(name.into(), durable, main).await.map_err(broker_error)?;
        }
        Ok(())
    }

    async fn subscription(&self, queue: Queue, tag: &str) -> StorageResult<SharedSubscription> {
        let session = self.session().await?;
        let key = (queue, tag.to_owned());
        let existing = self.consumers.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        if let Some(existing) = existing
            && Arc::ptr_eq(&existing.lock().await.session, &session)
        {
            return Ok(existing);
        }
        let channel = session.connection.create_channel().await.map_err(broker_error)?;
        channel.basic_qos(self.prefetch, BasicQosOptions::default()).await.map_err(broker_error)?;
        let consumer = channel
            .basic_consume(queue.name().into(), tag.into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(broker_error)?;
        let subscription = Arc::new(tokio::sync::Mutex::new(Subscription { session, consumer }));
        self.consumers.lock().unwrap_or_else(|e| e.into_inner()).insert(key, subscription.clone());
        Ok(subscription)
    }

    async fn forget_session(&self) {
        *self.session.lock().await = None;
    }
}

/// Reconnection backoff: after a failed attempt, no new one for a while (0.5 s doubling to 10 s).
#[derive(Clone, Debug, Default)]
struct Backoff {
    failures: u32,
    not_before: Option<std::time::Instant>,
}

impl Backoff {
    fn remaining(&self) -> Option<Duration> {
        self.not_before.and_then(|at| at.checked_duration_since(std::time::Instant::now()))
    }

    fn failed(&mut self) {
        self.failures += 1;
        let wait = Duration::from_millis(250).saturating_mul(1 << self.failures.min(6)).min(Duration::from_secs(10));
        self.not_before = Some(std::time::Instant::now() + wait);
    }

    fn succeeded(&mut self) {
        *self = Backoff::default();
    }
}

fn persistent_json() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into())
}

/// Publishes and waits for the broker's confirm, at most [`CONFIRM_TIMEOUT`]: a broker that
/// blocks publishers (a memory alarm, say) makes the caller fail with `Unavailable`, not hang.
async fn publish_confirmed(
    channel: &Channel,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> StorageResult<()> {
    let publish = async {
        channel
            .basic_publish("".into(), routing_key.into(), BasicPublishOptions::default(), body, properties)
            .await?
            .await
    };
    let confirm = tokio::time::timeout(CONFIRM_TIMEOUT, publish)
        .await
        .map_err(|_| StorageError::unavailable(anyhow::anyhow!("RabbitMQ did not confirm in {CONFIRM_TIMEOUT:?}")))?
        .map_err(broker_error)?;
    if confirm.is_nack() {
        return Err(StorageError::unavailable(anyhow::anyhow!("RabbitMQ refused the message")));
    }
    Ok(())
}

fn header_number(headers: Option<&FieldTable>, key: &str) -> u32 {
    let value = headers.and_then(|table| table.inner().get(key));
    match value {
        Some(AMQPValue::LongLongInt(n)) => *n as u32,
        Some(AMQPValue::LongInt(n)) => *n as u32,
        Some(AMQPValue::LongUInt(n)) => *n,
        Some(AMQPValue::ShortInt(n)) => *n as u32,
        _ => 0,
    }
}

#[async_trait]
impl Mailbox for RabbitMailbox {
    async fn publish(&self, queue: Queue, body: &[u8]) -> StorageResult<()> {
        let session = self.session().await?;
        let published = publish_confirmed(&session.publisher, queue.name(), body, persistent_json()).await;
        if published.is_err() {
            self.forget_session().await;
        }
        published
    }

    async fn receive(&self, queue: Queue, consumer: &str, wait: Duration) -> StorageResult<Option<Box<dyn Delivery>>> {
        let subscription = self.subscription(queue, consumer).await?;
        let mut subscription = subscription.lock().await;
        let publisher = subscription.session.publisher.clone();
        match tokio::time::timeout(wait, subscription.consumer.next()).await {
            Err(_elapsed) => Ok(None),
            Ok(Some(Ok(delivery))) => {
                let headers = delivery.properties.headers().as_ref();
                let attempt = header_number(headers, EARLIER_ATTEMPTS) + header_number(headers, "x-delivery-count") + 1;
                Ok(Some(Box::new(RabbitDelivery { delivery, attempt, queue, publisher, answered: false })))
            }
            Ok(Some(Err(error))) => {
                drop(subscription);
                self.forget_session().await;
                Err(broker_error(error))
            }
            Ok(None) => {
                drop(subscription);
                self.forget_session().await;
                Err(StorageError::unavailable(anyhow::anyhow!("the broker cancelled the consumer")))
            }
        }
    }

    async fn depth(&self, queue: Queue) -> StorageResult<u64> {
        let session = self.session().await?;
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let channel = session.connection.create_channel().await.map_err(broker_error)?;
        let declared = channel.queue_declare(queue.name().into(), passive, FieldTable::default()).await;
        let _ = channel.close(200, "done".into()).await;
        Ok(declared.map_err(broker_error)?.message_count() as u64)
    }

    async fn ping(&self) -> StorageResult<()> {
        self.session().await.map(drop)
    }
}

struct RabbitDelivery {
    delivery: lapin::message::Delivery,
    attempt: u32,
    queue: Queue,
    /// The session's confirm-mode channel, for re-publishing a retry.
    publisher: Channel,
    /// Set once ack, retry or release ran, whatever their outcome.
    answered: bool,
}

/// How long a delivery whose handler failed without answering waits before it comes back.
const UNANSWERED_DELAY: Duration = Duration::from_secs(5);

impl Drop for RabbitDelivery {
    /// A delivery dropped unanswered (its handler failed, say on a storage outage) is retried
    /// after a short delay, as the embedded mailbox's lease would return it. Left unacknowledged
    /// it would block its consumer (prefetch 1) until the connection closed; requeued at once it
    /// would spin through its delivery limit during an outage.
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (publisher, acker) = (self.publisher.clone(), self.delivery.acker.clone());
        let (body, queue, attempt) = (std::mem::take(&mut self.delivery.data), self.queue, self.attempt);
        runtime.spawn(async move {
            let retried =
                publish_confirmed(&publisher, &retry_queue(queue), &body, retry_properties(attempt, UNANSWERED_DELAY))
                    .await;
            let answered = match retried {
                Ok(()) => acker.ack(BasicAckOptions::default()).await,
                Err(_) => acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await,
            };
            if let Err(error) = answered {
                tracing::warn!(%error, "could not return an unanswered delivery");
            }
        });
    }
}

fn retry_queue(queue: Queue) -> String {
    format!("{}.retry", queue.name())
}

/// A persistent copy that expires back into its queue after `delay`, counting `attempt`.
fn retry_properties(attempt: u32, delay: Duration) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(EARLIER_ATTEMPTS.into(), AMQPValue::LongInt(attempt as i32));
    persistent_json().with_headers(headers).with_expiration(delay.as_millis().to_string().into())
}

#[async_trait]
impl Delivery for RabbitDelivery {
    fn body(&self) -> &[u8] {
        &self.delivery.data
    }

    fn attempt(&self) -> u32 {
        self.attempt
    }

    async fn ack(mut self: Box<Self>) -> StorageResult<()> {
        self.answered = true;
        self.delivery.ack(BasicAckOptions::default()).await.map(drop).map_err(broker_error)
    }

    async fn retry(mut self: Box<Self>, delay: Duration) -> StorageResult<()> {
        self.answered = true;
        let properties = retry_properties(self.attempt, delay);
        publish_confirmed(&self.publisher, &retry_queue(self.queue), &self.delivery.data, properties).await?;
        self.delivery.ack(BasicAckOptions::default()).await.map(drop).map_err(broker_error)
    }

    async fn release(mut self: Box<Self>) -> StorageResult<()> {
        self.answered = true;
        let requeue = BasicNackOptions { requeue: true, ..BasicNackOptions::default() };
        self.delivery.nack(requeue).await.map(drop).map_err(broker_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnecting_backs_off_and_a_success_resets_it() {
        let mut backoff = Backoff::default();
        assert_eq!(backoff.remaining(), None);
        backoff.failed();
        let first = backoff.remaining().unwrap();
        assert!(first <= Duration::from_millis(500) && first > Duration::from_millis(400), "{first:?}");
        backoff.failed();
        assert!(backoff.remaining().unwrap() > first);
        for _ in 0..10 {
            backoff.failed();
        }
        assert!(backoff.remaining().unwrap() <= Duration::from_secs(10));
        backoff.succeeded();
        assert_eq!(backoff.remaining(), None);
    }
}
