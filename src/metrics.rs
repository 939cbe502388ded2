//! Prometheus metrics: one registry per node, every series labelled with `node`.
//!
//! Names use base units and the `_total`, `_seconds` and `_bytes` suffixes, and are the names
//! the Grafana dashboards query: change them together.

use std::time::Instant;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::storage::{JobState, Queue};

/// Buckets for work measured in seconds, from a fast HTTP request to a long conversion.
const SECONDS_BUCKETS: &[f64] = &[0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];

pub struct Metrics {
    registry: Registry,
    actor_messages: IntCounterVec,
    actor_message_seconds: HistogramVec,
    actor_failures: IntCounterVec,
    actor_restarts: IntCounterVec,
    actor_inflight: IntGaugeVec,
    pub uploads: IntCounter,
    pub upload_bytes: IntCounter,
    /// Blob data moved to and from GridFS (cluster profile), by database and direction: what
    /// the data path costs the shared store, per job.
    pub gridfs_bytes: IntCounterVec,
    jobs: IntGaugeVec,
    pub conversion_seconds: Histogram,
    pub media_seconds: prometheus::Counter,
    conversions: IntCounterVec,
    notifications: IntCounterVec,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    queue_depth: IntGaugeVec,
    pub queue_published: IntCounterVec,
    pub queue_publish_failures: IntCounterVec,
    pub queue_deliveries: IntCounterVec,
    pub queue_redeliveries: IntCounterVec,
    pub queue_consumers: IntGaugeVec,
    queue_parked: IntCounterVec,
    queue_republished: IntCounterVec,
    outage_retries: IntCounter,
    notifications_overdue: IntGauge,
    backend_up: IntGaugeVec,
    cluster_peers: IntGaugeVec,
    cluster_session_events: IntCounterVec,
    pub cluster_rpc_seconds: HistogramVec,
    cluster_group_members: IntGaugeVec,
    /// Clients following a job's live events on this node.
    pub job_event_subscribers: IntGauge,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry.register(Box::new(collector.clone())).expect("metric names are unique");
    collector
}

fn seconds(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(SECONDS_BUCKETS.to_vec())
}

