//! Hostile uploads, as an attacker sends them: scripts and playlists that name another user's
//! video, a file of the host or a URL; a script that names itself; decompression bombs; and
//! files that make the FFmpeg worker crash, spin, eat memory, talk garbage or try to get out.
//! Each is refused at the door (415) or fails its job with a reason; nothing of another user's
//! or of the host ends up in an MP3, no URL is fetched, and the node (same PID) keeps serving,
//! with no zombie process or scratch file left behind. In both profiles: the cluster profile
//! also takes videos from the seed's own gateway, which has no door check.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use mp3converter::sandbox::{MediaWorker, Sandbox};
use mp3converter::storage::Media;
use mp3converter::transcode::{StopSignal, TranscodeError, TranscodeOptions};
use serde_json::Value;

use crate::cluster::{act_as_the_seed_gateway, cluster_flags, flag_value, strs, with};
use crate::helpers::{MailDev, TestApp, binary, eventually, fixture, zombie_children};

// ---------------------------------------------------------------------------------------------
// The attacks

/// A local TCP listener that must never see a connection: the target of every URL in a
/// playlist.
struct Tripwire(TcpListener);

impl Tripwire {
    fn new() -> Tripwire {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Tripwire(listener)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.0.local_addr().unwrap())
    }

    fn assert_untouched(&self) {
        match self.0.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("a playlist made the service connect out: {other:?}"),
        }
    }
}

/// An HLS playlist of one segment at `uri`.
fn hls(uri: &str) -> Vec<u8> {
    format!("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n{uri}\n#EXT-X-ENDLIST\n")
        .into_bytes()
}

/// An FFmpeg concat script naming `file`.
fn concat(file: &str) -> Vec<u8> {
    format!("ffconcat version 1.0\nfile {file}\n").into_bytes()
}

