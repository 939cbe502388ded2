//! The command-line client against the real service: `convert`, `login`, `jobs`, `download`,
//! and the `user` commands. Each test gives the client its own home folder (the token cache).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::auth::{forge, now};
use crate::helpers::{JWT_SECRET, PASSWORD, TestApp, binary, eventually, fixture, probe_audio, service_log};
use crate::proxy::{Proxy, Twist};
use crate::tools::Running;

const EMAIL: &str = "cli@example.com";
const BOB: &str = "bob@example.com";
/// Conversions held up by a fault hook (followed by the delay flag).
const SLOW: [&str; 4] = ["--fault-hooks", "true", "--fault-convert-delay-ms", "3000"];
const LOGINS: &str = "mp3c_http_requests_total{route=\"/login\"";
const UPLOADS: &str = "mp3c_uploads_total";

/// A person at a shell: a home folder and a folder of videos.
struct Shell {
    home: tempfile::TempDir,
    videos: tempfile::TempDir,
}

impl Shell {
    fn new() -> Shell {
        Shell { home: tempfile::tempdir().unwrap(), videos: tempfile::tempdir().unwrap() }
    }

    /// `mp3converter ARGS` for `app`, as this person, not on a terminal.
    fn command(&self, app: &TestApp, args: &[&str]) -> Command {
        self.command_at(&app.url("/"), args)
    }

