//! Benchmarks, each a ratio against a baseline measured in the same run:
//!
//! 1. conversion: the in-process converter against the ffmpeg CLI on the same 60 s 720p file;
//! 2. pipeline: jobs through the running service against parallel ffmpeg CLI processes;
//! 3. token validation: our validation against parsing the same claims as plain JSON;
//! 4. memory: peak RSS of the service while a 1 GiB file is uploaded, against its idle RSS.
//!
//! Run with `cargo bench`; results are kept in BENCHMARKS.md. Under `cargo test` this binary
//! only says how to run it.

#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../tests/support/servers.rs"]
mod servers;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use helpers::{TestApp, fixture};
use mp3converter::security::token::TokenKeys;
use mp3converter::transcode::{StopSignal, TranscodeOptions, transcode};

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("benchmarks run with `cargo bench`");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut rows = Vec::new();
    rows.extend(conversion());
    rows.extend(runtime.block_on(pipeline()));
    rows.extend(token_validation());
    rows.extend(runtime.block_on(upload_memory()));
    println!("\n| benchmark | ours | baseline | ratio | target |\n|---|---|---|---|---|");
    for row in rows {
        println!("| {} | {} | {} | {} | {} |", row.name, row.ours, row.baseline, row.ratio, row.target);
    }
}

struct Row {
    name: &'static str,
    ours: String,
    baseline: String,
    ratio: String,
    target: &'static str,
}

/// CPU seconds used by this process and by its waited-for children, from /proc/self/stat.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<f64> =
        stat.rsplit(')').next().unwrap().split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
    // After the command name: utime is field 14 of the whole line, so index 11 here.
    let ticks = clock_ticks();
    ((fields[11] + fields[12]) / ticks, (fields[13] + fields[14]) / ticks)
}

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(100.0)
}

fn ffmpeg_cli(input: &Path, output: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(input)
        .args(["-vn", "-c:a", "libmp3lame", "-b:a", "192k"])
        .arg(output)
        .status()
        .unwrap();
    assert!(status.success());
}

const ROUNDS: usize = 3;

fn conversion() -> Vec<Row> {
    let input = fixture("minute-720p.mp4");
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.mp3");
    let options = TranscodeOptions { bit_rate: 192_000 };
    let (mut ours_cpu, mut ours_wall, mut cli_cpu, mut cli_wall) = (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        let (cpu_before, _) = cpu_seconds();
        let started = Instant::now();
        let stop = StopSignal::new(Instant::now() + Duration::from_secs(600));
        transcode(&input, &output, options, &stop).unwrap();
        ours_wall = ours_wall.min(started.elapsed().as_secs_f64());
        ours_cpu = ours_cpu.min(cpu_seconds().0 - cpu_before);

        let (_, children_before) = cpu_seconds();
        let started = Instant::now();
        ffmpeg_cli(&input, &output);
        cli_wall = cli_wall.min(started.elapsed().as_secs_f64());
        cli_cpu = cli_cpu.min(cpu_seconds().1 - children_before);
    }
    vec![
        Row {
            name: "conversion CPU, 60 s 720p (best of 3)",
            ours: format!("{ours_cpu:.2} s"),
            baseline: format!("{cli_cpu:.2} s (ffmpeg CLI)"),
            ratio: format!("{:.2}", ours_cpu / cli_cpu),
            target: "<= 1.0",
        },
        Row {
            name: "conversion wall, 60 s 720p (best of 3)",
            ours: format!("{ours_wall:.2} s"),
            baseline: format!("{cli_wall:.2} s (ffmpeg CLI)"),
            ratio: format!("{:.2}", ours_wall / cli_wall),
            target: "",
        },
    ]
}

