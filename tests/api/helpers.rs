//! What the black-box tests share: media fixtures made with the ffmpeg CLI, a running service
//! process, and a client for its API.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::tools;

pub const PASSWORD: &str = "correct horse battery";

pub use crate::servers::{eventually, free_port};

// ---------------------------------------------------------------------------------------------
// Media fixtures

/// A media fixture made once per test run with the ffmpeg CLI (never committed).
pub fn fixture(name: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    if !path.exists() {
        let partial = dir.join(format!("partial-{name}"));
        make_fixture(name, &partial);
        std::fs::rename(&partial, &path).unwrap();
    }
    path
}

fn ffmpeg(args: &[&str], output: &Path) {
    tools::run(tools::ffmpeg().args(args).arg(output));
}

const VIDEO: [&str; 4] = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"];
/// One minute of 720p video with pink-noise stereo audio, as inputs and stream maps.
const MINUTE_720P: [&str; 14] = [
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=1280x720:rate=30",
    "-f",
    "lavfi",
    "-i",
    "anoisesrc=color=pink:sample_rate=48000,aformat=channel_layouts=stereo",
    "-t",
    "60",
    "-map",
    "0:v",
    "-map",
    "1:a",
];
/// Ten minutes of 8 kHz mono silence, as an input.
const SILENCE_8K: [&str; 6] = ["-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "600"];
const H264: [&str; 8] = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "60"];

