//! The cluster profile end to end: the real binary on MariaDB, GridFS, RabbitMQ and SMTP, with
//! the work shared between processes.

use serde_json::Value;

use std::time::Duration;

use crate::helpers::{MailDev, TestApp, eventually, fixture, stream_count};
use crate::servers::{OwnMongo, OwnRabbit, amqp_url, mongo_client, mongodb_url, mysql_url};

/// Flags that put a process on this test's own database and virtual host.
pub async fn backend_flags() -> Vec<String> {
    let flags = [
        ("--profile", "cluster".to_owned()),
        ("--mysql-url", mysql_url().await),
        ("--mongodb-url", mongodb_url()),
        ("--amqp-url", amqp_url().await),
    ];
    flags.into_iter().flat_map(|(flag, value)| [flag.to_owned(), value]).collect()
}

/// The backend flags, and mail to `maildev`.
pub async fn cluster_flags(maildev: &MailDev) -> Vec<String> {
    let smtp = format!("smtp://127.0.0.1:{}", maildev.smtp_port);
    with(&backend_flags().await, &["--smtp-url", &smtp])
}

pub fn with(flags: &[String], more: &[&str]) -> Vec<String> {
    flags.iter().cloned().chain(more.iter().map(|s| s.to_string())).collect()
}

pub fn strs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn two_processes_share_the_work_and_every_job_is_done_once() {
    let maildev = MailDev::start().await;
    let flags = cluster_flags(&maildev).await;
    // Conversions held for a moment (test hook), so that both processes get some.
    let slow = ["--fault-hooks", "true", "--fault-convert-delay-ms", "400"];
    let everything = TestApp::spawn_with(&strs(&with(&flags, &slow))).await;
    let converter_only =
        TestApp::spawn_with(&strs(&with(&flags, &[&slow[..], &["--roles", "converter"]].concat()))).await;
    let token = everything.user_token("cluster@example.com", false).await;

    let mut jobs = Vec::new();
    for _ in 0..6 {
        jobs.push(everything.submit(&token, &fixture("clip.mp4")).await);
    }
    for job_id in &jobs {
        let job = everything.finished_job(&token, job_id).await;
        assert_eq!(job["state"], "done", "{job}");
        assert_eq!(job["attempts"], 1, "converted once: {job}");
        let mp3_fid = job["mp3_fid"].as_str().unwrap();
        let mail = &maildev.emails_about(mp3_fid, 1).await[0];
        assert_eq!(mail["to"][0]["address"], "cluster@example.com");
        let download = everything.client.get(everything.url(&format!("/download?fid={mp3_fid}"))).bearer_auth(&token);
        assert_eq!(download.send().await.unwrap().status(), 200);
    }

    let done = "mp3c_conversions_total{outcome=\"done\"";
    let (a, b) = (everything.metric(done).await, converter_only.metric(done).await);
    assert!(a > 0.0 && b > 0.0, "both processes converted: {a} and {b}");
    assert_eq!(a + b, 6.0, "each job converted exactly once");
    assert_eq!(everything.metric("mp3c_queue_published_total{queue=\"video\"").await, 6.0);
    let deliveries = "mp3c_queue_deliveries_total{queue=\"video\"";
    assert_eq!(everything.metric(deliveries).await + converter_only.metric(deliveries).await, 6.0);
    assert_eq!(converter_only.metric("mp3c_queue_consumers{queue=\"video\"").await, 1.0);

    // The converter-only process serves health and metrics, not the API.
    let upload = converter_only.client.post(converter_only.url("/upload")).send().await.unwrap();
    assert_eq!(upload.status(), 404);
    assert_eq!(converter_only.client.get(converter_only.url("/readyz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_bad_file_fails_its_job_in_the_cluster_profile_too() {
    let maildev = MailDev::start().await;
    let app = TestApp::spawn_with(&strs(&cluster_flags(&maildev).await)).await;
    let token = app.user_token("bad@example.com", false).await;
    let response = app.upload_bytes(&token, "notes.txt", b"not a video".to_vec()).await;
    let body: Value = response.json().await.unwrap();
    let job_id = body["job_id"].as_str().unwrap();
    let job = app.finished_job(&token, job_id).await;
    assert_eq!(job["state"], "failed");
    let mail = &maildev.emails_about(job_id, 1).await[0];
    assert_eq!(mail["subject"], "MP3 conversion failed: notes.txt");
    assert!(mail["html"].as_str().unwrap().contains("could not be converted"), "{mail}");

    // Deleting the job deletes its video from GridFS.
    let video = mongodb::bson::oid::ObjectId::parse_str(job["video_fid"].as_str().unwrap()).unwrap();
    let chunks = mongo_client().await.database("videos").collection::<mongodb::bson::Document>("fs.chunks");
    assert_eq!(chunks.count_documents(mongodb::bson::doc! { "files_id": video }).await.unwrap(), 1);
    let deleted = app.client.delete(app.url(&format!("/jobs/{job_id}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(chunks.count_documents(mongodb::bson::doc! { "files_id": video }).await.unwrap(), 0);
    let gone = app.client.get(app.url(&format!("/jobs/{job_id}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_by_the_broker_and_fails_its_job() {
    // Mail goes to the outbox here: the test reads it across the process's restarts.
    crate::resilience::assert_poison_is_dead_lettered(&strs(&backend_flags().await)).await;
}

#[tokio::test]
async fn mail_waits_for_the_smtp_server_and_arrives_once() {
    let maildev = MailDev::start().await;
    let flags = cluster_flags(&maildev).await;
    let (smtp_port, web_port) = maildev.stop();
    let app = TestApp::spawn_with(&strs(&flags)).await;
    let token = app.user_token("patient@example.com", false).await;
    let job_id = app.submit(&token, &fixture("clip.mp4")).await;
    let job = app.finished_job(&token, &job_id).await;
    let mp3_fid = job["mp3_fid"].as_str().unwrap();
    eventually(Duration::from_secs(30), "a failed send", || async {
        (app.metric("mp3c_notifications_total{outcome=\"failed\"").await >= 1.0).then_some(())
    })
    .await;

    let maildev = MailDev::start_on(smtp_port, web_port).await;
    let mail = &maildev.emails_about(mp3_fid, 1).await[0];
    assert_eq!(mail["to"][0]["address"], "patient@example.com");
    assert_eq!(app.metric("mp3c_notifications_total{outcome=\"sent\"").await, 1.0);
}

#[tokio::test]
async fn a_process_killed_mid_conversion_leaves_the_job_to_another() {
    let maildev = MailDev::start().await;
    let flags = cluster_flags(&maildev).await;
    // A short lease: the survivor takes over the dead process's job once it runs out.
    let flags = with(&flags, &["--lease-seconds", "2"]);
    let slow = with(&flags, &["--fault-hooks", "true", "--fault-convert-delay-ms", "120000"]);
    let mut doomed = TestApp::spawn_with(&strs(&slow)).await;
    let token = doomed.user_token("survivor@example.com", false).await;
    let job_id = doomed.submit(&token, &fixture("clip.mp4")).await;
    doomed.wait_for_state(&token, &job_id, "converting").await;

    // The other process has every role too, so the job can be followed through its API.
    let survivor = TestApp::spawn_with(&strs(&flags)).await;
    doomed.kill();
    let job = survivor.finished_job(&token, &job_id).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["attempts"], 2);
    let mp3_fid = job["mp3_fid"].as_str().unwrap();
    maildev.emails_about(mp3_fid, 1).await;
    let mp3s = mongo_client().await.database("mp3s").collection::<mongodb::bson::Document>("fs.files");
    let job_oid = mongodb::bson::oid::ObjectId::parse_str(&job_id).unwrap();
    assert_eq!(mp3s.count_documents(mongodb::bson::doc! { "metadata.job_id": job_oid }).await.unwrap(), 1, "one MP3");
}

/// Flags for this test's own database and the given broker and MongoDB server.
pub async fn flags_with(amqp: &str, mongodb: &str) -> Vec<String> {
    let flags = [("--profile", "cluster"), ("--mongodb-url", mongodb), ("--amqp-url", amqp)];
    let flags: Vec<String> = flags.into_iter().flat_map(|(flag, value)| [flag.to_owned(), value.to_owned()]).collect();
    with(&flags, &["--mysql-url", &mysql_url().await])
}

/// Uploads until one is accepted; every answer must be 202 or 503 (with Retry-After).
async fn upload_until_accepted(app: &TestApp, token: &str) -> String {
    eventually(Duration::from_secs(90), "an upload to be accepted", || async {
        let response = app.upload_file(token, &fixture("clip.mp4")).await;
        match response.status().as_u16() {
            202 => Some(response.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned()),
            503 => {
                assert!(response.headers().contains_key("retry-after"));
                None
            }
            other => panic!("an upload got {other}"),
        }
    })
    .await
}

#[tokio::test]
async fn a_broker_restart_loses_no_accepted_upload_and_the_gap_gets_503() {
    let mut broker = OwnRabbit::start().await;
    let app = TestApp::spawn_with(&strs(&flags_with(&broker.url(), &mongodb_url()).await)).await;
    let token = app.user_token("broker@example.com", false).await;
    let mut accepted = Vec::new();
    for _ in 0..3 {
        accepted.push(app.submit(&token, &fixture("clip.mp4")).await);
    }

    broker.stop();
    let refused = app.upload_file(&token, &fixture("clip.mp4")).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let code = refused.json::<Value>().await.unwrap()["error"]["code"].as_str().unwrap().to_owned();
    crate::openapi::assert_documented_error("POST", "/upload", 503, &code);
    let not_ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(not_ready.status(), 503);
    let body: Value = not_ready.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_ready", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("mailbox"), "names the broker's part: {body}");
    crate::openapi::assert_documented_error("GET", "/readyz", 503, "not_ready");

    broker.start_again().await;
    accepted.push(upload_until_accepted(&app, &token).await);
    for job_id in &accepted {
        assert_eq!(app.finished_job(&token, job_id).await["state"], "done", "job {job_id}");
    }
    assert_eq!(app.client.get(app.url("/readyz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_database_restart_fails_uploads_cleanly_and_processing_resumes() {
    let mut mongo = OwnMongo::start().await;
    let app = TestApp::spawn_with(&strs(&flags_with(&amqp_url().await, &mongo.url()).await)).await;
    let token = app.user_token("database@example.com", false).await;
    let before = app.submit(&token, &fixture("clip.mp4")).await;
    assert_eq!(app.finished_job(&token, &before).await["state"], "done");

    mongo.stop();
    let refused = app.upload_file(&token, &fixture("clip.mp4")).await;
    assert_eq!(refused.status(), 503);
    let code = refused.json::<Value>().await.unwrap()["error"]["code"].as_str().unwrap().to_owned();
    assert_eq!(code, "unavailable");
    crate::openapi::assert_documented_error("POST", "/upload", 503, &code);

    mongo.start_again().await;
    let after = upload_until_accepted(&app, &token).await;
    assert_eq!(app.finished_job(&token, &after).await["state"], "done");
    // No chunk without its file: the refused upload left nothing behind.
    let client = mongodb::Client::with_uri_str(mongo.url()).await.unwrap();
    for database in ["videos", "mp3s"] {
        let files = client.database(database).collection::<mongodb::bson::Document>("fs.files");
        let chunks = client.database(database).collection::<mongodb::bson::Document>("fs.chunks");
        let ids: Vec<mongodb::bson::Bson> = files.distinct("_id", mongodb::bson::doc! {}).await.unwrap();
        let orphans = chunks.count_documents(mongodb::bson::doc! { "files_id": { "$nin": ids } }).await.unwrap();
        assert_eq!(orphans, 0, "orphaned chunks in {database}");
    }
}

pub fn flag_value<'a>(flags: &'a [String], flag: &str) -> &'a str {
    let at = flags.iter().position(|f| f == flag).unwrap();
    &flags[at + 1]
}

/// Plays the seed's Python converter against our broker and database: takes a `video`
/// message, reads the video from GridFS `videos` as `fs.get` does and converts it as moviepy's
/// `VideoFileClip` would (which needs a video stream), stores the MP3 in GridFS the way
/// `gridfs.put` does (no metadata) and publishes the seed's result message. Returns the MP3's
/// id.
async fn act_as_the_seed_converter(amqp_url: &str, workdir: &std::path::Path) -> String {
    use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions};
    use tokio::io::AsyncWriteExt;
    use tokio_util::compat::{FuturesAsyncReadCompatExt, FuturesAsyncWriteCompatExt};

    let connection = lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let message = eventually(Duration::from_secs(30), "a video message", || async {
        channel.basic_get("video".into(), BasicGetOptions::default()).await.unwrap()
    })
    .await;
    let body: Value = serde_json::from_slice(&message.delivery.data).unwrap();
    assert_eq!(body["mp3_fid"], Value::Null, "the seed's message shape: {body}");
    let (video_fid, username) = (body["video_fid"].as_str().unwrap(), body["username"].as_str().unwrap());

    let video_id = mongodb::bson::oid::ObjectId::parse_str(video_fid).unwrap();
    let videos = mongo_client().await.database("videos").gridfs_bucket(None);
    let mut stored = videos.open_download_stream(video_id.into()).await.unwrap().compat();
    let video = workdir.join("seed-video");
    tokio::io::copy(&mut stored, &mut tokio::fs::File::create(&video).await.unwrap()).await.unwrap();
    assert_eq!(stream_count(&video, "v"), 1, "the seed's converter needs a video stream");
    let mp3 = workdir.join("seed.mp3");
    crate::tools::run(crate::tools::ffmpeg().arg("-i").arg(&video).args(["-vn", "-c:a", "libmp3lame"]).arg(&mp3));
    let bucket = mongo_client().await.database("mp3s").gridfs_bucket(None);
    let mut upload = bucket.open_upload_stream("seed.mp3").await.unwrap();
    let mp3_fid = upload.id().as_object_id().unwrap().to_hex();
    let mut writer = (&mut upload).compat_write();
    writer.write_all(&std::fs::read(&mp3).unwrap()).await.unwrap();
    writer.shutdown().await.unwrap();

    let result = serde_json::json!({ "video_fid": video_fid, "mp3_fid": mp3_fid, "username": username }).to_string();
    let properties = lapin::BasicProperties::default().with_delivery_mode(2);
    let publish =
        channel.basic_publish("".into(), "mp3".into(), BasicPublishOptions::default(), result.as_bytes(), properties);
    publish.await.unwrap().await.unwrap();
    message.delivery.ack(BasicAckOptions::default()).await.unwrap();
    mp3_fid
}

#[tokio::test]
async fn the_seed_converter_can_work_beside_ours() {
    let maildev = MailDev::start().await;
    let flags = cluster_flags(&maildev).await;
    // This process converts nothing: the seed's converter does, from the whole video that
    // `--seed-compatible` keeps in `videos`.
    let app =
        TestApp::spawn_with(&strs(&with(&flags, &["--roles", "gateway,auth,notifier", "--seed-compatible"]))).await;
    let token = app.user_token("mixed@example.com", false).await;
    let job_id = app.submit(&token, &fixture("clip.mp4")).await;

    let mp3_fid = act_as_the_seed_converter(flag_value(&flags, "--amqp-url"), &app.data_dir).await;
    let job = app.finished_job(&token, &job_id).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["mp3_fid"], mp3_fid.as_str());
    let download =
        app.client.get(app.url(&format!("/download?fid={mp3_fid}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(download.status(), 200, "the owner may download the seed converter's MP3");
    assert!(download.headers()["content-disposition"].to_str().unwrap().contains("clip.mp3"));
    let mail = &maildev.emails_about(&mp3_fid, 1).await[0];
    assert_eq!(mail["to"][0]["address"], "mixed@example.com");
}

/// Plays the seed's own gateway: stores `bytes` as `fs.put` does (no metadata, and none of our
/// checks at the door) and publishes the seed's `video` message (no `job_id`). Returns the
/// video's id.
pub async fn act_as_the_seed_gateway(amqp_url: &str, username: &str, filename: &str, bytes: &[u8]) -> String {
    use lapin::options::BasicPublishOptions;
    use tokio::io::AsyncWriteExt;
    use tokio_util::compat::FuturesAsyncWriteCompatExt;

    let bucket = mongo_client().await.database("videos").gridfs_bucket(None);
    let mut upload = bucket.open_upload_stream(filename).await.unwrap();
    let video_fid = upload.id().as_object_id().unwrap().to_hex();
    let mut writer = (&mut upload).compat_write();
    writer.write_all(bytes).await.unwrap();
    writer.shutdown().await.unwrap();

    let connection = lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let message = serde_json::json!({ "video_fid": video_fid, "mp3_fid": null, "username": username }).to_string();
    let properties = lapin::BasicProperties::default().with_delivery_mode(2);
    let publish = channel.basic_publish(
        "".into(),
        "video".into(),
        BasicPublishOptions::default(),
        message.as_bytes(),
        properties,
    );
    publish.await.unwrap().await.unwrap();
    video_fid
}

#[tokio::test]
async fn an_upload_from_the_seeds_gateway_becomes_a_done_job_and_one_email() {
    let maildev = MailDev::start().await;
    let flags = cluster_flags(&maildev).await;
    let app = TestApp::spawn_with(&strs(&flags)).await;
    let token = app.user_token("seedling@example.com", false).await;
    // Ready means the broker answered and our queues are declared.
    eventually(Duration::from_secs(30), "readiness", || async {
        (app.client.get(app.url("/readyz")).send().await.unwrap().status() == 200).then_some(())
    })
    .await;

    let clip = std::fs::read(fixture("clip.mp4")).unwrap();
    let video_fid =
        act_as_the_seed_gateway(flag_value(&flags, "--amqp-url"), "seedling@example.com", "holiday.mp4", &clip).await;
    // The job takes the video's id, so a duplicate of the message finds the same job.
    let path = format!("/jobs/{video_fid}");
    eventually(Duration::from_secs(30), "the job to be created", || async {
        let response = app.client.get(app.url(&path)).bearer_auth(&token).send().await.unwrap();
        (response.status() == 200).then_some(())
    })
    .await;
    let job = app.finished_job(&token, &video_fid).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!((job["video_fid"].as_str(), job["filename"].as_str()), (Some(video_fid.as_str()), Some("holiday.mp4")));
    let mp3_fid = job["mp3_fid"].as_str().unwrap();
    let download =
        app.client.get(app.url(&format!("/download?fid={mp3_fid}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(download.status(), 200);
    let count = || async { maildev.all_emails().await.len() };
    assert_eq!(crate::helpers::settled_count(Duration::from_secs(60), Duration::from_secs(3), count).await, 1);
    assert_eq!(maildev.emails_about(mp3_fid, 1).await[0]["to"][0]["address"], "seedling@example.com");
}
