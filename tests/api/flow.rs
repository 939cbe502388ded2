//! The whole flow a user sees: log in, upload, wait, get mailed, download.

use std::process::Command;

use serde_json::Value;

use crate::helpers::{MailDev, TestApp, fixture, probe_audio};

#[tokio::test]
async fn a_video_becomes_a_downloadable_mp3_and_an_email() {
    let app = TestApp::spawn().await;
    let token = app.user_token("alice@example.com", false).await;
    let clip = fixture("clip.mp4");

    let response = app.upload_file(&token, &clip).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let accepted: Value = response.json().await.unwrap();
    let job_id = accepted["job_id"].as_str().unwrap();
    assert_eq!(location, format!("/jobs/{job_id}"));
    assert_eq!(accepted["status_url"], location);
    assert_eq!(accepted["video_fid"].as_str().unwrap().len(), 24);

    let job = app.finished_job(&token, job_id).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["video_fid"], accepted["video_fid"]);
    let mp3_fid = job["mp3_fid"].as_str().unwrap();

    // The MP3 itself: an MP3 stream as long as the input's audio.
    let response =
        app.client.get(app.url(&format!("/download?fid={mp3_fid}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains("filename=\"clip.mp3\""));
    let length: usize = response.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len(), length);
    let downloaded = app.data_dir.join("downloaded.mp3");
    std::fs::write(&downloaded, &bytes).unwrap();
    let (codec, got) = probe_audio(&downloaded);
    assert_eq!(codec, "mp3");
    let expected = probe_audio(&clip).1;
    assert!((expected - got).abs() <= 0.3, "input audio {expected} s, mp3 {got} s");

    // A range of it.
    let response = app
        .client
        .get(app.url(&format!("/download?fid={mp3_fid}")))
        .bearer_auth(&token)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.headers()["content-range"], format!("bytes 100-199/{length}"));
    assert_eq!(response.bytes().await.unwrap(), bytes.slice(100..200));

    // One email, to the owner, naming the MP3.
    let mail = &app.emails_about(mp3_fid, 1).await[0];
    assert!(mail.contains("To: alice@example.com"), "{mail}");
    assert!(mail.contains("Subject: MP3 ready: clip.mp4"), "{mail}");
    assert!(mail.contains(&format!("(job {job_id})")), "{mail}");
    assert!(mail.contains("multipart/alternative") && mail.contains("text/html"), "a plain and an HTML part: {mail}");
    assert!(mail.contains(&format!("mp3 file_id: {mp3_fid} is now ready!")), "{mail}");

    // The listing shows it.
    let listing = app.get_json(&token, "/jobs").await;
    assert_eq!(listing["jobs"][0]["job_id"], job_id);
}

#[tokio::test]
async fn every_actor_reports_metrics_that_promtool_accepts() {
    let app = TestApp::spawn().await;
    app.add_user("metrics@example.com", false);
    let before = app.metrics().await;
    let token = app.login("metrics@example.com", crate::helpers::PASSWORD).await;
    let job_id = app.submit(&token, &fixture("clip.mp4")).await;
    let job = app.finished_job(&token, &job_id).await;
    app.emails_about(job["mp3_fid"].as_str().unwrap(), 1).await;

    // The job gauges are refreshed on a timer, not by the scrape.
    let after = crate::helpers::eventually(std::time::Duration::from_secs(15), "the job gauge", || async {
        let text = app.metrics().await;
        (crate::helpers::metric_value(&text, "mp3c_jobs{state=\"done\"") > 0.0).then_some(text)
    })
    .await;
    for actor in ["gateway", "auth", "converter-1", "notifier"] {
        let series = format!("mp3c_actor_messages_total{{actor=\"{actor}\"");
        let (was, is) = (crate::helpers::metric_value(&before, &series), crate::helpers::metric_value(&after, &series));
        assert!(is > was, "{actor}: messages {was} -> {is}");
    }
    for series in [
        "mp3c_uploads_total",
        "mp3c_upload_bytes_total",
        "mp3c_conversions_total{outcome=\"done\"",
        "mp3c_media_converted_seconds_total",
        "mp3c_notifications_total{outcome=\"sent\"",
        "mp3c_conversion_duration_seconds_count",
        "mp3c_jobs{state=\"done\"",
        "mp3c_http_requests_total{route=\"/upload\",status=\"202\"",
        "mp3c_queue_published_total{queue=\"video\"",
        "mp3c_queue_published_total{queue=\"mp3\"",
        "mp3c_queue_deliveries_total{queue=\"video\"",
        "mp3c_queue_consumers{queue=\"video\"",
    ] {
        assert!(crate::helpers::metric_value(&after, series) > 0.0, "{series} did not move");
    }
    assert!(crate::helpers::metric_value(&after, "mp3c_media_converted_seconds_total") >= 9.9);

    let verdict = promtool_check_metrics(&after);
    assert!(
        verdict.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&verdict.stdout),
        String::from_utf8_lossy(&verdict.stderr)
    );
}

/// `promtool check metrics` on the exposition text (Debian's prometheus package has promtool).
fn promtool_check_metrics(text: &str) -> std::process::Output {
    crate::tools::Running::with_input(Command::new("promtool").args(["check", "metrics"]), text).wait()
}

#[tokio::test]
async fn with_an_smtp_server_the_email_goes_there() {
    let maildev = MailDev::start().await;
    let smtp_url = format!("smtp://127.0.0.1:{}", maildev.smtp_port);
    let app = TestApp::spawn_with(&["--smtp-url", &smtp_url, "--public-url", "https://mp3.example.com/"]).await;
    let token = app.user_token("smtp@example.com", false).await;
    let job_id = app.submit(&token, &fixture("clip.mp4")).await;
    let job = app.finished_job(&token, &job_id).await;
    let mp3_fid = job["mp3_fid"].as_str().unwrap();

    let mail = &maildev.emails_about(mp3_fid, 1).await[0];
    assert_eq!(mail["subject"], "MP3 ready: clip.mp4");
    assert_eq!(mail["to"][0]["address"], "smtp@example.com");
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains(&format!("https://mp3.example.com/download?fid={mp3_fid}")), "{text}");
    assert!(text.contains(&format!("(job {job_id})")), "{text}");
    let html = mail["html"].as_str().unwrap();
    assert!(html.contains("<a href=\"https://mp3.example.com/\">"), "{html}");
    assert!(app.outbox().is_empty(), "nothing goes to the outbox when SMTP is configured");
}

#[tokio::test]
async fn a_finished_job_is_deleted_with_its_files_and_only_by_its_owner() {
    let app = TestApp::spawn().await;
    let owner = app.user_token("deleter@example.com", false).await;
    let other = app.user_token("stranger@example.com", false).await;
    let job_id = app.submit(&owner, &fixture("clip.mp4")).await;
    let job = app.finished_job(&owner, &job_id).await;
    let mp3_fid = job["mp3_fid"].as_str().unwrap().to_owned();
    let delete =
        |token: &str| app.client.delete(app.url(&format!("/jobs/{job_id}"))).bearer_auth(token.to_owned()).send();

    assert_eq!(delete(&other).await.unwrap().status(), 404);
    assert_eq!(delete(&owner).await.unwrap().status(), 204);
    assert_eq!(delete(&owner).await.unwrap().status(), 404);
    let gone = app.client.get(app.url(&format!("/download?fid={mp3_fid}"))).bearer_auth(&owner).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    for bucket in ["videos", "mp3s"] {
        let left = std::fs::read_dir(app.data_dir.join("blobs").join(bucket)).unwrap().count();
        assert_eq!(left, 0, "{bucket} still holds files");
    }
}
