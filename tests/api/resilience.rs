//! Crashes, restarts and shutdowns: no job is lost, none is done twice, and nobody is mailed
//! twice.

use std::time::Duration;

use crate::helpers::{TestApp, eventually, fixture, settled_count};

/// A service whose conversions each take `delay_ms` (test hook), with one job converting.
async fn converting_job(delay_ms: &str, extra: &[&str]) -> (TestApp, String, String) {
    let args = [&["--fault-hooks", "true", "--fault-convert-delay-ms", delay_ms], extra].concat();
    let app = TestApp::spawn_with(&args).await;
    let token = app.user_token("long@example.com", false).await;
    let job_id = app.submit(&token, &fixture("clip.mp4")).await;
    app.wait_for_state(&token, &job_id, "converting").await;
    (app, token, job_id)
}

#[tokio::test]
async fn a_process_killed_mid_conversion_finishes_the_job_after_restart() {
    let (mut app, token, job_id) = converting_job("120000", &["--lease-seconds", "2"]).await;

    app.restart_with(&["--lease-seconds", "2"]);
    let job = app.finished_job(&token, &job_id).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["attempts"], 2, "the dead process's attempt counts");
    let fid = job["mp3_fid"].as_str().unwrap();
    app.emails_about(fid, 1).await;
    let mp3s = std::fs::read_dir(app.data_dir.join("blobs/mp3s")).unwrap().filter_map(|e| e.ok());
    let mp3_files = mp3s.filter(|e| !e.file_name().to_string_lossy().ends_with(".json")).count();
    assert_eq!(mp3_files, 1, "one MP3 for the job");
}

#[tokio::test]
async fn a_crashed_converter_is_restarted_by_its_supervisor() {
    let app = TestApp::spawn_with(&["--fault-hooks", "true"]).await;
    let admin = app.user_token("ops@example.com", true).await;
    let user = app.user_token("user@example.com", false).await;

    let forbidden = app.client.post(app.url("/debug/crash?actor=converter-1")).bearer_auth(&user).send().await.unwrap();
    assert_eq!(forbidden.status(), 403);
    let crash = app.client.post(app.url("/debug/crash?actor=converter-1")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(crash.status(), 202);
    eventually(Duration::from_secs(10), "the converter to be restarted", || async {
        (app.metric("mp3c_actor_restarts_total{actor=\"converter-1\"").await == 1.0).then_some(())
    })
    .await;
    // A crash is a restart, not a failed message: the two series never count one event twice.
    assert_eq!(app.metric("mp3c_actor_failures_total{actor=\"converter-1\"").await, 0.0);

    // The only converter is the restarted one, and it works.
    let job_id = app.submit(&user, &fixture("clip.mp4")).await;
    assert_eq!(app.finished_job(&user, &job_id).await["state"], "done");
}

#[tokio::test]
async fn a_panicking_request_handler_gets_a_500_and_the_service_keeps_serving() {
    let app = TestApp::spawn_with(&["--fault-hooks", "true"]).await;
    let admin = app.user_token("ops@example.com", true).await;
    let response = app.client.post(app.url("/debug/crash?actor=gateway")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "internal");
    assert_eq!(app.metric("mp3c_actor_failures_total{actor=\"gateway\"").await, 1.0);
    let job_id = app.submit(&admin, &fixture("clip.mp4")).await;
    assert_eq!(app.finished_job(&admin, &job_id).await["state"], "done");
}

#[tokio::test]
async fn too_many_restarts_stop_the_node() {
    let mut app = TestApp::spawn_with(&["--fault-hooks", "true", "--restart-limit", "2"]).await;
    let admin = app.user_token("ops@example.com", true).await;
    for restarts in 1..=2 {
        let crash =
            app.client.post(app.url("/debug/crash?actor=converter-1")).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(crash.status(), 202);
        eventually(Duration::from_secs(10), "the restart", || async {
            (app.metric("mp3c_actor_restarts_total{actor=\"converter-1\"").await == restarts as f64).then_some(())
        })
        .await;
    }
    let crash = app.client.post(app.url("/debug/crash?actor=converter-1")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(crash.status(), 202);
    let status = app.exit_status(Duration::from_secs(30)).await;
    assert!(!status.success(), "escalation is a failure exit");
    let log = std::fs::read_to_string(app.data_dir.join("service.log")).unwrap();
    assert!(log.contains("restart intensity exceeded"), "{log}");
}

#[tokio::test]
async fn a_storage_failure_is_retried_without_using_up_attempts() {
    // One attempt only: on the old rule, the first failure would have failed the job.
    let app = TestApp::spawn_with(&["--max-attempts", "1"]).await;
    let token = app.user_token("transient@example.com", false).await;
    // Without its scratch folder the converter cannot write the MP3: a fault of the node, not
    // of the input, and not of this job.
    let scratch = app.data_dir.join("scratch").join(format!("node-1-{}", app.pid()));
    std::fs::remove_dir_all(&scratch).unwrap();
    let job_id = app.submit(&token, &fixture("clip.mp4")).await;
    eventually(Duration::from_secs(30), "two retries", || async {
        (app.metric("mp3c_conversions_total{outcome=\"retried\"").await >= 2.0).then_some(())
    })
    .await;
    let waiting = app.job(&token, &job_id).await;
    assert_eq!((waiting["state"].as_str(), waiting["attempts"].as_u64()), (Some("queued"), Some(0)), "{waiting}");

    std::fs::create_dir_all(&scratch).unwrap();
    let job = app.finished_job(&token, &job_id).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["attempts"], 1, "only the attempt that worked counts");
    // Every email, after a quiet period: the retries sent none of their own.
    let emails = || async { app.outbox().len() };
    assert_eq!(settled_count(Duration::from_secs(30), Duration::from_secs(2), emails).await, 1);
    app.emails_about(job["mp3_fid"].as_str().unwrap(), 1).await;
}

#[tokio::test]
async fn sigterm_lets_a_conversion_finish_within_the_grace_period() {
    let (mut app, token, job_id) = converting_job("1500", &[]).await;
    assert!(app.terminate().success(), "a clean stop exits 0");
    app.restart_with(&["--converters", "0"]);
    let job = app.job(&token, &job_id).await;
    assert_eq!(job["state"], "done", "finished before the process exited: {job}");
}

#[tokio::test]
async fn sigterm_releases_a_conversion_that_outlasts_the_grace_period() {
    let (mut app, token, job_id) = converting_job("120000", &["--shutdown-grace-seconds", "1"]).await;
    assert!(app.terminate().success(), "a clean stop exits 0");
    // Released, not lost: the next start takes it at once (no lease to wait for).
    app.restart_with(&[]);
    let job = app.finished_job(&token, &job_id).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["attempts"], 1, "a release is not an attempt");
}

