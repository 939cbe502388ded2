//! Prometheus metrics: one registry per node, every series labelled with `node`.
//!
//! Names use base units and the `_total`, `_seconds` and `_bytes` suffixes, and are the names
//! the Grafana dashboards query: change them together.

use std::time::Instant;

use prometheus::core::{MetricVec, MetricVecBuilder};
use prometheus::process_collector::ProcessCollector;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::storage::{JobState, Queue};

/// Buckets for work measured in seconds, from a fast HTTP request to a long conversion.
const SECONDS_BUCKETS: &[f64] = &[0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];

/// Buckets for a job's whole way from upload to email: seconds to hours (a backlog).
const JOB_BUCKETS: &[f64] = &[1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0];

/// The outcomes of a conversion, a notification and a cluster session, created at zero so that
/// dashboards and alerts see every series before the first one happens.
const CONVERSION_OUTCOMES: [&str; 3] = ["done", "failed", "retried"];
const NOTIFICATION_OUTCOMES: [&str; 3] = ["sent", "failed", "undeliverable"];
pub const SESSION_EVENTS: [&str; 7] =
    ["opened", "authenticated", "ready", "disconnected", "auth_failed", "heartbeat_timeout", "dial_failed"];
/// The groups whose actors are called across nodes (`mp3c_cluster_rpc_duration_seconds{target}`).
pub const RPC_TARGETS: [&str; 2] = ["auth", "nodes"];

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
    job_end_to_end_seconds: HistogramVec,
    queue_oldest_age: GaugeVec,
    oldest_retrying: prometheus::Gauge,
    pub media_seconds: prometheus::Counter,
    conversions: IntCounterVec,
    backend_retries: IntCounterVec,
    notifications: IntCounterVec,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    queue_depth: IntGaugeVec,
    pub queue_published: IntCounterVec,
    pub queue_publish_failures: IntCounterVec,
    pub queue_deliveries: IntCounterVec,
    pub queue_redeliveries: IntCounterVec,
    queue_consumers: IntGaugeVec,
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

/// Creates the series of a one-label family for each of `values`, at zero.
fn at_zero<B: MetricVecBuilder>(family: &MetricVec<B>, values: &[&str]) {
    for value in values {
        family.with_label_values(&[value]);
    }
}

fn seconds(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(SECONDS_BUCKETS.to_vec())
}

