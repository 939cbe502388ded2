//! Exactly once under faults, end to end: every accepted upload becomes one MP3 that plays for
//! its source's length and one email, while processes are killed and servers go away. Emails
//! are counted after a quiet period (all of them, not the first match), once every job's record
//! says its email was sent: an email claimed by a node that died goes out only when the claim
//! expires (the lease plus the mailer's time limit), so a count taken earlier would guess.

use std::time::Duration;

use serde_json::Value;

use crate::cluster::{flags_with, strs, with};
use crate::helpers::{MailDev, TestApp, eventually, fixture, probe_audio, settled_count};
use crate::servers::{OwnMongo, OwnRabbit};

/// The job, or None while the service cannot answer (its database is away).
async fn job_if_answered(app: &TestApp, token: &str, job_id: &str) -> Option<Value> {
    let response = app.client.get(app.url(&format!("/jobs/{job_id}"))).bearer_auth(token).send().await.ok()?;
    match response.status().as_u16() {
        200 => response.json().await.ok(),
        503 => None,
        other => panic!("GET /jobs/{job_id} answered {other}"),
    }
}

/// How many of `jobs` are done (those the service could tell about).
async fn done_count(app: &TestApp, token: &str, jobs: &[String]) -> usize {
    let mut done = 0;
    for job_id in jobs {
        if job_if_answered(app, token, job_id).await.is_some_and(|job| job["state"] == "done") {
            done += 1;
        }
    }
    done
}

async fn wait_until_done(app: &TestApp, token: &str, jobs: &[String], count: usize, within: Duration) {
    eventually(within, &format!("{count} jobs done"), || async {
        (done_count(app, token, jobs).await >= count).then_some(())
    })
    .await;
}

/// Every job is done, and its MP3 downloads and plays as long as the clip; returns the MP3 ids.
async fn assert_all_done_and_playable(app: &TestApp, token: &str, jobs: &[String]) -> Vec<String> {
    let clip_seconds = probe_audio(&fixture("clip.mp4")).1;
    let mut mp3s = Vec::new();
    for job_id in jobs {
        let job = eventually(Duration::from_secs(120), &format!("job {job_id} to finish"), || async {
            job_if_answered(app, token, job_id).await.filter(|job| job["state"] == "done" || job["state"] == "failed")
        })
        .await;
        assert_eq!(job["state"], "done", "no job fails from an outage or a crash: {job}");
        let mp3_fid = job["mp3_fid"].as_str().unwrap().to_owned();
        let response = app.client.get(app.url(&format!("/download?fid={mp3_fid}"))).bearer_auth(token).send().await;
        let bytes = response.unwrap().bytes().await.unwrap();
        let path = app.data_dir.join(format!("{mp3_fid}.mp3"));
        std::fs::write(&path, &bytes).unwrap();
        let (codec, seconds) = probe_audio(&path);
        assert_eq!(codec, "mp3", "job {job_id}");
        assert!((seconds - clip_seconds).abs() <= 0.3, "job {job_id}: {seconds} s of {clip_seconds} s");
        mp3s.push(mp3_fid);
    }
    mp3s
}

/// Waits until every job's record says its email was sent: at most one claim's life (the lease
/// plus the outbox's 5 s) after the node that claimed it died, plus the notice's redelivery.
async fn wait_until_mailed(app: &TestApp, token: &str, jobs: &[String]) {
    for job_id in jobs {
        eventually(Duration::from_secs(60), &format!("job {job_id}'s email to be sent"), || async {
            job_if_answered(app, token, job_id).await.filter(|job| job["notification"] == "sent")
        })
        .await;
    }
}

/// A node dies while it mails: once its claim to send is stored (the email must still go, once
/// the claim expires), or once the email went but before the record says so (it goes again,
/// and the copy replaces the first in the outbox, with the same Message-ID).
#[tokio::test]
async fn an_email_whose_sender_died_goes_out_once_after_its_claim_expires() {
    for point in ["claimed", "mailed"] {
        let base = ["--lease-seconds", "1"];
        let crashing = [&base[..], &["--fault-hooks", "true", "--fault-crash-notifying", point]].concat();
        let mut app = TestApp::spawn_with(&crashing).await;
        let token = app.user_token("mailed@example.com", false).await;
        let job_id = app.submit(&token, &fixture("clip.mp4")).await;
        assert!(!app.exit_status(Duration::from_secs(60)).await.success(), "{point}: the node died mailing");
        let mails_before = app.outbox().len();
        assert_eq!(mails_before, usize::from(point == "mailed"), "{point}: what the outbox held at the crash");

        app.restart_with(&base);
        wait_until_mailed(&app, &token, std::slice::from_ref(&job_id)).await;
        let mails = || async { app.outbox().len() };
        assert_eq!(settled_count(Duration::from_secs(30), Duration::from_secs(3), mails).await, 1, "{point}");
        let mail = app.outbox().remove(0);
        assert!(mail.contains(&format!("Message-ID: <job-{job_id}.ready@")), "{point}: {mail}");
    }
}