/// Uploads `poison.mp4`, which aborts the process that converts it (test hook), restarts the
/// process after each crash as a service manager would, and checks that after `max_attempts`
/// crashes the job fails with a reason and its owner is told once.
pub async fn assert_poison_is_dead_lettered(profile_args: &[&str]) {
    let args = [
        profile_args,
        &["--fault-hooks", "true", "--fault-crash-on", "poison.mp4", "--max-attempts", "2", "--lease-seconds", "1"],
    ]
    .concat();
    let mut app = TestApp::spawn_with(&args).await;
    let token = app.user_token("poison@example.com", false).await;
    let response = app.upload_bytes(&token, "poison.mp4", std::fs::read(fixture("clip.mp4")).unwrap()).await;
    assert_eq!(response.status(), 202);
    let job_id = response.json::<serde_json::Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned();
    for crash in 1..=2 {
        let status = app.exit_status(Duration::from_secs(30)).await;
        assert!(!status.success(), "crash {crash} is not a clean exit");
        app.restart_with(&args);
    }
    let job = app.finished_job(&token, &job_id).await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("stopped without finishing on each of its 2 attempts"), "{error}");
    app.emails_about(&job_id, 1).await;
}

#[tokio::test]
async fn a_file_that_kills_the_converter_every_time_is_dead_lettered_and_fails_its_job() {
    assert_poison_is_dead_lettered(&[]).await;
}

/// A store that keeps failing under a job's conversions while every backend answers (the MP3
/// folder replaced by a file, while the store's health check still passes): the job is given
/// back uncounted, says why in `retrying` (and the gauge shows it), and fails with the reason
/// once `--uncounted-retry-limit-seconds` have passed, instead of retrying forever.
#[tokio::test]
async fn a_job_retried_without_counting_says_why_and_fails_after_its_limit() {
    let args = [
        &["--fault-hooks", "true", "--fault-convert-delay-ms", "1500"][..],
        &["--conversion-timeout-seconds", "3", "--uncounted-retry-limit-seconds", "12"],
    ]
    .concat();
    let app = TestApp::spawn_with(&args).await;
    let token = app.user_token("patient@example.com", false).await;
    let job_id = app.submit(&token, &fixture("clip.mp4")).await;
    let mp3s = app.data_dir.join("blobs/mp3s");
    let _ = std::fs::remove_dir_all(&mp3s);
    std::fs::write(&mp3s, b"not a folder").unwrap();

    let waiting = eventually(Duration::from_secs(60), "the job to say why it waits", || async {
        let job = app.job(&token, &job_id).await;
        (job["state"] == "queued" && job["retrying"].is_object()).then_some(job)
    })
    .await;
    let retrying = &waiting["retrying"];
    assert!(retrying["reason"].as_str().unwrap().contains("storing the MP3"), "{waiting}");
    assert!(retrying["since"].as_str().unwrap() <= retrying["next_at"].as_str().unwrap(), "{waiting}");
    assert_eq!(waiting["attempts"], 0, "an outage is not an attempt: {waiting}");
    eventually(Duration::from_secs(30), "the retrying gauge", || async {
        (app.metric("mp3c_job_retrying_seconds{").await > 0.0).then_some(())
    })
    .await;

    let job = eventually(Duration::from_secs(90), "the job to fail after its limit", || async {
        let job = app.job(&token, &job_id).await;
        (job["state"] == "failed").then_some(job)
    })
    .await;
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("storing the MP3") && error.contains("while the backends answered"), "{error}");
    assert_eq!(job["retrying"], serde_json::Value::Null, "{job}");
    assert!(app.metric("mp3c_backend_call_retries_total{call=\"store the MP3\"").await >= 1.0);
    app.emails_about(&job_id, 1).await;
}