fn make_fixture(name: &str, out: &Path) {
    match name {
        // 10 s of video with pink-noise stereo AAC audio.
        "clip.mp4" => ffmpeg(
            &[
                &VIDEO[..],
                &["-f", "lavfi", "-i", "anoisesrc=color=pink:sample_rate=48000,aformat=channel_layouts=stereo"],
                &["-t", "10", "-map", "0:v", "-map", "1:a"],
                &H264[..],
                &["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-f", "mp4"],
            ]
            .concat(),
            out,
        ),
        // One minute of 720p with pink-noise audio, for the benchmarks.
        "minute-720p.mp4" => ffmpeg(
            &[&MINUTE_720P[..], &H264[..], &["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-f", "mp4"]]
                .concat(),
            out,
        ),
        // Eight minutes of stereo audio under a small video: conversion dominates its cost.
        "eight-minutes-audio.mp4" => ffmpeg(
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=10",
                "-f",
                "lavfi",
                "-i",
                "anoisesrc=color=pink:sample_rate=44100,aformat=channel_layouts=stereo",
                "-t",
                "480",
                "-map",
                "0:v",
                "-map",
                "1:a",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                "-movflags",
                "+faststart",
                "-f",
                "mp4",
            ],
            out,
        ),
        // The seed system's workload: one minute of 720p at a constant 7.4 Mb/s (about 57 MB),
        // with its index at the end (ffmpeg's default), as a camera or phone writes it.
        "seed-720p.mp4" => ffmpeg(
            &[
                &MINUTE_720P[..],
                &H264[..],
                &["-b:v", "7400k", "-minrate", "7400k", "-maxrate", "7400k", "-bufsize", "7400k"],
                &["-x264-params", "nal-hrd=cbr", "-c:a", "aac", "-b:a", "128k", "-f", "mp4"],
            ]
            .concat(),
            out,
        ),
        // clip.mp4 with its index (moov) at the end, as ffmpeg writes by default.
        "index-at-end.mp4" => ffmpeg(
            &[
                &VIDEO[..],
                &["-f", "lavfi", "-i", "anoisesrc=color=pink:sample_rate=48000,aformat=channel_layouts=stereo"],
                &["-t", "10", "-map", "0:v", "-map", "1:a"],
                &H264[..],
                &["-c:a", "aac", "-b:a", "128k", "-f", "mp4"],
            ]
            .concat(),
            out,
        ),
        // "padded-<bytes>.mp4": index-at-end.mp4 grown to exactly <bytes> by a `free` box at the
        // end, which every MP4 reader skips.
        padded if padded.starts_with("padded-") => {
            let size: usize = padded["padded-".len()..padded.len() - ".mp4".len()].parse().expect("a size");
            let base = out.with_extension("base.mp4");
            make_fixture("index-at-end.mp4", &base);
            let mut bytes = std::fs::read(&base).unwrap();
            std::fs::remove_file(base).unwrap();
            let free = size.checked_sub(bytes.len()).filter(|n| *n >= 8).expect("room for a free box");
            bytes.extend_from_slice(&(free as u32).to_be_bytes());
            bytes.extend_from_slice(b"free");
            bytes.resize(size, 0);
            std::fs::write(out, bytes).unwrap();
        }
        // A minute of stereo pink noise, audio only: its MP3 spans several GridFS chunks.
        "minute-audio.m4a" => ffmpeg(
            &[
                "-f",
                "lavfi",
                "-i",
                "anoisesrc=color=pink:sample_rate=48000,aformat=channel_layouts=stereo",
                "-t",
                "60",
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                "-f",
                "mp4",
            ],
            out,
        ),
        // Video only.
        "silent.mp4" => ffmpeg(&[&VIDEO[..], &["-t", "3"], &H264[..], &["-f", "mp4"]].concat(), out),
        // Index at the end, cut in half: the index is gone.
        "truncated.mp4" => {
            let whole = out.with_extension("whole.mp4");
            ffmpeg(
                &[
                    &VIDEO[..],
                    &[
                        "-f",
                        "lavfi",
                        "-i",
                        "sine=frequency=440:sample_rate=44100",
                        "-t",
                        "4",
                        "-map",
                        "0:v",
                        "-map",
                        "1:a",
                    ],
                    &H264[..],
                    &["-c:a", "aac", "-f", "mp4"],
                ]
                .concat(),
                &whole,
            );
            let bytes = std::fs::read(&whole).unwrap();
            std::fs::write(out, &bytes[..bytes.len() / 2]).unwrap();
            std::fs::remove_file(whole).unwrap();
        }
        // An audio-only file whose every audio byte after the header is noise.
        "corrupt-audio.m4a" => {
            let clean = out.with_extension("clean.m4a");
            ffmpeg(
                &[
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:sample_rate=44100",
                    "-t",
                    "10",
                    "-c:a",
                    "aac",
                    "-movflags",
                    "+faststart",
                    "-f",
                    "mp4",
                ],
                &clean,
            );
            let mut bytes = std::fs::read(&clean).unwrap();
            let mdat = bytes.windows(4).position(|w| w == b"mdat").expect("an mp4 has an mdat box") + 4;
            let mut state = 0x2545_f491_u32;
            for byte in &mut bytes[mdat..] {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *byte = state as u8;
            }
            std::fs::write(out, bytes).unwrap();
            std::fs::remove_file(clean).unwrap();
        }
        // Three seconds of a tone, as a phone or a voice recorder makes it: PCM s16 mono, 8 kHz.
        "voice-8k.wav" => {
            ffmpeg(&["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000:duration=3", "-f", "wav"], out)
        }
        // Decompression bombs: ten minutes of silence in about 100 KB of FLAC, with its length
        // in the header, and without (written to a pipe, the header cannot be filled in).
        "bomb-declared.flac" => ffmpeg(&[&SILENCE_8K[..], &["-f", "flac"]].concat(), out),
        "bomb-undeclared.flac" => {
            let pipe = std::fs::File::create(out).unwrap();
            tools::run(tools::ffmpeg().args(SILENCE_8K).args(["-f", "flac", "pipe:1"]).stdout(pipe));
        }
        other => panic!("no recipe for fixture {other}"),
    }
}

/// How many streams of a kind (`a`, `v`) the file has, per ffprobe.
pub fn stream_count(path: &Path, kind: &str) -> usize {
    tools::ffprobe(path, kind, "stream=index")["streams"].as_array().map_or(0, Vec::len)
}

/// The codec name and duration in seconds of the file's first audio stream, per ffprobe (the
/// file's duration for containers that give none per stream, such as Matroska).
pub fn probe_audio(path: &Path) -> (String, f64) {
    let json = tools::ffprobe(path, "a:0", "stream=duration,codec_name:format=duration");
    let stream = &json["streams"][0];
    let seconds = |value: &Value| value["duration"].as_str().and_then(|d| d.parse().ok());
    let duration = seconds(stream).or_else(|| seconds(&json["format"])).unwrap_or(f64::NAN);
    (stream["codec_name"].as_str().unwrap_or_default().to_owned(), duration)
}