impl Metrics {
    pub fn new(node: &str) -> Self {
        let labels = [("node".to_owned(), node.to_owned())].into_iter().collect();
        let registry = Registry::new_custom(None, Some(labels)).expect("the node label is valid");
        let r = &registry;
        let metrics = Metrics {
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
            job_end_to_end_seconds: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "mp3c_job_end_to_end_duration_seconds",
                        "Time from a job's upload to its owner's email accepted by the mail server, by job outcome.",
                    )
                    .buckets(JOB_BUCKETS.to_vec()),
                    &["outcome"],
                )
                .unwrap(),
            ),
            queue_oldest_age: register(
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
            oldest_retrying: register(
                r,
                prometheus::Gauge::new(
                    "mp3c_job_retrying_seconds",
                    "How long the unfinished job retried the longest without its attempts counting (a store or the \
                     broker failing under it) has been so, from the job records (0: none).",
                )
                .unwrap(),
            ),
            media_seconds: register(
                r,
                prometheus::Counter::new("mp3c_media_converted_seconds_total", "Seconds of audio converted to MP3.")
                    .unwrap(),
            ),
            backend_retries: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "mp3c_backend_call_retries_total",
                        "Backend calls tried again after a failure, by call (storing an MP3, writing a job record).",
                    ),
                    &["call"],
                )
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
        };
        metrics.registry.register(Box::new(ProcessCollector::for_self())).expect("process metrics register once");
        at_zero(&metrics.conversions, &CONVERSION_OUTCOMES);
        at_zero(&metrics.notifications, &NOTIFICATION_OUTCOMES);
        at_zero(&metrics.job_end_to_end_seconds, &[JobState::Done.as_str(), JobState::Failed.as_str()]);
        metrics
    }

    /// Creates the actor cluster's series at zero, on the nodes that run one.
    pub fn cluster_started(&self) {
        at_zero(&self.cluster_session_events, &SESSION_EVENTS);
        at_zero(&self.cluster_rpc_seconds, &RPC_TARGETS);
        ["connected", "unreachable"].iter().for_each(|state| self.set_cluster_peers(state, 0));
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

    /// A new consumer of `queue` on this node; its delivery counters start at zero, so that
    /// the first delivery (a first dead letter) already shows as an increase.
    pub fn consumer_started(&self, queue: Queue) {
        self.queue_consumers.with_label_values(&[queue.name()]).inc();
        at_zero(&self.queue_deliveries, &[queue.name()]);
        at_zero(&self.queue_redeliveries, &[queue.name()]);
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
        // The restart counter too, though the actor's handles do not hold it.
        at_zero(&self.actor_restarts, &[actor]);
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

    pub fn backend_retry(&self, call: &str) {
        self.backend_retries.with_label_values(&[call]).inc();
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

    /// A job's owner was mailed at `now` (Unix milliseconds): its time from upload to email.
    pub fn job_mailed(&self, state: JobState, created_at: i64, now: i64) {
        self.job_end_to_end_seconds.with_label_values(&[state.as_str()]).observe(seconds_between(created_at, now));
    }

    /// The oldest message waiting in `queue` was published at `published_at` (Unix
    /// milliseconds; `None`: nothing waits).
    pub fn set_oldest_waiting(&self, queue: Queue, published_at: Option<i64>, now: i64) {
        let age = published_at.map_or(0.0, |then| seconds_between(then, now));
        self.queue_oldest_age.with_label_values(&[queue.name()]).set(age);
    }

    /// How long ago (from `now`) the longest-retrying job began retrying without counting.
    pub fn set_oldest_retrying(&self, since: Option<i64>, now: i64) {
        self.oldest_retrying.set(since.map_or(0.0, |then| seconds_between(then, now)));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Seconds from `then` to `now` (Unix milliseconds), never negative: a time in the future (a
/// message due later, a clock a little ahead on another node) counts as no wait.
fn seconds_between(then: i64, now: i64) -> f64 {
    (now - then).max(0) as f64 / 1000.0
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

#[cfg(test)]
mod tests {
    use super::*;

    fn series(text: &str, prefix: &str) -> Vec<String> {
        text.lines().filter(|line| line.starts_with(prefix)).map(str::to_owned).collect()
    }

    #[test]
    fn waits_are_seconds_and_never_negative() {
        assert_eq!(seconds_between(1_000, 3_500), 2.5);
        assert_eq!(seconds_between(5_000, 3_500), 0.0);
    }

    #[test]
    fn outcomes_exist_at_zero_before_anything_happens() {
        let text = Metrics::new("n1").render();
        for outcome in CONVERSION_OUTCOMES {
            assert!(text.contains(&format!("mp3c_conversions_total{{outcome=\"{outcome}\",node=\"n1\"}} 0")), "{text}");
        }
        assert_eq!(series(&text, "mp3c_notifications_total{").len(), 3);
        assert_eq!(series(&text, "mp3c_job_end_to_end_duration_seconds_count{").len(), 2);
        assert!(series(&text, "mp3c_cluster_session_events_total{").is_empty(), "only on cluster nodes");
    }

    #[test]
    fn a_cluster_node_has_every_session_event_and_rpc_target_at_zero() {
        let metrics = Metrics::new("n1");
        metrics.cluster_started();
        let text = metrics.render();
        assert!(text.contains("event=\"heartbeat_timeout\",node=\"n1\"} 0"), "{text}");
        assert_eq!(series(&text, "mp3c_cluster_session_events_total{").len(), SESSION_EVENTS.len());
        assert_eq!(series(&text, "mp3c_cluster_rpc_duration_seconds_count{").len(), RPC_TARGETS.len());
        assert_eq!(series(&text, "mp3c_cluster_peers{").len(), 2);
    }

    #[test]
    fn an_actor_has_its_restart_counter_from_the_start() {
        let metrics = Metrics::new("n1");
        let _handles = metrics.actor("converter-1");
        let text = metrics.render();
        assert!(text.contains("mp3c_actor_restarts_total{actor=\"converter-1\",node=\"n1\"} 0"), "{text}");
    }

    #[test]
    fn a_consumer_starts_its_queue_delivery_counters_at_zero() {
        let metrics = Metrics::new("n1");
        metrics.consumer_started(Queue::VideoDead);
        let text = metrics.render();
        assert!(text.contains("mp3c_queue_deliveries_total{queue=\"video.dlq\",node=\"n1\"} 0"), "{text}");
        assert!(text.contains("mp3c_queue_consumers{queue=\"video.dlq\",node=\"n1\"} 1"), "{text}");
    }

    #[test]
    fn end_to_end_latency_and_the_oldest_wait_are_in_seconds() {
        let metrics = Metrics::new("n1");
        metrics.job_mailed(JobState::Done, 10_000, 70_000);
        metrics.set_oldest_waiting(Queue::Video, Some(1_000), 31_000);
        metrics.set_oldest_waiting(Queue::Mp3, None, 31_000);
        let text = metrics.render();
        assert!(text.contains("mp3c_job_end_to_end_duration_seconds_sum{outcome=\"done\",node=\"n1\"} 60"), "{text}");
        assert!(text.contains("mp3c_queue_oldest_message_age_seconds{queue=\"video\",node=\"n1\"} 30"), "{text}");
        assert!(text.contains("mp3c_queue_oldest_message_age_seconds{queue=\"mp3\",node=\"n1\"} 0"), "{text}");
    }

    #[test]
    fn process_metrics_carry_the_node_label() {
        let text = Metrics::new("n1").render();
        assert!(text.contains("process_cpu_seconds_total{node=\"n1\"}"), "{text}");
        assert!(text.contains("process_resident_memory_bytes{node=\"n1\"}"), "{text}");
    }
}
