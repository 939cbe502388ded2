//! Bad input of every kind: a precise 4xx with a JSON error, or a job that ends `failed` with a
//! readable reason and one failure email. Never a 5xx, and the service keeps serving.

use std::path::Path;

use serde_json::Value;

use crate::helpers::{TestApp, fixture};
use crate::openapi::assert_documented_error;

async fn error_code(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    body["error"]["code"].as_str().unwrap().to_owned()
}

/// Uploads `bytes`, waits for the job to fail, and checks its reason and its one email.
async fn assert_job_fails(app: &TestApp, token: &str, name: &str, bytes: Vec<u8>, reason: &str) {
    let response = app.upload_bytes(token, name, bytes).await;
    assert_eq!(response.status(), 202, "{name}");
    let body: Value = response.json().await.unwrap();
    let job_id = body["job_id"].as_str().unwrap().to_owned();
    let job = app.finished_job(token, &job_id).await;
    assert_eq!(job["state"], "failed", "{name}: {job}");
    assert_eq!(job["mp3_fid"], Value::Null, "{name}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains(reason), "{name}: {error:?} should say {reason:?}");
    let mail = &app.emails_about(&job_id, 1).await[0];
    assert!(mail.contains("Subject: MP3 conversion failed"), "{mail}");
    assert!(mail.contains(reason), "{mail}");
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

async fn assert_still_serving(app: &TestApp, token: &str) {
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let job_id = app.submit(token, &fixture("clip.mp4")).await;
    assert_eq!(app.finished_job(token, &job_id).await["state"], "done");
}

#[tokio::test]
async fn media_that_cannot_be_converted_fails_its_job_with_a_reason() {
    let app = TestApp::spawn().await;
    let token = app.user_token("media@example.com", false).await;

    assert_job_fails(&app, &token, "notes.txt", b"just some text, not a video".to_vec(), "not a readable media file")
        .await;
    assert_job_fails(&app, &token, "truncated.mp4", read(&fixture("truncated.mp4")), "not a readable media file").await;
    assert_job_fails(&app, &token, "silent.mp4", read(&fixture("silent.mp4")), "no audio track").await;
    assert_job_fails(&app, &token, "corrupt.m4a", read(&fixture("corrupt-audio.m4a")), "could not be decoded").await;

    assert_eq!(app.metric("mp3c_conversions_total{outcome=\"failed\"").await, 4.0);
    assert_eq!(app.metric("mp3c_conversions_total{outcome=\"retried\"").await, 0.0, "no retry storm");
    assert_still_serving(&app, &token).await;
}

#[tokio::test]
async fn malformed_uploads_get_precise_4xx() {
    let app = TestApp::spawn_with(&["--max-upload-bytes", "1500000"]).await;
    let token = app.user_token("uploads@example.com", false).await;
    let upload = || app.client.post(app.url("/upload")).bearer_auth(&token);

    let empty = app.upload_bytes(&token, "empty.mp4", Vec::new()).await;
    assert_eq!(error_code(empty, 400).await, "empty_file");

    let two = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"one".to_vec()).file_name("a.mp4"))
        .part("other", reqwest::multipart::Part::bytes(b"two".to_vec()).file_name("b.mp4"));
    assert_eq!(error_code(upload().multipart(two).send().await.unwrap(), 400).await, "exactly_one_file");

    let none = reqwest::multipart::Form::new().text("comment", "no file here");
    assert_eq!(error_code(upload().multipart(none).send().await.unwrap(), 400).await, "exactly_one_file");

    let json = upload().header("content-type", "application/json").body("{}").send().await.unwrap();
    assert_eq!(error_code(json, 415).await, "not_multipart");

    let no_boundary = upload().header("content-type", "multipart/form-data").body("x").send().await.unwrap();
    assert_eq!(error_code(no_boundary, 400).await, "malformed_multipart");

    let broken = upload()
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\nunterminated")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(broken, 400).await, "malformed_multipart");

    let huge_header = upload().header("x-padding", "a".repeat(100_000)).send().await.unwrap();
    assert_eq!(error_code(huge_header, 431).await, "headers_too_large");

    let too_large = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(vec![7u8; 2_000_000]).file_name("big.mp4"));
    let declared_too_large = upload().multipart(too_large).send().await.unwrap();
    assert_eq!(error_code(declared_too_large, 413).await, "too_large");

    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..30).map(|_| Ok(vec![7u8; 100_000])).collect();
    let streamed = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .file_name("big.mp4");
    let streamed_too_large =
        upload().multipart(reqwest::multipart::Form::new().part("file", streamed)).send().await.unwrap();
    assert_eq!(error_code(streamed_too_large, 413).await, "too_large");

    // None of the refused uploads left a video behind.
    let videos = std::fs::read_dir(app.data_dir.join("blobs/videos")).unwrap().count();
    assert_eq!(videos, 0);

    assert_still_serving(&app, &token).await;
}

