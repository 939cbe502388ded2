//! Bounded work per request: login floods, full password-check queues, stalled and too many
//! uploads; and the secrets and files a node must keep to itself (JWT key length, owner-only
//! database and outbox).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{PASSWORD, TestApp, binary, client_from, eventually, service_log};
use crate::openapi::assert_documented_error;

/// The `Retry-After` of a refusal, in seconds (panics when it is missing or not a number).
fn retry_after(response: &reqwest::Response) -> u64 {
    let value = response.headers().get("retry-after").expect("a refusal says when to retry");
    value.to_str().unwrap().parse().unwrap()
}

async fn status_and_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    if matches!(status, 429 | 503) {
        assert!(retry_after(&response) >= 1);
    }
    let body: Value = response.json().await.unwrap_or_default();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_login_flood_is_refused_cheaply_while_another_client_logs_in() {
    // The defaults are under test: a flood must hit them.
    let app = TestApp::spawn().await;
    app.add_user("victim@example.com", false);
    app.add_user("other@example.com", false);

    let flood = futures_util::future::join_all((0..200).map(|_| async {
        let request = app.client.post(app.url("/login")).basic_auth("victim@example.com", Some("a wrong guess"));
        status_and_code(request.send().await.unwrap()).await
    }));
    // Another client: another address (all of 127.0.0.0/8 is this machine) and account.
    let other = client_from([127, 0, 0, 2]);
    let correct_logins = async {
        let mut latencies = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let response =
                other.post(app.url("/login")).basic_auth("other@example.com", Some(PASSWORD)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{}", service_log(&app.data_dir));
            latencies.push(started.elapsed());
        }
        latencies
    };
    let (flood, latencies) = tokio::join!(flood, correct_logins);

    // What the limits promise: the flood gets only a burst of password checks (its address's
    // and the account's), so a correct login waits for a few checks at most, not for 200. A check
    // takes a fraction of a second alone and several times that beside the suite's conversions on
    // two cores; 200 checks, two at a time, would take most of a minute.
    for latency in latencies {
        assert!(latency < Duration::from_secs(15), "a correct login took {latency:?} during the flood");
    }
    let unexpected: Vec<_> = flood.iter().filter(|(status, _)| !matches!(status, 401 | 429 | 503)).collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let verified = flood.iter().filter(|(status, _)| *status == 401).count();
    // Only the account's burst of failed guesses (5 by default) gets to argon2.
    assert!(verified <= 6, "{verified} wrong guesses were verified");
    assert!(flood.iter().any(|(_, code)| code == "too_many_logins"));
    let peak = app.memory_mib("VmHWM");
    assert!(peak < 150.0, "the service peaked at {peak:.0} MiB");
}

/// Wrong guesses at `account`'s password from `client`, with a forged `X-Forwarded-For` each
/// (a different address every time); the statuses and error codes.
async fn forged_guesses(client: &reqwest::Client, url: &str, account: &str, count: u8) -> Vec<(u16, String)> {
    let guesses = (0..count).map(|n| async move {
        let forged = format!("203.0.113.{n}, 198.51.100.{n}");
        let request = client.post(url).basic_auth(account, Some("a wrong guess")).header("x-forwarded-for", forged);
        status_and_code(request.send().await.unwrap()).await
    });
    futures_util::future::join_all(guesses).await
}

fn verified(answers: &[(u16, String)]) -> usize {
    let unexpected: Vec<_> = answers.iter().filter(|(status, _)| !matches!(status, 401 | 429)).collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    answers.iter().filter(|(status, _)| *status == 401).count()
}

