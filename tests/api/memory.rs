//! The node stays small: its memory does not grow with the jobs it converts. A soak of short
//! jobs, each uploaded, converted, listed and downloaded as a client would, with the node's
//! resident memory sampled after a warm-up and at the end.

use crate::helpers::{TestApp, convert_recordings};

/// Jobs before the first sample (caches, pools and arenas reach their working size).
const WARM_UP: usize = 50;
/// Jobs between the two samples.
const MEASURED: usize = 250;
/// Growth per job that fails the test: the leak this guards against was about 400 KiB a job;
/// what a node keeps for good per job (its record in the database's page cache) is far less.
const MAX_KIB_PER_JOB: f64 = 64.0;

#[tokio::test]
async fn the_nodes_memory_does_not_grow_with_the_jobs_it_converts() {
    let _heavy = crate::helpers::HEAVY.lock().await;
    let app = TestApp::spawn_with(&["--max-jobs-per-user", "1000"]).await;
    let token = app.user_token("soak@example.com", false).await;
    convert_recordings(&app, &token, WARM_UP).await;
    let warm = app.memory_mib("VmRSS");
    convert_recordings(&app, &token, MEASURED).await;
    let after = app.memory_mib("VmRSS");
    let per_job_kib = (after - warm) * 1024.0 / MEASURED as f64;
    println!(
        "RSS {warm:.1} MiB after {WARM_UP} jobs, {after:.1} MiB after {MEASURED} more: {per_job_kib:.1} KiB a job"
    );
    assert!(per_job_kib < MAX_KIB_PER_JOB, "the node grew {per_job_kib:.1} KiB a job ({warm:.1} -> {after:.1} MiB)");
}