/// Every script an attacker would upload: by another user's id and by relative path, a host
/// file by path and by `file://` URL, a URL on the tripwire, and a script naming itself
/// (`next_fid`, ids being easy to guess).
fn attacks(victim_fid: &str, host_file: &Path, tripwire: &Tripwire, next_fid: &str) -> Vec<(&'static str, Vec<u8>)> {
    let host = host_file.display().to_string();
    // FFmpeg skips an ID3v2 tag before it probes, and finds a DASH manifest anywhere.
    let behind_id3 = [&b"ID3\x04\0\0\0\0\0\x04tag!"[..], &hls(&host)].concat();
    let manifest = format!("junk <MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"><BaseURL>{host}</BaseURL></MPD>");
    vec![
        ("hls-behind-id3.mp3", behind_id3),
        ("dash-behind-junk.mp4", manifest.into_bytes()),
        ("concat-by-id.mp4", concat(victim_fid)),
        ("concat-by-path.mp4", concat(&format!("../videos/{victim_fid}"))),
        ("concat-itself.mp4", concat(next_fid)),
        ("hls-host-path.mp4", hls(&host)),
        ("hls-host-url.mp4", hls(&format!("file://{host}"))),
        ("hls-url.mp4", hls(&tripwire.url("segment.ts"))),
    ]
}

/// A WAV of the host's that a playlist may name (HLS opens `.wav` segments).
fn host_secret(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("host-secret.wav");
    std::fs::copy(fixture("voice-8k.wav"), &path).unwrap();
    path
}

/// The jobs `token`'s user has.
async fn jobs_of(app: &TestApp, token: &str) -> Vec<Value> {
    app.get_json(token, "/jobs").await["jobs"].as_array().cloned().unwrap_or_default()
}

/// The node is the same process and answers.
async fn assert_same_node(app: &TestApp, pid: u32) {
    assert_eq!(app.pid(), pid);
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the node died");
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

/// No child of `pid` left unreaped, and nothing in its scratch folder: polled, since a worker
/// is reaped just after its job is written.
async fn assert_nothing_left_behind(app: &TestApp) {
    let pid = app.pid();
    eventually(Duration::from_secs(10), "no zombie worker and an empty scratch folder", || async {
        (zombie_children(pid) == 0 && scratch_files(&app.data_dir) == 0).then_some(())
    })
    .await;
}

/// Files in every scratch folder under `data_dir`.
fn scratch_files(data_dir: &Path) -> usize {
    let Ok(folders) = std::fs::read_dir(data_dir.join("scratch")) else { return 0 };
    folders.flatten().filter_map(|folder| std::fs::read_dir(folder.path()).ok()).map(|files| files.count()).sum()
}

// ---------------------------------------------------------------------------------------------
// At the door, both profiles

async fn scripts_are_refused_at_the_door(args: &[&str]) {
    let app = TestApp::spawn_with(args).await;
    let pid = app.pid();
    // Users of this test alone: the cluster tests share one MongoDB.
    let alice = app.user_token("door-alice@example.com", false).await;
    let bob = app.user_token("door-bob@example.com", false).await;
    let victim = app.upload_file(&alice, &fixture("clip.mp4")).await.json::<Value>().await.unwrap();
    let victim_fid = victim["video_fid"].as_str().unwrap();
    let (dir, tripwire) = (tempfile::tempdir().unwrap(), Tripwire::new());
    let host = host_secret(dir.path());
    for (name, script) in attacks(victim_fid, &host, &tripwire, victim_fid) {
        let response = app.upload_bytes(&bob, name, script).await;
        assert_eq!(response.status(), 415, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unsupported_media", "{name}: {body}");
    }
    assert_eq!(jobs_of(&app, &bob).await, Vec::<Value>::new(), "no job for any script");
    let victims_job = app.finished_job(&alice, victim["job_id"].as_str().unwrap()).await;
    assert_eq!(victims_job["state"], "done", "{victims_job}");
    tripwire.assert_untouched();
    assert_same_node(&app, pid).await;
}

#[tokio::test]
async fn scripts_naming_other_files_are_refused_at_the_door() {
    scripts_are_refused_at_the_door(&[]).await;
}

#[tokio::test]
async fn scripts_naming_other_files_are_refused_at_the_door_of_a_cluster_node() {
    let maildev = MailDev::start().await;
    scripts_are_refused_at_the_door(&strs(&cluster_flags(&maildev).await)).await;
}

// ---------------------------------------------------------------------------------------------
// Past the door: the worker itself

/// What gets past the door (the seed's gateway has none; a future door might miss something)
/// is still refused by the worker: the demuxer allow-list, with nested opens refused. Tried
/// on the worker directly, with each script beside the file it names, from a file (the
/// embedded profile's input) and from a stream (the cluster profile's custom I/O).
#[test]
fn the_worker_refuses_scripts_that_get_past_the_door() {
    let dir = tempfile::tempdir().unwrap();
    let tripwire = Tripwire::new();
    let victim = dir.path().join("6b112a291cd18c94d8687d95");
    std::fs::copy(fixture("voice-8k.wav"), &victim).unwrap();
    let host = host_secret(dir.path());
    let sandbox = Sandbox::new(binary(), 1 << 30);
    let options = TranscodeOptions { bit_rate: 192_000, max_media_seconds: 3600.0 };
    let output = dir.path().join("out.mp3");
    let mut attacks = attacks("6b112a291cd18c94d8687d95", &host, &tripwire, "script.mp4");
    attacks.push(("dash.mp4", b"<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"/>".to_vec()));
    for (name, script) in attacks {
        let path = dir.path().join("script.mp4");
        std::fs::write(&path, &script).unwrap();
        for (how, media) in [
            ("file", Media::File(path.clone())),
            ("stream", Media::Stream(Box::new(std::fs::File::open(&path).unwrap()))),
        ] {
            std::fs::write(&output, b"").unwrap();
            let stop = StopSignal::new(std::time::Instant::now() + Duration::from_secs(60));
            let outcome = sandbox.transcode(media, &output, options, None, &stop);
            match outcome {
                Err(
                    TranscodeError::Refused(_)
                    | TranscodeError::Unreadable(_)
                    | TranscodeError::NoAudio
                    | TranscodeError::Undecodable(_),
                ) => {}
                other => panic!("{name} through a {how}: {other:?}"),
            }
            assert_eq!(std::fs::metadata(&output).unwrap().len(), 0, "{name} through a {how}: nothing written");
        }
    }
    tripwire.assert_untouched();
}

/// The seed's gateway stores what it is sent and publishes it: a script naming Alice's video
/// becomes Bob's job, which fails with the refusal (or as unreadable, when no demuxer at all
/// takes it); Bob gets no MP3.
#[tokio::test]
async fn scripts_from_the_seeds_gateway_fail_their_jobs_with_the_reason() {
    let maildev = MailDev::start().await;
    let flags = cluster_flags(&maildev).await;
    let app = TestApp::spawn_with(&strs(&flags)).await;
    let pid = app.pid();
    let alice = app.user_token("seed-alice@example.com", false).await;
    let bob = app.user_token("seed-bob@example.com", false).await;
    let victim = app.submit(&alice, &fixture("clip.mp4")).await;
    let victim_fid = app.finished_job(&alice, &victim).await["video_fid"].as_str().unwrap().to_owned();
    let (dir, tripwire) = (tempfile::tempdir().unwrap(), Tripwire::new());
    let host = host_secret(dir.path());
    let amqp = flag_value(&flags, "--amqp-url");
    for (name, script) in attacks(&victim_fid, &host, &tripwire, &victim_fid) {
        let job_id = act_as_the_seed_gateway(amqp, "seed-bob@example.com", name, &script).await;
        // The job exists once a converter took the seed's message in.
        let job = eventually(Duration::from_secs(60), &format!("{name}'s job to finish"), || async {
            let response = app.client.get(app.url(&format!("/jobs/{job_id}"))).bearer_auth(&bob).send().await.unwrap();
            let job: Value = response.json().await.ok()?;
            (job["state"] == "failed" || job["state"] == "done").then_some(job)
        })
        .await;
        assert_eq!(job["state"], "failed", "{name}: {job}");
        let error = job["error"].as_str().unwrap();
        let refused = ["not an accepted media format", "not a readable media file"];
        assert!(refused.iter().any(|reason| error.contains(reason)), "{name}: {error}");
        assert_eq!(job["mp3_fid"], Value::Null);
    }
    tripwire.assert_untouched();
    assert_same_node(&app, pid).await;
}

// ---------------------------------------------------------------------------------------------
// Bombs

/// Ten minutes of silence in about 100 KB, with its length declared and without (a FLAC
/// written to a pipe has no length in its header): both fail `too_long` under a one-minute
/// limit, the second as soon as the decoded audio passes it, and no MP3 is stored.
async fn bombs_fail_too_long(args: &[&str]) {
    let args = [args, &["--max-media-seconds", "60"]].concat();
    let app = TestApp::spawn_with(&args).await;
    let pid = app.pid();
    let token = app.user_token("bomber@example.com", false).await;
    for bomb in ["bomb-declared.flac", "bomb-undeclared.flac"] {
        let job_id = app.submit(&token, &fixture(bomb)).await;
        let job = app.finished_job(&token, &job_id).await;
        assert_eq!(job["state"], "failed", "{bomb}: {job}");
        assert!(job["error"].as_str().unwrap().starts_with("too_long"), "{bomb}: {job}");
        assert_eq!(job["attempts"], 1, "{bomb}: a bomb is not retried: {job}");
    }
    let converted = app.metric("mp3c_conversions_total{outcome=\"done\"").await;
    assert_eq!(converted, 0.0, "no MP3 was made");
    assert_nothing_left_behind(&app).await;
    assert_same_node(&app, pid).await;
}

#[tokio::test]
async fn decompression_bombs_fail_too_long() {
    bombs_fail_too_long(&[]).await;
}

#[tokio::test]
async fn decompression_bombs_fail_too_long_on_a_cluster_node() {
    let maildev = MailDev::start().await;
    bombs_fail_too_long(&strs(&cluster_flags(&maildev).await)).await;
}

// ---------------------------------------------------------------------------------------------
// Workers that die

/// Each way a worker can die fails its job after one retry, with the reason; a good file
/// converts meanwhile, and the node lives on with nothing left behind.
async fn dying_workers_fail_their_jobs(profile_args: &[&str]) {
    let faults = [
        ("segfault.mp4", "segfault", "the converter crashed on this file (it died of SIGSEGV)"),
        ("abort.mp4", "abort", "the converter crashed on this file (it died of SIGABRT)"),
        ("stack.mp4", "stack-overflow", "the converter crashed on this file (it died of SIG"),
        ("hog.mp4", "allocate", "the converter crashed on this file (it died of SIG"),
        ("garbage.mp4", "garbage", "the converter crashed on this file (it sent a message that is not one)"),
        ("spin.mp4", "spin", "the conversion took longer than its time limit"),
    ];
    let hooks: Vec<String> = faults.iter().map(|(name, fault, _)| format!("{name}={fault}")).collect();
    let hooks = hooks.join(",");
    let flags = ["--fault-hooks", "true", "--fault-worker", &hooks, "--conversion-timeout-seconds", "8"];
    let app = TestApp::spawn_with(&[profile_args, &flags, &["--worker-memory-mib", "256"]].concat()).await;
    let pid = app.pid();
    let token = app.user_token("chaos@example.com", false).await;
    let clip = std::fs::read(fixture("clip.mp4")).unwrap();
    let mut jobs = Vec::new();
    for (name, _, reason) in faults {
        let accepted: Value = app.upload_bytes(&token, name, clip.clone()).await.json().await.unwrap();
        jobs.push((name, reason, accepted["job_id"].as_str().unwrap().to_owned()));
    }
    let good = app.submit(&token, &fixture("clip.mp4")).await;
    assert_eq!(app.finished_job(&token, &good).await["state"], "done", "other conversions go on");
    for (name, reason, job_id) in jobs {
        let job = eventually(Duration::from_secs(120), &format!("{name} to fail"), || async {
            let job = app.job(&token, &job_id).await;
            (job["state"] == "failed").then_some(job)
        })
        .await;
        assert!(job["error"].as_str().unwrap().starts_with(reason), "{name}: {job}");
        assert_eq!(job["attempts"], 2, "{name}: retried once: {job}");
    }
    assert_nothing_left_behind(&app).await;
    assert_same_node(&app, pid).await;
}

#[tokio::test]
async fn a_worker_that_crashes_spins_or_eats_memory_fails_its_job_and_the_node_lives() {
    dying_workers_fail_their_jobs(&[]).await;
}

#[tokio::test]
async fn a_worker_that_dies_on_a_cluster_node_fails_its_job_and_the_node_lives() {
    let maildev = MailDev::start().await;
    let flags = cluster_flags(&maildev).await;
    dying_workers_fail_their_jobs(&strs(&with(&flags, &["--seed-compatible"]))).await;
}

/// The worker's lockdown, tried from inside: opening a file, looking one up, making a socket,
/// starting a process and making its socket signal someone are all refused.
#[tokio::test]
async fn a_worker_cannot_open_a_file_make_a_socket_or_start_a_process() {
    let app = TestApp::spawn_with(&["--fault-hooks", "true", "--fault-worker", "escape.mp4=escape"]).await;
    let token = app.user_token("escaper@example.com", false).await;
    let accepted: Value =
        app.upload_bytes(&token, "escape.mp4", std::fs::read(fixture("clip.mp4")).unwrap()).await.json().await.unwrap();
    let job = app.finished_job(&token, accepted["job_id"].as_str().unwrap()).await;
    let error = job["error"].as_str().unwrap();
    for attempt in ["open refused", "stat refused", "socket refused", "process refused", "signal owner refused"] {
        assert!(error.contains(attempt), "{attempt}: {error}");
    }
    assert!(!error.contains("ALLOWED"), "{error}");
}
