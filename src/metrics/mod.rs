//! Prometheus metrics: one registry per node, every series labelled with `node`, and one
//! family of series per subsystem, each registered by its own module:
//!
//! - [`actors`]: every actor's messages, their time, failures and restarts (registered for
//!   each child by the supervisor when it starts it, so that each counts from 0);
//! - [`jobs`]: jobs by state, conversions and notifications by outcome, their time, retries;
//! - [`queues`]: the mailbox as the node sees it (depth, publishes, deliveries, parking);
//! - [`http`]: requests by route and status, uploads, clients following jobs;
//! - [`cluster`]: peers, session events, calls to other nodes, group members;
//! - [`stores`]: which backends answer, and the GridFS data moved.
//!
//! Names use base units and the `_total`, `_seconds` and `_bytes` suffixes, and are the names
//! the Grafana dashboards and the alert rules query: change them together. Labels are plain
//! names (a queue's, a job state's), so that this module knows nothing of what it measures.

pub mod actors;
pub mod cluster;
pub mod http;
pub mod jobs;
pub mod queues;
pub mod stores;

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::process_collector::ProcessCollector;
use prometheus::{Encoder, HistogramOpts, Registry, TextEncoder};

pub use actors::{ActorMetrics, Handling};

/// Buckets for work measured in seconds, from a fast HTTP request to a long conversion.
const SECONDS_BUCKETS: &[f64] = &[0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];

/// Every metric of one node.
pub struct Metrics {
    registry: Registry,
    pub actors: actors::ActorFamily,
    pub jobs: jobs::JobMetrics,
    pub queues: queues::QueueMetrics,
    pub http: http::HttpMetrics,
    pub cluster: cluster::ClusterMetrics,
    pub stores: stores::StoreMetrics,
}

impl Metrics {
    pub fn new(node: &str) -> Self {
        let labels = [("node".to_owned(), node.to_owned())].into_iter().collect();
        let registry = Registry::new_custom(None, Some(labels)).expect("the node label is valid");
        registry.register(Box::new(ProcessCollector::for_self())).expect("process metrics register once");
        Metrics {
            actors: actors::ActorFamily::new(&registry),
            jobs: jobs::JobMetrics::new(&registry),
            queues: queues::QueueMetrics::new(&registry),
            http: http::HttpMetrics::new(&registry),
            cluster: cluster::ClusterMetrics::new(&registry),
            stores: stores::StoreMetrics::new(&registry),
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Registers `collector` with `registry` and gives it back.
fn register<C: Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
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

/// Seconds from `then` to `now` (Unix milliseconds), never negative: a time in the future (a
/// message due later, a clock a little ahead on another node) counts as no wait.
fn seconds_between(then: i64, now: i64) -> f64 {
    (now - then).max(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `text` that start with `prefix`.
    pub(super) fn series(text: &str, prefix: &str) -> Vec<String> {
        text.lines().filter(|line| line.starts_with(prefix)).map(str::to_owned).collect()
    }

    #[test]
    fn waits_are_seconds_and_never_negative() {
        assert_eq!(seconds_between(1_000, 3_500), 2.5);
        assert_eq!(seconds_between(5_000, 3_500), 0.0);
    }

    #[test]
    fn process_metrics_carry_the_node_label() {
        let text = Metrics::new("n1").render();
        assert!(text.contains("process_cpu_seconds_total{node=\"n1\"}"), "{text}");
        assert!(text.contains("process_resident_memory_bytes{node=\"n1\"}"), "{text}");
    }
}