/// Taken by the tests that keep both cores busy for long (bulk conversions), so that they run
/// neither beside each other nor beside the monitoring test, whose Prometheus scrapes (each
/// allowed one second) time out on a saturated machine.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Converts `count` short recordings on `app` as a client would, 4 at a time: each uploaded,
/// followed to `done`, the job list read and the MP3 downloaded.
pub async fn convert_recordings(app: &TestApp, token: &str, count: usize) {
    use futures_util::StreamExt;
    let voice = std::fs::read(fixture("voice-8k.wav")).unwrap();
    let jobs = futures_util::stream::iter(0..count).map(|n| {
        let voice = voice.clone();
        async move {
            let response = app.upload_bytes(token, &format!("voice-{n}.wav"), voice).await;
            assert_eq!(response.status(), 202);
            let body: Value = response.json().await.unwrap();
            let job = app.finished_job(token, body["job_id"].as_str().unwrap()).await;
            assert_eq!(job["state"], "done", "{job}");
            app.get_json(token, "/jobs?limit=20").await;
            let fid = job["mp3_fid"].as_str().unwrap();
            let download = app.client.get(app.url(&format!("/download?fid={fid}"))).bearer_auth(token);
            assert!(!download.send().await.unwrap().bytes().await.unwrap().is_empty());
        }
    });
    jobs.buffer_unordered(4).collect::<Vec<()>>().await;
}

/// How many children of process `pid` are zombies (exited, not yet reaped).
pub fn zombie_children(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| {
            // After the command name: the state, then the parent's pid.
            let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
            fields.first() == Some(&"Z") && fields.get(1) == Some(&pid.to_string().as_str())
        })
        .count()
}

// ---------------------------------------------------------------------------------------------
// The service under test

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_mp3converter")
}

/// One running `mp3converter up`, killed when dropped.
pub struct TestApp {
    pub address: String,
    pub data_dir: PathBuf,
    process: Child,
    _dir: Option<tempfile::TempDir>,
    extra_args: Vec<String>,
    pub client: reqwest::Client,
}

/// The flags of `up` that `user` commands take too: those that name the user database.
const USER_DATABASE_FLAGS: [&str; 3] = ["--config", "--profile", "--mysql-url"];