#[tokio::test]
async fn killed_twice_mid_batch_every_job_is_done_and_mailed_once() {
    let args =
        ["--lease-seconds", "2", "--converters", "2", "--fault-hooks", "true", "--fault-convert-delay-ms", "700"];
    let mut app = TestApp::spawn_with(&args).await;
    let token = app.user_token("batch@example.com", false).await;
    let mut jobs = Vec::new();
    for _ in 0..8 {
        jobs.push(app.submit(&token, &fixture("clip.mp4")).await);
    }
    for kill in 1..=2 {
        wait_until_done(&app, &token, &jobs, kill * 2, Duration::from_secs(60)).await;
        app.restart_with(&args); // SIGKILL, then start again on the same data
    }
    let mp3s = assert_all_done_and_playable(&app, &token, &jobs).await;
    wait_until_mailed(&app, &token, &jobs).await;

    for mp3_fid in &mp3s {
        let mails = || async { app.outbox().iter().filter(|mail| mail.contains(mp3_fid.as_str())).count() };
        assert_eq!(settled_count(Duration::from_secs(60), Duration::from_secs(3), mails).await, 1, "{mp3_fid}");
    }
    assert_eq!(app.outbox().len(), jobs.len(), "no other email");
    let stored = std::fs::read_dir(app.data_dir.join("blobs/mp3s")).unwrap().filter_map(Result::ok);
    let mp3_files = stored.filter(|entry| !entry.file_name().to_string_lossy().ends_with(".json")).count();
    assert_eq!(mp3_files, jobs.len(), "one MP3 per job, no leftovers of killed attempts");
}

#[tokio::test]
async fn a_cluster_survives_a_killed_converter_and_database_and_broker_outages() {
    let maildev = MailDev::start().await;
    let (mut mongo, mut broker) = (OwnMongo::start().await, OwnRabbit::start().await);
    let smtp = format!("smtp://127.0.0.1:{}", maildev.smtp_port);
    let flags = with(&flags_with(&broker.url(), &mongo.url()).await, &["--smtp-url", &smtp, "--lease-seconds", "10"]);
    let front = TestApp::spawn_with(&strs(&with(&flags, &["--roles", "gateway,auth,notifier"]))).await;
    let converter_flags = with(
        &flags,
        &["--roles", "converter", "--converters", "2", "--fault-hooks", "true", "--fault-convert-delay-ms", "2500"],
    );
    let mut converter = TestApp::spawn_with(&strs(&converter_flags)).await;
    let token = front.user_token("faults@example.com", false).await;
    let mut jobs = Vec::new();
    for _ in 0..12 {
        jobs.push(front.submit(&token, &fixture("clip.mp4")).await);
    }

    // The converter process dies mid-conversion and comes back.
    eventually(Duration::from_secs(30), "a conversion under way", || async {
        let listing = front.get_json(&token, "/jobs?limit=100").await;
        listing["jobs"].as_array().unwrap().iter().any(|job| job["state"] == "converting").then_some(())
    })
    .await;
    converter.restart_with(&strs(&converter_flags));

    // MongoDB is away for 30 s while conversions run.
    wait_until_done(&front, &token, &jobs, 3, Duration::from_secs(120)).await;
    mongo.stop();
    tokio::time::sleep(Duration::from_secs(30)).await; // the outage itself
    mongo.start_again().await;

    // RabbitMQ is away for 15 s.
    wait_until_done(&front, &token, &jobs, 6, Duration::from_secs(120)).await;
    broker.stop();
    tokio::time::sleep(Duration::from_secs(15)).await; // the outage itself
    broker.start_again().await;

    let mp3s = assert_all_done_and_playable(&front, &token, &jobs).await;
    let all = || async { maildev.all_emails().await.len() };
    assert_eq!(
        settled_count(Duration::from_secs(120), Duration::from_secs(5), all).await,
        jobs.len(),
        "one email per job"
    );
    for mp3_fid in &mp3s {
        assert_eq!(maildev.emails_about(mp3_fid, 1).await.len(), 1);
    }
}