#[tokio::test]
async fn file_names_are_kept_safe() {
    let app = TestApp::spawn().await;
    let token = app.user_token("names@example.com", false).await;
    for (given, kept, mp3) in [
        ("../../../etc/passwd.mp4", "passwd.mp4", "passwd.mp3"),
        ("vidéo 🎬 \"été\".mp4", "vidéo 🎬 \"été\".mp4", "vidéo 🎬 \"été\".mp3"),
    ] {
        let response = app.upload_bytes(&token, given, std::fs::read(fixture("clip.mp4")).unwrap()).await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        let job = app.finished_job(&token, body["job_id"].as_str().unwrap()).await;
        assert_eq!(job["filename"], kept);
        let fid = job["mp3_fid"].as_str().unwrap();
        let response =
            app.client.get(app.url(&format!("/download?fid={fid}"))).bearer_auth(&token).send().await.unwrap();
        let disposition = response.headers()["content-disposition"].to_str().unwrap().to_owned();
        let encoded = percent_encoding::utf8_percent_encode(mp3, percent_encoding::NON_ALPHANUMERIC).to_string();
        assert!(disposition.ends_with(&format!("filename*=UTF-8''{encoded}")), "{disposition}");
        assert!(!disposition.contains(".."), "{disposition}");
    }
    assert!(!app.data_dir.join("etc").exists());
}