    /// `mp3converter ARGS` for the server at `server`.
    fn command_at(&self, server: &str, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .args(args)
            .args(["--server", server])
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("MP3C_EMAIL", EMAIL)
            .env_remove("MP3C_TOKEN")
            .env_remove("MP3C_SERVER")
            .current_dir(self.videos.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs `mp3converter ARGS` with the password on standard input.
    fn run_with_password(&self, app: &TestApp, args: &[&str]) -> Output {
        Running::with_input(&mut self.command(app, &[args, &["--password-stdin"]].concat()), format!("{PASSWORD}\n"))
            .wait()
    }

    /// Runs `mp3converter ARGS` with nothing on standard input (a password prompt would fail).
    fn run(&self, app: &TestApp, args: &[&str]) -> Output {
        self.command(app, args).stdin(Stdio::null()).output().unwrap()
    }

    /// A video in the videos folder: a copy of a fixture, or text.
    fn video(&self, name: &str, fixture_name: Option<&str>) -> PathBuf {
        let path = self.videos.path().join(name);
        match fixture_name {
            Some(source) => std::fs::copy(fixture(source), &path).map(drop).unwrap(),
            None => std::fs::write(&path, "these are my holiday notes, not a video\n").unwrap(),
        }
        path
    }

    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.videos.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// `convert holiday.mp4` (a copy of clip.mp4) against `server`, the password given.
fn start_converting_holiday(shell: &Shell, server: &str) -> Running {
    shell.video("holiday.mp4", Some("clip.mp4"));
    let mut command = shell.command_at(server, &["convert", "holiday.mp4", "--password-stdin"]);
    Running::with_input(&mut command, format!("{PASSWORD}\n"))
}

/// Ctrl-C: SIGINT, then the exit.
async fn interrupt(mut child: Running) -> Output {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    child.exit().await
}

/// Everything a command writes to one of its pipes, gathered in the background while it runs.
struct Gathered {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Gathered {
    fn start(mut pipe: impl std::io::Read + Send + 'static) -> Gathered {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let gathered = bytes.clone();
        let reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 256];
            while let Ok(n @ 1..) = pipe.read(&mut buffer) {
                gathered.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        });
        Gathered { bytes, reader }
    }

    /// What was written so far.
    fn text(&self) -> String {
        text(&self.bytes.lock().unwrap())
    }

    /// Waits until `needle` was written, for up to 30 s.
    async fn wait_for(&self, needle: &str) {
        eventually(Duration::from_secs(30), needle, || async { self.text().contains(needle).then_some(()) }).await;
    }

    /// Everything written, once the pipe closed.
    fn finish(self) -> String {
        let Gathered { bytes, reader } = self;
        reader.join().unwrap();
        text(&bytes.lock().unwrap())
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_plays_as_mp3(path: &Path, seconds: f64) {
    let (codec, duration) = probe_audio(path);
    assert_eq!(codec, "mp3", "{}", path.display());
    assert!((duration - seconds).abs() <= 0.3, "{} lasts {duration} s, not {seconds}", path.display());
}

#[tokio::test]
async fn convert_makes_mp3s_beside_the_videos_and_reports_the_one_that_failed() {
    let app = TestApp::spawn().await;
    app.add_user(EMAIL, false);
    let shell = Shell::new();
    shell.video("holiday.mp4", Some("clip.mp4"));
    shell.video("beach.mp4", Some("index-at-end.mp4"));
    shell.video("notes.mp4", None);

    let output = shell.run_with_password(&app, &["convert", "holiday.mp4", "beach.mp4", "notes.mp4", "--jobs", "2"]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_plays_as_mp3(&shell.videos.path().join("holiday.mp3"), 10.0);
    assert_plays_as_mp3(&shell.videos.path().join("beach.mp3"), 10.0);
    assert_eq!(shell.files(), ["beach.mp3", "beach.mp4", "holiday.mp3", "holiday.mp4", "notes.mp4"], "no leftovers");

    // One line per file, in the order given; the bad one with the server's reason.
    let token = app.login(EMAIL, PASSWORD).await;
    let jobs = app.get_json(&token, "/jobs").await;
    let notes = jobs["jobs"].as_array().unwrap().iter().find(|job| job["filename"] == "notes.mp4").unwrap();
    let reason = notes["error"].as_str().unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0], "holiday.mp4: done -> holiday.mp3");
    assert_eq!(lines[1], "beach.mp4: done -> beach.mp3");
    assert_eq!(lines[2], format!("notes.mp4: failed: {reason}"));

    // Not on a terminal: plain progress lines (decimal sizes, as on the web page), no bar
    // drawing, and each outcome told once (on standard output, above).
    for line in ["holiday.mp4: uploading (", "holiday.mp4: downloading (", " kB)"] {
        assert!(stderr.contains(line), "no {line:?} in:\n{stderr}");
    }
    for repeated in [": done", ": saved", ": failed", "MiB", "KiB"] {
        assert!(!stderr.contains(repeated), "{repeated:?} in:\n{stderr}");
    }
    assert!(!stderr.contains('\u{1b}'), "no terminal escapes when not on a terminal:\n{stderr}");
    let log = service_log(&app.data_dir);
    assert!(log.contains("upload accepted") && !log.contains('\u{1b}'), "logs without colour off a terminal");

    // The token is cached, owner-only, and a second run uses it: no login, no password.
    let cache = shell.home.path().join("config/mp3converter/tokens.json");
    assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o600);
    let logins = app.metric(LOGINS).await;
    shell.video("again.mp4", Some("clip.mp4"));
    let output = shell.run(&app, &["convert", "again.mp4"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "again.mp4: done -> again.mp3\n");
    assert_eq!(app.metric(LOGINS).await, logins, "the second run logged in again");
}

#[tokio::test]
async fn convert_never_overwrites_an_mp3_without_force_and_wastes_no_upload_on_it() {
    let app = TestApp::spawn().await;
    app.add_user(EMAIL, false);
    let shell = Shell::new();
    shell.video("holiday.mp4", Some("clip.mp4"));
    let out = tempfile::tempdir().unwrap();
    let existing = out.path().join("holiday.mp3");
    std::fs::write(&existing, "my own recording").unwrap();
    let output_dir = out.path().to_str().unwrap();

    // Skipped before logging in (no password needed), which is no failure; a missing video is.
    let output = shell.run(&app, &["convert", "holiday.mp4", "--output", output_dir]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with("holiday.mp4: skipped: ") && stdout.contains("exists (--force overwrites it)"),
        "{stdout}"
    );
    let output = shell.run(&app, &["convert", "holiday.mp4", "missing.mp4", "--output", output_dir]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("missing.mp4: failed: no such file: missing.mp4"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "my own recording");
    assert_eq!(app.metric(UPLOADS).await, 0.0, "nothing was uploaded");

    let output = shell.run_with_password(&app, &["convert", "holiday.mp4", "--output", output_dir, "--force"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_plays_as_mp3(&existing, 10.0);
    let leftovers = std::fs::read_dir(out.path()).unwrap().count();
    assert_eq!(leftovers, 1, "only the MP3 is in --output");
}

#[tokio::test]
async fn another_email_logs_in_again_instead_of_using_the_last_users_token() {
    let app = TestApp::spawn().await;
    app.add_user(EMAIL, false);
    app.add_user(BOB, false);
    let shell = Shell::new();
    shell.video("alices.mp4", Some("clip.mp4"));
    shell.video("bobs.mp4", Some("clip.mp4"));
    assert!(shell.run_with_password(&app, &["convert", "alices.mp4"]).status.success());

    let mut as_bob = shell.command(&app, &["convert", "bobs.mp4", "--password-stdin"]);
    let output = Running::with_input(as_bob.env("MP3C_EMAIL", BOB), format!("{PASSWORD}\n")).wait();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let filenames = |jobs: Value| -> Vec<Value> {
        jobs["jobs"].as_array().unwrap().iter().map(|job| job["filename"].clone()).collect()
    };
    let bobs_token = app.login(BOB, PASSWORD).await;
    assert_eq!(filenames(app.get_json(&bobs_token, "/jobs").await), ["bobs.mp4"]);
    let alices_token = app.login(EMAIL, PASSWORD).await;
    assert_eq!(filenames(app.get_json(&alices_token, "/jobs").await), ["alices.mp4"]);

    // Bob's token is cached now: `jobs` as Bob uses it; as Alice it asks for her password.
    let bobs_jobs = shell.command(&app, &["jobs"]).env("MP3C_EMAIL", BOB).stdin(Stdio::null()).output().unwrap();
    let table = text(&bobs_jobs.stdout);
    assert!(table.contains("bobs.mp4") && !table.contains("alices.mp4"), "{table}");
    let alices_jobs = shell.run(&app, &["jobs"]);
    assert!(!alices_jobs.status.success(), "{}", text(&alices_jobs.stdout));
    assert!(text(&alices_jobs.stderr).contains("--password-stdin"), "{}", text(&alices_jobs.stderr));
}

#[tokio::test]
async fn convert_refuses_to_write_over_its_input_and_converts_a_video_named_twice_once() {
    let app = TestApp::spawn().await;
    app.add_user(EMAIL, false);
    let shell = Shell::new();
    let song = shell.video("song.mp3", Some("clip.mp4"));
    let original = std::fs::read(&song).unwrap();

    // Every file refused: no login (which would ask for a password on a missing terminal).
    let output = shell.run(&app, &["convert", "song.mp3", "./song.mp3", "--force"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(text(&output.stderr), "", "no login was tried");
    let stdout = text(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "song.mp3 is named twice, refused once: {stdout}");
    assert!(stdout.starts_with("song.mp3: failed: its MP3 would be written over the video itself"), "{stdout}");
    assert_eq!(app.metric(LOGINS).await, 0.0);

    shell.video("holiday.mp4", Some("clip.mp4"));
    let videos = shell.videos.path().to_str().unwrap().to_owned();
    let named_twice =
        ["holiday.mp4", "./holiday.mp4", &format!("{videos}/../{}/holiday.mp4", videos.rsplit('/').next().unwrap())];
    let output = shell.run_with_password(&app, &[&["convert"][..], &named_twice, &["song.mp3", "--force"]].concat());
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0], "holiday.mp4: done -> holiday.mp3");
    assert!(lines[1].starts_with("song.mp3: failed: its MP3 would be written over"), "{stdout}");
    assert_eq!(app.metric(UPLOADS).await, 1.0, "one upload for the video named three times");
    assert_eq!(std::fs::read(&song).unwrap(), original, "the input is untouched");
}

#[tokio::test]
async fn jobs_lists_the_callers_jobs_and_download_fetches_an_mp3_once() {
    let app = TestApp::spawn().await;
    let token = app.user_token(EMAIL, false).await;
    let job_id = app.submit(&token, &fixture("clip.mp4")).await;
    let job = app.finished_job(&token, &job_id).await;
    let mp3_fid = job["mp3_fid"].as_str().unwrap();
    let shell = Shell::new();

    let login = shell.run_with_password(&app, &["login"]);
    assert!(login.status.success(), "{}", text(&login.stderr));
    let jobs = shell.run(&app, &["jobs"]);
    let table = text(&jobs.stdout);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("JOB"), "{table}");
    let row = lines.next().unwrap();
    // The duration as a player shows it, and when the job was made (local time, to the second).
    for cell in [job_id.as_str(), "done", "clip.mp4", " 0:10 ", mp3_fid] {
        assert!(row.contains(cell), "no {cell} in {row}");
    }
    let created = row.split_whitespace().nth(1).unwrap_or_default();
    assert!(created.len() == 10 && created.starts_with("20"), "a date after the id: {row}");

    let output = shell.run(&app, &["download", mp3_fid, "--output", "song.mp3"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_plays_as_mp3(&shell.videos.path().join("song.mp3"), 10.0);
    let again = shell.run(&app, &["download", mp3_fid, "--output", "song.mp3"]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("exists"), "{}", text(&again.stderr));
    let unknown = shell.run(&app, &["download", &job_id]);
    assert!(!unknown.status.success());
    assert_eq!(text(&unknown.stderr).matches("error:").count(), 1, "one error line: {}", text(&unknown.stderr));
    assert!(text(&unknown.stderr).contains("`mp3converter jobs` lists"), "{}", text(&unknown.stderr));
    assert_eq!(shell.files(), ["song.mp3"], "no partial files");

    // Logging out ends the kept session: its token is refused, and it is forgotten.
    let kept = std::fs::read_to_string(shell.home.path().join("config/mp3converter/tokens.json")).unwrap();
    let kept: serde_json::Value = serde_json::from_str(&kept).unwrap();
    let kept = kept.as_object().unwrap().values().next().unwrap().as_str().unwrap().to_owned();
    let logout = shell.run(&app, &["logout"]);
    assert!(logout.status.success(), "{}", text(&logout.stderr));
    assert!(text(&logout.stdout).starts_with("logged out of "), "{}", text(&logout.stdout));
    let refused = app.client.get(app.url("/jobs")).bearer_auth(&kept).send().await.unwrap();
    assert_eq!(refused.status(), 401, "the node that ended the session refuses it at once");
    let again = shell.run(&app, &["logout"]);
    assert!(again.status.success() && text(&again.stdout).starts_with("not logged in"), "{}", text(&again.stdout));
}

#[tokio::test]
async fn ctrl_c_mid_conversion_stops_convert_without_leaving_an_mp3_or_a_temporary_file() {
    let app = TestApp::spawn_with(&["--fault-hooks", "true", "--fault-convert-delay-ms", "60000"]).await;
    let token = app.user_token(EMAIL, false).await;
    let shell = Shell::new();
    let child = start_converting_holiday(&shell, &app.url("/"));
    eventually(Duration::from_secs(30), "the upload to be accepted", || async {
        (app.get_json(&token, "/jobs").await["jobs"].as_array()?.len() == 1).then_some(())
    })
    .await;
    let output = interrupt(child).await;
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));
    assert_eq!(shell.files(), ["holiday.mp4"]);
}

/// Waits (at most the 5 s the design promises) for `token` to be refused as a session that
/// ended with `why`.
async fn session_ends(app: &TestApp, token: &str, why: &str) {
    eventually(Duration::from_secs(5), &format!("the session to end with {why}"), || async {
        let response = app.client.post(app.url("/validate")).bearer_auth(token).send().await.unwrap();
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        (status == 401 && body["error"]["code"] == "session_ended").then_some(())
    })
    .await;
}

#[tokio::test]
async fn user_commands_list_change_and_delete_accounts() {
    let app = TestApp::spawn().await;
    app.add_user("ann@example.com", false);
    app.add_user("bob@example.com", true);
    let list = |app: &TestApp| text(&app.user_command(&["list"], "").stdout);
    assert_eq!(list(&app), "EMAIL            ROLE\nann@example.com  user\nbob@example.com  admin\n");

    let anns = app.login("ann@example.com", PASSWORD).await;
    let bobs = app.login("bob@example.com", PASSWORD).await;
    let changed = app.user_command(&["passwd", "ann@example.com", "--password-stdin"], "a new long password\n");
    assert!(changed.status.success(), "{}", text(&changed.stderr));
    session_ends(&app, &anns, "a password change").await;
    let anns = app.login("ann@example.com", "a new long password").await;
    let old = app.client.post(app.url("/login")).basic_auth("ann@example.com", Some(PASSWORD)).send().await.unwrap();
    assert_eq!(old.status(), 401);

    assert!(app.user_command(&["set-admin", "ann@example.com"], "").status.success());
    assert!(app.user_command(&["set-admin", "bob@example.com", "--revoke"], "").status.success());
    assert_eq!(list(&app), "EMAIL            ROLE\nann@example.com  admin\nbob@example.com  user\n");
    session_ends(&app, &anns, "a new role").await;
    session_ends(&app, &bobs, "an admin role revoked").await;

    let bobs = app.login("bob@example.com", PASSWORD).await;
    assert!(app.user_command(&["delete", "bob@example.com"], "").status.success());
    session_ends(&app, &bobs, "the user's deletion").await;
    assert_eq!(list(&app), "EMAIL            ROLE\nann@example.com  admin\n");
    let gone = app.client.post(app.url("/login")).basic_auth("bob@example.com", Some(PASSWORD)).send().await.unwrap();
    assert_eq!(gone.status(), 401);

    // Errors are precise, and printed once.
    for args in [
        &["delete", "bob@example.com"][..],
        &["set-admin", "nobody@example.com"],
        &["passwd", "nobody@example.com", "--password-stdin"],
    ] {
        let output = app.user_command(args, "long enough password\n");
        let stderr = text(&output.stderr);
        assert!(!output.status.success());
        assert_eq!(stderr.lines().collect::<Vec<_>>(), [format!("error: there is no user {}", args[1])], "{args:?}");
    }
    // Without --password-stdin and without a terminal, no password is guessed from stdin.
    let no_terminal = app.user_command(&["add", "cat@example.com"], "long enough password\n");
    assert!(text(&no_terminal.stderr).contains("--password-stdin"), "{}", text(&no_terminal.stderr));
}

#[test]
fn user_add_help_lists_only_what_adding_a_user_needs() {
    let output = Command::new(binary()).args(["user", "add", "--help"]).output().unwrap();
    let help = text(&output.stdout);
    for flag in ["--admin", "--password-stdin", "--data-dir", "--mysql-url", "--profile", "[default: ./data]"] {
        assert!(help.contains(flag), "no {flag} in:\n{help}");
    }
    for flag in ["--listen", "--amqp-url", "--converters", "--smtp-url"] {
        assert!(!help.contains(flag), "{flag} in:\n{help}");
    }
}

#[tokio::test]
async fn login_asks_for_the_password_on_a_terminal_without_echo_and_says_why_it_was_refused() {
    let app = TestApp::spawn().await;
    app.add_user(EMAIL, false);
    let shell = Shell::new();
    // A terminal: `script` runs the command on a pseudo-terminal fed from our pipe.
    let command = format!("{} login --server {}", binary(), app.url("/"));
    let mut script = Command::new("script");
    script.args(["-qec", &command, "/dev/null"]).env("HOME", shell.home.path()).env("MP3C_EMAIL", EMAIL);
    let mut child = Running::spawn(script.env_remove("XDG_CONFIG_HOME"));
    let terminal = Gathered::start(child.stdout());
    terminal.wait_for(&format!("password for {EMAIL}: ")).await;
    writeln!(child.stdin(), "{PASSWORD}").unwrap();
    assert!(child.exit().await.status.success());
    let terminal = terminal.finish();
    assert!(terminal.contains("logged in to"), "{terminal}");
    assert!(!terminal.contains(PASSWORD), "the password was echoed: {terminal}");
    assert!(shell.home.path().join(".config/mp3converter/tokens.json").exists(), "cached under ~/.config");

    let refused =
        Running::with_input(&mut shell.command(&app, &["login", "--password-stdin"]), "not the password\n").wait();
    assert!(!refused.status.success());
    assert_eq!(
        text(&refused.stderr),
        "error: login refused: invalid credentials (401 Unauthorized, invalid_credentials)\n"
    );
}

#[test]
fn a_node_that_cannot_start_says_why_once() {
    let data = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let output = Command::new(binary())
        .args(["up", "--listen", &taken.local_addr().unwrap().to_string(), "--data-dir"])
        .arg(data.path())
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert_eq!(stderr.matches("in use").count(), 1, "the error once, after logging began:\n{stderr}");
    assert!(stderr.lines().last().unwrap().starts_with("error: "), "{stderr}");
}

#[tokio::test]
async fn convert_polls_the_job_when_the_server_gives_no_event_stream() {
    let app = TestApp::spawn().await;
    app.add_user(EMAIL, false);
    // An older server without streams, and one with as many followers as it takes.
    for refusal in [StatusCode::NOT_FOUND, StatusCode::SERVICE_UNAVAILABLE] {
        let proxy = Proxy::start(&app, Twist::RefusedEvents(refusal)).await;
        let shell = Shell::new();
        let output = start_converting_holiday(&shell, &proxy.url()).exit().await;
        assert!(output.status.success(), "{refusal}: {}", text(&output.stderr));
        assert_plays_as_mp3(&shell.videos.path().join("holiday.mp3"), 10.0);
        assert_eq!(proxy.count(|line| line.ends_with("/events")), 1, "{refusal}: asked for the events once");
        let polls = proxy.count(|line| line.starts_with("GET /jobs/") && !line.ends_with("/events"));
        assert!(polls >= 1, "{refusal}: the job was polled");
    }
}

#[tokio::test]
async fn convert_rides_out_a_gateway_restart_while_following_a_job() {
    let grace = ["--shutdown-grace-seconds", "1"];
    let mut app =
        TestApp::spawn_with(&[&SLOW[..2], &["--fault-convert-delay-ms", "120000"], &grace[..]].concat()).await;
    let token = app.user_token(EMAIL, false).await;
    let shell = Shell::new();
    let mut child = start_converting_holiday(&shell, &app.url("/"));
    let stderr = Gathered::start(child.stderr());
    stderr.wait_for("holiday.mp4: converting").await;

    assert!(app.terminate().success());
    stderr.wait_for("holiday.mp4: the server is away").await;
    app.restart_at_same_address(&SLOW);
    let output = child.exit().await;
    let stderr = stderr.finish();
    assert!(output.status.success(), "{stderr}");
    assert_eq!(text(&output.stdout), "holiday.mp4: done -> holiday.mp3\n");
    assert_plays_as_mp3(&shell.videos.path().join("holiday.mp3"), 10.0);
    let jobs = app.get_json(&token, "/jobs").await;
    assert_eq!(jobs["jobs"][0]["state"], "done", "{jobs}");
}

#[tokio::test]
async fn a_token_that_expires_mid_run_fails_the_file_saying_how_to_log_in_again() {
    let app = TestApp::spawn_with(&[&SLOW[..2], &["--fault-convert-delay-ms", "10000"]].concat()).await;
    app.add_user(EMAIL, false);
    // Valid for the upload, expired (with the server's 5 s leeway) before the download.
    let token = forge(&json!({ "username": EMAIL, "iat": now(), "exp": now() + 2, "admin": false }), JWT_SECRET);
    let shell = Shell::new();
    shell.video("holiday.mp4", Some("clip.mp4"));
    let output = shell.command(&app, &["convert", "holiday.mp4"]).env("MP3C_TOKEN", token).output().unwrap();
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("holiday.mp4: failed: "), "{stdout}");
    for part in ["token_expired", "run `mp3converter login`, then run this command again"] {
        assert!(stdout.contains(part), "no {part:?} in {stdout}");
    }
    assert_eq!(shell.files(), ["holiday.mp4"]);
}

#[tokio::test]
async fn ctrl_c_mid_download_leaves_neither_the_mp3_nor_its_temporary_file() {
    let app = TestApp::spawn().await;
    app.add_user(EMAIL, false);
    let proxy = Proxy::start(&app, Twist::StalledDownloads).await;
    let shell = Shell::new();
    let child = start_converting_holiday(&shell, &proxy.url());
    eventually(Duration::from_secs(30), "the download to begin", || async {
        shell.files().iter().any(|name| name.starts_with(".holiday.mp3.") && name.ends_with(".part")).then_some(())
    })
    .await;
    let output = interrupt(child).await;
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));
    assert_eq!(shell.files(), ["holiday.mp4"]);
}

/// Logging in checks the server first: nothing is asked for a server that is not there, and
/// without a terminal the email's error says how to give it.
#[tokio::test]
async fn a_login_names_an_unreachable_server_before_asking_for_anything() {
    let shell = Shell::new();
    shell.video("holiday.mp4", Some("clip.mp4"));
    let nowhere = format!("http://127.0.0.1:{}/", crate::servers::free_port());
    let mut command = shell.command_at(&nowhere, &["convert", "holiday.mp4"]);
    let output = command.env_remove("MP3C_EMAIL").stdin(Stdio::null()).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot reach the service at {nowhere}")), "{stderr}");
    assert!(!stderr.contains("terminal"), "{stderr}");

    let app = TestApp::spawn().await;
    let output = shell.command(&app, &["login"]).env_remove("MP3C_EMAIL").stdin(Stdio::null()).output().unwrap();
    let stderr = text(&output.stderr);
    assert!(stderr.contains("no terminal to ask for the email on: set MP3C_EMAIL or pass --email"), "{stderr}");
}
