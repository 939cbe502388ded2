//! What the cluster profile keeps in GridFS for a job, and how its converters read it: an
//! audio-only copy of the upload by default; with `--seed-compatible` the upload itself, which
//! converters read in place (an MP4's index at its end too), whole whatever its size against
//! the chunk size; MP3s of several chunks downloaded byte for byte.

use std::path::Path;

use mongodb::bson::{Document, doc, oid::ObjectId};
use mp3converter::storage::gridfs::CHUNK_SIZE;
use serde_json::Value;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::cluster::{backend_flags, strs, with};
use crate::helpers::{TestApp, fixture, probe_audio, stream_count};
use crate::servers::mongo_client;

/// The files document and the bytes of a GridFS file, as the driver's own GridFS reads it
/// (the seed's programs read files the same way).
async fn stored(database: &str, fid: &str) -> (Document, Vec<u8>) {
    let id = ObjectId::parse_str(fid).unwrap();
    let database = mongo_client().await.database(database);
    let files = database.collection::<Document>("fs.files");
    let file = files.find_one(doc! { "_id": id }).await.unwrap().expect("the file is stored");
    let mut reader = database.gridfs_bucket(None).open_download_stream(id.into()).await.unwrap().compat();
    let mut bytes = Vec::new();
    tokio::io::copy(&mut reader, &mut bytes).await.unwrap();
    (file, bytes)
}

async fn chunk_count(database: &str, fid: &str) -> u64 {
    let chunks = mongo_client().await.database(database).collection::<Document>("fs.chunks");
    chunks.count_documents(doc! { "files_id": ObjectId::parse_str(fid).unwrap() }).await.unwrap()
}

/// `GET /download` of the job's MP3, with an optional `Range`.
async fn download(app: &TestApp, token: &str, mp3_fid: &str, range: Option<&str>) -> Vec<u8> {
    let mut request = app.client.get(app.url(&format!("/download?fid={mp3_fid}"))).bearer_auth(token);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.bytes().await.unwrap().to_vec()
}

/// Uploads `path` and waits for its job to be done.
async fn converted(app: &TestApp, token: &str, path: &Path) -> Value {
    let job = app.finished_job(token, &app.submit(token, path).await).await;
    assert_eq!(job["state"], "done", "{job}");
    job
}

/// Writes `bytes` into the app's data folder and says what ffprobe makes of them: audio
/// streams, video streams, and the audio's codec and seconds.
fn probe_bytes(app: &TestApp, name: &str, bytes: &[u8]) -> (usize, usize, String, f64) {
    let path = app.data_dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let (codec, seconds) = probe_audio(&path);
    (stream_count(&path, "a"), stream_count(&path, "v"), codec, seconds)
}

#[tokio::test]
async fn by_default_only_the_audio_of_an_upload_is_stored_and_converted() {
    let app = TestApp::spawn_with(&strs(&backend_flags().await)).await;
    let token = app.user_token("audio-only@example.com", false).await;
    let upload = fixture("index-at-end.mp4");
    let job = converted(&app, &token, &upload).await;

    let (file, copy) = stored("videos", job["video_fid"].as_str().unwrap()).await;
    assert_eq!(file.get_document("metadata").unwrap().get_str("content_type").unwrap(), "audio/x-matroska");
    let upload_length = std::fs::metadata(&upload).unwrap().len() as usize;
    assert!(copy.len() * 4 < upload_length, "a copy of {} bytes for an upload of {upload_length}", copy.len());
    let (audio, video, _, seconds) = probe_bytes(&app, "copy.mka", &copy);
    assert_eq!((audio, video), (1, 0), "the audio alone");
    assert!((seconds - 10.0).abs() < 0.2, "the whole audio: {seconds} s");
    let written = app.metric("mp3c_gridfs_bytes_total{database=\"videos\",direction=\"written\"").await;
    assert_eq!(written as usize, copy.len(), "only the copy went to GridFS");

    let mp3 = download(&app, &token, job["mp3_fid"].as_str().unwrap(), None).await;
    let (_, _, codec, seconds) = probe_bytes(&app, "out.mp3", &mp3);
    assert_eq!(codec, "mp3");
    assert!((seconds - 10.0).abs() < 0.2, "{seconds} s of MP3");
}

