//! A mailbox (and an intake) that counts what passes through it, whatever backend is behind:
//! publishes (and failed ones), deliveries, redeliveries and consumers per queue, the
//! application's view of the queues beside the broker's own metrics.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{Delivery, Intake, Job, Mailbox, Queue, StorageResult};
use crate::metrics::Metrics;

pub struct InstrumentedMailbox {
    inner: Arc<dyn Mailbox>,
    metrics: Arc<Metrics>,
    /// Consumer tags seen per queue (an actor restarted under its name counts once).
    consumers: Mutex<HashSet<(Queue, String)>>,
}

impl InstrumentedMailbox {
    pub fn new(inner: Arc<dyn Mailbox>, metrics: Arc<Metrics>) -> Self {
        InstrumentedMailbox { inner, metrics, consumers: Mutex::new(HashSet::new()) }
    }

    fn count_publish<T>(&self, queue: Queue, result: &StorageResult<T>) {
        let counter =
            if result.is_ok() { &self.metrics.queues.published } else { &self.metrics.queues.publish_failures };
        counter.with_label_values(&[queue.name()]).inc();
    }

    fn note_consumer(&self, queue: Queue, consumer: &str) {
        let mut consumers = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
        // Looked up first: a worker polls every second, and only its first poll is news.
        if consumers.iter().any(|(q, c)| *q == queue && c == consumer) {
            return;
        }
        consumers.insert((queue, consumer.to_owned()));
        self.metrics.queues.consumer_started(queue.name());
    }
}

#[async_trait]
impl Mailbox for InstrumentedMailbox {
    async fn publish(&self, queue: Queue, body: &[u8]) -> StorageResult<()> {
        let result = self.inner.publish(queue, body).await;
        self.count_publish(queue, &result);
        result
    }

    async fn receive(&self, queue: Queue, consumer: &str, wait: Duration) -> StorageResult<Option<Box<dyn Delivery>>> {
        self.note_consumer(queue, consumer);
        let received = self.inner.receive(queue, consumer, wait).await?;
        if let Some(delivery) = &received {
            self.metrics.queues.delivered(queue.name(), delivery.attempt() > 1);
        }
        Ok(received)
    }

    async fn depth(&self, queue: Queue) -> StorageResult<u64> {
        self.inner.depth(queue).await
    }

    async fn ping(&self) -> StorageResult<()> {
        self.inner.ping().await
    }
}

/// An intake whose `video` publishes are counted as the mailbox's are.
pub struct InstrumentedIntake {
    inner: Arc<dyn Intake>,
    /// Shares the mailbox's counters.
    mailbox: Arc<InstrumentedMailbox>,
}

impl InstrumentedIntake {
    pub fn new(inner: Arc<dyn Intake>, mailbox: Arc<InstrumentedMailbox>) -> Self {
        InstrumentedIntake { inner, mailbox }
    }
}

#[async_trait]
impl Intake for InstrumentedIntake {
    async fn submit(&self, job: &Job, message: &[u8]) -> StorageResult<()> {
        let result = self.inner.submit(job, message).await;
        self.mailbox.count_publish(Queue::Video, &result);
        result
    }
}
