//! The backends: which answer (`mp3c_backend_up`, refreshed every few seconds), and the blob
//! data moved to and from GridFS.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::register;

pub struct StoreMetrics {
    backend_up: IntGaugeVec,
    /// Blob data moved to and from GridFS (cluster profile), by database and direction: what
    /// the data path costs the shared store, per job.
    pub gridfs_bytes: IntCounterVec,
}

impl StoreMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        StoreMetrics {
            backend_up: register(
                r,
                IntGaugeVec::new(Opts::new("mp3c_backend_up", "1 while a backend answers, else 0."), &["backend"])
                    .unwrap(),
            ),
            gridfs_bytes: register(
                r,
                IntCounterVec::new(
                    Opts::new("mp3c_gridfs_bytes_total", "Blob data bytes written to (read from) GridFS."),
                    &["database", "direction"],
                )
                .unwrap(),
            ),
        }
    }

    pub fn set_backend_up(&self, backend: &str, up: bool) {
        self.backend_up.with_label_values(&[backend]).set(up as i64);
    }
}