#[tokio::test]
async fn behind_a_real_reverse_proxy_each_client_is_limited_as_itself_and_the_owner_is_never_locked_out() {
    // nginx connects from 127.0.0.1, the only trusted proxy; clients use other loopback addresses.
    // The account's ceiling refills at 1 a minute here (10 by default), so that a slow machine,
    // on which the guesses below take a minute, still passes it with the guesses it counts.
    let ceiling = ["--account-failed-login-burst", "12", "--account-failed-logins-per-minute", "1"];
    let app = TestApp::spawn_with(&[&["--trusted-proxies", "127.0.0.1/32"][..], &ceiling].concat()).await;
    let nginx = crate::servers::Nginx::start(&app.address).await;
    for user in ["victim@example.com", "other@example.com"] {
        app.add_user(user, false);
    }
    let login = nginx.url("/login");

    // One client behind the proxy, forging a new address in every request: limited as itself,
    // so only its burst of 5 wrong guesses on the account reaches the password check.
    let attacker = client_from([127, 0, 0, 2]);
    let answers = forged_guesses(&attacker, &login, "victim@example.com", 40).await;
    assert!((1..=5).contains(&verified(&answers)), "{answers:?}");
    // A direct client cannot choose its address either: the header of a peer that is not a
    // trusted proxy is ignored.
    let direct = client_from([127, 0, 0, 3]);
    let answers = forged_guesses(&direct, &app.url("/login"), "victim@example.com", 40).await;
    assert!(verified(&answers) <= 5, "{answers:?}");
    assert!(answers.iter().any(|(_, code)| code == "too_many_logins"), "{answers:?}");

    // Right after the flood, another user and the flooded account's owner, each from an
    // address of their own behind the proxy, log in at once.
    for (address, user) in [([127, 0, 0, 4], "other@example.com"), ([127, 0, 0, 5], "victim@example.com")] {
        let started = Instant::now();
        let response = client_from(address).post(&login).basic_auth(user, Some(PASSWORD)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{user}: {}", service_log(&app.data_dir));
        assert!(started.elapsed() < Duration::from_secs(5), "{user} waited {:?}", started.elapsed());
    }

    // Guessing from many addresses passes the account's ceiling (12 failures, counted with the
    // flood's): from then on an address that has failed waits, and a new one has a single guess.
    for n in 10..18 {
        forged_guesses(&client_from([127, 0, 0, n]), &login, "victim@example.com", 2).await;
    }
    let answers = forged_guesses(&client_from([127, 0, 0, 10]), &login, "victim@example.com", 1).await;
    assert_eq!(answers[0].1, "too_many_logins", "an address that failed before guessed again past the ceiling");
    let answers = forged_guesses(&client_from([127, 0, 0, 20]), &login, "victim@example.com", 3).await;
    assert_eq!(verified(&answers), 1, "{answers:?}");
    let response = client_from([127, 0, 0, 21]).post(&login).basic_auth("victim@example.com", Some(PASSWORD));
    assert_eq!(response.send().await.unwrap().status(), 200, "the owner was locked out past the ceiling");
    // Every refusal was logged with the client's own address, not the proxy's or a forged one.
    let log = service_log(&app.data_dir);
    assert!(log.contains("client=127.0.0.20"), "{log}");
    assert!(!log.contains("client=203.0.113.") && !log.contains("client=198.51.100."), "{log}");
}

#[tokio::test]
async fn past_the_password_check_queue_a_login_is_told_busy_and_the_pool_recovers() {
    let app = TestApp::spawn_with(&[
        "--login-concurrency",
        "1",
        "--login-queue",
        "1",
        "--address-login-burst",
        "1000",
        "--address-logins-per-minute",
        "1000",
    ])
    .await;
    app.add_user("real@example.com", false);
    // Unknown users, each their own account: only the queue can hold them back, and their
    // checks (the timing equaliser) take a place like any other.
    let app = &app;
    let answers = futures_util::future::join_all((0..20).map(|n| async move {
        let request = app.client.post(app.url("/login")).basic_auth(format!("nobody{n}@example.com"), Some("x"));
        status_and_code(request.send().await.unwrap()).await
    }))
    .await;
    let unexpected: Vec<_> = answers.iter().filter(|(status, _)| !matches!(status, 401 | 503)).collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let busy = answers.iter().filter(|(status, code)| *status == 503 && code == "busy").count();
    assert!((1..=18).contains(&busy), "{answers:?}");
    assert_documented_error("POST", "/login", 503, "busy");
    app.login("real@example.com", PASSWORD).await;
}

/// Opens an upload and sends its head and the first `sent` bytes of a much longer file.
pub async fn start_upload(app: &TestApp, token: &str, sent: usize) -> TcpStream {
    let boundary = "limits-test-boundary";
    let part_head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.mp4\"\r\n\
         Content-Type: video/mp4\r\n\r\n"
    );
    let declared = part_head.len() + 10 * 1024 * 1024;
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {declared}\r\n\r\n",
        app.address
    );
    let mut stream = TcpStream::connect(&app.address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(part_head.as_bytes()).await.unwrap();
    stream.write_all(&vec![0x5a; sent]).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

/// Sends a multipart upload whose body is `prefix` and then `junk_mib` MiB of `x` (a header
/// that never ends, or a body without its boundary), as fast as the server takes it; the
/// server's answer (status line and body), once it stops reading.
async fn endless_body(app: &TestApp, token: &str, prefix: &str, junk_mib: usize) -> String {
    let declared = prefix.len() + junk_mib * 1024 * 1024;
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=endless\r\nContent-Length: {declared}\r\n\r\n{prefix}",
        app.address
    );
    let mut stream = TcpStream::connect(&app.address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..junk_mib * 16 {
            // The server stops reading once it has refused: the rest goes nowhere.
            if writer.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), reader.read_to_end(&mut answer)).await;
    sender.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_part_header_that_never_ends_and_a_body_without_its_boundary_are_refused_with_memory_flat() {
    let app = TestApp::spawn().await;
    let token = app.user_token("endless@example.com", false).await;
    let before = app.memory_mib("VmHWM");
    let endless_header = "--endless\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\nX-Pad: ";
    for prefix in [endless_header, ""] {
        let answer = endless_body(&app, &token, prefix, 64).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{prefix:?}: {answer}");
        assert!(answer.contains("preamble_too_large"), "{answer}");
    }
    assert_documented_error("POST", "/upload", 400, "preamble_too_large");
    // 128 MiB sent; what the node kept of it is a drain buffer at most.
    let peak = app.memory_mib("VmHWM");
    assert!(peak - before < 32.0, "the node's peak grew from {before:.0} MiB to {peak:.0} MiB");
    // A real upload still goes through, its first headers and file data read together.
    let clip = std::fs::read(crate::helpers::fixture("clip.mp4")).unwrap();
    assert_eq!(app.upload_bytes(&token, "after.mp4", clip).await.status(), 202);
}

#[tokio::test]
async fn an_upload_that_drips_without_ever_stalling_is_cut_off_for_its_rate_and_frees_its_slot() {
    let app = TestApp::spawn_with(&[
        "--upload-stall-seconds",
        "5",
        "--upload-rate-grace-seconds",
        "3",
        "--upload-min-bytes-per-second",
        "2000",
        "--max-uploads-per-user",
        "1",
    ])
    .await;
    let token = app.user_token("drip@example.com", false).await;
    let upload = start_upload(&app, &token, 1024).await;
    let (mut reader, mut writer) = upload.into_split();
    // A byte every half second: never 5 s without one, but far under 2000 a second.
    let dripping = tokio::spawn(async move {
        while writer.write_all(b"z").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), reader.read_to_end(&mut answer)).await;
    dripping.abort();
    assert!(read.is_ok(), "the dripping upload was never cut off");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("upload_too_slow"), "{answer}");
    assert_documented_error("POST", "/upload", 408, "upload_too_slow");
    // Its slot (the user's only one) is free again.
    let clip = std::fs::read(crate::helpers::fixture("clip.mp4")).unwrap();
    assert_eq!(app.upload_bytes(&token, "after.mp4", clip).await.status(), 202);
}