impl Metrics {
    pub fn new(node: &str) -> Self {
        let labels = [("node".to_owned(), node.to_owned())].into_iter().collect();
        let registry = Registry::new_custom(None, Some(labels)).expect("the node label is valid");
        let r = &registry;
        Metrics {
            actor_messages: register(
                r,
                IntCounterVec::new(Opts::new("mp3c_actor_messages_total", "Messages an actor handled."), &["actor"])
                    .unwrap(),
            ),
            actor_message_seconds: register(
                r,
                HistogramVec::new(
                    seconds("mp3c_actor_message_duration_seconds", "Time an actor spent handling one message."),
                    &["actor"],
                )
                .unwrap(),
            ),
            actor_failures: register(
                r,
                IntCounterVec::new(
                    Opts::new("mp3c_actor_failures_total", "Messages whose handling failed."),
                    &["actor"],
                )
                .unwrap(),
            ),
            actor_restarts: register(
                r,
                IntCounterVec::new(
                    Opts::new("mp3c_actor_restarts_total", "Times the supervisor restarted an actor."),
                    &["actor"],
                )
                .unwrap(),
            ),
            actor_inflight: register(
                r,
                IntGaugeVec::new(
                    Opts::new("mp3c_actor_inflight", "Messages an actor is handling right now."),
                    &["actor"],
                )
                .unwrap(),
            ),
            uploads: register(r, IntCounter::new("mp3c_uploads_total", "Videos accepted for conversion.").unwrap()),
            upload_bytes: register(r, IntCounter::new("mp3c_upload_bytes_total", "Bytes of accepted videos.").unwrap()),
            gridfs_bytes: register(
                r,
                IntCounterVec::new(
                    Opts::new("mp3c_gridfs_bytes_total", "Blob data bytes written to (read from) GridFS."),
                    &["database", "direction"],
                )
                .unwrap(),
            ),
            jobs: register(r, IntGaugeVec::new(Opts::new("mp3c_jobs", "Jobs by state."), &["state"]).unwrap()),
            conversion_seconds: register(
                r,
                Histogram::with_opts(seconds("mp3c_conversion_duration_seconds", "Wall time of one conversion."))
                    .unwrap(),
            ),
            media_seconds: register(
                r,
                prometheus::Counter::new("mp3c_media_converted_seconds_total", "Seconds of audio converted to MP3.")
                    .unwrap(),
            ),
            conversions: register(
                r,
                IntCounterVec::new(
                    Opts::new("mp3c_conversions_total", "Conversions by outcome (done, failed, retried)."),
                    &["outcome"],
                )
                .unwrap(),
            ),
            notifications: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "mp3c_notifications_total",
                        "Notification emails by outcome (sent, failed, undeliverable).",
                    ),
                    &["outcome"],
                )
                .unwrap(),
            ),
            http_requests: register(
                r,
                IntCounterVec::new(
                    Opts::new("mp3c_http_requests_total", "HTTP requests by route and status."),
                    &["route", "status"],
                )
                .unwrap(),
            ),
            http_seconds: register(
                r,
                HistogramVec::new(
                    seconds("mp3c_http_request_duration_seconds", "HTTP request latency by route."),
                    &["route"],
                )
                .unwrap(),
            ),
            queue_depth: register(
                r,
                IntGaugeVec::new(Opts::new("mp3c_queue_depth", "Messages waiting in a mailbox queue."), &["queue"])
                    .unwrap(),
            ),
            queue_published: register(
                r,
                IntCounterVec::new(
                    Opts::new("mp3c_queue_published_total", "Messages published and confirmed durable."),
                    &["queue"],
                )
                .unwrap(),
            ),
            queue_publish_failures: register(
                r,
                IntCounterVec::new(
                    Opts::new("mp3c_queue_publish_failures_total", "Publishes that failed or were not confirmed."),
                    &["queue"],
                )
                .unwrap(),
            ),
            queue_deliveries: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "mp3c_queue_deliveries_total",
                        "Messages delivered to this node's consumers (video.dlq: dead-lettered jobs).",
                    ),
                    &["queue"],
                )
                .unwrap(),
            ),
            queue_redeliveries: register(
                r,
                IntCounterVec::new(
                    Opts::new("mp3c_queue_redeliveries_total", "Deliveries of a message that was delivered before."),
                    &["queue"],
                )
                .unwrap(),
            ),
            queue_consumers: register(
                r,
                IntGaugeVec::new(Opts::new("mp3c_queue_consumers", "This node's consumers of a queue."), &["queue"])
                    .unwrap(),
            ),
            queue_parked: register(
                r,
                IntCounterVec::new(
                    Opts::new("mp3c_queue_parked_total", "Unreadable messages moved to their queue's parking queue."),
                    &["queue"],
                )
                .unwrap(),
            ),
            queue_republished: register(
                r,
                IntCounterVec::new(
                    Opts::new("mp3c_queue_republished_total", "Lost messages the sweeper published again."),
                    &["queue"],
                )
                .unwrap(),
            ),
            outage_retries: register(
                r,
                IntCounter::new(
                    "mp3c_outage_retries_total",
                    "Deliveries retried because storage or the broker failed (not counted as attempts).",
                )
                .unwrap(),
            ),
            notifications_overdue: register(
                r,
                IntGauge::new(
                    "mp3c_notifications_overdue",
                    "Finished jobs whose owner is still not mailed long after (converter nodes).",
                )
                .unwrap(),
            ),
            backend_up: register(
                r,
                IntGaugeVec::new(Opts::new("mp3c_backend_up", "1 while a backend answers, else 0."), &["backend"])
                    .unwrap(),
            ),
            cluster_peers: register(
                r,
                IntGaugeVec::new(Opts::new("mp3c_cluster_peers", "Peers of this node by state."), &["state"]).unwrap(),
            ),
            cluster_session_events: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "mp3c_cluster_session_events_total",
                        "Cluster session events (opened, authenticated, ready, disconnected, auth_failed, heartbeat_timeout, dial_failed).",
                    ),
                    &["event"],
                )
                .unwrap(),
            ),
            cluster_rpc_seconds: register(
                r,
                HistogramVec::new(
                    seconds("mp3c_cluster_rpc_duration_seconds", "Calls to actors on other nodes, by target group."),
                    &["target"],
                )
                .unwrap(),
            ),
            cluster_group_members: register(
                r,
                IntGaugeVec::new(
                    Opts::new("mp3c_cluster_group_members", "Members of each process group, on every node."),
                    &["group"],
                )
                .unwrap(),
            ),
            job_event_subscribers: register(
                r,
                IntGauge::new("mp3c_job_event_subscribers", "Clients following a job's live events on this node.")
                    .unwrap(),
            ),
            registry,
        }
    }

    pub fn set_cluster_peers(&self, state: &str, count: u64) {
        self.cluster_peers.with_label_values(&[state]).set(count as i64);
    }

    pub fn cluster_session_event(&self, event: &str) {
        self.cluster_session_events.with_label_values(&[event]).inc();
    }

    pub fn set_group_members(&self, group: &str, count: usize) {
        self.cluster_group_members.with_label_values(&[group]).set(count as i64);
    }

    /// Conversions that ended with `outcome` since the node started.
    pub fn conversions_counted(&self, outcome: &str) -> u64 {
        self.conversions.with_label_values(&[outcome]).get()
    }

    pub fn parked(&self, queue: Queue) {
        self.queue_parked.with_label_values(&[queue.name()]).inc();
    }

    pub fn republished(&self, queue: Queue) {
        self.queue_republished.with_label_values(&[queue.name()]).inc();
    }

    pub fn outage_retry(&self) {
        self.outage_retries.inc();
    }

    pub fn set_notifications_overdue(&self, count: u64) {
        self.notifications_overdue.set(count as i64);
    }

    pub fn set_backend_up(&self, backend: &str, up: bool) {
        self.backend_up.with_label_values(&[backend]).set(up as i64);
    }

    /// The metric handles of one actor, created at zero so dashboards see it before it works.
    pub fn actor(&self, actor: &str) -> ActorMetrics {
        ActorMetrics {
            messages: self.actor_messages.with_label_values(&[actor]),
            seconds: self.actor_message_seconds.with_label_values(&[actor]),
            failures: self.actor_failures.with_label_values(&[actor]),
            inflight: self.actor_inflight.with_label_values(&[actor]),
        }
    }

    pub fn actor_restarted(&self, actor: &str) {
        self.actor_restarts.with_label_values(&[actor]).inc();
    }

    pub fn conversion(&self, outcome: &str) {
        self.conversions.with_label_values(&[outcome]).inc();
    }

    pub fn notification(&self, outcome: &str) {
        self.notifications.with_label_values(&[outcome]).inc();
    }

    pub fn http_request(&self, route: &str, status: hyper::StatusCode, started: Instant) {
        self.http_requests.with_label_values(&[route, status.as_str()]).inc();
        self.http_seconds.with_label_values(&[route]).observe(started.elapsed().as_secs_f64());
    }

    pub fn set_jobs(&self, state: JobState, count: u64) {
        self.jobs.with_label_values(&[state.as_str()]).set(count as i64);
    }

    pub fn set_queue_depth(&self, queue: Queue, depth: u64) {
        self.queue_depth.with_label_values(&[queue.name()]).set(depth as i64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// One actor's handles; cheap to clone.
#[derive(Clone)]
pub struct ActorMetrics {
    messages: IntCounter,
    seconds: Histogram,
    failures: IntCounter,
    inflight: IntGauge,
}

impl ActorMetrics {
    /// Starts timing one message; the guard records it when dropped.
    pub fn begin(&self) -> Handling {
        self.inflight.inc();
        Handling { metrics: self.clone(), started: Instant::now() }
    }

    pub fn failed(&self) {
        self.failures.inc();
    }
}

/// One message being handled; it may move into a task that finishes the work.
pub struct Handling {
    metrics: ActorMetrics,
    started: Instant,
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.metrics.inflight.dec();
        self.metrics.messages.inc();
        self.metrics.seconds.observe(self.started.elapsed().as_secs_f64());
    }
}