const PIPELINE_JOBS: usize = 8;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn pipeline() -> Vec<Row> {
    let input = fixture("minute-720p.mp4");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());

    // Baseline: the same files through `cores` parallel ffmpeg CLI processes.
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut baseline_latencies = Vec::new();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..cores)
            .map(|_| {
                scope.spawn(|| {
                    let mut latencies = Vec::new();
                    while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < PIPELINE_JOBS {
                        let output = dir.path().join(format!("{}.mp3", latencies.len()));
                        ffmpeg_cli(&input, &output);
                        latencies.push(started.elapsed().as_secs_f64());
                    }
                    latencies
                })
            })
            .collect();
        for worker in workers {
            baseline_latencies.extend(worker.join().unwrap());
        }
    });
    let baseline_wall = started.elapsed().as_secs_f64();

    // Ours: upload all, then wait for every job.
    let app = TestApp::spawn_with(&["--converters", &cores.to_string()]).await;
    let token = app.user_token("bench@example.com", false).await;
    let started = Instant::now();
    let mut jobs = Vec::new();
    for _ in 0..PIPELINE_JOBS {
        jobs.push(app.submit(&token, &input).await);
    }
    let mut latencies = Vec::new();
    for job in &jobs {
        let done = app.finished_job(&token, job).await;
        assert_eq!(done["state"], "done");
        latencies.push(started.elapsed().as_secs_f64());
    }
    let wall = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    baseline_latencies.sort_by(f64::total_cmp);
    let throughput = PIPELINE_JOBS as f64 / wall;
    let baseline_throughput = PIPELINE_JOBS as f64 / baseline_wall;
    vec![
        Row {
            name: "pipeline throughput, 8 x 60 s 720p, upload to done",
            ours: format!("{throughput:.2} jobs/s"),
            baseline: format!("{baseline_throughput:.2} jobs/s ({cores} parallel ffmpeg CLI)"),
            ratio: format!("{:.2}", throughput / baseline_throughput),
            target: ">= 0.9",
        },
        Row {
            name: "pipeline latency p50 / p95 (batch submitted at once)",
            ours: format!("{:.2} s / {:.2} s", percentile(&latencies, 0.5), percentile(&latencies, 0.95)),
            baseline: format!(
                "{:.2} s / {:.2} s",
                percentile(&baseline_latencies, 0.5),
                percentile(&baseline_latencies, 0.95)
            ),
            ratio: format!("{:.2}", percentile(&latencies, 0.95) / percentile(&baseline_latencies, 0.95)),
            target: "",
        },
    ]
}

fn token_validation() -> Vec<Row> {
    const ROUNDS: u32 = 100_000;
    let keys = TokenKeys::new(b"benchmark secret", Duration::from_secs(3600));
    let token = keys.issue("bench@example.com", false).unwrap().token;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(keys.validate(std::hint::black_box(&token)).unwrap());
    }
    let ours = started.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64;

    let claims_json = serde_json::to_string(&keys.validate(&token).unwrap()).unwrap();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let parsed: mp3converter::security::token::Claims =
            serde_json::from_str(std::hint::black_box(&claims_json)).unwrap();
        std::hint::black_box(parsed);
    }
    let baseline = started.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64;
    vec![Row {
        name: "token validation (HS256, pinned)",
        ours: format!("{ours:.2} us"),
        baseline: format!("{baseline:.2} us (parse the claims JSON)"),
        ratio: format!("{:.1}", ours / baseline),
        target: "<= 20 us",
    }]
}

fn status_kib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn upload_memory() -> Vec<Row> {
    const MIB: usize = 1024 * 1024;
    let app = TestApp::spawn().await;
    let token = app.user_token("memory@example.com", false).await;
    let idle = status_kib(app.pid(), "VmRSS:") / 1024.0;
    let chunks = futures_util::stream::iter((0..1024).map(|_| Ok::<_, std::io::Error>(vec![0x5au8; MIB])));
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(chunks)).file_name("big.bin");
    let response = app
        .client
        .post(app.url("/upload"))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let peak = status_kib(app.pid(), "VmHWM:") / 1024.0;
    vec![Row {
        name: "service peak RSS during a 1 GiB upload",
        ours: format!("{peak:.1} MiB"),
        baseline: format!("{idle:.1} MiB (idle RSS)"),
        ratio: format!("{:.2}", peak / idle),
        target: "<= 80 MiB",
    }]
}