#[tokio::test]
async fn downloads_and_jobs_are_only_for_their_owner() {
    let app = TestApp::spawn().await;
    let owner = app.user_token("owner@example.com", false).await;
    let other = app.user_token("other@example.com", false).await;
    let admin = app.user_token("admin@example.com", true).await;
    let job_id = app.submit(&owner, &fixture("clip.mp4")).await;
    let job = app.finished_job(&owner, &job_id).await;
    let fid = job["mp3_fid"].as_str().unwrap();
    let download = |token: &str, fid: &str| {
        app.client.get(app.url(&format!("/download?fid={fid}"))).bearer_auth(token.to_owned()).send()
    };

    assert_eq!(download(&owner, fid).await.unwrap().status(), 200);
    assert_eq!(download(&admin, fid).await.unwrap().status(), 200);
    assert_eq!(error_code(download(&other, fid).await.unwrap(), 404).await, "not_found");
    assert_eq!(error_code(download(&owner, "0123456789abcdef01234567").await.unwrap(), 404).await, "not_found");
    assert_eq!(error_code(download(&owner, "../../etc/passwd").await.unwrap(), 400).await, "malformed_id");
    assert_eq!(error_code(download(&owner, "zz").await.unwrap(), 400).await, "malformed_id");
    let no_fid = app.client.get(app.url("/download")).bearer_auth(&owner).send().await.unwrap();
    assert_eq!(error_code(no_fid, 400).await, "missing_fid");
    // The video's id is not an MP3's.
    assert_eq!(error_code(download(&owner, job["video_fid"].as_str().unwrap()).await.unwrap(), 404).await, "not_found");
    let past_the_end = app
        .client
        .get(app.url(&format!("/download?fid={fid}")))
        .bearer_auth(&owner)
        .header("range", "bytes=99999999-")
        .send()
        .await
        .unwrap();
    assert!(past_the_end.headers()["content-range"].to_str().unwrap().starts_with("bytes */"));
    assert_eq!(error_code(past_the_end, 416).await, "bad_range");

    let job_of =
        |token: &str, id: &str| app.client.get(app.url(&format!("/jobs/{id}"))).bearer_auth(token.to_owned()).send();
    assert_eq!(error_code(job_of(&other, &job_id).await.unwrap(), 404).await, "not_found");
    assert_eq!(job_of(&admin, &job_id).await.unwrap().status(), 200);
    assert_eq!(error_code(job_of(&owner, "nope").await.unwrap(), 400).await, "malformed_id");
    let others_list = app.get_json(&other, "/jobs").await;
    assert_eq!(others_list["jobs"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = TestApp::spawn().await;
    let missing = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(error_code(missing, 404).await, "not_found");
    let wrong = app.client.get(app.url("/upload")).send().await.unwrap();
    assert_eq!(wrong.headers()["allow"], "POST");
    assert_eq!(error_code(wrong, 405).await, "method_not_allowed");
    // Without --fault-hooks the test-only route does not exist.
    let crash = app.client.post(app.url("/debug/crash?actor=converter-1")).send().await.unwrap();
    assert_eq!(crash.status(), 404);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

/// Sends `request` on a connection of its own and reads the whole answer (the server closes it).
async fn raw_exchange(app: &TestApp, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.address.as_str()).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    String::from_utf8(answer).unwrap()
}

/// The JSON error of a raw answer, after checking its status line and that it ends its line.
fn raw_error_code(answer: &str, status_line: &str) -> String {
    assert!(answer.starts_with(status_line), "{answer}");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("content-type: application/json"), "{answer}");
    assert!(body.ends_with('\n'), "{answer}");
    let body: Value = serde_json::from_str(body).unwrap();
    body["error"]["code"].as_str().unwrap().to_owned()
}

/// What hyper refuses before any handler runs (a path pasted with `<job_id>` in it, a header
/// without a colon) is a JSON error like every other. (A head past the read buffer, 431, is
/// covered by `http::malformed`'s unit tests: a client still sending it may be reset first.)
#[tokio::test]
async fn requests_that_are_not_valid_http_get_json_errors_too() {
    let app = TestApp::spawn().await;
    let pasted = raw_exchange(&app, b"GET /jobs/<job_id> HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(raw_error_code(&pasted, "HTTP/1.1 400 "), "malformed_request");
    let no_colon = raw_exchange(&app, b"GET /healthz HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n").await;
    assert_eq!(raw_error_code(&no_colon, "HTTP/1.1 400 "), "malformed_request");
    let percent_encoded = app.client.get(app.url("/jobs/%3Cjob_id%3E")).send().await.unwrap();
    assert_eq!(percent_encoded.status(), 401, "a valid request reaches the handlers");
    let text = app.client.get(app.url("/nope")).send().await.unwrap().text().await.unwrap();
    assert!(text.ends_with("}\n"), "JSON answers end their line: {text:?}");
}

#[tokio::test]
async fn job_listing_pages_newest_first() {
    let app = TestApp::spawn().await;
    let token = app.user_token("pages@example.com", false).await;
    let mut submitted = Vec::new();
    for _ in 0..3 {
        submitted.push(app.submit(&token, &fixture("clip.mp4")).await);
    }
    let first = app.get_json(&token, "/jobs?limit=2").await;
    let ids: Vec<&str> = first["jobs"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [submitted[2].as_str(), submitted[1].as_str()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app.get_json(&token, &format!("/jobs?limit=2&cursor={cursor}")).await;
    assert_eq!(second["jobs"][0]["job_id"], submitted[0].as_str());
    assert_eq!(second["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);
    // A page that ends exactly at the last job says there is nothing after it.
    let exact = app.get_json(&token, "/jobs?limit=3").await;
    assert_eq!(exact["jobs"].as_array().unwrap().len(), 3);
    assert_eq!(exact["next_cursor"], Value::Null);
    let bad = app.client.get(app.url("/jobs?limit=0")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(error_code(bad, 400).await, "bad_limit");
}

#[tokio::test]
async fn a_user_over_the_job_cap_gets_429_and_a_queued_job_can_be_cancelled() {
    let args = ["--max-jobs-per-user", "2", "--fault-hooks", "true", "--fault-convert-delay-ms", "60000"];
    let app = TestApp::spawn_with(&args).await;
    let token = app.user_token("busy@example.com", false).await;
    let converting = app.submit(&token, &fixture("clip.mp4")).await;
    app.wait_for_state(&token, &converting, "converting").await;
    let queued = app.submit(&token, &fixture("clip.mp4")).await;

    let refused = app.upload_file(&token, &fixture("clip.mp4")).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(error_code(refused, 429).await, "too_many_jobs");
    assert_documented_error("POST", "/upload", 429, "too_many_jobs");
    let other = app.user_token("idle@example.com", false).await;
    assert_eq!(app.upload_file(&other, &fixture("clip.mp4")).await.status(), 202, "the cap is per user");

    // A job being converted cannot be deleted; a queued one can, and frees its place.
    let delete = |id: &str| app.client.delete(app.url(&format!("/jobs/{id}"))).bearer_auth(&token).send();
    assert_eq!(error_code(delete(&converting).await.unwrap(), 409).await, "job_in_progress");
    assert_documented_error("DELETE", &format!("/jobs/{converting}"), 409, "job_in_progress");
    assert_eq!(delete(&queued).await.unwrap().status(), 204);
    let gone = app.client.get(app.url(&format!("/jobs/{queued}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(app.upload_file(&token, &fixture("clip.mp4")).await.status(), 202);
}
