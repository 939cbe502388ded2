//! Jobs: how many are in each state, conversions and notifications by outcome, how long a
//! conversion and a whole job take, how much audio was converted, and the retries that do not
//! count against a job.

use prometheus::{
    Counter, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use super::{at_zero, register, seconds, seconds_between};

/// Buckets for a job's whole way from upload to email: seconds to hours (a backlog).
const JOB_BUCKETS: &[f64] = &[1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0];

/// The outcomes of a conversion and of a notification, and the final states of a job: created
/// at zero, so that dashboards and alerts see every series before the first one happens.
pub const CONVERSION_OUTCOMES: [&str; 3] = ["done", "failed", "retried"];
pub const NOTIFICATION_OUTCOMES: [&str; 3] = ["sent", "failed", "undeliverable"];
const FINAL_STATES: [&str; 2] = ["done", "failed"];

pub struct JobMetrics {
    jobs: IntGaugeVec,
    /// Wall time of one conversion.
    pub conversion_seconds: Histogram,
    end_to_end_seconds: HistogramVec,
    /// Seconds of audio converted: throughput.
    pub media_seconds: Counter,
    conversions: IntCounterVec,
    notifications: IntCounterVec,
    oldest_retrying: Gauge,
    backend_retries: IntCounterVec,
    outage_retries: IntCounter,
    notifications_overdue: IntGauge,
}

impl JobMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        let by = |name: &str, help: &str, label: &str| {
            register(r, IntCounterVec::new(Opts::new(name, help), &[label]).unwrap())
        };
        let metrics = JobMetrics {
            jobs: register(r, IntGaugeVec::new(Opts::new("mp3c_jobs", "Jobs by state."), &["state"]).unwrap()),
            conversion_seconds: register(
                r,
                Histogram::with_opts(seconds("mp3c_conversion_duration_seconds", "Wall time of one conversion."))
                    .unwrap(),
            ),
            end_to_end_seconds: register(
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
            media_seconds: register(
                r,
                Counter::new("mp3c_media_converted_seconds_total", "Seconds of audio converted to MP3.").unwrap(),
            ),
            conversions: by("mp3c_conversions_total", "Conversions by outcome (done, failed, retried).", "outcome"),
            notifications: by(
                "mp3c_notifications_total",
                "Notification emails by outcome (sent, failed, undeliverable).",
                "outcome",
            ),
            oldest_retrying: register(
                r,
                Gauge::new(
                    "mp3c_job_retrying_seconds",
                    "How long the unfinished job retried the longest without its attempts counting (a store or the \
                     broker failing under it) has been so, from the job records (0: none).",
                )
                .unwrap(),
            ),
            backend_retries: by(
                "mp3c_backend_call_retries_total",
                "Backend calls tried again after a failure, by call (storing an MP3, writing a job record).",
                "call",
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
        };
        at_zero(&metrics.conversions, &CONVERSION_OUTCOMES);
        at_zero(&metrics.notifications, &NOTIFICATION_OUTCOMES);
        at_zero(&metrics.end_to_end_seconds, &FINAL_STATES);
        metrics
    }

    pub fn set_jobs(&self, state: &str, count: u64) {
        self.jobs.with_label_values(&[state]).set(count as i64);
    }

    /// A conversion ended with `outcome` ([`CONVERSION_OUTCOMES`]).
    pub fn conversion(&self, outcome: &str) {
        self.conversions.with_label_values(&[outcome]).inc();
    }

    /// Conversions that ended with `outcome` since the node started.
    pub fn conversions_counted(&self, outcome: &str) -> u64 {
        self.conversions.with_label_values(&[outcome]).get()
    }

    /// An email went with `outcome` ([`NOTIFICATION_OUTCOMES`]).
    pub fn notification(&self, outcome: &str) {
        self.notifications.with_label_values(&[outcome]).inc();
    }

    /// The owner of a job that ended in `state` was mailed at `now` (Unix milliseconds): its
    /// time from upload to email.
    pub fn job_mailed(&self, state: &str, created_at: i64, now: i64) {
        self.end_to_end_seconds.with_label_values(&[state]).observe(seconds_between(created_at, now));
    }

    /// How long ago (from `now`) the longest-retrying job began retrying without counting.
    pub fn set_oldest_retrying(&self, since: Option<i64>, now: i64) {
        self.oldest_retrying.set(since.map_or(0.0, |then| seconds_between(then, now)));
    }

    pub fn backend_retry(&self, call: &str) {
        self.backend_retries.with_label_values(&[call]).inc();
    }

    pub fn outage_retry(&self) {
        self.outage_retries.inc();
    }

    pub fn set_notifications_overdue(&self, count: u64) {
        self.notifications_overdue.set(count as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Metrics;
    use super::super::tests::series;
    use super::*;

    #[test]
    fn outcomes_exist_at_zero_before_anything_happens() {
        let text = Metrics::new("n1").render();
        for outcome in CONVERSION_OUTCOMES {
            assert!(text.contains(&format!("mp3c_conversions_total{{outcome=\"{outcome}\",node=\"n1\"}} 0")), "{text}");
        }
        assert_eq!(series(&text, "mp3c_notifications_total{").len(), 3);
        assert_eq!(series(&text, "mp3c_job_end_to_end_duration_seconds_count{").len(), 2);
    }

    #[test]
    fn end_to_end_latency_is_in_seconds() {
        let metrics = Metrics::new("n1");
        metrics.jobs.job_mailed("done", 10_000, 70_000);
        let text = metrics.render();
        assert!(text.contains("mp3c_job_end_to_end_duration_seconds_sum{outcome=\"done\",node=\"n1\"} 60"), "{text}");
    }
}
