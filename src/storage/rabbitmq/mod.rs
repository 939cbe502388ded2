//! The cluster profile's persistent mailbox on RabbitMQ: the legacy design's queues `video` and `mp3`
//! and our `failures`, durable quorum queues with a dead-letter queue each and a delivery
//! limit, so a message that keeps killing its consumer ends in `<queue>.dlq` instead of looping
//! forever; `<queue>.parked` keeps unreadable messages.
//!
//! - [`session`]: the connection, made on first use and again after it is lost (meanwhile every
//!   call fails fast as `Unavailable`: uploads get 503, `/readyz` fails), and confirmed publishes.
//! - [`delivery`]: one delivery and its answers.
//!
//! Publishing waits for the broker's confirm: an upload is accepted only once its message is
//! safe. Each consumer (one per actor) has its own channel with a small prefetch: fair dispatch
//! among competing converters. A delivery is acknowledged only when its work is done; a delayed
//! retry re-publishes the message to one of the queue's `<queue>.retry.<delay>` queues (quorum
//! queues, each with one message TTL, so that no long delay holds up a short one), whose
//! messages expire back into the queue, dead-lettered at least once. Every call to the broker
//! has a time limit.

mod delivery;
mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use lapin::Connection;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};

use super::{DELIVERY_LIMIT, Delivery, Mailbox, Queue, StorageError, StorageResult, timed};
use delivery::{RETRY_DELAYS, RabbitDelivery, retry_arguments, retry_queue};
use session::{Session, Sessions, broker_error, persistent_json, publish_confirmed};

pub struct RabbitMailbox {
    sessions: Sessions,
    /// Messages a consumer may hold unacknowledged (1: fair dispatch among converters).
    prefetch: u16,
    /// How long a delivery dropped without an answer (its handler panicked) waits before it is
    /// delivered again, as a lease would make it wait in the embedded mailbox.
    unanswered_delay: Duration,
    /// One consumer per (queue, consumer tag), each behind its own lock.
    consumers: Mutex<HashMap<(Queue, String), SharedSubscription>>,
}

/// A consumer, locked while one receive waits on it.
type SharedSubscription = Arc<tokio::sync::Mutex<Subscription>>;

struct Subscription {
    /// The session it belongs to; a subscription of a dead session is replaced.
    session: Arc<Session>,
    consumer: lapin::Consumer,
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

/// Declares every queue (idempotent): per work queue, its dead-letter and parking queues, the
/// delayed-retry queues of it and of its dead-letter queue, and the queue itself.
fn declare(connection: &Connection) -> BoxFuture<'_, StorageResult<()>> {
    Box::pin(async move {
        let quorum = ("x-queue-type", text("quorum"));
        for queue in Queue::WORK {
            let dead = queue.dead_letters();
            for plain in [dead, queue.parking()] {
                declare_one(connection, plain.name(), std::slice::from_ref(&quorum)).await?;
            }
            for target in [queue, dead] {
                for delay in RETRY_DELAYS {
                    let arguments = retry_arguments(target, delay);
                    declare_one(connection, &retry_queue(target, delay), &arguments).await?;
                }
            }
            let main = [
                quorum.clone(),
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(dead.name())),
                // RabbitMQ counts redeliveries: a limit of N allows N + 1 deliveries.
                ("x-delivery-limit", AMQPValue::LongInt(DELIVERY_LIMIT as i32 - 1)),
            ];
            declare_one(connection, queue.name(), &main).await?;
        }
        Ok(())
    })
}

/// Declares one durable queue on a channel of its own. A queue that exists with other
/// arguments (declared by an older version, say with another delivery limit) is kept as it is,
/// with a warning: declaring it again cannot change it, and refusing to start would stop the
/// service (see the README on moving a deployment).
async fn declare_one(connection: &Connection, name: &str, arguments: &[(&str, AMQPValue)]) -> StorageResult<()> {
    let channel = connection.create_channel().await.map_err(broker_error)?;
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    let declared = channel.queue_declare(name.into(), durable, queue_arguments(arguments)).await;
    match declared {
        Ok(_) => {
            let _ = channel.close(200, "declared".into()).await;
            Ok(())
        }
        Err(error) if error.to_string().contains("PRECONDITION_FAILED") => {
            tracing::warn!(queue = name, %error, "the queue exists with other arguments; keeping them");
            Ok(())
        }
        Err(error) => Err(broker_error(error)),
    }
}

impl RabbitMailbox {
    pub fn new(url: String, prefetch: u16, unanswered_delay: Duration) -> Self {
        let consumers = Mutex::new(HashMap::new());
        RabbitMailbox { sessions: Sessions::new(url), prefetch, unanswered_delay, consumers }
    }

    async fn session(&self) -> StorageResult<Arc<Session>> {
        self.sessions.get(declare).await
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
        let consumer = timed("subscribing to a queue", async {
            let channel = session.connection.create_channel().await.map_err(broker_error)?;
            channel.basic_qos(self.prefetch, BasicQosOptions::default()).await.map_err(broker_error)?;
            let options = BasicConsumeOptions::default();
            channel
                .basic_consume(queue.name().into(), tag.into(), options, FieldTable::default())
                .await
                .map_err(broker_error)
        })
        .await?;
        let subscription = Arc::new(tokio::sync::Mutex::new(Subscription { session, consumer }));
        self.consumers.lock().unwrap_or_else(|e| e.into_inner()).insert(key, subscription.clone());
        Ok(subscription)
    }
}

#[async_trait]
impl Mailbox for RabbitMailbox {
    async fn publish(&self, queue: Queue, body: &[u8]) -> StorageResult<()> {
        let session = self.session().await?;
        let published = publish_confirmed(&session.publisher, queue.name(), body, persistent_json()).await;
        if published.is_err() {
            self.sessions.forget().await;
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
                Ok(Some(Box::new(RabbitDelivery::new(delivery, queue, publisher, self.unanswered_delay))))
            }
            Ok(Some(Err(error))) => {
                drop(subscription);
                self.sessions.forget().await;
                Err(broker_error(error))
            }
            Ok(None) => {
                drop(subscription);
                self.sessions.forget().await;
                Err(StorageError::unavailable(anyhow::anyhow!("the broker cancelled the consumer")))
            }
        }
    }

    async fn depth(&self, queue: Queue) -> StorageResult<u64> {
        let session = self.session().await?;
        timed("reading a queue's depth", async {
            let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
            let channel = session.connection.create_channel().await.map_err(broker_error)?;
            let declared = channel.queue_declare(queue.name().into(), passive, FieldTable::default()).await;
            let _ = channel.close(200, "done".into()).await;
            Ok(declared.map_err(broker_error)?.message_count() as u64)
        })
        .await
    }

    async fn ping(&self) -> StorageResult<()> {
        self.session().await.map(drop)
    }
}