#[tokio::test]
async fn an_mp4_whose_index_is_at_the_end_converts_straight_from_gridfs() {
    let app = TestApp::spawn_with(&strs(&with(&backend_flags().await, &["--seed-compatible"]))).await;
    let token = app.user_token("index-at-end@example.com", false).await;
    let upload = fixture("index-at-end.mp4");
    let bytes = std::fs::read(&upload).unwrap();
    let at = |atom: &[u8]| bytes.windows(4).position(|w| w == atom).unwrap();
    assert!(at(b"moov") > at(b"mdat"), "the fixture's index is at the end");
    let job = converted(&app, &token, &upload).await;

    let (_, video) = stored("videos", job["video_fid"].as_str().unwrap()).await;
    assert!(video == bytes, "the upload is kept as it is");
    let read = app.metric("mp3c_gridfs_bytes_total{database=\"videos\",direction=\"read\"").await;
    assert!(read >= bytes.len() as f64, "the converter read the video from GridFS ({read} bytes)");
    let mp3 = download(&app, &token, job["mp3_fid"].as_str().unwrap(), None).await;
    let (_, _, codec, seconds) = probe_bytes(&app, "out.mp3", &mp3);
    assert_eq!(codec, "mp3");
    assert!((seconds - 10.0).abs() < 0.2, "{seconds} s of MP3");
}

#[tokio::test]
async fn uploads_of_a_chunk_multiple_and_past_a_chunk_are_stored_whole_and_convert() {
    let app = TestApp::spawn_with(&strs(&with(&backend_flags().await, &["--seed-compatible"]))).await;
    let token = app.user_token("chunks@example.com", false).await;
    for size in [3 * CHUNK_SIZE, 3 * CHUNK_SIZE + 4321] {
        let upload = fixture(&format!("padded-{size}.mp4"));
        let job = converted(&app, &token, &upload).await;
        let video_fid = job["video_fid"].as_str().unwrap();
        let (_, video) = stored("videos", video_fid).await;
        assert!(video == std::fs::read(&upload).unwrap(), "{size} bytes stored as uploaded");
        assert_eq!(chunk_count("videos", video_fid).await, size.div_ceil(CHUNK_SIZE) as u64);

        let mp3_fid = job["mp3_fid"].as_str().unwrap();
        let (_, mp3) = stored("mp3s", mp3_fid).await;
        assert!(download(&app, &token, mp3_fid, None).await == mp3, "the MP3 downloads as stored");
        let (_, _, _, seconds) = probe_bytes(&app, "out.mp3", &mp3);
        assert!((seconds - 10.0).abs() < 0.2, "{seconds} s of MP3 from {size} bytes");
    }
}

#[tokio::test]
async fn an_mp3_of_several_chunks_downloads_byte_for_byte_whole_and_in_ranges() {
    let flags = with(&backend_flags().await, &["--bitrate-kbps", "320"]);
    let app = TestApp::spawn_with(&strs(&flags)).await;
    let token = app.user_token("long@example.com", false).await;
    let job = converted(&app, &token, &fixture("minute-audio.m4a")).await;
    let mp3_fid = job["mp3_fid"].as_str().unwrap();
    let (_, mp3) = stored("mp3s", mp3_fid).await;
    assert!(mp3.len() > 2 * CHUNK_SIZE, "an MP3 of {} bytes spans three chunks", mp3.len());
    assert_eq!(chunk_count("mp3s", mp3_fid).await, mp3.len().div_ceil(CHUNK_SIZE) as u64);

    assert!(download(&app, &token, mp3_fid, None).await == mp3, "whole");
    let chunk = CHUNK_SIZE;
    for (first, last) in [(chunk - 10, chunk + 10), (chunk - 1, 2 * chunk), (mp3.len() - 5, mp3.len() - 1)] {
        let part = download(&app, &token, mp3_fid, Some(&format!("bytes={first}-{last}"))).await;
        assert!(part == mp3[first..=last], "bytes {first}-{last}");
    }
}