/// A JWT secret shared by the tests, so they can also forge tokens.
pub const JWT_SECRET: &str = "black-box-test-secret, at least 32 bytes";

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(&[]).await
    }

    pub async fn spawn_with(args: &[&str]) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_path_buf();
        let extra_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (process, address) = start(&data_dir, &extra_args);
        TestApp { address, data_dir, process, _dir: Some(dir), extra_args, client: reqwest::Client::new() }
    }

    /// Starts another process on `other`'s data folder (which stays `other`'s to remove).
    #[allow(dead_code)] // for the actor cluster's tests
    pub async fn spawn_beside(other: &TestApp, args: &[&str]) -> TestApp {
        let extra_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (process, address) = start(&other.data_dir, &extra_args);
        let data_dir = other.data_dir.clone();
        TestApp { address, data_dir, process, _dir: None, extra_args, client: reqwest::Client::new() }
    }

    /// Kills the process without warning (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// Starts the service again on the same data folder, with other extra arguments.
    pub fn restart_with(&mut self, args: &[&str]) {
        self.kill();
        self.extra_args = args.iter().map(|s| s.to_string()).collect();
        let (process, address) = start(&self.data_dir, &self.extra_args);
        self.process = process;
        self.address = address;
    }

    /// Starts the service again on the same data folder and the same address, with other extra
    /// arguments (after it stopped: else it is killed first).
    pub fn restart_at_same_address(&mut self, args: &[&str]) {
        self.kill();
        self.extra_args = args.iter().map(|s| s.to_string()).collect();
        let (process, address) = start_at(&self.address, &self.data_dir, &self.extra_args);
        assert_eq!(address, self.address);
        self.process = process;
    }

    /// Waits for the process to exit by itself, and returns its status.
    pub async fn exit_status(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.process.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the service did not exit");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        crate::servers::send_sigterm(self.process.id());
        self.process.wait().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// A memory figure of the service process from `/proc/<pid>/status`, in MiB: `VmRSS` (now)
    /// or `VmHWM` (the peak over its life).
    pub fn memory_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.strip_prefix(field).is_some_and(|rest| rest.starts_with(':'))).unwrap();
        let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib / 1024.0
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn add_user(&self, email: &str, admin: bool) {
        let add = ["add", email, "--password-stdin"];
        let output =
            self.user_command(&[&add[..], if admin { &["--admin"] } else { &[] }].concat(), &format!("{PASSWORD}\n"));
        assert!(output.status.success(), "user add {email} failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// `mp3converter user ARGS` on this service's users, with `stdin` as standard input.
    pub fn user_command(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let mut command = Command::new(binary());
        command.arg("user").args(args);
        with_backend_args(&mut command, &self.user_database_args());
        tools::Running::with_input(&mut command, stdin).wait()
    }

    /// The flags that lead `user` commands to this service's users: its data folder, and those
    /// of its extra flags that name the user database.
    pub fn user_database_args(&self) -> Vec<String> {
        let mut kept = vec!["--data-dir".to_owned(), self.data_dir.to_string_lossy().into_owned()];
        let mut args = self.extra_args.iter();
        while let Some(arg) = args.next() {
            if USER_DATABASE_FLAGS.contains(&arg.split('=').next().unwrap_or_default()) {
                kept.push(arg.clone());
                if !arg.contains('=') {
                    kept.extend(args.next().cloned());
                }
            }
        }
        kept
    }

    /// Adds a user and logs in, returning the token.
    pub async fn user_token(&self, email: &str, admin: bool) -> String {
        self.add_user(email, admin);
        self.login(email, PASSWORD).await
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let response = self.client.post(self.url("/login")).basic_auth(email, Some(password)).send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "login of {email}: {body}\n{}", service_log(&self.data_dir));
        body
    }

    pub async fn upload_file(&self, token: &str, path: &Path) -> reqwest::Response {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        self.upload_bytes(token, &name, bytes).await
    }

    pub async fn upload_bytes(&self, token: &str, filename: &str, bytes: Vec<u8>) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        self.client.post(self.url("/upload")).bearer_auth(token).multipart(form).send().await.unwrap()
    }

    /// Uploads and returns the job id, asserting the 202.
    pub async fn submit(&self, token: &str, path: &Path) -> String {
        let response = self.upload_file(token, path).await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        body["job_id"].as_str().unwrap().to_owned()
    }

    pub async fn job(&self, token: &str, job_id: &str) -> Value {
        let response = self.client.get(self.url(&format!("/jobs/{job_id}"))).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// GETs `path` with the token and returns the JSON body.
    pub async fn get_json(&self, token: &str, path: &str) -> Value {
        let response = self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// Waits until the job is in `state`.
    pub async fn wait_for_state(&self, token: &str, job_id: &str, state: &str) {
        eventually(Duration::from_secs(30), &format!("job {job_id} to be {state}"), || async {
            (self.job(token, job_id).await["state"] == state).then_some(())
        })
        .await
    }

    /// Waits until the job is `done` or `failed`, and returns it.
    pub async fn finished_job(&self, token: &str, job_id: &str) -> Value {
        eventually(Duration::from_secs(60), &format!("job {job_id} to finish"), || async {
            let job = self.job(token, job_id).await;
            matches!(job["state"].as_str(), Some("done" | "failed")).then_some(job)
        })
        .await
    }

    pub async fn metrics(&self) -> String {
        self.client.get(self.url("/metrics")).send().await.unwrap().text().await.unwrap()
    }

    /// The value of one series, such as `mp3c_actor_messages_total{actor="auth"`; 0 if absent.
    pub async fn metric(&self, series_prefix: &str) -> f64 {
        metric_value(&self.metrics().await, series_prefix)
    }

    /// The emails in the outbox, as raw text.
    pub fn outbox(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.data_dir.join("outbox")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect()
    }

    /// Waits until exactly `count` emails mention `needle`, and returns them.
    pub async fn emails_about(&self, needle: &str, count: usize) -> Vec<String> {
        eventually(Duration::from_secs(30), &format!("{count} email(s) about {needle}"), || async {
            let found: Vec<String> = self.outbox().into_iter().filter(|mail| mail.contains(needle)).collect();
            (found.len() == count).then_some(found)
        })
        .await
    }
}

/// Polls `count` until it has stayed the same for `quiet`, and returns it: the final count of
/// something that arrives on its own time, such as emails (every one, not just the first).
pub async fn settled_count<F, Fut>(within: Duration, quiet: Duration, mut count: F) -> usize
where
    F: FnMut() -> Fut,
    Fut: Future<Output = usize>,
{
    let deadline = Instant::now() + within;
    let (mut last, mut since) = (count().await, Instant::now());
    while since.elapsed() < quiet {
        assert!(Instant::now() < deadline, "the count kept changing (last {last})");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = count().await;
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    last
}

/// A client whose connections come from `address` (anywhere in 127.0.0.0/8), so that the
/// service sees a client address other than the usual 127.0.0.1.
pub fn client_from(address: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().local_address(std::net::IpAddr::from(address)).build().unwrap()
}

pub fn metric_value(text: &str, series_prefix: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(series_prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The service's log (standard error), for failure messages.
pub fn service_log(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("service.log")).unwrap_or_default()
}

/// Starts `up` on a free port and waits for the line that names it.
fn start(data_dir: &Path, extra_args: &[String]) -> (Child, String) {
    start_at("127.0.0.1:0", data_dir, extra_args)
}

/// Starts the service listening on `listen`; returns it and the address it listens on.
/// Adds `args` to `command`, the backend URLs among them as environment variables, as an
/// operator must (a password in a flag is refused: every user of a machine can read flags).
pub fn with_backend_args<'a>(command: &'a mut Command, args: &[String]) -> &'a mut Command {
    let variables =
        [("--mysql-url", "MP3C_MYSQL_URL"), ("--mongodb-url", "MP3C_MONGODB_URL"), ("--amqp-url", "MP3C_AMQP_URL")];
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match variables.iter().find(|(flag, _)| flag == arg) {
            Some((_, variable)) => command.env(variable, args.next().expect("a URL after its flag")),
            None => command.arg(arg),
        };
    }
    command
}

