//! The gateway's traffic: requests by route (its template, never the raw path) and status,
//! their latency, accepted uploads and their bytes, and the clients following jobs.

use std::time::Instant;

use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::{register, seconds};

pub struct HttpMetrics {
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    /// Videos accepted for conversion.
    pub uploads: IntCounter,
    /// Bytes of accepted videos.
    pub upload_bytes: IntCounter,
    /// Clients following a job's live events on this node.
    pub job_event_subscribers: IntGauge,
}

impl HttpMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        HttpMetrics {
            requests: register(
                r,
                IntCounterVec::new(
                    Opts::new("mp3c_http_requests_total", "HTTP requests by route and status."),
                    &["route", "status"],
                )
                .unwrap(),
            ),
            request_seconds: register(
                r,
                HistogramVec::new(
                    seconds("mp3c_http_request_duration_seconds", "HTTP request latency by route."),
                    &["route"],
                )
                .unwrap(),
            ),
            uploads: register(r, IntCounter::new("mp3c_uploads_total", "Videos accepted for conversion.").unwrap()),
            upload_bytes: register(r, IntCounter::new("mp3c_upload_bytes_total", "Bytes of accepted videos.").unwrap()),
            job_event_subscribers: register(
                r,
                IntGauge::new("mp3c_job_event_subscribers", "Clients following a job's live events on this node.")
                    .unwrap(),
            ),
        }
    }

    /// A request to `route` answered with `status`, started at `started`.
    pub fn request(&self, route: &str, status: hyper::StatusCode, started: Instant) {
        self.requests.with_label_values(&[route, status.as_str()]).inc();
        self.request_seconds.with_label_values(&[route]).observe(started.elapsed().as_secs_f64());
    }
}
