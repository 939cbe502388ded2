//! The mailbox as this node sees it (`queue` label; the broker's own numbers come from
//! RabbitMQ's `rabbitmq_prometheus` plugin): depth, publishes and their failures, deliveries
//! and redeliveries, consumers, parked and re-published messages, and the oldest wait.

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::{at_zero, register, seconds_between};

pub struct QueueMetrics {
    depth: IntGaugeVec,
    /// Messages published and confirmed durable.
    pub published: IntCounterVec,
    /// Publishes that failed or were not confirmed.
    pub publish_failures: IntCounterVec,
    deliveries: IntCounterVec,
    redeliveries: IntCounterVec,
    consumers: IntGaugeVec,
    parked: IntCounterVec,
    republished: IntCounterVec,
    oldest_age: GaugeVec,
}

impl QueueMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        let counter =
            |name: &str, help: &str| register(r, IntCounterVec::new(Opts::new(name, help), &["queue"]).unwrap());
        let gauge = |name: &str, help: &str| register(r, IntGaugeVec::new(Opts::new(name, help), &["queue"]).unwrap());
        QueueMetrics {
            depth: gauge("mp3c_queue_depth", "Messages waiting in a mailbox queue."),
            published: counter("mp3c_queue_published_total", "Messages published and confirmed durable."),
            publish_failures: counter("mp3c_queue_publish_failures_total", "Publishes that failed or were not confirmed."),
            deliveries: counter(
                "mp3c_queue_deliveries_total",
                "Messages delivered to this node's consumers (video.dlq: dead-lettered jobs).",
            ),
            redeliveries: counter("mp3c_queue_redeliveries_total", "Deliveries of a message that was delivered before."),
            consumers: gauge("mp3c_queue_consumers", "This node's consumers of a queue."),
            parked: counter("mp3c_queue_parked_total", "Unreadable messages moved to their queue's parking queue."),
            republished: counter("mp3c_queue_republished_total", "Lost messages the sweeper published again."),
            oldest_age: register(
                r,
                GaugeVec::new(
                    Opts::new(
                        "mp3c_queue_oldest_message_age_seconds",
                        "Age of the oldest message waiting for a consumer in a work queue, from the job records (0: none).",
                    ),
                    &["queue"],
                )
                .unwrap(),
            ),
        }
    }

    /// A new consumer of `queue` on this node; its delivery counters start at zero, so that
    /// the first delivery (a first dead letter) already shows as an increase.
    pub fn consumer_started(&self, queue: &str) {
        self.consumers.with_label_values(&[queue]).inc();
        at_zero(&self.deliveries, &[queue]);
        at_zero(&self.redeliveries, &[queue]);
    }

    /// A delivery of `queue`; `again` when the message was delivered before.
    pub fn delivered(&self, queue: &str, again: bool) {
        self.deliveries.with_label_values(&[queue]).inc();
        if again {
            self.redeliveries.with_label_values(&[queue]).inc();
        }
    }

    pub fn set_depth(&self, queue: &str, depth: u64) {
        self.depth.with_label_values(&[queue]).set(depth as i64);
    }

    pub fn parked(&self, queue: &str) {
        self.parked.with_label_values(&[queue]).inc();
    }

    pub fn republished(&self, queue: &str) {
        self.republished.with_label_values(&[queue]).inc();
    }

    /// The oldest message waiting in `queue` was published at `published_at` (Unix
    /// milliseconds; `None`: nothing waits).
    pub fn set_oldest_waiting(&self, queue: &str, published_at: Option<i64>, now: i64) {
        let age = published_at.map_or(0.0, |then| seconds_between(then, now));
        self.oldest_age.with_label_values(&[queue]).set(age);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Metrics;

    #[test]
    fn a_consumer_starts_its_queue_delivery_counters_at_zero() {
        let metrics = Metrics::new("n1");
        metrics.queues.consumer_started("video.dlq");
        let text = metrics.render();
        assert!(text.contains("mp3c_queue_deliveries_total{queue=\"video.dlq\",node=\"n1\"} 0"), "{text}");
        assert!(text.contains("mp3c_queue_consumers{queue=\"video.dlq\",node=\"n1\"} 1"), "{text}");
    }

    #[test]
    fn the_oldest_wait_is_in_seconds_and_none_is_zero() {
        let metrics = Metrics::new("n1");
        metrics.queues.set_oldest_waiting("video", Some(1_000), 31_000);
        metrics.queues.set_oldest_waiting("mp3", None, 31_000);
        let text = metrics.render();
        assert!(text.contains("mp3c_queue_oldest_message_age_seconds{queue=\"video\",node=\"n1\"} 30"), "{text}");
        assert!(text.contains("mp3c_queue_oldest_message_age_seconds{queue=\"mp3\",node=\"n1\"} 0"), "{text}");
    }
}