fn start_at(listen: &str, data_dir: &Path, extra_args: &[String]) -> (Child, String) {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join("service.log")).unwrap();
    let mut command = Command::new(binary());
    command.args(["up", "--listen", listen, "--data-dir"]).arg(data_dir);
    let mut process = with_backend_args(&mut command, extra_args)
        .env("MP3C_JWT_SECRET", JWT_SECRET)
        // One converter unless a test says otherwise (flags override the environment).
        .env("MP3C_CONVERTERS", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("the service binary starts");
    let stdout = process.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = sender.send(line);
        }
        // Keep draining so the service never blocks on a full pipe.
        for _ in lines {}
    });
    let line = receiver
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("the service did not start:\n{}", service_log(data_dir)));
    let address = line.strip_prefix("listening on http://").expect("the first line names the address").to_owned();
    (process, address)
}

// ---------------------------------------------------------------------------------------------
// A real SMTP sink

/// maildev (installed into `.tools/` by `scripts/install-deps --test`), stopped when dropped.
pub struct MailDev {
    pub smtp_port: u16,
    web_port: u16,
    process: Child,
    /// Where it keeps the mail (by default a `/tmp/maildev-<pid>` that it leaves behind when
    /// killed); removed when dropped.
    _mail_dir: tempfile::TempDir,
}

impl MailDev {
    pub async fn start() -> MailDev {
        MailDev::start_on(free_port(), free_port()).await
    }

    /// Starts maildev on the given ports (again, after [`MailDev::stop`]).
    pub async fn start_on(smtp_port: u16, web_port: u16) -> MailDev {
        let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/node_modules/.bin/maildev");
        assert!(binary.exists(), "maildev is missing: run scripts/test, which installs it");
        let mail_dir = tempfile::tempdir().expect("a folder for maildev's mail");
        let process = Command::new(binary)
            .args(["--ip", "127.0.0.1", "--web-ip", "127.0.0.1", "--silent"])
            .arg("--mail-directory")
            .arg(mail_dir.path())
            .args(["--smtp", &smtp_port.to_string(), "--web", &web_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("maildev starts");
        let maildev = MailDev { smtp_port, web_port, process, _mail_dir: mail_dir };
        eventually(Duration::from_secs(30), "maildev to answer", || async { maildev.try_emails().await }).await;
        maildev
    }

    /// Stops the server (its mail is lost), returning its ports for [`MailDev::start_on`].
    pub fn stop(mut self) -> (u16, u16) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        (self.smtp_port, self.web_port)
    }

    async fn try_emails(&self) -> Option<Vec<Value>> {
        let response = reqwest::get(format!("http://127.0.0.1:{}/email", self.web_port)).await.ok()?;
        response.json().await.ok()
    }

    /// Every email received so far.
    pub async fn all_emails(&self) -> Vec<Value> {
        self.try_emails().await.unwrap_or_default()
    }

    /// Waits until exactly `count` received emails contain `needle` in their text.
    pub async fn emails_about(&self, needle: &str, count: usize) -> Vec<Value> {
        eventually(Duration::from_secs(30), &format!("{count} SMTP email(s) about {needle}"), || async {
            let all = self.try_emails().await?;
            let found: Vec<Value> =
                all.into_iter().filter(|mail| mail["text"].as_str().is_some_and(|t| t.contains(needle))).collect();
            (found.len() == count).then_some(found)
        })
        .await
    }
}

impl Drop for MailDev {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