#[tokio::test]
async fn event_streams_are_capped_per_user_and_per_address() {
    let app = TestApp::spawn_with(&[
        "--max-event-streams-per-user",
        "2",
        "--max-event-streams-per-address",
        "3",
        "--fault-hooks",
        "true",
        "--fault-convert-delay-ms",
        "120000",
    ])
    .await;
    let (ann, bob) = (app.user_token("ann@example.com", false).await, app.user_token("bob@example.com", false).await);
    // Jobs that stay unfinished, so that their streams stay open.
    let ann_job = app.submit(&ann, &crate::helpers::fixture("clip.mp4")).await;
    let bob_job = app.submit(&bob, &crate::helpers::fixture("clip.mp4")).await;
    let follow = |client: &reqwest::Client, token: &str, job: &str| {
        client.get(app.url(&format!("/jobs/{job}/events"))).bearer_auth(token).send()
    };
    let here = client_from([127, 0, 0, 1]);
    let mut ann_streams = Vec::new();
    for _ in 0..2 {
        let stream = follow(&here, &ann, &ann_job).await.unwrap();
        assert_eq!(stream.status(), 200);
        ann_streams.push(stream);
    }
    let refused = follow(&here, &ann, &ann_job).await.unwrap();
    assert_eq!(status_and_code(refused).await, (429, "too_many_streams".to_owned()), "ann's third");
    assert_documented_error("GET", "/jobs/{id}/events", 429, "too_many_streams");
    let _bobs = follow(&here, &bob, &bob_job).await.unwrap();
    let refused = follow(&here, &bob, &bob_job).await.unwrap();
    assert_eq!(status_and_code(refused).await, (429, "too_many_streams".to_owned()), "the address's fourth");
    let elsewhere = follow(&client_from([127, 0, 0, 2]), &bob, &bob_job).await.unwrap();
    assert_eq!(elsewhere.status(), 200, "bob from another address");
    drop(ann_streams.pop());
    eventually(Duration::from_secs(10), "ann's ended stream to free its place", || async {
        (follow(&here, &ann, &ann_job).await.unwrap().status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn connections_are_capped_per_address() {
    let app = TestApp::spawn_with(&["--max-connections-per-address", "4"]).await;
    // Four from one address; the fifth is told why and closed, another address is not.
    let server: std::net::SocketAddr = app.address.parse().unwrap();
    let connect_from = |last: u8| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, last], 0))).unwrap();
        socket.connect(server).await.unwrap()
    };
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from(3).await);
    }
    let mut fifth = connect_from(3).await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), fifth.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 429") && answer.contains("too_many_connections"), "{answer}");
    let other = client_from([127, 0, 0, 4]).get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(other.status(), 200);
    drop(held.pop());
    eventually(Duration::from_secs(10), "a closed connection to free its place", || async {
        let response = client_from([127, 0, 0, 3]).get(app.url("/healthz")).send().await;
        response.is_ok_and(|response| response.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn backend_urls_with_passwords_are_refused_as_flags_and_taken_from_files() {
    let refused = Command::new(binary())
        .args(["user", "list", "--profile", "cluster", "--mysql-url", "mysql://u:hunter2@127.0.0.1:1/x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("MP3C_MYSQL_URL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password is repeated: {stderr}");
    let refused = Command::new(binary()).args(["up", "--amqp-url=amqp://a:b@127.0.0.1:1/"]).output().unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("MP3C_AMQP_URL"));

    // The same URL from a file works.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mysql-url");
    std::fs::write(&file, format!("{}\n", crate::servers::mysql_url().await)).unwrap();
    let listed = Command::new(binary())
        .args(["user", "list", "--profile", "cluster", "--mysql-url-file"])
        .arg(&file)
        .env_remove("MP3C_MYSQL_URL")
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
}

#[tokio::test]
async fn metrics_can_have_an_address_of_their_own_and_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("metrics-token");
    std::fs::write(&token_file, "a scraper's token\n").unwrap();
    let port = crate::helpers::free_port();
    let listen = format!("127.0.0.1:{port}");
    let app =
        TestApp::spawn_with(&["--metrics-listen", &listen, "--metrics-token-file", token_file.to_str().unwrap()]).await;
    let on_api = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(status_and_code(on_api).await, (404, "not_found".to_owned()), "the API's address still serves metrics");
    let metrics = format!("http://{listen}/metrics");
    let without = app.client.get(&metrics).send().await.unwrap();
    assert_eq!(status_and_code(without).await, (401, "missing_token".to_owned()));
    let wrong = app.client.get(&metrics).bearer_auth("a guess").send().await.unwrap();
    assert_eq!(status_and_code(wrong).await, (401, "invalid_token".to_owned()));
    let scraped = app.client.get(&metrics).bearer_auth("a scraper's token").send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("mp3c_http_requests_total"));
    // Nothing but the metrics there.
    let other = app.client.get(format!("http://{listen}/healthz")).send().await.unwrap();
    assert_eq!(other.status(), 404);
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

#[tokio::test]
async fn a_stalled_upload_is_cut_off_and_leaves_no_file() {
    let stall = Duration::from_secs(2);
    let app = TestApp::spawn_with(&["--upload-stall-seconds", "2"]).await;
    let token = app.user_token("slow@example.com", false).await;
    let (videos, scratch) = (app.data_dir.join("blobs/videos"), app.data_dir.join("blobs/tmp"));

    let mut upload = start_upload(&app, &token, 64 * 1024).await;
    let last_byte_sent = Instant::now();
    eventually(Duration::from_secs(30), "the upload to reach the blob store", || async {
        (files_in(&scratch) == 1).then_some(())
    })
    .await;

    let mut answer = Vec::new();
    // The promise is a lower bound (not before the stall time); the deadline only ends a hang.
    tokio::time::timeout(stall * 30, upload.read_to_end(&mut answer))
        .await
        .expect("the stalled upload was cut off")
        .unwrap();
    let waited = last_byte_sent.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("upload_stalled"), "{answer}");
    assert_documented_error("POST", "/upload", 408, "upload_stalled");
    assert!(waited >= stall, "cut off after {waited:?}, before the stall time");
    eventually(Duration::from_secs(30), "the partial upload to be removed", || async {
        (files_in(&scratch) == 0 && files_in(&videos) == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn uploads_past_a_users_cap_get_429_and_past_the_nodes_cap_503() {
    // The default per-user cap (4), and a node cap just above it.
    let app = TestApp::spawn_with(&["--max-concurrent-uploads", "5"]).await;
    let ann = app.user_token("ann@example.com", false).await;
    let bob = app.user_token("bob@example.com", false).await;
    let cid = app.user_token("cid@example.com", false).await;
    let scratch = app.data_dir.join("blobs/tmp");
    let in_progress = |count: usize| {
        let scratch = scratch.clone();
        eventually(Duration::from_secs(10), "uploads to be in progress", move || {
            let found = files_in(&scratch);
            async move { (found == count).then_some(()) }
        })
    };

    let mut anns = Vec::new();
    for _ in 0..4 {
        anns.push(start_upload(&app, &ann, 1024).await);
    }
    in_progress(4).await;
    let refused = app.upload_bytes(&ann, "fifth.mp4", vec![1; 1024]).await;
    assert_eq!(status_and_code(refused).await, (429, "too_many_uploads".to_owned()));
    assert_documented_error("POST", "/upload", 429, "too_many_uploads");

    let _bobs = start_upload(&app, &bob, 1024).await;
    in_progress(5).await;
    let refused = app.upload_bytes(&cid, "first.mp4", vec![1; 1024]).await;
    assert_eq!(status_and_code(refused).await, (503, "busy".to_owned()));
    assert_documented_error("POST", "/upload", 503, "busy");

    // An upload that ends, however, frees its slot.
    drop(anns.pop());
    eventually(Duration::from_secs(10), "a slot to be free again", || async {
        (app.upload_bytes(&cid, "first.mp4", vec![1; 1024]).await.status() == 202).then_some(())
    })
    .await;
}

/// Runs `command`, which must exit within `within` (else it is killed and the test fails), and
/// returns whether it succeeded and its standard error.
fn run_to_exit(command: &mut Command, within: Duration) -> (bool, String) {
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the service started anyway");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.success(), stderr)
}

#[test]
fn a_jwt_secret_shorter_than_32_bytes_stops_the_start_and_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("jwt");
    std::fs::write(&secret_file, "one short of the minimum: 31 by\n").unwrap();
    let start = |env_secret: Option<&str>| {
        let mut command = Command::new(binary());
        command.args(["up", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path().join("data"));
        command.arg("--jwt-secret-file").arg(&secret_file).env_remove("MP3C_JWT_SECRET");
        if let Some(secret) = env_secret {
            command.env("MP3C_JWT_SECRET", secret);
        }
        run_to_exit(&mut command, Duration::from_secs(30))
    };
    let (started, stderr) = start(Some("short"));
    assert!(!started && stderr.contains("MP3C_JWT_SECRET") && stderr.contains("at least 32"), "{stderr}");
    let (started, stderr) = start(None);
    assert!(!started && stderr.contains("--jwt-secret-file") && stderr.contains("31 bytes long"), "{stderr}");
}

#[tokio::test]
async fn the_database_the_outbox_and_every_video_and_mp3_are_readable_by_the_owner_only() {
    let mut app = TestApp::spawn().await;
    let token = app.user_token("private@example.com", false).await;
    let clip = std::fs::read(crate::helpers::fixture("clip.mp4")).unwrap();
    let response = app.upload_bytes(&token, "private.mp4", clip).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let job = app.finished_job(&token, body["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "done", "{job}");
    let (video, mp3) = (format!("blobs/videos/{}", job["video_fid"]), format!("blobs/mp3s/{}", job["mp3_fid"]));
    let (video, mp3) = (video.replace('"', ""), mp3.replace('"', ""));
    let data_dir = app.data_dir.clone();
    let mode = |name: &str| std::fs::metadata(data_dir.join(name)).unwrap().permissions().mode() & 0o777;
    // The -wal and -shm files exist while the database is open.
    for file in ["mp3converter.db", "mp3converter.db-wal", "mp3converter.db-shm", &video, &mp3] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
    for folder in ["outbox", "blobs", "blobs/videos", "blobs/mp3s", "blobs/tmp", "scratch"] {
        assert_eq!(mode(folder), 0o700, "{folder}");
    }

    // A data folder an older version left open to everyone is tightened at start, and says so.
    for (path, open) in [("blobs", 0o755), ("blobs/mp3s", 0o755), (mp3.as_str(), 0o644)] {
        std::fs::set_permissions(data_dir.join(path), std::fs::Permissions::from_mode(open)).unwrap();
    }
    app.restart_with(&[]);
    assert_eq!((mode("blobs"), mode("blobs/mp3s"), mode(&mp3)), (0o700, 0o700, 0o600));
    let log = service_log(&data_dir);
    assert!(log.contains("made readable by their owner only") && log.contains("tightened=3"), "{log}");
}
